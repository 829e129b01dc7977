//! The background connection to Jetstream: subscribes, reads events into the source's inbox,
//! and after any disconnect reconnects (exponential backoff with jitter) from the latest
//! `time_us` received less `rewind`.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{self, Message};
use trendflow_core::metrics::Counter;

use super::compression::EventDecompressor;
use super::event::{EventHead, read_head};
use crate::backoff::Backoff;
use crate::http_client::{ANSWER_TIMEOUT, is_permanent_failure};
use crate::inbox::Inbox;
use crate::net::{self, Endpoint, encode_query_value};

/// An event as received, waiting for an epoch to take it.
#[derive(Debug)]
pub(crate) struct ReceivedEvent {
    /// The event's JSON, decompressed.
    pub payload: Vec<u8>,
    pub head: EventHead,
}

/// What to subscribe to and how to behave on the connection.
#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    pub endpoint: Endpoint,
    pub wanted_collections: Vec<String>,
    pub wanted_dids: Vec<String>,
    pub compress: bool,
    pub rewind: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub idle_timeout: Duration,
}

impl Subscription {
    /// The subscription URL, resuming from `cursor` (microseconds) when given.
    pub(crate) fn url(&self, cursor: Option<i64>) -> String {
        let mut query = Vec::new();
        for c in &self.wanted_collections {
            query.push(format!("wantedCollections={}", encode_query_value(c)));
        }
        for d in &self.wanted_dids {
            query.push(format!("wantedDids={}", encode_query_value(d)));
        }
        if let Some(cursor) = cursor {
            query.push(format!("cursor={cursor}"));
        }
        if self.compress {
            query.push("compress=true".into());
        }
        let mut path = self.endpoint.path_and_query.clone();
        if !query.is_empty() {
            path.push('?');
            path.push_str(&query.join("&"));
        }
        self.endpoint.url("ws", "wss", &path)
    }

    /// Where a connection resumes when the latest event received is `latest_time_us`.
    fn resume_cursor(&self, latest_time_us: Option<i64>) -> Option<i64> {
        let rewind = i64::try_from(self.rewind.as_micros()).unwrap_or(i64::MAX);
        latest_time_us.map(|t| t.saturating_sub(rewind).max(0))
    }
}

/// Counters the connection keeps.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionCounters {
    /// Events received, duplicates included.
    pub events: Counter,
    /// Their bytes, decompressed.
    pub bytes: Counter,
    /// Binary messages that did not decompress (skipped).
    pub undecodable: Counter,
}

enum SessionError {
    /// The connection failed or ended: connect again.
    Retry(String),
    /// The server refuses the subscription: connecting again would not help.
    Fatal(String),
}

/// Starts the connection; it runs until the returned task is aborted.
pub(crate) fn spawn(
    subscription: Subscription,
    resume_from_time_us: Option<i64>,
    inbox: Arc<Inbox<ReceivedEvent>>,
    counters: ConnectionCounters,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(subscription, resume_from_time_us, inbox, counters))
}

async fn run(
    subscription: Subscription,
    resume_from_time_us: Option<i64>,
    inbox: Arc<Inbox<ReceivedEvent>>,
    counters: ConnectionCounters,
) {
    let mut latest_time_us = resume_from_time_us;
    let mut backoff = Backoff::new(subscription.reconnect_min, subscription.reconnect_max);
    let mut decompressor = None;
    loop {
        let url = subscription.url(subscription.resume_cursor(latest_time_us));
        let mut received = 0u64;
        let outcome = session(
            &subscription,
            &url,
            &inbox,
            &counters,
            &mut latest_time_us,
            &mut received,
            &mut decompressor,
        )
        .await;
        match outcome {
            Ok(()) => tracing::info!(url, received, "jetstream: the server closed the connection"),
            Err(SessionError::Retry(reason)) => {
                tracing::warn!(url, received, reason, "jetstream: connection lost")
            }
            Err(SessionError::Fatal(reason)) => {
                tracing::error!(url, reason, "jetstream: subscription refused");
                inbox.fail(format!("jetstream {url}: {reason}"));
                return;
            }
        }
        if received > 0 {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        tracing::info!(?delay, "jetstream: reconnecting");
        tokio::time::sleep(delay).await;
    }
}

/// One connection, until it fails or ends.
async fn session(
    subscription: &Subscription,
    url: &str,
    inbox: &Inbox<ReceivedEvent>,
    counters: &ConnectionCounters,
    latest_time_us: &mut Option<i64>,
    received: &mut u64,
    decompressor: &mut Option<EventDecompressor>,
) -> Result<(), SessionError> {
    let retry = |e: &dyn std::fmt::Display| SessionError::Retry(e.to_string());
    let connection = net::connect(&subscription.endpoint)
        .await
        .map_err(|e| retry(&e))?;
    let handshake = tokio_tungstenite::client_async(url, connection);
    let (mut socket, _) = tokio::time::timeout(ANSWER_TIMEOUT, handshake)
        .await
        .map_err(|_| {
            SessionError::Retry(format!("no WebSocket upgrade within {ANSWER_TIMEOUT:?}"))
        })?
        .map_err(|e| match e {
            tungstenite::Error::Http(response) if is_permanent_failure(response.status()) => {
                let body = response
                    .body()
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                SessionError::Fatal(format!("HTTP {}: {}", response.status(), body.trim()))
            }
            other => retry(&other),
        })?;
    tracing::info!(url, "jetstream: connected");
    let ping_every = subscription.idle_timeout / 3;
    let mut quiet_for = Duration::ZERO;
    loop {
        inbox.wait_for_room().await;
        let message = match tokio::time::timeout(ping_every, socket.next()).await {
            Err(_) => {
                quiet_for += ping_every;
                if quiet_for >= subscription.idle_timeout {
                    return Err(SessionError::Retry(format!(
                        "nothing received for {quiet_for:?}"
                    )));
                }
                socket
                    .send(Message::Ping(Default::default()))
                    .await
                    .map_err(|e| retry(&e))?;
                continue;
            }
            Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => return Err(retry(&e)),
            Ok(Some(Ok(message))) => message,
        };
        quiet_for = Duration::ZERO;
        let payload = match message {
            Message::Text(text) => text.as_bytes().to_vec(),
            Message::Binary(data) if data.starts_with(&ZSTD_MAGIC) => {
                let d = match decompressor {
                    Some(d) => d,
                    None => {
                        decompressor.insert(EventDecompressor::new().map_err(SessionError::Fatal)?)
                    }
                };
                match d.decompress(&data) {
                    Ok(event) => event,
                    Err(reason) => {
                        tracing::warn!(reason, "jetstream: message skipped");
                        counters.undecodable.inc();
                        continue;
                    }
                }
            }
            Message::Binary(data) => data.to_vec(),
            Message::Close(frame) => {
                tracing::info!(?frame, "jetstream: close frame received");
                return Ok(());
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
        };
        let head = read_head(&payload);
        if let Some(t) = head.time_us {
            *latest_time_us = Some(latest_time_us.map_or(t, |l| l.max(t)));
        }
        let bytes = payload.len() as u64;
        inbox.push(ReceivedEvent { payload, head });
        // Counted once in the inbox: an event counted is an event the next epoch can take.
        counters.events.inc();
        counters.bytes.add(bytes);
        *received += 1;
    }
}

/// The first bytes of every zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_names_the_subscription_and_the_rewound_cursor() {
        let s = Subscription {
            endpoint: Endpoint::parse("wss://jetstream2.us-east.bsky.network/subscribe").unwrap(),
            wanted_collections: vec!["app.bsky.feed.post".into(), "app.bsky.graph.*".into()],
            wanted_dids: vec!["did:plc:abc".into()],
            compress: true,
            rewind: Duration::from_secs(5),
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
        };
        assert_eq!(
            s.url(s.resume_cursor(Some(1_783_175_888_403_568))),
            "wss://jetstream2.us-east.bsky.network/subscribe?wantedCollections=app.bsky.feed.post&wantedCollections=app.bsky.graph.%2A&wantedDids=did%3Aplc%3Aabc&cursor=1783175883403568&compress=true"
        );
        let plain = Subscription {
            endpoint: Endpoint::parse("ws://127.0.0.1:9000/subscribe").unwrap(),
            wanted_collections: vec![],
            wanted_dids: vec![],
            compress: false,
            ..s
        };
        assert_eq!(plain.url(None), "ws://127.0.0.1:9000/subscribe");
    }
}
