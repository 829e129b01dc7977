//! Connections to a server named by a URL: TCP, then TLS (rustls with the system's CA
//! certificates) for `https://` and `wss://`.
//!
//! TLS is connected here rather than by the WebSocket or HTTP library so that this crate
//! uses exactly the rustls build (ring provider) the rest of the workspace uses.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// How long opening a connection (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Where a URL points: enough to open a connection and send a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, at least "/".
    pub path_and_query: String,
}

impl Endpoint {
    /// Parses `scheme://host[:port]/path?query`; `https`/`wss` mean TLS, `http`/`ws` not.
    pub(crate) fn parse(url: &str) -> Result<Endpoint, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("https" | "wss") => true,
            Some("http" | "ws") => false,
            Some(other) => return Err(format!("`{url}`: unsupported scheme `{other}`")),
            None => return Err(format!("`{url}` has no scheme (https://, wss://...)")),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("`{url}` names no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Ok(Endpoint {
            tls,
            port: uri.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            host,
            path_and_query: uri
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
        })
    }

    /// `host` or `host:port` when the port is not the scheme's default: the `Host` header.
    pub(crate) fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.tls { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// The URL of `path_and_query` on this server, with the given schemes for plain and TLS.
    pub(crate) fn url(&self, plain: &str, secure: &str, path_and_query: &str) -> String {
        let scheme = if self.tls { secure } else { plain };
        format!("{scheme}://{}{path_and_query}", self.authority())
    }
}

/// A TCP connection, with TLS or without.
pub(crate) enum Connection {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Opens a connection to `endpoint` (TLS when its scheme says so), announcing HTTP/1.1 by
/// ALPN: both WebSocket upgrades and server-sent events are HTTP/1.1 requests.
pub(crate) async fn connect(endpoint: &Endpoint) -> io::Result<Connection> {
    let open = async {
        let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port)).await?;
        tcp.set_nodelay(true)?;
        if !endpoint.tls {
            return Ok(Connection::Plain(tcp));
        }
        let config = tls_config().map_err(io::Error::other)?;
        let name = rustls::pki_types::ServerName::try_from(endpoint.host.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await?;
        Ok(Connection::Tls(Box::new(tls)))
    };
    tokio::time::timeout(CONNECT_TIMEOUT, open)
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "connecting to {} took longer than {CONNECT_TIMEOUT:?}",
                    endpoint.authority()
                ),
            )
        })?
}

/// One client configuration for the process: loading the system's certificates takes a
/// while and they do not change while it runs.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                // A certificate rustls cannot use is skipped, as browsers do.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(format!(
                    "no CA certificates found on this system ({} errors loading them): install ca-certificates",
                    native.errors.len()
                ));
            }
            let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(Arc::new(config))
        })
        .clone()
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_flush(cx),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// `value` percent-encoded for a query string: everything but RFC 3986's unreserved
/// characters, so collection patterns (`app.bsky.*`), DIDs (`did:plc:...`) and hashtags pass
/// through any server's query parser unchanged.
pub(crate) fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes and `+` (a space in query strings); invalid escapes stay as written.
pub(crate) fn decode_query_value(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match (hex_digit(bytes[i + 1]), hex_digit(bytes[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push(hi << 4 | lo);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_digit(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// The `name=value` pairs of a query string (without `?`), decoded, in order.
pub(crate) fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode_query_value(k), decode_query_value(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_host_port_and_path() {
        let e = Endpoint::parse("wss://jetstream2.us-east.bsky.network/subscribe").unwrap();
        assert_eq!(
            (e.tls, e.host.as_str(), e.port, e.path_and_query.as_str()),
            (true, "jetstream2.us-east.bsky.network", 443, "/subscribe")
        );
        assert_eq!(e.authority(), "jetstream2.us-east.bsky.network");
        let e = Endpoint::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (e.tls, e.port, e.path_and_query.as_str()),
            (false, 8080, "/")
        );
        assert_eq!(e.authority(), "127.0.0.1:8080");
        assert_eq!(
            e.url("http", "https", "/x?y=1"),
            "http://127.0.0.1:8080/x?y=1"
        );
        assert!(Endpoint::parse("ftp://example.org/").is_err());
        assert!(Endpoint::parse("example.org").is_err());
    }

    #[test]
    fn query_values_round_trip() {
        for v in ["app.bsky.*", "did:plc:abc", "rust lang", "é#&=+%"] {
            let encoded = encode_query_value(v);
            assert!(
                !encoded.contains(['&', '=', '#', ' ', '*', ':']),
                "{encoded}"
            );
            assert_eq!(decode_query_value(&encoded), v);
        }
        assert_eq!(
            query_pairs("a=1&b=x%2Ay&c&&d=%zz"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x*y".into()),
                ("c".into(), "".into()),
                ("d".into(), "%zz".into())
            ]
        );
    }
}
