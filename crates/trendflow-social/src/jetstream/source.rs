//! The Jetstream source: epochs of events from the background connection, de-duplicated,
//! recorded in the offset log, and the cursor and recent identities checkpointed.

use std::sync::Arc;

use trendflow_core::codec::{StateReader, StateWriter};
use trendflow_core::metrics::{Counter, Metrics, names};
use trendflow_core::{BatchSender, BoxFuture, Epoch, EpochPlan, OperatorError, Source};

use super::client::{self, ConnectionCounters, ReceivedEvent, Subscription};
use super::dedup::RecentEvents;
use super::event::read_head;
use super::options::JetstreamOptions;
use crate::epoch_input::{EpochInput, push_as_line};
use crate::inbox::Inbox;
use crate::net::Endpoint;

const STATE_VERSION: u64 = 1;

/// Bluesky events from a Jetstream server, each epoch's events recorded in the offset log so
/// that a replay after a crash reads the same ones, and every event passed on once across
/// reconnects and restarts (see `docs/bluesky-jetstream.md`).
pub struct JetstreamSource {
    options: JetstreamOptions,
    endpoint: Endpoint,
    origin: Arc<str>,
    inbox: Arc<Inbox<ReceivedEvent>>,
    connection: Option<tokio::task::JoinHandle<()>>,
    connection_counters: ConnectionCounters,
    /// The latest `time_us` among the events passed on: where the source resumes, less
    /// `rewind`, after a restart.
    cursor: Option<i64>,
    /// Events passed on at or after `cursor - rewind`: what a resumed connection can send
    /// again.
    recent: RecentEvents,
    /// Events passed on so far: the line numbers of the next epoch start after it.
    events: u64,
    /// The epoch `plan_epoch` chose in this run and `read_epoch` has not read yet: its events
    /// are already in `recent`. Any other epoch read is a replay from the offset log.
    planned: Option<Epoch>,
    duplicates: Counter,
}

impl JetstreamSource {
    /// A source with these options; `component` and `metrics` name and hold its counters.
    /// Nothing connects before the first epoch is planned (after a restore, so that the
    /// connection resumes from the checkpoint).
    pub fn new(
        options: JetstreamOptions,
        component: &str,
        metrics: &Metrics,
    ) -> Result<Self, OperatorError> {
        options.validate().map_err(OperatorError::new)?;
        let endpoint = Endpoint::parse(&options.url).map_err(OperatorError::new)?;
        let inbox = Arc::new(Inbox::new((2 * options.max_events_per_trigger).max(1024)));
        Ok(JetstreamSource {
            origin: Arc::from(format!("jetstream:{}", endpoint.authority())),
            endpoint,
            inbox,
            connection: None,
            connection_counters: ConnectionCounters {
                events: metrics.counter(names::RECORDS_IN, component),
                bytes: metrics.counter(names::BYTES_IN, component),
                undecodable: metrics.counter_labeled(
                    names::RECORDS_FILTERED,
                    component,
                    Some(("reason", "undecodable".into())),
                ),
            },
            cursor: None,
            recent: RecentEvents::default(),
            events: 0,
            planned: None,
            duplicates: metrics.counter_labeled(
                names::RECORDS_FILTERED,
                component,
                Some(("reason", "duplicate".into())),
            ),
            options,
        })
    }

    /// The latest `time_us` passed on (Jetstream's cursor, in microseconds since 1970).
    pub fn cursor(&self) -> Option<i64> {
        self.cursor
    }

    fn connect(&mut self) {
        if self.connection.is_some() {
            return;
        }
        let subscription = Subscription {
            endpoint: self.endpoint.clone(),
            wanted_collections: self.options.wanted_collections.clone(),
            wanted_dids: self.options.wanted_dids.clone(),
            compress: self.options.compress,
            rewind: self.options.rewind,
            reconnect_min: self.options.reconnect_min,
            reconnect_max: self.options.reconnect_max,
            idle_timeout: self.options.idle_timeout,
        };
        self.connection = Some(client::spawn(
            subscription,
            self.cursor,
            self.inbox.clone(),
            self.connection_counters.clone(),
        ));
    }

    fn rewind_us(&self) -> i64 {
        i64::try_from(self.options.rewind.as_micros()).unwrap_or(i64::MAX)
    }

    /// Remembers an event passed on (now, or in an epoch replayed from the offset log);
    /// `false` when it was passed on already.
    fn remember(&mut self, identity: Option<&str>, time_us: Option<i64>) -> bool {
        if let Some(t) = time_us {
            self.cursor = Some(self.cursor.map_or(t, |c| c.max(t)));
        }
        match identity {
            // An event without a time is placed at the cursor: it leaves the horizon with
            // the events around it.
            Some(identity) => self
                .recent
                .insert(identity, time_us.or(self.cursor).unwrap_or(0)),
            None => true,
        }
    }

    fn forget_past_the_horizon(&mut self) {
        if let Some(cursor) = self.cursor {
            self.recent
                .forget_before(cursor.saturating_sub(self.rewind_us()));
        }
    }
}

impl Drop for JetstreamSource {
    fn drop(&mut self) {
        if let Some(connection) = &self.connection {
            connection.abort();
        }
    }
}

impl Source for JetstreamSource {
    fn plan_epoch(&mut self, epoch: Epoch) -> BoxFuture<'_, Result<EpochPlan, OperatorError>> {
        self.connect();
        let max = self.options.max_events_per_trigger;
        let mut lines = Vec::new();
        let inbox = self.inbox.clone();
        let taken = inbox.take_new(max, |event| {
            if self.remember(event.head.identity.as_deref(), event.head.time_us) {
                push_as_line(&mut lines, &event.payload);
                true
            } else {
                self.duplicates.inc();
                false
            }
        });
        if let Err(fatal) = taken {
            return Box::pin(async move { Err(OperatorError::new(fatal)) });
        }
        self.forget_past_the_horizon();
        let plan = if lines.is_empty() {
            EpochPlan::Idle
        } else {
            self.planned = Some(epoch);
            let position = self.cursor.map(|c| c.to_string()).unwrap_or_default();
            EpochPlan::Input(
                EpochInput {
                    first_line: self.events + 1,
                    position: &position,
                    lines: &lines,
                }
                .encode(),
            )
        };
        Box::pin(async move { Ok(plan) })
    }

    fn read_epoch<'a>(
        &'a mut self,
        epoch: Epoch,
        input: &'a [u8],
        out: &'a mut dyn BatchSender,
    ) -> BoxFuture<'a, Result<(), OperatorError>> {
        Box::pin(async move {
            let input = EpochInput::decode(input)?;
            if self.planned.take() != Some(epoch) {
                // Replayed from the offset log after a restart: the state must end up as
                // the original read left it, so that the connection resumes after this
                // epoch and does not pass its events on again.
                for line in input.lines() {
                    let head = read_head(line);
                    self.remember(head.identity.as_deref(), head.time_us);
                }
                if let Ok(cursor) = input.position.parse::<i64>() {
                    self.cursor = Some(self.cursor.map_or(cursor, |c| c.max(cursor)));
                }
                self.forget_past_the_horizon();
            }
            input.send(&self.origin, out).await?;
            self.events = self.events.max(input.first_line - 1 + input.line_count());
            Ok(())
        })
    }

    fn describe_offset(&self) -> String {
        let cursor = match self.cursor {
            Some(t) => match jiff::Timestamp::from_microsecond(t) {
                Ok(time) => format!("cursor {t} ({time})"),
                Err(_) => format!("cursor {t}"),
            },
            None => "no cursor yet".into(),
        };
        format!(
            "{cursor}, {} events from {}, {} remembered",
            self.events,
            self.endpoint.authority(),
            self.recent.len()
        )
    }

    fn state_signature(&self) -> Option<String> {
        let mut collections = self.options.wanted_collections.clone();
        collections.sort();
        let mut dids = self.options.wanted_dids.clone();
        dids.sort();
        Some(format!(
            "jetstream v{STATE_VERSION} collections={collections:?} dids={dids:?}"
        ))
    }

    fn snapshot(&self) -> Result<Vec<u8>, OperatorError> {
        let mut w = StateWriter::new();
        w.u64(STATE_VERSION)
            .opt_i64(self.cursor)
            .u64(self.events)
            .u64(self.recent.len() as u64);
        for (identity, time_us) in self.recent.iter() {
            w.str(identity).i64(time_us);
        }
        Ok(w.finish())
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), OperatorError> {
        let bad = |e| OperatorError::new(format!("jetstream source state: {e}"));
        let mut r = StateReader::new(state);
        let version = r.u64().map_err(bad)?;
        if version != STATE_VERSION {
            return Err(OperatorError::new(format!(
                "jetstream source state has version {version}; this build reads {STATE_VERSION}"
            )));
        }
        self.cursor = r.opt_i64().map_err(bad)?;
        self.events = r.u64().map_err(bad)?;
        self.recent.clear();
        for _ in 0..r.u64().map_err(bad)? {
            let identity = r.str().map_err(bad)?;
            let time_us = r.i64().map_err(bad)?;
            self.recent.insert(identity, time_us);
        }
        r.end().map_err(bad)?;
        Ok(())
    }
}
