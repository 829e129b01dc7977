//! Where checkpoints and the offset log live: a directory on local disk, object storage (in
//! the connectors crate), or memory (a run without `checkpoint.path`, so the supervisor can
//! still restart failed actors from the last epoch).
//!
//! Names are `/`-separated paths relative to the store's root. `put` is atomic: a reader sees
//! the old object or the new one, never half of one.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use trendflow_core::BoxFuture;
use trendflow_core::failpoint;

pub use trendflow_core::checkpoint_store::{CheckpointStore, StoreResult};

/// Checkpoints in memory: they survive actor restarts, not the process.
#[derive(Default, Clone)]
pub struct MemoryStore {
    objects: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl CheckpointStore for MemoryStore {
    fn put<'a>(&'a self, name: &'a str, data: &'a [u8]) -> BoxFuture<'a, StoreResult<()>> {
        self.objects
            .lock()
            .unwrap()
            .insert(name.to_string(), data.to_vec());
        Box::pin(async { Ok(()) })
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>> {
        let v = self.objects.lock().unwrap().get(name).cloned();
        Box::pin(async move { Ok(v) })
    }

    fn list<'a>(&'a self, dir: &'a str) -> BoxFuture<'a, StoreResult<Vec<String>>> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        let v = self
            .objects
            .lock()
            .unwrap()
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter(|rest| !rest.contains('/'))
            .map(String::from)
            .collect();
        Box::pin(async move { Ok(v) })
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        self.objects.lock().unwrap().remove(name);
        Box::pin(async { Ok(()) })
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

/// Checkpoints in a local directory. Each `put` writes a temporary file, fsyncs it, renames
/// it over the target and fsyncs the directory, so after a crash at any point the target is
/// either the old complete file or the new complete file.
pub struct LocalDirStore {
    root: PathBuf,
}

impl LocalDirStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalDirStore { root: root.into() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn put_sync(&self, name: &str, data: &[u8]) -> std::io::Result<()> {
        let target = self.path(name);
        let dir = target.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&dir)?;
        let file_name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{file_name}.tmp"));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
        }
        failpoint::check("put-after-temp-write").map_err(std::io::Error::other)?;
        failpoint::check("put-before-rename").map_err(std::io::Error::other)?;
        std::fs::rename(&tmp, &target)?;
        failpoint::check("put-before-dir-fsync").map_err(std::io::Error::other)?;
        sync_dir(&dir)
    }
}

/// Makes a rename or removal in `dir` durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl CheckpointStore for LocalDirStore {
    fn put<'a>(&'a self, name: &'a str, data: &'a [u8]) -> BoxFuture<'a, StoreResult<()>> {
        let r = self
            .put_sync(name, data)
            .map_err(|e| format!("writing {}: {e}", self.path(name).display()));
        if r.is_err() {
            // Leave no temporary file behind (a full disk, for instance).
            let target = self.path(name);
            if let (Some(dir), Some(n)) = (target.parent(), target.file_name()) {
                let _ = std::fs::remove_file(dir.join(format!(".{}.tmp", n.to_string_lossy())));
            }
        }
        Box::pin(async move { r })
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>> {
        let r = match std::fs::read(self.path(name)) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("reading {}: {e}", self.path(name).display())),
        };
        Box::pin(async move { r })
    }

    fn list<'a>(&'a self, dir: &'a str) -> BoxFuture<'a, StoreResult<Vec<String>>> {
        let path = self.path(dir);
        let r = match std::fs::read_dir(&path) {
            Ok(entries) => {
                let mut names: Vec<String> = entries
                    .filter_map(|e| e.ok())
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.'))
                    .collect();
                names.sort();
                Ok(names)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(format!("listing {}: {e}", path.display())),
        };
        Box::pin(async move { r })
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        let r = match std::fs::remove_file(self.path(name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("removing {}: {e}", self.path(name).display())),
        };
        Box::pin(async move { r })
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }
}
