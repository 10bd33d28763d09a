//! Files (API §14): metadata of uploaded inputs and session outputs, event-sourced.
//!
//! A file's stream holds one `file.created` record (content bytes are a blob kept by the
//! server); deleting a file deletes its stream. Uploaded inputs are not downloadable, session
//! outputs are; an expired file is gone (`file_expired`).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::ids::{FileId, SessionId, WorkspaceId};
use crate::object::{self, DecodeError, Error};
use crate::storage::{CatalogEntry, Kind};
use crate::time::Timestamp;
use crate::validate::{self, FieldError};

/// Shortest allowed `expires_in_seconds` (1 hour).
pub const MIN_EXPIRES_IN: u64 = 3600;
/// Longest allowed `expires_in_seconds` (90 days).
pub const MAX_EXPIRES_IN: u64 = 7_776_000;
/// Longest file name.
pub const MAX_FILENAME: usize = 255;

/// What the server knows about an upload or a session output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    /// The name as sent (only the last path component is kept).
    pub filename: String,
    /// The part's content type, if any; guessed from the name otherwise.
    pub mime_type: Option<String>,
    /// Content length.
    pub size_bytes: u64,
    /// The multipart `expires_in_seconds` (3600–7 776 000).
    pub expires_in_seconds: Option<u64>,
    /// For session outputs: the session that wrote it.
    pub scope: Option<SessionId>,
    /// True for session outputs, false for uploads.
    pub downloadable: bool,
}

/// `{"type": "session", "id": …}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "session")]
pub struct Scope {
    /// The session.
    pub id: SessionId,
}

/// The file object (`type: "file"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "file")]
pub struct FileObject {
    /// `file_…`
    pub id: FileId,
    /// Name.
    pub filename: String,
    /// Content type.
    pub mime_type: String,
    /// Size.
    pub size_bytes: u64,
    /// Uploaded.
    pub created_at: Timestamp,
    /// Whether `GET …/content` is allowed.
    pub downloadable: Option<bool>,
    /// `null`: never expires.
    pub expires_at: Option<Timestamp>,
    /// The session that wrote it.
    pub scope: Option<Scope>,
}

/// One record of a file's stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Record {
    /// Created.
    #[serde(rename = "file.created")]
    Created {
        /// Its owner.
        workspace: WorkspaceId,
        /// The metadata.
        file: FileObject,
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

/// A file folded from its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Its owner.
    pub workspace: WorkspaceId,
    /// The metadata as rendered.
    pub metadata: FileObject,
}

/// Folds a file's records.
pub fn fold(records: impl IntoIterator<Item = Record>) -> Option<File> {
    records
        .into_iter()
        .map(|Record::Created { workspace, file }| File {
            workspace,
            metadata: file,
        })
        .next()
}

impl object::Object for File {
    type Record = Record;

    fn apply(object: &mut Option<Self>, record: &Record) {
        let Record::Created { workspace, file } = record;
        if object.is_none() {
            *object = Some(File {
                workspace: workspace.clone(),
                metadata: file.clone(),
            });
        }
    }

    fn catalog_entry(&self) -> CatalogEntry {
        File::catalog_entry(self)
    }

    fn workspace(&self) -> &WorkspaceId {
        &self.workspace
    }
}

/// Decodes and folds a stored stream.
pub fn load(records: &[crate::storage::Record]) -> Result<Option<File>, DecodeError> {
    Ok(fold(object::decode_all::<Record>(records)?))
}

/// The last path component of an uploaded name (`/` and `\` both separate).
pub fn base_name(filename: &str) -> &str {
    filename.rsplit(['/', '\\']).next().unwrap_or(filename)
}

/// A content type for `filename` from its extension (`application/octet-stream` otherwise).
pub fn guess_mime_type(filename: &str) -> &'static str {
    let ext = filename
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" => "text/plain",
        "md" => "text/markdown",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "json" => "application/json",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "zip" => "application/zip",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "py" => "text/x-python",
        _ => "application/octet-stream",
    }
}

/// `POST /v1/files` (or a session output): the record creating file `id`.
pub fn create(
    new: NewFile,
    id: FileId,
    workspace: WorkspaceId,
    now: Timestamp,
) -> Result<Vec<Record>, Error> {
    let filename = base_name(&new.filename).to_owned();
    validate::length("file", &filename, 1, MAX_FILENAME)?;
    let expires_at = match new.expires_in_seconds {
        None => None,
        Some(secs) if (MIN_EXPIRES_IN..=MAX_EXPIRES_IN).contains(&secs) => {
            Some(Timestamp::from_millis(now.millis() + secs as i64 * 1000))
        }
        Some(_) => {
            return Err(FieldError::new(
                "expires_in_seconds",
                format!("must be between {MIN_EXPIRES_IN} and {MAX_EXPIRES_IN}"),
            )
            .into())
        }
    };
    let mime_type = new
        .mime_type
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| guess_mime_type(&filename).to_owned());
    Ok(vec![Record::Created {
        workspace,
        file: FileObject {
            id,
            filename,
            mime_type,
            size_bytes: new.size_bytes,
            created_at: now,
            downloadable: Some(new.downloadable),
            expires_at,
            scope: new.scope.map(|id| Scope { id }),
        },
    }])
}

impl File {
    /// Whether it has expired at `now` (expired files answer 404 `file_expired`).
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.metadata.expires_at.is_some_and(|at| at <= now)
    }

    /// Whether `GET /v1/files/{id}/content` may serve it at `now`: `file_expired` (404) or
    /// `file_not_downloadable` (400) otherwise.
    pub fn check_download(&self, now: Timestamp) -> Result<(), Error> {
        if self.is_expired(now) {
            return Err(Error::code(
                "file_expired",
                format!("file {} has expired", self.metadata.id),
            ));
        }
        if self.metadata.downloadable != Some(true) {
            return Err(Error::code(
                "file_not_downloadable",
                format!(
                    "file {} was uploaded and cannot be downloaded",
                    self.metadata.id
                ),
            ));
        }
        Ok(())
    }

    /// The response object.
    pub fn render(&self) -> FileObject {
        self.metadata.clone()
    }

    /// The catalog entry (parent: the scope session, for `scope_id` filters).
    pub fn catalog_entry(&self) -> CatalogEntry {
        let mut entry = CatalogEntry::new(
            Kind::File,
            self.metadata.id.as_str(),
            self.workspace.as_str(),
            self.metadata.created_at,
        );
        entry.parent = self.metadata.scope.as_ref().map(|s| s.id.to_string());
        entry
    }
}

/// The body of `DELETE /v1/files/{id}`.
pub fn deleted(id: &FileId) -> object::Deleted {
    object::Deleted::new(id.as_str(), "file_deleted")
}
