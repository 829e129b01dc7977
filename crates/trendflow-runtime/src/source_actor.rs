//! The actor that drives a source: one `Tick` per trigger, each reading one epoch and
//! closing it with a barrier.

use std::time::{Duration, Instant};

use kameo::Actor;
use kameo::actor::{ActorRef, WeakActorRef};
use kameo::error::{ActorStopReason, PanicError};
use kameo::message::{Context, Message};
use std::collections::VecDeque;
use std::ops::ControlFlow;
use tokio::sync::mpsc::UnboundedSender;
use trendflow_core::codec::{StateReader, StateWriter};
use trendflow_core::{
    Batch, BatchSender, BoxFuture, DeadLetter, Epoch, EpochPlan, OperatorError, Source,
    StreamMessage,
};

use crate::checkpoint::{Checkpointer, ComponentState, OffsetEntry};
use crate::dead_letters::DeadLetterOut;
use crate::events::RuntimeEvent;
use crate::graph::{SourceOptions, Trigger};
use crate::outputs::Outputs;

pub(crate) struct SourceActor {
    pub name: String,
    pub source: Box<dyn Source>,
    pub trigger: Trigger,
    pub options: SourceOptions,
    /// When the last epoch was closed (for heartbeats while idle).
    pub last_epoch_at: Instant,
    pub outputs: Outputs,
    pub dead: DeadLetterOut,
    pub events: UnboundedSender<RuntimeEvent>,
    pub epoch: Epoch,
    /// The last epoch carried data: the next idle poll still closes a (no-data) epoch so the
    /// watermark it moved can close windows, as Spark's no-data micro-batch does.
    pub had_data: bool,
    pub finished: bool,
    /// Where the offset log is written before each epoch is read.
    pub checkpoints: Checkpointer,
    /// Epochs recorded in the offset log but not committed before a restart: read again,
    /// exactly, before anything new.
    pub replay: VecDeque<(Epoch, OffsetEntry)>,
    /// The epoch of the checkpoint this run resumed from: cleaned up again at start, in case
    /// the previous run stopped between the checkpoint and the clean-up.
    pub resumed_from: Option<Epoch>,
    /// The newest epoch with a checkpoint.
    pub committed: Option<Epoch>,
    /// No epoch is started while this many wait for their checkpoint (see
    /// [`MAX_EPOCHS_IN_FLIGHT`]; `None` in a pipeline without sinks, which commits none).
    pub max_in_flight: Option<u64>,
    /// Waiting so: the next tick comes with the next commit.
    pub waiting_for_commit: bool,
}

/// Epochs a source may have read and not yet seen checkpointed. The mailboxes bound the data in
/// flight, not the epochs: each epoch's snapshots wait in the runner until its checkpoint is
/// written, so when checkpoints are the slower part (Q2 over 1M tweets, 24h/1min windows, 101
/// epochs of 29 MB of new rows each) they piled up to 1.6 GB of RSS. Only the source of a
/// pipeline with one source is held so (see where it is set, in run.rs).
pub(crate) const MAX_EPOCHS_IN_FLIGHT: u64 = 4;

/// The source actor's part of a checkpoint: its own flag, then the source's state.
pub(crate) fn encode_source_state(had_data: bool, state: &[u8]) -> Vec<u8> {
    let mut w = StateWriter::new();
    w.bool(had_data).bytes(state);
    w.finish()
}

pub(crate) fn decode_source_state(state: &[u8]) -> Result<(bool, &[u8]), String> {
    let mut r = StateReader::new(state);
    let had_data = r.bool().map_err(|e| e.to_string())?;
    let inner = r.bytes().map_err(|e| e.to_string())?;
    r.end().map_err(|e| e.to_string())?;
    Ok((had_data, inner))
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

    fn event_time_frontier(
        &mut self,
        frontier: trendflow_core::EventTime,
    ) -> BoxFuture<'_, Result<(), OperatorError>> {
        Box::pin(async move {
            self.outputs
                .broadcast(StreamMessage::Frontier(frontier))
                .await
                .map_err(OperatorError)
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
                epoch: None,
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

    /// What the current epoch reads: a recorded entry when replaying, else a fresh plan,
    /// recorded in the offset log before anything is read. `None`: no epoch now.
    async fn next_entry(&mut self) -> Result<(Option<OffsetEntry>, bool), String> {
        if let Some((e, entry)) = self.replay.pop_front() {
            if e != self.epoch {
                tracing::warn!(
                    source = self.name,
                    expected = self.epoch,
                    found = e,
                    "offset log skips epochs; replaying from the one found"
                );
                self.epoch = e;
            }
            tracing::info!(
                source = self.name,
                epoch = e,
                "replaying an epoch recorded before the restart"
            );
            return Ok((Some(entry), true));
        }
        let plan = self
            .source
            .plan_epoch(self.epoch)
            .await
            .map_err(|e| e.to_string())?;
        let heartbeat_due = self
            .options
            .heartbeat
            .is_some_and(|h| self.last_epoch_at.elapsed() >= h);
        let (entry, more) = match plan {
            EpochPlan::Input(input) => (Some(OffsetEntry::Input(input)), true),
            // After a data epoch, one epoch without data lets the watermark it moved close
            // windows (Spark's no-data micro-batch).
            EpochPlan::Idle => (
                (self.had_data || heartbeat_due).then_some(OffsetEntry::NoData),
                true,
            ),
            EpochPlan::Exhausted if self.options.final_watermark => (Some(OffsetEntry::End), false),
            EpochPlan::Exhausted => (self.had_data.then_some(OffsetEntry::NoData), false),
        };
        if let Some(entry) = &entry
            && let Err(error) = self
                .checkpoints
                .write_offsets(&self.name, self.epoch, entry)
                .await
        {
            let _ = self.events.send(RuntimeEvent::CheckpointFailed {
                error: error.clone(),
            });
            return Err(error);
        }
        Ok((entry, more))
    }

    /// Runs one trigger; returns whether the stream goes on.
    async fn run_epoch(&mut self) -> Result<bool, String> {
        let started = Instant::now();
        let (entry, more) = self.next_entry().await?;
        let plan_ms = started.elapsed().as_secs_f64() * 1000.0;
        let Some(entry) = entry else {
            self.had_data = false;
            return Ok(more);
        };
        let mut sender = Sender {
            outputs: &mut self.outputs,
            dead: &mut self.dead,
            records: 0,
            bytes: 0,
        };
        if let OffsetEntry::Input(input) = &entry {
            self.source
                .read_epoch(self.epoch, input, &mut sender)
                .await
                .map_err(|e| e.to_string())?;
        }
        let (records, bytes) = (sender.records, sender.bytes);
        let _ = self.events.send(RuntimeEvent::EpochRead {
            source: self.name.clone(),
            epoch: self.epoch,
            records,
            bytes,
            plan_ms,
            read_ms: started.elapsed().as_secs_f64() * 1000.0,
            offset: self.source.describe_offset(),
        });
        self.had_data = matches!(entry, OffsetEntry::Input(_));
        if entry == OffsetEntry::End {
            // The input is complete: event time may run to its end.
            self.outputs
                .broadcast(StreamMessage::Watermark(trendflow_core::EventTime::MAX))
                .await?;
        }
        let state = self.source.snapshot().map_err(|e| e.to_string())?;
        let segments = self.source.snapshot_segments().map_err(|e| e.to_string())?;
        let (names, new_segments) = crate::checkpoint::log::split_segments(segments)?;
        let _ = self.events.send(RuntimeEvent::Snapshot {
            epoch: self.epoch,
            state: ComponentState {
                name: self.name.clone(),
                instance: 0,
                instances: 1,
                signature: self.signature(),
                state: encode_source_state(self.had_data, &state),
                segments: names,
            },
            new_segments,
        });
        self.close_epoch().await?;
        self.last_epoch_at = Instant::now();
        Ok(more)
    }

    pub(crate) fn signature(&self) -> String {
        self.source
            .state_signature()
            .unwrap_or_else(|| "source".into())
    }
}

impl Actor for SourceActor {
    type Args = Self;
    type Error = kameo::error::Infallible;

    async fn on_start(mut args: Self, actor_ref: ActorRef<Self>) -> Result<Self, Self::Error> {
        if let Some(e) = args.resumed_from
            && let Err(err) = args.source.on_commit(e).await
        {
            tracing::warn!(source = args.name, error = %err, "clean-up of the resumed epoch failed");
        }
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
            epoch: None,
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
        let next_to_commit = self.committed.map_or(0, |c| c + 1);
        if self
            .max_in_flight
            .is_some_and(|max| self.epoch.saturating_sub(next_to_commit) >= max)
        {
            self.waiting_for_commit = true;
            return;
        }
        let started = Instant::now();
        match self.run_epoch().await {
            Err(e) => {
                let _ = self.events.send(RuntimeEvent::Failed {
                    component: self.name.clone(),
                    error: e,
                    epoch: None,
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

    async fn handle(&mut self, msg: Committed, ctx: &mut Context<Self, ()>) {
        self.committed = self.committed.max(Some(msg.0));
        if std::mem::take(&mut self.waiting_for_commit) {
            let _ = ctx.actor_ref().tell(Tick).try_send();
        }
        if let Err(e) = self.source.on_commit(msg.0).await {
            let _ = self.events.send(RuntimeEvent::Failed {
                component: self.name.clone(),
                error: e.to_string(),
                epoch: None,
            });
        }
    }
}
