//! The shared knowledge on the wire: a sidecar's `Report` decoded and merged into the operator's
//! store (`plumb_knowledge::Fleet`, as `plumb_operator::knowledge` feeds it: two pods
//! reporting, planning ticks, the knowledge pushed, each target's status summary), and the
//! operator's `Knowledge` decoded and put in force by a sidecar (`plumb_sidecar::fleet::Fleet`),
//! then asked about every upstream it names.
//!
//! Input: protobuf bytes, decoded as both messages.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use plumb_fuzz::NOW_MS;
use plumb_knowledge::fleet::Settings;
use plumb_knowledge::upstream_from_proto;
use plumb_proto::v1;
use prost::Message as _;

const NS: &str = "team-a";

/// A sidecar that is told `k`, and asked what it may do.
fn apply(k: &v1::Knowledge) {
    let sidecar = plumb_sidecar::fleet::Fleet::new();
    sidecar.set_pod("web-1");
    let _ = sidecar.apply(k);
    for d in &k.upstreams {
        let upstream = upstream_from_proto(d.upstream.as_ref());
        let _ = (sidecar.gate(&upstream), sidecar.skips(&upstream));
    }
    let _ = sidecar.describe();
    // The next knowledge no longer names them: they are used again.
    let _ = sidecar.apply(&v1::Knowledge::default());
}

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = v1::Report::decode(data) {
        let mut store = plumb_knowledge::Fleet::new(Settings::default());
        for pod in ["web-1", "web-2"] {
            store.connected(NS, pod);
        }
        let _ = store.report(NS, "web-1", &report, NOW_MS);
        let _ = store.report(NS, "web-2", &report, NOW_MS + 1_500);
        let _ = store.tick(NOW_MS + 2_000, Duration::from_secs(1));
        let k = store.knowledge(NS, NOW_MS + 2_000);
        apply(&k);
        let targets: Vec<_> = report
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                (
                    t.target.clone(),
                    upstream_from_proto(t.upstream.as_ref()),
                    i % 2 == 0,
                )
            })
            .collect();
        for t in &report.targets {
            let _ = store.summary(NS, &t.route, &targets, NOW_MS + 2_000);
        }
        store.disconnected(NS, "web-1");
        let _ = store.tick(NOW_MS + 120_000, Duration::from_secs(1));
        let _ = store.knowledge(NS, NOW_MS + 120_000);
        let _ = (store.take_events(), store.open_upstreams());
    }
    if let Ok(k) = v1::Knowledge::decode(data) {
        apply(&k);
    }
});
