//! The runtime on small graphs: backpressure, barrier alignment across parallel instances,
//! failures that stop the pipeline instead of hanging it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use trendflow_core::metrics::{Metrics, names};
use trendflow_core::{
    Batch, BatchSender, BoxFuture, Emitter, Epoch, EpochPlan, Operator, OperatorError, RawBatch,
    Sink, Source,
};
use trendflow_runtime::{NodeBody, NodeSpec, PipelineGraph, Resume, RunningPipeline, Trigger};

/// Sends `per_epoch` one-line batches tagged with their epoch, for `epochs` epochs.
struct CountingSource {
    epochs: u64,
    per_epoch: u64,
    sent: Arc<AtomicU64>,
}

impl Source for CountingSource {
    fn plan_epoch(&mut self, epoch: Epoch) -> BoxFuture<'_, Result<EpochPlan, OperatorError>> {
        let plan = if epoch >= self.epochs {
            EpochPlan::Exhausted
        } else {
            EpochPlan::Input(epoch.to_le_bytes().to_vec())
        };
        Box::pin(async move { Ok(plan) })
    }

    fn read_epoch<'a>(
        &'a mut self,
        _epoch: Epoch,
        input: &'a [u8],
        out: &'a mut dyn BatchSender,
    ) -> BoxFuture<'a, Result<(), OperatorError>> {
        Box::pin(async move {
            let epoch = u64::from_le_bytes(input.try_into().unwrap());
            for i in 0..self.per_epoch {
                let data = format!("{epoch} {i}\n").into_bytes();
                out.send(Batch::Raw(Arc::new(RawBatch {
                    origin: "t".into(),
                    first_line: 1,
                    lines: 1,
                    data: data.into(),
                })))
                .await?;
                self.sent.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        })
    }
}

struct Identity;
impl Operator for Identity {
    fn process_batch(&mut self, batch: Batch, out: &mut Emitter) -> Result<(), OperatorError> {
        out.emit(batch);
        Ok(())
    }
}

fn epoch_of(batch: &Batch) -> u64 {
    let Batch::Raw(r) = batch else { panic!() };
    String::from_utf8_lossy(&r.data)
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[derive(Default)]
struct Seen {
    writes: u64,
    max_in_flight: u64,
    per_epoch: Vec<(Epoch, Vec<u64>)>,
    current: Vec<u64>,
    finished: bool,
}

struct RecordingSink {
    sent: Arc<AtomicU64>,
    seen: Arc<Mutex<Seen>>,
    delay: Duration,
}

impl Sink for RecordingSink {
    fn write(&mut self, batch: &Batch) -> Result<(), OperatorError> {
        std::thread::sleep(self.delay);
        let mut s = self.seen.lock().unwrap();
        s.writes += 1;
        let in_flight = self.sent.load(Ordering::SeqCst).saturating_sub(s.writes);
        s.max_in_flight = s.max_in_flight.max(in_flight);
        s.current.push(epoch_of(batch));
        Ok(())
    }
    fn commit(&mut self, epoch: Epoch) -> Result<(), OperatorError> {
        let mut s = self.seen.lock().unwrap();
        let cur = std::mem::take(&mut s.current);
        s.per_epoch.push((epoch, cur));
        Ok(())
    }
    fn finish(&mut self) -> Result<(), OperatorError> {
        self.seen.lock().unwrap().finished = true;
        Ok(())
    }
}

fn graph(
    source: CountingSource,
    op: impl Fn() -> Box<dyn Operator> + Send + Sync + 'static,
    parallelism: usize,
    sink: RecordingSink,
    mailbox: usize,
) -> PipelineGraph {
    PipelineGraph {
        name: "test".into(),
        nodes: vec![
            NodeSpec {
                name: "src".into(),
                body: NodeBody::Source {
                    source: Box::new(source),
                    trigger: Trigger::AvailableNow,
                    options: Default::default(),
                },
                inputs: vec![],
                mailbox,
            },
            NodeSpec {
                name: "op".into(),
                body: NodeBody::Operator {
                    factory: Box::new(op),
                    parallelism,
                },
                inputs: vec!["src".into()],
                mailbox,
            },
            NodeSpec {
                name: "sink".into(),
                body: NodeBody::Sink(Box::new(sink)),
                inputs: vec!["op".into()],
                mailbox,
            },
        ],
        dead_letters: None,
        metrics: Metrics::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sink_makes_the_source_wait_and_memory_stays_bounded() {
    let sent = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mailbox = 2;
    let g = graph(
        CountingSource {
            epochs: 1,
            per_epoch: 200,
            sent: sent.clone(),
        },
        || Box::new(Identity),
        1,
        RecordingSink {
            sent: sent.clone(),
            seen: seen.clone(),
            delay: Duration::from_millis(1),
        },
        mailbox,
    );
    let metrics = g.metrics.clone();
    let running = RunningPipeline::start(g, Resume::fresh()).unwrap();
    running.wait(|_| {}).await.unwrap();
    let s = seen.lock().unwrap();
    assert_eq!(s.writes, 200);
    assert!(s.finished);
    // In flight at most: two mailboxes, one batch in each actor's hands, one being sent.
    let bound = 2 * mailbox as u64 + 3;
    assert!(
        s.max_in_flight <= bound,
        "{} batches in flight, bound {bound}",
        s.max_in_flight
    );
    assert!(
        metrics.value(names::MAILBOX_FULL_WAITS, "src") > 0,
        "the source never waited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barriers_align_across_parallel_instances() {
    let sent = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let g = graph(
        CountingSource {
            epochs: 20,
            per_epoch: 25,
            sent: sent.clone(),
        },
        || Box::new(Identity),
        3,
        RecordingSink {
            sent,
            seen: seen.clone(),
            delay: Duration::ZERO,
        },
        4,
    );
    let running = RunningPipeline::start(g, Resume::fresh()).unwrap();
    let report = running.wait(|_| {}).await.unwrap();
    let s = seen.lock().unwrap();
    // Every data epoch, then the final no-data epoch of an available-now run.
    assert_eq!(s.per_epoch.len(), 21);
    for (epoch, tags) in &s.per_epoch[..20] {
        assert_eq!(tags.len(), 25, "epoch {epoch}");
        assert!(
            tags.iter().all(|t| t == epoch),
            "epoch {epoch} got {tags:?}"
        );
    }
    assert!(s.per_epoch[20].1.is_empty());
    assert_eq!(report.epochs.len(), 21);
}

/// Passes batches on; the first instance made holds its first batch until the other
/// instances together have passed `wait_for` batches (or gives up after 10 s, which
/// fails the test below: the pipeline would otherwise hang).
struct HoldingFirst {
    first: bool,
    others_passed: Arc<AtomicU64>,
    wait_for: u64,
    held: bool,
}

impl Operator for HoldingFirst {
    fn process_batch(&mut self, batch: Batch, out: &mut Emitter) -> Result<(), OperatorError> {
        if self.first && !self.held {
            self.held = true;
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while self.others_passed.load(Ordering::SeqCst) < self.wait_for {
                if std::time::Instant::now() > deadline {
                    return Err(OperatorError::new(
                        "the other instance never got the batches this one had no room for",
                    ));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        if !self.first {
            self.others_passed.fetch_add(1, Ordering::SeqCst);
        }
        out.emit(batch);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_instance_does_not_hold_back_the_others() {
    // Mailboxes of one batch. The first instance stops at its first batch until the other
    // has passed 20: dealt strictly in turn, the third batch for the first instance would
    // wait for room forever; passed over to the instance with room, all 40 arrive, once.
    let sent = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let made = Arc::new(AtomicU64::new(0));
    let others_passed = Arc::new(AtomicU64::new(0));
    let g = graph(
        CountingSource {
            epochs: 1,
            per_epoch: 40,
            sent: sent.clone(),
        },
        move || {
            Box::new(HoldingFirst {
                first: made.fetch_add(1, Ordering::SeqCst) == 0,
                others_passed: others_passed.clone(),
                wait_for: 20,
                held: false,
            }) as Box<dyn Operator>
        },
        2,
        RecordingSink {
            sent,
            seen: seen.clone(),
            delay: Duration::ZERO,
        },
        1,
    );
    let running = RunningPipeline::start(g, Resume::fresh()).unwrap();
    running.wait(|_| {}).await.unwrap();
    let s = seen.lock().unwrap();
    assert_eq!(s.per_epoch[0].1.len(), 40);
    assert_eq!(s.writes, 40);
}

struct Failing;
impl Operator for Failing {
    fn process_batch(&mut self, _: Batch, _: &mut Emitter) -> Result<(), OperatorError> {
        Err(OperatorError::new("boom"))
    }
}

struct Panicking;
impl Operator for Panicking {
    fn process_batch(&mut self, _: Batch, _: &mut Emitter) -> Result<(), OperatorError> {
        panic!("injected panic")
    }
}

type MakeOperator = fn() -> Box<dyn Operator>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_operator_stops_the_pipeline_with_its_name() {
    let cases: [(MakeOperator, &str); 2] = [
        (|| Box::new(Failing) as Box<dyn Operator>, "boom"),
        (
            || Box::new(Panicking) as Box<dyn Operator>,
            "injected panic",
        ),
    ];
    for (op, want) in cases {
        let sent = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let g = graph(
            CountingSource {
                epochs: 100,
                per_epoch: 100,
                sent: sent.clone(),
            },
            op,
            2,
            RecordingSink {
                sent,
                seen,
                delay: Duration::ZERO,
            },
            2,
        );
        let err = RunningPipeline::start(g, Resume::fresh())
            .unwrap()
            .wait(|_| {})
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("`op`") && err.contains(want), "{err}");
    }
}

#[test]
fn wiring_errors_are_all_reported() {
    let sent = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut g = graph(
        CountingSource {
            epochs: 1,
            per_epoch: 1,
            sent: sent.clone(),
        },
        || Box::new(Identity),
        1,
        RecordingSink {
            sent,
            seen,
            delay: Duration::ZERO,
        },
        1,
    );
    g.nodes[2].inputs = vec!["nope".into()];
    let errors = g.validate().unwrap_err();
    let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert!(text.iter().any(|e| e.contains("`nope`")), "{text:?}");
    assert!(
        text.iter().any(|e| e.contains("`op` feeds into nothing")),
        "{text:?}"
    );
}

/// Parts `Burst` has made so far (a static: operator factories are plain functions).
static BURST_PARTS_MADE: AtomicU64 = AtomicU64::new(0);

/// Swallows its input and, at each barrier, emits 60 one-line parts tagged with the epoch:
/// one from `on_barrier`, the rest from `emit_more`.
struct Burst {
    left: u64,
    epoch: Epoch,
}

impl Burst {
    fn part(&mut self, out: &mut Emitter) {
        let data = format!("{} {}\n", self.epoch, self.left).into_bytes();
        out.emit(Batch::Raw(Arc::new(RawBatch {
            origin: "burst".into(),
            first_line: 1,
            lines: 1,
            data: data.into(),
        })));
        self.left -= 1;
        BURST_PARTS_MADE.fetch_add(1, Ordering::SeqCst);
    }
}

impl Operator for Burst {
    fn process_batch(&mut self, _: Batch, _: &mut Emitter) -> Result<(), OperatorError> {
        Ok(())
    }
    fn on_barrier(&mut self, epoch: Epoch, out: &mut Emitter) -> Result<(), OperatorError> {
        self.epoch = epoch;
        self.left = 60;
        self.part(out);
        Ok(())
    }
    fn emit_more(&mut self, _max_rows: usize, out: &mut Emitter) -> Result<bool, OperatorError> {
        if self.left > 0 {
            self.part(out);
        }
        Ok(self.left > 0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_barrier_output_flows_in_parts_within_its_epoch() {
    let source_sent = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mailbox = 2;
    let g = graph(
        CountingSource {
            epochs: 2,
            per_epoch: 3,
            sent: source_sent,
        },
        || Box::new(Burst { left: 0, epoch: 0 }),
        1,
        RecordingSink {
            // The sink's "in flight" is then parts made and not yet written.
            sent: Arc::new(AtomicU64::new(0)),
            seen: seen.clone(),
            delay: Duration::from_millis(1),
        },
        mailbox,
    );
    let running = RunningPipeline::start(g, Resume::fresh()).unwrap();
    let seen_in_flight = {
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut max = 0;
            loop {
                let (writes, finished) = {
                    let s = seen.lock().unwrap();
                    (s.writes, s.finished)
                };
                let made = BURST_PARTS_MADE.load(Ordering::SeqCst);
                max = max.max(made.saturating_sub(writes));
                if finished {
                    return max;
                }
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        })
    };
    running.wait(|_| {}).await.unwrap();
    {
        let s = seen.lock().unwrap();
        // Two data epochs and the final one, each with all 60 parts, none crossing a barrier.
        assert_eq!(s.per_epoch.len(), 3);
        for (epoch, tags) in &s.per_epoch {
            assert_eq!(tags.len(), 60, "epoch {epoch}");
            assert!(tags.iter().all(|t| t == epoch), "epoch {epoch}: {tags:?}");
        }
    }
    // The operator waited for room: parts ahead of the sink stay within the mailbox.
    let max = seen_in_flight.await.unwrap();
    assert!(
        max <= 2 * mailbox as u64 + 3,
        "{max} parts ahead of the sink"
    );
}
