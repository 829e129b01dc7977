//! `trendflow bench --workers 1,2`: scale-out workers (docs/scale-out.md) on this machine.
//!
//! Everything runs here: librdkafka's mock cluster in the bench process (a real Kafka protocol
//! endpoint on 127.0.0.1), a throwaway PostgreSQL server (the merge target), and the workers
//! as child processes running `config/tutorial-kafka-workers.yaml`. Generated tweets are
//! produced to a topic of 8 partitions, compressed (the mock keeps 5 MB of record batches
//! per partition and drops older ones: compression makes room for ~10x more tweets; the
//! bench checks that nothing was dropped).
//!
//! - Throughput: for each worker count, a new consumer group reads the whole topic (trigger
//!   0s: each epoch starts when the previous one committed); the time runs from the
//!   partitions' assignment (when the group settled: the owner files the workers write) until
//!   every partition's pipeline has committed (all sinks, then the offsets reported to the
//!   group) the topic's last offset. The time from the workers' start to the assignment
//!   (process start, Kafka's initial rebalance delay of 3 s) is reported apart.
//! - Rebalance pause, with the last worker count (2 or more): once everything is read, new
//!   tweets land on every partition and one worker is killed (kill -9); the pause is the time
//!   from the kill to the dead worker's partitions committing the new tweets (a session timeout
//!   of the group, then a start from the checkpoint). Then the same with a graceful leave
//!   (SIGTERM): the worker finishes its epoch and leaves the group at once.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use trendflow_connectors::generator::{GeneratorConfig, TweetGenerator};
use trendflow_connectors::testkit::postgres_server::PostgresServer;
use trendflow_kafka::testkit::MockKafka;

const PIPELINE: &str = include_str!("../config/tutorial-kafka-workers.yaml");
const TOPIC: &str = "tweets";
const PARTITIONS: i32 = 8;
/// The longest any phase may take before the bench gives up.
const PATIENCE: Duration = Duration::from_secs(600);

/// One worker count's throughput.
#[derive(serde::Serialize)]
pub struct Throughput {
    pub workers: usize,
    pub tweets: u64,
    pub bytes: u64,
    /// From the partitions' assignment (the last one, when the group settled) until every
    /// partition committed its last offset: the backlog's drain.
    pub seconds: f64,
    /// From the workers' start to the assignment: process start and the group's first
    /// rebalance (Kafka's `group.initial.rebalance.delay.ms`, 3 s by default, and the mock's).
    pub assignment_seconds: f64,
    /// Partition pipelines the workers started: one per partition, more when the group
    /// rebalanced during the drain (a worker joined after the first round); then the work
    /// done before the last assignment is not in `seconds`.
    pub pipeline_starts: usize,
}

/// Rebalance pauses: from a worker's death (or SIGTERM) to its partitions committing the
/// tweets that landed meanwhile.
#[derive(serde::Serialize)]
pub struct Pause {
    pub how: String,
    pub session_timeout_seconds: f64,
    /// The partitions the stopped worker owned.
    pub moved_partitions: Vec<i32>,
    pub seconds: f64,
    /// The same for the partitions the surviving workers owned (an eager rebalance stops and
    /// restarts them too).
    pub others_seconds: f64,
}

#[derive(serde::Serialize)]
pub struct ClusterBench {
    pub throughput: Vec<Throughput>,
    pub pauses: Vec<Pause>,
}

struct Bench {
    kafka: MockKafka,
    _postgres: PostgresServer,
    postgres_url: String,
    dir: PathBuf,
    pipeline: PathBuf,
    session_timeout: String,
    generator: TweetGenerator,
    next_partition: i32,
}

impl Bench {
    /// Produces `n` generated tweets round-robin over the partitions, compressed; returns
    /// their bytes.
    fn produce(&mut self, n: u64) -> Result<u64, String> {
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", self.kafka.bootstrap_servers())
            .set("compression.type", "zstd")
            .set("linger.ms", "50")
            .set("batch.size", "1000000")
            .set("enable.idempotence", "true")
            .create()
            .map_err(|e| format!("producer: {e}"))?;
        let mut bytes = 0u64;
        let mut line = Vec::with_capacity(8 << 10);
        for _ in 0..n {
            line.clear();
            self.generator.next_line(&mut line);
            let payload = &line[..line.len() - 1];
            bytes += payload.len() as u64;
            let partition = self.next_partition;
            self.next_partition = (self.next_partition + 1) % PARTITIONS;
            let mut record = BaseRecord::<[u8], [u8]>::to(TOPIC)
                .partition(partition)
                .payload(payload);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        record = back;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
        }
        producer
            .flush(Duration::from_secs(120))
            .map_err(|e| format!("flushing the producer: {e}"))?;
        Ok(bytes)
    }

    fn consumer(&self, group: &str) -> Result<BaseConsumer, String> {
        ClientConfig::new()
            .set("bootstrap.servers", self.kafka.bootstrap_servers())
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|e| format!("consumer: {e}"))
    }

    /// Each partition's (earliest, end) offsets.
    fn ends(&self) -> Result<Vec<(i64, i64)>, String> {
        let c = self.consumer("trendflow-bench-watermarks")?;
        (0..PARTITIONS)
            .map(|p| {
                c.fetch_watermarks(TOPIC, p, Duration::from_secs(10))
                    .map_err(|e| format!("offsets of {TOPIC}/{p}: {e}"))
            })
            .collect()
    }

    /// The offsets the partitions' pipelines of `group` committed (-1: none yet).
    fn committed(&self, consumer: &BaseConsumer) -> Vec<i64> {
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition(TOPIC, p);
        }
        match consumer.committed_offsets(tpl, Duration::from_secs(10)) {
            Ok(c) => c
                .elements()
                .iter()
                .map(|e| match e.offset() {
                    Offset::Offset(o) => o,
                    _ => -1,
                })
                .collect(),
            Err(_) => vec![-1; PARTITIONS as usize],
        }
    }

    /// Each partition's recorded owner: (worker pid, when the file was written).
    fn owners(&self, group: &str) -> Vec<Option<(u32, std::time::SystemTime)>> {
        let root = self.dir.join(group).join("checkpoints");
        (0..PARTITIONS)
            .map(|p| {
                let path = root.join(format!("p{p}")).join("owner");
                let text = std::fs::read_to_string(&path).ok()?;
                let when = std::fs::metadata(&path).ok()?.modified().ok()?;
                let words: Vec<&str> = text.split_whitespace().collect();
                let after = |w: &str| {
                    words
                        .iter()
                        .position(|x| *x == w)
                        .and_then(|i| words.get(i + 1))
                };
                Some((after("pid")?.parse().ok()?, when))
            })
            .collect()
    }

    /// How many partition pipelines the workers of `group` started (from their logs).
    fn pipeline_starts(&self, group: &str) -> usize {
        let prefix = format!("{group}-worker-");
        std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                    .map(|e| {
                        std::fs::read_to_string(e.path())
                            .unwrap_or_default()
                            .matches("partition pipeline started")
                            .count()
                    })
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Waits until the partitions are shared by exactly the workers `pids`: each partition
    /// owned by one of them, each of them owning one.
    fn wait_owned_by(&self, group: &str, pids: &[u32]) -> Result<(), String> {
        let since = Instant::now();
        loop {
            let owners: Vec<u32> = self.owners(group).iter().flatten().map(|o| o.0).collect();
            if owners.len() == PARTITIONS as usize
                && owners.iter().all(|pid| pids.contains(pid))
                && pids.iter().all(|pid| owners.contains(pid))
            {
                return Ok(());
            }
            if since.elapsed() > PATIENCE {
                return Err(format!("group {group}: partitions never owned by {pids:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn worker(&self, group: &str, n: usize) -> Result<Child, String> {
        let root = self.dir.join(group);
        let log = std::fs::File::create(self.dir.join(format!("{group}-worker-{n}.log")))
            .map_err(|e| e.to_string())?;
        let set = [
            format!(
                "sources.tweets.bootstrap_servers={}",
                self.kafka.bootstrap_servers()
            ),
            format!("cluster.group_id={group}"),
            // The pipeline name keys the PostgreSQL sinks' commit records: one per group, or
            // a measurement would skip the epochs an earlier one recorded.
            format!("name={group}"),
            format!(
                "cluster.checkpoint_root={}",
                root.join("checkpoints").display()
            ),
            format!("cluster.session_timeout={}", self.session_timeout),
            format!("sinks.result.path={}", root.join("q2.csv").display()),
            format!("sinks.counts_pg.url={}", self.postgres_url),
            format!("sinks.counts_pg.table={}", group.replace('-', "_")),
            // As fast as it goes: each epoch starts when the previous one committed.
            "trigger=0s".to_string(),
        ];
        let mut c = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
        c.arg("worker").arg(&self.pipeline);
        for s in &set {
            c.arg("--set").arg(s);
        }
        c.env("TRENDFLOW_RUN_DIR", &root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        c.spawn().map_err(|e| format!("starting a worker: {e}"))
    }

    /// Waits until the partitions in `which` have committed `ends`; returns the seconds since
    /// `since` when the last one did.
    fn wait_committed(
        &self,
        group: &str,
        which: &[i32],
        ends: &[i64],
        since: Instant,
    ) -> Result<f64, String> {
        let consumer = self.consumer(&crate::cluster_status::offsets_group(group))?;
        loop {
            let now = self.committed(&consumer);
            if which.iter().all(|&p| now[p as usize] >= ends[p as usize]) {
                return Ok(since.elapsed().as_secs_f64());
            }
            if since.elapsed() > PATIENCE {
                return Err(format!(
                    "group {group}: partitions {which:?} committed {now:?}, not {ends:?}, after {} s (logs in {})",
                    PATIENCE.as_secs(),
                    self.dir.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The partitions whose owner file names worker `pid`.
    fn owned_by(&self, group: &str, pid: u32) -> Vec<i32> {
        self.owners(group)
            .iter()
            .zip(0..)
            .filter(|(o, _)| o.is_some_and(|(owner, _)| owner == pid))
            .map(|(_, p)| p)
            .collect()
    }
}

fn stop(mut child: Child) {
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let _ = child.wait();
}

/// Runs the measurements; the workers' logs, checkpoints and outputs go to `keep` (kept) or
/// to a temporary directory.
pub fn measure(
    tweets: u64,
    workers: &[usize],
    session_timeout: &str,
    keep: Option<&std::path::Path>,
) -> Result<ClusterBench, String> {
    let tmp = tempfile::Builder::new()
        .prefix("trendflow-bench-cluster-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let dir = keep.unwrap_or(tmp.path());
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let postgres = PostgresServer::start()?;
    postgres.create_database("bench")?;
    let postgres_url = postgres.connection_string("bench");
    let pipeline = dir.join("pipeline.yaml");
    std::fs::write(&pipeline, PIPELINE).map_err(|e| e.to_string())?;
    let kafka = MockKafka::start(1);
    kafka.create_topic(TOPIC, PARTITIONS);
    let mut bench = Bench {
        kafka,
        _postgres: postgres,
        postgres_url,
        dir: dir.to_path_buf(),
        pipeline,
        session_timeout: session_timeout.to_string(),
        generator: TweetGenerator::new(GeneratorConfig {
            seed: 42,
            rate: 10.0,
            ..GeneratorConfig::default()
        }),
        next_partition: 0,
    };
    eprintln!("producing {tweets} tweets to {PARTITIONS} partitions (zstd)");
    let bytes = bench.produce(tweets)?;
    let marks = bench.ends()?;
    if let Some((p, (low, _))) = marks.iter().enumerate().find(|(_, (low, _))| *low > 0) {
        return Err(format!(
            "the mock cluster dropped the first {low} records of partition {p} (it keeps 5 MB of record batches per partition): use fewer tweets"
        ));
    }
    let ends: Vec<i64> = marks.iter().map(|(_, e)| *e).collect();
    let all: Vec<i32> = (0..PARTITIONS).collect();
    let mut out = ClusterBench {
        throughput: Vec::new(),
        pauses: Vec::new(),
    };
    let mut running = Vec::new();
    // The very first drain runs slower (7.4-8.1 s here against 3.5-5.2 s for the next: a
    // fresh PostgreSQL server, cold caches); it is run once and not counted.
    {
        let started = Instant::now();
        let warm = bench.worker("bench-warm-up", 0)?;
        let seconds = bench.wait_committed("bench-warm-up", &all, &ends, started)?;
        stop(warm);
        eprintln!("warm-up drain with 1 worker: {seconds:.2} s (not counted)");
    }
    for (i, &n) in workers.iter().enumerate() {
        for c in running.drain(..) {
            stop(c);
        }
        // A group (and checkpoints, outputs, tables) of its own for each measurement.
        let group = format!("bench-{}-{n}-workers", i + 1);
        let wall_start = std::time::SystemTime::now();
        let started = Instant::now();
        for k in 0..n {
            running.push(bench.worker(&group, k)?);
        }
        let done = bench.wait_committed(&group, &all, &ends, started)?;
        let owners = bench.owners(&group);
        let assigned = owners
            .iter()
            .flatten()
            .map(|(_, when)| when.duration_since(wall_start).unwrap_or_default())
            .max()
            .unwrap_or_default()
            .as_secs_f64();
        let pipeline_starts = bench.pipeline_starts(&group);
        let drain = done - assigned;
        eprintln!(
            "{n} worker{}: {tweets} tweets in {drain:.2} s from the assignment ({:.0} tweets/s), assigned {assigned:.2} s after the start, {pipeline_starts} partition pipelines started",
            if n == 1 { "" } else { "s" },
            tweets as f64 / drain
        );
        out.throughput.push(Throughput {
            workers: n,
            tweets,
            bytes,
            seconds: drain,
            assignment_seconds: assigned,
            pipeline_starts,
        });
        if i + 1 < workers.len() || n < 2 {
            continue;
        }
        // Rebalance pauses on the last (and still running) group.
        let session = trendflow_core::duration::parse_duration(session_timeout)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        for how in ["kill -9", "SIGTERM"] {
            let victim = running.remove(0);
            let moved = bench.owned_by(&group, victim.id());
            let others: Vec<i32> = all.iter().copied().filter(|p| !moved.contains(p)).collect();
            let stopped = Instant::now();
            if how == "kill -9" {
                let mut victim = victim;
                let _ = victim.kill();
                let _ = victim.wait();
            } else {
                // Not waited for: the hand-over starts when the signal lands.
                unsafe {
                    libc::kill(victim.id() as i32, libc::SIGTERM);
                }
                std::thread::spawn(move || stop(victim));
            }
            // New tweets on every partition, landed after the stop.
            bench.produce(u64::from(PARTITIONS as u32) * 100)?;
            let ends: Vec<i64> = bench.ends()?.iter().map(|(_, e)| *e).collect();
            let moved_s = bench.wait_committed(&group, &moved, &ends, stopped)?;
            let others_s = bench.wait_committed(&group, &others, &ends, stopped)?;
            eprintln!(
                "rebalance after {how} (session timeout {session_timeout}): partitions {moved:?} emitting again after {moved_s:.2} s, the others' {others_s:.2} s"
            );
            out.pauses.push(Pause {
                how: how.to_string(),
                session_timeout_seconds: session,
                moved_partitions: moved,
                seconds: moved_s,
                others_seconds: others_s,
            });
            // A replacement, so the next stop leaves a group of the same size, once the
            // group has given it partitions.
            running.push(bench.worker(&group, n + out.pauses.len())?);
            let pids: Vec<u32> = running.iter().map(Child::id).collect();
            bench.wait_owned_by(&group, &pids)?;
            let ends: Vec<i64> = bench.ends()?.iter().map(|(_, e)| *e).collect();
            bench.wait_committed(&group, &all, &ends, Instant::now())?;
        }
    }
    for c in running {
        stop(c);
    }
    Ok(out)
}

/// The figures as the bench prints them.
pub fn report(b: &ClusterBench) -> String {
    let mut s = String::new();
    for t in &b.throughput {
        s.push_str(&format!(
            "{:<34} {:>10.0} tweets/s {:>8.1} MB/s  ({} tweets in {:.2} s from the assignment, {:.2} s after the start{})\n",
            format!("Q2 on Kafka, {} worker{}", t.workers, if t.workers == 1 { "" } else { "s" }),
            t.tweets as f64 / t.seconds,
            t.bytes as f64 / t.seconds / 1e6,
            t.tweets,
            t.seconds,
            t.assignment_seconds,
            if t.pipeline_starts > PARTITIONS as usize {
                // Work done before the last rebalance is not in the drain time.
                format!(
                    "; the group rebalanced after the first assignment ({} pipeline starts for {PARTITIONS} partitions): the rate is overstated",
                    t.pipeline_starts
                )
            } else {
                String::new()
            }
        ));
    }
    for p in &b.pauses {
        s.push_str(&format!(
            "rebalance pause after {:<8} {:>6.2} s for partitions {:?} (session timeout {:.0} s); {:.2} s for the others\n",
            p.how, p.seconds, p.moved_partitions, p.session_timeout_seconds, p.others_seconds
        ));
    }
    s
}
