//! The per-partition event-time frontier against the mock cluster: a partition without data
//! holds the frontier back, unless `idle_timeout` makes it idle; a replay uses the idle set
//! recorded in the plan.

use std::time::Duration;

use trendflow_core::metrics::Metrics;
use trendflow_core::{EpochPlan, EventTime, Source};
use trendflow_kafka::testkit::{
    CollectingSender, GeneratedPost, MockKafka, created_at_event_time, generate_posts,
};
use trendflow_kafka::{EpochInput, KafkaSource, KafkaSourceOptions, StartingOffsets};

const T0: i64 = 1_618_466_405_000;
const SECOND: i64 = 1_000;

fn options(kafka: &MockKafka, topic: &str, idle_timeout: Option<Duration>) -> KafkaSourceOptions {
    KafkaSourceOptions {
        bootstrap_servers: kafka.bootstrap_servers().to_string(),
        topics: vec![topic.into()],
        starting_offsets: StartingOffsets::Earliest,
        poll_timeout: Duration::from_secs(30),
        event_time: Some(created_at_event_time()),
        idle_timeout,
        ..Default::default()
    }
}

/// Plans and reads one epoch; returns its plan and what it sent.
async fn epoch(source: &mut KafkaSource, n: u64) -> (Vec<u8>, CollectingSender) {
    let EpochPlan::Input(plan) = source.plan_epoch(n).await.unwrap() else {
        panic!("epoch {n} has data")
    };
    let mut out = CollectingSender::new();
    source.read_epoch(n, &plan, &mut out).await.unwrap();
    (plan, out)
}

/// Posts to partitions 0 and 1 of a 3-partition topic; partition 2 stays empty.
#[tokio::test]
async fn an_empty_partition_holds_the_frontier_unless_idle() {
    let kafka = MockKafka::start(1);
    kafka.create_topic("posts", 3);
    let posts = generate_posts(20, 2, T0, SECOND);
    kafka.produce("posts", posts.iter().map(GeneratedPost::record));

    // Without idle_timeout partition 2 might still deliver anything: no window is complete.
    let mut source =
        KafkaSource::new(options(&kafka, "posts", None), "kafka", &Metrics::new()).unwrap();
    let (_, out) = epoch(&mut source, 0).await;
    assert_eq!(out.records().len(), 20);
    assert_eq!(out.frontiers, vec![EventTime::MIN]);

    // With idle_timeout 0, a partition without new records is idle at once: the frontier is
    // the slower of partitions 0 (posts 0, 2, .. 18) and 1 (1, 3, .. 19).
    let o = options(&kafka, "posts", Some(Duration::ZERO));
    let mut source = KafkaSource::new(o, "kafka", &Metrics::new()).unwrap();
    let (plan, out) = epoch(&mut source, 0).await;
    assert_eq!(out.frontiers, vec![T0 + 18 * SECOND]);
    let idle: Vec<bool> = EpochInput::decode(&plan)
        .unwrap()
        .ranges
        .iter()
        .map(|r| r.idle)
        .collect();
    assert_eq!(idle, vec![false, false, true]);
}

/// Partition 2 delivers early posts, then falls silent while 0 and 1 go on.
#[tokio::test]
async fn a_silent_partition_holds_the_frontier_at_its_maximum_unless_idle() {
    for idle_timeout in [None, Some(Duration::ZERO)] {
        let kafka = MockKafka::start(1);
        kafka.create_topic("posts", 3);
        let early = generate_posts(30, 3, T0, SECOND);
        kafka.produce("posts", early.iter().map(GeneratedPost::record));
        let mut source = KafkaSource::new(
            options(&kafka, "posts", idle_timeout),
            "kafka",
            &Metrics::new(),
        )
        .unwrap();
        let (_, first) = epoch(&mut source, 0).await;
        // Maxima: partition 0 at post 27, 1 at 28, 2 at 29.
        assert_eq!(first.frontiers, vec![T0 + 27 * SECOND]);
        let checkpoint = source.snapshot().unwrap();

        let later: Vec<GeneratedPost> = generate_posts(20, 2, T0 + 100 * SECOND, SECOND);
        kafka.produce("posts", later.iter().map(GeneratedPost::record));
        let (plan, second) = epoch(&mut source, 1).await;
        let expected = match idle_timeout {
            // Partition 2 is the slowest and holds the frontier.
            None => T0 + 29 * SECOND,
            // Partition 2 is idle: partitions 0 (..post 18) and 1 (..post 19) decide.
            Some(_) => T0 + 118 * SECOND,
        };
        assert_eq!(
            second.frontiers,
            vec![expected],
            "idle_timeout {idle_timeout:?}"
        );

        // A replay computes the frontier from the idle set recorded in the plan, whatever
        // the replaying source's own setting and clock.
        let o = options(&kafka, "posts", None);
        let mut replaying = KafkaSource::new(o, "kafka", &Metrics::new()).unwrap();
        replaying.restore(&checkpoint).unwrap();
        let mut replayed = CollectingSender::new();
        replaying.read_epoch(1, &plan, &mut replayed).await.unwrap();
        assert_eq!(replayed.frontiers, second.frontiers);
    }
}
