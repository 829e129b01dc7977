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
