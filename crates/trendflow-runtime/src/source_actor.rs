//! The actor that drives a source: one `Tick` per trigger, each reading one epoch and
//! closing it with a barrier.

use std::time::{Duration, Instant};

use kameo::Actor;
use kameo::actor::{ActorRef, WeakActorRef};
use kameo::error::{ActorStopReason, PanicError};
use kameo::message::{Context, Message};
use std::ops::ControlFlow;
use tokio::sync::mpsc::UnboundedSender;
use trendflow_core::{
    Batch, BatchSender, BoxFuture, DeadLetter, Epoch, OperatorError, PollOutcome, Source,
    StreamMessage,
};

use crate::dead_letters::DeadLetterOut;
use crate::events::RuntimeEvent;
use crate::graph::Trigger;
use crate::outputs::Outputs;

pub(crate) struct SourceActor {
    pub name: String,
    pub source: Box<dyn Source>,
    pub trigger: Trigger,
    pub outputs: Outputs,
    pub dead: DeadLetterOut,
    pub events: UnboundedSender<RuntimeEvent>,
    pub epoch: Epoch,
    /// The last epoch carried data: the next idle poll still closes a (no-data) epoch so the
    /// watermark it moved can close windows, as Spark's no-data micro-batch does.
    pub had_data: bool,
    pub finished: bool,
}

pub(crate) struct Tick;
pub(crate) struct Stop;
pub(crate) struct Committed(pub Epoch);

struct Sender<'a> {
    outputs: &'a mut Outputs,
    dead: &'a mut DeadLetterOut,
    records: u64,
    bytes: u64,
}

impl BatchSender for Sender<'_> {
    fn send(&mut self, batch: Batch) -> BoxFuture<'_, Result<(), OperatorError>> {
        self.records += batch.len() as u64;
        self.bytes += batch.payload_bytes() as u64;
        Box::pin(async move { self.outputs.send_data(batch).await.map_err(OperatorError) })
    }

    fn dead_letter(&mut self, letter: DeadLetter) -> BoxFuture<'_, Result<(), OperatorError>> {
        Box::pin(async move {
            self.dead.send(vec![letter]).await;
            Ok(())
        })
    }
}

impl SourceActor {
    async fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        if let Err(e) = self.outputs.broadcast(StreamMessage::EndOfStream).await {
            let _ = self.events.send(RuntimeEvent::Failed {
                component: self.name.clone(),
                error: e,
            });
        }
        let _ = self.events.send(RuntimeEvent::SourceFinished {
            source: self.name.clone(),
        });
    }

    async fn close_epoch(&mut self) -> Result<(), String> {
        self.outputs
            .broadcast(StreamMessage::Barrier(self.epoch))
            .await?;
        self.epoch += 1;
        Ok(())
    }

    /// Runs one trigger; returns whether the stream goes on.
    async fn run_epoch(&mut self) -> Result<bool, String> {
        let started = Instant::now();
        let mut sender = Sender {
            outputs: &mut self.outputs,
            dead: &mut self.dead,
            records: 0,
            bytes: 0,
        };
        let outcome = self
            .source
            .poll_epoch(self.epoch, &mut sender)
            .await
            .map_err(|e| e.to_string())?;
        let (records, bytes) = (sender.records, sender.bytes);
        let read_ms = started.elapsed().as_secs_f64() * 1000.0;
        let report = |s: &Self| {
            let _ = s.events.send(RuntimeEvent::EpochRead {
                source: s.name.clone(),
                epoch: s.epoch,
                records,
                bytes,
                read_ms,
                offset: s.source.describe_offset(),
            });
        };
        match outcome {
            PollOutcome::Data => {
                report(self);
                self.close_epoch().await?;
                self.had_data = true;
                Ok(true)
            }
            PollOutcome::Idle => {
                if self.had_data {
                    report(self);
                    self.close_epoch().await?;
                }
                self.had_data = false;
                Ok(true)
            }
            PollOutcome::Exhausted => {
                if self.had_data {
                    report(self);
                    self.close_epoch().await?;
                }
                self.had_data = false;
                Ok(false)
            }
        }
    }
}

impl Actor for SourceActor {
    type Args = Self;
    type Error = kameo::error::Infallible;

    async fn on_start(args: Self, actor_ref: ActorRef<Self>) -> Result<Self, Self::Error> {
        let _ = actor_ref.tell(Tick).try_send();
        Ok(args)
    }

    async fn on_panic(
        &mut self,
        _: WeakActorRef<Self>,
        err: PanicError,
    ) -> Result<ControlFlow<ActorStopReason>, Self::Error> {
        let _ = self.events.send(RuntimeEvent::Failed {
            component: self.name.clone(),
            error: crate::events::panic_message(&err),
        });
        Ok(ControlFlow::Break(ActorStopReason::Panicked(err)))
    }
}

impl Message<Tick> for SourceActor {
    type Reply = ();

    async fn handle(&mut self, _: Tick, ctx: &mut Context<Self, ()>) {
        if self.finished {
            return;
        }
        let started = Instant::now();
        match self.run_epoch().await {
            Err(e) => {
                let _ = self.events.send(RuntimeEvent::Failed {
                    component: self.name.clone(),
                    error: e,
                });
                self.finished = true;
                ctx.stop();
            }
            Ok(false) => {
                self.finish().await;
                ctx.stop();
            }
            Ok(true) => {
                let me = ctx.actor_ref().clone();
                match self.trigger {
                    Trigger::AvailableNow => {
                        let _ = me.tell(Tick).try_send();
                    }
                    Trigger::ProcessingTime(interval) => {
                        let wait = interval.saturating_sub(started.elapsed());
                        if wait.is_zero() {
                            let _ = me.tell(Tick).try_send();
                        } else {
                            // The timer task runs on its own; its handle is not needed.
                            drop(me.tell(Tick).send_after(wait.max(Duration::from_millis(1))));
                        }
                    }
                }
            }
        }
    }
}

impl Message<Stop> for SourceActor {
    type Reply = ();

    async fn handle(&mut self, _: Stop, ctx: &mut Context<Self, ()>) {
        // Between two ticks: the epoch in progress, if any, was finished.
        self.finish().await;
        ctx.stop();
    }
}

impl Message<Committed> for SourceActor {
    type Reply = ();

    async fn handle(&mut self, msg: Committed, _: &mut Context<Self, ()>) {
        if let Err(e) = self.source.on_commit(msg.0).await {
            let _ = self.events.send(RuntimeEvent::Failed {
                component: self.name.clone(),
                error: e.to_string(),
            });
        }
    }
}
