//! The Kafka source against librdkafka's mock cluster: every record once, in offset order per
//! partition; caps; offsets as line numbers; tombstones and transaction markers; the
//! consumer-group commit for monitoring.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use trendflow_core::metrics::{Metrics, names};
use trendflow_core::{EpochPlan, Source};
use trendflow_kafka::testkit::{
    CollectedRecord, CollectingSender, GeneratedPost, MockKafka, TestRecord, generate_posts,
    read_until_idle,
};
use trendflow_kafka::{
    EpochInput, KafkaSource, KafkaSourceOptions, PartitionRange, StartingOffsets, TopicPartition,
};

const T0: i64 = 1_618_466_405_000;

fn options(kafka: &MockKafka, topic: &str) -> KafkaSourceOptions {
    KafkaSourceOptions {
        bootstrap_servers: kafka.bootstrap_servers().to_string(),
        topics: vec![topic.to_string()],
        starting_offsets: StartingOffsets::Earliest,
        poll_timeout: Duration::from_secs(30),
        ..Default::default()
    }
}

/// The records expected from `posts`, per origin in offset order.
fn expected(topic: &str, posts: &[GeneratedPost]) -> BTreeMap<String, Vec<(i64, Vec<u8>)>> {
    let mut by_origin: BTreeMap<String, Vec<(i64, Vec<u8>)>> = BTreeMap::new();
    for p in posts {
        let records = by_origin
            .entry(format!("kafka:{topic}/{}", p.partition))
            .or_default();
        records.push((records.len() as i64, p.line()));
    }
    by_origin
}

fn by_origin(records: &[CollectedRecord]) -> BTreeMap<String, Vec<(i64, Vec<u8>)>> {
    let mut out: BTreeMap<String, Vec<(i64, Vec<u8>)>> = BTreeMap::new();
    for r in records {
        out.entry(r.origin.clone())
            .or_default()
            .push((r.offset, r.line.clone()));
    }
    out
}

#[tokio::test]
async fn every_record_is_read_once_in_offset_order_per_partition() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("posts", 4);
    let posts = generate_posts(1_000, 4, T0, 1_000);
    kafka.produce("posts", posts.iter().map(GeneratedPost::record));
    let metrics = Metrics::new();
    let mut source = KafkaSource::new(options(&kafka, "posts"), "kafka", &metrics).unwrap();
    let mut out = CollectingSender::new();
    let plans = read_until_idle(&mut source, 0, &mut out).await.unwrap();
    assert_eq!(plans.len(), 1, "without a cap one epoch takes everything");
    // Each partition's records, in order, at their offsets, pretty-printed payloads as one
    // line each.
    assert_eq!(by_origin(&out.records()), expected("posts", &posts));
    assert!(posts.iter().any(|p| p.payload.contains(&b'\n')));
    assert!(out.records().iter().all(|r| !r.line.contains(&b'\r')));
    for b in &out.batches {
        assert!(b.origin.starts_with("kafka:posts/"));
        assert!(b.data.ends_with(b"\n"));
    }
    assert_eq!(
        source.describe_offset(),
        "posts/0:250 posts/1:250 posts/2:250 posts/3:250"
    );
    let bytes: usize = posts.iter().map(|p| p.payload.len()).sum();
    assert_eq!(metrics.value(names::BYTES_IN, "kafka"), bytes as i64);

    // New records: the next epoch reads them only.
    let more = generate_posts(1_100, 4, T0, 1_000).split_off(1_000);
    kafka.produce("posts", more.iter().map(GeneratedPost::record));
    let mut next = CollectingSender::new();
    read_until_idle(&mut source, 1, &mut next).await.unwrap();
    let records = next.records();
    assert_eq!(records.len(), 100);
    assert!(records.iter().all(|r| (250..275).contains(&r.offset)));
    assert_eq!(
        source.describe_offset(),
        "posts/0:275 posts/1:275 posts/2:275 posts/3:275"
    );
}

#[tokio::test]
async fn max_offsets_per_trigger_caps_epochs_in_proportion_to_backlog() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("posts", 4);
    // Backlogs 600, 300, 100 and 0.
    let posts: Vec<GeneratedPost> = generate_posts(1_000, 1, T0, 1_000)
        .into_iter()
        .enumerate()
        .map(|(n, mut p)| {
            p.partition = match n {
                0..600 => 0,
                600..900 => 1,
                _ => 2,
            };
            p
        })
        .collect();
    kafka.produce("posts", posts.iter().map(GeneratedPost::record));
    let mut o = options(&kafka, "posts");
    o.max_offsets_per_trigger = Some(100);
    let mut source = KafkaSource::new(o, "kafka", &Metrics::new()).unwrap();
    let mut out = CollectingSender::new();
    let EpochPlan::Input(first) = source.plan_epoch(0).await.unwrap() else {
        panic!("data is waiting")
    };
    let ranges: Vec<(i64, i64)> = EpochInput::decode(&first)
        .unwrap()
        .ranges
        .iter()
        .map(|r| (r.from, r.until))
        .collect();
    assert_eq!(ranges, vec![(0, 60), (0, 30), (0, 10), (0, 0)]);
    source.read_epoch(0, &first, &mut out).await.unwrap();
    assert_eq!(out.records().len(), 100);
    let plans = read_until_idle(&mut source, 1, &mut out).await.unwrap();
    // Every epoch read at most about 100 records, and all were read once.
    let mut read_before = 100;
    for (epoch, plan) in &plans {
        let planned: u64 = EpochInput::decode(plan)
            .unwrap()
            .ranges
            .iter()
            .map(|r| r.len())
            .sum();
        assert!(planned <= 103, "epoch {epoch} planned {planned} offsets");
        read_before += planned;
    }
    assert_eq!(read_before, 1_000);
    assert_eq!(by_origin(&out.records()), expected("posts", &posts));
}

#[tokio::test]
async fn batches_are_cut_by_size_with_offsets_as_line_numbers() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("posts", 1);
    let posts = generate_posts(500, 1, T0, 1_000);
    kafka.produce("posts", posts.iter().map(GeneratedPost::record));
    let mut o = options(&kafka, "posts");
    o.batch_bytes = 2_000;
    let mut source = KafkaSource::new(o, "kafka", &Metrics::new()).unwrap();
    let mut out = CollectingSender::new();
    read_until_idle(&mut source, 0, &mut out).await.unwrap();
    assert!(out.batches.len() > 10, "{} batches", out.batches.len());
    let mut next_line = 1;
    for b in &out.batches {
        assert_eq!(b.first_line, next_line);
        assert!(
            b.data.len() < 2_000 + 200,
            "a batch of {} bytes",
            b.data.len()
        );
        next_line += b.lines as u64;
    }
    assert_eq!(next_line, 501);
    assert_eq!(by_origin(&out.records()), expected("posts", &posts));
}

#[tokio::test]
async fn tombstones_are_skipped_and_counted_and_offsets_stay_line_numbers() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("compacted", 1);
    let record = |payload: Option<&str>| TestRecord {
        partition: 0,
        payload: payload.map(|p| p.as_bytes().to_vec()),
    };
    kafka.produce(
        "compacted",
        [
            record(Some("{\"a\":1}")),
            record(None),
            record(Some("{\"b\":2}")),
            record(Some("")),
        ],
    );
    let metrics = Metrics::new();
    let mut source = KafkaSource::new(options(&kafka, "compacted"), "kafka", &metrics).unwrap();
    let mut out = CollectingSender::new();
    read_until_idle(&mut source, 0, &mut out).await.unwrap();
    let records: Vec<(i64, Vec<u8>)> = out
        .records()
        .into_iter()
        .map(|r| (r.offset, r.line))
        .collect();
    // The tombstone at offset 1 is not a line; an empty payload is an (empty) line.
    assert_eq!(
        records,
        vec![
            (0, b"{\"a\":1}".to_vec()),
            (2, b"{\"b\":2}".to_vec()),
            (3, vec![])
        ]
    );
    assert_eq!(
        out.batches.len(),
        2,
        "the gap at offset 1 starts a new batch"
    );
    assert_eq!(metrics.total(names::CONTROL_MESSAGES), 1);
}

/// Offsets without records at the end of a range (transaction markers; compacted records):
/// the range ends at the end of the partition, not at a record at `until - 1`. librdkafka's
/// mock cluster writes no transaction markers, so the plan is made by hand, with a range
/// that extends past the partition's last record as a marker would.
#[tokio::test]
async fn a_range_whose_last_offsets_hold_no_record_does_not_stall() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("tx", 1);
    let posts = generate_posts(5, 1, T0, 1_000);
    kafka.produce("tx", posts.iter().map(GeneratedPost::record));
    let mut o = options(&kafka, "tx");
    // A stall would fail the epoch after this long (instead of hanging the test).
    o.poll_timeout = Duration::from_secs(20);
    let mut source = KafkaSource::new(o, "kafka", &Metrics::new()).unwrap();
    let plan = EpochInput {
        planned_at_ms: T0,
        ranges: vec![PartitionRange {
            partition: TopicPartition::new("tx", 0),
            from: 0,
            until: 7,
            idle: false,
        }],
    };
    let mut out = CollectingSender::new();
    source
        .read_epoch(0, &plan.encode(), &mut out)
        .await
        .unwrap();
    let offsets: Vec<i64> = out.records().iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
    assert_eq!(source.describe_offset(), "tx/0:7");
}

#[tokio::test]
async fn latest_starts_at_the_end_and_a_pattern_finds_new_topics() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("posts-a", 2);
    let old = generate_posts(10, 2, T0, 1_000);
    kafka.produce("posts-a", old.iter().map(GeneratedPost::record));
    let o = KafkaSourceOptions {
        topics: vec![],
        topic_pattern: Some("^posts-.*".into()),
        starting_offsets: StartingOffsets::Latest,
        ..options(&kafka, "unused")
    };
    let mut source = KafkaSource::new(o, "kafka", &Metrics::new()).unwrap();
    let mut out = CollectingSender::new();
    assert_eq!(source.plan_epoch(0).await.unwrap(), EpochPlan::Idle);
    assert_eq!(source.describe_offset(), "posts-a/0:5 posts-a/1:5");
    // Records after the start are read; a topic created later is read from its start.
    let new = generate_posts(4, 2, T0, 1_000);
    kafka.produce("posts-a", new.iter().map(GeneratedPost::record));
    kafka.create_topic("posts-b", 1);
    kafka.create_topic("other", 1);
    kafka.produce(
        "posts-b",
        new.iter().map(|p| TestRecord {
            partition: 0,
            ..p.record()
        }),
    );
    kafka.produce(
        "other",
        new.iter().map(|p| TestRecord {
            partition: 0,
            ..p.record()
        }),
    );
    read_until_idle(&mut source, 0, &mut out).await.unwrap();
    let found: Vec<(String, i64)> = out
        .records()
        .into_iter()
        .map(|r| (r.origin, r.offset))
        .collect();
    let expect: Vec<(String, i64)> = [
        ("kafka:posts-a/0", 5),
        ("kafka:posts-a/0", 6),
        ("kafka:posts-a/1", 5),
        ("kafka:posts-a/1", 6),
        ("kafka:posts-b/0", 0),
        ("kafka:posts-b/0", 1),
        ("kafka:posts-b/0", 2),
        ("kafka:posts-b/0", 3),
    ]
    .into_iter()
    .map(|(o, n)| (o.to_string(), n))
    .collect();
    assert_eq!(found, expect);
}

/// `starting_offsets` per partition: a listed offset, -1 (latest), -2 (earliest), and a
/// partition not listed (earliest). Later records of every partition are read on.
#[tokio::test]
async fn per_partition_starting_offsets_start_where_asked() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("posts", 4);
    // 40 posts: offsets 0..10 in each partition.
    let posts = generate_posts(40, 4, T0, 1_000);
    kafka.produce("posts", posts.iter().map(GeneratedPost::record));
    let o = KafkaSourceOptions {
        starting_offsets: StartingOffsets::PerPartition(BTreeMap::from([(
            "posts".to_string(),
            BTreeMap::from([(0, 7), (1, -1), (2, -2)]),
        )])),
        ..options(&kafka, "posts")
    };
    let mut source = KafkaSource::new(o, "kafka", &Metrics::new()).unwrap();
    let mut out = CollectingSender::new();
    read_until_idle(&mut source, 0, &mut out).await.unwrap();
    let first: Vec<(String, i64)> = out
        .records()
        .into_iter()
        .map(|r| (r.origin, r.offset))
        .collect();
    let expect = |ranges: &[(i32, std::ops::Range<i64>)]| -> Vec<(String, i64)> {
        ranges
            .iter()
            .flat_map(|(p, r)| r.clone().map(move |o| (format!("kafka:posts/{p}"), o)))
            .collect()
    };
    assert_eq!(first, expect(&[(0, 7..10), (2, 0..10), (3, 0..10)]));
    assert_eq!(
        source.describe_offset(),
        "posts/0:10 posts/1:10 posts/2:10 posts/3:10"
    );
    // Then every partition goes on from where it stands, partition 1 included.
    let more = generate_posts(48, 4, T0, 1_000).split_off(40);
    kafka.produce("posts", more.iter().map(GeneratedPost::record));
    let mut next = CollectingSender::new();
    read_until_idle(&mut source, 1, &mut next).await.unwrap();
    let later: Vec<(String, i64)> = next
        .records()
        .into_iter()
        .map(|r| (r.origin, r.offset))
        .collect();
    assert_eq!(
        later,
        expect(&[(0, 10..12), (1, 10..12), (2, 10..12), (3, 10..12)])
    );
}

/// `on_commit` reports the offsets an epoch reached to the consumer group, for lag tools.
#[tokio::test]
async fn committed_epochs_are_reported_to_the_consumer_group() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("posts", 2);
    let posts = generate_posts(40, 2, T0, 1_000);
    kafka.produce("posts", posts.iter().map(GeneratedPost::record));
    let mut o = options(&kafka, "posts");
    o.group_id = Some("dashboards".into());
    o.max_offsets_per_trigger = Some(10);
    let mut source = KafkaSource::new(o, "kafka", &Metrics::new()).unwrap();
    let mut out = CollectingSender::new();
    let plans = read_until_idle(&mut source, 0, &mut out).await.unwrap();
    assert_eq!(plans.len(), 4);
    // Every sink committed epoch 1 (of 0..=3): offsets 10 per partition.
    source.on_commit(1).await.unwrap();
    let committed = committed_offsets(&kafka, "dashboards");
    assert_eq!(committed, vec![Offset::Offset(10), Offset::Offset(10)]);
}

/// Polls the offsets committed under `group` for `posts/0` and `posts/1` until both are set
/// (commits are sent without waiting; the mock takes milliseconds).
fn committed_offsets(kafka: &MockKafka, group: &str) -> Vec<Offset> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap_servers())
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("posts", 0);
    tpl.add_partition("posts", 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let c = consumer
            .committed_offsets(tpl.clone(), Duration::from_secs(10))
            .unwrap();
        let offsets: Vec<Offset> = c.elements().iter().map(|e| e.offset()).collect();
        if offsets.iter().all(|o| *o != Offset::Invalid) || Instant::now() > deadline {
            return offsets;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A run restored from a checkpoint commits the checkpoint's offsets to the group at its first
/// plan, even with nothing new to read: the stopped run's last commit may never have left it,
/// and the lag a dashboard shows would otherwise stay stale.
#[tokio::test]
async fn a_restored_run_reports_its_checkpoint_offsets_to_the_group() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("posts", 2);
    let posts = generate_posts(40, 2, T0, 1_000);
    kafka.produce("posts", posts.iter().map(GeneratedPost::record));
    let mut o = options(&kafka, "posts");
    o.group_id = Some("restored".into());
    // The first run reads everything, is checkpointed, and stops before any commit.
    let mut first = KafkaSource::new(o.clone(), "kafka", &Metrics::new()).unwrap();
    read_until_idle(&mut first, 0, &mut CollectingSender::new())
        .await
        .unwrap();
    let state = first.snapshot().unwrap();
    drop(first);
    let mut second = KafkaSource::new(o, "kafka", &Metrics::new()).unwrap();
    second.restore(&state).unwrap();
    assert!(matches!(
        second.plan_epoch(9).await.unwrap(),
        EpochPlan::Idle
    ));
    assert_eq!(
        committed_offsets(&kafka, "restored"),
        vec![Offset::Offset(20), Offset::Offset(20)]
    );
}

/// A scale-out worker's pipeline for one partition reads that partition and nothing else, and
/// its state is marked as that partition's.
#[tokio::test]
async fn a_source_restricted_to_partitions_reads_only_them() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("posts", 4);
    let posts = generate_posts(400, 4, T0, 1_000);
    kafka.produce("posts", posts.iter().map(GeneratedPost::record));
    let mut o = options(&kafka, "posts");
    o.partitions = Some(vec![1, 3]);
    let mut source = KafkaSource::new(o, "kafka", &Metrics::new()).unwrap();
    let mut out = CollectingSender::new();
    read_until_idle(&mut source, 0, &mut out).await.unwrap();
    let mut want = expected("posts", &posts);
    want.retain(|origin, _| origin.ends_with("/1") || origin.ends_with("/3"));
    assert_eq!(by_origin(&out.records()), want);
    assert_eq!(source.describe_offset(), "posts/1:100 posts/3:100");
    let all = KafkaSource::new(options(&kafka, "posts"), "kafka", &Metrics::new()).unwrap();
    assert_ne!(source.state_signature(), all.state_signature());
}
