//! Skills (API §13): a skill is an event-sourced object whose stream holds its creation and
//! every version added or deleted. A version is an immutable set of files (its bytes are blobs
//! the server keeps, named `<blob_prefix>_<index>`) described by a manifest: the top-level
//! directory, the `SKILL.md` name and description, each file's path, size and CRC-32.
//!
//! Version ids are decimal microseconds since the epoch (the hosted API's form), strictly
//! increasing within a skill; `latest` names the newest. A skill always holds at least one
//! version: deleting the last one is refused (delete the skill instead). Its `name` is fixed
//! by the first upload; every later version must resolve to the same name.

pub mod frontmatter;
pub mod upload;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::ids::{SkillId, WorkspaceId};
use crate::object::{self, DecodeError, Error};
use crate::storage::{CatalogEntry, Kind};
use crate::time::Timestamp;
use crate::validate::{self, FieldError};

pub use upload::{Manifest, SkillFile, Upload};

/// Longest `display_name`.
pub const MAX_DISPLAY_NAME: usize = 255;
/// Most live versions one skill keeps.
pub const MAX_VERSIONS: usize = 100;
/// The version reference that names the newest version.
pub const LATEST: &str = "latest";

/// One version as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// Decimal epoch microseconds.
    pub id: String,
    /// The skill's name (the same for every version).
    pub name: String,
    /// The `SKILL.md` description.
    pub description: String,
    /// The uploaded top-level directory.
    pub directory: String,
    /// Created.
    pub created_at: Timestamp,
    /// The blobs of the files are `<blob_prefix>_<index in files>`.
    pub blob_prefix: String,
    /// The files.
    pub files: Vec<SkillFile>,
}

impl Version {
    /// The blob id of file `index`.
    pub fn blob(&self, index: usize) -> String {
        blob_id(&self.blob_prefix, index)
    }

    /// Total bytes.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// The API object.
    pub fn render(&self, skill: &SkillId) -> VersionObject {
        VersionObject {
            id: self.id.clone(),
            kind: "skill_version",
            skill_id: skill.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            created_at: self.created_at,
        }
    }
}

/// The blob id of file `index` of a version stored under `prefix`.
pub fn blob_id(prefix: &str, index: usize) -> String {
    format!("{prefix}_{index}")
}

/// One record of a skill's stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Record {
    /// Created (a `version_created` follows in the same append).
    #[serde(rename = "skill.created")]
    Created {
        /// Its owner.
        workspace: WorkspaceId,
        /// Its id.
        id: SkillId,
        /// The label.
        display_name: String,
        /// The immutable name.
        name: String,
        /// When.
        created_at: Timestamp,
    },
    /// A version added.
    #[serde(rename = "skill.version_created")]
    VersionCreated {
        /// The version.
        version: Version,
    },
    /// A version deleted (its blobs are removed by the server after the append).
    #[serde(rename = "skill.version_deleted")]
    VersionDeleted {
        /// Its id.
        version: String,
        /// When.
        at: Timestamp,
    },
}

impl Record {
    /// JSON bytes for the store.
    pub fn encode(&self) -> Bytes {
        object::encode(self)
    }

    /// Parses stored JSON bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        object::decode(bytes)
    }
}

/// A skill folded from its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skill {
    /// Its owner.
    pub workspace: WorkspaceId,
    /// Its id.
    pub id: SkillId,
    /// The label.
    pub display_name: String,
    /// The immutable name.
    pub name: String,
    /// Created.
    pub created_at: Timestamp,
    /// Last version added or deleted.
    pub updated_at: Timestamp,
    /// Live versions, oldest first.
    pub versions: Vec<Version>,
}

impl object::Object for Skill {
    type Record = Record;

    fn apply(object: &mut Option<Self>, record: &Record) {
        match (object.as_mut(), record) {
            (
                None,
                Record::Created {
                    workspace,
                    id,
                    display_name,
                    name,
                    created_at,
                },
            ) => {
                *object = Some(Skill {
                    workspace: workspace.clone(),
                    id: id.clone(),
                    display_name: display_name.clone(),
                    name: name.clone(),
                    created_at: *created_at,
                    updated_at: *created_at,
                    versions: Vec::new(),
                });
            }
            (Some(skill), Record::VersionCreated { version }) => {
                skill.updated_at = skill.updated_at.max(version.created_at);
                skill.versions.push(version.clone());
            }
            (Some(skill), Record::VersionDeleted { version, at }) => {
                skill.updated_at = skill.updated_at.max(*at);
                skill.versions.retain(|v| &v.id != version);
            }
            _ => {}
        }
    }

    fn catalog_entry(&self) -> CatalogEntry {
        CatalogEntry::new(
            Kind::Skill,
            self.id.as_str(),
            self.workspace.as_str(),
            self.created_at,
        )
    }

    fn workspace(&self) -> &WorkspaceId {
        &self.workspace
    }
}

/// `source` of a skill object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// Always `custom` for uploaded skills.
    #[serde(rename = "type")]
    pub kind: String,
}

/// The skill object (`type: "skill"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkillObject {
    /// `skill_…`
    pub id: SkillId,
    /// `skill`
    #[serde(rename = "type")]
    pub kind: String,
    /// The label.
    pub display_name: String,
    /// The newest version.
    pub latest_version_id: String,
    /// `{type: "custom"}`.
    pub source: Source,
    /// Created.
    pub created_at: Timestamp,
    /// Updated.
    pub updated_at: Timestamp,
}

/// The skill version object (`type: "skill_version"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionObject {
    /// The version id.
    pub id: String,
    /// `skill_version`
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The skill.
    pub skill_id: SkillId,
    /// The skill's name.
    pub name: String,
    /// From `SKILL.md`.
    pub description: String,
    /// Created.
    pub created_at: Timestamp,
}

/// The version id for a version created at `now` after `last` (strictly greater).
fn next_version_id(now: Timestamp, last: Option<&Version>) -> String {
    let micros = now.millis().max(0) as u128 * 1000;
    let after = last
        .and_then(|v| v.id.parse::<u128>().ok())
        .map_or(0, |id| id + 1);
    micros.max(after).to_string()
}

fn version_from(manifest: Manifest, id: String, blob_prefix: String, now: Timestamp) -> Version {
    Version {
        id,
        name: manifest.name,
        description: manifest.description,
        directory: manifest.directory,
        created_at: now,
        blob_prefix,
        files: manifest.files,
    }
}

/// `POST /v1/skills`: the records creating skill `id` with its first version.
pub fn create(
    id: SkillId,
    workspace: WorkspaceId,
    display_name: Option<String>,
    manifest: Manifest,
    blob_prefix: String,
    now: Timestamp,
) -> Result<Vec<Record>, Error> {
    let display_name = display_name.unwrap_or_else(|| manifest.name.clone());
    validate::length("display_name", &display_name, 1, MAX_DISPLAY_NAME)?;
    if display_name.contains(['\n', '\r']) {
        return Err(FieldError::new("display_name", "must be a single line").into());
    }
    let name = manifest.name.clone();
    let version = version_from(manifest, next_version_id(now, None), blob_prefix, now);
    Ok(vec![
        Record::Created {
            workspace,
            id,
            display_name,
            name,
            created_at: now,
        },
        Record::VersionCreated { version },
    ])
}

impl Skill {
    /// The newest version (a skill always has one).
    pub fn latest(&self) -> Option<&Version> {
        self.versions.last()
    }

    /// The version `reference` names: a version id or `latest`.
    pub fn version(&self, reference: &str) -> Option<&Version> {
        if reference == LATEST {
            return self.latest();
        }
        self.versions.iter().find(|v| v.id == reference)
    }

    /// `POST /v1/skills/{id}/versions`: the record adding a version.
    pub fn add_version(
        &self,
        manifest: Manifest,
        blob_prefix: String,
        now: Timestamp,
    ) -> Result<Vec<Record>, Error> {
        if manifest.name != self.name {
            return Err(FieldError::new(
                "files",
                format!(
                    "the skill is named {:?}; a new version must have the same name (got {:?})",
                    self.name, manifest.name
                ),
            )
            .into());
        }
        if self.versions.len() >= MAX_VERSIONS {
            return Err(FieldError::new(
                "files",
                format!("a skill keeps at most {MAX_VERSIONS} versions; delete old ones first"),
            )
            .into());
        }
        let id = next_version_id(now, self.latest());
        Ok(vec![Record::VersionCreated {
            version: version_from(manifest, id, blob_prefix, now),
        }])
    }

    /// `DELETE /v1/skills/{id}/versions/{version}`: the record deleting it (`None`: no such
    /// version).
    pub fn delete_version(&self, version: &str, now: Timestamp) -> Option<Result<Record, Error>> {
        self.versions.iter().find(|v| v.id == version)?;
        if self.versions.len() == 1 {
            return Some(Err(FieldError::new(
                "version",
                "a skill holds at least one version: delete the skill to remove its last version",
            )
            .into()));
        }
        Some(Ok(Record::VersionDeleted {
            version: version.to_owned(),
            at: now,
        }))
    }

    /// The API object.
    pub fn render(&self) -> SkillObject {
        SkillObject {
            id: self.id.clone(),
            kind: "skill".to_owned(),
            display_name: self.display_name.clone(),
            latest_version_id: self.latest().map(|v| v.id.clone()).unwrap_or_default(),
            source: Source {
                kind: "custom".to_owned(),
            },
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// The body of `DELETE /v1/skills/{id}`.
pub fn deleted(id: &SkillId) -> object::Deleted {
    object::Deleted::new(id.as_str(), "skill_deleted")
}

/// The body of `DELETE /v1/skills/{id}/versions/{version}`.
pub fn version_deleted(version: &str) -> object::Deleted {
    object::Deleted::new(version, "skill_version_deleted")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::fold;

    fn manifest(name: &str) -> Manifest {
        let mut up = Upload::new();
        up.entry(&format!("{name}/SKILL.md")).expect("entry");
        up.sized(10, 1);
        up.finish(Some(
            format!("---\nname: {name}\ndescription: d\n---\n").as_bytes(),
        ))
        .expect("manifest")
    }

    #[test]
    fn versions_are_added_resolved_and_deleted() {
        let now = Timestamp::from_millis(1_700_000_000_000);
        let id = SkillId::generate(now);
        let ws = WorkspaceId::generate(now);
        let records =
            create(id.clone(), ws, None, manifest("tool"), "p1".into(), now).expect("create");
        let mut skill: Skill = fold(records).expect("created");
        assert_eq!(skill.display_name, "tool");
        let first = skill.latest().expect("v1").id.clone();
        assert_eq!(first, "1700000000000000");
        for record in skill
            .add_version(manifest("tool"), "p2".into(), now)
            .expect("v2")
        {
            let mut opt = Some(skill);
            <Skill as object::Object>::apply(&mut opt, &record);
            skill = opt.expect("still there");
        }
        let second = skill.latest().expect("v2").id.clone();
        assert_eq!(second, "1700000000000001");
        assert_eq!(
            skill.version(LATEST).map(|v| v.blob(0)),
            Some("p2_0".into())
        );
        assert_eq!(
            skill.version(&first).map(|v| v.blob_prefix.as_str()),
            Some("p1")
        );
        assert!(skill
            .add_version(manifest("other"), "p3".into(), now)
            .is_err());
        let record = skill
            .delete_version(&second, now)
            .expect("found")
            .expect("ok");
        let mut opt = Some(skill);
        <Skill as object::Object>::apply(&mut opt, &record);
        let skill = opt.expect("still there");
        assert_eq!(skill.render().latest_version_id, first);
        assert!(skill.delete_version(&first, now).expect("found").is_err());
        assert!(skill.delete_version("nope", now).is_none());
    }
}
