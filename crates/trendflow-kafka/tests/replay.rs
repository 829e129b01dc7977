//! Crash and replay: a source restored from the checkpoint of epoch k, replaying the recorded
//! plan of epoch k+1 and going on, reads what a run without crash reads: nothing lost,
//! nothing twice, the replayed epoch byte for byte, the same event-time frontiers.

use std::sync::Arc;
use std::time::Duration;

use trendflow_core::metrics::Metrics;
use trendflow_core::{EpochPlan, RawBatch, Source};
use trendflow_kafka::testkit::{
    CollectedRecord, CollectingSender, GeneratedPost, MockKafka, created_at_event_time,
    generate_posts, read_until_idle,
};
use trendflow_kafka::{KafkaSource, KafkaSourceOptions, StartingOffsets};

const T0: i64 = 1_618_466_405_000;

fn options(kafka: &MockKafka) -> KafkaSourceOptions {
    KafkaSourceOptions {
        bootstrap_servers: kafka.bootstrap_servers().to_string(),
        topics: vec!["posts".into()],
        starting_offsets: StartingOffsets::Earliest,
        max_offsets_per_trigger: Some(40),
        batch_bytes: 1_500,
        poll_timeout: Duration::from_secs(30),
        event_time: Some(created_at_event_time()),
        ..Default::default()
    }
}

/// What identifies a batch: origin, first line, line count and bytes.
fn batch_identity(b: &Arc<RawBatch>) -> (String, u64, usize, Vec<u8>) {
    (b.origin.to_string(), b.first_line, b.lines, b.data.to_vec())
}

fn sorted(mut records: Vec<CollectedRecord>) -> Vec<CollectedRecord> {
    records.sort();
    records
}

#[tokio::test]
async fn a_restored_source_replays_the_recorded_epoch_and_goes_on_exactly() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("posts", 4);
    let posts = generate_posts(400, 4, T0, 1_000);
    kafka.produce("posts", posts.iter().map(GeneratedPost::record));

    // The run that crashes: epochs 0..=3 complete, checkpoint after epoch 3.
    let mut crashed = KafkaSource::new(options(&kafka), "kafka", &Metrics::new()).unwrap();
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
    // Epoch 4 is recorded and read, but the process dies before it is checkpointed: its
    // output is lost.
    let EpochPlan::Input(recorded) = crashed.plan_epoch(4).await.unwrap() else {
        panic!("epoch 4 has data")
    };
    let mut lost = CollectingSender::new();
    crashed.read_epoch(4, &recorded, &mut lost).await.unwrap();
    drop(crashed);
    // Records keep arriving while the pipeline is down.
    let more = generate_posts(500, 4, T0, 1_000).split_off(400);
    kafka.produce("posts", more.iter().map(GeneratedPost::record));

    // The restart: restore, replay epoch 4 as recorded, then go on.
    let mut restarted = KafkaSource::new(options(&kafka), "kafka", &Metrics::new()).unwrap();
    restarted.restore(&checkpoint).unwrap();
    let mut replayed = CollectingSender::new();
    restarted
        .read_epoch(4, &recorded, &mut replayed)
        .await
        .unwrap();
    // The replayed epoch is the lost one, byte for byte, frontier included (the records
    // produced meanwhile are not in it).
    assert!(!replayed.batches.is_empty());
    assert_eq!(
        replayed
            .batches
            .iter()
            .map(batch_identity)
            .collect::<Vec<_>>(),
        lost.batches.iter().map(batch_identity).collect::<Vec<_>>()
    );
    assert_eq!(replayed.frontiers, lost.frontiers);
    let mut after = CollectingSender::new();
    read_until_idle(&mut restarted, 5, &mut after)
        .await
        .unwrap();

    // A run without crash, over the same 500 records.
    let mut clean = KafkaSource::new(options(&kafka), "kafka", &Metrics::new()).unwrap();
    let mut clean_out = CollectingSender::new();
    read_until_idle(&mut clean, 0, &mut clean_out)
        .await
        .unwrap();
    assert_eq!(clean_out.records().len(), 500);

    let mut recovered = before_crash.records();
    recovered.extend(replayed.records());
    recovered.extend(after.records());
    let recovered = sorted(recovered);
    let mut unique = recovered.clone();
    unique.dedup();
    assert_eq!(unique.len(), recovered.len(), "a record read twice");
    assert_eq!(
        recovered,
        sorted(clean_out.records()),
        "records lost or changed"
    );
    assert_eq!(restarted.describe_offset(), clean.describe_offset());
    // The frontiers of epochs 0..=4 are those of the clean run's first five epochs.
    let mut frontiers = before_crash.frontiers.clone();
    frontiers.extend(&replayed.frontiers);
    assert_eq!(frontiers[..], clean_out.frontiers[..5]);
}

#[tokio::test]
async fn reading_a_recorded_plan_twice_sends_identical_batches() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("posts", 4);
    let posts = generate_posts(200, 4, T0, 1_000);
    kafka.produce("posts", posts.iter().map(GeneratedPost::record));
    let o = KafkaSourceOptions {
        batch_bytes: 300,
        ..options(&kafka)
    };
    let mut source = KafkaSource::new(o, "kafka", &Metrics::new()).unwrap();
    let EpochPlan::Input(plan) = source.plan_epoch(0).await.unwrap() else {
        panic!("data is waiting")
    };
    let state = source.snapshot().unwrap();
    let mut first = CollectingSender::new();
    source.read_epoch(0, &plan, &mut first).await.unwrap();
    source.restore(&state).unwrap();
    let mut second = CollectingSender::new();
    source.read_epoch(0, &plan, &mut second).await.unwrap();
    assert_eq!(first.records().len(), 40);
    assert!(first.batches.len() > 8, "several batches per partition");
    assert_eq!(
        first.batches.iter().map(batch_identity).collect::<Vec<_>>(),
        second
            .batches
            .iter()
            .map(batch_identity)
            .collect::<Vec<_>>()
    );
    assert_eq!(first.frontiers, second.frontiers);
    assert_eq!(first.frontiers.len(), 1);
}
