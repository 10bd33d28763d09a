//! The bytes of uploaded files and skills, as the harness needs them: [`BlobStore`] copies a
//! blob into a host file (file resources and skills materialized for a sandbox) and stores a
//! host file as a new blob (session outputs). The server implements it over its own blob
//! store, so the harness never calls the HTTP API for bytes (invariant 9).

use std::fmt::Debug;
use std::path::Path;

use futures::future::BoxFuture;

/// Where file and skill bytes live.
pub trait BlobStore: Debug + Send + Sync + 'static {
    /// Writes blob `id` into `dest` (created or truncated, permissions exactly `mode`).
    /// `Ok(false)`: there is no such blob.
    fn read_into<'a>(
        &'a self,
        id: &'a str,
        dest: &'a Path,
        mode: u32,
    ) -> BoxFuture<'a, std::io::Result<bool>>;

    /// Stores the bytes of `src` (read to its end) as blob `id`; returns their length.
    fn write_from<'a>(
        &'a self,
        id: &'a str,
        src: tokio::fs::File,
    ) -> BoxFuture<'a, std::io::Result<u64>>;
}
