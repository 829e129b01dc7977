//! The Kafka sink against the mock cluster: rows as keyed JSON records with the epoch header;
//! a replayed epoch writes the same keys and values again; transient produce errors are
//! retried, every row written once; an epoch whose records cannot be delivered fails its
//! commit.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::types::RDKafkaApiKey;
use rdkafka::types::RDKafkaRespErr::{
    RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
    RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
    RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
};
use trendflow_core::batch::OutputMode;
use trendflow_core::metrics::{Metrics, names};
use trendflow_core::{Batch, ResultRow, RowBatch, RowSchema, Sink, Window};
use trendflow_kafka::testkit::{ConsumedRecord, MockKafka};
use trendflow_kafka::{EPOCH_HEADER, KafkaSink, KafkaSinkOptions, KeyFormat};

const HOUR: i64 = 3_600_000;
const START: i64 = 1_618_466_400_000; // 2021-04-15T06:00:00Z

fn options(kafka: &MockKafka, topic: &str) -> KafkaSinkOptions {
    KafkaSinkOptions {
        bootstrap_servers: kafka.bootstrap_servers().to_string(),
        topic: topic.into(),
        delivery_timeout: Duration::from_secs(30),
        ..Default::default()
    }
}

fn windowed_rows(epoch: u64) -> Batch {
    let window = |k: i64| {
        Some(Window {
            start: START + k * HOUR,
            end: START + (k + 1) * HOUR,
        })
    };
    let row = |w, key: &str, count| ResultRow {
        window: window(w),
        key: key.into(),
        count,
    };
    Batch::Rows(Arc::new(RowBatch {
        schema: Arc::new(RowSchema {
            windowed: true,
            key_column: "hashtag".into(),
            value_column: "posts".into(),
        }),
        mode: OutputMode::Update,
        epoch,
        rows: vec![
            row(0, "#rust", 3),
            row(0, "#kafka", 1),
            row(1, "#rust", 5),
            row(1, "#\"quoted\"", 2),
            row(2, "#rust", 1),
        ]
        .into(),
    }))
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn rows_are_keyed_json_records_with_the_epoch_header() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("counts", 3);
    let metrics = Metrics::new();
    let mut sink = KafkaSink::new(options(&kafka, "counts"), "out", &metrics).unwrap();
    sink.write(&windowed_rows(7)).unwrap();
    sink.commit(7).unwrap();
    assert_eq!(metrics.value(names::SINK_ROWS_WRITTEN, "out"), 5);

    let records = kafka.read_topic("counts");
    assert_eq!(records.len(), 5);
    for r in &records {
        assert_eq!(r.headers, vec![(EPOCH_HEADER.to_string(), b"7".to_vec())]);
    }
    let mut found: Vec<(serde_json::Value, serde_json::Value)> = records
        .iter()
        .map(|r| {
            (
                json(r.key.as_ref().unwrap()),
                json(r.payload.as_ref().unwrap()),
            )
        })
        .collect();
    found.sort_by_key(|(k, _)| k.to_string());
    let first = found
        .iter()
        .find(|(k, _)| k["hashtag"] == "#\"quoted\"")
        .unwrap();
    assert_eq!(
        first.0,
        serde_json::json!({"window_start": "2021-04-15T07:00:00Z", "window_end": "2021-04-15T08:00:00Z", "hashtag": "#\"quoted\""})
    );
    assert_eq!(
        first.1,
        serde_json::json!({"window_start": "2021-04-15T07:00:00Z", "window_end": "2021-04-15T08:00:00Z", "hashtag": "#\"quoted\"", "posts": 2})
    );
    // Every value is its key plus the count.
    let counts: Vec<i64> = found
        .iter()
        .map(|(k, v)| {
            let mut without_count = v.clone();
            let count = without_count
                .as_object_mut()
                .unwrap()
                .remove("posts")
                .unwrap();
            assert_eq!(&without_count, k);
            count.as_i64().unwrap()
        })
        .collect();
    let mut counts_sorted = counts.clone();
    counts_sorted.sort();
    assert_eq!(counts_sorted, vec![1, 1, 2, 3, 5]);
}

/// A replay after a crash writes the epoch again: the same keys with the same values, to
/// the same partitions, so a compacted topic keeps one value per key.
#[test]
fn a_replayed_epoch_writes_the_same_keys_and_values_again() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("counts", 3);
    for _run in 0..2 {
        let mut sink = KafkaSink::new(options(&kafka, "counts"), "out", &Metrics::new()).unwrap();
        sink.write(&windowed_rows(7)).unwrap();
        sink.commit(7).unwrap();
    }
    let records = kafka.read_topic("counts");
    assert_eq!(records.len(), 10);
    let mut by_key: BTreeMap<Vec<u8>, Vec<&ConsumedRecord>> = BTreeMap::new();
    for r in &records {
        by_key.entry(r.key.clone().unwrap()).or_default().push(r);
    }
    assert_eq!(by_key.len(), 5);
    for (key, copies) in by_key {
        let [a, b] = copies[..] else {
            panic!(
                "{} copies of {}",
                copies.len(),
                String::from_utf8_lossy(&key)
            )
        };
        assert_eq!(
            (a.partition, &a.payload, &a.headers),
            (b.partition, &b.payload, &b.headers)
        );
    }
}

#[test]
fn rows_without_windows_or_keys() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("totals", 1);
    let mut o = options(&kafka, "totals");
    o.key_format = KeyFormat::None;
    let mut sink = KafkaSink::new(o, "out", &Metrics::new()).unwrap();
    let rows = Batch::Rows(Arc::new(RowBatch {
        schema: Arc::new(RowSchema::word_count(false)),
        mode: OutputMode::Complete,
        epoch: 0,
        rows: vec![ResultRow {
            window: None,
            key: "#a".into(),
            count: 4,
        }]
        .into(),
    }));
    sink.write(&rows).unwrap();
    sink.commit(0).unwrap();
    sink.finish().unwrap();
    let records = kafka.read_topic("totals");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].key, None);
    assert_eq!(
        records[0].payload.as_deref(),
        Some(&br##"{"word":"#a","count":4}"##[..])
    );
}

/// Rows `rows` of epoch `epoch`: keys `#tag0`.. over 10 windows, each (window, key) once.
fn many_rows(epoch: u64, rows: std::ops::Range<usize>) -> Batch {
    Batch::Rows(Arc::new(RowBatch {
        schema: Arc::new(RowSchema::word_count(true)),
        mode: OutputMode::Append,
        epoch,
        rows: rows
            .map(|i| ResultRow {
                window: Some(Window {
                    start: START + (i % 10) as i64 * HOUR,
                    end: START + (i % 10 + 1) as i64 * HOUR,
                }),
                key: format!("#tag{}", i / 10).into(),
                count: i as i64 + 1,
            })
            .collect(),
    }))
}

/// Produce requests fail for a while (not the leader, no leader, a timeout, too few replicas,
/// a connection closed as the request arrives): the producer retries, the epoch commits, and
/// the topic holds exactly one record per row, none lost, none twice.
#[test]
fn transient_produce_errors_are_retried_and_every_row_written_once() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("counts", 3);
    let metrics = Metrics::new();
    let mut sink = KafkaSink::new(options(&kafka, "counts"), "out", &metrics).unwrap();
    // A healthy epoch first: the producer has its id and its connection.
    sink.write(&many_rows(0, 0..300)).unwrap();
    sink.commit(0).unwrap();
    let errors = [
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR__TRANSPORT,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
    ];
    kafka
        .cluster()
        .request_errors(RDKafkaApiKey::Produce, &errors);
    sink.write(&many_rows(1, 0..300)).unwrap();
    sink.commit(1).unwrap();
    // Errors again, for an epoch written in several batches.
    kafka
        .cluster()
        .request_errors(RDKafkaApiKey::Produce, &errors);
    sink.write(&many_rows(2, 0..150)).unwrap();
    sink.write(&many_rows(2, 150..300)).unwrap();
    sink.commit(2).unwrap();
    assert_eq!(metrics.value(names::SINK_ROWS_WRITTEN, "out"), 900);

    let records = kafka.read_topic("counts");
    // (epoch header, key, payload) -> copies on the topic.
    type Record = (Vec<u8>, Vec<u8>, Vec<u8>);
    let mut copies: BTreeMap<Record, usize> = BTreeMap::new();
    for r in &records {
        let epoch = r.headers[0].1.clone();
        *copies
            .entry((epoch, r.key.clone().unwrap(), r.payload.clone().unwrap()))
            .or_default() += 1;
    }
    let twice: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).take(3).collect();
    assert!(
        twice.is_empty(),
        "records written more than once: {twice:?}"
    );
    // Every row, once.
    let per_epoch = |e: &[u8]| copies.keys().filter(|(epoch, _, _)| epoch == e).count();
    assert_eq!(
        (per_epoch(b"0"), per_epoch(b"1"), per_epoch(b"2")),
        (300, 300, 300)
    );
    assert_eq!(records.len(), 900);
}

#[test]
fn an_epoch_whose_records_cannot_be_delivered_fails_its_commit() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("counts", 3);
    let mut o = options(&kafka, "counts");
    // Long enough for the healthy first epoch on a loaded machine; the failing one waits it out.
    o.delivery_timeout = Duration::from_secs(10);
    let mut sink = KafkaSink::new(o, "out", &Metrics::new()).unwrap();
    sink.write(&windowed_rows(0)).unwrap();
    sink.commit(0).unwrap();
    kafka.cluster().broker_down(-1).unwrap();
    sink.write(&windowed_rows(1)).unwrap();
    let error = sink.commit(1).unwrap_err().0;
    assert!(error.contains("epoch 1"), "{error}");
    assert!(error.contains("topic counts"), "{error}");
}

#[test]
fn only_result_rows_are_taken() {
    let kafka = MockKafka::start(1);
    let mut sink = KafkaSink::new(options(&kafka, "counts"), "out", &Metrics::new()).unwrap();
    let raw = Batch::Raw(Arc::new(trendflow_core::RawBatch::default()));
    assert!(sink.write(&raw).unwrap_err().0.contains("result rows"));
}
