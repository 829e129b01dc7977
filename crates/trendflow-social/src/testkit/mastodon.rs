//! A Mastodon server on 127.0.0.1 with the streaming API (server-sent events) and the REST
//! timelines, replaying a script.
//!
//! The stream is live: its events go out in order, each once, to whichever connection is
//! open (a client that reconnects resumes where the previous connection stopped, and what
//! would be sent while nobody listens is not sent). An `update` joins the REST timeline when
//! it is sent. A connection can be cut after a number of events (heartbeats not counted);
//! the statuses "posted while disconnected" then join the REST timeline, and only it: a
//! client finds them by filling the gap. Once the script is done, the stream sends a
//! heartbeat now and then.
//!
//! Endpoints: `GET /api/v1/streaming/{public, public/local, hashtag?tag=, hashtag/local?tag=}`,
//! `GET /api/v1/timelines/public` (`local`, `since_id`, `min_id`, `max_id`, `limit` up to
//! 40, newest first, with `Link` headers as Mastodon sends them) and
//! `GET /api/v1/timelines/tag/NAME`. With an `access_token`, requests without
//! `Authorization: Bearer TOKEN` get 401.
//!
//! ```no_run
//! # async fn example() {
//! use trendflow_social::testkit::{mastodon, recordings};
//! use mastodon::StreamEvent;
//! let statuses = recordings::mastodon_statuses();
//! let (addr, server) = mastodon::start(mastodon::MastodonReplay {
//!     stream: statuses[..5].iter().cloned().map(StreamEvent::Update).collect(),
//!     drop_after: vec![3],
//!     posted_while_disconnected: vec![statuses[5..8].to_vec()],
//!     ..Default::default()
//! })
//! .await;
//! println!("server: {} ({addr})", server.url());
//! # }
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::mastodon::Timeline;
use crate::mastodon::dedup::StatusId;
use crate::net::{encode_query_value, query_pairs};

/// An event of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// `update`: a new status (its JSON). It joins the REST timeline when sent.
    Update(String),
    /// `status.update`: an edited status (its JSON).
    StatusUpdate(String),
    /// `delete`: the id of a deleted status.
    Delete(String),
    /// A `:thump` comment, as Mastodon sends to keep the connection open.
    Heartbeat,
}

/// What the server serves.
#[derive(Debug, Clone)]
pub struct MastodonReplay {
    /// Statuses on the REST timelines from the start.
    pub history: Vec<String>,
    /// What the stream sends, in order, across connections.
    pub stream: Vec<StreamEvent>,
    /// Connection `i` (from 0) is cut after it has sent `drop_after[i]` events (when it has
    /// more); the connections after the last entry are not cut.
    pub drop_after: Vec<usize>,
    /// `posted_while_disconnected[i]` join the REST timeline when connection `i` is cut;
    /// they are never streamed.
    pub posted_while_disconnected: Vec<Vec<String>>,
    /// When set, every request must carry `Authorization: Bearer` with it.
    pub access_token: Option<String>,
    /// How often the stream sends a heartbeat once the script is done.
    pub idle_heartbeat: Duration,
}

impl Default for MastodonReplay {
    fn default() -> Self {
        MastodonReplay {
            history: Vec::new(),
            stream: Vec::new(),
            drop_after: Vec::new(),
            posted_while_disconnected: Vec::new(),
            access_token: None,
            idle_heartbeat: Duration::from_millis(200),
        }
    }
}

/// What one streaming connection asked for and what it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MastodonConnection {
    /// Path and query of the request.
    pub request: String,
    /// Events sent on it (heartbeats not counted).
    pub sent: usize,
    /// The script was done while it was open: everything has been sent to it.
    pub complete: bool,
    /// It was cut after `drop_after` events.
    pub cut: bool,
}

/// The running server; stops when dropped.
pub struct MastodonReplayHandle {
    addr: SocketAddr,
    state: Arc<Mutex<ServerState>>,
    server: tokio::task::JoinHandle<()>,
}

impl MastodonReplayHandle {
    /// The server's base URL: `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every streaming connection so far, in the order they were accepted.
    pub fn connections(&self) -> Vec<MastodonConnection> {
        self.state.lock().unwrap().connections.clone()
    }

    /// Path and query of every REST timeline request, in order.
    pub fn rest_requests(&self) -> Vec<String> {
        self.state.lock().unwrap().rest_requests.clone()
    }

    /// Statuses the REST timelines have served, over all requests.
    pub fn rest_statuses_served(&self) -> usize {
        self.state.lock().unwrap().rest_statuses_served
    }

    /// Requests refused for a missing or wrong token.
    pub fn unauthorized_requests(&self) -> usize {
        self.state.lock().unwrap().unauthorized
    }

    /// The latest connection has been sent the whole script and stays open.
    pub fn caught_up(&self) -> bool {
        let state = self.state.lock().unwrap();
        state.next_event >= state.script.len()
            && state.connections.last().is_some_and(|c| c.complete)
    }
}

impl Drop for MastodonReplayHandle {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A status with what the timelines filter it by.
#[derive(Debug, Clone)]
struct PostedStatus {
    id: StatusId,
    json: String,
    local: bool,
    tags: Vec<String>,
}

impl PostedStatus {
    fn new(json: &str) -> Self {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Status {
            account: Account,
            tags: Vec<Tag>,
        }
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Account {
            acct: String,
        }
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Tag {
            name: String,
        }
        let status: Status = serde_json::from_str(json).unwrap_or_default();
        PostedStatus {
            id: StatusId::of_status(json.as_bytes()).unwrap_or_else(|| StatusId::new("")),
            json: json.to_string(),
            local: !status.account.acct.contains('@'),
            tags: status.tags.into_iter().map(|t| t.name).collect(),
        }
    }

    fn on(&self, timeline: &Timeline) -> bool {
        match timeline {
            Timeline::Public => true,
            Timeline::Local => self.local,
            Timeline::Hashtag(tag) => self.tags.iter().any(|t| t.eq_ignore_ascii_case(tag)),
        }
    }
}

struct ServerState {
    script: Vec<StreamEvent>,
    next_event: usize,
    /// Every status posted so far, in posting order.
    posted: Vec<PostedStatus>,
    drop_after: Vec<usize>,
    posted_while_disconnected: Vec<Vec<String>>,
    access_token: Option<String>,
    idle_heartbeat: Duration,
    connections: Vec<MastodonConnection>,
    rest_requests: Vec<String>,
    rest_statuses_served: usize,
    unauthorized: usize,
}

/// Starts the server on a free port of 127.0.0.1, in the current tokio runtime.
pub async fn start(replay: MastodonReplay) -> (SocketAddr, MastodonReplayHandle) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port on 127.0.0.1");
    let addr = listener.local_addr().expect("a bound address");
    let state = Arc::new(Mutex::new(ServerState {
        script: replay.stream,
        next_event: 0,
        posted: replay
            .history
            .iter()
            .map(|s| PostedStatus::new(s))
            .collect(),
        drop_after: replay.drop_after,
        posted_while_disconnected: replay.posted_while_disconnected,
        access_token: replay.access_token,
        idle_heartbeat: replay.idle_heartbeat.max(Duration::from_millis(1)),
        connections: Vec::new(),
        rest_requests: Vec::new(),
        rest_statuses_served: 0,
        unauthorized: 0,
    }));
    let shared = state.clone();
    let server = tokio::spawn(async move {
        // Dropped with the accept loop when the server stops: its connections stop too.
        let mut open = tokio::task::JoinSet::new();
        while let Ok((tcp, _)) = listener.accept().await {
            open.spawn(serve(tcp, shared.clone()));
        }
    });
    (
        addr,
        MastodonReplayHandle {
            addr,
            state,
            server,
        },
    )
}

// HTTP/1.1 is written by hand here rather than with a server library, so that a cut is
// exactly what the test asks for: every event before it delivered, then the connection
// closed in the middle of the chunked response.

/// A request's head: what the server routes on.
struct RequestHead {
    path: String,
    /// The path with its query, as requested.
    target: String,
    query: Vec<(String, String)>,
    host: String,
    authorization: Option<String>,
}

impl RequestHead {
    fn param(&self, name: &str) -> Option<String> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

/// Reads a request head (GET requests have no body), up to 64 KB.
async fn read_head(tcp: &mut TcpStream) -> Option<RequestHead> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tcp.read(&mut buf).await.ok()?;
        if n == 0 || head.len() > 64 * 1024 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let target = text.split("\r\n").next()?.split(' ').nth(1)?.to_string();
    let header = |name: &str| {
        text.split("\r\n").skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    Some(RequestHead {
        path: path.to_string(),
        query: query_pairs(query),
        host: header("host").unwrap_or_else(|| "127.0.0.1".into()),
        authorization: header("authorization"),
        target: target.clone(),
    })
}

/// One connection: one request, then the connection closes (an event stream ends with it).
async fn serve(mut tcp: TcpStream, state: Arc<Mutex<ServerState>>) {
    let Some(request) = read_head(&mut tcp).await else {
        return;
    };
    let authorized = {
        let mut s = state.lock().unwrap();
        let authorized = s.access_token.as_ref().is_none_or(|token| {
            request.authorization.as_deref() == Some(format!("Bearer {token}").as_str())
        });
        if !authorized {
            s.unauthorized += 1;
        }
        authorized
    };
    if !authorized {
        let body = r#"{"error":"The access token is invalid"}"#;
        let _ = respond(&mut tcp, "401 Unauthorized", body, None).await;
        return;
    }
    let streaming = match request.path.as_str() {
        "/api/v1/streaming/public" => Some(Timeline::Public),
        "/api/v1/streaming/public/local" => Some(Timeline::Local),
        "/api/v1/streaming/hashtag" | "/api/v1/streaming/hashtag/local" => {
            request.param("tag").map(Timeline::Hashtag)
        }
        _ => None,
    };
    if let Some(timeline) = streaming {
        stream(tcp, &state, timeline, request.target).await;
        return;
    }
    let rest = if request.path == "/api/v1/timelines/public" {
        Some(if request.param("local").as_deref() == Some("true") {
            Timeline::Local
        } else {
            Timeline::Public
        })
    } else {
        request
            .path
            .strip_prefix("/api/v1/timelines/tag/")
            .map(|tag| Timeline::Hashtag(crate::net::decode_query_value(tag)))
    };
    let _ = match rest {
        Some(timeline) => {
            state
                .lock()
                .unwrap()
                .rest_requests
                .push(request.target.clone());
            let (body, link) = timeline_page(&state, &timeline, &request);
            respond(&mut tcp, "200 OK", &body, link).await
        }
        None => {
            let body = r#"{"error":"Record not found"}"#;
            respond(&mut tcp, "404 Not Found", body, None).await
        }
    };
}

/// A whole JSON answer; the connection closes after it.
async fn respond(
    tcp: &mut TcpStream,
    status: &str,
    body: &str,
    link: Option<String>,
) -> std::io::Result<()> {
    let link = link.map(|l| format!("Link: {l}\r\n")).unwrap_or_default();
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n{link}Connection: close\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await?;
    tcp.write_all(body.as_bytes()).await?;
    tcp.shutdown().await
}

/// A page of a REST timeline, as Mastodon pages: newest first, `limit` at most (20 by
/// default, 40 at most), `min_id` paging forward from an id, `max_id` and `since_id`
/// bounding. Returns the JSON array and the `Link` header.
fn timeline_page(
    state: &Arc<Mutex<ServerState>>,
    timeline: &Timeline,
    request: &RequestHead,
) -> (String, Option<String>) {
    let limit = request
        .param("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(20)
        .clamp(1, 40);
    let bound = |name: &str| {
        request
            .param(name)
            .filter(|v| !v.is_empty())
            .map(|v| StatusId::new(&v))
    };
    let (min_id, since_id, max_id) = (bound("min_id"), bound("since_id"), bound("max_id"));
    let mut state = state.lock().unwrap();
    let mut matching: Vec<PostedStatus> = state
        .posted
        .iter()
        .filter(|s| s.on(timeline))
        .filter(|s| min_id.as_ref().is_none_or(|m| &s.id > m))
        .filter(|s| since_id.as_ref().is_none_or(|m| &s.id > m))
        .filter(|s| max_id.as_ref().is_none_or(|m| &s.id < m))
        .cloned()
        .collect();
    matching.sort_by(|a, b| a.id.cmp(&b.id));
    // `min_id` takes the oldest after it, otherwise the newest.
    let page: Vec<PostedStatus> = if min_id.is_some() {
        matching.into_iter().take(limit).rev().collect()
    } else {
        matching.into_iter().rev().take(limit).collect()
    };
    state.rest_statuses_served += page.len();
    drop(state);
    let link = match (page.first(), page.last()) {
        (Some(newest), Some(oldest)) => {
            let fixed = match timeline {
                Timeline::Local => "local=true&",
                _ => "",
            };
            let base = format!(
                "http://{}{}?{fixed}limit={limit}",
                request.host, request.path
            );
            Some(format!(
                "<{base}&max_id={}>; rel=\"next\", <{base}&min_id={}>; rel=\"prev\"",
                encode_query_value(oldest.id.as_str()),
                encode_query_value(newest.id.as_str())
            ))
        }
        _ => None,
    };
    let body = format!(
        "[{}]",
        page.iter()
            .map(|s| s.json.as_str())
            .collect::<Vec<_>>()
            .join(",")
    );
    (body, link)
}

/// The event stream of one connection: a chunked response that never ends by itself.
async fn stream(
    mut tcp: TcpStream,
    state: &Arc<Mutex<ServerState>>,
    timeline: Timeline,
    request: String,
) {
    let index = {
        let mut s = state.lock().unwrap();
        s.connections.push(MastodonConnection {
            request,
            sent: 0,
            complete: false,
            cut: false,
        });
        s.connections.len() - 1
    };
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\nTransfer-Encoding: chunked\r\n\r\n";
    if tcp.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    // What Mastodon's streaming server sends first.
    let mut next = Next::Send(":)\n\n".into());
    loop {
        let chunk = match next {
            Next::Send(text) => text,
            // Everything before was written; the connection closes before the response's
            // last chunk, as when a network or a server fails.
            Next::Cut => return,
            Next::Idle(wait) => {
                tokio::time::sleep(wait).await;
                ":thump\n\n".into()
            }
        };
        let framed = format!("{:x}\r\n{chunk}\r\n", chunk.len());
        if tcp.write_all(framed.as_bytes()).await.is_err() {
            // The client left.
            return;
        }
        next = next_for(state, index, &timeline);
    }
}

enum Next {
    Send(String),
    Cut,
    Idle(Duration),
}

/// What connection `index` sends next, with the script advanced past it.
fn next_for(state: &Arc<Mutex<ServerState>>, index: usize, timeline: &Timeline) -> Next {
    let mut s = state.lock().unwrap();
    loop {
        let sent = s.connections[index].sent;
        let has_more = s.next_event < s.script.len();
        if has_more && s.drop_after.get(index) == Some(&sent) {
            s.connections[index].cut = true;
            let missed = s
                .posted_while_disconnected
                .get(index)
                .cloned()
                .unwrap_or_default();
            s.posted.extend(missed.iter().map(|m| PostedStatus::new(m)));
            return Next::Cut;
        }
        let Some(event) = s.script.get(s.next_event).cloned() else {
            s.connections[index].complete = true;
            return Next::Idle(s.idle_heartbeat);
        };
        s.next_event += 1;
        let (name, data) = match event {
            StreamEvent::Heartbeat => return Next::Send(":thump\n\n".into()),
            StreamEvent::Update(json) => {
                let status = PostedStatus::new(&json);
                let on_timeline = status.on(timeline);
                s.posted.push(status);
                if !on_timeline {
                    continue;
                }
                ("update", json)
            }
            StreamEvent::StatusUpdate(json) => {
                if !PostedStatus::new(&json).on(timeline) {
                    continue;
                }
                ("status.update", json)
            }
            StreamEvent::Delete(id) => ("delete", id),
        };
        s.connections[index].sent += 1;
        return Next::Send(format!("event: {name}\ndata: {data}\n\n"));
    }
}
