//! Where running pipelines announce their HTTP endpoint, so `trendflow sql` finds them
//! without being told a port: one small JSON file per process, removed when it exits.

use std::net::SocketAddr;
use std::path::PathBuf;

pub fn dir() -> PathBuf {
    if let Ok(d) = std::env::var("TRENDFLOW_RUN_DIR") {
        return PathBuf::from(d);
    }
    let base = std::env::var("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|_| std::env::temp_dir());
    base.join("trendflow").join("run")
}

/// Removes the registration when dropped.
pub struct Registration(PathBuf);

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub fn register(name: &str, addr: SocketAddr, tables: Vec<String>) -> Option<Registration> {
    let d = dir();
    std::fs::create_dir_all(&d).ok()?;
    let path = d.join(format!("{}.json", std::process::id()));
    let doc = serde_json::json!({"name": name, "pid": std::process::id(), "address": addr.to_string(), "tables": tables});
    std::fs::write(&path, doc.to_string()).ok()?;
    Some(Registration(path))
}

/// A running pipeline, as registered.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub address: String,
    pub tables: Vec<String>,
}

/// Registered pipelines whose process is still alive.
pub fn running() -> Vec<Entry> {
    let Ok(rd) = std::fs::read_dir(dir()) else {
        return vec![];
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let pid = v["pid"].as_u64().unwrap_or(0);
        if pid == 0 || !PathBuf::from(format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(e.path());
            continue;
        }
        out.push(Entry {
            name: v["name"].as_str().unwrap_or("").to_string(),
            address: v["address"].as_str().unwrap_or("").to_string(),
            tables: v["tables"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}
