//! File bytes. The store holds file *metadata* (catalog + object log); the bytes live here:
//! under `<data-dir>/files/<file id>` for RocksDB (written to a temporary name, fsynced, then
//! renamed), or in memory for `--storage memory`. A future shared backend replaces this enum.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::io::AsyncWriteExt;

/// Where file bytes live.
#[derive(Clone, Debug)]
pub enum Blobs {
    /// In process memory.
    Memory(Arc<Mutex<HashMap<String, Bytes>>>),
    /// One file per blob in this directory.
    Dir(PathBuf),
}

fn valid_name(id: &str) -> Result<(), std::io::Error> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "blob ids are [A-Za-z0-9_]+",
        ));
    }
    Ok(())
}

impl Blobs {
    /// An empty in-memory blob store.
    pub fn memory() -> Self {
        Self::Memory(Arc::default())
    }

    /// Stores `bytes` durably under `id`.
    pub async fn put(&self, id: &str, bytes: Bytes) -> std::io::Result<()> {
        valid_name(id)?;
        match self {
            Blobs::Memory(map) => {
                map.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.to_owned(), bytes);
                Ok(())
            }
            Blobs::Dir(dir) => {
                tokio::fs::create_dir_all(dir).await?;
                let tmp = dir.join(format!("{id}.tmp"));
                let mut file = tokio::fs::File::create(&tmp).await?;
                file.write_all(&bytes).await?;
                file.sync_all().await?;
                drop(file);
                tokio::fs::rename(&tmp, dir.join(id)).await
            }
        }
    }

    /// The bytes under `id`, if any.
    pub async fn get(&self, id: &str) -> std::io::Result<Option<Bytes>> {
        valid_name(id)?;
        match self {
            Blobs::Memory(map) => Ok(map
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(id)
                .cloned()),
            Blobs::Dir(dir) => match tokio::fs::read(dir.join(id)).await {
                Ok(bytes) => Ok(Some(Bytes::from(bytes))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    /// Removes `id` (no error if absent).
    pub async fn delete(&self, id: &str) -> std::io::Result<()> {
        valid_name(id)?;
        match self {
            Blobs::Memory(map) => {
                map.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
                Ok(())
            }
            Blobs::Dir(dir) => match tokio::fs::remove_file(dir.join(id)).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
        }
    }

    /// Whether the backing location is usable (for `/readyz`).
    pub async fn ready(&self) -> bool {
        match self {
            Blobs::Memory(_) => true,
            Blobs::Dir(dir) => tokio::fs::create_dir_all(dir).await.is_ok(),
        }
    }
}
