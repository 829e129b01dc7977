//! `trendflow worker PIPELINE.yaml`: one of several processes sharing a Kafka topic
//! (docs/scale-out.md). The worker joins the pipeline's `cluster.group_id` consumer group only
//! to learn which partitions it owns; for each one it runs the pipeline restricted to that
//! partition as a child process (`trendflow run … partitions=N`), with the partition's own
//! checkpoint (`cluster.checkpoint_root/pN`), pipeline name (`NAME-pN`, the key of the
//! PostgreSQL sink's commit record) and outputs (`TABLE_pN`, `FILE-pN.ext`). A partition's
//! state and exactly-once bookkeeping thus move with it: whichever worker receives it restores
//! its checkpoint and replays its recorded epochs.
//!
//! Hand-over: when the group takes partitions away (another worker joins or leaves), their
//! pipelines are stopped gracefully (SIGTERM: the epoch finishes, commits, checkpoints) before
//! the revocation is acknowledged, so the next owner starts after them. When the worker dies,
//! its children die with it (`PR_SET_PDEATHSIG`), and the group reassigns their partitions
//! after the session timeout. SIGTERM to the worker stops every child gracefully and leaves
//! the group.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use trendflow_config::{Override, PipelineConfig, SinkConfig, SourceConfig, load_file};

#[derive(Args)]
pub struct WorkerArgs {
    pub pipeline: PathBuf,
    /// Override a config value (repeatable), as for `run`; passed on to every partition's
    /// pipeline.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<Override>,
}

/// What a partition's pipeline is started with, besides the worker's own overrides.
struct PartitionPlan {
    exe: PathBuf,
    pipeline: PathBuf,
    user_overrides: Vec<String>,
    source: String,
    name: String,
    checkpoint_root: String,
    group_id: String,
    /// `--set` values naming each sink's per-partition output, with `{p}` for the partition.
    outputs: Vec<(String, String)>,
    /// The PostgreSQL sinks, fenced with the generation that assigned the partition.
    fenced_sinks: Vec<String>,
}

impl PartitionPlan {
    /// `ROOT/pN/owner`: which worker runs the partition, for `cluster status` (what Kafka's
    /// group description also says, when the brokers answer it). Local roots only.
    fn record_owner(&self, partition: i32, generation: Option<i32>) {
        if self.checkpoint_root.starts_with("s3") {
            return;
        }
        let dir = Path::new(&self.checkpoint_root).join(format!("p{partition}"));
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        let since = trendflow_core::time::format_iso_utc(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        );
        let generation = generation.map_or("?".to_string(), |g| g.to_string());
        let text = format!(
            "{} pid {} generation {generation} since {since}\n",
            host.trim(),
            std::process::id()
        );
        let _ = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(dir.join("owner"), text));
    }

    fn command(&self, partition: i32, generation: Option<i32>) -> Command {
        let mut c = Command::new(&self.exe);
        c.arg("run").arg(&self.pipeline);
        let mut set = |k: String, v: String| {
            c.arg("--set").arg(format!("{k}={v}"));
        };
        for o in &self.user_overrides {
            let (k, v) = o.split_once('=').unwrap_or((o, ""));
            set(k.to_string(), v.to_string());
        }
        set(
            format!("sources.{}.partitions", self.source),
            partition.to_string(),
        );
        set(
            "checkpoint.path".into(),
            format!(
                "{}/p{partition}",
                self.checkpoint_root.trim_end_matches('/')
            ),
        );
        set("name".into(), format!("{}-p{partition}", self.name));
        // Offsets committed (after each checkpoint, for monitoring) where `cluster status`
        // reads the lag.
        set(
            format!("sources.{}.group_id", self.source),
            crate::cluster_status::offsets_group(&self.group_id),
        );
        set("api.enabled".into(), "false".into());
        for (key, value) in &self.outputs {
            set(key.clone(), value.replace("{p}", &partition.to_string()));
        }
        if let Some(generation) = generation {
            for sink in &self.fenced_sinks {
                set(
                    format!("sinks.{sink}.owner_generation"),
                    generation.to_string(),
                );
            }
        }
        // A partition's pipeline never outlives its worker: a dead worker's partitions go to
        // the others, who must not find a second owner still writing.
        unsafe {
            c.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        c
    }
}

/// The partitions' pipelines this worker runs.
struct Owned {
    plan: PartitionPlan,
    children: Mutex<BTreeMap<i32, Child>>,
    /// The consumer-group generation of the latest assignment (None: unknown).
    generation: Mutex<Option<i32>>,
}

impl Owned {
    fn start(&self, partitions: &[i32], generation: Option<i32>) {
        *self.generation.lock().unwrap() = generation;
        let mut children = self.children.lock().unwrap();
        for &p in partitions {
            if children.contains_key(&p) {
                continue;
            }
            match self.plan.command(p, generation).spawn() {
                Ok(child) => {
                    tracing::info!(
                        partition = p,
                        pid = child.id(),
                        generation,
                        "partition pipeline started"
                    );
                    self.plan.record_owner(p, generation);
                    children.insert(p, child);
                }
                Err(e) => {
                    tracing::error!(partition = p, error = %e, "cannot start the partition's pipeline")
                }
            }
        }
    }

    /// Stops the pipelines of `partitions` gracefully and waits for them.
    fn stop(&self, partitions: &[i32]) {
        let mut children = self.children.lock().unwrap();
        let stopping: Vec<(i32, Child)> = partitions
            .iter()
            .filter_map(|p| children.remove(p).map(|c| (*p, c)))
            .collect();
        for (_, c) in &stopping {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
        }
        for (p, mut c) in stopping {
            let status = c.wait();
            tracing::info!(partition = p, ?status, "partition pipeline stopped");
        }
    }

    fn all(&self) -> Vec<i32> {
        self.children.lock().unwrap().keys().copied().collect()
    }

    /// Restarts a partition's pipeline that ended on its own (its supervisor gave up, or a
    /// bounded run finished): logged, started again while the partition is ours.
    fn restart_exited(&self) {
        let mut children = self.children.lock().unwrap();
        let exited: Vec<i32> = children
            .iter_mut()
            .filter_map(|(p, c)| match c.try_wait() {
                Ok(Some(status)) => {
                    tracing::warn!(partition = p, %status, "partition pipeline ended; starting it again");
                    Some(*p)
                }
                _ => None,
            })
            .collect();
        let generation = *self.generation.lock().unwrap();
        for p in exited {
            children.remove(&p);
            if let Ok(child) = self.plan.command(p, generation).spawn() {
                children.insert(p, child);
            }
        }
    }
}

struct WorkerContext {
    owned: Arc<Owned>,
}

impl ClientContext for WorkerContext {}

fn partitions_of(list: &rdkafka::TopicPartitionList) -> Vec<i32> {
    let mut p: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
    p.sort();
    p.dedup();
    p
}

impl ConsumerContext for WorkerContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            // Before the group hands them to someone else: finish, commit, checkpoint.
            self.owned.stop(&partitions_of(list));
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                // The group consumer reads nothing itself: the pipelines read.
                let _ = consumer.pause(list);
                self.owned
                    .start(&partitions_of(list), group_generation(consumer));
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

/// The generation of the group membership `consumer` has now (it grows at every rebalance),
/// the fence of the pipelines this assignment starts. rdkafka does not expose it: read
/// through librdkafka's group metadata.
fn group_generation(consumer: &BaseConsumer<WorkerContext>) -> Option<i32> {
    // SAFETY: the client pointer is valid for the consumer's lifetime; the metadata is
    // owned here and destroyed after its generation is read.
    unsafe {
        let metadata =
            rdkafka_sys::rd_kafka_consumer_group_metadata(consumer.client().native_ptr());
        if metadata.is_null() {
            return None;
        }
        let generation = rdkafka_sys::rd_kafka_consumer_group_metadata_generation_id(metadata);
        rdkafka_sys::rd_kafka_consumer_group_metadata_destroy(metadata);
        (generation >= 0).then_some(generation)
    }
}

/// The per-partition outputs of each sink, so partitions never write over one another.
fn partition_outputs(config: &PipelineConfig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let suffixed = |path: &Path| {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = match path.extension() {
            Some(ext) => format!("{stem}-p{{p}}.{}", ext.to_string_lossy()),
            None => format!("{stem}-p{{p}}"),
        };
        path.with_file_name(name).display().to_string()
    };
    for (name, sink) in &config.sinks {
        match sink {
            SinkConfig::Postgres(c) => out.push((
                format!("sinks.{name}.table"),
                format!("{}_p{{p}}", c.table.clone().unwrap_or_else(|| name.clone())),
            )),
            SinkConfig::File(c) => out.push((format!("sinks.{name}.path"), suffixed(&c.path))),
            _ => {}
        }
    }
    if let Some(d) = &config.dead_letter {
        out.push(("dead_letter.path".into(), suffixed(&d.path)));
    }
    out
}

pub async fn main(args: WorkerArgs) -> i32 {
    let config = match load_file(&args.pipeline, &args.set) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let Some(cluster) = config.cluster.clone() else {
        eprintln!("trendflow worker: the pipeline has no `cluster` section (docs/scale-out.md)");
        return 2;
    };
    let kafka: Vec<_> = config
        .sources
        .iter()
        .filter_map(|(n, s)| match s {
            SourceConfig::Kafka(k) => Some((n.clone(), k.clone())),
            _ => None,
        })
        .collect();
    let [(source, kafka)] = kafka.as_slice() else {
        eprintln!("trendflow worker: the pipeline needs exactly one kafka source");
        return 2;
    };
    if kafka.topics.is_empty() {
        eprintln!("trendflow worker: the kafka source must name its topics (no topic_pattern)");
        return 2;
    }
    let name = config.name.clone().unwrap_or_else(|| {
        args.pipeline
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "pipeline".into())
    });
    let owned = Arc::new(Owned {
        plan: PartitionPlan {
            exe: std::env::current_exe().expect("own executable"),
            pipeline: args.pipeline.clone(),
            user_overrides: args.set.iter().map(|o| o.text.clone()).collect(),
            source: source.clone(),
            name: name.clone(),
            checkpoint_root: cluster.checkpoint_root.clone(),
            group_id: cluster.group_id.clone(),
            outputs: partition_outputs(&config),
            fenced_sinks: config
                .sinks
                .iter()
                .filter(|(_, s)| matches!(s, SinkConfig::Postgres(_)))
                .map(|(n, _)| n.clone())
                .collect(),
        },
        children: Mutex::new(BTreeMap::new()),
        generation: Mutex::new(None),
    });
    let session_ms = cluster.session_timeout.0.as_millis().max(1_000);
    let consumer: BaseConsumer<WorkerContext> = match ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("group.id", &cluster.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "latest")
        .set("session.timeout.ms", session_ms.to_string())
        .set("heartbeat.interval.ms", (session_ms / 5).to_string())
        .create_with_context(WorkerContext {
            owned: owned.clone(),
        }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("trendflow worker: {e}");
            return 2;
        }
    };
    let topics: Vec<&str> = kafka.topics.iter().map(String::as_str).collect();
    if let Err(e) = consumer.subscribe(&topics) {
        eprintln!("trendflow worker: subscribing to {topics:?}: {e}");
        return 2;
    }
    eprintln!(
        "trendflow: worker of `{name}` in group `{}` (checkpoints under {})",
        cluster.group_id, cluster.checkpoint_root
    );
    // The global table of each PostgreSQL sink: a view summing the partitions' tables.
    let partitions: Vec<i32> = consumer
        .fetch_metadata(Some(&kafka.topics[0]), Duration::from_secs(30))
        .ok()
        .and_then(|m| {
            m.topics()
                .first()
                .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        })
        .unwrap_or_default();
    let mut views = Vec::new();
    for (sink, c) in &config.sinks {
        if let SinkConfig::Postgres(c) = c
            && !partitions.is_empty()
        {
            let view = crate::merge_view::MergeView {
                connection: c.url.clone(),
                password: c.password_env.as_ref().and_then(|v| std::env::var(v).ok()),
                ca_file: c.ca_file.clone(),
                table: c.table.clone().unwrap_or_else(|| sink.clone()),
                partitions: partitions.clone(),
            };
            views.push(tokio::spawn(view.create_when_ready()));
        }
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let stop = stop.clone();
        let owned = owned.clone();
        tokio::task::spawn_blocking(move || {
            // Polling keeps the membership alive and runs the rebalance callbacks.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = consumer.poll(Duration::from_millis(100));
                owned.restart_exited();
            }
            // Graceful leave: the pipelines finish their epoch, then the group is told.
            owned.stop(&owned.all());
            consumer.unsubscribe();
            let _ = consumer.poll(Duration::from_millis(100));
            drop(consumer);
        })
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    eprintln!("trendflow: worker stopping: partitions finish their epoch");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = poller.await;
    for v in views {
        v.abort();
    }
    0
}
