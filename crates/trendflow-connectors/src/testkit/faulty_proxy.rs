//! An HTTP/1.1 proxy on 127.0.0.1 that fails some requests on purpose, the way S3 and the
//! network do: `503 SlowDown`, `500 InternalError`, or a connection closed without an answer
//! (a reset). Requests that are let through are forwarded to the upstream server unchanged,
//! one request per connection (`Connection: close` both ways), so every request is counted
//! and each can be failed on its own.
//!
//! Faults follow a fixed cycle over the requests (request i fails if `i % every == 0`), so a
//! run is reproducible. Only what the proxy needs of HTTP is parsed: the request head and a
//! `Content-Length` body; the answer is relayed until the upstream closes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Which requests fail, and how.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Every n-th request gets `503 SlowDown` (0: never).
    pub slow_down_every: u64,
    /// Every n-th request gets `500 InternalError` (0: never).
    pub internal_error_every: u64,
    /// Every n-th request has its connection closed before any answer (0: never).
    pub reset_every: u64,
}

#[derive(Debug, Default)]
pub struct FaultCounts {
    pub requests: AtomicU64,
    pub slow_downs: AtomicU64,
    pub internal_errors: AtomicU64,
    pub resets: AtomicU64,
}

impl FaultCounts {
    pub fn injected(&self) -> u64 {
        self.slow_downs.load(Ordering::Relaxed)
            + self.internal_errors.load(Ordering::Relaxed)
            + self.resets.load(Ordering::Relaxed)
    }
}

pub struct FaultyProxy {
    port: u16,
    pub counts: Arc<FaultCounts>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Does request `i` (from 1) take the fault that comes every `every` requests?
fn hits(every: u64, i: u64) -> bool {
    every > 0 && i.is_multiple_of(every)
}

impl FaultyProxy {
    /// A proxy on a free 127.0.0.1 port in front of `upstream` (`127.0.0.1:PORT`).
    pub fn start(upstream: String, faults: Faults) -> Result<FaultyProxy, String> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let counts = Arc::new(FaultCounts::default());
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let c = counts.clone();
        let thread = std::thread::Builder::new()
            .name("faulty-proxy".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime");
                rt.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("listener");
                    loop {
                        tokio::select! {
                            accepted = listener.accept() => {
                                let Ok((client, _)) = accepted else { continue };
                                let (c, upstream) = (c.clone(), upstream.clone());
                                tokio::spawn(async move {
                                    let _ = serve(client, &upstream, faults, &c).await;
                                });
                            }
                            _ = &mut stop_rx => break,
                        }
                    }
                });
            })
            .map_err(|e| e.to_string())?;
        Ok(FaultyProxy {
            port,
            counts,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The request head (up to the blank line) and what was read after it.
async fn read_head(client: &mut TcpStream) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(i + 4);
            return Ok(Some((buf, rest)));
        }
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The head with its `Connection` header replaced by `Connection: close`.
fn closing(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        if line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

fn content_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .split("\r\n")
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0)
}

async fn serve(
    mut client: TcpStream,
    upstream: &str,
    faults: Faults,
    counts: &FaultCounts,
) -> std::io::Result<()> {
    let Some((head, mut body)) = read_head(&mut client).await? else {
        return Ok(());
    };
    let length = content_length(&head);
    while body.len() < length {
        let mut chunk = vec![0u8; (length - body.len()).min(1 << 16)];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let i = counts.requests.fetch_add(1, Ordering::Relaxed) + 1;
    if hits(faults.reset_every, i) {
        counts.resets.fetch_add(1, Ordering::Relaxed);
        // Closed with no answer: the client sees the connection end mid-exchange.
        return Ok(());
    }
    let canned = if hits(faults.slow_down_every, i) {
        counts.slow_downs.fetch_add(1, Ordering::Relaxed);
        Some((
            "503 Slow Down",
            "SlowDown",
            "Please reduce your request rate.",
        ))
    } else if hits(faults.internal_error_every, i) {
        counts.internal_errors.fetch_add(1, Ordering::Relaxed);
        Some((
            "500 Internal Server Error",
            "InternalError",
            "We encountered an internal error. Please try again.",
        ))
    } else {
        None
    };
    if let Some((status, code, message)) = canned {
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
        );
        let answer = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
            xml.len()
        );
        client.write_all(answer.as_bytes()).await?;
        return client.shutdown().await;
    }
    let mut server = TcpStream::connect(upstream).await?;
    server.write_all(&closing(&head)).await?;
    server.write_all(&body).await?;
    // The answer: its head gets `Connection: close` too, then the rest is relayed as is.
    let Some((answer_head, rest)) = read_head(&mut server).await? else {
        return Ok(());
    };
    client.write_all(&closing(&answer_head)).await?;
    client.write_all(&rest).await?;
    tokio::io::copy(&mut server, &mut client).await?;
    client.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_connection_headers() {
        let head = b"GET /b?list-type=2 HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n";
        assert_eq!(
            String::from_utf8(closing(head)).unwrap(),
            "GET /b?list-type=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(
            content_length(b"PUT / HTTP/1.1\r\ncontent-length: 12\r\n\r\n"),
            12
        );
    }
}
