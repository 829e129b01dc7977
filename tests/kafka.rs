//! Kafka end to end on the real binary, against librdkafka's mock cluster hosted by this test
//! process (a real Kafka protocol endpoint on 127.0.0.1 that the pipeline process joins):
//! generated tweets on a topic with eight partitions, read by the tutorial's windowed count.
//! A run killed with kill -9 at random moments and restarted ends with exactly the tables of
//! a run that never crashed, every tweet counted once; the result topic holds one record per
//! (window, word) with the final count.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use trendflow_kafka::testkit::MockKafka;

const CONFIG: &str = "tests/fixtures/kafka-pipeline.yaml";
const PARTITIONS: i32 = 8;

fn command(dir: &Path, kafka: &MockKafka, name: &str) -> Command {
    let out = dir.join(name);
    let mut c = Command::new(bin());
    c.args(["run", CONFIG])
        .args([
            "--set".to_string(),
            format!(
                "sources.tweets.bootstrap_servers={}",
                kafka.bootstrap_servers()
            ),
            "--set".to_string(),
            format!(
                "sinks.counts_topic.bootstrap_servers={}",
                kafka.bootstrap_servers()
            ),
            "--set".to_string(),
            format!("sinks.counts_topic.topic=counts-{name}"),
            "--set".to_string(),
            format!("sinks.result.path={}", out.join("q2.csv").display()),
            "--set".to_string(),
            format!("sinks.id_table.path={}", out.join("ids.csv").display()),
            "--set".to_string(),
            format!("dead_letter.path={}", out.join("dead.jsonl").display()),
            "--set".to_string(),
            format!("checkpoint.path={}", out.join("checkpoints").display()),
        ])
        .current_dir(root())
        .env("TRENDFLOW_RUN_DIR", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

fn run_to_end(dir: &Path, kafka: &MockKafka, name: &str) {
    let status = command(dir, kafka, name).status().unwrap();
    assert!(status.success(), "run {name} failed");
}

/// The result topic as (key, value) with the last value of each key.
fn topic_table(kafka: &MockKafka, topic: &str) -> BTreeMap<String, String> {
    kafka
        .read_topic(topic)
        .into_iter()
        .map(|r| {
            (
                String::from_utf8(r.key.unwrap()).unwrap(),
                String::from_utf8(r.payload.unwrap()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_run_killed_at_random_moments_equals_a_clean_run() {
    let dir = tempfile::tempdir().unwrap();
    let kafka = MockKafka::start(3);
    for t in ["counts-clean", "counts-crashed"] {
        kafka.create_topic(t, 2);
    }
    let tweets = produce_generated_tweets(&kafka, dir.path(), (24, 150), PARTITIONS);

    run_to_end(dir.path(), &kafka, "clean");
    let (_, want) = table(&dir.path().join("clean/q2.csv"));
    assert!(want.len() > 1_000, "too small a result: {}", want.len());
    let ids = parse_csv(&std::fs::read_to_string(dir.path().join("clean/ids.csv")).unwrap());
    // 1% of the generated lines are malformed (dead letters): the rest is counted once.
    assert!(
        ids.len() > tweets * 9 / 10,
        "{} ids of {tweets} lines",
        ids.len()
    );
    assert!(
        ids.iter().skip(1).all(|r| r[1] == "1"),
        "an id counted twice"
    );
    let want_topic = topic_table(&kafka, "counts-clean");
    assert_eq!(
        want_topic.len(),
        want.len(),
        "one record per (window, word)"
    );

    let (kills, finished) = kill_at_random_moments(5, 80, (40, 300), || {
        command(dir.path(), &kafka, "crashed").spawn().unwrap()
    });
    if !finished {
        run_to_end(dir.path(), &kafka, "crashed");
    }
    eprintln!("{kills} kills");
    assert!(kills >= 3, "only {kills} kills: too small an input");
    let (_, got) = table(&dir.path().join("crashed/q2.csv"));
    assert!(got == want, "after {kills} kills:\n{}", diff(&want, &got));
    let got_ids = parse_csv(&std::fs::read_to_string(dir.path().join("crashed/ids.csv")).unwrap());
    assert_eq!(got_ids, ids, "after {kills} kills: ids differ");
    // The sink is at-least-once: a replayed epoch may write its records again, with the same
    // keys and values, so the topic read as a table (latest value per key) is the same.
    assert_eq!(topic_table(&kafka, "counts-crashed"), want_topic);
}

/// The tutorial's windowed count (Q2: 3-hour windows sliding every 5 minutes, watermark 1
/// minute, append mode) reading `topic` continuously, with a file sink and the source's offsets
/// committed to the consumer group `group` once the sink has committed each epoch.
fn continuous_pipeline(
    dir: &Path,
    kafka: &MockKafka,
    topic: &str,
    group: &str,
    idle: &str,
) -> std::path::PathBuf {
    let yaml = format!(
        "name: {group}
trigger: 200ms
api:
  enabled: false
sources:
  tweets:
    type: kafka
    bootstrap_servers: {servers}
    topics: [{topic}]
    starting_offsets: earliest
    group_id: {group}
{idle}
transforms:
  parse:
    type: parse_json
    inputs: [tweets]
    format: twitter_v1
    event_time: created
  words:
    type: tokenize
    inputs: [parse]
    mode: split
  hashtag_counts:
    type: window_count
    inputs: [words]
    window: 3h
    slide: 5m
    watermark: 1m
    output_mode: append
    max_future_skew: off
sinks:
  result:
    type: file
    inputs: [hashtag_counts]
    path: {out}
",
        servers = kafka.bootstrap_servers(),
        out = dir.join(format!("{group}.csv")).display(),
    );
    let path = dir.join(format!("{group}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

/// A pipeline process, killed when dropped (a failed assertion included).
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The data rows of a CSV result file (none while it does not exist).
fn result_rows(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    parse_csv(&text)
        .into_iter()
        .skip(1)
        .filter(|r| r.iter().any(|f| !f.is_empty()))
        .collect()
}

/// The offsets committed under `group` for the first `partitions` partitions of `topic`
/// (-1 where none is).
fn committed(kafka: &MockKafka, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap_servers())
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    consumer
        .committed_offsets(tpl, std::time::Duration::from_secs(10))
        .map(|c| {
            c.elements()
                .iter()
                .map(|e| e.offset().to_raw().unwrap_or(-1))
                .collect()
        })
        .unwrap_or_default()
}

/// A partition that receives nothing holds the watermark of a continuous run at its lowest:
/// with `idle_timeout` it becomes idle and the closed windows of the other partitions are
/// emitted; without, no window ever closes. Both runs read the same topic at the same time,
/// every record included.
#[test]
fn an_idle_partition_does_not_block_windows_with_idle_timeout() {
    use trendflow_kafka::testkit::{GeneratedPost, generate_posts};
    let dir = tempfile::tempdir().unwrap();
    let kafka = MockKafka::start(1);
    // Three partitions; the posts go to 0 and 1 only.
    kafka.create_topic("tweets", 3);
    let idle = continuous_pipeline(dir.path(), &kafka, "tweets", "idle", "    idle_timeout: 1s");
    let held = continuous_pipeline(dir.path(), &kafka, "tweets", "held", "");
    let start = |config: &Path| {
        Running(
            Command::new(bin())
                .args(["run", config.to_str().unwrap()])
                .current_dir(root())
                .env("TRENDFLOW_RUN_DIR", dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let mut with_idle = start(&idle);
    let mut without = start(&held);

    // 20 posts (200 s of event time) every 200 ms, until the run with idle_timeout emits
    // closed windows: its partition 2 becomes idle a second after the run first saw it, and
    // the next epoch with data lets the watermark follow partitions 0 and 1.
    const T0: i64 = 1_618_466_405_000;
    let posts = generate_posts(20 * 600, 2, T0, 10_000);
    let mut chunks = posts.chunks(20);
    let mut produced = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while result_rows(&dir.path().join("idle.csv")).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no closed window emitted with idle_timeout after {produced} posts"
        );
        assert!(
            with_idle.0.try_wait().unwrap().is_none(),
            "the run with idle_timeout exited"
        );
        let chunk = chunks.next().expect("posts left to produce");
        kafka.produce("tweets", chunk.iter().map(GeneratedPost::record));
        produced += chunk.len();
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let emitted = result_rows(&dir.path().join("idle.csv"));
    drop(with_idle);
    // Append mode: every row is a closed window, ended before the watermark (the greatest
    // event time of the slower partition, less a minute).
    let watermark = T0 + (produced as i64 - 2) * 10_000 - 60_000;
    for r in &emitted {
        let end = trendflow_core::time::parse_iso8601(&r[1]).unwrap();
        assert!(end <= watermark, "{r:?} is not closed");
    }

    // The run without idle_timeout reads every record produced (the offsets it commits once
    // its sink has committed the epoch reach the end of partitions 0 and 1), and emits nothing.
    let end = vec![produced as i64 / 2; 2];
    wait_until("the run without idle_timeout to read every post", || {
        assert!(
            without.0.try_wait().unwrap().is_none(),
            "the run without idle_timeout exited"
        );
        committed(&kafka, "held", "tweets", 2) == end
    });
    let rows = result_rows(&dir.path().join("held.csv"));
    drop(without);
    assert!(
        rows.is_empty(),
        "without idle_timeout the empty partition holds every window open, yet: {:?}",
        &rows[..rows.len().min(5)]
    );
    assert!(!emitted.is_empty());
}
