//! Spark-compatible progress reports: one document per committed epoch with the field names
//! of Spark's `StreamingQueryProgress`, kept in memory (`lastProgress`, `recentProgress`) and
//! appended to an event log (JSON lines, rotated), as Spark's event log feeds its history
//! server.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use trendflow_core::metrics::{MetricKey, Metrics, names};
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

/// The metrics at one moment, for the figures of one epoch.
struct Snapshot(Vec<(MetricKey, i64)>);

impl Snapshot {
    /// A metric's value, summed over what `component` and `label` leave open ("": any).
    fn value(&self, name: &str, component: &str, label: &str) -> i64 {
        self.0
            .iter()
            .filter(|(k, _)| {
                k.name == name
                    && (component.is_empty() || k.component == component)
                    && (label.is_empty() || k.label.as_ref().is_some_and(|(_, v)| v == label))
            })
            .map(|(_, v)| v)
            .sum()
    }

    /// The largest value of a metric over components, when any reports it.
    fn max(&self, name: &str) -> Option<i64> {
        self.0
            .iter()
            .filter(|(k, _)| k.name == name)
            .map(|(_, v)| *v)
            .max()
    }

    /// The components reporting a metric, sorted.
    fn components(&self, name: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .0
            .iter()
            .filter(|(k, _)| k.name == name)
            .map(|(k, _)| k.component.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The label values of a metric, sorted.
    fn labels(&self, name: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .0
            .iter()
            .filter(|(k, _)| k.name == name)
            .filter_map(|(k, _)| k.label.as_ref().map(|(_, v)| v.clone()))
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// Builds the progress documents of one run.
pub struct Progress {
    pub id: String,
    pub run_id: String,
    pub name: String,
    recent: VecDeque<Value>,
    previous_start_ms: Option<i64>,
    /// Metric values at the previous epoch, by name and component/label.
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

    /// The change of a metric (one component, one label value or all) since the previous
    /// epoch.
    fn delta(&mut self, now: &Snapshot, name: &'static str, component: &str, label: &str) -> i64 {
        let value = now.value(name, component, label);
        let key = (name, format!("{component}\u{0}{label}"));
        let before = self.previous.insert(key, value).unwrap_or(0);
        value - before
    }

    /// The document of a committed epoch (logged, and kept for `recentProgress`).
    pub fn on_epoch(&mut self, e: &EpochSummary, metrics: &Metrics) -> Value {
        let now = Snapshot(metrics.snapshot());
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
        let stateful = now.components(names::STATE_ROWS);
        let state_operators: Vec<Value> = stateful
            .iter()
            .map(|c| {
                let dropped = self.delta(&now, names::LATE_ROWS_DROPPED, c, "");
                let dropped_windows = self.delta(&now, names::LATE_ROW_WINDOWS_DROPPED, c, "");
                json!({
                    "operatorName": c,
                    "numRowsTotal": now.value(names::STATE_ROWS, c, ""),
                    // Updates applied (records counted into a row), not distinct rows.
                    "numRowsUpdated": self.delta(&now, names::STATE_UPDATES, c, ""),
                    "numRowsAdded": self.delta(&now, names::STATE_ROWS_ADDED, c, ""),
                    "numRowsRemoved": self.delta(&now, names::STATE_ROWS_EVICTED, c, ""),
                    "numRowsDroppedByWatermark": dropped,
                    // Spark's per-window rule: a row late for 3 of its 36 windows counts 3.
                    "numRowWindowsDroppedByWatermark": dropped_windows,
                    "memoryUsedBytes": now.value(names::STATE_BYTES, c, ""),
                })
            })
            .collect();
        // Time each stage spent on batches since the previous epoch (all its instances).
        let mut stage_busy = serde_json::Map::new();
        for c in now.components(names::BUSY_NANOS) {
            let nanos = self.delta(&now, names::BUSY_NANOS, &c, "");
            // In ms to the microsecond: a light stage (the tokenizer) spends well under a
            // millisecond per epoch, which whole milliseconds would show as nothing.
            stage_busy.insert(c, json!((nanos as f64 / 1e3).round() / 1e3));
        }
        let mut dead_letters = serde_json::Map::new();
        for reason in now.labels(names::DEAD_LETTERS) {
            let n = self.delta(&now, names::DEAD_LETTERS, "", &reason);
            dead_letters.insert(reason, json!(n));
        }
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
            .map(|s| self.delta(&now, names::RECORDS_IN, s, ""))
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
                "latestOffset": e.plan_ms.round() as i64,
                "getBatch": (e.read_ms - e.plan_ms).max(0.0).round() as i64,
                "walCommit": e.checkpoint_ms.round() as i64,
                "addBatch": (e.duration_ms - e.read_ms - e.checkpoint_ms).max(0.0).round() as i64,
                "triggerExecution": e.duration_ms.round() as i64,
            },
            "stageBusyMs": stage_busy,
            "stateOperators": state_operators,
            "deadLetters": dead_letters,
            "sources": sources,
            "sink": { "description": sinks.join(", "), "numOutputRows": rows_out_delta },
        });
        if let Some(w) = e.watermark {
            doc["eventTime"] = json!({ "watermark": iso_millis(w) });
            // Not Spark's per-batch `max`: the latest event time seen so far.
            if let Some(latest) = now.max(names::EVENT_TIME_MAX_MS) {
                doc["eventTime"]["latestSeen"] = json!(iso_millis(latest));
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(epoch: u64) -> EpochSummary {
        EpochSummary {
            epoch,
            records: 100,
            bytes: 1_000,
            duration_ms: 50.0,
            watermark: Some(1_700_000_000_000),
            started_ms: 1_700_000_100_000 + epoch as i64 * 1_000,
            plan_ms: 2.0,
            read_ms: 10.0,
            checkpoint_ms: 5.0,
            offsets: vec![("tweets".into(), "1 file".into())],
        }
    }

    /// Each epoch's figures are changes since the previous epoch, per stage, per state
    /// operator and per dead-letter reason; totals and gauges are as they stand.
    #[test]
    fn an_epochs_document_holds_what_changed_during_it() {
        let m = Metrics::new();
        let busy = m.counter(names::BUSY_NANOS, "parse");
        let added = m.counter(names::STATE_ROWS_ADDED, "counts");
        let updates = m.counter(names::STATE_UPDATES, "counts");
        let evicted = m.counter(names::STATE_ROWS_EVICTED, "counts");
        let late = m.counter(names::LATE_ROW_WINDOWS_DROPPED, "counts");
        let bad = m.counter_labeled(
            names::DEAD_LETTERS,
            "parse",
            Some(("reason", "bad_json".into())),
        );
        m.gauge(names::STATE_ROWS, "counts").set(40);
        m.gauge(names::STATE_BYTES, "counts").set(4_000);
        m.gauge(names::EVENT_TIME_MAX_MS, "counts")
            .set(1_700_000_060_000);
        let mut p = Progress::new("id".into(), "q", vec![], None);

        busy.add(3_000_000);
        added.add(40);
        updates.add(90);
        bad.add(2);
        let first = p.on_epoch(&summary(0), &m);
        busy.add(7_250_000);
        updates.add(10);
        evicted.add(5);
        late.add(3);
        let second = p.on_epoch(&summary(1), &m);

        assert_eq!(first["stageBusyMs"]["parse"].as_f64(), Some(3.0));
        assert_eq!(second["stageBusyMs"]["parse"].as_f64(), Some(7.25));
        let op = |d: &Value, f: &str| d["stateOperators"][0][f].clone();
        assert_eq!(op(&first, "numRowsAdded"), 40);
        assert_eq!(op(&first, "numRowsUpdated"), 90);
        assert_eq!(op(&second, "numRowsAdded"), 0);
        assert_eq!(op(&second, "numRowsUpdated"), 10);
        assert_eq!(op(&second, "numRowsRemoved"), 5);
        assert_eq!(op(&second, "numRowWindowsDroppedByWatermark"), 3);
        assert_eq!(op(&second, "numRowsTotal"), 40);
        assert_eq!(op(&second, "memoryUsedBytes"), 4_000);
        assert_eq!(first["deadLetters"]["bad_json"], 2);
        assert_eq!(second["deadLetters"]["bad_json"], 0);
        assert_eq!(second["durationMs"]["latestOffset"], 2);
        assert_eq!(second["durationMs"]["getBatch"], 8);
        assert_eq!(
            second["eventTime"]["latestSeen"],
            "2023-11-14T22:14:20.000Z"
        );
    }
}
