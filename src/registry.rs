//! Where running pipelines announce themselves, so `trendflow sql`, `ps` and `stop` find them
//! without being told a port: one small JSON file per process, removed when it exits; and a
//! history entry per pipeline name pointing at its event log, for `ps --all`.

use std::path::{Path, PathBuf};

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

/// The default event log directory of a pipeline without a checkpoint directory.
pub fn default_event_log(name: &str) -> PathBuf {
    dir().join("events").join(sanitize(name))
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Removes the registration when dropped.
pub struct Registration(PathBuf);

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// What a running pipeline announces.
pub struct Announce<'a> {
    pub name: &'a str,
    pub id: &'a str,
    pub run_id: &'a str,
    pub address: Option<String>,
    pub tables: Vec<String>,
    pub event_log: &'a Path,
}

pub fn register(a: &Announce<'_>) -> Option<Registration> {
    let d = dir();
    std::fs::create_dir_all(d.join("history")).ok()?;
    let pid = std::process::id();
    let path = d.join(format!("{pid}.json"));
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let doc = serde_json::json!({
        "name": a.name, "id": a.id, "runId": a.run_id, "pid": pid,
        "address": a.address, "tables": a.tables, "started_ms": started,
        "event_log": a.event_log,
    });
    std::fs::write(&path, doc.to_string()).ok()?;
    let history = d.join("history").join(format!("{}.json", sanitize(a.name)));
    let _ = std::fs::write(history, doc.to_string());
    Some(Registration(path))
}

/// A pipeline, as registered.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub id: String,
    pub run_id: String,
    pub pid: u64,
    pub address: Option<String>,
    pub tables: Vec<String>,
    pub event_log: Option<PathBuf>,
}

fn entry(v: &serde_json::Value) -> Entry {
    Entry {
        name: v["name"].as_str().unwrap_or("").to_string(),
        id: v["id"].as_str().unwrap_or("").to_string(),
        run_id: v["runId"].as_str().unwrap_or("").to_string(),
        pid: v["pid"].as_u64().unwrap_or(0),
        address: v["address"].as_str().map(String::from),
        tables: v["tables"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        event_log: v["event_log"].as_str().map(PathBuf::from),
    }
}

/// Is the process running? An exited process its parent has not reaped yet (a zombie) is
/// not: it still has a /proc entry, in state Z.
fn alive(pid: u64) -> bool {
    if pid == 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// The HTTP endpoint (host:port) of a running pipeline: `addr` when given, else the one of
/// pipeline `name`, else the only running one.
pub fn endpoint(name: Option<&str>, addr: Option<&str>) -> Result<String, String> {
    if let Some(a) = addr {
        return Ok(a.to_string());
    }
    let running: Vec<_> = running()
        .into_iter()
        .filter(|e| name.is_none_or(|n| e.name == n))
        .filter(|e| e.address.is_some())
        .collect();
    match running.as_slice() {
        [one] => Ok(one.address.clone().expect("filtered")),
        [] => Err(match name {
            Some(n) => format!("no running pipeline `{n}` with an HTTP endpoint"),
            None => "no running pipeline with an HTTP endpoint (start one with `trendflow run`, or give --addr)".into(),
        }),
        many => Err(format!(
            "several pipelines run ({}): name one",
            many.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Registered pipelines whose process is still alive.
pub fn running() -> Vec<Entry> {
    let Ok(rd) = std::fs::read_dir(dir()) else {
        return vec![];
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        if e.path().extension().is_none_or(|x| x != "json") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let en = entry(&v);
        if !alive(en.pid) {
            let _ = std::fs::remove_file(e.path());
            continue;
        }
        out.push(en);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The last run of every pipeline name ever registered here.
pub fn history() -> Vec<Entry> {
    let Ok(rd) = std::fs::read_dir(dir().join("history")) else {
        return vec![];
    };
    let mut out: Vec<Entry> = rd
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .map(|v| entry(&v))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

pub fn is_alive(e: &Entry) -> bool {
    alive(e.pid)
}
