//! The dead-letter actor: every component's unusable records, counted by reason and written
//! by one writer.

use kameo::Actor;
use kameo::actor::ActorRef;
use kameo::message::{Context, Message};
use rustc_hash::FxHashMap;
use trendflow_core::metrics::{Counter, Metrics, names};
use trendflow_core::{DeadLetter, DeadLetterSink, Reason};

pub(crate) struct DeadLetterActor {
    pub sink: Box<dyn DeadLetterSink>,
    pub error: Option<String>,
}

impl Actor for DeadLetterActor {
    type Args = Self;
    type Error = kameo::error::Infallible;
    async fn on_start(args: Self, _: ActorRef<Self>) -> Result<Self, Self::Error> {
        Ok(args)
    }
}

pub(crate) struct Letters(pub Vec<DeadLetter>);
pub(crate) struct Flush;

impl Message<Letters> for DeadLetterActor {
    type Reply = ();
    async fn handle(&mut self, msg: Letters, _: &mut Context<Self, ()>) {
        if let Err(e) = self.sink.write(&msg.0) {
            self.error.get_or_insert(e.to_string());
        }
    }
}

impl Message<Flush> for DeadLetterActor {
    type Reply = Result<(), String>;
    async fn handle(&mut self, _: Flush, _: &mut Context<Self, Self::Reply>) -> Self::Reply {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.sink.flush().map_err(|e| e.to_string())
    }
}

/// A component's handle on the dead-letter output: counts by reason, forwards real failures.
pub(crate) struct DeadLetterOut {
    component: String,
    metrics: Metrics,
    counters: FxHashMap<Reason, Counter>,
    writer: Option<ActorRef<DeadLetterActor>>,
}

impl DeadLetterOut {
    pub fn new(
        component: &str,
        metrics: &Metrics,
        writer: Option<ActorRef<DeadLetterActor>>,
    ) -> Self {
        DeadLetterOut {
            component: component.to_string(),
            metrics: metrics.clone(),
            counters: FxHashMap::default(),
            writer,
        }
    }

    pub async fn send(&mut self, letters: Vec<DeadLetter>) {
        if letters.is_empty() {
            return;
        }
        let mut to_write = Vec::new();
        for d in letters {
            let counter = self.counters.entry(d.reason).or_insert_with(|| {
                self.metrics.counter_labeled(
                    names::DEAD_LETTERS,
                    &self.component,
                    Some(("reason", d.reason.as_str().to_string())),
                )
            });
            counter.inc();
            if !d.reason.is_routine() {
                to_write.push(d);
            }
        }
        if let (Some(w), false) = (&self.writer, to_write.is_empty()) {
            // If the writer is gone the letters are still counted; the run reports the failure.
            let _ = w.tell(Letters(to_write)).send().await;
        }
    }
}
