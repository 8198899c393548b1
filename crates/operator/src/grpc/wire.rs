//! The control stream's wire: what the operator sends is encoded once and shared by every
//! stream that sends it.
//!
//! A namespace's snapshot and knowledge go to each of its sidecars. tonic's generated service
//! encodes every message on every stream, so one namespace of 10,000 sidecars paid 10,000
//! clones and encodings of each push (BENCHMARKS.md, "Control plane"). Here the service is
//! written out for its one method with a codec whose outgoing messages are already encoded
//! ([`Encoded`]); [`Encodings`] keeps, per namespace, the bytes of the snapshot and the
//! knowledge last sent, keyed by the very `Arc` the namespace's watch channel published.

use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use parking_lot::Mutex;
use plumb_proto::v1::{self, operator_message};
use prost::Message as _;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, StdError, http};
use tonic::{Response, Status, Streaming};

use super::{Outbound, PolicyServer};

/// An `OperatorMessage`, already encoded. Only ever sent (decoding one skips every field).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Encoded(Bytes);

impl Encoded {
    /// Encodes `m` once.
    pub fn of(m: &v1::OperatorMessage) -> Encoded {
        Encoded(Bytes::from(m.encode_to_vec()))
    }

    /// A message of this kind.
    pub fn kind(kind: operator_message::Kind) -> Encoded {
        Encoded::of(&v1::OperatorMessage { kind: Some(kind) })
    }
}

impl prost::Message for Encoded {
    fn encode_raw(&self, buf: &mut impl bytes::BufMut) {
        buf.put_slice(&self.0);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: prost::encoding::WireType,
        buf: &mut impl bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.0.len()
    }

    fn clear(&mut self) {
        self.0 = Bytes::new();
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

/// The policy service: the `Control` method of `plumb.policy.v1.PolicyService`, served with
/// a codec that sends [`Encoded`] messages and decodes the sidecars' messages, within the
/// message limits (tonic's defaults are 4 MiB in and unlimited out): sidecar messages up to
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

/// Each stream's encode and decode buffers start this small (tonic's default is 8 KiB each,
/// held for the stream's life: 16 KiB of every connected sidecar's share) and grow for a
/// larger message.
const BUFFER_BYTES: usize = 1024;

/// The stream's codec: pre-encoded messages out, the sidecars' messages in, with small
/// buffers.
#[derive(Clone, Copy, Debug, Default)]
struct WireCodec;

impl tonic::codec::Codec for WireCodec {
    type Encode = Encoded;
    type Decode = v1::SidecarMessage;
    type Encoder = tonic_prost::ProstEncoder<Encoded>;
    type Decoder = tonic_prost::ProstDecoder<v1::SidecarMessage>;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::new(buffers())
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::new(buffers())
    }
}

/// How much a stream encodes before it yields to others (tonic's default).
const YIELD_BYTES: usize = 32 * 1024;

fn buffers() -> tonic::codec::BufferSettings {
    tonic::codec::BufferSettings::new(BUFFER_BYTES, YIELD_BYTES)
}

/// The one method's path.
const CONTROL: &str = "/plumb.policy.v1.PolicyService/Control";

struct Control(Arc<PolicyServer>);

impl tonic::server::StreamingService<v1::SidecarMessage> for Control {
    type Response = Encoded;
    type ResponseStream = Outbound;
    type Future = BoxFuture<Response<Outbound>, Status>;

    fn call(&mut self, request: tonic::Request<Streaming<v1::SidecarMessage>>) -> Self::Future {
        let server = self.0.clone();
        Box::pin(async move { server.control(request).await })
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
        let server = self.server.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(WireCodec).apply_max_message_size_config(
                Some(plumb_proto::MAX_SIDECAR_MESSAGE_BYTES),
                Some(plumb_proto::MAX_OPERATOR_MESSAGE_BYTES),
            );
            Ok(grpc.streaming(Control(server), req).await)
        })
    }
}

impl tonic::server::NamedService for ControlService {
    const NAME: &'static str = "plumb.policy.v1.PolicyService";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoded_message_is_the_message_on_the_wire() {
        let m = v1::OperatorMessage {
            kind: Some(operator_message::Kind::Heartbeat(v1::Heartbeat {
                unix_ms: 42,
            })),
        };
        let e = Encoded::of(&m);
        let mut framed = Vec::new();
        prost::Message::encode(&e, &mut framed).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(framed, m.encode_to_vec());
        assert_eq!(
            v1::OperatorMessage::decode(framed.as_slice()).unwrap_or_else(|e| panic!("{e}")),
            m
        );
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
