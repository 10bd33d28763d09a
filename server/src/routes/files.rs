//! Files (API §14): multipart upload (part `file`, optional `expires_in_seconds`), metadata,
//! download with the exact stored content type, list and delete. Metadata is core's file
//! object in the store; bytes live in [`crate::blobs`]. As in the hosted API, uploads are
//! `downloadable: false` (their download is a 400 `file_not_downloadable`) unless the operator
//! runs `serve --uploads-downloadable`; session outputs (`harness::attach`, files the agent
//! wrote to `/mnt/session/outputs`) are downloadable.
//!
//! Bytes stream both ways: an upload goes chunk by chunk into a blob writer, a download streams
//! the blob, so memory per transfer is bounded whatever the file size. A download is always an
//! attachment (`Content-Disposition: attachment`) that must not be sniffed
//! (`X-Content-Type-Options: nosniff`): the content type is the uploader's, e.g. `text/html`.

use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use managed_agents_core::file::{self, File, FileObject, NewFile};
use managed_agents_core::ids::{FileId, SessionId};
use managed_agents_core::object::Deleted;
use managed_agents_core::storage::{CatalogQuery, Kind};
use managed_agents_core::time::Timestamp;
use serde::Serialize;

use crate::auth::Auth;
use crate::blobs::BlobWriter;
use crate::error::{Error, Result};
use crate::extract::Id;
use crate::objects;
use crate::pagination;
use crate::query::Query;
use crate::state::AppState;

/// The file routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/files",
            post(upload)
                .layer(DefaultBodyLimit::max(crate::UPLOAD_LIMIT))
                .get(list),
        )
        .route("/v1/files/{file_id}", get(retrieve).delete(delete))
        .route("/v1/files/{file_id}/content", get(download))
}

async fn load(state: &AppState, auth: &Auth, id: &FileId) -> Result<File> {
    objects::load(state, auth, "file", id.as_str()).await
}

fn multipart_error(err: axum::extract::multipart::MultipartError) -> Error {
    if crate::body::timed_out(&err) {
        Error::body_timeout()
    } else if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Error::TooLarge(format!(
            "upload is larger than the limit of {} bytes",
            crate::UPLOAD_LIMIT
        ))
    } else {
        Error::invalid(format!(
            "file: malformed multipart body: {}",
            err.body_text()
        ))
    }
}

fn io_error(doing: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Internal(format!("{doing} file bytes: {e}"))
}

async fn upload(
    State(state): State<AppState>,
    auth: Auth,
    mut multipart: Multipart,
) -> Result<Json<FileObject>> {
    let now = Timestamp::now();
    let id = FileId::generate(now);
    let mut upload: Option<(String, Option<String>, BlobWriter)> = None;
    let mut expires_in_seconds = None;
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().map(str::to_owned);
        match name.as_deref() {
            Some("file") => {
                let filename = field.file_name().unwrap_or("").to_owned();
                let mime = field.content_type().map(str::to_owned);
                // The last `file` part wins; dropping an earlier writer removes its bytes.
                drop(upload.take());
                let mut writer = state
                    .blobs
                    .create(id.as_str())
                    .await
                    .map_err(io_error("storing"))?;
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    writer.write(&chunk).await.map_err(io_error("storing"))?;
                }
                upload = Some((filename, mime, writer));
            }
            Some("expires_in_seconds") => {
                let text = field.text().await.map_err(multipart_error)?;
                expires_in_seconds = Some(text.trim().parse::<u64>().map_err(|_| {
                    Error::invalid(format!(
                        "expires_in_seconds: expected an integer, got {text:?}"
                    ))
                })?);
            }
            _ => {}
        }
    }
    let (filename, mime_type, writer) =
        upload.ok_or_else(|| Error::invalid("file: a multipart part named `file` is required"))?;
    let workspace = auth.workspace().clone();
    let new = NewFile {
        filename,
        mime_type,
        size_bytes: writer.len(),
        expires_in_seconds,
        scope: None,
        downloadable: state.uploads_downloadable,
    };
    let records = file::create(new, id.clone(), workspace, now)?;
    // Refused over a quota, the writer is dropped uncommitted: nothing of the upload stays. The
    // workspace's turn is held until the file is durable (see `quotas`).
    let admitted = state
        .quotas
        .file(&state, auth.workspace(), writer.len())
        .await?;
    writer.commit().await.map_err(io_error("storing"))?;
    let created = {
        let (state, id) = (state.clone(), id.clone());
        admitted
            .write(async move { objects::create::<File>(&state, id.as_str(), records).await })
            .await
    };
    match created {
        Ok(created) => Ok(Json(created.render())),
        Err(err) => {
            if let Err(e) = state.blobs.delete(id.as_str()).await {
                tracing::warn!(file_id = %id, error = %e, "removing the bytes of a failed upload");
            }
            Err(err)
        }
    }
}

async fn retrieve(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<FileId>,
) -> Result<Json<FileObject>> {
    Ok(Json(load(&state, &auth, &id).await?.render()))
}

async fn download(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<FileId>,
) -> Result<Response> {
    let file = load(&state, &auth, &id).await?;
    file.check_download(Timestamp::now())?;
    let blob = state
        .blobs
        .open(id.as_str())
        .await
        .map_err(io_error("reading"))?
        .ok_or_else(|| Error::Internal(format!("bytes of file {id} are missing")))?;
    let content_type = HeaderValue::from_str(&file.metadata.mime_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_LENGTH, HeaderValue::from(blob.len())),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::CONTENT_DISPOSITION,
            content_disposition(&file.metadata.filename),
        ),
    ];
    Ok((headers, blob.into_body()).into_response())
}

/// `attachment` with the file's name: an ASCII fallback (`filename`, quotes, backslashes and
/// anything not printable ASCII replaced by `_`) and the exact name (`filename*`, RFC 5987).
pub(crate) fn content_disposition(filename: &str) -> HeaderValue {
    if filename.is_empty() {
        return HeaderValue::from_static("attachment");
    }
    let ascii: String = filename
        .chars()
        .map(|c| match c {
            ' ' | '!' | '#'..='[' | ']'..='~' => c,
            _ => '_',
        })
        .collect();
    let mut exact = String::with_capacity(filename.len());
    for b in filename.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            exact.push(char::from(b));
        } else {
            exact.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{exact}"
    ))
    .unwrap_or(HeaderValue::from_static("attachment"))
}

async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<FileId>,
) -> Result<Json<Deleted>> {
    let file = load(&state, &auth, &id).await?;
    objects::delete(&state, Kind::File, id.as_str()).await?;
    state.quotas.forget_file(id.as_str());
    state
        .blobs
        .delete(id.as_str())
        .await
        .map_err(|e| Error::Internal(format!("deleting file bytes: {e}")))?;
    Ok(Json(file::deleted(&file.metadata.id)))
}

/// The file page: the cursor envelope plus the legacy `has_more`/`first_id`/`last_id` fields.
#[derive(Debug, Serialize)]
struct FilePage {
    data: Vec<FileObject>,
    next_page: Option<String>,
    has_more: bool,
    first_id: Option<String>,
    last_id: Option<String>,
}

impl FilePage {
    fn new(data: Vec<FileObject>, next_page: Option<String>) -> Self {
        Self {
            has_more: next_page.is_some(),
            first_id: data.first().map(|f| f.id.to_string()),
            last_id: data.last().map(|f| f.id.to_string()),
            data,
            next_page,
        }
    }
}

async fn list(State(state): State<AppState>, auth: Auth, query: Query) -> Result<Json<FilePage>> {
    let ids = query.all("ids");
    let now = Timestamp::now();
    if !ids.is_empty() {
        if ids.len() > 100 {
            return Err(Error::invalid("ids[]: at most 100 ids"));
        }
        if query.one("page")?.is_some() || query.one("limit")?.is_some() {
            return Err(Error::invalid(
                "ids[]: cannot be combined with page or limit",
            ));
        }
        let mut data = Vec::new();
        for id in ids {
            // A malformed id names no file: dropped like an unknown one.
            let Ok(id) = FileId::parse(id) else {
                continue;
            };
            match load(&state, &auth, &id).await {
                Ok(file) if !file.is_expired(now) => data.push(file.render()),
                Ok(_) | Err(Error::NotFound(_)) => {}
                Err(other) => return Err(other),
            }
        }
        return Ok(Json(FilePage::new(data, None)));
    }
    let mut catalog = CatalogQuery::new(Kind::File, auth.workspace().as_str());
    catalog.limit = query.limit(20, 1000)?;
    if let Some(scope) = query.one("scope_id")? {
        SessionId::parse(scope).map_err(|e| Error::invalid(format!("scope_id: {e}")))?;
        catalog.parent = Some(scope.to_owned());
    }
    let page = pagination::list_catalog(&state.store, catalog, query.one("page")?).await?;
    let mut data = Vec::with_capacity(page.entries.len());
    for entry in &page.entries {
        let id = FileId::parse(&entry.id).map_err(|e| Error::Internal(e.to_string()))?;
        let file = load(&state, &auth, &id).await?;
        if !file.is_expired(now) {
            data.push(file.render());
        }
    }
    Ok(Json(FilePage::new(data, page.next)))
}

#[cfg(test)]
mod tests {
    use super::content_disposition;

    #[test]
    fn downloads_are_attachments_with_a_safe_name() {
        assert_eq!(content_disposition(""), "attachment");
        assert_eq!(
            content_disposition("report 1.html"),
            "attachment; filename=\"report 1.html\"; filename*=UTF-8''report%201.html"
        );
        assert_eq!(
            content_disposition("a\"b\\c\u{e9}.txt"),
            "attachment; filename=\"a_b_c_.txt\"; filename*=UTF-8''a%22b%5Cc%C3%A9.txt"
        );
    }
}
