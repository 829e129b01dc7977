//! HTTP/1.1 GET requests over [`crate::net`] connections, with hyper's client connection
//! (chunked transfer decoding, keep-alive handling): one connection per request, which is
//! what a long-lived event stream needs, and costs little for the few REST pages a gap fill
//! reads.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::net::{self, Endpoint};

/// Sent with every request: servers' operators can see what is connecting.
pub(crate) const USER_AGENT: &str = concat!("trendflow/", env!("CARGO_PKG_VERSION"));

/// How long a server may take to answer a request (its status and headers), and to send a
/// whole REST page: a server that accepts connections and then says nothing must not hold
/// the source forever.
pub(crate) const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `GET path_and_query` to `endpoint` with `headers`; the answer's body streams from
/// the connection, which closes when the body is dropped.
pub(crate) async fn get(
    endpoint: &Endpoint,
    path_and_query: &str,
    headers: &[(HeaderName, HeaderValue)],
) -> Result<Response<Incoming>, String> {
    let connection = net::connect(endpoint)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", endpoint.authority()))?;
    let (mut sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(connection))
        .await
        .map_err(|e| format!("HTTP handshake with {}: {e}", endpoint.authority()))?;
    // The driver moves bytes for the request and its body; it ends with the connection.
    tokio::spawn(async move {
        let _ = driver.await;
    });
    let mut request = Request::get(path_and_query)
        .header(header::HOST, endpoint.authority())
        .header(header::USER_AGENT, USER_AGENT);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("bad request {path_and_query}: {e}"))?;
    match tokio::time::timeout(ANSWER_TIMEOUT, sender.send_request(request)).await {
        Ok(answer) => {
            answer.map_err(|e| format!("GET {path_and_query} on {}: {e}", endpoint.authority()))
        }
        Err(_) => Err(format!(
            "GET {path_and_query} on {}: no answer within {ANSWER_TIMEOUT:?}",
            endpoint.authority()
        )),
    }
}

/// The whole body of `response`, refused past `limit` bytes.
pub(crate) async fn read_body(response: Response<Incoming>, limit: usize) -> Result<Bytes, String> {
    let body = Limited::new(response.into_body(), limit).collect();
    match tokio::time::timeout(ANSWER_TIMEOUT, body).await {
        Ok(body) => body
            .map(|b| b.to_bytes())
            .map_err(|e| format!("reading the answer: {e}")),
        Err(_) => Err(format!("the answer took longer than {ANSWER_TIMEOUT:?}")),
    }
}

/// Where a redirect's `Location` (an absolute URL or an absolute path) points, from `base`.
pub(crate) fn redirect_target(base: &Endpoint, location: &str) -> Result<Endpoint, String> {
    if location.starts_with('/') {
        Ok(Endpoint {
            path_and_query: location.to_string(),
            ..base.clone()
        })
    } else {
        Endpoint::parse(location)
    }
}

/// An answer's status line and the start of its body, for error messages.
pub(crate) async fn describe_failure(response: Response<Incoming>) -> String {
    let status = response.status();
    let body = read_body(response, 64 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    let excerpt: String = text.trim().chars().take(200).collect();
    if excerpt.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {excerpt}")
    }
}

/// Statuses that say the request itself is wrong (bad parameters, a missing or refused
/// token, no such endpoint): repeating it will not help.
pub(crate) fn is_permanent_failure(status: http::StatusCode) -> bool {
    matches!(status.as_u16(), 400 | 401 | 403 | 404 | 405 | 410)
}
