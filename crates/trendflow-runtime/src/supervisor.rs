//! The supervisor: runs a pipeline and, when one of its actors fails (an error or a panic),
//! restarts every actor from the last checkpoint and replays the epochs after it, within a
//! restart budget. An epoch that keeps failing is run once more record by record so that the
//! records it fails on are set aside and the stream goes on.
//!
//! All actors restart together: the state of every actor is taken at the same barrier, so a
//! consistent restart is a restart of the whole graph from that barrier (as Flink's global
//! failover). Restarting one actor alone would need its inputs replayed from its barrier.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kameo::actor::ActorRef;
use trendflow_core::Epoch;
use trendflow_core::metrics::{Metrics, names};

use crate::checkpoint::Checkpointer;
use crate::events::EpochSummary;
use crate::graph::PipelineGraph;
use crate::run::{PipelineError, Resume, RunReport, RunningPipeline};
use crate::source_actor::{SourceActor, Stop};

/// When and how often failed actors are restarted.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartPolicy {
    /// At most this many restarts within `within`; one more failure stops the pipeline.
    pub max_restarts: usize,
    pub within: Duration,
    /// Wait before the first restart, doubled at each consecutive one up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Failures of the same epoch before it is replayed record by record, isolating the
    /// records that fail.
    pub poison_retries: usize,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            max_restarts: 5,
            within: Duration::from_secs(600),
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            poison_retries: 2,
        }
    }
}

/// Builds the graph again for a restart (fresh actors, same configuration and metrics).
pub type GraphBuilder = Box<dyn FnMut() -> Result<PipelineGraph, String> + Send>;

/// Stops the pipeline, whichever restart is running: each source finishes its epoch, the
/// end of the stream flows through, the last checkpoint is written.
#[derive(Clone, Default)]
pub struct StopHandle {
    inner: Arc<Mutex<(bool, Vec<ActorRef<SourceActor>>)>>,
}

impl StopHandle {
    pub async fn stop(&self) {
        let sources = {
            let mut g = self.inner.lock().unwrap();
            g.0 = true;
            g.1.clone()
        };
        for s in sources {
            let _ = s.tell(Stop).send().await;
        }
    }

    fn stopped(&self) -> bool {
        self.inner.lock().unwrap().0
    }

    async fn attach(&self, sources: Vec<ActorRef<SourceActor>>) {
        let stopped = {
            let mut g = self.inner.lock().unwrap();
            g.1 = sources.clone();
            g.0
        };
        if stopped {
            for s in sources {
                let _ = s.tell(Stop).send().await;
            }
        }
    }
}

pub struct Supervisor {
    first: Option<PipelineGraph>,
    build: GraphBuilder,
    policy: RestartPolicy,
    checkpoints: Checkpointer,
    metrics: Metrics,
    stop: StopHandle,
}

impl Supervisor {
    /// `graph` runs first; `build` makes the graphs of restarts.
    pub fn new(
        graph: PipelineGraph,
        build: GraphBuilder,
        policy: RestartPolicy,
        checkpoints: Checkpointer,
    ) -> Supervisor {
        Supervisor {
            metrics: graph.metrics.clone(),
            first: Some(graph),
            build,
            policy,
            checkpoints,
            stop: StopHandle::default(),
        }
    }

    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Runs until the stream ends, it is stopped, or the restart budget is spent.
    pub async fn run(
        mut self,
        mut on_epoch: impl FnMut(&EpochSummary),
    ) -> Result<RunReport, PipelineError> {
        let mut report = RunReport::default();
        let mut restarts: VecDeque<Instant> = VecDeque::new();
        let mut consecutive = 0u32;
        // (epoch that failed, how many times in a row)
        let mut failing: Option<(Epoch, usize)> = None;
        loop {
            let graph = match self.first.take() {
                Some(g) => g,
                None => (self.build)().map_err(|e| PipelineError::Component {
                    component: "pipeline".into(),
                    error: e,
                })?,
            };
            let mut resume = Resume::load(self.checkpoints.clone(), &graph).await?;
            let first_epoch = resume.first_epoch();
            let replays: usize = resume.replays.values().map(Vec::len).sum();
            if resume.checkpoint.is_some() || replays > 0 {
                tracing::info!(
                    checkpoint = self.checkpoints.describe(),
                    resume_epoch = first_epoch,
                    epochs_to_replay = replays,
                    "resuming from checkpoint"
                );
                self.metrics
                    .counter(names::EPOCHS_REPLAYED, &graph.name)
                    .add(replays as u64);
            }
            if let Some((e, n)) = failing
                && e >= first_epoch
                && n > self.policy.poison_retries
            {
                tracing::warn!(
                    epoch = e,
                    failures = n,
                    "epoch keeps failing: replaying it record by record to isolate the records at fault"
                );
                resume.isolate = Some(e);
            }
            let name = graph.name.clone();
            let running = RunningPipeline::start(graph, resume)?;
            self.stop.attach(running.sources()).await;
            let committed_before = report.epochs.len();
            let result = running.follow(&mut report, &mut on_epoch).await;
            let (component, error) = match result {
                Ok(()) => return Ok(report),
                Err(PipelineError::Component { component, error }) => (component, error),
                Err(e) => return Err(e),
            };
            let failure = PipelineError::Component {
                component: component.clone(),
                error: error.clone(),
            };
            if self.stop.stopped() {
                return Err(failure);
            }
            if report.epochs.len() > committed_before {
                consecutive = 0;
            }
            // The epoch that failed: the one whose data the failed component was handling, or,
            // when it cannot say (a source), the first one not committed.
            let first_uncommitted = report
                .epochs
                .last()
                .map_or(first_epoch, |s| (s.epoch + 1).max(first_epoch));
            let failed_epoch = report
                .failed_at
                .take()
                .map_or(first_uncommitted, |e| e.max(first_uncommitted));
            failing = match failing {
                Some((e, n)) if e == failed_epoch => Some((e, n + 1)),
                _ => Some((failed_epoch, 1)),
            };
            let now = Instant::now();
            while restarts
                .front()
                .is_some_and(|t| now.duration_since(*t) > self.policy.within)
            {
                restarts.pop_front();
            }
            if restarts.len() >= self.policy.max_restarts {
                tracing::error!(
                    component,
                    error,
                    restarts = restarts.len(),
                    "restart budget spent; stopping"
                );
                return Err(PipelineError::RestartBudget {
                    restarts: restarts.len(),
                    within_secs: self.policy.within.as_secs(),
                    last: Box::new(failure),
                });
            }
            restarts.push_back(now);
            self.metrics
                .counter(names::ACTOR_RESTARTS, &component)
                .inc();
            self.metrics.note_restart(&component, &error);
            let backoff = self
                .policy
                .backoff
                .saturating_mul(1u32 << consecutive.min(16))
                .min(self.policy.max_backoff);
            consecutive += 1;
            tracing::warn!(
                pipeline = name,
                component,
                error,
                restart = restarts.len(),
                budget = self.policy.max_restarts,
                backoff_ms = backoff.as_millis() as u64,
                epoch = failed_epoch,
                "component failed; restarting the pipeline from its last checkpoint"
            );
            tokio::time::sleep(backoff).await;
        }
    }
}
