//! What the sidecars are given: per namespace, the last good version of every route and the
//! Secret keys they name, as versioned snapshots; and what each connected sidecar said of them.
//!
//! The reconciler writes here (a route accepted, replaced by a newer good generation, or
//! deleted — never replaced by an invalid one); the policy server streams each namespace's
//! snapshots to its sidecars and records their acknowledgements, which the reconciler reads
//! back into status.
//!
//! A snapshot is one message on the control stream, so it has a size limit
//! ([`plumb_proto::MAX_OPERATOR_MESSAGE_BYTES`]). A generation that would take the namespace's
//! snapshot over it is refused ([`TooLarge`]) and the last good one keeps serving; only
//! [`Policies::serve`] can grow a snapshot, so none that goes out is ever over the limit.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use plumb_proto::v1;
use prost::Message as _;
use tokio::sync::watch;

/// A route as sidecars receive it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// The generation this spec is.
    pub generation: i64,
    /// The spec as JSON, ConfigMap schemas resolved inline.
    pub spec_json: String,
    /// The Secret keys it names that were found: `(secret, key)` → value.
    pub credentials: BTreeMap<(String, String), Vec<u8>>,
    /// The snapshot counter in which this generation first went out.
    pub since: u64,
}

/// One sidecar's word on the snapshots it got.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SidecarState {
    /// The last snapshot counter it acknowledged.
    pub acked: Option<u64>,
    /// Routes it refused in that snapshot: name → reason.
    pub rejected: BTreeMap<String, String>,
}

#[derive(Debug)]
struct Namespace {
    routes: BTreeMap<String, Served>,
    tx: watch::Sender<Arc<v1::Snapshot>>,
    sidecars: BTreeMap<String, SidecarState>,
}

/// A generation refused because the namespace's snapshot would be too large with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the namespace's policy snapshot would be {bytes} bytes with this generation, over the {limit}-byte limit of a control-stream message; make the route smaller (inline schemas, targets) or move routes to another namespace"
)]
pub struct TooLarge {
    /// The snapshot's size with the generation, as sent.
    pub bytes: usize,
    /// The limit.
    pub limit: usize,
}

/// Every namespace's policy.
#[derive(Debug)]
pub struct Policies {
    /// Distinguishes this process's versions from an earlier leader's.
    epoch: u64,
    /// The largest snapshot message, encoded.
    max_snapshot_bytes: usize,
    counter: Mutex<u64>,
    namespaces: Mutex<HashMap<String, Namespace>>,
}

/// How many sidecars run a route's serving generation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Programmed {
    /// Connected sidecars of the namespace.
    pub connected: u32,
    /// Those that acknowledged a snapshot carrying the serving generation and did not refuse
    /// the route.
    pub programmed: u32,
    /// `(pod, reason)` of those that refused it.
    pub rejections: Vec<(String, String)>,
}

/// The snapshot counter inside a version string `EPOCH-COUNTER`.
pub fn counter_of(version: &str) -> Option<u64> {
    version.rsplit_once('-')?.1.parse().ok()
}

impl Policies {
    /// An empty store; `epoch` (e.g. the start time in seconds) prefixes every version.
    pub fn new(epoch: u64) -> Policies {
        Policies::with_limit(epoch, plumb_proto::MAX_OPERATOR_MESSAGE_BYTES)
    }

    /// An empty store whose snapshots may be at most `max_snapshot_bytes`, encoded as sent.
    pub fn with_limit(epoch: u64, max_snapshot_bytes: usize) -> Policies {
        Policies {
            epoch,
            max_snapshot_bytes,
            counter: Mutex::new(0),
            namespaces: Mutex::new(HashMap::new()),
        }
    }

    fn next(&self) -> u64 {
        let mut c = self.counter.lock();
        *c += 1;
        *c
    }

    fn namespace<'a>(
        map: &'a mut HashMap<String, Namespace>,
        epoch: u64,
        name: &str,
    ) -> &'a mut Namespace {
        map.entry(name.to_owned()).or_insert_with(|| Namespace {
            routes: BTreeMap::new(),
            tx: watch::channel(Arc::new(v1::Snapshot {
                version: format!("{epoch}-0"),
                namespace: name.to_owned(),
                routes: Vec::new(),
                credentials: Vec::new(),
            }))
            .0,
            sidecars: BTreeMap::new(),
        })
    }

    /// The snapshot of a namespace as it stands.
    fn snapshot(epoch: u64, counter: u64, name: &str, ns: &Namespace) -> v1::Snapshot {
        let mut credentials = BTreeMap::new();
        for served in ns.routes.values() {
            credentials.extend(
                served
                    .credentials
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
        }
        v1::Snapshot {
            version: format!("{epoch}-{counter}"),
            namespace: name.to_owned(),
            routes: ns
                .routes
                .iter()
                .map(|(route, s)| v1::Route {
                    name: route.clone(),
                    generation: s.generation,
                    spec_json: s.spec_json.clone(),
                })
                .collect(),
            credentials: credentials
                .into_iter()
                .map(|((secret_name, key), value)| v1::Credential {
                    secret_name,
                    key,
                    value,
                })
                .collect(),
        }
    }

    fn publish(epoch: u64, counter: u64, name: &str, ns: &Namespace) {
        let snapshot = Self::snapshot(epoch, counter, name, ns);
        ns.tx.send_replace(Arc::new(snapshot));
    }

    /// The size of a snapshot as the control stream sends it.
    pub fn message_bytes(snapshot: &v1::Snapshot) -> usize {
        v1::OperatorMessage {
            kind: Some(v1::operator_message::Kind::Snapshot(snapshot.clone())),
        }
        .encoded_len()
    }

    /// Puts a good generation of a route in force. Returns whether anything changed (the same
    /// generation with the same credentials is not sent again), or refuses it when the
    /// namespace's snapshot would be over the size limit with it (what was in force stays).
    pub fn serve(
        &self,
        namespace: &str,
        name: &str,
        generation: i64,
        spec_json: String,
        credentials: BTreeMap<(String, String), Vec<u8>>,
    ) -> Result<bool, TooLarge> {
        let mut map = self.namespaces.lock();
        let ns = Self::namespace(&mut map, self.epoch, namespace);
        let unchanged = ns.routes.get(name).is_some_and(|s| {
            s.generation == generation && s.spec_json == spec_json && s.credentials == credentials
        });
        if unchanged {
            return Ok(false);
        }
        let since = match ns.routes.get(name) {
            Some(s) if s.generation == generation && s.spec_json == spec_json => Some(s.since),
            Some(_) | None => None,
        };
        let before = ns.routes.insert(
            name.to_owned(),
            Served {
                generation,
                spec_json,
                credentials,
                since: since.unwrap_or(0),
            },
        );
        // The counter is only taken for a snapshot that goes out; u64::MAX sizes the version
        // string at its longest.
        let bytes = Self::message_bytes(&Self::snapshot(self.epoch, u64::MAX, namespace, ns));
        if bytes > self.max_snapshot_bytes {
            match before {
                Some(b) => ns.routes.insert(name.to_owned(), b),
                None => ns.routes.remove(name),
            };
            return Err(TooLarge {
                bytes,
                limit: self.max_snapshot_bytes,
            });
        }
        let counter = self.next();
        if let Some(served) = ns.routes.get_mut(name) {
            served.since = since.unwrap_or(counter);
        }
        Self::publish(self.epoch, counter, namespace, ns);
        Ok(true)
    }

    /// Takes the keys of `secrets` out of the generation of a route in force (their Secrets
    /// are no longer labelled for routes: their owner withdrew them). Returns whether anything
    /// changed.
    pub fn withdraw(&self, namespace: &str, name: &str, secrets: &[String]) -> bool {
        let mut map = self.namespaces.lock();
        let ns = Self::namespace(&mut map, self.epoch, namespace);
        let Some(served) = ns.routes.get_mut(name) else {
            return false;
        };
        let before = served.credentials.len();
        served
            .credentials
            .retain(|(secret, _), _| !secrets.contains(secret));
        if served.credentials.len() == before {
            return false;
        }
        let counter = self.next();
        Self::publish(self.epoch, counter, namespace, ns);
        true
    }

    /// Takes a deleted route out of force.
    pub fn remove(&self, namespace: &str, name: &str) -> bool {
        let mut map = self.namespaces.lock();
        let ns = Self::namespace(&mut map, self.epoch, namespace);
        if ns.routes.remove(name).is_none() {
            return false;
        }
        let counter = self.next();
        Self::publish(self.epoch, counter, namespace, ns);
        true
    }

    /// The generation of a route in force, if any.
    pub fn serving(&self, namespace: &str, name: &str) -> Option<i64> {
        self.namespaces
            .lock()
            .get(namespace)
            .and_then(|ns| ns.routes.get(name))
            .map(|s| s.generation)
    }

    /// Follows a namespace's snapshots (the current one first).
    pub fn subscribe(&self, namespace: &str) -> watch::Receiver<Arc<v1::Snapshot>> {
        let mut map = self.namespaces.lock();
        Self::namespace(&mut map, self.epoch, namespace)
            .tx
            .subscribe()
    }

    /// A sidecar connected.
    pub fn connected(&self, namespace: &str, pod: &str) {
        let mut map = self.namespaces.lock();
        Self::namespace(&mut map, self.epoch, namespace)
            .sidecars
            .insert(pod.to_owned(), SidecarState::default());
    }

    /// A sidecar went away.
    pub fn disconnected(&self, namespace: &str, pod: &str) {
        if let Some(ns) = self.namespaces.lock().get_mut(namespace) {
            ns.sidecars.remove(pod);
        }
    }

    /// A sidecar acknowledged a snapshot, refusing `rejected` routes.
    pub fn acked(
        &self,
        namespace: &str,
        pod: &str,
        version: &str,
        rejected: BTreeMap<String, String>,
    ) {
        let Some(counter) = version
            .strip_prefix(&format!("{}-", self.epoch))
            .and_then(|c| c.parse::<u64>().ok())
        else {
            // A snapshot of an earlier operator: it says nothing about ours.
            return;
        };
        let mut map = self.namespaces.lock();
        let ns = Self::namespace(&mut map, self.epoch, namespace);
        ns.sidecars.insert(
            pod.to_owned(),
            SidecarState {
                acked: Some(counter),
                rejected,
            },
        );
    }

    /// The routes a namespace has in force.
    pub fn routes_of(&self, namespace: &str) -> Vec<String> {
        self.namespaces
            .lock()
            .get(namespace)
            .map(|ns| ns.routes.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// How many of the namespace's sidecars run the route's serving generation.
    pub fn programmed(&self, namespace: &str, name: &str) -> Programmed {
        let map = self.namespaces.lock();
        let Some(ns) = map.get(namespace) else {
            return Programmed::default();
        };
        let since = ns.routes.get(name).map(|s| s.since);
        let mut p = Programmed {
            connected: ns.sidecars.len() as u32,
            ..Programmed::default()
        };
        for (pod, state) in &ns.sidecars {
            if let Some(reason) = state.rejected.get(name) {
                p.rejections.push((pod.clone(), reason.clone()));
            } else if let (Some(acked), Some(since)) = (state.acked, since)
                && acked >= since
            {
                p.programmed += 1;
            }
        }
        p
    }

    /// Connected sidecars of a namespace, for metrics.
    pub fn sidecar_count(&self, namespace: &str) -> usize {
        self.namespaces
            .lock()
            .get(namespace)
            .map_or(0, |ns| ns.sidecars.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves, for tests whose snapshots are small.
    fn serve(
        p: &Policies,
        ns: &str,
        name: &str,
        generation: i64,
        spec: String,
        creds: BTreeMap<(String, String), Vec<u8>>,
    ) -> bool {
        p.serve(ns, name, generation, spec, creds)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn creds(v: &[u8]) -> BTreeMap<(String, String), Vec<u8>> {
        BTreeMap::from([(("s".to_owned(), "k".to_owned()), v.to_vec())])
    }

    #[test]
    fn snapshots_are_versioned_per_change_and_carry_only_their_namespace() {
        let p = Policies::new(7);
        let mut a = p.subscribe("a");
        assert_eq!(a.borrow_and_update().version, "7-0");
        assert!(serve(&p, "a", "chat", 1, "{}".into(), creds(b"x")));
        assert!(
            !serve(&p, "a", "chat", 1, "{}".into(), creds(b"x")),
            "no change, no version"
        );
        assert!(serve(&p, "b", "other", 1, "{}".into(), BTreeMap::new()));
        let snap = a.borrow_and_update().clone();
        assert_eq!(snap.version, "7-1");
        assert_eq!(snap.routes.len(), 1);
        assert_eq!(snap.routes[0].name, "chat");
        assert_eq!(snap.credentials[0].value, b"x");
        // A rotated key is a new snapshot with the same route generation.
        assert!(serve(&p, "a", "chat", 1, "{}".into(), creds(b"y")));
        assert_eq!(a.borrow_and_update().version, "7-3");
        assert!(p.remove("a", "chat"));
        assert!(a.borrow_and_update().routes.is_empty());
    }

    #[test]
    fn a_generation_that_would_take_the_snapshot_over_the_limit_is_refused_and_the_last_good_one_serves()
     {
        let p = Policies::with_limit(1, 2_000);
        let mut a = p.subscribe("a");
        assert!(serve(&p, "a", "chat", 1, "{}".into(), creds(b"x")));
        let before = a.borrow_and_update().clone();
        let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(3_000));
        let Err(err) = p.serve("a", "chat", 2, big.clone(), creds(b"x")) else {
            panic!("a snapshot over the limit was accepted");
        };
        assert_eq!(err.limit, 2_000);
        assert!(err.bytes > 3_000, "{err:?}");
        assert!(
            err.to_string().contains("over the 2000-byte limit"),
            "{err}"
        );
        assert_eq!(p.serving("a", "chat"), Some(1));
        assert!(!a.has_changed().unwrap_or(true), "nothing went out");
        assert_eq!(*a.borrow(), before);
        // A new route that does not fit is not kept either.
        assert!(p.serve("a", "other", 1, big, BTreeMap::new()).is_err());
        assert_eq!(p.routes_of("a"), vec!["chat".to_owned()]);
        // What fits still goes out, with the next version.
        assert!(serve(&p, "a", "chat", 3, "{\"x\":1}".into(), creds(b"x")));
        assert_eq!(a.borrow_and_update().version, "1-2");
        assert_eq!(p.programmed("a", "chat").connected, 0);
    }

    #[test]
    fn withdrawn_keys_leave_the_snapshot_and_the_route_keeps_its_generation() {
        let p = Policies::new(1);
        let mut a = p.subscribe("a");
        let both = BTreeMap::from([
            (("s".to_owned(), "k".to_owned()), b"x".to_vec()),
            (("t".to_owned(), "k".to_owned()), b"y".to_vec()),
        ]);
        serve(&p, "a", "chat", 3, "{}".into(), both);
        assert!(
            !p.withdraw("a", "chat", &["other".to_owned()]),
            "nothing to take out"
        );
        assert!(p.withdraw("a", "chat", &["s".to_owned()]));
        let snap = a.borrow_and_update().clone();
        assert_eq!(snap.credentials.len(), 1);
        assert_eq!(snap.credentials[0].secret_name, "t");
        assert_eq!(p.serving("a", "chat"), Some(3));
        assert!(!p.withdraw("a", "gone", &["t".to_owned()]));
    }

    #[test]
    fn programmed_counts_sidecars_that_acknowledged_the_serving_generation() {
        let p = Policies::new(1);
        serve(&p, "a", "chat", 1, "{}".into(), BTreeMap::new());
        p.connected("a", "pod-1");
        p.connected("a", "pod-2");
        assert_eq!(p.programmed("a", "chat").programmed, 0);
        p.acked("a", "pod-1", "1-1", BTreeMap::new());
        assert_eq!(
            p.programmed("a", "chat"),
            Programmed {
                connected: 2,
                programmed: 1,
                rejections: vec![]
            }
        );
        // A new generation: nobody runs it until they acknowledge it.
        serve(&p, "a", "chat", 2, "{\"x\":1}".into(), BTreeMap::new());
        assert_eq!(p.programmed("a", "chat").programmed, 0);
        p.acked(
            "a",
            "pod-2",
            "1-2",
            BTreeMap::from([("chat".to_owned(), "its key is missing".to_owned())]),
        );
        p.acked("a", "pod-1", "1-2", BTreeMap::new());
        let got = p.programmed("a", "chat");
        assert_eq!(got.programmed, 1);
        assert_eq!(
            got.rejections,
            vec![("pod-2".to_owned(), "its key is missing".to_owned())]
        );
        // An acknowledgement of an earlier operator's snapshot says nothing.
        p.acked("a", "pod-1", "0-9", BTreeMap::new());
        assert_eq!(p.programmed("a", "chat").programmed, 1);
        p.disconnected("a", "pod-2");
        assert_eq!(p.programmed("a", "chat").connected, 1);
        assert_eq!(counter_of("5-12"), Some(12));
    }
}
