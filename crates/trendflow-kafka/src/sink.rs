//! The Kafka sink: result rows as JSON records of a topic, one record per row.
//!
//! The value is the row as the file sink's JSON lines write it (`window_start`, `window_end`
//! as UTC ISO-8601 times for windowed rows, then the key column and the value column named
//! by the aggregation); the key is the row's identity (its window and key), so a compacted
//! topic keeps the latest value of each (window, key); a header `trendflow-epoch` holds the
//! epoch that produced the record.
//!
//! # Delivery guarantees
//!
//! The producer is idempotent (`enable.idempotence=true`, `acks=all`): within one run, the
//! retries librdkafka makes after a lost connection or a leader change write no duplicate and
//! lose or reorder nothing; `commit(epoch)` returns only once the broker has acknowledged
//! every record of the epoch, and fails the epoch if any record could not be delivered (the
//! runtime then restarts from the last checkpoint).
//!
//! Across a crash this is **at-least-once**: the records of the epochs after the last
//! checkpoint are written again when those epochs are replayed (a new producer, so the
//! broker cannot recognise them). The replayed records are the same rows with the same keys
//! and the same epoch header, because a replayed epoch computes the same rows. Hence:
//!
//! - update and complete modes, with a compacted topic (or any consumer that keeps the last
//!   value per key): consumers converge to exactly the values of a run without failure;
//! - append mode: a consumer that must count each row once de-duplicates by (window, key), a
//!   final row being emitted once per run, or by the `trendflow-epoch` header (skip records
//!   of an epoch at or below the last epoch it has fully seen in that partition).
//!
//! Exactly-once delivery would need Kafka transactions tied to trendflow's checkpoint
//! (a two-phase commit); it is not implemented.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use trendflow_core::metrics::{Counter, Metrics, names};
use trendflow_core::time::format_iso_utc;
use trendflow_core::{Batch, Epoch, OperatorError, RowRef, RowSchema, Sink};

/// The header that holds the epoch a record was produced in (decimal text).
pub const EPOCH_HEADER: &str = "trendflow-epoch";

/// What a record's key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyFormat {
    /// The row's identity as a JSON object: `{"window_start":…,"window_end":…,"<key>":…}`
    /// (without the window fields for unwindowed rows).
    #[default]
    Json,
    /// No key: records are spread over partitions; a compacted topic cannot be used.
    None,
}

/// The options of a Kafka sink. Each field is the YAML key of the same name.
#[derive(Debug, Clone)]
pub struct KafkaSinkOptions {
    /// `host:port,host:port`: the brokers to ask for the cluster's metadata.
    pub bootstrap_servers: String,
    /// The topic to write to. It must exist, unless the brokers create topics on first use.
    pub topic: String,
    pub key_format: KeyFormat,
    /// How long a record may take to be acknowledged (librdkafka's `message.timeout.ms`,
    /// retries included); past it the record fails, and with it the epoch.
    pub delivery_timeout: Duration,
    /// librdkafka producer properties, passed as they are (`compression.type`,
    /// `linger.ms`, `security.protocol`...). Those the sink sets itself
    /// (`SINK_OWNED_PROPERTIES`: `bootstrap.servers`, `enable.idempotence`, `acks`,
    /// `message.timeout.ms` and its alias `delivery.timeout.ms`) are refused here.
    pub extra: BTreeMap<String, String>,
}

impl Default for KafkaSinkOptions {
    fn default() -> Self {
        KafkaSinkOptions {
            bootstrap_servers: String::new(),
            topic: String::new(),
            key_format: KeyFormat::Json,
            delivery_timeout: Duration::from_secs(120),
            extra: BTreeMap::new(),
        }
    }
}

/// Producer properties the sink sets itself; `extra` may not change them.
const SINK_OWNED_PROPERTIES: [&str; 5] = [
    "bootstrap.servers",
    "enable.idempotence",
    "acks",
    "message.timeout.ms",
    "delivery.timeout.ms",
];

/// Counts delivery reports: how many records the brokers acknowledged, and which failed.
#[derive(Default)]
pub(crate) struct DeliveryTracker {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_failure: Mutex<Option<String>>,
}

impl DeliveryTracker {
    /// The counts since the last call, and the first failure among them.
    pub fn take(&self) -> (u64, u64, Option<String>) {
        (
            self.delivered.swap(0, Ordering::Relaxed),
            self.failed.swap(0, Ordering::Relaxed),
            self.first_failure.lock().unwrap().take(),
        )
    }
}

impl ClientContext for DeliveryTracker {}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.first_failure
                    .lock()
                    .unwrap()
                    .get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// The Kafka sink.
pub struct KafkaSink {
    options: KafkaSinkOptions,
    component: String,
    config: ClientConfig,
    /// Created at the first write, so that building a pipeline connects nowhere.
    producer: Option<BaseProducer<DeliveryTracker>>,
    rows_written: Counter,
}

impl KafkaSink {
    /// Checks the options; connects to nothing (that happens at the first row).
    pub fn new(
        options: KafkaSinkOptions,
        component: &str,
        metrics: &Metrics,
    ) -> Result<Self, OperatorError> {
        let bad = |msg: String| OperatorError::new(format!("kafka sink {component}: {msg}"));
        if options.bootstrap_servers.trim().is_empty() {
            return Err(bad("bootstrap_servers is required".into()));
        }
        if options.topic.is_empty() {
            return Err(bad("topic is required".into()));
        }
        if let Some(key) = options
            .extra
            .keys()
            .find(|k| SINK_OWNED_PROPERTIES.contains(&k.as_str()))
        {
            return Err(bad(format!(
                "extra property {key} is set by the sink itself and cannot be changed"
            )));
        }
        let mut config = ClientConfig::new();
        config.set("client.id", format!("trendflow-{component}"));
        for (k, v) in &options.extra {
            config.set(k, v);
        }
        config
            .set("bootstrap.servers", &options.bootstrap_servers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set(
                "message.timeout.ms",
                options.delivery_timeout.as_millis().max(1).to_string(),
            );
        config
            .create_native_config()
            .map_err(|e| bad(format!("producer properties: {e}")))?;
        Ok(KafkaSink {
            component: component.to_string(),
            config,
            producer: None,
            rows_written: metrics.counter(names::SINK_ROWS_WRITTEN, component),
            options,
        })
    }

    fn error(&self, msg: impl std::fmt::Display) -> OperatorError {
        OperatorError::new(format!("kafka sink {}: {msg}", self.component))
    }

    fn producer(&mut self) -> Result<&BaseProducer<DeliveryTracker>, OperatorError> {
        if self.producer.is_none() {
            let producer = self
                .config
                .create_with_context(DeliveryTracker::default())
                .map_err(|e| self.error(format!("creating the producer: {e}")))?;
            self.producer = Some(producer);
        }
        Ok(self.producer.as_ref().expect("created above"))
    }

    /// Waits until every record sent so far is acknowledged; fails if any was not.
    fn flush(&mut self, what: &str) -> Result<(), OperatorError> {
        let Some(producer) = &self.producer else {
            return Ok(());
        };
        // Records still queued fail by themselves after `delivery_timeout`; the margin lets
        // their reports arrive.
        let flushed = producer.flush(self.options.delivery_timeout + Duration::from_secs(5));
        let (delivered, failed, first_failure) = producer.context().take();
        self.rows_written.add(delivered);
        if let Err(e) = flushed {
            return Err(self.error(format!(
                "records of {what} still undelivered to topic {} after {:?}: {e}",
                self.options.topic, self.options.delivery_timeout
            )));
        }
        if failed > 0 {
            return Err(self.error(format!(
                "{failed} records of {what} could not be delivered to topic {}: {}",
                self.options.topic,
                first_failure.unwrap_or_default()
            )));
        }
        Ok(())
    }
}

impl Sink for KafkaSink {
    fn write(&mut self, batch: &Batch) -> Result<(), OperatorError> {
        let Batch::Rows(rows) = batch else {
            return Err(self.error(format!("takes result rows, got {}", batch.kind())));
        };
        let key_format = self.options.key_format;
        let topic = self.options.topic.clone();
        let epoch = rows.epoch.to_string();
        let producer = self.producer()?;
        for row in &rows.rows {
            let value = row_value(&rows.schema, row);
            let key = (key_format == KeyFormat::Json).then(|| row_key(&rows.schema, row));
            let headers = OwnedHeaders::new_with_capacity(1).insert(Header {
                key: EPOCH_HEADER,
                value: Some(epoch.as_bytes()),
            });
            let mut record = BaseRecord::<[u8], [u8]>::to(&topic)
                .payload(&value)
                .headers(headers);
            if let Some(key) = &key {
                record = record.key(key);
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    // The local queue is full: wait for acknowledgements (backpressure).
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        producer.poll(Duration::from_millis(100));
                    }
                    Err((e, _)) => {
                        return Err(OperatorError::new(format!(
                            "kafka sink: producing to topic {topic}: {e}"
                        )));
                    }
                }
            }
        }
        // Serves delivery reports as they come, so that they do not pile up until the commit.
        producer.poll(Duration::ZERO);
        Ok(())
    }

    /// Returns once every record of the epoch is acknowledged by the brokers.
    fn commit(&mut self, epoch: Epoch) -> Result<(), OperatorError> {
        self.flush(&format!("epoch {epoch}"))
    }

    fn finish(&mut self) -> Result<(), OperatorError> {
        self.flush("the end of the stream")
    }
}

/// Appends `s` as a JSON string.
fn push_json_string(out: &mut String, s: &str) {
    out.push_str(&serde_json::Value::from(s).to_string());
}

/// The window fields of a windowed row, each followed by a comma.
fn push_window(out: &mut String, row: RowRef<'_>) {
    if let Some(w) = row.window {
        out.push_str("\"window_start\":");
        push_json_string(out, &format_iso_utc(w.start));
        out.push_str(",\"window_end\":");
        push_json_string(out, &format_iso_utc(w.end));
        out.push(',');
    }
}

/// A record's value: the row as a JSON object, fields in the order of the result table
/// (written by hand: the order must not depend on serde_json's map features, because
/// byte-identical records are what replays produce).
pub fn row_value(schema: &RowSchema, row: RowRef<'_>) -> Vec<u8> {
    let mut out = String::with_capacity(96 + row.key.len());
    out.push('{');
    push_window(&mut out, row);
    push_json_string(&mut out, &schema.key_column);
    out.push(':');
    push_json_string(&mut out, row.key);
    out.push(',');
    push_json_string(&mut out, &schema.value_column);
    out.push(':');
    out.push_str(&row.count.to_string());
    out.push('}');
    out.into_bytes()
}

/// A record's key: the row's identity (window and key) as a JSON object.
pub fn row_key(schema: &RowSchema, row: RowRef<'_>) -> Vec<u8> {
    let mut out = String::with_capacity(80 + row.key.len());
    out.push('{');
    push_window(&mut out, row);
    push_json_string(&mut out, &schema.key_column);
    out.push(':');
    push_json_string(&mut out, row.key);
    out.push('}');
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use trendflow_core::{ResultRow, Window};

    fn schema(windowed: bool) -> RowSchema {
        RowSchema::word_count(windowed)
    }

    #[test]
    fn rows_become_json_keys_and_values() {
        let row = ResultRow {
            window: Some(Window {
                start: 1_618_463_100_000,
                end: 1_618_473_900_000,
            }),
            key: "#a\"b".into(),
            count: 3,
        };
        assert_eq!(
            String::from_utf8(row_value(&schema(true), row.as_ref())).unwrap(),
            r##"{"window_start":"2021-04-15T05:05:00Z","window_end":"2021-04-15T08:05:00Z","word":"#a\"b","count":3}"##
        );
        assert_eq!(
            String::from_utf8(row_key(&schema(true), row.as_ref())).unwrap(),
            r##"{"window_start":"2021-04-15T05:05:00Z","window_end":"2021-04-15T08:05:00Z","word":"#a\"b"}"##
        );
        let row = ResultRow {
            window: None,
            key: "#x".into(),
            count: -1,
        };
        assert_eq!(
            row_value(&schema(false), row.as_ref()),
            br##"{"word":"#x","count":-1}"##
        );
        assert_eq!(row_key(&schema(false), row.as_ref()), br##"{"word":"#x"}"##);
        // Values parse as JSON with the file sink's field names.
        let v: serde_json::Value =
            serde_json::from_slice(&row_value(&schema(false), row.as_ref())).unwrap();
        assert_eq!(v["count"], -1);
    }

    #[test]
    fn options_are_checked_without_connecting() {
        let m = Metrics::new();
        let options = KafkaSinkOptions {
            bootstrap_servers: "127.0.0.1:9".into(),
            topic: "counts".into(),
            ..Default::default()
        };
        assert!(KafkaSink::new(options.clone(), "s", &m).is_ok());
        let mut o = options.clone();
        o.extra.insert("acks".into(), "1".into());
        assert!(KafkaSink::new(o, "s", &m).err().unwrap().0.contains("acks"));
        let mut o = options.clone();
        o.topic.clear();
        assert!(KafkaSink::new(o, "s", &m).is_err());
        let mut o = options;
        o.extra.insert("linger.ms".into(), "not a number".into());
        assert!(
            KafkaSink::new(o, "s", &m)
                .err()
                .unwrap()
                .0
                .contains("linger.ms")
        );
    }
}
