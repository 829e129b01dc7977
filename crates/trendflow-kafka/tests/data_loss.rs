//! `fail_on_data_loss`: offsets the source still has to read are gone. The mock cluster keeps
//! at most 5 MB per partition and deletes its oldest record sets beyond that, as retention
//! does; producing large records one set at a time moves a partition's earliest offset past
//! the source's position, either before an epoch is planned or between plan and read.

use std::time::Duration;

use trendflow_core::metrics::Metrics;
use trendflow_core::metrics::names::KAFKA_OFFSETS_LOST as OFFSETS_LOST;
use trendflow_core::{EpochPlan, Source};
use trendflow_kafka::testkit::{
    CollectingSender, GeneratedPost, MockKafka, TestRecord, generate_posts, read_until_idle,
};
use trendflow_kafka::{KafkaSource, KafkaSourceOptions, StartingOffsets};

const T0: i64 = 1_618_466_405_000;

fn options(kafka: &MockKafka, fail_on_data_loss: bool) -> KafkaSourceOptions {
    KafkaSourceOptions {
        bootstrap_servers: kafka.bootstrap_servers().to_string(),
        topics: vec!["posts".into()],
        starting_offsets: StartingOffsets::Earliest,
        fail_on_data_loss,
        poll_timeout: Duration::from_secs(30),
        ..Default::default()
    }
}

/// Produces `n` records of 100 kB to partition 0, each in a record set of its own.
fn produce_large(kafka: &MockKafka, n: usize) {
    let payload = format!("{{\"text\":\"{}\"}}", "x".repeat(100_000)).into_bytes();
    for _ in 0..n {
        kafka.produce(
            "posts",
            [TestRecord {
                partition: 0,
                payload: Some(payload.clone()),
            }],
        );
    }
}

fn produce_small(kafka: &MockKafka, n: usize) {
    let posts = generate_posts(n, 1, T0, 1_000);
    kafka.produce("posts", posts.iter().map(GeneratedPost::record));
}

#[tokio::test]
async fn offsets_deleted_before_planning_fail_the_epoch_or_are_skipped_and_counted() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("posts", 1);
    produce_small(&kafka, 10);
    let mut source = KafkaSource::new(options(&kafka, true), "kafka", &Metrics::new()).unwrap();
    read_until_idle(&mut source, 0, &mut CollectingSender::new())
        .await
        .unwrap();
    let checkpoint = source.snapshot().unwrap();
    drop(source);
    // While the pipeline is down, 10 MB arrive and the oldest 5 MB are deleted.
    produce_large(&kafka, 100);
    let (low, high) = kafka.watermarks("posts", 0);
    assert!(
        low > 10,
        "the mock deleted offsets past the checkpoint's 10 (earliest {low})"
    );

    let mut strict = KafkaSource::new(options(&kafka, true), "kafka", &Metrics::new()).unwrap();
    strict.restore(&checkpoint).unwrap();
    let error = strict.plan_epoch(1).await.unwrap_err().0;
    assert!(
        error.contains(&format!(
            "offsets 10..{low} of posts/0 are no longer available"
        )),
        "{error}"
    );
    assert!(error.contains("fail_on_data_loss: false"), "{error}");

    let metrics = Metrics::new();
    let mut lenient = KafkaSource::new(options(&kafka, false), "kafka", &metrics).unwrap();
    lenient.restore(&checkpoint).unwrap();
    let mut out = CollectingSender::new();
    read_until_idle(&mut lenient, 1, &mut out).await.unwrap();
    let offsets: Vec<i64> = out.records().iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (low..high).collect::<Vec<_>>());
    assert_eq!(metrics.value(OFFSETS_LOST, "kafka"), low - 10);
}

#[tokio::test]
async fn offsets_deleted_between_plan_and_read_fail_the_epoch_or_are_skipped_and_counted() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("posts", 1);
    produce_small(&kafka, 10);
    produce_large(&kafka, 20);
    let mut strict = KafkaSource::new(options(&kafka, true), "kafka", &Metrics::new()).unwrap();
    let EpochPlan::Input(plan) = strict.plan_epoch(0).await.unwrap() else {
        panic!("data is waiting")
    };
    // The epoch is recorded as 0..30; before it is read (or when it is replayed, much
    // later), the beginning of the partition is deleted.
    produce_large(&kafka, 40);
    let (low, _) = kafka.watermarks("posts", 0);
    assert!(
        low > 0 && low < 30,
        "the mock deleted part of the planned range 0..30 (earliest {low})"
    );

    let error = strict
        .read_epoch(0, &plan, &mut CollectingSender::new())
        .await
        .unwrap_err()
        .0;
    assert!(
        error.contains(&format!(
            "offsets 0..{low} of posts/0 are no longer available"
        )),
        "{error}"
    );

    let metrics = Metrics::new();
    let mut lenient = KafkaSource::new(options(&kafka, false), "kafka", &metrics).unwrap();
    let mut out = CollectingSender::new();
    lenient.read_epoch(0, &plan, &mut out).await.unwrap();
    let offsets: Vec<i64> = out.records().iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (low..30).collect::<Vec<_>>());
    assert_eq!(metrics.value(OFFSETS_LOST, "kafka"), low);
    assert_eq!(lenient.describe_offset(), "posts/0:30");
}
