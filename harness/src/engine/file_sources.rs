//! `image` and `document` blocks whose source is an uploaded file (`{type: "file", file_id}`)
//! are given to the model as the file's bytes: models take base64 (or plain-text) sources, not
//! our file ids. Before each model request the conversation's blocks are resolved through the
//! file object in the store (same workspace as the session, not expired, its media type and
//! size) and [`BlobStore`](crate::blobs::BlobStore) (the bytes, which the server holds; the
//! harness never calls the HTTP API for them).
//!
//! Images (`image/png`, `image/jpeg`, `image/gif`, `image/webp`) become base64 sources of at
//! most [`IMAGE_BASE64_BYTES`]; documents become base64 `application/pdf` sources of at most
//! [`PDF_BYTES`], or plain-text sources (`text/*`, valid UTF-8, same cap). A block that cannot
//! be resolved (no such file, another workspace's, too large, an unsupported type, no blob
//! store) becomes a text block saying so, so the request still goes out. Resolved blocks are
//! cached for the turn ([`Resolved`]), so a turn of many model requests reads each file once.
//! [`text`] reads a `file` outcome rubric the same way, as text.

use std::collections::HashMap;
use std::sync::Arc;

use managed_agents_core::file;
use managed_agents_core::ids::WorkspaceId;
use managed_agents_core::storage::{self, Store, StreamId};
use managed_agents_core::time::Timestamp;
use serde_json::{json, Value};

use crate::blobs::BlobStore;
use crate::model::{Message, Part};

/// Largest image given to the model, base64-encoded (the read tool's cap).
pub(crate) const IMAGE_BASE64_BYTES: u64 = 5 << 20;
/// Largest document given to the model (the read tool's PDF cap).
pub(crate) const PDF_BYTES: u64 = 20 << 20;

/// The blocks resolved so far in a turn, by file id.
pub(crate) type Resolved = HashMap<String, Value>;

/// The file id of a block with a file source, and whether it is an image.
fn file_source(block: &Value) -> Option<(&str, bool)> {
    let image = match block.get("type").and_then(Value::as_str)? {
        "image" => true,
        "document" => false,
        _ => return None,
    };
    let source = block.get("source")?;
    if source.get("type").and_then(Value::as_str) != Some("file") {
        return None;
    }
    Some((source.get("file_id").and_then(Value::as_str)?, image))
}

/// Replaces every file-sourced block of `messages` by its resolved form.
pub(crate) async fn resolve<S: Store>(
    store: &S,
    blobs: Option<&dyn BlobStore>,
    workspace: &WorkspaceId,
    messages: &mut [Arc<Message>],
    resolved: &mut Resolved,
) {
    for message in messages.iter_mut() {
        // Shared messages are copied only when they hold a file-sourced block.
        let sourced = |p: &Part| matches!(p, Part::Block(b) if file_source(b).is_some());
        if !message.parts().iter().any(sourced) {
            continue;
        }
        for part in Arc::make_mut(message).parts_mut().iter_mut() {
            let Part::Block(block) = part else { continue };
            let Some((file_id, image)) = file_source(block) else {
                continue;
            };
            let key = format!("{file_id}:{image}");
            if !resolved.contains_key(&key) {
                let value = match load(store, blobs, workspace, file_id, image).await {
                    Ok(source) => with_source(block, source),
                    Err(why) => {
                        tracing::warn!(file = file_id, reason = %why, "a file block was not resolved");
                        json!({"type": "text", "text": format!(
                            "[the {} {file_id} could not be given to the model: {why}]",
                            if image { "image" } else { "document" })})
                    }
                };
                resolved.insert(key.clone(), value);
            }
            if let Some(value) = resolved.get(&key) {
                *part = if value.get("type").and_then(Value::as_str) == Some("text") {
                    Part::Text(
                        value
                            .get("text")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                    )
                } else {
                    Part::Block(value.clone())
                };
            }
        }
    }
}

/// The text of file `id` (a `file` outcome rubric): a `text/*` file of valid UTF-8 in the
/// session's workspace, read like a document block's.
pub(crate) async fn text<S: Store>(
    store: &S,
    blobs: Option<&dyn BlobStore>,
    workspace: &WorkspaceId,
    id: &str,
) -> Result<String, String> {
    let source = load(store, blobs, workspace, id, false).await?;
    match (
        source.get("type").and_then(Value::as_str),
        source.get("data"),
    ) {
        (Some("text"), Some(Value::String(text))) => Ok(text.clone()),
        _ => Err("it is not a text file".into()),
    }
}

/// `block` with its source replaced (title and context kept).
fn with_source(block: &Value, source: Value) -> Value {
    let mut block = block.clone();
    block["source"] = source;
    block
}

/// Whether an image of this media type can be given to the model.
fn image_type(mime: &str) -> bool {
    matches!(
        mime,
        "image/png" | "image/jpeg" | "image/gif" | "image/webp"
    )
}

/// The base64 or text source for file `id`.
async fn load<S: Store>(
    store: &S,
    blobs: Option<&dyn BlobStore>,
    workspace: &WorkspaceId,
    id: &str,
    image: bool,
) -> Result<Value, String> {
    let records = storage::read_all(store, &StreamId::new(id))
        .await
        .map_err(|e| format!("the file cannot be read: {e}"))?;
    let found = file::load(&records).map_err(|e| format!("the file cannot be read: {e}"))?;
    let Some(found) = found.filter(|f| &f.workspace == workspace) else {
        return Err("no such file".into());
    };
    if found.is_expired(Timestamp::now()) {
        return Err("the file has expired".into());
    }
    let mime = found.metadata.mime_type.as_str();
    let size = found.metadata.size_bytes;
    let text = mime.starts_with("text/");
    let (kind_ok, max) = if image {
        (image_type(mime), IMAGE_BASE64_BYTES / 4 * 3)
    } else {
        (mime == "application/pdf" || text, PDF_BYTES)
    };
    if !kind_ok {
        return Err(format!("its media type {mime} is not supported here"));
    }
    if size > max {
        return Err(format!("it is {size} bytes, more than the {max} allowed"));
    }
    let blobs = blobs.ok_or("this server has no file store for the harness")?;
    let bytes = read(blobs, id, max).await?;
    if text {
        let text = String::from_utf8(bytes).map_err(|_| "it is not valid UTF-8 text")?;
        return Ok(json!({"type": "text", "media_type": "text/plain", "data": text}));
    }
    use base64::Engine as _;
    let data = base64::engine::general_purpose::STANDARD.encode(bytes);
    Ok(json!({"type": "base64", "media_type": mime, "data": data}))
}

/// The bytes of blob `id` (at most `max`), through a private temporary file.
async fn read(blobs: &dyn BlobStore, id: &str, max: u64) -> Result<Vec<u8>, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("no temporary directory: {e}"))?;
    let path = dir.path().join("blob");
    match blobs.read_into(id, &path, 0o600).await {
        Ok(true) => {}
        Ok(false) => return Err("its bytes are missing".into()),
        Err(e) => return Err(format!("its bytes cannot be read: {e}")),
    }
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| format!("its bytes cannot be read: {e}"))?;
    if bytes.len() as u64 > max {
        return Err(format!("it is more than the {max} bytes allowed"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_sources_are_found() {
        let image = json!({"type": "image", "source": {"type": "file", "file_id": "file_1"}});
        assert_eq!(file_source(&image), Some(("file_1", true)));
        let doc = json!({"type": "document", "title": "t",
                         "source": {"type": "file", "file_id": "file_2"}});
        assert_eq!(file_source(&doc), Some(("file_2", false)));
        let inline = json!({"type": "image", "source": {"type": "base64", "data": ""}});
        assert_eq!(file_source(&inline), None);
        let resolved = with_source(&doc, json!({"type": "base64"}));
        assert_eq!(resolved["title"], "t");
        assert_eq!(resolved["source"]["type"], "base64");
    }
}
