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
