//! File and skill bytes. The store holds file *metadata* (catalog + object log); the bytes live
//! here, chosen by `serve --blob-store`: in a directory (`--blob-dir`, default
//! `<data-dir>/files`, one file per blob; several nodes may share it), in an S3-compatible bucket
//! ([`s3`]), or in memory for `--storage memory`.
//!
//! Bytes stream both ways in bounded buffers: a [`BlobWriter`] takes an upload chunk by chunk
//! (on disk into `<id>.tmp`, mode 0600, fsynced, renamed, directory fsynced; a writer dropped
//! before [`BlobWriter::commit`] removes its temporary file), and a [`Blob`] is read back as a
//! stream of at most [`READ_CHUNK`] bytes at a time. In memory a blob is a list of shared chunks
//! that every download streams without copying. In a bucket an upload is sent a part at a time
//! and only a completed upload is visible (see [`s3`]).

pub mod s3;

use std::collections::HashMap;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::stream::{BoxStream, StreamExt};
use tokio::io::AsyncWriteExt;

/// How many bytes a download reads from disk at a time.
pub const READ_CHUNK: usize = 64 * 1024;
/// The size of the chunks an in-memory blob is kept in.
const MEMORY_CHUNK: usize = 1024 * 1024;

type MemoryMap = Arc<Mutex<HashMap<String, Arc<[Bytes]>>>>;

/// Where file bytes live.
#[derive(Clone, Debug)]
pub enum Blobs {
    /// In process memory.
    Memory(MemoryMap),
    /// One file per blob in this directory.
    Dir(PathBuf),
    /// One object per blob in a bucket.
    S3(Arc<dyn object_store::ObjectStore>),
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

/// Creates the blob directory (0700) if missing.
async fn create_dir(dir: &Path) -> std::io::Result<()> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    })
    .await
    .map_err(std::io::Error::other)?
}

impl Blobs {
    /// An empty in-memory blob store.
    pub fn memory() -> Self {
        Self::Memory(Arc::default())
    }

    /// Starts storing a blob under `id`; nothing is visible under `id` until
    /// [`BlobWriter::commit`].
    pub async fn create(&self, id: &str) -> std::io::Result<BlobWriter> {
        valid_name(id)?;
        let sink = match self {
            Blobs::Memory(map) => Sink::Memory {
                map: map.clone(),
                chunks: Vec::new(),
                current: BytesMut::new(),
            },
            Blobs::Dir(dir) => {
                create_dir(dir).await?;
                let tmp = dir.join(format!("{id}.tmp"));
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create(true).truncate(true).mode(0o600);
                let file = tokio::fs::OpenOptions::from(options).open(&tmp).await?;
                Sink::Dir {
                    dir: dir.clone(),
                    tmp: Some(tmp),
                    file,
                }
            }
            Blobs::S3(store) => Sink::S3(s3::Upload::new(store.clone(), s3::key(id))),
        };
        Ok(BlobWriter {
            id: id.to_owned(),
            len: 0,
            sink,
        })
    }

    /// The blob under `id`, opened for reading, if any.
    pub async fn open(&self, id: &str) -> std::io::Result<Option<Blob>> {
        valid_name(id)?;
        match self {
            Blobs::Memory(map) => Ok(map
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(id)
                .cloned()
                .map(Blob::Memory)),
            Blobs::Dir(dir) => match tokio::fs::File::open(dir.join(id)).await {
                Ok(file) => {
                    let len = file.metadata().await?.len();
                    Ok(Some(Blob::File { file, len }))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            },
            Blobs::S3(store) => {
                use object_store::ObjectStoreExt;
                match store.get(&s3::key(id)).await {
                    Ok(found) => Ok(Some(Blob::Stream {
                        len: found.meta.size,
                        stream: found.into_stream().map(|r| r.map_err(Into::into)).boxed(),
                    })),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e.into()),
                }
            }
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
            Blobs::S3(store) => {
                use object_store::ObjectStoreExt;
                match store.delete(&s3::key(id)).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// Whether the backing location is usable (for `/readyz`); the error says why not.
    pub async fn ready(&self) -> std::io::Result<()> {
        match self {
            Blobs::Memory(_) => Ok(()),
            Blobs::Dir(dir) => create_dir(dir).await,
            // Listing an empty prefix fails when the bucket is missing or unreachable.
            Blobs::S3(store) => store
                .list_with_delimiter(Some(&s3::key("ready")))
                .await
                .map(drop)
                .map_err(Into::into),
        }
    }
}

impl managed_agents_harness::blobs::BlobStore for Blobs {
    fn read_into<'a>(
        &'a self,
        id: &'a str,
        dest: &'a Path,
        mode: u32,
    ) -> BoxFuture<'a, std::io::Result<bool>> {
        Box::pin(async move {
            match self.open(id).await? {
                Some(blob) => blob.copy_to(dest, mode).await.map(|_| true),
                None => Ok(false),
            }
        })
    }

    fn write_from<'a>(
        &'a self,
        id: &'a str,
        mut src: tokio::fs::File,
    ) -> BoxFuture<'a, std::io::Result<u64>> {
        Box::pin(async move {
            use tokio::io::AsyncReadExt;
            let mut writer = self.create(id).await?;
            let mut buf = vec![0u8; READ_CHUNK];
            loop {
                let n = src.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                writer.write(&buf[..n]).await?;
            }
            let len = writer.len();
            writer.commit().await?;
            Ok(len)
        })
    }
}

enum Sink {
    Memory {
        map: MemoryMap,
        chunks: Vec<Bytes>,
        current: BytesMut,
    },
    Dir {
        dir: PathBuf,
        /// The temporary file, until renamed.
        tmp: Option<PathBuf>,
        file: tokio::fs::File,
    },
    S3(s3::Upload),
}

/// A blob being written; see [`Blobs::create`].
pub struct BlobWriter {
    id: String,
    len: u64,
    sink: Sink,
}

impl BlobWriter {
    /// Appends `chunk`.
    pub async fn write(&mut self, mut chunk: &[u8]) -> std::io::Result<()> {
        self.len += chunk.len() as u64;
        match &mut self.sink {
            Sink::Memory {
                chunks, current, ..
            } => {
                while !chunk.is_empty() {
                    if current.capacity() == 0 {
                        current.reserve(MEMORY_CHUNK);
                    }
                    let room = MEMORY_CHUNK - current.len();
                    let (now, rest) = chunk.split_at(room.min(chunk.len()));
                    current.extend_from_slice(now);
                    chunk = rest;
                    if current.len() == MEMORY_CHUNK {
                        chunks.push(current.split().freeze());
                    }
                }
                Ok(())
            }
            Sink::Dir { file, .. } => file.write_all(chunk).await,
            Sink::S3(upload) => upload.write(chunk).await,
        }
    }

    /// The bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Makes the blob durable and visible under its id.
    pub async fn commit(mut self) -> std::io::Result<()> {
        match &mut self.sink {
            Sink::Memory {
                map,
                chunks,
                current,
            } => {
                if !current.is_empty() {
                    // A copy of the short last chunk, so it does not pin a whole chunk's buffer.
                    chunks.push(Bytes::copy_from_slice(current));
                }
                let chunks: Arc<[Bytes]> = std::mem::take(chunks).into();
                map.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(self.id.clone(), chunks);
                Ok(())
            }
            Sink::Dir { dir, tmp, file } => {
                file.flush().await?;
                file.sync_all().await?;
                let Some(from) = tmp.clone() else {
                    return Ok(());
                };
                tokio::fs::rename(&from, dir.join(&self.id)).await?;
                *tmp = None;
                // The rename is durable once the directory is.
                tokio::fs::File::open(&*dir).await?.sync_all().await
            }
            Sink::S3(upload) => upload.commit().await,
        }
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if let Sink::Dir { tmp: Some(tmp), .. } = &self.sink {
            if let Err(e) = std::fs::remove_file(tmp) {
                tracing::warn!(path = %tmp.display(), error = %e, "removing an unfinished upload");
            }
        }
    }
}

/// A stored blob, ready to stream.
pub enum Blob {
    /// Shared in-memory chunks.
    Memory(Arc<[Bytes]>),
    /// An open file.
    File {
        /// The file, at its start.
        file: tokio::fs::File,
        /// Its length.
        len: u64,
    },
    /// An object's body, as it arrives.
    Stream {
        /// Its length.
        len: u64,
        /// The bytes.
        stream: BoxStream<'static, std::io::Result<Bytes>>,
    },
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            Blob::Memory(_) => "memory",
            Blob::File { .. } => "file",
            Blob::Stream { .. } => "stream",
        };
        f.debug_struct("Blob")
            .field("kind", &kind)
            .field("len", &self.len())
            .finish()
    }
}

impl Blob {
    /// The length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Blob::Memory(chunks) => chunks.iter().map(|c| c.len() as u64).sum(),
            Blob::File { len, .. } | Blob::Stream { len, .. } => *len,
        }
    }

    /// Whether the blob is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A response body streaming the bytes: [`READ_CHUNK`] bytes at a time from disk, or the
    /// shared chunks themselves from memory.
    pub fn into_body(self) -> Body {
        Body::from_stream(self.into_stream())
    }

    /// The bytes as a stream of chunks (see [`Blob::into_body`]).
    pub fn into_stream(self) -> BoxStream<'static, std::io::Result<Bytes>> {
        match self {
            Blob::Memory(chunks) => {
                let chunks: Vec<Result<Bytes, std::io::Error>> =
                    chunks.iter().cloned().map(Ok).collect();
                futures::stream::iter(chunks).boxed()
            }
            Blob::File { file, .. } => {
                tokio_util::io::ReaderStream::with_capacity(file, READ_CHUNK).boxed()
            }
            Blob::Stream { stream, .. } => stream,
        }
    }

    /// Copies the bytes into `dest` (created or truncated with `mode`) and syncs it.
    pub async fn copy_to(self, dest: &Path, mode: u32) -> std::io::Result<u64> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true).mode(mode);
        let mut out = tokio::fs::OpenOptions::from(options).open(dest).await?;
        // The server's umask (077) narrows `mode`: set it exactly.
        out.set_permissions(std::fs::Permissions::from_mode(mode))
            .await?;
        let mut stream = self.into_stream();
        let mut len = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            len += chunk.len() as u64;
            out.write_all(&chunk).await?;
        }
        out.flush().await?;
        out.sync_all().await?;
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn round_trip(blobs: &Blobs) {
        round_trip_of(blobs, 3 * MEMORY_CHUNK + 17).await;
    }

    async fn round_trip_of(blobs: &Blobs, size: usize) {
        let mut writer = blobs.create("file_1").await.expect("create");
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        for part in data.chunks(100_003) {
            writer.write(part).await.expect("write");
        }
        assert_eq!(writer.len(), data.len() as u64);
        assert!(blobs.open("file_1").await.expect("open").is_none());
        writer.commit().await.expect("commit");
        let blob = blobs.open("file_1").await.expect("open").expect("stored");
        assert_eq!(blob.len(), data.len() as u64);
        let body = blob.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(body.as_ref(), data.as_slice());
        blobs.delete("file_1").await.expect("delete");
        assert!(blobs.open("file_1").await.expect("open").is_none());
    }

    #[tokio::test]
    async fn memory_blobs_round_trip() {
        round_trip(&Blobs::memory()).await;
    }

    #[tokio::test]
    async fn dir_blobs_round_trip_and_drop_unfinished_uploads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = Blobs::Dir(dir.path().join("files"));
        round_trip(&blobs).await;
        let mut writer = blobs.create("file_2").await.expect("create");
        writer.write(b"partial").await.expect("write");
        assert!(dir.path().join("files/file_2.tmp").exists());
        drop(writer);
        assert!(!dir.path().join("files/file_2.tmp").exists());
        assert!(blobs.open("file_2").await.expect("open").is_none());
    }

    #[tokio::test]
    async fn bucket_blobs_round_trip_in_parts_and_abort_unfinished_uploads() {
        use object_store::ObjectStore;
        let bucket = Arc::new(object_store::memory::InMemory::new());
        let blobs = Blobs::S3(bucket.clone());
        // One PUT, then a multipart upload of two full parts and a short last one.
        round_trip(&blobs).await;
        round_trip_of(&blobs, 2 * s3::PART + 4321).await;
        blobs.ready().await.expect("ready");
        let mut writer = blobs.create("file_2").await.expect("create");
        writer
            .write(&vec![7u8; s3::PART + 1])
            .await
            .expect("write a part");
        drop(writer);
        assert!(blobs.open("file_2").await.expect("open").is_none());
        let listed = bucket.list_with_delimiter(None).await.expect("list");
        assert!(listed.objects.is_empty(), "{:?}", listed.objects);
        blobs.delete("file_2").await.expect("deleting nothing");
    }
}
