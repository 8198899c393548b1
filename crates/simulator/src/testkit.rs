//! Helpers for tests that read the simulator's (or the sidecar's) streams: parse server-sent
//! events and collect the text they carry; and [`TestProxy`], an HTTP egress proxy to put
//! between a client and the simulator. Only built with the `test-util` feature.

use serde_json::Value;

/// One parsed server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sse {
    /// The `event:` name, if any.
    pub event: Option<String>,
    /// The `data:` payload.
    pub data: String,
}

impl Sse {
    /// The payload as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.data).ok()
    }
}

/// Splits a stream's text into events, as the SSE format reads them: CRLF or LF lines, one
/// optional space after the field's colon, several `data:` lines joined with newlines.
/// Comment-only blocks are left out; a final block without its blank line (a cut stream) is
/// kept.
pub fn parse_sse(text: &str) -> Vec<Sse> {
    let text = text.replace("\r\n", "\n");
    text.split("\n\n")
        .filter(|b| {
            b.lines()
                .any(|l| l.starts_with("data:") || l.starts_with("event:"))
        })
        .map(|block| {
            let mut event = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    event = Some(e.trim().to_owned());
                } else if let Some(d) = line.strip_prefix("data:") {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(d.strip_prefix(' ').unwrap_or(d));
                }
            }
            Sse { event, data }
        })
        .collect()
}

/// Reads a streamed body to its end, keeping what arrived before an error.
pub async fn read_stream(mut resp: reqwest::Response) -> (String, Option<reqwest::Error>) {
    let mut out = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => out.extend_from_slice(&c),
            Ok(None) => return (String::from_utf8_lossy(&out).into_owned(), None),
            Err(e) => return (String::from_utf8_lossy(&out).into_owned(), Some(e)),
        }
    }
}

/// The text an OpenAI stream carried.
pub fn openai_stream_text(events: &[Sse]) -> String {
    events
        .iter()
        .filter_map(Sse::json)
        .filter_map(|v| {
            v.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect()
}

/// The text an Anthropic stream carried.
pub fn anthropic_stream_text(events: &[Sse]) -> String {
    events
        .iter()
        .filter_map(Sse::json)
        .filter_map(|v| {
            v.pointer("/delta/text")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect()
}

/// What the test proxy was asked: the request line (`CONNECT host:port HTTP/1.1`, or an
/// absolute-form request line) and the `Proxy-Authorization` it carried.
#[derive(Clone, Debug)]
pub struct Proxied {
    /// The request line.
    pub line: String,
    /// Its `Proxy-Authorization`, if any.
    pub auth: Option<String>,
}

/// A small HTTP proxy on loopback (port 0): `CONNECT` tunnels and absolute-form forwarding,
/// recording every request it was asked to carry. With `require`, a request without exactly
/// that `Proxy-Authorization` gets 407; with `refuse`, every request gets that status.
pub struct TestProxy {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    seen: std::sync::Arc<parking_lot::Mutex<Vec<Proxied>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestProxy {
    /// Starts it on a free loopback port.
    pub async fn start(require: Option<String>, refuse: Option<u16>) -> std::io::Result<TestProxy> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let (log, require) = (log.clone(), require.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match client.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head).into_owned();
                    let line = text.lines().next().unwrap_or_default().to_owned();
                    let auth = text
                        .lines()
                        .find_map(|l| {
                            l.split_once(':')
                                .filter(|(k, _)| k.eq_ignore_ascii_case("proxy-authorization"))
                        })
                        .map(|(_, v)| v.trim().to_owned());
                    log.lock().push(Proxied {
                        line: line.clone(),
                        auth: auth.clone(),
                    });
                    let status = match (refuse, &require) {
                        (Some(s), _) => Some(s),
                        (None, Some(want)) if auth.as_ref() != Some(want) => Some(407),
                        (None, _) => None,
                    };
                    if let Some(s) = status {
                        let answer = format!(
                            "HTTP/1.1 {s} Refused\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        );
                        let _ = client.write_all(answer.as_bytes()).await;
                        return;
                    }
                    let mut words = line.split_whitespace();
                    let (method, target) = (
                        words.next().unwrap_or_default(),
                        words.next().unwrap_or_default(),
                    );
                    let upstream_addr = if method == "CONNECT" {
                        target.to_owned()
                    } else {
                        // http://host:port/path
                        let rest = target.trim_start_matches("http://");
                        rest.split('/').next().unwrap_or_default().to_owned()
                    };
                    let Ok(mut upstream) = tokio::net::TcpStream::connect(&upstream_addr).await
                    else {
                        let _ = client
                            .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                            .await;
                        return;
                    };
                    if method == "CONNECT" {
                        let _ = client
                            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                            .await;
                    } else if upstream.write_all(&head).await.is_err() {
                        return;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                });
            }
        });
        Ok(TestProxy { addr, seen, task })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What it was asked so far (on a kept-alive forwarding connection, the first request).
    pub fn seen(&self) -> Vec<Proxied> {
        self.seen.lock().clone()
    }
}
