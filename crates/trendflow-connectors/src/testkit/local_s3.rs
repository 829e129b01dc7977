//! A real S3 endpoint on 127.0.0.1 for tests and demos: `s3s-fs` (buckets are directories of
//! a local root, objects are files) behind `s3s`'s implementation of the S3 REST protocol,
//! with signature checking on. It runs on a thread and runtime of its own, so a plain test,
//! an async test and child processes can all use it.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

use crate::storage::{S3Options, Secret};

pub const ACCESS_KEY: &str = "trendflow-test";
pub const SECRET_KEY: &str = "trendflow-test-secret";

pub struct LocalS3 {
    root: PathBuf,
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LocalS3 {
    /// Serves the buckets under `root` (created if missing) on a free 127.0.0.1 port.
    pub fn start(root: &Path) -> Result<LocalS3, String> {
        Self::start_on(root, 0)
    }

    /// The same on a given port (0: a free one).
    pub fn start_on(root: &Path, port: u16) -> Result<LocalS3, String> {
        std::fs::create_dir_all(root).map_err(|e| format!("{}: {e}", root.display()))?;
        let fs = s3s_fs::FileSystem::new(root).map_err(|e| format!("s3s-fs: {e:?}"))?;
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .map_err(|e| format!("binding 127.0.0.1:{port}: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("listener: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let thread = std::thread::Builder::new()
            .name("local-s3".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let http = ConnBuilder::new(TokioExecutor::new());
                    loop {
                        tokio::select! {
                            accepted = listener.accept() => {
                                let Ok((socket, _)) = accepted else { continue };
                                let conn = http
                                    .serve_connection(TokioIo::new(socket), service.clone())
                                    .into_owned();
                                tokio::spawn(async move {
                                    let _ = conn.await;
                                });
                            }
                            _ = &mut stop_rx => break,
                        }
                    }
                });
                rt.shutdown_background();
            })
            .map_err(|e| format!("starting the S3 server thread: {e}"))?;
        ready_rx
            .recv()
            .map_err(|_| "the S3 server thread ended".to_string())??;
        Ok(LocalS3 {
            root: root.to_path_buf(),
            port,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket (a directory of the root).
    pub fn create_bucket(&self, name: &str) -> Result<(), String> {
        let dir = self.root.join(name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))
    }

    /// Where an object is stored on disk.
    pub fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.join(bucket).join(key)
    }

    /// Settings that reach this server.
    pub fn options(&self) -> S3Options {
        self.options_at(&self.endpoint())
    }

    /// Settings for this server's credentials at another endpoint (a proxy in front of it).
    pub fn options_at(&self, endpoint: &str) -> S3Options {
        S3Options {
            endpoint: Some(endpoint.to_string()),
            region: Some("us-east-1".into()),
            access_key_id: Some(ACCESS_KEY.into()),
            secret_access_key: Some(Secret(SECRET_KEY.into())),
            path_style: Some(true),
            ..S3Options::default()
        }
    }

    /// The same settings as YAML lines of a pipeline's `s3:` section.
    pub fn yaml(&self, endpoint: &str) -> String {
        format!(
            "s3:\n  endpoint: {endpoint}\n  region: us-east-1\n  access_key_id: {ACCESS_KEY}\n  secret_access_key: {SECRET_KEY}\n"
        )
    }
}

impl Drop for LocalS3 {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
