//! The bounded source (`bounded: true`, the `available_now` trigger) against librdkafka's mock
//! cluster: it reads what is available when the run starts, in as many epochs as
//! `max_offsets_per_trigger` requires, then is exhausted; records and partitions that come
//! later are left to the next run; a restored run replays, takes its own end offsets, and ends;
//! partitions read to their end no longer hold the frontier.

use std::collections::BTreeMap;
use std::time::Duration;

use trendflow_core::metrics::Metrics;
use trendflow_core::{Epoch, EpochPlan, Source};
use trendflow_kafka::testkit::{
    CollectedRecord, CollectingSender, GeneratedPost, MockKafka, created_at_event_time,
    generate_posts,
};
use trendflow_kafka::{
    EpochInput, KafkaSource, KafkaSourceOptions, StartingOffsets, TopicPartition,
};

const T0: i64 = 1_618_466_405_000;
const SECOND: i64 = 1_000;

fn options(kafka: &MockKafka, topic: &str, cap: Option<u64>) -> KafkaSourceOptions {
    KafkaSourceOptions {
        bootstrap_servers: kafka.bootstrap_servers().to_string(),
        topics: vec![topic.to_string()],
        starting_offsets: StartingOffsets::Earliest,
        max_offsets_per_trigger: cap,
        poll_timeout: Duration::from_secs(30),
        event_time: Some(created_at_event_time()),
        bounded: true,
        ..Default::default()
    }
}

/// Plans and reads epochs from `first_epoch` on until the source is exhausted; returns the
/// plans read. A bounded source never plans an idle epoch (the run would never end).
async fn read_until_exhausted(
    source: &mut KafkaSource,
    first_epoch: Epoch,
    out: &mut CollectingSender,
) -> Vec<(Epoch, Vec<u8>)> {
    let mut plans = Vec::new();
    for epoch in first_epoch..first_epoch + 1_000 {
        match source.plan_epoch(epoch).await.unwrap() {
            EpochPlan::Input(plan) => {
                source.read_epoch(epoch, &plan, out).await.unwrap();
                plans.push((epoch, plan));
            }
            EpochPlan::Exhausted => return plans,
            EpochPlan::Idle => panic!("a bounded source planned an idle epoch {epoch}"),
        }
    }
    panic!("a bounded source was not exhausted after 1000 epochs")
}

/// The records expected from `posts`, per origin in offset order (offsets from `first`).
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

fn ends(entries: &[(&str, i32, i64)]) -> BTreeMap<TopicPartition, i64> {
    entries
        .iter()
        .map(|&(t, p, o)| (TopicPartition::new(t, p), o))
        .collect()
}

fn planned(plan: &[u8]) -> EpochInput {
    EpochInput::decode(plan).unwrap()
}

#[tokio::test]
async fn reads_exactly_what_was_there_in_ceil_n_over_cap_epochs_then_is_exhausted() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("posts", 4);
    let posts = generate_posts(1_000, 4, T0, SECOND);
    kafka.produce("posts", posts.iter().map(GeneratedPost::record));

    // Without a cap: one epoch.
    let mut source =
        KafkaSource::new(options(&kafka, "posts", None), "kafka", &Metrics::new()).unwrap();
    let mut out = CollectingSender::new();
    let plans = read_until_exhausted(&mut source, 0, &mut out).await;
    assert_eq!(plans.len(), 1);
    assert_eq!(by_origin(&out.records()), expected("posts", &posts));
    // Every partition is read to its end at once: the frontier is the greatest event time.
    assert_eq!(out.frontiers, vec![T0 + 999 * SECOND]);

    // A cap of 300: 75 offsets per partition per epoch, then the last 25 each: 4 epochs.
    let mut source = KafkaSource::new(
        options(&kafka, "posts", Some(300)),
        "kafka",
        &Metrics::new(),
    )
    .unwrap();
    let mut out = CollectingSender::new();
    let plans = read_until_exhausted(&mut source, 0, &mut out).await;
    assert_eq!(plans.len(), 1_000_usize.div_ceil(300));
    let sizes: Vec<u64> = plans
        .iter()
        .map(|(_, p)| planned(p).ranges.iter().map(|r| r.len()).sum())
        .collect();
    assert_eq!(sizes, vec![300, 300, 300, 100]);
    assert_eq!(by_origin(&out.records()), expected("posts", &posts));
    assert_eq!(
        source.end_offsets(),
        Some(&ends(&[
            ("posts", 0, 250),
            ("posts", 1, 250),
            ("posts", 2, 250),
            ("posts", 3, 250)
        ]))
    );
    assert_eq!(
        source.describe_offset(),
        "posts/0:250 posts/1:250 posts/2:250 posts/3:250"
    );
    // Until the end, partition 0 (posts 0, 4, 8...) is the slowest: after k epochs its
    // latest post is 300k - 4. The last epoch reads every partition to its end: all idle, and
    // the frontier is the greatest event time, holding nothing back.
    assert_eq!(
        out.frontiers,
        vec![
            T0 + 296 * SECOND,
            T0 + 596 * SECOND,
            T0 + 896 * SECOND,
            T0 + 999 * SECOND
        ]
    );
    let idle: Vec<Vec<bool>> = plans
        .iter()
        .map(|(_, p)| planned(p).ranges.iter().map(|r| r.idle).collect())
        .collect();
    assert_eq!(idle[0], vec![false; 4]);
    assert_eq!(idle[3], vec![true; 4]);
    // Exhausted it stays.
    assert_eq!(source.plan_epoch(4).await.unwrap(), EpochPlan::Exhausted);
    assert_eq!(source.plan_epoch(4).await.unwrap(), EpochPlan::Exhausted);
}

#[tokio::test]
async fn records_and_partitions_that_come_after_the_first_plan_are_not_read() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("posts-a", 2);
    let posts = generate_posts(100, 2, T0, SECOND);
    kafka.produce("posts-a", posts.iter().map(GeneratedPost::record));
    let o = KafkaSourceOptions {
        topics: vec![],
        topic_pattern: Some("^posts-.*".into()),
        ..options(&kafka, "unused", Some(40))
    };
    let mut source = KafkaSource::new(o.clone(), "kafka", &Metrics::new()).unwrap();
    let mut out = CollectingSender::new();
    let EpochPlan::Input(first) = source.plan_epoch(0).await.unwrap() else {
        panic!("records are waiting")
    };
    source.read_epoch(0, &first, &mut out).await.unwrap();
    // After the first plan: more records, and a new topic matching the pattern.
    let later = generate_posts(160, 2, T0, SECOND).split_off(100);
    kafka.produce("posts-a", later.iter().map(GeneratedPost::record));
    kafka.create_topic("posts-b", 1);
    kafka.produce(
        "posts-b",
        later.iter().take(10).map(|p| {
            let mut r = p.record();
            r.partition = 0;
            r
        }),
    );
    let plans = read_until_exhausted(&mut source, 1, &mut out).await;
    assert_eq!(1 + plans.len(), 100_usize.div_ceil(40));
    assert_eq!(by_origin(&out.records()), expected("posts-a", &posts));
    assert_eq!(
        source.end_offsets(),
        Some(&ends(&[("posts-a", 0, 50), ("posts-a", 1, 50)]))
    );
    assert_eq!(source.describe_offset(), "posts-a/0:50 posts-a/1:50");

    // The next run (restored from the last checkpoint) reads what is there then: the later
    // records, and the new topic from its start.
    let checkpoint = source.snapshot().unwrap();
    let mut next_run = KafkaSource::new(o, "kafka", &Metrics::new()).unwrap();
    next_run.restore(&checkpoint).unwrap();
    let mut out = CollectingSender::new();
    let plans = read_until_exhausted(&mut next_run, 3, &mut out).await;
    assert_eq!(plans.len(), 70_usize.div_ceil(40));
    let mut read: Vec<(String, i64)> = out
        .records()
        .into_iter()
        .map(|r| (r.origin, r.offset))
        .collect();
    read.sort();
    let mut expect: Vec<(String, i64)> = (50..80)
        .flat_map(|o| {
            [
                ("kafka:posts-a/0".to_string(), o),
                ("kafka:posts-a/1".to_string(), o),
            ]
        })
        .chain((0..10).map(|o| ("kafka:posts-b/0".to_string(), o)))
        .collect();
    expect.sort();
    assert_eq!(read, expect);
    assert_eq!(
        next_run.end_offsets(),
        Some(&ends(&[
            ("posts-a", 0, 80),
            ("posts-a", 1, 80),
            ("posts-b", 0, 10)
        ]))
    );
}

#[tokio::test]
async fn a_restored_run_replays_takes_its_own_end_offsets_and_ends() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("posts", 4);
    let posts = generate_posts(400, 4, T0, SECOND);
    kafka.produce("posts", posts.iter().map(GeneratedPost::record));
    let options = || options(&kafka, "posts", Some(40));

    // The run that crashes: epochs 0..=3 checkpointed; epoch 4 recorded and read, its output
    // lost.
    let mut crashed = KafkaSource::new(options(), "kafka", &Metrics::new()).unwrap();
    let mut before_crash = CollectingSender::new();
    for epoch in 0..=3 {
        let EpochPlan::Input(plan) = crashed.plan_epoch(epoch).await.unwrap() else {
            panic!("epoch {epoch} has data")
        };
        crashed
            .read_epoch(epoch, &plan, &mut before_crash)
            .await
            .unwrap();
    }
    let checkpoint = crashed.snapshot().unwrap();
    let EpochPlan::Input(recorded) = crashed.plan_epoch(4).await.unwrap() else {
        panic!("epoch 4 has data")
    };
    let mut lost = CollectingSender::new();
    crashed.read_epoch(4, &recorded, &mut lost).await.unwrap();
    drop(crashed);
    // Records arrive while the pipeline is down.
    let more = generate_posts(500, 4, T0, SECOND).split_off(400);
    kafka.produce("posts", more.iter().map(GeneratedPost::record));

    // The restart: restore, replay epoch 4 as recorded, then plan anew until the end.
    let mut restarted = KafkaSource::new(options(), "kafka", &Metrics::new()).unwrap();
    restarted.restore(&checkpoint).unwrap();
    assert_eq!(restarted.end_offsets(), None);
    let mut replayed = CollectingSender::new();
    restarted
        .read_epoch(4, &recorded, &mut replayed)
        .await
        .unwrap();
    assert_eq!(replayed.records(), lost.records());
    assert_eq!(replayed.frontiers, lost.frontiers);
    let mut after = CollectingSender::new();
    let plans = read_until_exhausted(&mut restarted, 5, &mut after).await;
    // The new run ends where the partitions ended when it first planned: 125 each. It had
    // 500 - 5 × 40 offsets left, 40 an epoch.
    assert_eq!(
        restarted.end_offsets(),
        Some(&ends(&[
            ("posts", 0, 125),
            ("posts", 1, 125),
            ("posts", 2, 125),
            ("posts", 3, 125)
        ]))
    );
    assert_eq!(plans.len(), 300_usize.div_ceil(40));
    assert_eq!(after.frontiers.last(), Some(&(T0 + 499 * SECOND)));
    // Every record once.
    let mut all = before_crash.records();
    all.extend(replayed.records());
    all.extend(after.records());
    let mut every_post = posts.clone();
    every_post.extend(more);
    assert_eq!(by_origin(&all), expected("posts", &every_post));
}

#[tokio::test]
async fn an_empty_topic_is_exhausted_at_once() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("empty", 3);
    let mut source =
        KafkaSource::new(options(&kafka, "empty", Some(10)), "kafka", &Metrics::new()).unwrap();
    assert_eq!(source.plan_epoch(0).await.unwrap(), EpochPlan::Exhausted);
    assert_eq!(
        source.end_offsets(),
        Some(&ends(&[("empty", 0, 0), ("empty", 1, 0), ("empty", 2, 0)]))
    );
    // Records produced now belong to the next run.
    let posts = generate_posts(10, 3, T0, SECOND);
    kafka.produce("empty", posts.iter().map(GeneratedPost::record));
    assert_eq!(source.plan_epoch(0).await.unwrap(), EpochPlan::Exhausted);

    // A topic that does not exist has no partitions: nothing to read.
    let mut source =
        KafkaSource::new(options(&kafka, "missing", None), "kafka", &Metrics::new()).unwrap();
    assert_eq!(source.plan_epoch(0).await.unwrap(), EpochPlan::Exhausted);

    // `latest` on a first run starts at the end: nothing to read (as Spark's available_now).
    let o = KafkaSourceOptions {
        starting_offsets: StartingOffsets::Latest,
        ..options(&kafka, "empty", None)
    };
    let mut source = KafkaSource::new(o, "kafka", &Metrics::new()).unwrap();
    assert_eq!(source.plan_epoch(0).await.unwrap(), EpochPlan::Exhausted);
}

/// Partition 0 holds 100 posts; partition 1 one old post; partition 2 nothing. Without
/// `idle_timeout` an unbounded source's frontier would stay at `i64::MIN` (partition 2) and
/// then at partition 1's old post; bounded, a partition read to its end is left out at once.
#[tokio::test]
async fn a_partition_read_to_its_end_no_longer_holds_the_frontier() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("posts", 3);
    let mut posts = generate_posts(100, 1, T0, SECOND);
    posts.extend(
        generate_posts(1, 1, T0 - 3_600 * SECOND, SECOND)
            .into_iter()
            .map(|mut p| {
                p.partition = 1;
                p
            }),
    );
    kafka.produce("posts", posts.iter().map(GeneratedPost::record));
    let mut source =
        KafkaSource::new(options(&kafka, "posts", Some(50)), "kafka", &Metrics::new()).unwrap();
    let mut out = CollectingSender::new();
    let plans = read_until_exhausted(&mut source, 0, &mut out).await;
    let ranges: Vec<Vec<(i64, i64, bool)>> = plans
        .iter()
        .map(|(_, p)| {
            planned(p)
                .ranges
                .iter()
                .map(|r| (r.from, r.until, r.idle))
                .collect()
        })
        .collect();
    assert_eq!(
        ranges,
        vec![
            // Backlogs 100, 1, 0 under a cap of 50: 49 and 1. Partitions 1 and 2 are done.
            vec![(0, 49, false), (0, 1, true), (0, 0, true)],
            vec![(49, 99, false), (1, 1, true), (0, 0, true)],
            vec![(99, 100, true), (1, 1, true), (0, 0, true)],
        ]
    );
    // Partition 0 decides until it is done too; then the greatest event time.
    assert_eq!(
        out.frontiers,
        vec![T0 + 48 * SECOND, T0 + 98 * SECOND, T0 + 99 * SECOND]
    );
    assert_eq!(out.records().len(), 101);
}
