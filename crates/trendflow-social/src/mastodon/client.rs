//! The background connection to a Mastodon timeline: opens the event stream, fills the gap
//! since the newest status seen from the REST timeline, reads events into the source's
//! inbox, and after any disconnect does it all again (exponential backoff with jitter).

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use trendflow_core::metrics::Counter;

use super::dedup::StatusId;
use super::options::Timeline;
use super::rest::{self, GapFillError};
use super::sse::{SseEvent, SseParser};
use crate::backoff::Backoff;
use crate::http_client::{self, describe_failure, is_permanent_failure, redirect_target};
use crate::inbox::Inbox;
use crate::net::Endpoint;

/// Redirects followed to find the streaming server.
const MAX_REDIRECTS: usize = 5;

/// Consecutive failed gap fills before the gap is given up (logged) and the stream read
/// anyway: the REST API may be down for a moment when the streaming server comes back, but
/// a timeline the REST API never serves must not stop the stream.
const GAP_FILL_ATTEMPTS: u32 = 3;

/// A status received, waiting for an epoch to take it.
#[derive(Debug)]
pub(crate) struct Arrival {
    pub id: StatusId,
    /// The status's JSON.
    pub payload: Vec<u8>,
    /// A `status.update` (an edited status) rather than a new one.
    pub edit: bool,
}

/// What to follow and how.
#[derive(Clone)]
pub(crate) struct StreamConfig {
    /// The REST API's server.
    pub server: Endpoint,
    /// The streaming server (often `server`, which may redirect).
    pub streaming: Endpoint,
    pub timeline: Timeline,
    /// `Bearer TOKEN`, marked sensitive so it is never logged.
    pub authorization: Option<HeaderValue>,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub idle_timeout: Duration,
    pub gap_fill_limit: usize,
}

/// Counters the connection keeps.
#[derive(Debug, Clone)]
pub(crate) struct StreamCounters {
    /// Statuses (new and edited) received from the stream, duplicates included.
    pub streamed: Counter,
    /// Statuses a gap fill fetched, duplicates included.
    pub gap_filled: Counter,
    /// Bytes of the stream and of the REST pages.
    pub bytes: Counter,
    /// `delete` events: a status was deleted (not a post; counted only).
    pub deletes: Counter,
}

enum SessionError {
    Retry(String),
    Fatal(String),
}

/// Starts the connection; it runs until the returned task is aborted. `newest_seen` is the
/// newest status id already passed on (from a checkpoint): the gap after it is filled first.
pub(crate) fn spawn(
    config: StreamConfig,
    newest_seen: Option<StatusId>,
    inbox: Arc<Inbox<Arrival>>,
    counters: StreamCounters,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(config, newest_seen, inbox, counters))
}

/// The connection's memory across sessions.
struct Progress {
    newest_seen: Option<StatusId>,
    failed_gap_fills: u32,
    /// Items received by the current session.
    received: u64,
}

impl Progress {
    fn saw(&mut self, id: &StatusId) {
        if self.newest_seen.as_ref().is_none_or(|n| id > n) {
            self.newest_seen = Some(id.clone());
        }
    }
}

async fn run(
    config: StreamConfig,
    newest_seen: Option<StatusId>,
    inbox: Arc<Inbox<Arrival>>,
    counters: StreamCounters,
) {
    let mut backoff = Backoff::new(config.reconnect_min, config.reconnect_max);
    let mut progress = Progress {
        newest_seen,
        failed_gap_fills: 0,
        received: 0,
    };
    let timeline = config.timeline.to_string();
    loop {
        progress.received = 0;
        match session(&config, &inbox, &counters, &mut progress).await {
            Ok(()) => tracing::info!(
                timeline,
                received = progress.received,
                "mastodon: the stream ended"
            ),
            Err(SessionError::Retry(reason)) => tracing::warn!(
                timeline,
                received = progress.received,
                reason,
                "mastodon: stream lost"
            ),
            Err(SessionError::Fatal(reason)) => {
                tracing::error!(timeline, reason, "mastodon: stream refused");
                inbox.fail(format!("mastodon {timeline}: {reason}"));
                return;
            }
        }
        if progress.received > 0 {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        tracing::info!(?delay, "mastodon: reconnecting");
        tokio::time::sleep(delay).await;
    }
}

async fn session(
    config: &StreamConfig,
    inbox: &Inbox<Arrival>,
    counters: &StreamCounters,
    progress: &mut Progress,
) -> Result<(), SessionError> {
    // The stream first, the gap fill second: statuses posted between the two come from both
    // (and are de-duplicated) rather than from neither.
    let stream = open_stream(config).await?;
    if let Some(after) = progress.newest_seen.clone()
        && config.gap_fill_limit > 0
    {
        fill_gap(config, inbox, counters, progress, &after).await?;
    }
    read_stream(config, stream, inbox, counters, progress).await
}

/// Sends the streaming request, following redirects to the streaming host.
async fn open_stream(config: &StreamConfig) -> Result<hyper::Response<Incoming>, SessionError> {
    let mut endpoint = config.streaming.clone();
    let path = config.timeline.streaming_path();
    let mut path_and_query = format!("{}{}", endpoint.path_and_query.trim_end_matches('/'), path);
    for _ in 0..=MAX_REDIRECTS {
        let mut headers = vec![
            (
                header::ACCEPT,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ];
        // The token goes to the configured servers and their subdomains only
        // (mastodon.social's streaming host is streaming.mastodon.social).
        if let Some(auth) = &config.authorization
            && trusted_host(&endpoint.host, config)
        {
            headers.push((header::AUTHORIZATION, auth.clone()));
        }
        let response = http_client::get(&endpoint, &path_and_query, &headers)
            .await
            .map_err(SessionError::Retry)?;
        let status = response.status();
        if status.is_redirection()
            && let Some(location) = response
                .headers()
                .get(header::LOCATION)
                .and_then(|l| l.to_str().ok())
        {
            let target = redirect_target(&endpoint, location).map_err(SessionError::Fatal)?;
            tracing::info!(
                from = endpoint.authority(),
                to = target.authority(),
                "mastodon: streaming redirected"
            );
            path_and_query = target.path_and_query.clone();
            endpoint = target;
            continue;
        }
        if status == StatusCode::OK {
            return Ok(response);
        }
        let reason = format!("GET {path_and_query}: {}", describe_failure(response).await);
        return Err(if is_permanent_failure(status) {
            SessionError::Fatal(reason)
        } else {
            SessionError::Retry(reason)
        });
    }
    Err(SessionError::Fatal(format!(
        "more than {MAX_REDIRECTS} redirects from {}",
        config.streaming.authority()
    )))
}

fn trusted_host(host: &str, config: &StreamConfig) -> bool {
    [&config.server.host, &config.streaming.host]
        .iter()
        .any(|h| host == h.as_str() || host.ends_with(&format!(".{h}")))
}

async fn fill_gap(
    config: &StreamConfig,
    inbox: &Inbox<Arrival>,
    counters: &StreamCounters,
    progress: &mut Progress,
    after: &StatusId,
) -> Result<(), SessionError> {
    let fill = match rest::statuses_after(
        &config.server,
        &config.timeline,
        config.authorization.as_ref(),
        after,
        config.gap_fill_limit,
    )
    .await
    {
        Ok(fill) => fill,
        Err(GapFillError::Refused(reason)) => {
            // The timeline is not served to this client: there is no gap filling to do.
            tracing::warn!(
                reason,
                "mastodon: the REST timeline is refused; statuses posted while disconnected are not fetched"
            );
            return Ok(());
        }
        Err(GapFillError::Failed(reason)) => {
            progress.failed_gap_fills += 1;
            if progress.failed_gap_fills < GAP_FILL_ATTEMPTS {
                return Err(SessionError::Retry(format!("gap fill: {reason}")));
            }
            tracing::warn!(
                reason,
                after = after.as_str(),
                "mastodon: gap fill failed {GAP_FILL_ATTEMPTS} times; statuses posted while disconnected are lost"
            );
            progress.failed_gap_fills = 0;
            return Ok(());
        }
    };
    progress.failed_gap_fills = 0;
    if !fill.complete {
        tracing::warn!(
            after = after.as_str(),
            pages = fill.pages,
            "mastodon: gap fill stopped at `gap_fill_limit`; newer statuses posted while disconnected are lost"
        );
    }
    tracing::info!(
        after = after.as_str(),
        statuses = fill.statuses.len(),
        pages = fill.pages,
        "mastodon: gap filled"
    );
    for (id, payload) in fill.statuses {
        inbox.wait_for_room().await;
        progress.saw(&id);
        progress.received += 1;
        let bytes = payload.len() as u64;
        inbox.push(Arrival {
            id,
            payload,
            edit: false,
        });
        // Counted once in the inbox: a status counted is one the next epoch can take.
        counters.gap_filled.inc();
        counters.bytes.add(bytes);
    }
    Ok(())
}

async fn read_stream(
    config: &StreamConfig,
    response: hyper::Response<Incoming>,
    inbox: &Inbox<Arrival>,
    counters: &StreamCounters,
    progress: &mut Progress,
) -> Result<(), SessionError> {
    let mut body = response.into_body();
    let mut parser = SseParser::new();
    loop {
        inbox.wait_for_room().await;
        let frame = match tokio::time::timeout(config.idle_timeout, body.frame()).await {
            Err(_) => {
                return Err(SessionError::Retry(format!(
                    "nothing received for {:?}",
                    config.idle_timeout
                )));
            }
            Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => return Err(SessionError::Retry(e.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        counters.bytes.add(chunk.len() as u64);
        for event in parser.push(&chunk) {
            take_event(event, inbox, counters, progress);
        }
    }
}

fn take_event(
    event: SseEvent,
    inbox: &Inbox<Arrival>,
    counters: &StreamCounters,
    progress: &mut Progress,
) {
    let edit = match event.event.as_str() {
        "update" => false,
        "status.update" => true,
        "delete" => {
            counters.deletes.inc();
            return;
        }
        other => {
            tracing::debug!(event = other, "mastodon: event ignored");
            return;
        }
    };
    let payload = event.data.into_bytes();
    let Some(id) = StatusId::of_status(&payload) else {
        tracing::warn!(
            excerpt = String::from_utf8_lossy(&payload[..payload.len().min(200)]).as_ref(),
            "mastodon: a status without an id is skipped"
        );
        return;
    };
    progress.saw(&id);
    progress.received += 1;
    inbox.push(Arrival { id, payload, edit });
    counters.streamed.inc();
}
