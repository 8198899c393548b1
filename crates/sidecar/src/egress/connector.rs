//! The connector under the TLS layer: straight to the upstream, or through an HTTP proxy — a
//! `CONNECT` tunnel for `https://` upstreams (TLS to the provider inside it, so the proxy sees
//! neither keys nor prompts), or a connection to the proxy marked as proxied, so hyper sends
//! requests to `http://` upstreams in absolute form.
//!
//! The `CONNECT` handshake is written here rather than taken from hyper-util's `Tunnel`: that
//! one neither exposes its error type nor keeps the proxy's status, and a failure must say
//! which proxy answered what (`407`, `403`, `502`) to be fixed by whoever reads it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tower_service::Service;

use super::Hop;
use crate::respond::BoxError;

/// Longest answer to `CONNECT` read.
const MAX_CONNECT_ANSWER: usize = 8 * 1024;

/// Opens connections for one [`Hop`]: direct, or through its proxy.
#[derive(Clone)]
pub struct EgressConnector {
    http: HttpConnector,
    hop: Hop,
    /// The whole connect phase through a proxy (TCP and `CONNECT`) must end within this.
    connect: Duration,
}

/// A connection opened by [`EgressConnector`].
pub struct EgressStream {
    io: TokioIo<TcpStream>,
    /// A connection to an HTTP proxy that forwards requests (not a tunnel).
    proxied: bool,
}

/// The proxy could not be reached, or would not carry the request. Its message names the proxy
/// (`host:port`, never credentials) and says what happened; it has no `source`, so it is the
/// message a failure shows.
#[derive(Debug, thiserror::Error)]
#[error("proxy {proxy}: {what}")]
pub struct ProxyError {
    /// `host:port`.
    pub proxy: String,
    /// What happened.
    pub what: String,
}

impl EgressConnector {
    /// A connector for `hop` over `http` (its own settings: nodelay, keepalive, TCP connect
    /// timeout), whose connect phase through a proxy ends within `connect`.
    pub fn new(http: HttpConnector, hop: Hop, connect: Duration) -> EgressConnector {
        EgressConnector { http, hop, connect }
    }
}

impl Service<Uri> for EgressConnector {
    type Response = EgressStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<EgressStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let mut http = self.http.clone();
        let connect = self.connect;
        match self.hop.clone() {
            Hop::Direct => Box::pin(async move {
                let io = http.call(dst).await?;
                Ok(EgressStream { io, proxied: false })
            }),
            Hop::Proxy(proxy) => Box::pin(async move {
                let name = proxy.name().to_owned();
                let fail = |what: String| -> BoxError {
                    Box::new(ProxyError {
                        proxy: name.clone(),
                        what,
                    })
                };
                let tunnel = dst.scheme_str() == Some("https");
                let open = async {
                    let io = http.call(proxy.uri().clone()).await.map_err(|e| {
                        fail(format!(
                            "cannot connect: {}",
                            crate::classify::root_cause(&e)
                        ))
                    })?;
                    if !tunnel {
                        return Ok(EgressStream { io, proxied: true });
                    }
                    let host = dst.host().unwrap_or_default();
                    let port = dst.port_u16().unwrap_or(443);
                    let auth = proxy.authorization().map(|v| v.as_bytes());
                    let tcp = handshake(io.into_inner(), host, port, auth)
                        .await
                        .map_err(fail)?;
                    Ok(EgressStream {
                        io: TokioIo::new(tcp),
                        proxied: false,
                    })
                };
                match tokio::time::timeout(connect, open).await {
                    Ok(r) => r,
                    Err(_) => Err(fail(format!(
                        "no {} within the connect deadline of {}",
                        if tunnel { "tunnel" } else { "connection" },
                        humantime::format_duration(connect)
                    ))),
                }
            }),
        }
    }
}

/// Asks the proxy on `tcp` for a tunnel to `host:port` and reads its answer: the stream, ready
/// for TLS to the upstream, or what went wrong.
async fn handshake(
    mut tcp: TcpStream,
    host: &str,
    port: u16,
    auth: Option<&[u8]>,
) -> Result<TcpStream, String> {
    // An IPv6 address goes in brackets.
    let target = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut ask = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n").into_bytes();
    if let Some(auth) = auth {
        ask.extend_from_slice(b"Proxy-Authorization: ");
        ask.extend_from_slice(auth);
        ask.extend_from_slice(b"\r\n");
    }
    ask.extend_from_slice(b"\r\n");
    tcp.write_all(&ask)
        .await
        .map_err(|e| format!("the connection failed while asking for a tunnel: {e}"))?;
    let mut answer = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let end = loop {
        if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if answer.len() >= MAX_CONNECT_ANSWER {
            return Err(format!(
                "its answer to CONNECT is over {MAX_CONNECT_ANSWER} bytes"
            ));
        }
        let n = tcp
            .read(&mut chunk)
            .await
            .map_err(|e| format!("the connection failed during CONNECT: {e}"))?;
        if n == 0 {
            return Err(format!(
                "closed the connection without answering CONNECT to {target}"
            ));
        }
        answer.extend_from_slice(&chunk[..n]);
    };
    let (status, reason) = status_line(&answer)
        .ok_or_else(|| "answered CONNECT with something that is not HTTP".to_owned())?;
    match status {
        200..=299 if answer.len() == end => Ok(tcp),
        200..=299 => Err("sent data before the tunnel was used".to_owned()),
        407 => Err(format!(
            "answered CONNECT to {target} with 407 {reason} (the proxy wants credentials: none or wrong ones were sent)"
        )),
        _ => Err(format!(
            "answered CONNECT to {target} with {status} {reason}"
        )),
    }
}

/// The status and (printable, bounded) reason of `HTTP/1.x NNN reason`.
fn status_line(answer: &[u8]) -> Option<(u16, String)> {
    let line = answer.split(|b| *b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let rest = line.strip_prefix("HTTP/1.")?.get(1..)?.strip_prefix(' ')?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    let code: u16 = code.parse().ok().filter(|c| (100..600).contains(c))?;
    let reason: String = reason
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(64)
        .collect();
    Some((code, reason))
}

impl Connection for EgressStream {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.proxied)
    }
}

impl Read for EgressStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl Write for EgressStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    /// A proxy on loopback that reads one `CONNECT` and answers `answer`; returns what it read.
    async fn proxy_answering(answer: &'static [u8]) -> (u16, tokio::task::JoinHandle<String>) {
        let l = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let port = l.local_addr().unwrap_or_else(|e| panic!("{e}")).port();
        let task = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap_or_else(|e| panic!("{e}"));
            let mut got = Vec::new();
            let mut chunk = [0u8; 512];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut chunk).await.unwrap_or_else(|e| panic!("{e}"));
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&chunk[..n]);
            }
            s.write_all(answer).await.unwrap_or_else(|e| panic!("{e}"));
            String::from_utf8_lossy(&got).into_owned()
        });
        (port, task)
    }

    async fn connect_through(
        answer: &'static [u8],
        auth: Option<&[u8]>,
    ) -> (Result<(), String>, String) {
        let (port, seen) = proxy_answering(answer).await;
        let tcp = TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let r = handshake(tcp, "api.example.com", 443, auth).await.map(drop);
        (r, seen.await.unwrap_or_else(|e| panic!("{e}")))
    }

    #[tokio::test]
    async fn a_200_opens_the_tunnel_and_credentials_go_in_proxy_authorization() {
        let (r, seen) = connect_through(
            b"HTTP/1.1 200 Connection established\r\n\r\n",
            Some(b"Basic dTpw"),
        )
        .await;
        assert_eq!(r, Ok(()));
        assert!(
            seen.starts_with("CONNECT api.example.com:443 HTTP/1.1\r\n"),
            "{seen}"
        );
        assert!(seen.contains("\r\nHost: api.example.com:443\r\n"), "{seen}");
        assert!(
            seen.contains("\r\nProxy-Authorization: Basic dTpw\r\n"),
            "{seen}"
        );
    }

    #[tokio::test]
    async fn refusals_say_which_status_the_proxy_answered() {
        let (r, seen) = connect_through(
            b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n",
            None,
        )
        .await;
        assert!(!seen.contains("Proxy-Authorization"), "{seen}");
        assert_eq!(
            r,
            Err("answered CONNECT to api.example.com:443 with 407 Proxy Authentication Required (the proxy wants credentials: none or wrong ones were sent)".to_owned())
        );
        let (r, _) = connect_through(b"HTTP/1.0 403 Forbidden\r\n\r\n", None).await;
        assert_eq!(
            r,
            Err("answered CONNECT to api.example.com:443 with 403 Forbidden".to_owned())
        );
        let (r, _) = connect_through(b"HTTP/1.1 502 Bad Gateway\r\n\r\n", None).await;
        assert_eq!(
            r,
            Err("answered CONNECT to api.example.com:443 with 502 Bad Gateway".to_owned())
        );
    }

    #[tokio::test]
    async fn a_proxy_that_hangs_up_or_speaks_garbage_is_a_failure() {
        let (r, _) = connect_through(b"", None).await;
        assert_eq!(
            r,
            Err(
                "closed the connection without answering CONNECT to api.example.com:443".to_owned()
            )
        );
        let (r, _) = connect_through(b"SSH-2.0-OpenSSH\r\n\r\n", None).await;
        assert_eq!(
            r,
            Err("answered CONNECT with something that is not HTTP".to_owned())
        );
    }

    #[test]
    fn status_lines_are_read_strictly() {
        assert_eq!(
            status_line(b"HTTP/1.1 200 OK\r\n"),
            Some((200, "OK".to_owned()))
        );
        assert_eq!(status_line(b"HTTP/1.0 502\r\n"), Some((502, String::new())));
        assert_eq!(status_line(b"HTTP/1.1 2000 OK\r\n"), None);
        assert_eq!(status_line(b"HTTP/2 200\r\n"), None);
    }
}
