//! File bytes in an S3-compatible bucket (`serve --blob-store s3`), through the `object_store`
//! crate: one object per blob, keyed by its id.
//!
//! An upload is buffered a part at a time ([`PART`] bytes): a blob smaller than a part is one
//! `PUT`; a larger one is a multipart upload whose parts are sent as they fill, so a writer holds
//! at most one part in memory. Nothing is visible under the key until the upload completes (S3
//! makes an object visible atomically); a writer dropped before it commits aborts its multipart
//! upload. Downloads stream the object's body.
//!
//! Requests go through the workspace's reqwest 0.13 with the server's rustls configuration
//! (ring, the system's CA bundle); credentials come from `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, or, without them, the instance's role.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use object_store::aws::AmazonS3Builder;
use object_store::client::{ClientOptions, HttpClient, HttpConnector};
use object_store::path::Path as Key;
use object_store::{MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload};

/// The size of each part of a multipart upload (S3's minimum for every part but the last).
pub const PART: usize = 5 * 1024 * 1024;

/// Transient failures (5xx, a dropped connection) are retried with backoff, for at most this
/// long, so a failing bucket makes a request (or `/readyz`) fail in bounded time.
const RETRY: object_store::RetryConfig = object_store::RetryConfig {
    backoff: object_store::BackoffConfig {
        init_backoff: std::time::Duration::from_millis(100),
        max_backoff: std::time::Duration::from_secs(5),
        base: 2.0,
    },
    max_retries: 4,
    retry_timeout: std::time::Duration::from_secs(30),
};

/// Where the bucket is: the validated `--s3-*` flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Settings {
    /// `--s3-bucket`.
    pub bucket: String,
    /// `--s3-endpoint`: an S3-compatible server's URL (`None`: AWS).
    pub endpoint: Option<String>,
    /// `--s3-region`.
    pub region: String,
    /// `--s3-allow-http`: plain HTTP to the endpoint.
    pub allow_http: bool,
}

/// The bucket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The CA bundle could not be read.
    #[error("the system CA bundle: {0}")]
    Roots(String),
    /// The client could not be built.
    #[error("{0}")]
    Client(#[from] object_store::Error),
}

/// Opens the bucket `settings` name (no request is made: `/readyz` checks it).
pub fn open(settings: &S3Settings) -> Result<Arc<dyn ObjectStore>, Error> {
    use managed_agents_harness::door::{ca, mitm::Upstream};
    let roots = Upstream::new(std::path::Path::new(ca::SYSTEM_BUNDLE), &[])
        .map_err(|e| Error::Roots(e.to_string()))?;
    let connector = Connector {
        tls: roots.client_config().as_ref().clone(),
        https_only: !settings.allow_http,
    };
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&settings.bucket)
        .with_region(&settings.region)
        .with_allow_http(settings.allow_http)
        .with_retry(RETRY)
        .with_http_connector(connector);
    if let Some(endpoint) = &settings.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    let env = |var: &str| std::env::var(var).ok().filter(|v| !v.is_empty());
    if let Some(id) = env("AWS_ACCESS_KEY_ID") {
        builder = builder.with_access_key_id(id);
    }
    if let Some(secret) = env("AWS_SECRET_ACCESS_KEY") {
        builder = builder.with_secret_access_key(secret);
    }
    if let Some(token) = env("AWS_SESSION_TOKEN") {
        builder = builder.with_token(token);
    }
    Ok(Arc::new(builder.build()?))
}

/// Builds the HTTP client `object_store` sends its requests with.
#[derive(Debug)]
struct Connector {
    tls: rustls::ClientConfig,
    https_only: bool,
}

impl HttpConnector for Connector {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        let client = mcp_http::Client::builder()
            .use_preconfigured_tls(self.tls.clone())
            .https_only(self.https_only)
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| object_store::Error::Generic {
                store: "S3",
                source: Box::new(e),
            })?;
        Ok(HttpClient::new(client))
    }
}

/// The object key of blob `id`.
pub fn key(id: &str) -> Key {
    Key::from(id)
}

/// An upload in progress.
pub struct Upload {
    store: Arc<dyn ObjectStore>,
    key: Key,
    /// Bytes not yet sent (less than a part).
    buffer: BytesMut,
    /// The multipart upload, once the first part is full.
    multipart: Option<Box<dyn MultipartUpload>>,
}

impl Upload {
    /// Starts an upload to `key`.
    pub fn new(store: Arc<dyn ObjectStore>, key: Key) -> Self {
        Self {
            store,
            key,
            buffer: BytesMut::new(),
            multipart: None,
        }
    }

    /// Appends `chunk`, sending every part that fills.
    pub async fn write(&mut self, mut chunk: &[u8]) -> std::io::Result<()> {
        while !chunk.is_empty() {
            if self.buffer.capacity() == 0 {
                self.buffer.reserve(PART);
            }
            let room = PART - self.buffer.len();
            let (now, rest) = chunk.split_at(room.min(chunk.len()));
            self.buffer.extend_from_slice(now);
            chunk = rest;
            if self.buffer.len() == PART {
                let part = self.buffer.split().freeze();
                self.send(part).await?;
            }
        }
        Ok(())
    }

    async fn send(&mut self, part: Bytes) -> std::io::Result<()> {
        let upload = match &mut self.multipart {
            Some(upload) => upload,
            None => self
                .multipart
                .insert(self.store.put_multipart(&self.key).await?),
        };
        upload.put_part(PutPayload::from(part)).await?;
        Ok(())
    }

    /// Sends the rest and makes the object visible.
    pub async fn commit(&mut self) -> std::io::Result<()> {
        let rest = self.buffer.split().freeze();
        match self.multipart.as_mut() {
            None => {
                self.store.put(&self.key, PutPayload::from(rest)).await?;
            }
            Some(upload) => {
                if !rest.is_empty() {
                    upload.put_part(PutPayload::from(rest)).await?;
                }
                upload.complete().await?;
                self.multipart = None;
            }
        }
        Ok(())
    }
}

impl Drop for Upload {
    /// An unfinished multipart upload is aborted, so its parts do not linger in the bucket.
    fn drop(&mut self) {
        let Some(mut upload) = self.multipart.take() else {
            return;
        };
        let key = self.key.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(e) = upload.abort().await {
                        tracing::warn!(key = %key, error = %e, "aborting an unfinished upload");
                    }
                });
            }
            Err(_) => tracing::warn!(key = %key, "an unfinished upload outlived the runtime"),
        }
    }
}
