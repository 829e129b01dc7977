//! The supervisor and checkpoints on small graphs: a failed actor is restarted from the last
//! checkpoint and the output is as if nothing happened; past the budget the run stops with an
//! error; a checkpoint that does not fit the pipeline is refused with what changed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use trendflow_core::codec::{StateReader, StateWriter};
use trendflow_core::metrics::{Metrics, names};
use trendflow_core::{
    Batch, BatchSender, BoxFuture, Emitter, Epoch, EpochPlan, Operator, OperatorError, RawBatch,
    Sink, Source,
};
use trendflow_runtime::checkpoint::{
    Checkpoint, CheckpointStore, Checkpointer, LocalDirStore, MemoryStore,
};
use trendflow_runtime::{
    NodeBody, NodeSpec, PipelineError, PipelineGraph, RestartPolicy, Supervisor, Trigger,
};

/// Epoch e carries the numbers 10e .. 10e+9, one per batch. With `epochs: 0`, a stream that
/// never has data.
struct Numbers {
    epochs: u64,
}

impl Source for Numbers {
    fn plan_epoch(&mut self, epoch: Epoch) -> BoxFuture<'_, Result<EpochPlan, OperatorError>> {
        let plan = if epoch >= self.epochs && self.epochs == 0 {
            EpochPlan::Idle
        } else if epoch >= self.epochs {
            EpochPlan::Exhausted
        } else {
            EpochPlan::Input(epoch.to_le_bytes().to_vec())
        };
        Box::pin(async move { Ok(plan) })
    }

    fn read_epoch<'a>(
        &'a mut self,
        _: Epoch,
        input: &'a [u8],
        out: &'a mut dyn BatchSender,
    ) -> BoxFuture<'a, Result<(), OperatorError>> {
        Box::pin(async move {
            let e = u64::from_le_bytes(input.try_into().unwrap());
            for i in 0..10 {
                let data = format!("{}\n", e * 10 + i).into_bytes();
                out.send(Batch::Raw(Arc::new(RawBatch {
                    origin: "numbers".into(),
                    first_line: e * 10 + i + 1,
                    lines: 1,
                    data: data.into(),
                })))
                .await?;
            }
            Ok(())
        })
    }
}

fn number(batch: &Batch) -> u64 {
    let Batch::Raw(r) = batch else { panic!() };
    String::from_utf8_lossy(&r.data).trim().parse().unwrap()
}

/// Passes numbers on; fails (panics, or errors) as told.
struct Flaky {
    panic_once_at: Option<u64>,
    fail_always_at: Option<u64>,
    panicked: Arc<AtomicBool>,
}

impl Operator for Flaky {
    fn process_batch(&mut self, batch: Batch, out: &mut Emitter) -> Result<(), OperatorError> {
        let n = number(&batch);
        if self.panic_once_at == Some(n) && !self.panicked.swap(true, Ordering::SeqCst) {
            panic!("injected panic at {n}");
        }
        if self.fail_always_at == Some(n) {
            return Err(OperatorError::new(format!("cannot handle {n}")));
        }
        out.emit(batch);
        Ok(())
    }
}

/// A stateful sink: the sum and count of numbers committed, published at each commit.
struct Sum {
    pending: (u64, u64),
    committed: (u64, u64),
    published: Arc<Mutex<(u64, u64)>>,
}

impl Sink for Sum {
    fn write(&mut self, batch: &Batch) -> Result<(), OperatorError> {
        self.pending.0 += number(batch);
        self.pending.1 += 1;
        Ok(())
    }
    fn commit(&mut self, _: Epoch) -> Result<(), OperatorError> {
        self.committed.0 += self.pending.0;
        self.committed.1 += self.pending.1;
        self.pending = (0, 0);
        *self.published.lock().unwrap() = self.committed;
        Ok(())
    }
    fn state_signature(&self) -> Option<String> {
        Some("sum v1".into())
    }
    fn snapshot(&self) -> Result<Vec<u8>, OperatorError> {
        let mut w = StateWriter::new();
        w.u64(self.committed.0).u64(self.committed.1);
        Ok(w.finish())
    }
    fn restore(&mut self, state: &[u8]) -> Result<(), OperatorError> {
        let mut r = StateReader::new(state);
        self.committed = (r.u64().unwrap(), r.u64().unwrap());
        *self.published.lock().unwrap() = self.committed;
        Ok(())
    }
}

struct Setup {
    panic_once_at: Option<u64>,
    fail_always_at: Option<u64>,
    panicked: Arc<AtomicBool>,
    published: Arc<Mutex<(u64, u64)>>,
    metrics: Metrics,
    sink_signature_suffix: &'static str,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            panic_once_at: None,
            fail_always_at: None,
            panicked: Arc::new(AtomicBool::new(false)),
            published: Arc::new(Mutex::new((0, 0))),
            metrics: Metrics::new(),
            sink_signature_suffix: "",
        }
    }

    fn graph(&self) -> PipelineGraph {
        let (p, f, flag) = (
            self.panic_once_at,
            self.fail_always_at,
            self.panicked.clone(),
        );
        let sink: Box<dyn Sink> = if self.sink_signature_suffix.is_empty() {
            Box::new(Sum {
                pending: (0, 0),
                committed: (0, 0),
                published: self.published.clone(),
            })
        } else {
            Box::new(Renamed(Sum {
                pending: (0, 0),
                committed: (0, 0),
                published: self.published.clone(),
            }))
        };
        PipelineGraph {
            name: "numbers".into(),
            nodes: vec![
                NodeSpec {
                    name: "src".into(),
                    body: NodeBody::Source {
                        source: Box::new(Numbers { epochs: 20 }),
                        trigger: Trigger::AvailableNow,
                        options: Default::default(),
                    },
                    inputs: vec![],
                    mailbox: 4,
                },
                NodeSpec {
                    name: "op".into(),
                    body: NodeBody::Operator {
                        factory: Box::new(move || {
                            Box::new(Flaky {
                                panic_once_at: p,
                                fail_always_at: f,
                                panicked: flag.clone(),
                            }) as Box<dyn Operator>
                        }),
                        parallelism: 2,
                    },
                    inputs: vec!["src".into()],
                    mailbox: 4,
                },
                NodeSpec {
                    name: "sum".into(),
                    body: NodeBody::Sink(sink),
                    inputs: vec!["op".into()],
                    mailbox: 4,
                },
            ],
            dead_letters: None,
            metrics: self.metrics.clone(),
        }
    }

    fn supervisor(self: &Arc<Self>, checkpoints: Checkpointer, max_restarts: usize) -> Supervisor {
        let me = self.clone();
        Supervisor::new(
            self.graph(),
            Box::new(move || Ok(me.graph())),
            RestartPolicy {
                max_restarts,
                within: Duration::from_secs(60),
                backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(10),
                poison_retries: 2,
            },
            checkpoints,
        )
    }
}

/// The same sink under another state signature (a changed component).
struct Renamed(Sum);
impl Sink for Renamed {
    fn write(&mut self, b: &Batch) -> Result<(), OperatorError> {
        self.0.write(b)
    }
    fn commit(&mut self, e: Epoch) -> Result<(), OperatorError> {
        self.0.commit(e)
    }
    fn state_signature(&self) -> Option<String> {
        Some("sum v2".into())
    }
    fn snapshot(&self) -> Result<Vec<u8>, OperatorError> {
        self.0.snapshot()
    }
    fn restore(&mut self, s: &[u8]) -> Result<(), OperatorError> {
        self.0.restore(s)
    }
}

fn memory() -> Checkpointer {
    Checkpointer::new(Arc::new(MemoryStore::new()), 2)
}

/// 0 + 1 + ... + 199
const TOTAL: (u64, u64) = (199 * 200 / 2, 200);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_actor_is_restarted_and_nothing_is_lost_or_counted_twice() {
    let mut s = Setup::new();
    s.panic_once_at = Some(137);
    let s = Arc::new(s);
    let report = s.supervisor(memory(), 3).run(|_| {}).await.unwrap();
    assert_eq!(*s.published.lock().unwrap(), TOTAL);
    assert!(s.panicked.load(Ordering::SeqCst));
    assert_eq!(s.metrics.value(names::ACTOR_RESTARTS, "op"), 1);
    // Every epoch committed once, in order, across the restart.
    let epochs: Vec<Epoch> = report.epochs.iter().map(|e| e.epoch).collect();
    assert_eq!(epochs, (0..=20).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_budget_the_run_stops_with_an_error_instead_of_looping() {
    let mut s = Setup::new();
    s.fail_always_at = Some(55);
    let s = Arc::new(s);
    // No isolation before the budget is spent: one retry allowed.
    let err = s.supervisor(memory(), 1).run(|_| {}).await.unwrap_err();
    let PipelineError::RestartBudget { restarts, last, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(*restarts, 1);
    assert!(last.to_string().contains("cannot handle 55"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_failing_every_retry_is_isolated() {
    let mut s = Setup::new();
    s.fail_always_at = Some(55);
    let s = Arc::new(s);
    s.supervisor(memory(), 5).run(|_| {}).await.unwrap();
    assert_eq!(*s.published.lock().unwrap(), (TOTAL.0 - 55, TOTAL.1 - 1));
    assert_eq!(s.metrics.value(names::ACTOR_RESTARTS, "op"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_of_a_changed_component_is_refused_with_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = || Checkpointer::new(Arc::new(LocalDirStore::new(dir.path())), 2);
    let s = Arc::new(Setup::new());
    s.supervisor(checkpoints(), 0).run(|_| {}).await.unwrap();
    let mut changed = Setup::new();
    changed.sink_signature_suffix = "v2";
    let changed = Arc::new(changed);
    let err = changed
        .supervisor(checkpoints(), 0)
        .run(|_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`sum` changed") && err.contains("sum v1") && err.contains("sum v2"),
        "{err}"
    );
    // The unchanged pipeline resumes: nothing more to read, totals restored, not doubled.
    let again = Arc::new(Setup::new());
    again
        .supervisor(checkpoints(), 0)
        .run(|_| {})
        .await
        .unwrap();
    assert_eq!(*again.published.lock().unwrap(), TOTAL);
}

#[tokio::test]
async fn the_newest_readable_checkpoint_is_used_and_old_ones_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalDirStore::new(dir.path()));
    let c = Checkpointer::new(store.clone(), 2);
    c.register_source("src").await.unwrap();
    let checkpoint = |epoch| Checkpoint {
        epoch,
        pipeline: "p".into(),
        created_ms: 0,
        watermark: None,
        components: vec![],
    };
    for e in 0..10 {
        c.write_offsets(
            "src",
            e,
            &trendflow_runtime::checkpoint::OffsetEntry::NoData,
        )
        .await
        .unwrap();
        c.write_checkpoint(checkpoint(e), vec![]).await.unwrap();
    }
    assert_eq!(store.list("state").await.unwrap().len(), 2);
    // Offsets after the oldest kept checkpoint (8) only.
    assert_eq!(store.list("offsets/src").await.unwrap().len(), 1);
    assert_eq!(c.load_latest("p").await.unwrap().unwrap().epoch, 9);
    // Torn newest: the previous one is used.
    let newest = dir.path().join("state/00000000000000000009.ckpt");
    let bytes = std::fs::read(&newest).unwrap();
    std::fs::write(&newest, &bytes[..bytes.len() - 3]).unwrap();
    assert_eq!(c.load_latest("p").await.unwrap().unwrap().epoch, 8);
    // Another pipeline's directory is refused.
    assert!(
        c.load_latest("q")
            .await
            .unwrap_err()
            .contains("belongs to pipeline `p`")
    );
    // All unreadable: an error, not a silent fresh start.
    std::fs::write(dir.path().join("state/00000000000000000008.ckpt"), b"junk").unwrap();
    assert!(
        c.load_latest("p")
            .await
            .unwrap_err()
            .contains("no readable checkpoint")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_source_with_a_heartbeat_keeps_closing_epochs() {
    let s = Setup::new();
    let mut g = s.graph();
    g.nodes[0].body = NodeBody::Source {
        source: Box::new(Numbers { epochs: 0 }),
        trigger: Trigger::ProcessingTime(Duration::from_millis(1)),
        options: trendflow_runtime::SourceOptions {
            final_watermark: false,
            heartbeat: Some(Duration::ZERO),
        },
    };
    let sup = Supervisor::new(
        g,
        Box::new(|| Err("no restart".into())),
        RestartPolicy::default(),
        memory(),
    );
    let stop = sup.stop_handle();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let run = tokio::spawn(sup.run(move |e| {
        let _ = tx.send(e.epoch);
    }));
    // Without data, epochs still commit; without the heartbeat none would.
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let e = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("no epoch closed on an idle stream")
            .unwrap();
        seen.push(e);
    }
    stop.stop().await;
    run.await.unwrap().unwrap();
    assert_eq!(seen, [0, 1, 2, 3, 4]);
}

/// A store whose checkpoints (`state/…`) wait until the test opens it; it counts the epochs
/// recorded in the offset log meanwhile.
struct GatedStore {
    inner: MemoryStore,
    open: tokio::sync::watch::Receiver<bool>,
    epochs_recorded: Arc<Mutex<u64>>,
}

impl CheckpointStore for GatedStore {
    fn put<'a>(&'a self, name: &'a str, data: Vec<u8>) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if name.starts_with("state/") {
                let mut open = self.open.clone();
                let _ = open.wait_for(|o| *o).await;
            }
            if name.starts_with("offsets/") {
                *self.epochs_recorded.lock().unwrap() += 1;
            }
            self.inner.put(name, data).await
        })
    }
    fn put_parts<'a>(
        &'a self,
        name: &'a str,
        parts: Vec<Vec<u8>>,
    ) -> BoxFuture<'a, Result<(), String>> {
        self.put(name, parts.concat())
    }
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, String>> {
        self.inner.get(name)
    }
    fn list<'a>(&'a self, dir: &'a str) -> BoxFuture<'a, Result<Vec<String>, String>> {
        self.inner.list(dir)
    }
    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), String>> {
        self.inner.delete(name)
    }
    fn describe(&self) -> String {
        "gated memory".into()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_reads_no_further_than_four_epochs_past_the_last_checkpoint() {
    let (open, gate) = tokio::sync::watch::channel(false);
    let recorded = Arc::new(Mutex::new(0));
    let store = GatedStore {
        inner: MemoryStore::new(),
        open: gate,
        epochs_recorded: recorded.clone(),
    };
    let s = Arc::new(Setup::new());
    let run = tokio::spawn(
        s.supervisor(Checkpointer::new(Arc::new(store), 2), 0)
            .run(|_| {}),
    );
    // No checkpoint can be written: the source records epochs 0 to 3, then waits. Were it
    // not held back, it would record all 20 within milliseconds (nothing else stops it: the
    // sink commits without the checkpoint), so a wait tells the two apart; it cannot make a
    // correct source fail.
    let started = std::time::Instant::now();
    while *recorded.lock().unwrap() < 4 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(*recorded.lock().unwrap(), 4);
    open.send(true).unwrap();
    run.await.unwrap().unwrap();
    assert_eq!(*s.published.lock().unwrap(), TOTAL);
    // The 20 epochs, and the last one without data.
    assert_eq!(*recorded.lock().unwrap(), 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sources_one_ending_early_each_run_to_their_end() {
    // Two branches, each with its own source and sink: `short` ends after 2 epochs, and its
    // sink with it, so no later epoch gets every sink's commit (no checkpoint). `long` must
    // still read its 20 epochs: it is not held back for checkpoints that cannot come.
    let branch = |name: &str, epochs: u64, published: &Arc<Mutex<(u64, u64)>>| {
        vec![
            NodeSpec {
                name: format!("{name}-src"),
                body: NodeBody::Source {
                    source: Box::new(Numbers { epochs }),
                    trigger: Trigger::AvailableNow,
                    options: Default::default(),
                },
                inputs: vec![],
                mailbox: 4,
            },
            NodeSpec {
                name: format!("{name}-sum"),
                body: NodeBody::Sink(Box::new(Sum {
                    pending: (0, 0),
                    committed: (0, 0),
                    published: published.clone(),
                })),
                inputs: vec![format!("{name}-src")],
                mailbox: 4,
            },
        ]
    };
    let (short, long) = (Arc::new(Mutex::new((0, 0))), Arc::new(Mutex::new((0, 0))));
    let mut nodes = branch("short", 2, &short);
    nodes.extend(branch("long", 20, &long));
    let graph = PipelineGraph {
        name: "two".into(),
        nodes,
        dead_letters: None,
        metrics: Metrics::new(),
    };
    let sup = Supervisor::new(
        graph,
        Box::new(|| Err("no restart".into())),
        RestartPolicy::default(),
        memory(),
    );
    // A guard against a hang, not a measure: the run takes milliseconds.
    tokio::time::timeout(Duration::from_secs(60), sup.run(|_| {}))
        .await
        .expect("the run stalled")
        .unwrap();
    assert_eq!(*short.lock().unwrap(), (19 * 20 / 2, 20));
    assert_eq!(*long.lock().unwrap(), TOTAL);
}
