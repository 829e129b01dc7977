//! Where a component's files are: a local directory or an `s3://bucket/prefix` location, opened
//! as an `object_store` store, with the S3 settings a MinIO-based datalab or AWS provides.
//!
//! Settings come from the pipeline's `s3:` section first, then from the standard variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` /
//! `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL` / `AWS_ENDPOINT`, and `AWS_S3_ENDPOINT`, which
//! Onyxia/MinIO datalabs set to a bare host name). Secrets are never printed: the `Debug` form
//! and every message show them as `***`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};
use trendflow_core::RawBatch;

use crate::line_pieces::{LinePieces, LocalLines};

/// A local directory or a prefix of an S3 bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl Location {
    /// `s3://bucket/prefix` (or `s3a://`, as Spark writes it) or a local path.
    pub fn parse(text: &str) -> Result<Location, String> {
        let rest = text
            .strip_prefix("s3://")
            .or_else(|| text.strip_prefix("s3a://"));
        let Some(rest) = rest else {
            if text.contains("://") {
                return Err(format!(
                    "`{text}`: only local paths and s3:// locations are supported"
                ));
            }
            return Ok(Location::Local(PathBuf::from(text)));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("`{text}`: the bucket name is missing"));
        }
        Ok(Location::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        })
    }

    pub fn is_s3(&self) -> bool {
        matches!(self, Location::S3 { .. })
    }

    /// The location as the user wrote it, for messages.
    pub fn describe(&self) -> String {
        match self {
            Location::Local(p) => p.display().to_string(),
            Location::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            Location::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }

    /// The same location one level down.
    pub fn join(&self, name: &str) -> Location {
        match self {
            Location::Local(p) => Location::Local(p.join(name)),
            Location::S3 { bucket, prefix } => Location::S3 {
                bucket: bucket.clone(),
                prefix: if prefix.is_empty() {
                    name.to_string()
                } else {
                    format!("{prefix}/{name}")
                },
            },
        }
    }
}

/// A secret value: shown as `***`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// S3 settings of a pipeline; `None` fields come from the environment or S3's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Options {
    /// `https://minio.example.org` or `http://127.0.0.1:9000`; a bare host means https.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
    /// `bucket` in the path (`endpoint/bucket/key`), as MinIO expects; the default whenever an
    /// endpoint is set. `false`: virtual-hosted style (`bucket.endpoint/key`), AWS's default.
    pub path_style: Option<bool>,
    /// Retries of a failed request (HTTP 5xx, SlowDown, connection reset, timeout).
    pub max_retries: usize,
    /// First wait before a retry; doubled each time (with random jitter) up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// A request (with its retries) fails after this long.
    pub retry_timeout: Duration,
    /// One attempt fails after this long without completing.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            path_style: None,
            max_retries: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(15),
            retry_timeout: Duration::from_secs(180),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A bare host (`minio.lab.example.org`, as `AWS_S3_ENDPOINT` often is) means https.
fn with_scheme(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.trim_end_matches('/').to_string()
    } else {
        format!("https://{}", endpoint.trim_end_matches('/'))
    }
}

impl S3Options {
    /// The endpoint in force: the `s3:` section's, else `AWS_ENDPOINT_URL`, `AWS_ENDPOINT` or
    /// `AWS_S3_ENDPOINT`; `None` means AWS itself.
    pub fn effective_endpoint(&self) -> Option<String> {
        self.endpoint
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .or_else(|| env("AWS_ENDPOINT"))
            .or_else(|| env("AWS_S3_ENDPOINT"))
            .map(|e| with_scheme(&e))
    }

    /// An S3 store for `bucket`.
    pub fn build(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>, String> {
        let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
        let endpoint = self.effective_endpoint();
        if let Some(e) = &endpoint {
            b = b.with_endpoint(e.clone());
        }
        let region = self
            .region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into());
        b = b.with_region(region);
        if let Some(k) = &self.access_key_id {
            b = b.with_access_key_id(k.clone());
        }
        if let Some(s) = &self.secret_access_key {
            b = b.with_secret_access_key(s.0.clone());
        }
        if let Some(t) = self
            .session_token
            .as_ref()
            .map(|t| t.0.clone())
            .or_else(|| env("AWS_SESSION_TOKEN"))
        {
            b = b.with_token(t);
        }
        let path_style = self.path_style.unwrap_or(endpoint.is_some());
        b = b.with_virtual_hosted_style_request(!path_style);
        b = b.with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: self.initial_backoff,
                max_backoff: self.max_backoff,
                base: 2.0,
            },
            max_retries: self.max_retries,
            retry_timeout: self.retry_timeout,
        });
        b = b.with_client_options(
            ClientOptions::new()
                .with_timeout(self.request_timeout)
                .with_connect_timeout(self.connect_timeout)
                .with_allow_http(
                    endpoint
                        .as_deref()
                        .is_some_and(|e| e.starts_with("http://")),
                ),
        );
        let store = b
            .build()
            .map_err(|e| format!("s3://{bucket}: {}", redact(&e.to_string(), self)))?;
        Ok(Arc::new(store))
    }
}

/// `text` with every secret of `options` (and of the environment) replaced by `***`.
pub fn redact(text: &str, options: &S3Options) -> String {
    let mut out = text.to_string();
    let secrets = [
        options.secret_access_key.as_ref().map(|s| s.0.clone()),
        options.session_token.as_ref().map(|s| s.0.clone()),
        env("AWS_SECRET_ACCESS_KEY"),
        env("AWS_SESSION_TOKEN"),
    ];
    for s in secrets.into_iter().flatten() {
        if s.len() >= 4 {
            out = out.replace(&s, "***");
        }
    }
    out
}

/// A location opened: the store, and the prefix inside it where the location starts.
#[derive(Clone)]
pub struct OpenedLocation {
    pub store: Arc<dyn ObjectStore>,
    /// Empty for a local directory (the store is rooted at it).
    pub prefix: StorePath,
    pub location: Location,
    /// The store itself when it is a local directory, whose files [`Self::open_lines`] reads
    /// directly.
    pub local: Option<Arc<LocalFileSystem>>,
}

impl std::fmt::Debug for OpenedLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OpenedLocation({})", self.location.describe())
    }
}

impl OpenedLocation {
    /// Opens `location`; a local directory is created if missing.
    pub fn open(location: &Location, s3: &S3Options) -> Result<OpenedLocation, String> {
        match location {
            Location::Local(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                let store = Arc::new(
                    LocalFileSystem::new_with_prefix(dir)
                        .map_err(|e| format!("{}: {e}", dir.display()))?,
                );
                Ok(OpenedLocation {
                    store: store.clone(),
                    prefix: StorePath::default(),
                    location: location.clone(),
                    local: Some(store),
                })
            }
            Location::S3 { bucket, prefix } => Ok(OpenedLocation {
                store: s3.build(bucket)?,
                prefix: StorePath::from(prefix.as_str()),
                location: location.clone(),
                local: None,
            }),
        }
    }

    /// The object at `path`, to be read as pieces of whole lines of about `piece_bytes` (see
    /// [`crate::line_pieces`]), each batch named after `origin`. A local file is read straight
    /// into the pieces, on a blocking thread; an S3 object as its body streams in.
    pub async fn open_lines(
        &self,
        path: &StorePath,
        origin: Arc<str>,
        piece_bytes: usize,
    ) -> Result<Lines, String> {
        if let Some(local) = &self.local {
            let file = local.path_to_filesystem(path).map_err(|e| e.to_string())?;
            return Ok(Lines::Local {
                file: Some(LocalLines::new(file, origin, piece_bytes)),
                ready: std::collections::VecDeque::new(),
            });
        }
        let object = self.store.get(path).await.map_err(|e| e.to_string())?;
        let mut pieces = LinePieces::new(origin, piece_bytes);
        pieces.expect(object.meta.size as usize);
        Ok(Lines::Remote {
            body: object.into_stream(),
            pieces,
            done: false,
        })
    }

    /// The store path of `relative` (a key below the location).
    pub fn path(&self, relative: &str) -> StorePath {
        let relative = relative.trim_matches('/');
        if self.prefix.as_ref().is_empty() {
            StorePath::from(relative)
        } else if relative.is_empty() {
            self.prefix.clone()
        } else {
            StorePath::from(format!("{}/{relative}", self.prefix))
        }
    }

    /// `path` relative to the location (`None` if it is not below it).
    pub fn relative<'a>(&self, path: &'a StorePath) -> Option<&'a str> {
        let p = path.as_ref();
        if self.prefix.as_ref().is_empty() {
            return Some(p);
        }
        p.strip_prefix(self.prefix.as_ref())?.strip_prefix('/')
    }
}

/// Bytes of a local file read in one call on a blocking thread, in pieces: a file of tweets as
/// they land (~3.4 MB) in one call, as when files were read whole. A trip to the blocking
/// thread for each 1 MB piece, or a reader handing pieces over through a channel, nearly
/// doubled the run's thread switches and made Q2's data epoch ~6% longer (issue 5).
const READ_CALL_BYTES: usize = 4 << 20;

/// A file or object being read as pieces of whole lines ([`OpenedLocation::open_lines`]).
pub enum Lines {
    /// Read on a blocking thread, [`READ_CALL_BYTES`] at a time: the pieces `ready`, and the
    /// file while it has more.
    Local {
        file: Option<LocalLines>,
        ready: std::collections::VecDeque<RawBatch>,
    },
    Remote {
        body: futures::stream::BoxStream<'static, object_store::Result<bytes::Bytes>>,
        pieces: LinePieces,
        done: bool,
    },
}

impl Lines {
    /// The next piece, or `None` after the last one.
    pub async fn next_piece(&mut self) -> Result<Option<RawBatch>, String> {
        match self {
            Lines::Local { file, ready } => loop {
                if let Some(piece) = ready.pop_front() {
                    return Ok(Some(piece));
                }
                let Some(mut lines) = file.take() else {
                    return Ok(None);
                };
                let (lines, read) = tokio::task::spawn_blocking(move || {
                    let mut read = Vec::new();
                    let mut bytes = 0;
                    while bytes < READ_CALL_BYTES {
                        match lines.next_piece() {
                            Ok(Some(piece)) => {
                                bytes += piece.data.len();
                                read.push(piece);
                            }
                            Ok(None) => return (None, Ok(read)),
                            Err(e) => return (None, Err(e.to_string())),
                        }
                    }
                    (Some(lines), Ok(read))
                })
                .await
                .map_err(|e| e.to_string())?;
                *file = lines;
                ready.extend(read?);
            },
            Lines::Remote { body, pieces, done } => {
                use futures::StreamExt;
                loop {
                    if let Some(piece) = pieces.take() {
                        return Ok(Some(piece));
                    }
                    if *done {
                        return Ok(pieces.finish());
                    }
                    match body.next().await {
                        Some(Ok(chunk)) => pieces.push(&chunk),
                        Some(Err(e)) => return Err(e.to_string()),
                        None => *done = true,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        assert_eq!(
            Location::parse("s3://tweets/input/").unwrap(),
            Location::S3 {
                bucket: "tweets".into(),
                prefix: "input".into()
            }
        );
        assert_eq!(
            Location::parse("s3a://b").unwrap(),
            Location::S3 {
                bucket: "b".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            Location::parse("data/in").unwrap(),
            Location::Local("data/in".into())
        );
        assert!(Location::parse("s3:///x").is_err());
        assert!(Location::parse("gs://b/x").is_err());
        assert_eq!(
            Location::parse("s3://b/x").unwrap().join("y").describe(),
            "s3://b/x/y"
        );
    }

    #[test]
    fn secrets_never_show() {
        let o = S3Options {
            secret_access_key: Some(Secret("wJalrXUtnFEMI".into())),
            session_token: Some(Secret("FwoGZXIvYXdzE".into())),
            ..Default::default()
        };
        let debug = format!("{o:?}");
        assert!(!debug.contains("wJalrXUtnFEMI") && !debug.contains("FwoGZXIvYXdzE"));
        assert_eq!(
            redact("signature for wJalrXUtnFEMI failed", &o),
            "signature for *** failed"
        );
    }

    #[test]
    fn bare_endpoints_mean_https() {
        assert_eq!(
            with_scheme("minio.lab.example.org"),
            "https://minio.lab.example.org"
        );
        assert_eq!(
            with_scheme("http://127.0.0.1:9000/"),
            "http://127.0.0.1:9000"
        );
    }

    #[test]
    fn paths_below_a_prefix() {
        let o = OpenedLocation {
            store: Arc::new(object_store::memory::InMemory::new()),
            prefix: StorePath::from("tweets/input"),
            location: Location::parse("s3://b/tweets/input").unwrap(),
            local: None,
        };
        assert_eq!(o.path("a.json").as_ref(), "tweets/input/a.json");
        let p = StorePath::from("tweets/input/x/a.json");
        assert_eq!(o.relative(&p), Some("x/a.json"));
        assert_eq!(o.relative(&StorePath::from("other/a.json")), None);
    }
}
