//! The actor that runs one operator or sink instance: aligns barriers across its inputs,
//! takes the minimum of their watermarks, and passes control signals on after its own hook.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::time::Instant;

use kameo::Actor;
use kameo::actor::{ActorRef, WeakActorRef};
use kameo::error::{ActorStopReason, PanicError};
use kameo::message::{Context, Message};
use tokio::sync::mpsc::UnboundedSender;
use trendflow_core::metrics::{Counter, Gauge};
use trendflow_core::{Batch, Emitter, Epoch, EventTime, Operator, Sink, StreamMessage};

use crate::dead_letters::DeadLetterOut;
use crate::events::RuntimeEvent;
use crate::outputs::Outputs;

/// A message on one input channel of a stage.
pub(crate) struct Envelope {
    pub channel: usize,
    pub msg: StreamMessage,
}

pub(crate) enum Body {
    Operator(Box<dyn Operator>),
    Sink(Box<dyn Sink>),
}

pub(crate) struct StageMetrics {
    pub records_in: Counter,
    pub batches_in: Counter,
    pub busy_nanos: Counter,
    /// Messages in this node's mailboxes (senders add, readers take off).
    pub queued: Gauge,
}

pub(crate) struct StageActor {
    pub name: String,
    pub body: Body,
    pub outputs: Outputs,
    pub dead: DeadLetterOut,
    pub events: UnboundedSender<RuntimeEvent>,
    pub metrics: StageMetrics,
    /// Per input channel: a barrier arrived and we wait for the others.
    pub blocked: Vec<bool>,
    pub ended: Vec<bool>,
    pub watermarks: Vec<Option<EventTime>>,
    /// The last frontier from each input (partitioned sources only).
    pub frontiers: Vec<Option<EventTime>>,
    pub last_watermark: Option<EventTime>,
    pub buffered: VecDeque<Envelope>,
    pub pending_barrier: Option<Epoch>,
    pub failed: bool,
    /// Which parallel instance this is, of how many.
    pub instance: u32,
    pub instances: u32,
    /// `Some` for a stateful body: its state is sent for the checkpoint at every barrier.
    pub signature: Option<String>,
    /// The epoch whose data is arriving now.
    pub epoch: Epoch,
    /// An epoch that failed again and again: its records are processed one at a time and
    /// those that fail are set aside, so the rest goes on.
    pub isolate: Option<Epoch>,
}

impl StageActor {
    pub fn new(
        name: String,
        body: Body,
        outputs: Outputs,
        dead: DeadLetterOut,
        events: UnboundedSender<RuntimeEvent>,
        metrics: StageMetrics,
        channels: usize,
    ) -> Self {
        let signature = match &body {
            Body::Operator(op) => op.state_signature(),
            Body::Sink(s) => s.state_signature(),
        };
        StageActor {
            name,
            body,
            outputs,
            dead,
            events,
            metrics,
            blocked: vec![false; channels],
            ended: vec![false; channels],
            watermarks: vec![None; channels],
            frontiers: vec![None; channels],
            last_watermark: None,
            buffered: VecDeque::new(),
            pending_barrier: None,
            failed: false,
            instance: 0,
            instances: 1,
            signature,
            epoch: 0,
            isolate: None,
        }
    }

    fn fail(&mut self, error: String) {
        self.failed = true;
        let _ = self.events.send(RuntimeEvent::Failed {
            component: self.name.clone(),
            error,
            epoch: Some(self.epoch),
        });
    }

    /// Sends what the operator emitted: batches, then dead letters, then its watermark.
    async fn flush(&mut self, out: Emitter) -> Result<(), String> {
        self.flush_epoch(out, None).await
    }

    /// Sends what the operator emitted; `epoch` tags the watermark of a barrier.
    async fn flush_epoch(&mut self, out: Emitter, epoch: Option<Epoch>) -> Result<(), String> {
        for b in out.batches {
            self.outputs.send_data(b).await?;
        }
        self.dead.send(out.dead_letters).await;
        if let Some(w) = out.watermark {
            let _ = self.events.send(RuntimeEvent::Watermark {
                component: self.name.clone(),
                watermark: w,
                epoch,
            });
            self.outputs.broadcast(StreamMessage::Watermark(w)).await?;
        }
        if let Some(f) = out.frontier {
            self.outputs.broadcast(StreamMessage::Frontier(f)).await?;
        }
        Ok(())
    }

    fn timed<T>(&mut self, f: impl FnOnce(&mut Body) -> T) -> T {
        let start = Instant::now();
        let r = f(&mut self.body);
        self.metrics
            .busy_nanos
            .add(start.elapsed().as_nanos() as u64);
        r
    }

    async fn on_data(&mut self, batch: Batch) -> Result<(), String> {
        self.metrics.records_in.add(batch.len() as u64);
        self.metrics.batches_in.inc();
        if self.isolate == Some(self.epoch) {
            return self.on_data_isolated(batch).await;
        }
        if matches!(self.body, Body::Sink(_)) {
            // What a sink receives is what it writes.
            self.outputs.tap.offer(&batch);
        }
        let mut out = Emitter::new();
        self.timed(|body| match body {
            Body::Operator(op) => op.process_batch(batch, &mut out),
            Body::Sink(s) => s.write(&batch),
        })
        .map_err(|e| e.to_string())?;
        self.flush(out).await
    }

    /// Processes a batch record by record, setting aside each record the body fails or
    /// panics on, with its position and the error.
    async fn on_data_isolated(&mut self, batch: Batch) -> Result<(), String> {
        let mut out = Emitter::new();
        for (one, origin, line) in batch.split_records() {
            let body = &mut self.body;
            let mut part = Emitter::new();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match body {
                Body::Operator(op) => op.process_batch(one.clone(), &mut part),
                Body::Sink(s) => s.write(&one),
            }));
            let error = match result {
                Ok(Ok(())) => {
                    out.batches.extend(part.batches);
                    out.dead_letters.extend(part.dead_letters);
                    if let Some(w) = part.watermark {
                        out.watermark(w);
                    }
                    continue;
                }
                Ok(Err(e)) => e.to_string(),
                Err(panic) => panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .map_or_else(|| "panicked".to_string(), |m| format!("panicked: {m}")),
            };
            tracing::warn!(component = self.name, origin = %origin, line, error, "record isolated after repeated failures");
            out.dead_letter(trendflow_core::DeadLetter {
                component: self.name.as_str().into(),
                origin,
                line,
                reason: trendflow_core::Reason::OperatorFailed,
                detail: format!(
                    "`{}` failed on this record in every retry of epoch {}: {error}",
                    self.name, self.epoch
                ),
                excerpt: one.excerpt(),
            });
        }
        self.flush(out).await
    }

    async fn on_watermark(&mut self, channel: usize, t: EventTime) -> Result<(), String> {
        self.watermarks[channel] = Some(self.watermarks[channel].map_or(t, |w| w.max(t)));
        let live: Vec<Option<EventTime>> = (0..self.watermarks.len())
            .filter(|&c| !self.ended[c])
            .map(|c| self.watermarks[c])
            .collect();
        let Some(min) = live
            .iter()
            .copied()
            .collect::<Option<Vec<_>>>()
            .and_then(|v| v.into_iter().min())
        else {
            return Ok(());
        };
        if self.last_watermark.is_some_and(|w| w >= min) {
            return Ok(());
        }
        self.last_watermark = Some(min);
        let mut out = Emitter::new();
        match &mut self.body {
            Body::Operator(op) => op.on_watermark(min, &mut out).map_err(|e| e.to_string())?,
            Body::Sink(s) => s.on_watermark(min),
        }
        self.flush(out).await
    }

    /// A partitioned source's frontier on one input: the operator gets the minimum over the
    /// inputs that carry one (inputs from unpartitioned sources never constrain it).
    async fn on_frontier(&mut self, channel: usize, t: EventTime) -> Result<(), String> {
        self.frontiers[channel] = Some(t);
        let Some(min) = self.frontiers.iter().flatten().copied().min() else {
            return Ok(());
        };
        let mut out = Emitter::new();
        if let Body::Operator(op) = &mut self.body {
            op.on_frontier(min, &mut out).map_err(|e| e.to_string())?;
        }
        self.flush(out).await
    }

    /// Sends what `on_barrier` emitted, then asks the operator for the rest of its output
    /// part by part ([`Operator::emit_more`]), sending each before the next is made: a send
    /// waits while the next mailbox is full, so a huge epoch flows through in bounded pieces.
    /// Dead letters and the watermark stay in `out`, to follow the data.
    async fn send_rest_of_output(&mut self, out: &mut Emitter) -> Result<(), String> {
        for b in std::mem::take(&mut out.batches) {
            self.outputs.send_data(b).await?;
        }
        if !matches!(self.body, Body::Operator(_)) {
            return Ok(());
        }
        loop {
            let mut part = Emitter::new();
            let more = self
                .timed(|body| match body {
                    Body::Operator(op) => {
                        op.emit_more(trendflow_core::operator::OUTPUT_PART_ROWS, &mut part)
                    }
                    Body::Sink(_) => Ok(false),
                })
                .map_err(|e| e.to_string())?;
            for b in part.batches {
                self.outputs.send_data(b).await?;
            }
            out.dead_letters.append(&mut part.dead_letters);
            if let Some(w) = part.watermark {
                out.watermark(w);
            }
            if !more {
                return Ok(());
            }
        }
    }

    /// Completes a barrier once every live channel delivered it.
    async fn try_complete_barrier(&mut self) -> Result<bool, String> {
        let Some(epoch) = self.pending_barrier else {
            return Ok(false);
        };
        if !(0..self.blocked.len()).all(|c| self.blocked[c] || self.ended[c]) {
            return Ok(false);
        }
        self.pending_barrier = None;
        self.blocked.iter_mut().for_each(|b| *b = false);
        let mut out = Emitter::new();
        let res = self.timed(|body| match body {
            Body::Operator(op) => op.on_barrier(epoch, &mut out),
            Body::Sink(s) => s.commit(epoch),
        });
        res.map_err(|e| e.to_string())?;
        self.send_rest_of_output(&mut out).await?;
        self.flush_epoch(out, Some(epoch)).await?;
        self.epoch = epoch + 1;
        if let Some(signature) = &self.signature {
            let (state, segments) = match &mut self.body {
                Body::Operator(op) => (op.snapshot(), op.snapshot_segments()),
                Body::Sink(s) => (s.snapshot(), s.snapshot_segments()),
            };
            let state = state.map_err(|e| format!("snapshot: {e}"))?;
            let segments = segments.map_err(|e| format!("snapshot: {e}"))?;
            let (names, new_segments) = crate::checkpoint::log::split_segments(segments)?;
            let _ = self.events.send(RuntimeEvent::Snapshot {
                epoch,
                state: crate::checkpoint::ComponentState {
                    name: self.name.clone(),
                    instance: self.instance,
                    instances: self.instances,
                    signature: signature.clone(),
                    state,
                    segments: names,
                },
                new_segments,
            });
        }
        match self.body {
            Body::Operator(_) => {
                self.outputs
                    .broadcast(StreamMessage::Barrier(epoch))
                    .await?
            }
            Body::Sink(_) => {
                let _ = self.events.send(RuntimeEvent::SinkCommitted {
                    sink: self.name.clone(),
                    epoch,
                });
            }
        }
        Ok(true)
    }

    /// Handles one message; returns true when an alignment completed (buffered input may
    /// now proceed) and whether the stream ended.
    async fn dispatch(&mut self, env: Envelope) -> Result<(bool, bool), String> {
        match env.msg {
            StreamMessage::Data(b) => self.on_data(b).await.map(|_| (false, false)),
            StreamMessage::Watermark(t) => self
                .on_watermark(env.channel, t)
                .await
                .map(|_| (false, false)),
            StreamMessage::Frontier(t) => self
                .on_frontier(env.channel, t)
                .await
                .map(|_| (false, false)),
            StreamMessage::Barrier(e) => {
                self.blocked[env.channel] = true;
                self.pending_barrier = Some(e);
                Ok((self.try_complete_barrier().await?, false))
            }
            StreamMessage::EndOfStream => {
                self.ended[env.channel] = true;
                self.blocked[env.channel] = false;
                let aligned = self.try_complete_barrier().await?;
                if self.ended.iter().all(|e| *e) {
                    let mut out = Emitter::new();
                    match &mut self.body {
                        Body::Operator(op) => op.on_end(&mut out).map_err(|e| e.to_string())?,
                        Body::Sink(s) => s.finish().map_err(|e| e.to_string())?,
                    }
                    self.flush(out).await?;
                    match self.body {
                        Body::Operator(_) => {
                            self.outputs.broadcast(StreamMessage::EndOfStream).await?
                        }
                        Body::Sink(_) => {
                            let _ = self.events.send(RuntimeEvent::SinkFinished {
                                sink: self.name.clone(),
                            });
                        }
                    }
                    return Ok((aligned, true));
                }
                Ok((aligned, false))
            }
        }
    }
}

impl Actor for StageActor {
    type Args = Self;
    type Error = kameo::error::Infallible;

    async fn on_start(args: Self, _: ActorRef<Self>) -> Result<Self, Self::Error> {
        Ok(args)
    }

    async fn on_panic(
        &mut self,
        _: WeakActorRef<Self>,
        err: PanicError,
    ) -> Result<ControlFlow<ActorStopReason>, Self::Error> {
        self.fail(crate::events::panic_message(&err));
        Ok(ControlFlow::Break(ActorStopReason::Panicked(err)))
    }
}

impl Message<Envelope> for StageActor {
    type Reply = ();

    async fn handle(&mut self, env: Envelope, ctx: &mut Context<Self, ()>) {
        self.metrics.queued.add(-1);
        if self.failed {
            return;
        }
        let mut queue = VecDeque::from([env]);
        while let Some(env) = queue.pop_front() {
            if self.blocked[env.channel] {
                // Input of the next epoch from a channel already past the barrier.
                self.buffered.push_back(env);
                continue;
            }
            match self.dispatch(env).await {
                Err(e) => {
                    self.fail(e);
                    ctx.stop();
                    return;
                }
                Ok((_, true)) => {
                    ctx.stop();
                    return;
                }
                Ok((true, false)) => {
                    let mut resumed: VecDeque<Envelope> = std::mem::take(&mut self.buffered);
                    resumed.extend(queue.drain(..));
                    queue = resumed;
                }
                Ok((false, false)) => {}
            }
        }
    }
}
