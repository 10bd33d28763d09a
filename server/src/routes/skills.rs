//! Skills (API §13): create from multipart `files[]` parts (each part's filename is its path
//! under one top-level directory holding `SKILL.md`; optional `display_name`), list, retrieve,
//! delete; versions create, list (newest first), retrieve (`latest` or an id), delete, and the
//! content download as a zip archive ([`crate::skill_archive`]).
//!
//! Each part is checked by core's [`Upload`] before a byte of it is stored, then streamed into
//! its own blob `<prefix>_<index>` with its CRC-32; only `SKILL.md` is kept in memory (bounded
//! by the version limit) to read its frontmatter. A refused upload deletes the blobs it
//! stored. Deleting a version or a skill appends (or deletes the stream) first, then removes
//! the blobs, so a reader never finds a version whose bytes are gone.

use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use managed_agents_core::ids::{self, SkillId};
use managed_agents_core::object::Deleted;
use managed_agents_core::skill::{
    self, upload, Manifest, Skill, SkillObject, Upload, VersionObject,
};
use managed_agents_core::storage::{CatalogQuery, Kind};
use managed_agents_core::time::Timestamp;

use crate::auth::Auth;
use crate::error::{Error, Result};
use crate::extract::Id;
use crate::objects;
use crate::pagination::{self, Page};
use crate::query::Query;
use crate::state::AppState;

/// Room for multipart framing around the largest version's bytes.
const BODY_LIMIT: usize = upload::MAX_BYTES as usize + 1024 * 1024;

/// The skill routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/skills",
            post(create)
                .layer(DefaultBodyLimit::max(BODY_LIMIT))
                .get(list),
        )
        .route("/v1/skills/{skill_id}", get(retrieve).delete(delete))
        .route(
            "/v1/skills/{skill_id}/versions",
            post(create_version)
                .layer(DefaultBodyLimit::max(BODY_LIMIT))
                .get(list_versions),
        )
        .route(
            "/v1/skills/{skill_id}/versions/{version}",
            get(retrieve_version).delete(delete_version),
        )
        .route(
            "/v1/skills/{skill_id}/versions/{version}/content",
            get(download),
        )
}

/// Loads skill `id` of the caller's workspace.
pub async fn load(state: &AppState, auth: &Auth, id: &SkillId) -> Result<Skill> {
    objects::load(state, auth, "skill", id.as_str()).await
}

fn multipart_error(err: axum::extract::multipart::MultipartError) -> Error {
    if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large()
    } else {
        Error::invalid(format!(
            "files: malformed multipart body: {}",
            err.body_text()
        ))
    }
}

fn too_large() -> Error {
    Error::TooLarge(format!(
        "a skill version is at most {} bytes (all files together)",
        upload::MAX_BYTES
    ))
}

/// The bytes of an upload's files together (what the stored-bytes quota counts).
fn manifest_bytes(manifest: &Manifest) -> u64 {
    manifest.files.iter().map(|f| f.size).sum()
}

fn io_error(e: std::io::Error) -> Error {
    Error::Internal(format!("storing skill file bytes: {e}"))
}

/// An upload read from the request: the checked manifest, where its bytes are, and the
/// `display_name` part.
struct Received {
    manifest: Manifest,
    prefix: String,
    display_name: Option<String>,
}

/// Reads every part, storing `files[]` parts as blobs `<prefix>_<index>`. On any error the
/// blobs stored so far are deleted.
async fn receive(state: &AppState, multipart: &mut Multipart, now: Timestamp) -> Result<Received> {
    let prefix = ids::generate("skv_", now);
    let mut stored = 0usize;
    let result = receive_into(state, multipart, &prefix, &mut stored).await;
    match result {
        Ok((manifest, display_name)) => Ok(Received {
            manifest,
            prefix,
            display_name,
        }),
        Err(err) => {
            remove_blobs(state, &prefix, stored).await;
            Err(err)
        }
    }
}

async fn receive_into(
    state: &AppState,
    multipart: &mut Multipart,
    prefix: &str,
    stored: &mut usize,
) -> Result<(Manifest, Option<String>)> {
    let mut upload = Upload::new();
    let mut skill_md: Option<Vec<u8>> = None;
    let mut display_name = None;
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("files[]") | Some("files") => {
                let name = field.file_name().unwrap_or("").to_owned();
                let path = upload.entry(&name)?;
                let keep = path == upload::SKILL_MD;
                let mut kept = Vec::new();
                let mut crc = crc32fast::Hasher::new();
                let mut size = 0u64;
                let mut writer = state
                    .blobs
                    .create(&skill::blob_id(prefix, *stored))
                    .await
                    .map_err(io_error)?;
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    size += chunk.len() as u64;
                    if !upload.fits(size) {
                        return Err(too_large());
                    }
                    crc.update(&chunk);
                    if keep {
                        kept.extend_from_slice(&chunk);
                    }
                    writer.write(&chunk).await.map_err(io_error)?;
                }
                writer.commit().await.map_err(io_error)?;
                *stored += 1;
                upload.sized(size, crc.finalize());
                if keep {
                    skill_md = Some(kept);
                }
            }
            Some("display_name") => {
                display_name = Some(field.text().await.map_err(multipart_error)?);
            }
            _ => {}
        }
    }
    let manifest = upload.finish(skill_md.as_deref())?;
    Ok((manifest, display_name))
}

async fn remove_blobs(state: &AppState, prefix: &str, count: usize) {
    for index in 0..count {
        let id = skill::blob_id(prefix, index);
        if let Err(e) = state.blobs.delete(&id).await {
            tracing::warn!(blob = %id, error = %e, "removing skill file bytes");
        }
    }
}

async fn remove_version_blobs(state: &AppState, version: &skill::Version) {
    remove_blobs(state, &version.blob_prefix, version.files.len()).await;
}

async fn create(
    State(state): State<AppState>,
    auth: Auth,
    mut multipart: Multipart,
) -> Result<Json<SkillObject>> {
    let now = Timestamp::now();
    let received = receive(&state, &mut multipart, now).await?;
    let id = SkillId::generate(now);
    let prefix = received.prefix.clone();
    let count = received.manifest.files.len();
    let bytes = manifest_bytes(&received.manifest);
    let created = match skill::create(
        id.clone(),
        auth.workspace().clone(),
        received.display_name,
        received.manifest,
        received.prefix,
        now,
    ) {
        Ok(records) => match state
            .quotas
            .skill_version(&state, auth.workspace(), bytes)
            .await
        {
            Ok(admitted) => {
                let (state, id) = (state.clone(), id.clone());
                admitted
                    .write(
                        async move { objects::create::<Skill>(&state, id.as_str(), records).await },
                    )
                    .await
            }
            Err(refused) => Err(refused),
        },
        Err(e) => Err(e.into()),
    };
    match created {
        Ok(skill) => Ok(Json(skill.render())),
        Err(err) => {
            remove_blobs(&state, &prefix, count).await;
            Err(err)
        }
    }
}

async fn retrieve(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<SkillId>,
) -> Result<Json<SkillObject>> {
    Ok(Json(load(&state, &auth, &id).await?.render()))
}

async fn list(
    State(state): State<AppState>,
    auth: Auth,
    query: Query,
) -> Result<Json<Page<SkillObject>>> {
    let limit = query.limit(20, 1000)?;
    match query.one("source")? {
        None | Some("custom") => {}
        // Anthropic's own skills are not served from the catalog (see `--anthropic-skills-dir`).
        Some("anthropic") => {
            return Ok(Json(Page {
                data: Vec::new(),
                next_page: None,
            }))
        }
        Some(other) => {
            return Err(Error::invalid(format!(
                "source: expected `custom` or `anthropic`, got {other:?}"
            )))
        }
    }
    let mut catalog = CatalogQuery::new(Kind::Skill, auth.workspace().as_str());
    catalog.limit = limit;
    catalog.order = pagination::order(&query, catalog.order)?;
    let page = pagination::list_catalog(&state.store, catalog, query.one("page")?).await?;
    let mut data = Vec::with_capacity(page.entries.len());
    for entry in &page.entries {
        let id = SkillId::parse(&entry.id).map_err(|e| Error::Internal(e.to_string()))?;
        match load(&state, &auth, &id).await {
            Ok(skill) => data.push(skill.render()),
            // Deleted between the listing and the load.
            Err(Error::NotFound(_)) => {}
            Err(other) => return Err(other),
        }
    }
    Ok(Json(Page {
        data,
        next_page: page.next,
    }))
}

async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<SkillId>,
) -> Result<Json<Deleted>> {
    let skill = load(&state, &auth, &id).await?;
    objects::delete(&state, Kind::Skill, id.as_str()).await?;
    for version in &skill.versions {
        remove_version_blobs(&state, version).await;
    }
    Ok(Json(skill::deleted(&id)))
}

async fn create_version(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<SkillId>,
    mut multipart: Multipart,
) -> Result<Json<VersionObject>> {
    // 404 before reading a byte of an upload to an unknown skill.
    load(&state, &auth, &id).await?;
    let now = Timestamp::now();
    let received = receive(&state, &mut multipart, now).await?;
    let prefix = received.prefix.clone();
    let count = received.manifest.files.len();
    let written = match state
        .quotas
        .skill_version(&state, auth.workspace(), manifest_bytes(&received.manifest))
        .await
    {
        Ok(admitted) => {
            let (state, auth, id) = (state.clone(), auth.clone(), id.clone());
            let (manifest, prefix) = (received.manifest, prefix.clone());
            admitted
                .write(async move {
                    objects::write::<Skill>(&state, &auth, "skill", id.as_str(), |skill| {
                        Ok(skill.add_version(manifest.clone(), prefix.clone(), now)?)
                    })
                    .await
                })
                .await
        }
        Err(refused) => Err(refused),
    };
    match written {
        Ok(skill) => {
            let version = skill
                .versions
                .iter()
                .find(|v| v.blob_prefix == prefix)
                .ok_or_else(|| Error::Internal(format!("skill {id}: version not folded")))?;
            Ok(Json(version.render(&skill.id)))
        }
        Err(err) => {
            remove_blobs(&state, &prefix, count).await;
            Err(err)
        }
    }
}

fn version_not_found(version: &str) -> Error {
    Error::not_found("skill version", version)
}

async fn list_versions(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<SkillId>,
    query: Query,
) -> Result<Json<Page<VersionObject>>> {
    let limit = query.limit(20, 1000)?;
    let skill = load(&state, &auth, &id).await?;
    let after = match query.one("page")?.filter(|p| !p.is_empty()) {
        Some(page) => Some(
            page.parse::<u128>()
                .map_err(|_| Error::invalid(format!("page: {page:?} is not a page cursor")))?,
        ),
        None => None,
    };
    let mut newest_first = skill
        .versions
        .iter()
        .rev()
        .filter(|v| after.is_none_or(|a| v.id.parse::<u128>().is_ok_and(|id| id < a)));
    let data: Vec<VersionObject> = newest_first
        .by_ref()
        .take(limit)
        .map(|v| v.render(&skill.id))
        .collect();
    let next_page = match (newest_first.next(), data.last()) {
        (Some(_), Some(last)) => Some(last.id.clone()),
        _ => None,
    };
    Ok(Json(Page { data, next_page }))
}

async fn retrieve_version(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<SkillId>,
    Path((_, version)): Path<(String, String)>,
) -> Result<Json<VersionObject>> {
    let skill = load(&state, &auth, &id).await?;
    let found = skill
        .version(&version)
        .ok_or_else(|| version_not_found(&version))?;
    Ok(Json(found.render(&skill.id)))
}

async fn delete_version(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<SkillId>,
    Path((_, version)): Path<(String, String)>,
) -> Result<Json<Deleted>> {
    let before = load(&state, &auth, &id).await?;
    let now = Timestamp::now();
    objects::write::<Skill>(&state, &auth, "skill", id.as_str(), |skill| {
        match skill.delete_version(&version, now) {
            Some(Ok(record)) => Ok(vec![record]),
            Some(Err(e)) => Err(e.into()),
            None => Err(version_not_found(&version)),
        }
    })
    .await?;
    if let Some(gone) = before.versions.iter().find(|v| v.id == version) {
        remove_version_blobs(&state, gone).await;
    }
    Ok(Json(skill::version_deleted(&version)))
}

async fn download(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<SkillId>,
    Path((_, version)): Path<(String, String)>,
) -> Result<Response> {
    let skill = load(&state, &auth, &id).await?;
    let found = skill
        .version(&version)
        .ok_or_else(|| version_not_found(&version))?;
    let (len, body) = crate::skill_archive::archive(state.blobs.clone(), found)
        .map_err(|e| Error::Internal(e.to_string()))?;
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/zip"),
        ),
        (header::CONTENT_LENGTH, HeaderValue::from(len)),
        (
            header::CONTENT_DISPOSITION,
            super::files::content_disposition(&format!("{}.zip", found.name)),
        ),
    ];
    Ok((headers, axum::body::Body::from_stream(body)).into_response())
}

/// The checks on an agent's skill references the server makes at agent create and update (core
/// checks their shape): a `custom` skill exists in the caller's workspace with the pinned
/// version, if any; an `anthropic` skill is a directory with a `SKILL.md` under
/// `--anthropic-skills-dir`, which must be configured (they are not available offline).
pub async fn check_references(
    state: &AppState,
    auth: &Auth,
    skills: &[managed_agents_core::agent::SkillParams],
) -> Result<()> {
    use managed_agents_core::agent::SkillSource;
    for (i, reference) in skills.iter().enumerate() {
        let field = format!("skills[{i}]");
        match reference.source {
            SkillSource::Custom => {
                let missing = || {
                    Error::invalid(format!(
                        "{field}.skill_id: skill {:?} not found",
                        reference.skill_id
                    ))
                };
                let id = SkillId::parse(&reference.skill_id).map_err(|_| missing())?;
                let skill = match load(state, auth, &id).await {
                    Ok(skill) => skill,
                    Err(Error::NotFound(_)) => return Err(missing()),
                    Err(other) => return Err(other),
                };
                if let Some(version) = reference.version.as_deref() {
                    if skill.version(version).is_none() {
                        return Err(Error::invalid(format!(
                            "{field}.version: skill {} has no version {version:?}",
                            reference.skill_id
                        )));
                    }
                }
            }
            SkillSource::Anthropic => {
                let Some(dir) = &state.anthropic_skills else {
                    return Err(Error::invalid(format!(
                        "{field}: Anthropic skills ({:?}) are not available on this server; an \
                         operator can provide them with `serve --anthropic-skills-dir DIR` \
                         (one directory with a SKILL.md per skill)",
                        reference.skill_id
                    )));
                };
                if managed_agents_core::skill::upload::check_directory_name(&reference.skill_id)
                    .is_err()
                    || !dir
                        .join(&reference.skill_id)
                        .join(upload::SKILL_MD)
                        .is_file()
                {
                    return Err(Error::invalid(format!(
                        "{field}.skill_id: no Anthropic skill {:?} in the server's skills \
                         directory",
                        reference.skill_id
                    )));
                }
            }
        }
    }
    Ok(())
}

/// [`check_references`] for stored references (`version` always set, `latest` included), as
/// a session's `agent_with_overrides` resolves them.
pub async fn check_resolved(
    state: &AppState,
    auth: &Auth,
    skills: &[managed_agents_core::agent::Skill],
) -> Result<()> {
    let params: Vec<managed_agents_core::agent::SkillParams> = skills
        .iter()
        .map(|s| managed_agents_core::agent::SkillParams {
            source: s.source,
            skill_id: s.skill_id.clone(),
            version: Some(s.version.clone()),
        })
        .collect();
    check_references(state, auth, &params).await
}
