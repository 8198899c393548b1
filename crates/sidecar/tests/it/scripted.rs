//! A scripted upstream behind the sidecar's [`Transport`] seam: each host answers from a script
//! of steps, and every request it receives is logged — the witness of what the attempt loop
//! did. With paused time, a test of deadlines and backoff runs in milliseconds.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use parking_lot::Mutex;
use plumb_sidecar::keys::Keys;
use plumb_sidecar::proxy::Proxy;
use plumb_sidecar::respond::BoxError;
use plumb_sidecar::table::{Policy, Table};
use plumb_sidecar::upstream::{Sent, Transport, UpstreamBody};
use plumb_telemetry::Metrics;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What a host does with one request.
#[derive(Clone, Debug)]
pub enum Step {
    /// Never answers.
    Hang,
    /// The connection is refused.
    Refused,
    /// A status, headers and a body.
    Status(u16, Vec<(&'static str, String)>, String),
    /// A 200 with this JSON.
    Json(Value),
    /// A 200 server-sent-event stream, piece by piece.
    Stream(Vec<Piece>),
    /// The same, its head after a wait.
    StreamAfter(Duration, Vec<Piece>),
    /// What the host does changes with time: each step from its time (since the script
    /// started) until the next one's.
    Timeline(Vec<(Duration, Step)>),
    /// This JSON, its head and body after a wait (an unstreamed answer being written).
    JsonAfter(Duration, Value),
}

/// A piece of a scripted stream.
#[derive(Clone, Debug)]
pub enum Piece {
    /// One event's text (`data: …` lines), blank line added.
    Event(String),
    /// Bytes as they are, no blank line added.
    Raw(String),
    /// A pause.
    Wait(Duration),
    /// The connection breaks.
    Cut,
}

/// One request the scripted upstream received.
#[derive(Clone, Debug)]
pub struct Received {
    /// The host it was sent to.
    pub host: String,
    /// When, from the script's start.
    pub at: Duration,
    /// Its JSON body.
    pub body: Value,
}

/// Hosts and their scripts; the last step of a script repeats.
pub struct Scripted {
    scripts: Mutex<HashMap<String, VecDeque<Step>>>,
    log: Mutex<Vec<Received>>,
    epoch: Instant,
}

impl Scripted {
    pub fn new(scripts: &[(&str, Vec<Step>)]) -> Arc<Scripted> {
        Arc::new(Scripted {
            scripts: Mutex::new(
                scripts
                    .iter()
                    .map(|(h, s)| ((*h).to_owned(), s.iter().cloned().collect()))
                    .collect(),
            ),
            log: Mutex::new(Vec::new()),
            epoch: Instant::now(),
        })
    }

    /// The hosts asked, in order.
    pub fn hosts(&self) -> Vec<String> {
        self.log.lock().iter().map(|r| r.host.clone()).collect()
    }

    /// When the script started (the origin of [`Received::at`]).
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Every request received.
    pub fn received(&self) -> Vec<Received> {
        self.log.lock().clone()
    }

    fn next(&self, host: &str) -> Step {
        let mut scripts = self.scripts.lock();
        let script = scripts
            .get_mut(host)
            .unwrap_or_else(|| panic!("no script for host {host}"));
        if script.len() > 1 {
            script.pop_front().unwrap()
        } else {
            script.front().cloned().unwrap_or(Step::Hang)
        }
    }
}

/// A body fed by a task, so that pauses and cuts happen in (paused) time.
struct ChannelBody(mpsc::Receiver<Result<Bytes, BoxError>>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.0.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }
}

fn full(s: String) -> UpstreamBody {
    BoxBody::new(Full::new(Bytes::from(s)).map_err(|never| match never {}))
}

impl Transport for Scripted {
    fn send(&self, req: Request<Full<Bytes>>, _connect: Duration) -> Sent<'_> {
        let host = req.uri().host().unwrap_or_default().to_owned();
        Box::pin(async move {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            self.log.lock().push(Received {
                host: host.clone(),
                at: self.epoch.elapsed(),
                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            });
            let mut step = self.next(&host);
            while let Step::Timeline(phases) = step {
                let now = self.epoch.elapsed();
                step = phases
                    .into_iter()
                    .rev()
                    .find(|(from, _)| *from <= now)
                    .map_or(Step::Hang, |(_, s)| s);
            }
            let step = match step {
                Step::StreamAfter(wait, pieces) => {
                    tokio::time::sleep(wait).await;
                    Step::Stream(pieces)
                }
                step => step,
            };
            let (status, content_type, headers, body) = match step {
                Step::Hang => std::future::pending().await,
                Step::Refused => {
                    return Err(BoxError::from(std::io::Error::new(
                        std::io::ErrorKind::ConnectionRefused,
                        "connection refused",
                    )));
                }
                Step::Status(code, headers, body) => {
                    (code, "application/json", headers, full(body))
                }
                Step::Json(v) => (200, "application/json", Vec::new(), full(v.to_string())),
                Step::JsonAfter(wait, v) => {
                    tokio::time::sleep(wait).await;
                    (200, "application/json", Vec::new(), full(v.to_string()))
                }
                Step::Stream(pieces) => {
                    let (tx, rx) = mpsc::channel(64);
                    tokio::spawn(async move {
                        for p in pieces {
                            match p {
                                Piece::Event(e) => {
                                    if tx.send(Ok(Bytes::from(format!("{e}\n\n")))).await.is_err() {
                                        return;
                                    }
                                }
                                Piece::Raw(r) => {
                                    if tx.send(Ok(Bytes::from(r))).await.is_err() {
                                        return;
                                    }
                                }
                                Piece::Wait(d) => tokio::time::sleep(d).await,
                                Piece::Cut => {
                                    let cut = std::io::Error::new(
                                        std::io::ErrorKind::ConnectionReset,
                                        "connection reset by peer",
                                    );
                                    let _ = tx.send(Err(BoxError::from(cut))).await;
                                    return;
                                }
                            }
                        }
                    });
                    (
                        200,
                        "text/event-stream",
                        Vec::new(),
                        BoxBody::new(ChannelBody(rx)),
                    )
                }
                Step::StreamAfter(..) => unreachable!("its wait was taken above"),
                Step::Timeline(_) => unreachable!("its phase was taken above"),
            };
            let mut resp = Response::builder()
                .status(status)
                .header("content-type", content_type);
            for (k, v) in headers {
                resp = resp.header(k, v);
            }
            Ok(resp.body(body).unwrap())
        })
    }
}

/// A proxy over the routes file with `transport` for its upstreams.
pub fn proxy(routes: &str, transport: Arc<Scripted>) -> Arc<Proxy> {
    let routes = plumb_policy::parse_routes_file(routes).unwrap();
    let keys = Keys::resolve_local(&routes, |name| Some(format!("key-of-{name}"))).unwrap();
    let metrics = Arc::new(Metrics::new());
    let table = Arc::new(Table::new());
    table.apply(
        Policy {
            routes,
            keys,
            version: "scripted".into(),
        },
        &metrics,
    );
    Arc::new(Proxy::new(table, transport, metrics))
}

/// What the client got.
pub struct Got {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Got {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// Sends an OpenAI chat request through the proxy and reads the whole answer.
pub async fn chat(proxy: &Arc<Proxy>, body: Value) -> Got {
    let req = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let resp = proxy.clone().handle(req).await;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Got {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// A chat completion answer.
pub fn completion(model: &str, text: &str) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    })
}

/// One streamed chunk of an OpenAI answer.
pub fn chunk(model: &str, text: &str) -> String {
    format!(
        "data: {}",
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
    )
}

/// The end of a streamed OpenAI answer.
pub fn stream_end(model: &str) -> Vec<Piece> {
    vec![
        Piece::Event(format!(
            "data: {}",
            json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        )),
        Piece::Event("data: [DONE]".to_owned()),
    ]
}

/// An OpenAI-style error body.
pub fn error(kind: &str, code: &str, message: &str) -> String {
    json!({"error": {"type": kind, "code": code, "message": message, "param": null}}).to_string()
}
