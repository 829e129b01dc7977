//! Spark-compatible progress reports: one document per committed epoch with the field names
//! of Spark's `StreamingQueryProgress`, kept in memory (`lastProgress`, `recentProgress`) and
//! appended to an event log (JSON lines, rotated), as Spark's event log feeds its history
//! server.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use trendflow_core::metrics::{Metrics, names};
use trendflow_runtime::EpochSummary;

/// How many progress documents `recentProgress` keeps (Spark's default is 100).
const RECENT: usize = 100;

/// A random UUID (version 4), as Spark names queries and runs.
pub fn uuid() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        b = (t ^ (u128::from(std::process::id()) << 64)).to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The query id: kept in the checkpoint directory so that it survives restarts (Spark keeps
/// it in the checkpoint's `metadata`); a new one per run without a checkpoint.
pub fn query_id(checkpoint: Option<&Path>) -> String {
    let Some(dir) = checkpoint else {
        return uuid();
    };
    let path = dir.join("metadata");
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(v) = serde_json::from_str::<Value>(&text)
        && let Some(id) = v["id"].as_str()
    {
        return id.to_string();
    }
    let id = uuid();
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::write(&path, json!({ "id": id }).to_string());
    id
}

fn iso_millis(ms: i64) -> String {
    // 2021-04-15T08:05:00.000Z, as Spark writes progress timestamps.
    let base = trendflow_core::time::format_iso_utc(ms - ms.rem_euclid(1000));
    format!("{}.{:03}Z", base.trim_end_matches('Z'), ms.rem_euclid(1000))
}

/// Appends progress documents to `events-<n>.jsonl` files in a directory, starting a new
/// file past `max_bytes` and keeping the newest `keep` files.
pub struct EventLog {
    dir: PathBuf,
    max_bytes: u64,
    keep: usize,
    current: Option<(PathBuf, std::fs::File, u64)>,
}

impl EventLog {
    pub fn new(dir: PathBuf, max_bytes: u64, keep: usize) -> Self {
        EventLog {
            dir,
            max_bytes,
            keep: keep.max(1),
            current: None,
        }
    }

    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("events-"))
            })
            .collect();
        v.sort();
        v
    }

    pub fn append(&mut self, doc: &Value) -> std::io::Result<()> {
        let line = format!("{doc}\n");
        if self
            .current
            .as_ref()
            .is_none_or(|(_, _, n)| *n + line.len() as u64 > self.max_bytes)
        {
            std::fs::create_dir_all(&self.dir)?;
            let next = Self::files(&self.dir)
                .last()
                .and_then(|p| {
                    p.file_stem()?
                        .to_string_lossy()
                        .strip_prefix("events-")?
                        .parse::<u64>()
                        .ok()
                })
                .map_or(0, |n| n + 1);
            let path = self.dir.join(format!("events-{next:08}.jsonl"));
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            self.current = Some((path, f, 0));
            let files = Self::files(&self.dir);
            for old in files.iter().take(files.len().saturating_sub(self.keep)) {
                let _ = std::fs::remove_file(old);
            }
        }
        let (_, f, n) = self.current.as_mut().unwrap();
        f.write_all(line.as_bytes())?;
        *n += line.len() as u64;
        Ok(())
    }

    /// The last document logged in `dir` (for `ps --all`).
    pub fn last(dir: &Path) -> Option<Value> {
        let file = Self::files(dir).pop()?;
        let text = std::fs::read_to_string(file).ok()?;
        serde_json::from_str(text.lines().last()?).ok()
    }
}

/// Builds the progress documents of one run.
pub struct Progress {
    pub id: String,
    pub run_id: String,
    pub name: String,
    recent: VecDeque<Value>,
    previous_start_ms: Option<i64>,
    previous: BTreeMap<(&'static str, String), i64>,
    log: Option<EventLog>,
    sinks: Vec<String>,
}

impl Progress {
    pub fn new(id: String, name: &str, sinks: Vec<String>, log: Option<EventLog>) -> Self {
        Progress {
            id,
            run_id: uuid(),
            name: name.to_string(),
            recent: VecDeque::new(),
            previous_start_ms: None,
            previous: BTreeMap::new(),
            log,
            sinks,
        }
    }

    pub fn last(&self) -> Value {
        self.recent.back().cloned().unwrap_or(Value::Null)
    }

    pub fn recent(&self) -> Value {
        Value::Array(self.recent.iter().cloned().collect())
    }

    /// The change of a metric since the previous epoch.
    fn delta(&mut self, metrics: &Metrics, name: &'static str, component: &str) -> i64 {
        let now = metrics.value(name, component);
        let before = self
            .previous
            .insert((name, component.to_string()), now)
            .unwrap_or(0);
        now - before
    }

    /// The document of a committed epoch (logged, and kept for `recentProgress`).
    pub fn on_epoch(&mut self, e: &EpochSummary, metrics: &Metrics) -> Value {
        let secs = e.duration_ms / 1000.0;
        let since_previous = self
            .previous_start_ms
            .map(|p| (e.started_ms - p) as f64 / 1000.0);
        self.previous_start_ms = Some(e.started_ms);
        let rate = |n: u64, s: Option<f64>| match s {
            Some(s) if s > 0.0 => n as f64 / s,
            _ => 0.0,
        };
        // Stateful operators are the components that report state rows.
        let mut stateful: Vec<String> = metrics
            .snapshot()
            .into_iter()
            .filter(|(k, _)| k.name == names::STATE_ROWS)
            .map(|(k, _)| k.component)
            .collect();
        stateful.sort();
        stateful.dedup();
        let state_operators: Vec<Value> = stateful
            .iter()
            .map(|c| {
                let rows = metrics.value(names::STATE_ROWS, c);
                let input = self.delta(metrics, names::RECORDS_IN, c);
                let dropped = self.delta(metrics, names::LATE_ROWS_DROPPED, c);
                json!({
                    "operatorName": c,
                    "numRowsTotal": rows,
                    "numRowsUpdated": (input - dropped).max(0),
                    "numRowsDroppedByWatermark": dropped,
                    // An estimate: 64 bytes of map entry and key per state row.
                    "memoryUsedBytes": rows * 64,
                })
            })
            .collect();
        let sources: Vec<Value> = e
            .offsets
            .iter()
            .map(|(source, offset)| {
                json!({
                    "description": format!("{source}: {offset}"),
                    "startOffset": if e.epoch == 0 { Value::Null } else { json!({ "logOffset": e.epoch - 1 }) },
                    "endOffset": { "logOffset": e.epoch },
                    "numInputRows": e.records,
                    "inputRowsPerSecond": rate(e.records, since_previous),
                    "processedRowsPerSecond": rate(e.records, Some(secs)),
                })
            })
            .collect();
        let sinks = self.sinks.clone();
        let rows_out_delta: i64 = sinks
            .iter()
            .map(|s| self.delta(metrics, names::RECORDS_IN, s))
            .sum();
        let mut doc = json!({
            "id": self.id,
            "runId": self.run_id,
            "name": self.name,
            "timestamp": iso_millis(e.started_ms),
            "batchId": e.epoch,
            "batchDuration": e.duration_ms.round() as i64,
            "numInputRows": e.records,
            "inputRowsPerSecond": rate(e.records, since_previous),
            "processedRowsPerSecond": rate(e.records, Some(secs)),
            "durationMs": {
                "getBatch": e.read_ms.round() as i64,
                "walCommit": e.checkpoint_ms.round() as i64,
                "addBatch": (e.duration_ms - e.read_ms - e.checkpoint_ms).max(0.0).round() as i64,
                "triggerExecution": e.duration_ms.round() as i64,
            },
            "stateOperators": state_operators,
            "sources": sources,
            "sink": { "description": sinks.join(", "), "numOutputRows": rows_out_delta },
        });
        if let Some(w) = e.watermark {
            doc["eventTime"] = json!({ "watermark": iso_millis(w) });
        }
        if let Some(log) = &mut self.log
            && let Err(err) = log.append(&doc)
        {
            tracing::warn!(error = %err, "event log not written");
        }
        self.recent.push_back(doc.clone());
        if self.recent.len() > RECENT {
            self.recent.pop_front();
        }
        doc
    }
}
