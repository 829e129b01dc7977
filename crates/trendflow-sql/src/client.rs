//! A minimal HTTP/1.1 client for `trendflow sql`: the endpoint is local, one request, one
//! response, no need for a full HTTP stack.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `sql` to a running pipeline; returns the status code and the body. `query` adds
/// parameters (`rows=10&truncate=false`).
pub async fn post_sql(
    addr: &str,
    sql: &str,
    format: &str,
    query: &str,
) -> std::io::Result<(u16, String)> {
    let extra = if query.is_empty() {
        String::new()
    } else {
        format!("&{query}")
    };
    request(
        addr,
        "POST",
        &format!("/sql?format={format}{extra}"),
        sql.as_bytes(),
    )
    .await
}

/// One HTTP request; `addr` is host:port.
pub async fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    // An endpoint protected by a token (`api.token_env`) gets it from the environment.
    let auth = std::env::var("TRENDFLOW_API_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Ok((
        status,
        if chunked {
            dechunk(body)
        } else {
            body.to_string()
        },
    ))
}

/// A GET whose body is handed to `on_body` with the status code, piece by piece as it arrives
/// (a streamed response, such as `/tap`). Returns the status code.
pub async fn stream_get(
    addr: &str,
    path: &str,
    mut on_body: impl FnMut(u16, &[u8]),
) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(addr).await?;
    let auth = std::env::var("TRENDFLOW_API_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await?;
    let mut buf = Vec::new();
    let mut piece = [0u8; 16 * 1024];
    // The head.
    let body_start = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut piece).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the endpoint closed the connection before answering",
            ));
        }
        buf.extend_from_slice(&piece[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..body_start]).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head.contains("transfer-encoding: chunked");
    let mut pending: Vec<u8> = buf[body_start..].to_vec();
    loop {
        if chunked {
            // Hand over every complete chunk; stop at the last (size 0).
            while let Some(eol) = pending.windows(2).position(|w| w == b"\r\n") {
                let size = std::str::from_utf8(&pending[..eol])
                    .ok()
                    .and_then(|t| usize::from_str_radix(t.trim(), 16).ok());
                let Some(size) = size else {
                    return Ok(status);
                };
                if size == 0 {
                    return Ok(status);
                }
                if pending.len() < eol + 2 + size + 2 {
                    break;
                }
                on_body(status, &pending[eol + 2..eol + 2 + size]);
                pending.drain(..eol + 2 + size + 2);
            }
        } else if !pending.is_empty() {
            on_body(status, &pending);
            pending.clear();
        }
        let n = stream.read(&mut piece).await?;
        if n == 0 {
            return Ok(status);
        }
        pending.extend_from_slice(&piece[..n]);
    }
}

/// Escapes what a path segment or query value cannot hold as is.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}
