//! A Jetstream server on 127.0.0.1 that replays recorded events over the `/subscribe`
//! WebSocket protocol.
//!
//! Each connection gets the recording from the start, or from its `cursor` on (the events
//! with `time_us >= cursor`, in recording order: a recording of the live stream keeps
//! Jetstream's slight disorder), filtered by `wantedCollections` (exact names or `prefix.*`;
//! identity and account events always pass, as Jetstream does) and `wantedDids`. With
//! `compress=true` (or the `Socket-Encoding: zstd` header) events go as binary messages
//! compressed with Jetstream's dictionary. A connection can be cut after a number of events,
//! without a close frame, the way a network failure or a server restart cuts it. Once it has
//! sent everything, a connection stays open and idle, as a live stream with nothing new.
//!
//! ```no_run
//! # async fn example() {
//! use trendflow_social::testkit::{jetstream, recordings};
//! let (addr, server) = jetstream::start(jetstream::JetstreamReplay {
//!     events: recordings::jetstream_corpus(),
//!     drop_after: vec![40],
//! })
//! .await;
//! println!("connect to {} ({addr})", server.url());
//! # }
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

use crate::jetstream::compress_event;
use crate::net::query_pairs;

/// What the server replays.
#[derive(Debug, Clone, Default)]
pub struct JetstreamReplay {
    /// The events, one JSON object per entry, in the order the server sends them.
    pub events: Vec<String>,
    /// Connection `i` (from 0) is cut after it has sent `drop_after[i]` events (when it has
    /// more to send); the connections after the last entry send everything.
    pub drop_after: Vec<usize>,
}

/// What one connection asked for and what it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetstreamConnection {
    /// The `cursor` parameter.
    pub cursor: Option<i64>,
    pub wanted_collections: Vec<String>,
    pub wanted_dids: Vec<String>,
    pub compress: bool,
    /// Events sent on it.
    pub sent: usize,
    /// Every event it was to send has been sent (it was not cut).
    pub complete: bool,
    /// It was cut after `drop_after` events.
    pub cut: bool,
}

/// The running server; stops when dropped.
pub struct JetstreamReplayHandle {
    addr: SocketAddr,
    connections: Arc<Mutex<Vec<JetstreamConnection>>>,
    server: tokio::task::JoinHandle<()>,
}

impl JetstreamReplayHandle {
    /// The subscription URL: `ws://127.0.0.1:PORT/subscribe`.
    pub fn url(&self) -> String {
        format!("ws://{}/subscribe", self.addr)
    }

    /// Every connection so far, in the order they were accepted.
    pub fn connections(&self) -> Vec<JetstreamConnection> {
        self.connections.lock().unwrap().clone()
    }

    /// Events sent on all connections.
    pub fn events_sent(&self) -> usize {
        self.connections
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.sent)
            .sum()
    }

    /// The latest connection has sent all it had to and stays open: the client has been
    /// sent everything.
    pub fn caught_up(&self) -> bool {
        self.connections
            .lock()
            .unwrap()
            .last()
            .is_some_and(|c| c.complete)
    }
}

impl Drop for JetstreamReplayHandle {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// An event with what the server filters it by.
struct RecordedEvent {
    json: String,
    time_us: Option<i64>,
    did: String,
    /// The commit's collection; `None` for identity and account events.
    collection: Option<String>,
}

impl RecordedEvent {
    fn new(json: String) -> Self {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Head {
            did: String,
            time_us: Option<i64>,
            kind: String,
            commit: Option<Commit>,
        }
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Commit {
            collection: String,
        }
        let head: Head = serde_json::from_str(&json).unwrap_or_default();
        RecordedEvent {
            time_us: head.time_us,
            did: head.did,
            collection: (head.kind == "commit")
                .then(|| head.commit.map(|c| c.collection).unwrap_or_default()),
            json,
        }
    }
}

struct Subscription {
    cursor: Option<i64>,
    wanted_collections: Vec<String>,
    wanted_dids: Vec<String>,
    compress: bool,
}

impl Subscription {
    fn from_request(request: &Request) -> Self {
        let pairs = query_pairs(request.uri().query().unwrap_or(""));
        let all = |name: &str| -> Vec<String> {
            pairs
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .collect()
        };
        let zstd_header = request
            .headers()
            .get("Socket-Encoding")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"zstd"));
        Subscription {
            cursor: all("cursor").first().and_then(|c| c.parse().ok()),
            wanted_collections: all("wantedCollections"),
            wanted_dids: all("wantedDids"),
            compress: zstd_header || all("compress").iter().any(|c| c == "true"),
        }
    }

    fn wants(&self, event: &RecordedEvent) -> bool {
        if let (Some(cursor), Some(t)) = (self.cursor, event.time_us)
            && t < cursor
        {
            return false;
        }
        if !self.wanted_dids.is_empty() && !self.wanted_dids.contains(&event.did) {
            return false;
        }
        match &event.collection {
            // Identity and account events reach every subscriber; so does a commit with no
            // collection, as in Jetstream.
            None => true,
            Some(c) if c.is_empty() || self.wanted_collections.is_empty() => true,
            Some(c) => self
                .wanted_collections
                .iter()
                .any(|w| match w.strip_suffix(".*") {
                    Some(prefix) => c.strip_prefix(prefix).is_some_and(|r| r.starts_with('.')),
                    None => w == c,
                }),
        }
    }
}

/// Starts the server on a free port of 127.0.0.1, in the current tokio runtime.
pub async fn start(replay: JetstreamReplay) -> (SocketAddr, JetstreamReplayHandle) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port on 127.0.0.1");
    let addr = listener.local_addr().expect("a bound address");
    let events: Arc<Vec<RecordedEvent>> =
        Arc::new(replay.events.into_iter().map(RecordedEvent::new).collect());
    let drop_after = Arc::new(replay.drop_after);
    let connections = Arc::new(Mutex::new(Vec::new()));
    let registry = connections.clone();
    let server = tokio::spawn(async move {
        // Dropped with the accept loop when the server stops: its connections stop too.
        let mut open = tokio::task::JoinSet::new();
        while let Ok((tcp, _)) = listener.accept().await {
            open.spawn(serve(
                tcp,
                events.clone(),
                drop_after.clone(),
                registry.clone(),
            ));
        }
    });
    (
        addr,
        JetstreamReplayHandle {
            addr,
            connections,
            server,
        },
    )
}

async fn serve(
    tcp: tokio::net::TcpStream,
    events: Arc<Vec<RecordedEvent>>,
    drop_after: Arc<Vec<usize>>,
    registry: Arc<Mutex<Vec<JetstreamConnection>>>,
) {
    let mut subscription = None;
    // The error type is tungstenite's callback signature, not ours to shrink.
    #[allow(clippy::result_large_err)]
    let capture = |request: &Request, response: Response| {
        subscription = Some(Subscription::from_request(request));
        Ok(response)
    };
    let Ok(mut socket) = tokio_tungstenite::accept_hdr_async(tcp, capture).await else {
        return;
    };
    let subscription = subscription.expect("the handshake read the request");
    let index = {
        let mut all = registry.lock().unwrap();
        all.push(JetstreamConnection {
            cursor: subscription.cursor,
            wanted_collections: subscription.wanted_collections.clone(),
            wanted_dids: subscription.wanted_dids.clone(),
            compress: subscription.compress,
            sent: 0,
            complete: false,
            cut: false,
        });
        all.len() - 1
    };
    let cut_after = drop_after.get(index).copied();
    for event in events.iter().filter(|e| subscription.wants(e)) {
        if cut_after == Some(registry.lock().unwrap()[index].sent) {
            registry.lock().unwrap()[index].cut = true;
            // Dropping the socket closes TCP without a WebSocket close frame.
            return;
        }
        let message = if subscription.compress {
            Message::binary(compress_event(event.json.as_bytes()))
        } else {
            Message::text(event.json.clone())
        };
        if socket.send(message).await.is_err() {
            return;
        }
        registry.lock().unwrap()[index].sent += 1;
    }
    registry.lock().unwrap()[index].complete = true;
    // Idle, as a live stream with nothing new: answers pings until the client leaves.
    while let Some(Ok(message)) = socket.next().await {
        if message.is_close() {
            break;
        }
    }
}
