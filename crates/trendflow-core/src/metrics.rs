//! Metric names, fixed in one place, and the registry of counters and gauges every component
//! writes to. Counters are atomics: components update them on the hot path without locks.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Every metric name trendflow reports. Labels: `component` (the pipeline name of the
/// stage), and for some `reason`.
pub mod names {
    pub const RECORDS_IN: &str = "trendflow_records_in_total";
    pub const RECORDS_OUT: &str = "trendflow_records_out_total";
    /// Records read after a repair Spark also makes (a lone surrogate escape read as `?`).
    pub const RECORDS_REPAIRED: &str = "trendflow_records_repaired_total";
    /// Rows a bounded memory table dropped, oldest first, to stay within `max_rows`.
    pub const MEMORY_ROWS_EVICTED: &str = "trendflow_memory_rows_evicted_total";
    /// Posts a filter left out, by reason.
    pub const RECORDS_FILTERED: &str = "trendflow_records_filtered_total";
    /// Stream messages that are not posts (delete notices, likes, rate-limit warnings), by kind.
    pub const CONTROL_MESSAGES: &str = "trendflow_control_messages_total";
    pub const BYTES_IN: &str = "trendflow_bytes_in_total";
    pub const BATCHES_IN: &str = "trendflow_batches_in_total";
    pub const DEAD_LETTERS: &str = "trendflow_dead_letters_total";
    pub const LATE_ROWS_DROPPED: &str = "trendflow_late_rows_dropped_total";
    pub const LATE_ROW_WINDOWS_DROPPED: &str = "trendflow_late_row_windows_dropped_total";
    pub const FILES_READ: &str = "trendflow_source_files_read_total";
    pub const FILES_SKIPPED: &str = "trendflow_source_files_skipped_total";
    pub const LIST_REQUESTS: &str = "trendflow_source_list_requests_total";
    /// Keys (file names) a listing returned, before any filtering: what listing costs.
    pub const KEYS_LISTED: &str = "trendflow_source_keys_listed_total";
    /// Offsets a Kafka source skipped because they were deleted (retention, compaction)
    /// before being read, with `fail_on_data_loss: false`.
    pub const KAFKA_OFFSETS_LOST: &str = "trendflow_kafka_offsets_lost_total";
    /// Files (parquet parts) and rows a sink published, and epochs it recognised as written
    /// before a restart and skipped.
    pub const SINK_FILES_WRITTEN: &str = "trendflow_sink_files_written_total";
    pub const SINK_ROWS_WRITTEN: &str = "trendflow_sink_rows_written_total";
    pub const SINK_EPOCHS_SKIPPED: &str = "trendflow_sink_epochs_skipped_total";
    pub const SINK_RETRIES: &str = "trendflow_sink_retries_total";
    pub const EPOCHS_COMMITTED: &str = "trendflow_epochs_committed_total";
    pub const ROWS_EMITTED: &str = "trendflow_result_rows_emitted_total";
    pub const STATE_ROWS: &str = "trendflow_state_rows";
    /// State rows created (a key's first count in a slice), dropped once every window that
    /// needs them has closed, and updates applied (records counted into state).
    pub const STATE_ROWS_ADDED: &str = "trendflow_state_rows_added_total";
    pub const STATE_ROWS_EVICTED: &str = "trendflow_state_rows_evicted_total";
    pub const STATE_UPDATES: &str = "trendflow_state_updates_total";
    /// An estimate of the state's size: its keys' bytes plus a fixed cost per row.
    pub const STATE_BYTES: &str = "trendflow_state_bytes";
    /// The latest event time a windowed operator has seen: the wall clock minus this is the
    /// event-time lag. Kept in ms (see `exposed_scale`).
    pub const EVENT_TIME_MAX_MS: &str = "trendflow_event_time_max_timestamp_seconds";
    pub const STATE_SLICES: &str = "trendflow_state_slices";
    pub const WATERMARK_MS: &str = "trendflow_watermark_timestamp_seconds";
    pub const MAILBOX_FULL_WAITS: &str = "trendflow_mailbox_full_waits_total";
    /// Messages waiting in a component's mailboxes (all its instances), and how many they
    /// hold: where the two meet is where backpressure starts.
    pub const MAILBOX_QUEUED: &str = "trendflow_mailbox_queued_messages";
    pub const MAILBOX_CAPACITY: &str = "trendflow_mailbox_capacity_messages";
    /// Restarts of the pipeline's actors from the last checkpoint, labelled with the
    /// component whose failure caused them.
    pub const ACTOR_RESTARTS: &str = "trendflow_actor_restarts_total";
    pub const CHECKPOINTS_WRITTEN: &str = "trendflow_checkpoints_written_total";
    /// Size of the last checkpoint written, and when it was written (Unix seconds): its age
    /// is how much a crash would replay.
    pub const CHECKPOINT_BYTES: &str = "trendflow_checkpoint_bytes";
    /// Bytes every checkpoint wrote so far: what keeping a table across restarts costs the
    /// disk over a long run.
    pub const CHECKPOINT_WRITTEN_BYTES: &str = "trendflow_checkpoint_written_bytes_total";
    pub const CHECKPOINT_TIMESTAMP_SECONDS: &str = "trendflow_checkpoint_last_timestamp_seconds";
    /// Epochs read again from the offset log after a restart.
    pub const EPOCHS_REPLAYED: &str = "trendflow_epochs_replayed_total";
    /// Kept in nanoseconds, exposed in seconds (see `exposed_scale`).
    pub const BUSY_NANOS: &str = "trendflow_busy_seconds_total";
    /// Histograms, in seconds: how long epochs take from planned to committed, and how long
    /// writing their checkpoint takes.
    pub const EPOCH_DURATION_SECONDS: &str = "trendflow_epoch_duration_seconds";
    pub const CHECKPOINT_DURATION_SECONDS: &str = "trendflow_checkpoint_duration_seconds";

    /// What a metric's stored integer is multiplied by to give the value its name states:
    /// Prometheus names carry base units (seconds), while the hot path counts nanoseconds
    /// and event times are milliseconds.
    pub fn exposed_scale(name: &str) -> f64 {
        match name {
            BUSY_NANOS => 1e-9,
            WATERMARK_MS | EVENT_TIME_MAX_MS => 1e-3,
            _ => 1.0,
        }
    }

    /// The `# HELP` text of a metric (docs/metrics.md says the same at more length).
    pub fn help(name: &str) -> &'static str {
        match name {
            RECORDS_IN => "Records (lines, posts, tokens, result rows) a component received.",
            RECORDS_OUT => "Records a component emitted.",
            RECORDS_REPAIRED => {
                "Records read after a repair Spark also makes (a lone surrogate escape read as ?)."
            }
            MEMORY_ROWS_EVICTED => {
                "Rows a bounded memory table dropped, oldest first, to stay within max_rows."
            }
            RECORDS_FILTERED => "Posts a filter left out, by reason.",
            CONTROL_MESSAGES => {
                "Stream messages that are not posts (deletes, limits, likes), by kind."
            }
            BYTES_IN => "Bytes a source read.",
            BATCHES_IN => "Batches a component received.",
            DEAD_LETTERS => "Records set aside, by reason.",
            LATE_ROWS_DROPPED => {
                "Rows behind the watermark for every window they fall in, dropped."
            }
            LATE_ROW_WINDOWS_DROPPED => {
                "(row, window) pairs dropped as late, Spark's per-window rule."
            }
            FILES_READ => "Files a file source read.",
            FILES_SKIPPED => "Files a file source ignored as older than max_file_age.",
            LIST_REQUESTS => "Listing requests a file source made (one per page of keys on S3).",
            KEYS_LISTED => "Keys the listings returned, before any filtering.",
            KAFKA_OFFSETS_LOST => "Offsets a Kafka source skipped as deleted before being read.",
            SINK_FILES_WRITTEN => "Files (parquet parts) a sink published.",
            SINK_ROWS_WRITTEN => "Rows a sink wrote.",
            SINK_EPOCHS_SKIPPED => {
                "Epochs a sink found already written before a restart, and skipped."
            }
            SINK_RETRIES => "Epoch writes a sink retried after a transient error.",
            EPOCHS_COMMITTED => "Epochs committed (every sink visible, checkpoint written).",
            ROWS_EMITTED => "Result rows an aggregation emitted.",
            STATE_ROWS => "Rows of state kept (window slices x keys).",
            STATE_ROWS_ADDED => "State rows created (a key's first record in a window slice).",
            STATE_ROWS_EVICTED => "State rows dropped once every window needing them had closed.",
            STATE_UPDATES => "Updates applied to state rows (records counted).",
            STATE_BYTES => "Estimated bytes of state: its keys plus a fixed cost per row.",
            EVENT_TIME_MAX_MS => "The latest event time seen, Unix seconds.",
            STATE_SLICES => "Window slices kept in state.",
            WATERMARK_MS => "The watermark, Unix seconds.",
            MAILBOX_FULL_WAITS => {
                "Sends that waited on a full mailbox downstream: where backpressure is."
            }
            MAILBOX_QUEUED => "Messages waiting in a component's mailboxes (all instances).",
            MAILBOX_CAPACITY => "Messages a component's mailboxes hold (mailbox x parallelism).",
            ACTOR_RESTARTS => {
                "Restarts from the last checkpoint caused by this component's failure."
            }
            CHECKPOINTS_WRITTEN => "Checkpoints written.",
            CHECKPOINT_BYTES => {
                "Bytes the last checkpoint wrote (with the state segments it listed first)."
            }
            CHECKPOINT_WRITTEN_BYTES => "Bytes written by every checkpoint so far.",
            CHECKPOINT_TIMESTAMP_SECONDS => "When the last checkpoint was written, Unix seconds.",
            EPOCHS_REPLAYED => "Epochs read again from the offset log after a restart.",
            BUSY_NANOS => "Time a component spent handling messages, seconds (all instances).",
            EPOCH_DURATION_SECONDS => "Epoch duration from planned to committed, seconds.",
            CHECKPOINT_DURATION_SECONDS => "Time writing an epoch's checkpoint took, seconds.",
            _ => "A trendflow metric (docs/metrics.md).",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MetricKey {
    pub name: &'static str,
    pub component: String,
    pub label: Option<(&'static str, String)>,
}

/// A monotonically increasing count.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    #[inline]
    pub fn inc(&self) {
        self.add(1)
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Clone, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    #[inline]
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    #[inline]
    pub fn add(&self, v: i64) {
        self.0.fetch_add(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds (seconds) of the buckets of every histogram; a last bucket takes the rest.
pub const HISTOGRAM_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// A distribution of durations, as Prometheus histograms count them.
#[derive(Debug, Clone, Default)]
pub struct Histogram(Arc<HistogramCells>);

#[derive(Debug, Default)]
struct HistogramCells {
    /// Observations per bucket (not cumulative); the last one is above every bound.
    buckets: [AtomicU64; HISTOGRAM_BUCKETS.len() + 1],
    /// Sum of the observations, in microseconds.
    sum_micros: AtomicU64,
}

/// A histogram's figures at one moment: cumulative counts per bound (Prometheus `le`), then
/// the total count and the sum in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub cumulative: Vec<(f64, u64)>,
    pub count: u64,
    pub sum: f64,
}

impl Histogram {
    pub fn observe(&self, seconds: f64) {
        let seconds = seconds.max(0.0);
        let i = HISTOGRAM_BUCKETS
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(HISTOGRAM_BUCKETS.len());
        self.0.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.0
            .sum_micros
            .fetch_add((seconds * 1e6).round() as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0;
        let mut cumulative = Vec::with_capacity(HISTOGRAM_BUCKETS.len());
        for (i, bound) in HISTOGRAM_BUCKETS.iter().enumerate() {
            running += self.0.buckets[i].load(Ordering::Relaxed);
            cumulative.push((*bound, running));
        }
        let count = running + self.0.buckets[HISTOGRAM_BUCKETS.len()].load(Ordering::Relaxed);
        HistogramSnapshot {
            cumulative,
            count,
            sum: self.0.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

#[derive(Debug, Clone)]
enum Metric {
    Counter(Counter),
    Gauge(Gauge),
}

/// All metrics of one pipeline.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    inner: Arc<Mutex<BTreeMap<MetricKey, Metric>>>,
    histograms: Arc<Mutex<BTreeMap<MetricKey, Histogram>>>,
    /// Record samples per component (`trendflow tap`): observability shared the same way.
    taps: crate::tap::Taps,
    restarts: Arc<Mutex<std::collections::VecDeque<Restart>>>,
}

/// Restarts remembered for the dashboard's timeline.
pub const RESTARTS_KEPT: usize = 100;

/// One restart of the pipeline's actors from the last checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restart {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// The component whose failure caused it.
    pub component: String,
    pub reason: String,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every component's tap point (samples of the records it sends on).
    pub fn taps(&self) -> &crate::tap::Taps {
        &self.taps
    }

    /// Records a restart (when, which component, why) for the dashboard's timeline; the last
    /// [`RESTARTS_KEPT`] are kept.
    pub fn note_restart(&self, component: &str, reason: &str) {
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut log = self.restarts.lock().unwrap();
        log.push_back(Restart {
            at_ms,
            component: component.to_string(),
            reason: reason.to_string(),
        });
        if log.len() > RESTARTS_KEPT {
            log.pop_front();
        }
    }

    /// The restarts noted, oldest first.
    pub fn restarts(&self) -> Vec<Restart> {
        self.restarts.lock().unwrap().iter().cloned().collect()
    }

    /// The counter `name{component=...}`, created at zero on first use.
    pub fn counter(&self, name: &'static str, component: &str) -> Counter {
        self.counter_labeled(name, component, None)
    }

    pub fn counter_labeled(
        &self,
        name: &'static str,
        component: &str,
        label: Option<(&'static str, String)>,
    ) -> Counter {
        let key = MetricKey {
            name,
            component: component.to_string(),
            label,
        };
        let mut m = self.inner.lock().unwrap();
        match m
            .entry(key)
            .or_insert_with(|| Metric::Counter(Counter::default()))
        {
            Metric::Counter(c) => c.clone(),
            Metric::Gauge(_) => panic!("metric {name} is a gauge"),
        }
    }

    pub fn gauge(&self, name: &'static str, component: &str) -> Gauge {
        let key = MetricKey {
            name,
            component: component.to_string(),
            label: None,
        };
        let mut m = self.inner.lock().unwrap();
        match m
            .entry(key)
            .or_insert_with(|| Metric::Gauge(Gauge::default()))
        {
            Metric::Gauge(g) => g.clone(),
            Metric::Counter(_) => panic!("metric {name} is a counter"),
        }
    }

    /// The histogram `name{component=...}`, created empty on first use.
    pub fn histogram(&self, name: &'static str, component: &str) -> Histogram {
        let key = MetricKey {
            name,
            component: component.to_string(),
            label: None,
        };
        self.histograms
            .lock()
            .unwrap()
            .entry(key)
            .or_default()
            .clone()
    }

    /// Every histogram and its figures.
    pub fn histogram_snapshot(&self) -> Vec<(MetricKey, HistogramSnapshot)> {
        let h = self.histograms.lock().unwrap();
        h.iter().map(|(k, v)| (k.clone(), v.snapshot())).collect()
    }

    /// Every metric and its current value.
    pub fn snapshot(&self) -> Vec<(MetricKey, i64)> {
        let m = self.inner.lock().unwrap();
        m.iter()
            .map(|(k, v)| {
                let value = match v {
                    Metric::Counter(c) => c.get() as i64,
                    Metric::Gauge(g) => g.get(),
                };
                (k.clone(), value)
            })
            .collect()
    }

    /// Sum of a metric over every component and label.
    pub fn total(&self, name: &str) -> i64 {
        self.snapshot()
            .into_iter()
            .filter(|(k, _)| k.name == name)
            .map(|(_, v)| v)
            .sum()
    }

    /// Value of a metric for one component, summed over labels.
    pub fn value(&self, name: &str, component: &str) -> i64 {
        self.snapshot()
            .into_iter()
            .filter(|(k, _)| k.name == name && k.component == component)
            .map(|(_, v)| v)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name has its own help text: the fallback would hide a metric added without one.
    #[test]
    fn every_metric_name_has_help() {
        let source = include_str!("metrics.rs");
        let module = &source
            [source.find("pub mod names").unwrap()..source.find("pub fn exposed_scale").unwrap()];
        let mut n = 0;
        for line in module.lines() {
            if let Some(rest) = line.trim().strip_prefix("pub const ") {
                let value = rest.split('"').nth(1).unwrap();
                assert_ne!(
                    names::help(value),
                    names::help("not_a_metric"),
                    "{value} has no # HELP text"
                );
                n += 1;
            }
        }
        assert!(n > 30, "only {n} names found");
    }

    #[test]
    fn histograms_count_cumulatively_by_bucket() {
        let m = Metrics::new();
        let h = m.histogram(names::EPOCH_DURATION_SECONDS, "p");
        for s in [0.0005, 0.003, 0.003, 0.2, 120.0] {
            h.observe(s);
        }
        let (key, snap) = m.histogram_snapshot().pop().unwrap();
        assert_eq!(key.name, names::EPOCH_DURATION_SECONDS);
        assert_eq!(snap.count, 5);
        assert!((snap.sum - 120.2065).abs() < 1e-6, "{}", snap.sum);
        let at = |bound: f64| snap.cumulative.iter().find(|(b, _)| *b == bound).unwrap().1;
        assert_eq!((at(0.001), at(0.005), at(0.25), at(60.0)), (1, 3, 4, 4));
    }
}
