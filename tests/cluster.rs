//! Scale-out (docs/scale-out.md): `trendflow worker` processes share a topic through a Kafka
//! consumer group hosted by librdkafka's mock cluster in this test process. Three workers
//! read eight partitions; one is killed with kill -9 mid-stream, a new one joins later, one
//! leaves with SIGTERM; at the end the merged result (the sum over the partitions' outputs)
//! equals, row for row, what a single worker computes reading the topic alone, every tweet
//! counted once.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use trendflow_connectors::testkit::postgres_server::PostgresServer;
use trendflow_kafka::testkit::MockKafka;

const CONFIG: &str = "tests/fixtures/cluster-pipeline.yaml";
const PARTITIONS: i32 = 8;

struct Cluster<'a> {
    dir: PathBuf,
    kafka: &'a MockKafka,
    group: String,
    /// The database the PostgreSQL sinks write to (one per run).
    postgres: &'a PostgresServer,
}

impl Cluster<'_> {
    /// The overrides every command on this group needs: brokers, group, checkpoint root.
    fn cluster_args(&self) -> Vec<String> {
        let out = self.dir.join(&self.group);
        vec![
            "--set".to_string(),
            format!(
                "sources.tweets.bootstrap_servers={}",
                self.kafka.bootstrap_servers()
            ),
            "--set".to_string(),
            format!("cluster.group_id={}", self.group),
            "--set".to_string(),
            format!(
                "cluster.checkpoint_root={}",
                out.join("checkpoints").display()
            ),
        ]
    }

    fn worker(&self) -> Child {
        let out = self.dir.join(&self.group);
        Command::new(bin())
            .args(["worker", CONFIG])
            .args(self.cluster_args())
            .args([
                "--set".to_string(),
                format!("sinks.result.path={}", out.join("q2.csv").display()),
                "--set".to_string(),
                format!("sinks.id_table.path={}", out.join("ids.csv").display()),
                "--set".to_string(),
                format!(
                    "sinks.counts_pg.url={}",
                    self.postgres.connection_string(&self.group)
                ),
            ])
            .current_dir(root())
            .env("TRENDFLOW_RUN_DIR", &self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// The partitions' id tables summed: id -> count.
    fn ids(&self) -> BTreeMap<String, i64> {
        let mut all = BTreeMap::new();
        for p in 0..PARTITIONS {
            let f = self.dir.join(&self.group).join(format!("ids-p{p}.csv"));
            let Ok(text) = std::fs::read_to_string(f) else {
                continue;
            };
            for row in parse_csv(&text).into_iter().skip(1) {
                *all.entry(row[0].clone()).or_insert(0) += row[1].parse::<i64>().unwrap();
            }
        }
        all
    }

    /// The partitions' windowed counts merged: (window, word) -> sum of the partial counts,
    /// and how many partial rows there were (a window emitted twice would show).
    fn merged(&self) -> (BTreeMap<Vec<String>, i64>, usize) {
        let mut all = BTreeMap::new();
        let mut rows = 0;
        for p in 0..PARTITIONS {
            let f = self.dir.join(&self.group).join(format!("q2-p{p}.csv"));
            if !f.exists() {
                continue;
            }
            let (_, t) = table(&f);
            rows += t.len();
            for (k, v) in t {
                *all.entry(k).or_insert(0) += v;
            }
        }
        (all, rows)
    }

    /// The merged view the workers create in PostgreSQL, once it exists: rows and total.
    fn view(&self) -> Option<(usize, i64)> {
        let exists = self
            .postgres
            .psql(
                &self.group,
                "SELECT to_regclass('hashtag_counts') IS NOT NULL",
            )
            .ok()?;
        if exists.trim() != "t" {
            return None;
        }
        let out = self
            .postgres
            .psql(
                &self.group,
                "SELECT count(*), coalesce(sum(count), 0) FROM hashtag_counts",
            )
            .ok()?;
        let (rows, total) = out.trim().split_once('|')?;
        Some((rows.parse().ok()?, total.parse().ok()?))
    }

    /// How many partitions' commit records carry an owner generation, and the newest.
    fn generations(&self) -> (i64, i64) {
        let out = self
            .postgres
            .psql(
                &self.group,
                "SELECT count(owner_generation), coalesce(max(owner_generation), -1) \
                 FROM trendflow_commits WHERE pipeline LIKE 'cluster-test-p%'",
            )
            .unwrap();
        let (count, max) = out.trim().split_once('|').unwrap();
        (count.parse().unwrap(), max.parse().unwrap())
    }

    /// `trendflow cluster status` for this group; panics if it fails.
    fn status(&self) -> String {
        let o = Command::new(bin())
            .args(["cluster", "status", CONFIG])
            .args(self.cluster_args())
            .current_dir(root())
            .output()
            .unwrap();
        let status = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "{status}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        status
    }

    fn view_rows(&self) -> String {
        self.postgres
            .psql(
                &self.group,
                "SELECT window_start, window_end, word, count FROM hashtag_counts ORDER BY 1, 2, 3",
            )
            .unwrap()
    }

    fn wait_for_ids(&self, want: usize) {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let ids = self.ids();
            if ids.len() >= want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {} ids of {want} after 3 minutes",
                self.group,
                ids.len()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

fn stop(mut child: Child) {
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "a worker did not stop cleanly: {status}");
}

#[test]
fn workers_killed_and_joining_merge_to_the_single_worker_table() {
    let dir = tempfile::tempdir().unwrap();
    let kafka = MockKafka::start(3);
    produce_generated_tweets(&kafka, dir.path(), (16, 150), PARTITIONS);
    let postgres = PostgresServer::start().expect("a PostgreSQL server for the merged table");
    for db in ["single", "cluster"] {
        postgres.create_database(db).unwrap();
    }

    // One worker alone: every partition is its own pipeline in it.
    let single = Cluster {
        dir: dir.path().to_path_buf(),
        kafka: &kafka,
        group: "single".into(),
        postgres: &postgres,
    };
    let w = single.worker();
    // 1% malformed lines are dead letters; the clean run tells how many ids there are.
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut last = (0, Instant::now());
    let want_ids = loop {
        let n = single.ids().len();
        if n > 0 && n == last.0 && last.1.elapsed() > Duration::from_secs(3) {
            break n;
        }
        if n != last.0 {
            last = (n, Instant::now());
        }
        assert!(Instant::now() < deadline, "the single worker never settled");
        std::thread::sleep(Duration::from_millis(300));
    };
    // The merged view: the same rows as the per-partition files summed.
    let (want, want_rows) = single.merged();
    let want_total: i64 = want.values().sum();
    wait_until("the single worker's merged view", || {
        single.view() == Some((want.len(), want_total))
    });
    stop(w);
    let ids = single.ids();
    assert!(
        ids.values().all(|&c| c == 1),
        "an id counted twice by one worker"
    );
    assert!(want.len() > 1_000, "too small a result: {}", want.len());

    // Three workers, one killed, one joining, one leaving gracefully.
    let cluster = Cluster {
        dir: dir.path().to_path_buf(),
        kafka: &kafka,
        group: "cluster".into(),
        postgres: &postgres,
    };
    let mut workers: Vec<Child> = (0..3).map(|_| cluster.worker()).collect();
    cluster.wait_for_ids(want_ids / 4);
    assert!(
        cluster.ids().len() < want_ids,
        "the kill must come mid-stream: everything was already read"
    );
    let mut killed = workers.remove(0);
    killed.kill().unwrap();
    killed.wait().unwrap();
    cluster.wait_for_ids(want_ids / 2);
    workers.push(cluster.worker());
    cluster.wait_for_ids(want_ids * 3 / 4);
    stop(workers.remove(0));
    cluster.wait_for_ids(want_ids);
    // Then wait for the last windows the watermark closes, as the single run did.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (got, rows) = cluster.merged();
        if got == want && rows == want_rows {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the merged table never equalled the single worker's ({rows} partial rows against {want_rows}):\n{}",
            diff(&want, &got)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // `cluster status`: every partition owned, read to its end (lag 0), and the global
    // watermark from the partitions' checkpoints.
    // Offsets reach the group without waiting: poll the status until every lag is 0.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let status = cluster.status();
        if cluster_lags(&status).iter().all(|l| l == "0") || Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!("{status}");
    assert!(status.contains("global watermark"), "{status}");
    assert_eq!(
        status.matches("tweets/").count(),
        PARTITIONS as usize,
        "{status}"
    );
    assert!(
        !status.contains("(unassigned)"),
        "a partition without owner:\n{status}"
    );
    let lags = cluster_lags(&status);
    assert!(lags.iter().all(|l| l == "0"), "lag left:\n{status}");
    // PostgreSQL: each partition's table written exactly once across the hand-overs, so the
    // view equals the single worker's, row for row.
    wait_until("the cluster's merged view", || {
        cluster.view() == Some((want.len(), want_total))
    });
    assert_eq!(
        cluster.view_rows(),
        single.view_rows(),
        "merged views differ"
    );
    // The fence: every partition's commit record carries the generation of the assignment
    // that last committed it; the hand-overs (a death, a join, a leave) moved partitions to
    // later generations than the lone worker's, which never rebalanced.
    let (count, cluster_max) = cluster.generations();
    assert_eq!(
        count,
        i64::from(PARTITIONS),
        "a commit row without generation"
    );
    let (single_count, single_max) = single.generations();
    assert_eq!(single_count, i64::from(PARTITIONS));
    assert!(
        cluster_max > single_max,
        "generations: cluster {cluster_max}, single worker {single_max}"
    );
    for w in workers {
        stop(w);
    }
    let got_ids = cluster.ids();
    assert_eq!(got_ids, ids, "ids differ from the single worker's");
}

/// The lag column of every partition line of a `cluster status` table.
fn cluster_lags(status: &str) -> Vec<String> {
    status
        .lines()
        .filter(|l| l.starts_with("tweets/"))
        .map(|l| l.split_whitespace().nth(3).unwrap_or("").to_string())
        .collect()
}
