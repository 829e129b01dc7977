//! Starting a pipeline graph as actors, following its epochs, stopping it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use kameo::actor::{ActorRef, Spawn};
use kameo::mailbox;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use trendflow_core::metrics::{Metrics, names};
use trendflow_core::{Epoch, EventTime, SegmentData};

use crate::checkpoint::log::NewSegment;
use crate::checkpoint::{Checkpoint, Checkpointer, ComponentState, OffsetEntry};
use crate::dead_letters::{DeadLetterActor, DeadLetterOut, Flush};
use crate::events::{EpochSummary, RuntimeEvent};
use crate::graph::{GraphError, NodeBody, PipelineGraph};
use crate::outputs::{Edge, Outputs};
use crate::source_actor::{Committed, SourceActor};
use crate::stage_actor::{Body, StageActor, StageMetrics};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("invalid pipeline: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Graph(Vec<GraphError>),
    #[error("`{component}` failed: {error}")]
    Component { component: String, error: String },
    #[error("dead-letter output failed: {0}")]
    DeadLetters(String),
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("the checkpoint does not fit this pipeline: {}", .0.join("; "))]
    Incompatible(Vec<String>),
    #[error("gave up after {restarts} restarts within {within_secs} s; last failure: {last}")]
    RestartBudget {
        restarts: usize,
        within_secs: u64,
        last: Box<PipelineError>,
    },
}

/// Where a run starts from: the checkpoint directory, the newest checkpoint in it (if any)
/// and the epochs to replay exactly.
pub struct Resume {
    pub checkpoints: Checkpointer,
    pub checkpoint: Option<Checkpoint>,
    /// The state segments the checkpoint lists, by component instance.
    pub segments: HashMap<(String, u32), SegmentData>,
    pub replays: HashMap<String, Vec<(Epoch, OffsetEntry)>>,
    /// Process this epoch record by record, isolating records that fail (set by the
    /// supervisor after repeated failures of the same epoch).
    pub isolate: Option<Epoch>,
}

impl Resume {
    /// Reads the newest checkpoint and the offset entries after it for every source of `graph`.
    pub fn load(
        checkpoints: Checkpointer,
        graph: &PipelineGraph,
    ) -> impl std::future::Future<Output = Result<Resume, PipelineError>> + Send + 'static {
        // Names only: the graph is not held across an await (it is not `Sync`).
        let pipeline = graph.name.clone();
        let sources: Vec<String> = graph
            .nodes
            .iter()
            .filter(|n| matches!(n.body, NodeBody::Source { .. }))
            .map(|n| n.name.clone())
            .collect();
        Self::load_for(checkpoints, pipeline, sources)
    }

    async fn load_for(
        checkpoints: Checkpointer,
        pipeline: String,
        sources: Vec<String>,
    ) -> Result<Resume, PipelineError> {
        let removed = checkpoints
            .remove_partial_writes()
            .await
            .map_err(PipelineError::Checkpoint)?;
        if removed > 0 {
            tracing::info!(
                removed,
                checkpoint = checkpoints.describe(),
                "removed temporary files of writes cut short by a crash"
            );
        }
        let checkpoint = checkpoints
            .load_latest(&pipeline)
            .await
            .map_err(PipelineError::Checkpoint)?;
        let segments = match &checkpoint {
            Some(c) => checkpoints
                .load_segments(c)
                .await
                .map_err(PipelineError::Checkpoint)?,
            None => HashMap::new(),
        };
        let after = checkpoint.as_ref().map(|c| c.epoch);
        let mut replays = HashMap::new();
        for name in &sources {
            {
                checkpoints
                    .register_source(name)
                    .await
                    .map_err(PipelineError::Checkpoint)?;
                let entries = checkpoints
                    .offsets_after(name, after)
                    .await
                    .map_err(PipelineError::Checkpoint)?;
                replays.insert(name.clone(), entries);
            }
        }
        Ok(Resume {
            checkpoints,
            checkpoint,
            segments,
            replays,
            isolate: None,
        })
    }

    /// A run from scratch, with checkpoints kept in memory only.
    pub fn fresh() -> Resume {
        Resume {
            checkpoints: Checkpointer::new(
                std::sync::Arc::new(crate::checkpoint::MemoryStore::new()),
                2,
            ),
            checkpoint: None,
            segments: HashMap::new(),
            replays: HashMap::new(),
            isolate: None,
        }
    }

    /// The first epoch this run processes.
    pub fn first_epoch(&self) -> Epoch {
        self.checkpoint.as_ref().map_or(0, |c| c.epoch + 1)
    }
}

/// What the sources reported of an epoch so far.
struct EpochRead {
    records: u64,
    bytes: u64,
    started: Instant,
    started_ms: i64,
    plan_ms: f64,
    read_ms: f64,
    offsets: Vec<(String, String)>,
}

impl EpochRead {
    fn new() -> Self {
        EpochRead {
            records: 0,
            bytes: 0,
            started: Instant::now(),
            started_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            plan_ms: 0.0,
            read_ms: 0.0,
            offsets: Vec::new(),
        }
    }
}

/// The saved states of a checkpoint, by component and instance, checked against the graph.
struct Restore {
    states: HashMap<(String, u32), ComponentState>,
    segments: HashMap<(String, u32), SegmentData>,
}

impl Restore {
    /// Every incompatibility at once: a component whose state changed kind or parameters,
    /// changed parallelism, or disappeared. New components simply start empty.
    fn check(
        checkpoint: Option<&Checkpoint>,
        segments: HashMap<(String, u32), SegmentData>,
        graph: &PipelineGraph,
    ) -> Result<Restore, Vec<String>> {
        let mut states = HashMap::new();
        let Some(c) = checkpoint else {
            return Ok(Restore { states, segments });
        };
        let mut errors = Vec::new();
        let mut expected: HashMap<&str, (Option<String>, u32)> = HashMap::new();
        for n in &graph.nodes {
            let (signature, instances) = match &n.body {
                NodeBody::Source { source, .. } => (
                    Some(source.state_signature().unwrap_or_else(|| "source".into())),
                    1,
                ),
                NodeBody::Operator {
                    factory,
                    parallelism,
                } => (factory().state_signature(), (*parallelism).max(1) as u32),
                NodeBody::Sink(s) => (s.state_signature(), 1),
            };
            expected.insert(n.name.as_str(), (signature, instances));
        }
        for s in &c.components {
            match expected.get(s.name.as_str()) {
                None => errors.push(format!(
                    "`{}` has state in checkpoint {} but is not in the pipeline any more (its state would be lost: restore the component or use a new checkpoint.path)",
                    s.name, c.epoch
                )),
                Some((None, _)) => errors.push(format!(
                    "`{}` was stateful ({}) and now keeps no state",
                    s.name, s.signature
                )),
                Some((Some(sig), _)) if *sig != s.signature => errors.push(format!(
                    "`{}` changed: the checkpoint holds `{}`, the pipeline has `{sig}`",
                    s.name, s.signature
                )),
                Some((_, n)) if *n != s.instances => errors.push(format!(
                    "`{}` changed parallelism from {} to {n}: its state is split by instance",
                    s.name, s.instances
                )),
                _ => {
                    states.insert((s.name.clone(), s.instance), s.clone());
                }
            }
        }
        for (name, (sig, _)) in &expected {
            if sig.is_some() && !c.components.iter().any(|s| s.name == *name) {
                tracing::info!(
                    component = name,
                    "new in this pipeline: starts with empty state"
                );
            }
        }
        errors.dedup();
        if errors.is_empty() {
            Ok(Restore { states, segments })
        } else {
            Err(errors)
        }
    }

    /// The state of a component instance, with the state segments it lists.
    fn take(&mut self, name: &str, instance: u32) -> Option<(Vec<u8>, SegmentData)> {
        let state = self.states.remove(&(name.to_string(), instance))?.state;
        let segments = self
            .segments
            .remove(&(name.to_string(), instance))
            .unwrap_or_default();
        Some((state, segments))
    }
}

/// What a finished run did.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub epochs: Vec<EpochSummary>,
    /// The epoch whose data a failed component was handling, when it says.
    pub failed_at: Option<Epoch>,
    pub records: u64,
    pub bytes: u64,
    pub seconds: f64,
}

pub struct RunningPipeline {
    name: String,
    events: UnboundedReceiver<RuntimeEvent>,
    sources: Vec<ActorRef<SourceActor>>,
    stages: Vec<ActorRef<StageActor>>,
    sinks: Vec<String>,
    dead_letters: Option<ActorRef<DeadLetterActor>>,
    metrics: Metrics,
    started: Instant,
    checkpoints: Checkpointer,
    /// The watermark of the last committed epoch.
    watermark: Option<EventTime>,
}

impl RunningPipeline {
    /// Spawns every actor of the graph (sinks first, sources last) with the state of the
    /// checkpoint it resumes from, and starts the sources.
    pub fn start(graph: PipelineGraph, resume: Resume) -> Result<RunningPipeline, PipelineError> {
        let order = graph.validate().map_err(PipelineError::Graph)?;
        let first_epoch = resume.first_epoch();
        let Resume {
            checkpoints,
            checkpoint,
            segments,
            mut replays,
            isolate,
        } = resume;
        let mut restore = Restore::check(checkpoint.as_ref(), segments, &graph)
            .map_err(PipelineError::Incompatible)?;
        let restore_err =
            |name: &str, e: String| PipelineError::Checkpoint(format!("restoring `{name}`: {e}"));
        let PipelineGraph {
            name,
            nodes,
            dead_letters,
            metrics,
        } = graph;
        let (tx, rx) = unbounded_channel();
        let dead_ref = dead_letters.map(|sink| {
            DeadLetterActor::spawn_with_mailbox(
                DeadLetterActor { sink, error: None },
                mailbox::bounded(64),
            )
        });

        let index: HashMap<String, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.clone(), i))
            .collect();
        let instances: Vec<usize> = nodes
            .iter()
            .map(|n| match n.body {
                NodeBody::Operator { parallelism, .. } => parallelism.max(1),
                _ => 1,
            })
            .collect();
        // Channel numbering at each node: its inputs' instances, in input order.
        let mut channel_base: Vec<HashMap<usize, usize>> = vec![HashMap::new(); nodes.len()];
        let mut channels = vec![0usize; nodes.len()];
        for (j, n) in nodes.iter().enumerate() {
            for inp in &n.inputs {
                let i = index[inp];
                channel_base[j].insert(i, channels[j]);
                channels[j] += instances[i];
            }
        }
        let consumers: Vec<Vec<usize>> = (0..nodes.len())
            .map(|i| {
                (0..nodes.len())
                    .filter(|&j| nodes[j].inputs.iter().any(|x| index[x] == i))
                    .collect()
            })
            .collect();

        let mut refs: Vec<Vec<ActorRef<StageActor>>> = vec![Vec::new(); nodes.len()];
        let mut sources = Vec::new();
        let mut sinks = Vec::new();
        let mut stages = Vec::new();
        let mut bodies: Vec<Option<NodeBody>> = Vec::new();
        let mut specs = Vec::new();
        for n in nodes {
            bodies.push(Some(n.body));
            specs.push((n.name, n.mailbox));
        }

        for &i in order.iter().rev() {
            let (node_name, mailbox_cap) = specs[i].clone();
            let make_outputs = |refs: &Vec<Vec<ActorRef<StageActor>>>, instance: usize| Outputs {
                edges: consumers[i]
                    .iter()
                    .map(|&j| Edge {
                        targets: refs[j]
                            .iter()
                            .map(|r| (r.clone(), channel_base[j][&i] + instance))
                            .collect(),
                        next: instance,
                        queued: metrics.gauge(names::MAILBOX_QUEUED, &specs[j].0),
                    })
                    .collect(),
                full_waits: metrics.counter(names::MAILBOX_FULL_WAITS, &node_name),
                records_out: metrics.counter(names::RECORDS_OUT, &node_name),
                tap: metrics.taps().point(&node_name),
            };
            let stage_metrics = || StageMetrics {
                records_in: metrics.counter(names::RECORDS_IN, &node_name),
                batches_in: metrics.counter(names::BATCHES_IN, &node_name),
                busy_nanos: metrics.counter(names::BUSY_NANOS, &node_name),
                queued: metrics.gauge(names::MAILBOX_QUEUED, &node_name),
            };
            let instances = match &bodies[i] {
                Some(NodeBody::Operator { parallelism, .. }) => (*parallelism).max(1),
                _ => 1,
            };
            if !matches!(bodies[i], Some(NodeBody::Source { .. })) {
                metrics
                    .gauge(names::MAILBOX_CAPACITY, &node_name)
                    .set((mailbox_cap.max(1) * instances) as i64);
                // A restart starts with empty mailboxes.
                metrics.gauge(names::MAILBOX_QUEUED, &node_name).set(0);
            }
            match bodies[i].take().unwrap() {
                NodeBody::Source {
                    mut source,
                    trigger,
                    options,
                } => {
                    let mut had_data = false;
                    if let Some((state, segments)) = restore.take(&node_name, 0) {
                        let (flag, inner) = crate::source_actor::decode_source_state(&state)
                            .map_err(|e| restore_err(&node_name, e))?;
                        source
                            .restore_with_segments(inner, segments)
                            .map_err(|e| restore_err(&node_name, e.to_string()))?;
                        had_data = flag;
                    }
                    let actor = SourceActor {
                        name: node_name.clone(),
                        source,
                        trigger,
                        options,
                        last_epoch_at: Instant::now(),
                        outputs: make_outputs(&refs, 0),
                        dead: DeadLetterOut::new(&node_name, &metrics, dead_ref.clone()),
                        events: tx.clone(),
                        epoch: first_epoch,
                        had_data,
                        finished: false,
                        checkpoints: checkpoints.clone(),
                        replay: VecDeque::from(replays.remove(&node_name).unwrap_or_default()),
                        resumed_from: checkpoint.as_ref().map(|c| c.epoch),
                        committed: checkpoint.as_ref().map(|c| c.epoch),
                        max_in_flight: None,
                        waiting_for_commit: false,
                    };
                    sources.push((i, actor));
                }
                NodeBody::Operator {
                    factory,
                    parallelism,
                } => {
                    for k in 0..parallelism.max(1) {
                        let outputs = make_outputs(&refs, k);
                        let mut op = factory();
                        if let Some((state, segments)) = restore.take(&node_name, k as u32) {
                            op.restore_with_segments(&state, segments)
                                .map_err(|e| restore_err(&node_name, e.to_string()))?;
                        }
                        let mut actor = StageActor::new(
                            node_name.clone(),
                            Body::Operator(op),
                            outputs,
                            DeadLetterOut::new(&node_name, &metrics, dead_ref.clone()),
                            tx.clone(),
                            stage_metrics(),
                            channels[i],
                        );
                        actor.instance = k as u32;
                        actor.instances = parallelism.max(1) as u32;
                        actor.epoch = first_epoch;
                        actor.isolate = isolate;
                        let r = StageActor::spawn_with_mailbox(
                            actor,
                            mailbox::bounded(mailbox_cap.max(1)),
                        );
                        refs[i].push(r.clone());
                        stages.push(r);
                    }
                }
                NodeBody::Sink(mut sink) => {
                    if let Some((state, segments)) = restore.take(&node_name, 0) {
                        sink.restore_with_segments(&state, segments)
                            .map_err(|e| restore_err(&node_name, e.to_string()))?;
                    }
                    let mut actor = StageActor::new(
                        node_name.clone(),
                        Body::Sink(sink),
                        Outputs {
                            edges: vec![],
                            full_waits: Default::default(),
                            records_out: Default::default(),
                            tap: metrics.taps().point(&node_name),
                        },
                        DeadLetterOut::new(&node_name, &metrics, dead_ref.clone()),
                        tx.clone(),
                        stage_metrics(),
                        channels[i],
                    );
                    actor.epoch = first_epoch;
                    actor.isolate = isolate;
                    let r =
                        StageActor::spawn_with_mailbox(actor, mailbox::bounded(mailbox_cap.max(1)));
                    refs[i].push(r.clone());
                    stages.push(r);
                    sinks.push(node_name.clone());
                }
            }
        }
        // Sources last, so every mailbox they feed exists; they start ticking at once. Their
        // own mailbox only carries ticks, stop and commit notices (one per epoch): unbounded,
        // so a tick a source sends itself is never lost behind commit notices.
        // A checkpoint needs every sink's commit of the epoch. With one source every sink gets
        // every barrier, and ends with the stream; with several (each with its own epochs, on
        // branches that may end or idle apart) a commit may never come, and a source held
        // back for it would stall: they are not held. Without a sink nothing is committed.
        let in_flight = (sources.len() == 1 && !sinks.is_empty())
            .then_some(crate::source_actor::MAX_EPOCHS_IN_FLIGHT);
        let source_refs = sources
            .into_iter()
            .map(|(_, mut actor)| {
                actor.max_in_flight = in_flight;
                SourceActor::spawn_with_mailbox(actor, mailbox::unbounded())
            })
            .collect();
        Ok(RunningPipeline {
            name,
            events: rx,
            sources: source_refs,
            stages,
            sinks,
            dead_letters: dead_ref,
            metrics,
            started: Instant::now(),
            checkpoints,
            watermark: checkpoint.as_ref().and_then(|c| c.watermark),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub(crate) fn sources(&self) -> Vec<ActorRef<SourceActor>> {
        self.sources.clone()
    }

    /// Follows the run until every sink has closed (or a component fails), logging one line
    /// per committed epoch. `on_epoch` sees each committed epoch.
    pub async fn wait(
        self,
        on_epoch: impl FnMut(&EpochSummary),
    ) -> Result<RunReport, PipelineError> {
        let mut report = RunReport::default();
        self.follow(&mut report, on_epoch).await.map(|_| report)
    }

    /// As [`Self::wait`], filling `report` as epochs commit (kept when the run fails, so a
    /// supervisor knows how far it got).
    pub async fn follow(
        mut self,
        report: &mut RunReport,
        mut on_epoch: impl FnMut(&EpochSummary),
    ) -> Result<(), PipelineError> {
        // Per epoch: records, bytes, start, read time, wall-clock start, source offsets.
        let mut read: BTreeMap<Epoch, EpochRead> = BTreeMap::new();
        let mut commits: BTreeMap<Epoch, usize> = BTreeMap::new();
        let mut finished = 0usize;
        let mut watermark: Option<EventTime> = self.watermark;
        // Per epoch: the states reported, and the segments listed for the first time.
        type Snapshots = (Vec<ComponentState>, Vec<NewSegment>);
        let mut snapshots: BTreeMap<Epoch, Snapshots> = BTreeMap::new();
        let mut epoch_watermarks: BTreeMap<Epoch, EventTime> = BTreeMap::new();
        let sinks = self.sinks.len();
        // Late rows and (row, window) pairs dropped up to the last committed epoch.
        let mut late_seen = (
            self.metrics.total(names::LATE_ROWS_DROPPED),
            self.metrics.total(names::LATE_ROW_WINDOWS_DROPPED),
        );
        let result = loop {
            let Some(ev) = self.events.recv().await else {
                break Ok(());
            };
            match ev {
                RuntimeEvent::EpochRead {
                    epoch,
                    records,
                    bytes,
                    plan_ms,
                    read_ms,
                    offset,
                    source,
                } => {
                    tracing::debug!(source, epoch, records, bytes, read_ms, offset, "epoch read");
                    let e = read.entry(epoch).or_insert_with(|| {
                        // The epoch started when its read did.
                        let mut e = EpochRead::new();
                        let took = std::time::Duration::from_secs_f64(read_ms.max(0.0) / 1000.0);
                        e.started = e.started.checked_sub(took).unwrap_or(e.started);
                        e.started_ms -= read_ms as i64;
                        e
                    });
                    e.records += records;
                    e.bytes += bytes;
                    // Sources read in parallel: the slowest one is the epoch's read.
                    if read_ms > e.read_ms {
                        e.read_ms = read_ms;
                        e.plan_ms = plan_ms;
                    }
                    e.offsets.push((source.clone(), offset.clone()));
                    report.records += records;
                    report.bytes += bytes;
                }
                // The end of a bounded input, not a point in time to report.
                RuntimeEvent::Watermark { watermark: w, .. } if w == EventTime::MAX => {}
                RuntimeEvent::Watermark {
                    watermark: w,
                    epoch,
                    ..
                } => match epoch {
                    // The watermark an epoch ended with: reported when the epoch commits.
                    Some(e) => {
                        let x = epoch_watermarks.entry(e).or_insert(w);
                        *x = (*x).max(w);
                    }
                    None => watermark = Some(watermark.map_or(w, |x: EventTime| x.max(w))),
                },
                RuntimeEvent::Snapshot {
                    epoch,
                    state,
                    new_segments,
                } => {
                    let (states, segments) = snapshots.entry(epoch).or_default();
                    segments.extend(new_segments.into_iter().map(|(name, data)| NewSegment {
                        component: state.name.clone(),
                        instance: state.instance,
                        name,
                        data,
                    }));
                    states.push(state);
                }
                RuntimeEvent::SinkCommitted { epoch, .. } => {
                    let c = commits.entry(epoch).or_insert(0);
                    *c += 1;
                    if *c == sinks {
                        commits.remove(&epoch);
                        let EpochRead {
                            records,
                            bytes,
                            started: t0,
                            started_ms,
                            plan_ms,
                            read_ms,
                            offsets,
                        } = read.remove(&epoch).unwrap_or_else(EpochRead::new);
                        if let Some(w) = epoch_watermarks.remove(&epoch) {
                            watermark = Some(watermark.map_or(w, |x: EventTime| x.max(w)));
                        }
                        // Every sink made the epoch visible: record where to resume from.
                        if let Err(e) =
                            trendflow_core::failpoint::check("after-sink-commit-before-checkpoint")
                        {
                            break Err(PipelineError::Checkpoint(e));
                        }
                        let (mut components, mut new_segments) =
                            snapshots.remove(&epoch).unwrap_or_default();
                        // Snapshots of earlier epochs no checkpoint will have (epochs whose
                        // numbers drifted apart between sources): their components handed
                        // over new segments and will list them by name from now on, so they
                        // are written with this checkpoint.
                        while let Some(entry) = snapshots.first_entry()
                            && *entry.key() < epoch
                        {
                            new_segments.extend(entry.remove().1);
                        }
                        components
                            .sort_by(|a, b| (&a.name, a.instance).cmp(&(&b.name, b.instance)));
                        let checkpoint = Checkpoint {
                            epoch,
                            pipeline: self.name.clone(),
                            created_ms: std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map_or(0, |d| d.as_millis() as i64),
                            watermark,
                            components,
                        };
                        let checkpoint_started = Instant::now();
                        let created_ms = checkpoint.created_ms;
                        let checkpoint_bytes = match self
                            .checkpoints
                            .write_checkpoint(checkpoint, new_segments)
                            .await
                        {
                            Ok(n) => n,
                            Err(e) => break Err(PipelineError::Checkpoint(e)),
                        };
                        let checkpoint_ms = checkpoint_started.elapsed().as_secs_f64() * 1000.0;
                        self.metrics
                            .counter(names::CHECKPOINTS_WRITTEN, &self.name)
                            .inc();
                        self.metrics
                            .gauge(names::CHECKPOINT_BYTES, &self.name)
                            .set(checkpoint_bytes as i64);
                        self.metrics
                            .counter(names::CHECKPOINT_WRITTEN_BYTES, &self.name)
                            .add(checkpoint_bytes as u64);
                        self.metrics
                            .gauge(names::CHECKPOINT_TIMESTAMP_SECONDS, &self.name)
                            .set(created_ms / 1000);
                        if let Err(e) = trendflow_core::failpoint::check(
                            "after-checkpoint-before-source-commit",
                        ) {
                            break Err(PipelineError::Checkpoint(e));
                        }
                        let summary = EpochSummary {
                            epoch,
                            records,
                            bytes,
                            duration_ms: t0.elapsed().as_secs_f64() * 1000.0,
                            watermark,
                            started_ms,
                            plan_ms,
                            read_ms,
                            checkpoint_ms,
                            offsets,
                        };
                        self.metrics
                            .counter(names::EPOCHS_COMMITTED, &self.name)
                            .inc();
                        // One line each for the checkpoint, the epoch, and (when there
                        // were any) late rows: what `--log-format json` users grep for. Late
                        // rows are counted between two commits: with later epochs already in
                        // flight, a commit's count can include some of theirs.
                        let round = |ms: f64| (ms * 10.0).round() / 10.0;
                        tracing::info!(
                            pipeline = %self.name,
                            epoch,
                            checkpoint_bytes,
                            checkpoint_ms = round(checkpoint_ms),
                            "checkpoint written"
                        );
                        let late_total = self.metrics.total(names::LATE_ROWS_DROPPED);
                        let late_windows_total =
                            self.metrics.total(names::LATE_ROW_WINDOWS_DROPPED);
                        let late_rows = late_total - late_seen.0;
                        let late_row_windows = late_windows_total - late_seen.1;
                        // A warning when whole rows were dropped; when rows were late for
                        // some of their windows only (they still count in the others: the
                        // usual case with sliding windows), information.
                        if late_rows > 0 {
                            tracing::warn!(
                                pipeline = %self.name,
                                epoch,
                                late_rows,
                                late_row_windows,
                                late_rows_total = late_total,
                                "late rows dropped"
                            );
                        } else if late_row_windows > 0 {
                            tracing::info!(
                                pipeline = %self.name,
                                epoch,
                                late_rows,
                                late_row_windows,
                                late_rows_total = late_total,
                                "late rows dropped"
                            );
                        }
                        late_seen = (late_total, late_windows_total);
                        tracing::info!(
                            pipeline = %self.name,
                            epoch,
                            records,
                            bytes,
                            duration_ms = round(summary.duration_ms),
                            read_ms = round(read_ms),
                            watermark = watermark.map(trendflow_core::time::format_iso_utc).unwrap_or_default(),
                            late_rows,
                            checkpoint_bytes,
                            checkpoint_ms = round(checkpoint_ms),
                            "epoch committed"
                        );
                        on_epoch(&summary);
                        report.epochs.push(summary);
                        for s in &self.sources {
                            let _ = s.tell(Committed(epoch)).send().await;
                        }
                    }
                }
                RuntimeEvent::SinkFinished { .. } => {
                    finished += 1;
                    if finished == sinks {
                        break Ok(());
                    }
                }
                RuntimeEvent::SourceFinished { source } => {
                    tracing::debug!(source, "source finished")
                }
                RuntimeEvent::CheckpointFailed { error } => {
                    tracing::error!(error, "checkpoint store failed; stopping the pipeline");
                    break Err(PipelineError::Checkpoint(error));
                }
                RuntimeEvent::Failed {
                    component,
                    error,
                    epoch,
                } => {
                    tracing::error!(component, error, "component failed; stopping the pipeline");
                    report.failed_at = epoch;
                    break Err(PipelineError::Component { component, error });
                }
            }
        };
        if result.is_err() {
            for s in &self.sources {
                s.kill();
            }
            for s in &self.stages {
                s.kill();
            }
        }
        if let Some(d) = &self.dead_letters
            && let Err(e) = d.ask(Flush).await
            && result.is_ok()
        {
            return Err(PipelineError::DeadLetters(e.to_string()));
        }
        report.seconds += self.started.elapsed().as_secs_f64();
        result
    }
}
