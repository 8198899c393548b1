//! The control stream's wire: gRPC framing written here, so that what the operator sends is
//! encoded once and shared by every stream that sends it, and an idle stream holds no buffer.
//!
//! A namespace's snapshot and knowledge go to each of its sidecars. tonic's generated service
//! encodes every message on every stream, so one namespace of 10,000 sidecars paid 10,000
//! clones and encodings of each push (BENCHMARKS.md, "Control plane"). Here the one method is
//! served by hand: outgoing messages are encoded and framed once ([`Encoded`]: the gRPC prefix
//! and the message, the bytes every stream of the namespace sends as they are); [`Encodings`]
//! keeps, per namespace, the snapshot and the knowledge last sent, keyed by the very `Arc` the
//! namespace's watch channel published. Incoming messages are decoded from the request body's
//! own bytes ([`Inbound`]).
//!
//! tonic's server codec kept, for each stream's life, an encode buffer and state of ~3.7 KiB
//! and a decode buffer the size of the largest message received (~4 KiB for a sidecar's
//! reports): at 1,000 sidecars, ~7.7 MB of the operator's memory (BENCHMARKS.md, "Control
//! plane"). What this module keeps per stream is the stream's state: no buffer while idle.
//!
//! ```text
//! request body ─▶ Inbound::message ─▶ the session ─▶ mpsc ─▶ Replies ─▶ response body
//!   DATA frames     prefix + message    (grpc::Session)        Encoded: one DATA frame each,
//!                   decoded in place                            trailers: grpc-status at the end
//! ```

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use http_body::Frame;
use http_body_util::BodyExt as _;
use parking_lot::Mutex;
use plumb_proto::v1::{self, operator_message};
use prost::Message as _;
use tokio::sync::mpsc;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, StdError, http};
use tonic::{Code, Status};

use super::{Outgoing, PolicyServer};

/// The gRPC message prefix: a compression flag and the message's length (big-endian u32).
const PREFIX: usize = 5;

/// An `OperatorMessage`, encoded and framed for gRPC once: the prefix (uncompressed, its
/// length) and the message, sent as they are by every stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Encoded(Bytes);

impl Encoded {
    /// Encodes `m` once.
    pub fn of(m: &v1::OperatorMessage) -> Encoded {
        let len = m.encoded_len();
        let mut framed = BytesMut::with_capacity(PREFIX + len);
        framed.put_u8(0);
        framed.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
        m.encode_raw(&mut framed);
        Encoded(framed.freeze())
    }

    /// A message of this kind.
    pub fn kind(kind: operator_message::Kind) -> Encoded {
        Encoded::of(&v1::OperatorMessage { kind: Some(kind) })
    }

    /// The message's length, without the prefix.
    fn message_len(&self) -> usize {
        self.0.len().saturating_sub(PREFIX)
    }
}

/// The last snapshot and knowledge encoded for each namespace.
#[derive(Default)]
pub struct Encodings {
    namespaces: Mutex<HashMap<String, Latest>>,
}

#[derive(Default)]
struct Latest {
    snapshot: Option<(Arc<v1::Snapshot>, Encoded)>,
    knowledge: Option<(Arc<v1::Knowledge>, Encoded)>,
}

impl Encodings {
    /// The namespace's snapshot as sent: encoded by the first stream that sends it.
    pub fn snapshot(&self, namespace: &str, s: &Arc<v1::Snapshot>) -> Encoded {
        self.shared(
            namespace,
            s,
            |l| &mut l.snapshot,
            || operator_message::Kind::Snapshot((**s).clone()),
        )
    }

    /// The namespace's knowledge as sent.
    pub fn knowledge(&self, namespace: &str, k: &Arc<v1::Knowledge>) -> Encoded {
        self.shared(
            namespace,
            k,
            |l| &mut l.knowledge,
            || operator_message::Kind::Knowledge((**k).clone()),
        )
    }

    fn shared<T>(
        &self,
        namespace: &str,
        value: &Arc<T>,
        slot: impl Fn(&mut Latest) -> &mut Option<(Arc<T>, Encoded)>,
        kind: impl FnOnce() -> operator_message::Kind,
    ) -> Encoded {
        if let Some(latest) = self.namespaces.lock().get_mut(namespace)
            && let Some((of, bytes)) = slot(latest)
            && Arc::ptr_eq(of, value)
        {
            return bytes.clone();
        }
        // Encoded outside the lock: streams woken together may each encode a new value once,
        // and every later one shares the bytes.
        let bytes = Encoded::kind(kind());
        let mut map = self.namespaces.lock();
        let latest = map.entry(namespace.to_owned()).or_default();
        *slot(latest) = Some((value.clone(), bytes.clone()));
        bytes
    }

    /// Forgets a namespace no sidecar is connected from.
    pub fn forget(&self, namespace: &str) {
        self.namespaces.lock().remove(namespace);
    }
}

/// The policy service: the `Control` method of `plumb.policy.v1.PolicyService`, framed by
/// hand (see the module), within the message limits: sidecar messages up to
/// [`plumb_proto::MAX_SIDECAR_MESSAGE_BYTES`], snapshots up to
/// [`plumb_proto::MAX_OPERATOR_MESSAGE_BYTES`] — which
/// [`Policies::serve`](crate::policies::Policies::serve) keeps every snapshot under.
#[derive(Clone)]
pub struct ControlService {
    server: Arc<PolicyServer>,
}

impl ControlService {
    /// The service of `server`.
    pub fn new(server: PolicyServer) -> ControlService {
        ControlService {
            server: Arc::new(server),
        }
    }
}

/// The one method's path.
const CONTROL: &str = "/plumb.policy.v1.PolicyService/Control";

/// A request body's frames, their data as `Bytes` (no copy when the body's data is `Bytes`, as
/// hyper's is), errors as a `Status`.
type RequestBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Status>;

/// The sidecar's messages, read off the request body.
///
/// A message a DATA frame holds whole is decoded from the frame's own bytes; a message split
/// across frames is gathered into a buffer of its exact size, released once it is decoded.
/// Between messages nothing is held.
pub struct Inbound {
    body: RequestBody,
    /// Bytes received and not yet decoded (a frame, or what is left of it).
    buf: Bytes,
    /// A message split across frames, being gathered (then `buf` is empty).
    gathering: BytesMut,
}

/// What a prefix at the start of `bytes` says: the message's length, or why it is refused;
/// `None` when fewer than [`PREFIX`] bytes are there.
fn prefix(bytes: &[u8]) -> Option<Result<usize, Status>> {
    let (&flag, rest) = bytes.split_first()?;
    let len = rest.get(..4)?;
    let len =
        usize::try_from(u32::from_be_bytes([len[0], len[1], len[2], len[3]])).unwrap_or(usize::MAX);
    Some(if flag != 0 {
        Err(Status::unimplemented(
            "the control stream takes uncompressed messages only; do not compress them",
        ))
    } else if len > plumb_proto::MAX_SIDECAR_MESSAGE_BYTES {
        Err(Status::out_of_range(format!(
            "a message of {len} bytes, over the limit of {} bytes",
            plumb_proto::MAX_SIDECAR_MESSAGE_BYTES
        )))
    } else {
        Ok(len)
    })
}

impl Inbound {
    /// The messages of `body`.
    pub fn new<B>(body: B) -> Inbound
    where
        B: tonic::codegen::Body + Send + 'static,
        B::Error: Into<StdError> + Send + 'static,
    {
        let body = body
            .map_frame(|f| f.map_data(|mut d| d.copy_to_bytes(d.remaining())))
            .map_err(|e| Status::from_error(e.into()))
            .boxed_unsync();
        Inbound {
            body,
            buf: Bytes::new(),
            gathering: BytesMut::new(),
        }
    }

    /// The next message; `None` when the sidecar ended its side of the stream. A message over
    /// the limit is an `OutOfRange` status, as tonic's is.
    pub async fn message(&mut self) -> Result<Option<v1::SidecarMessage>, Status> {
        loop {
            if self.gathering.is_empty()
                && let Some(len) = prefix(&self.buf)
            {
                let len = len?;
                if self.buf.len() >= PREFIX + len {
                    let mut message = self.buf.split_to(PREFIX + len);
                    message.advance(PREFIX);
                    if self.buf.is_empty() {
                        // An empty slice still holds the frame's allocation.
                        self.buf = Bytes::new();
                    }
                    return v1::SidecarMessage::decode(message).map(Some).map_err(|e| {
                        Status::internal(format!("a message could not be decoded: {e}"))
                    });
                }
            }
            if let Some(Err(refused)) = prefix(&self.gathering) {
                return Err(refused);
            }
            match self.body.frame().await {
                None if self.buf.is_empty() && self.gathering.is_empty() => return Ok(None),
                None => {
                    return Err(Status::internal(
                        "the control stream ended inside a message",
                    ));
                }
                Some(Err(status)) => return Err(status),
                Some(Ok(frame)) => {
                    // Trailers from a client carry nothing the operator reads.
                    if let Ok(data) = frame.into_data() {
                        self.take(data);
                    }
                }
            }
        }
    }

    /// Adds a DATA frame's bytes to what is pending.
    fn take(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        if self.buf.is_empty() && self.gathering.is_empty() {
            self.buf = data;
            return;
        }
        if self.gathering.is_empty() {
            // A message continues in this frame: gather it, in a buffer of its size.
            let known = prefix(&self.buf)
                .and_then(Result::ok)
                .map(|len| PREFIX + len);
            let size = known.unwrap_or(0).max(self.buf.len() + data.len());
            self.gathering = BytesMut::with_capacity(size);
            self.gathering.extend_from_slice(&self.buf);
            self.buf = Bytes::new();
        }
        self.gathering.extend_from_slice(&data);
        if let Some(Ok(len)) = prefix(&self.gathering) {
            if self.gathering.len() >= PREFIX + len {
                // Whole (with, perhaps, the start of the next): decoded from `buf`.
                self.buf = std::mem::take(&mut self.gathering).freeze();
            } else {
                self.gathering.reserve(PREFIX + len - self.gathering.len());
            }
        }
    }
}

/// The response body: each message a DATA frame of its shared bytes, then the trailers with
/// the stream's status (OK when the session's channel closed without one).
struct Replies {
    rx: mpsc::Receiver<Outgoing>,
    done: bool,
}

/// Trailers saying `status`.
fn trailers(status: &Status) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    if status.add_header(&mut map).is_err() {
        map.insert(
            Status::GRPC_STATUS,
            http::HeaderValue::from(i32::from(status.code())),
        );
    }
    map
}

impl http_body::Body for Replies {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let status = match ready!(self.rx.poll_recv(cx)) {
            Some(Ok(m)) if m.message_len() <= plumb_proto::MAX_OPERATOR_MESSAGE_BYTES => {
                return Poll::Ready(Some(Ok(Frame::data(m.0))));
            }
            Some(Ok(m)) => Status::out_of_range(format!(
                "a message of {} bytes, over the control stream's limit of {} bytes",
                m.message_len(),
                plumb_proto::MAX_OPERATOR_MESSAGE_BYTES
            )),
            Some(Err(status)) => *status,
            None => Status::new(Code::Ok, ""),
        };
        self.done = true;
        Poll::Ready(Some(Ok(Frame::trailers(trailers(&status)))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

impl<B> Service<http::Request<B>> for ControlService
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != CONTROL {
            return Box::pin(
                async move { Ok(Status::unimplemented("no such method").into_http()) },
            );
        }
        let compressed = req
            .headers()
            .get("grpc-encoding")
            .is_some_and(|e| e.as_bytes() != b"identity");
        if compressed {
            return Box::pin(async move {
                Ok(Status::unimplemented(
                    "the control stream takes uncompressed messages only; do not compress them",
                )
                .into_http())
            });
        }
        let server = self.server.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            Ok(
                match server.control(&parts.headers, Inbound::new(body)).await {
                    Ok(rx) => {
                        let mut resp = http::Response::new(Body::new(Replies { rx, done: false }));
                        resp.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static("application/grpc"),
                        );
                        resp
                    }
                    Err(status) => status.into_http(),
                },
            )
        })
    }
}

impl tonic::server::NamedService for ControlService {
    const NAME: &'static str = "plumb.policy.v1.PolicyService";
}

#[cfg(test)]
mod tests {
    use plumb_proto::v1::sidecar_message;

    use super::*;

    /// `m` framed for gRPC.
    fn framed(m: &v1::SidecarMessage) -> Vec<u8> {
        let body = m.encode_to_vec();
        let mut f = vec![0];
        f.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
        f.extend_from_slice(&body);
        f
    }

    fn report(route: &str) -> v1::SidecarMessage {
        v1::SidecarMessage {
            kind: Some(sidecar_message::Kind::Report(v1::Report {
                targets: vec![v1::TargetReport {
                    route: route.to_owned(),
                    ..v1::TargetReport::default()
                }],
                ..v1::Report::default()
            })),
        }
    }

    /// An inbound stream whose body is these DATA frames.
    fn inbound(frames: Vec<Vec<u8>>) -> Inbound {
        let frames = frames
            .into_iter()
            .map(|f| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(f))));
        Inbound::new(http_body_util::StreamBody::new(futures_util::stream::iter(
            frames,
        )))
    }

    #[test]
    fn an_encoded_message_is_the_message_on_the_wire() {
        let m = v1::OperatorMessage {
            kind: Some(operator_message::Kind::Heartbeat(v1::Heartbeat {
                unix_ms: 42,
            })),
        };
        let e = Encoded::of(&m);
        let body = m.encode_to_vec();
        assert_eq!(e.0[0], 0, "uncompressed");
        assert_eq!(e.0[1..5], u32::try_from(body.len()).unwrap().to_be_bytes());
        assert_eq!(e.0[5..], body[..]);
        assert_eq!(e.message_len(), body.len());
    }

    #[tokio::test]
    async fn messages_are_read_whole_split_or_several_to_a_frame_and_nothing_is_held_after() {
        let (a, b, c) = (report("a"), report(&"b".repeat(3000)), report("c"));
        let (fa, fb, fc) = (framed(&a), framed(&b), framed(&c));
        // a whole; b split in three, its prefix split too; the end of b and all of c together.
        let mut tail = fb[2000..].to_vec();
        tail.extend_from_slice(&fc);
        let mut s = inbound(vec![fa, fb[..3].to_vec(), fb[3..2000].to_vec(), tail]);
        assert_eq!(s.message().await.unwrap(), Some(a));
        assert_eq!(s.buf.len() + s.gathering.capacity(), 0, "nothing held");
        assert_eq!(s.message().await.unwrap(), Some(b));
        assert_eq!(s.message().await.unwrap(), Some(c));
        assert_eq!(s.buf.len() + s.gathering.capacity(), 0, "nothing held");
        assert_eq!(
            s.message().await.unwrap(),
            None,
            "the sidecar ended its side"
        );
    }

    #[tokio::test]
    async fn a_message_over_the_limit_compressed_or_cut_short_is_refused() {
        let mut over = vec![0];
        let len = u32::try_from(plumb_proto::MAX_SIDECAR_MESSAGE_BYTES + 1).unwrap();
        over.extend_from_slice(&len.to_be_bytes());
        let err = inbound(vec![over]).message().await.unwrap_err();
        assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
        assert!(
            err.message().contains("over the limit of 4194304 bytes"),
            "{err:?}"
        );

        let mut compressed = framed(&report("a"));
        compressed[0] = 1;
        let err = inbound(vec![compressed]).message().await.unwrap_err();
        assert_eq!(err.code(), Code::Unimplemented, "{err:?}");

        let cut = framed(&report("a"));
        let err = inbound(vec![cut[..cut.len() - 1].to_vec()])
            .message()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Internal, "{err:?}");
    }

    #[tokio::test]
    async fn replies_are_the_shared_bytes_then_the_status_in_trailers() {
        let (tx, rx) = mpsc::channel(4);
        let hb = Encoded::kind(operator_message::Kind::Heartbeat(v1::Heartbeat {
            unix_ms: 1,
        }));
        tx.send(Ok(hb.clone())).await.unwrap();
        tx.send(Err(Box::new(Status::unauthenticated("token expired"))))
            .await
            .unwrap();
        drop(tx);
        let mut body = Replies { rx, done: false };
        let data = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(data.as_ptr(), hb.0.as_ptr(), "the shared bytes, not a copy");
        let t = next_trailers(&mut body).await;
        assert_eq!(t["grpc-status"], "16");
        assert_eq!(t["grpc-message"], "token%20expired");
        assert!(body.frame().await.is_none());
        // A session that ends without a status ends the stream OK.
        let (tx, rx) = mpsc::channel::<Outgoing>(1);
        drop(tx);
        let mut body = Replies { rx, done: false };
        assert_eq!(next_trailers(&mut body).await["grpc-status"], "0");
    }

    /// The next frame of `body`, which must be trailers.
    async fn next_trailers(body: &mut Replies) -> http::HeaderMap {
        let frame = body.frame().await.unwrap().unwrap();
        frame.into_trailers().unwrap()
    }

    #[test]
    fn a_published_value_is_encoded_once_for_every_stream() {
        let e = Encodings::default();
        let k = Arc::new(v1::Knowledge::default());
        let first = e.knowledge("team-a", &k);
        let again = e.knowledge("team-a", &k);
        assert_eq!(
            first.0.as_ptr(),
            again.0.as_ptr(),
            "the same bytes, not a second encoding"
        );
        // A new value (even equal) is a new encoding; another namespace has its own.
        let newer = Arc::new(v1::Knowledge::default());
        assert_ne!(e.knowledge("team-a", &newer).0.as_ptr(), first.0.as_ptr());
        let other = e.knowledge("team-b", &k);
        assert_ne!(other.0.as_ptr(), first.0.as_ptr());
        e.forget("team-a");
        assert_ne!(e.knowledge("team-a", &newer).0.as_ptr(), first.0.as_ptr());
    }
}
