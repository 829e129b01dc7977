//! The mock cluster serves other processes: end-to-end tests keep a `MockKafka` alive in the
//! test process and run `trendflow` against its bootstrap servers. Here the other process is
//! this test binary again, run as a child that reads the topic with a `KafkaSource`.

use std::process::Command;
use std::time::Duration;

use trendflow_core::Source;
use trendflow_core::metrics::Metrics;
use trendflow_kafka::testkit::{
    CollectingSender, GeneratedPost, MockKafka, generate_posts, read_until_idle,
};
use trendflow_kafka::{KafkaSource, KafkaSourceOptions, StartingOffsets};

/// Set in the child: the bootstrap servers of the parent's mock cluster.
const CHILD_ENV: &str = "TRENDFLOW_KAFKA_TEST_CHILD_BOOTSTRAP";
const POSTS: usize = 120;

#[test]
fn another_process_reads_from_the_mock_cluster() {
    if let Ok(bootstrap_servers) = std::env::var(CHILD_ENV) {
        return child(bootstrap_servers);
    }
    let kafka = MockKafka::start(2);
    kafka.create_topic("posts", 3);
    let posts = generate_posts(POSTS, 3, 1_618_466_405_000, 1_000);
    kafka.produce("posts", posts.iter().map(GeneratedPost::record));
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "another_process_reads_from_the_mock_cluster",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, kafka.bootstrap_servers())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("child read {POSTS} records")),
        "the child did not read the topic:\n{stdout}\n{stderr}"
    );
}

/// Reads every record of the parent's topic and says how many.
fn child(bootstrap_servers: String) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let options = KafkaSourceOptions {
        bootstrap_servers,
        topics: vec!["posts".into()],
        starting_offsets: StartingOffsets::Earliest,
        poll_timeout: Duration::from_secs(30),
        ..Default::default()
    };
    let mut source = KafkaSource::new(options, "child", &Metrics::new()).unwrap();
    let mut out = CollectingSender::new();
    runtime
        .block_on(read_until_idle(&mut source, 0, &mut out))
        .unwrap();
    assert_eq!(source.describe_offset(), "posts/0:40 posts/1:40 posts/2:40");
    println!("child read {} records", out.records().len());
}
