//! Starting a pipeline graph as actors, following its epochs, stopping it.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use kameo::actor::{ActorRef, Spawn};
use kameo::mailbox;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use trendflow_core::metrics::{Metrics, names};
use trendflow_core::{Epoch, EventTime};

use crate::dead_letters::{DeadLetterActor, DeadLetterOut, Flush};
use crate::events::{EpochSummary, RuntimeEvent};
use crate::graph::{GraphError, NodeBody, PipelineGraph};
use crate::outputs::{Edge, Outputs};
use crate::source_actor::{Committed, SourceActor, Stop};
use crate::stage_actor::{Body, StageActor, StageMetrics};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("invalid pipeline: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Graph(Vec<GraphError>),
    #[error("`{component}` failed: {error}")]
    Component { component: String, error: String },
    #[error("dead-letter output failed: {0}")]
    DeadLetters(String),
}

/// What a finished run did.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub epochs: Vec<EpochSummary>,
    pub records: u64,
    pub bytes: u64,
    pub seconds: f64,
}

/// Stops the sources of a running pipeline: each finishes its current epoch, then the end
/// of the stream flows through every stage and the sinks close.
#[derive(Clone)]
pub struct StopHandle {
    sources: Vec<ActorRef<SourceActor>>,
}

impl StopHandle {
    pub async fn stop(&self) {
        for s in &self.sources {
            let _ = s.tell(Stop).send().await;
        }
    }
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
}

impl RunningPipeline {
    /// Spawns every actor of the graph (sinks first, sources last) and starts the sources.
    pub fn start(graph: PipelineGraph) -> Result<RunningPipeline, PipelineError> {
        let order = graph.validate().map_err(PipelineError::Graph)?;
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
                    })
                    .collect(),
                full_waits: metrics.counter(names::MAILBOX_FULL_WAITS, &node_name),
                records_out: metrics.counter(names::RECORDS_OUT, &node_name),
            };
            let stage_metrics = || StageMetrics {
                records_in: metrics.counter(names::RECORDS_IN, &node_name),
                batches_in: metrics.counter(names::BATCHES_IN, &node_name),
                busy_nanos: metrics.counter(names::BUSY_NANOS, &node_name),
            };
            match bodies[i].take().unwrap() {
                NodeBody::Source { source, trigger } => {
                    let actor = SourceActor {
                        name: node_name.clone(),
                        source,
                        trigger,
                        outputs: make_outputs(&refs, 0),
                        dead: DeadLetterOut::new(&node_name, &metrics, dead_ref.clone()),
                        events: tx.clone(),
                        epoch: 0,
                        had_data: false,
                        finished: false,
                    };
                    sources.push((i, actor));
                }
                NodeBody::Operator {
                    factory,
                    parallelism,
                } => {
                    for k in 0..parallelism.max(1) {
                        let outputs = make_outputs(&refs, k);
                        let actor = StageActor::new(
                            node_name.clone(),
                            Body::Operator(factory()),
                            outputs,
                            DeadLetterOut::new(&node_name, &metrics, dead_ref.clone()),
                            tx.clone(),
                            stage_metrics(),
                            channels[i],
                        );
                        let r = StageActor::spawn_with_mailbox(
                            actor,
                            mailbox::bounded(mailbox_cap.max(1)),
                        );
                        refs[i].push(r.clone());
                        stages.push(r);
                    }
                }
                NodeBody::Sink(sink) => {
                    let actor = StageActor::new(
                        node_name.clone(),
                        Body::Sink(sink),
                        Outputs {
                            edges: vec![],
                            full_waits: Default::default(),
                            records_out: Default::default(),
                        },
                        DeadLetterOut::new(&node_name, &metrics, dead_ref.clone()),
                        tx.clone(),
                        stage_metrics(),
                        channels[i],
                    );
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
        let source_refs = sources
            .into_iter()
            .map(|(_, actor)| SourceActor::spawn_with_mailbox(actor, mailbox::unbounded()))
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
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            sources: self.sources.clone(),
        }
    }

    /// Follows the run until every sink has closed (or a component fails), logging one line
    /// per committed epoch. `on_epoch` sees each committed epoch.
    pub async fn wait(
        mut self,
        mut on_epoch: impl FnMut(&EpochSummary),
    ) -> Result<RunReport, PipelineError> {
        let mut report = RunReport::default();
        let mut read: BTreeMap<Epoch, (u64, u64, Instant)> = BTreeMap::new();
        let mut commits: BTreeMap<Epoch, usize> = BTreeMap::new();
        let mut finished = 0usize;
        let mut watermark: Option<EventTime> = None;
        let mut epoch_watermarks: BTreeMap<Epoch, EventTime> = BTreeMap::new();
        let sinks = self.sinks.len();
        let result = loop {
            let Some(ev) = self.events.recv().await else {
                break Ok(());
            };
            match ev {
                RuntimeEvent::EpochRead {
                    epoch,
                    records,
                    bytes,
                    read_ms,
                    offset,
                    source,
                } => {
                    tracing::debug!(source, epoch, records, bytes, read_ms, offset, "epoch read");
                    let e = read.entry(epoch).or_insert((0, 0, Instant::now()));
                    e.0 += records;
                    e.1 += bytes;
                    report.records += records;
                    report.bytes += bytes;
                }
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
                RuntimeEvent::SinkCommitted { epoch, .. } => {
                    let c = commits.entry(epoch).or_insert(0);
                    *c += 1;
                    if *c == sinks {
                        commits.remove(&epoch);
                        let (records, bytes, t0) =
                            read.remove(&epoch).unwrap_or((0, 0, Instant::now()));
                        if let Some(w) = epoch_watermarks.remove(&epoch) {
                            watermark = Some(watermark.map_or(w, |x: EventTime| x.max(w)));
                        }
                        let summary = EpochSummary {
                            epoch,
                            records,
                            bytes,
                            duration_ms: t0.elapsed().as_secs_f64() * 1000.0,
                            watermark,
                        };
                        self.metrics
                            .counter(names::EPOCHS_COMMITTED, &self.name)
                            .inc();
                        tracing::info!(
                            pipeline = %self.name,
                            epoch,
                            records,
                            bytes,
                            duration_ms = format!("{:.1}", summary.duration_ms),
                            watermark = watermark.map(trendflow_core::time::format_iso_utc).unwrap_or_default(),
                            late_rows = self.metrics.total(names::LATE_ROWS_DROPPED),
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
                RuntimeEvent::Failed { component, error } => {
                    tracing::error!(component, error, "component failed; stopping the pipeline");
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
        report.seconds = self.started.elapsed().as_secs_f64();
        result.map(|_| report)
    }
}
