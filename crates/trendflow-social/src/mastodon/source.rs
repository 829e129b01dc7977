//! The Mastodon source: epochs of statuses from the background connection, de-duplicated by
//! id, recorded in the offset log, and the newest id and recent ids checkpointed.

use std::sync::Arc;

use http::HeaderValue;
use trendflow_core::codec::{StateReader, StateWriter};
use trendflow_core::metrics::{Counter, Metrics, names};
use trendflow_core::{BatchSender, BoxFuture, Epoch, EpochPlan, OperatorError, Source};

use super::client::{self, Arrival, StreamConfig, StreamCounters};
use super::dedup::{RecentStatuses, StatusId};
use super::options::MastodonOptions;
use crate::epoch_input::{EpochInput, push_as_line};
use crate::inbox::Inbox;
use crate::net::Endpoint;

const STATE_VERSION: u64 = 1;

/// Statuses of a Mastodon timeline, each epoch's statuses recorded in the offset log so that
/// a replay after a crash reads the same ones, every status passed on once across reconnects
/// and restarts, and statuses posted while disconnected fetched from the REST timeline (see
/// `docs/mastodon.md`).
pub struct MastodonSource {
    options: MastodonOptions,
    server: Endpoint,
    streaming: Endpoint,
    authorization: Option<HeaderValue>,
    origin: Arc<str>,
    inbox: Arc<Inbox<Arrival>>,
    connection: Option<tokio::task::JoinHandle<()>>,
    stream_counters: StreamCounters,
    /// The newest status id passed on: after a disconnect or a restart, the statuses newer
    /// than it are fetched from the REST timeline.
    newest: Option<StatusId>,
    /// The ids of the statuses passed on last.
    recent: RecentStatuses,
    /// Statuses passed on so far: the line numbers of the next epoch start after it.
    statuses: u64,
    /// The epoch `plan_epoch` chose in this run and `read_epoch` has not read yet: its
    /// statuses are already in `recent`. Any other epoch read is a replay.
    planned: Option<Epoch>,
    duplicates: Counter,
    edits: Counter,
}

impl MastodonSource {
    /// A source with these options; `component` and `metrics` name and hold its counters.
    /// Nothing connects before the first epoch is planned (after a restore, so that the gap
    /// since the checkpoint is filled).
    pub fn new(
        options: MastodonOptions,
        component: &str,
        metrics: &Metrics,
    ) -> Result<Self, OperatorError> {
        options.validate().map_err(OperatorError::new)?;
        let server = Endpoint::parse(&options.server).map_err(OperatorError::new)?;
        let streaming = match &options.streaming_url {
            Some(url) => Endpoint::parse(url).map_err(OperatorError::new)?,
            None => server.clone(),
        };
        let authorization = match &options.access_token {
            Some(token) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| OperatorError::new("mastodon `access_token` is not a token"))?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let control = |kind: &str| {
            metrics.counter_labeled(
                names::CONTROL_MESSAGES,
                component,
                Some(("kind", kind.into())),
            )
        };
        let received = |via: &str| {
            metrics.counter_labeled(names::RECORDS_IN, component, Some(("via", via.into())))
        };
        Ok(MastodonSource {
            origin: Arc::from(format!(
                "mastodon:{}/{}",
                server.authority(),
                options.timeline
            )),
            inbox: Arc::new(Inbox::new((2 * options.max_events_per_trigger).max(1024))),
            connection: None,
            stream_counters: StreamCounters {
                streamed: received("stream"),
                gap_filled: received("gap_fill"),
                bytes: metrics.counter(names::BYTES_IN, component),
                deletes: control("delete"),
            },
            newest: None,
            recent: RecentStatuses::new(options.remembered_ids),
            statuses: 0,
            planned: None,
            duplicates: metrics.counter_labeled(
                names::RECORDS_FILTERED,
                component,
                Some(("reason", "duplicate".into())),
            ),
            edits: control("edit"),
            server,
            streaming,
            authorization,
            options,
        })
    }

    /// The newest status id passed on.
    pub fn newest_status_id(&self) -> Option<&str> {
        self.newest.as_ref().map(StatusId::as_str)
    }

    fn connect(&mut self) {
        if self.connection.is_some() {
            return;
        }
        let config = StreamConfig {
            server: self.server.clone(),
            streaming: self.streaming.clone(),
            timeline: self.options.timeline.clone(),
            authorization: self.authorization.clone(),
            reconnect_min: self.options.reconnect_min,
            reconnect_max: self.options.reconnect_max,
            idle_timeout: self.options.idle_timeout,
            gap_fill_limit: self.options.gap_fill_limit,
        };
        self.connection = Some(client::spawn(
            config,
            self.newest.clone(),
            self.inbox.clone(),
            self.stream_counters.clone(),
        ));
    }

    /// Remembers a status passed on (now, or in an epoch replayed from the offset log).
    fn remember(&mut self, id: StatusId) {
        if self.newest.as_ref().is_none_or(|n| &id > n) {
            self.newest = Some(id.clone());
        }
        self.recent.insert(id);
    }

    /// Whether an arrival is a status not passed on yet. An edit counts as one only when the
    /// status is newer than the oldest id remembered: older ones were passed on and
    /// forgotten, or predate the stream, and an edit does not make them new posts.
    fn is_new(&self, arrival: &Arrival) -> bool {
        if self.recent.contains(&arrival.id) {
            return false;
        }
        !arrival.edit
            || self
                .recent
                .oldest()
                .is_some_and(|oldest| &arrival.id > oldest)
    }
}

impl Drop for MastodonSource {
    fn drop(&mut self) {
        if let Some(connection) = &self.connection {
            connection.abort();
        }
    }
}

impl Source for MastodonSource {
    fn plan_epoch(&mut self, epoch: Epoch) -> BoxFuture<'_, Result<EpochPlan, OperatorError>> {
        self.connect();
        let max = self.options.max_events_per_trigger;
        let mut lines = Vec::new();
        let inbox = self.inbox.clone();
        let taken = inbox.take_new(max, |arrival| {
            if self.is_new(&arrival) {
                push_as_line(&mut lines, &arrival.payload);
                self.remember(arrival.id);
                true
            } else {
                if arrival.edit {
                    self.edits.inc();
                } else {
                    self.duplicates.inc();
                }
                false
            }
        });
        if let Err(fatal) = taken {
            return Box::pin(async move { Err(OperatorError::new(fatal)) });
        }
        let plan = if lines.is_empty() {
            EpochPlan::Idle
        } else {
            self.planned = Some(epoch);
            EpochPlan::Input(
                EpochInput {
                    first_line: self.statuses + 1,
                    position: self.newest.as_ref().map_or("", StatusId::as_str),
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
                // the original read left it, so that the gap fill starts after this epoch
                // and its statuses are not passed on again.
                for line in input.lines() {
                    if let Some(id) = StatusId::of_status(line) {
                        self.remember(id);
                    }
                }
                if !input.position.is_empty() {
                    self.remember(StatusId::new(input.position));
                }
            }
            input.send(&self.origin, out).await?;
            self.statuses = self.statuses.max(input.first_line - 1 + input.line_count());
            Ok(())
        })
    }

    fn describe_offset(&self) -> String {
        format!(
            "newest status {}, {} statuses from {} {}",
            self.newest_status_id().unwrap_or("none yet"),
            self.statuses,
            self.server.authority(),
            self.options.timeline
        )
    }

    fn state_signature(&self) -> Option<String> {
        Some(format!(
            "mastodon v{STATE_VERSION} {}{} {}",
            self.server.authority(),
            self.server.path_and_query.trim_end_matches('/'),
            self.options.timeline
        ))
    }

    fn snapshot(&self) -> Result<Vec<u8>, OperatorError> {
        let mut w = StateWriter::new();
        w.u64(STATE_VERSION)
            .str(self.newest_status_id().unwrap_or(""))
            .u64(self.statuses)
            .u64(self.recent.len() as u64);
        for id in self.recent.iter() {
            w.str(id.as_str());
        }
        Ok(w.finish())
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), OperatorError> {
        let bad = |e| OperatorError::new(format!("mastodon source state: {e}"));
        let mut r = StateReader::new(state);
        let version = r.u64().map_err(bad)?;
        if version != STATE_VERSION {
            return Err(OperatorError::new(format!(
                "mastodon source state has version {version}; this build reads {STATE_VERSION}"
            )));
        }
        let newest = r.str().map_err(bad)?;
        self.newest = (!newest.is_empty()).then(|| StatusId::new(newest));
        self.statuses = r.u64().map_err(bad)?;
        self.recent.clear();
        for _ in 0..r.u64().map_err(bad)? {
            self.recent.insert(StatusId::new(r.str().map_err(bad)?));
        }
        r.end().map_err(bad)?;
        Ok(())
    }
}
