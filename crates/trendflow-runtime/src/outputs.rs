//! The edges leaving a node: data is dealt round-robin to the instances of each downstream
//! node (and cloned — cheaply, batches are `Arc`s — when several nodes read it), passing over
//! an instance whose mailbox is full to one with room; control signals go to every instance.

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
            let first = edge.next % edge.targets.len();
            edge.next = edge.next.wrapping_add(1);
            send_to_one(
                &edge.targets,
                first,
                StreamMessage::Data(batch.clone()),
                &self.full_waits,
                &edge.queued,
            )
            .await?;
        }
        Ok(())
    }

    pub async fn broadcast(&mut self, msg: StreamMessage) -> Result<(), String> {
        for edge in &self.edges {
            for target in &edge.targets {
                send_to_one(
                    std::slice::from_ref(target),
                    0,
                    msg.clone(),
                    &self.full_waits,
                    &edge.queued,
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// Sends `msg` to one of `targets` (the instances of one node, or the one instance a control
/// signal is for): the first with room in its mailbox, trying them from `first` on; when all
/// are full, the first to make room (backpressure). Waiting on one busy instance while
/// another stood idle with an empty mailbox left a core unused behind a parser that had
/// fallen behind, and at the end of the input one parser worked through its full mailbox
/// alone.
async fn send_to_one(
    targets: &[(ActorRef<StageActor>, usize)],
    first: usize,
    msg: StreamMessage,
    full_waits: &Counter,
    queued: &Gauge,
) -> Result<(), String> {
    let stopped = |e: &dyn std::fmt::Display| format!("downstream stage stopped: {e}");
    // Counted before it is in a mailbox, so the reader never takes off what was not added.
    queued.add(1);
    let mut msg = msg;
    for d in 0..targets.len() {
        let (target, channel) = &targets[(first + d) % targets.len()];
        let env = Envelope {
            channel: *channel,
            msg,
        };
        match target.tell(env).try_send() {
            Ok(()) => return Ok(()),
            Err(SendError::MailboxFull(env)) => msg = env.msg,
            Err(e) => {
                queued.add(-1);
                return Err(stopped(&e));
            }
        }
    }
    full_waits.inc();
    // One send per instance; the first to complete delivers, the others are dropped before
    // completing, which delivers nothing (tokio's bounded send is cancel-safe).
    let mut sends: Vec<_> = targets
        .iter()
        .map(|(target, channel)| {
            let env = Envelope {
                channel: *channel,
                msg: msg.clone(),
            };
            Box::pin(async move { target.tell(env).send().await.map_err(|e| stopped(&e)) })
        })
        .collect();
    let sent = std::future::poll_fn(|cx| {
        for send in sends.iter_mut() {
            if let std::task::Poll::Ready(r) = send.as_mut().poll(cx) {
                return std::task::Poll::Ready(r);
            }
        }
        std::task::Poll::Pending
    })
    .await;
    if sent.is_err() {
        queued.add(-1);
    }
    sent
}
