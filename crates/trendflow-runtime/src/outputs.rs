//! The edges leaving a node: data is dealt round-robin to the instances of each downstream
//! node (and cloned — cheaply, batches are `Arc`s — when several nodes read it); control
//! signals go to every instance.

use std::sync::Arc;

use kameo::actor::ActorRef;
use kameo::error::SendError;
use trendflow_core::metrics::{Counter, Gauge};
use trendflow_core::tap::TapPoint;
use trendflow_core::{Batch, StreamMessage};

use crate::stage_actor::{Envelope, StageActor};

pub(crate) struct Edge {
    /// Each downstream instance, with the channel number this sender has there.
    pub targets: Vec<(ActorRef<StageActor>, usize)>,
    pub next: usize,
    /// Messages waiting in the downstream node's mailboxes (it takes them off as it reads).
    pub queued: Gauge,
}

pub(crate) struct Outputs {
    pub edges: Vec<Edge>,
    /// Times a send found the mailbox full and had to wait.
    pub full_waits: Counter,
    pub records_out: Counter,
    /// Samples what leaves, while `trendflow tap` listens.
    pub tap: Arc<TapPoint>,
}

impl Outputs {
    pub async fn send_data(&mut self, batch: Batch) -> Result<(), String> {
        self.records_out.add(batch.len() as u64);
        self.tap.offer(&batch);
        let n = self.edges.len();
        for i in 0..n {
            let edge = &mut self.edges[i];
            let k = edge.next % edge.targets.len();
            edge.next = edge.next.wrapping_add(1);
            let (target, channel) = &edge.targets[k];
            let env = Envelope {
                channel: *channel,
                msg: StreamMessage::Data(batch.clone()),
            };
            send(target, env, &self.full_waits, &edge.queued).await?;
        }
        Ok(())
    }

    pub async fn broadcast(&mut self, msg: StreamMessage) -> Result<(), String> {
        for edge in &self.edges {
            for (target, channel) in &edge.targets {
                send(
                    target,
                    Envelope {
                        channel: *channel,
                        msg: msg.clone(),
                    },
                    &self.full_waits,
                    &edge.queued,
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// Sends, waiting for room when the mailbox is full (backpressure).
async fn send(
    target: &ActorRef<StageActor>,
    env: Envelope,
    full_waits: &Counter,
    queued: &Gauge,
) -> Result<(), String> {
    // Counted before it is in the mailbox, so the reader never takes off what was not added.
    queued.add(1);
    let sent = match target.tell(env).try_send() {
        Ok(()) => Ok(()),
        Err(SendError::MailboxFull(env)) => {
            full_waits.inc();
            target
                .tell(env)
                .send()
                .await
                .map_err(|e| format!("downstream stage stopped: {e}"))
        }
        Err(e) => Err(format!("downstream stage stopped: {e}")),
    };
    if sent.is_err() {
        queued.add(-1);
    }
    sent
}
