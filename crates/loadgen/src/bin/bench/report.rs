//! The report: per layout, the sidecar against the floor, each figure judged against its target;
//! then the raw figures, straight to the simulator included. Pure: numbers in, Markdown out.

use crate::Layout;
use crate::measure::{Held, Pair, StreamStats, Summary, Trio};
use crate::oncore::{Recorded, Spans};

/// Everything one layout measured.
pub struct Figures {
    /// One request at a time.
    pub one: Trio<Summary>,
    /// Open loop at `rate` requests a second.
    pub open: Trio<Summary>,
    pub rate: f64,
    /// Closed loop over `connections`.
    pub max: Trio<Summary>,
    pub connections: usize,
    /// Streams one at a time, each on a new connection.
    pub streams: Trio<StreamStats>,
    /// The same streams on one connection per path kept open across them, as an SDK's pool
    /// keeps its connections.
    pub streams_kept: Trio<StreamStats>,
    /// Each proxy's own time on a core before a stream's first byte, from its socket calls and
    /// its threads' switches (the pinned layout only; the reason when it could not be read).
    pub on_core: Option<Result<Recorded, String>>,
    /// The round trip from the harness to the proxies' cores and back with no proxy work
    /// (an echo server in their place): p50 and p99, µs.
    pub hop: (u64, u64),
    pub rss_idle_kib: Pair<u64>,
    /// `in_flight` requests held at once.
    pub held: Pair<Held>,
    /// `in_flight` streams open at once.
    pub held_streams: Pair<Held>,
    pub in_flight: usize,
    pub repeat: usize,
}

impl Figures {
    /// Requests and streams that failed on any path: a run with any is not a measurement
    /// (a path that answers errors fast would look good).
    pub fn failures(&self) -> u64 {
        let loads = |t: &Trio<Summary>| t.direct.errors + t.floor.errors + t.plumb.errors;
        let held = |p: &Pair<Held>| p.floor.errors + p.plumb.errors;
        loads(&self.one)
            + loads(&self.open)
            + loads(&self.max)
            + held(&self.held)
            + held(&self.held_streams)
    }
}

/// What Plumb's figure must be, against the floor's or on its own.
#[derive(Clone, Copy, Debug)]
enum Target {
    /// At least this multiple of the floor's.
    RatioAtLeast(f64),
    /// At most this multiple of the floor's.
    RatioAtMost(f64),
    /// At most this multiple of the floor's, and at most this many µs above it.
    RatioAndAdded(f64, f64),
    /// At most this, in the row's unit.
    AtMost(f64),
    /// At most this many µs above the floor's.
    AddedAtMost(f64),
    /// No more than this many µs: below what this benchmark can tell from noise.
    NoneMeasurable(f64),
    /// Reported, not judged.
    Unjudged,
}

/// How a row's figures read.
#[derive(Clone, Copy, Debug)]
enum Unit {
    Rps,
    Us,
    /// A difference from straight to the simulator: signed, never clamped to zero.
    AddedUs,
    CpuUs,
    Mb,
}

struct Row {
    measure: String,
    floor: f64,
    plumb: f64,
    unit: Unit,
    target: Target,
}

impl Target {
    /// Whether Plumb's figure meets the target; `None` when there is none.
    fn met(self, floor: f64, plumb: f64) -> Option<bool> {
        match self {
            Target::RatioAtLeast(r) => Some(plumb >= r * floor),
            Target::RatioAtMost(r) => Some(plumb <= r * floor),
            Target::RatioAndAdded(r, us) => Some(plumb <= r * floor && plumb - floor <= us),
            Target::AtMost(v) | Target::NoneMeasurable(v) => Some(plumb <= v),
            Target::AddedAtMost(us) => Some(plumb - floor <= us),
            Target::Unjudged => None,
        }
    }

    fn text(self, unit: Unit) -> String {
        match self {
            Target::RatioAtLeast(r) => format!("≥ {r:.2}×"),
            Target::RatioAtMost(r) => format!("≤ {r:.1}×"),
            Target::RatioAndAdded(r, us) => {
                format!("≤ {r:.1}× and ≤ floor + {:.0} ms", us / 1000.0)
            }
            Target::AtMost(v) => format!("≤ {}", unit.show(v).trim_start_matches('+')),
            Target::AddedAtMost(us) => format!("≤ floor + {:.1} ms", us / 1000.0),
            Target::NoneMeasurable(v) => format!("none measurable (≤ +{v:.0} µs)"),
            Target::Unjudged => "—".to_owned(),
        }
    }
}

impl Unit {
    fn show(self, v: f64) -> String {
        match self {
            Unit::Rps => format!("{v:.0} req/s"),
            Unit::Us => format!("{v:.0} µs"),
            Unit::AddedUs => format!("{v:+.0} µs"),
            Unit::CpuUs => format!("{v:.1} µs"),
            Unit::Mb => format!("{v:.1} MB"),
        }
    }
}

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn added(a: u64, b: u64) -> f64 {
    a as f64 - b as f64
}

/// The row the proxy's own time goes before.
const TTFB_P99: &str = "stream on a new connection: added time to first byte, p99";

/// The rows of the floor-against-Plumb table.
fn rows(layout: Layout, f: &Figures) -> Vec<Row> {
    let row = |measure: String, floor: f64, plumb: f64, unit: Unit, target: Target| Row {
        measure,
        floor,
        plumb,
        unit,
        target,
    };
    let s = &f.streams;
    let one_d = &f.one.direct;
    // The stream target is for a sidecar on its own core. Issue 17 words it as time added
    // over straight to the simulator; every figure of that issue is also set against the floor
    // in the same run, and both are judged. On a machine where reaching another core is slow
    // (`hop`, paid at least twice by any proxy there), the first misses for the floor too.
    let (ttfb_target, ttfb_floor_target) = match layout {
        Layout::Pinned => (Target::AtMost(300.0), Target::AddedAtMost(300.0)),
        Layout::Shared => (Target::Unjudged, Target::Unjudged),
    };
    let ttfb_floor = added(s.floor.ttfb.0, s.direct.ttfb.0);
    let ttfb_plumb = added(s.plumb.ttfb.0, s.direct.ttfb.0);
    // The third reading, what the proxy itself spends on its core: judged against the same
    // 0.3 ms, since it is the part of the added time that is the proxy's own.
    let own = match &f.on_core {
        Some(Ok(r)) => r.spans.floor.medians_us().zip(r.spans.plumb.medians_us()),
        Some(Err(_)) | None => None,
    };
    let mut rows = vec![
        row(
            format!("throughput, closed loop, {} connections", f.connections),
            f.max.floor.rps,
            f.max.plumb.rps,
            Unit::Rps,
            Target::RatioAtLeast(0.70),
        ),
        row(
            "CPU per request at that load".to_owned(),
            f.max.floor.cpu_us.unwrap_or(0.0),
            f.max.plumb.cpu_us.unwrap_or(0.0),
            Unit::CpuUs,
            Target::RatioAtMost(1.5),
        ),
        row(
            format!("p50 at {:.0} req/s, open loop", f.rate),
            f.open.floor.p50,
            f.open.plumb.p50,
            Unit::Us,
            Target::Unjudged,
        ),
        row(
            format!("p99 at {:.0} req/s, open loop", f.rate),
            f.open.floor.p99(),
            f.open.plumb.p99(),
            Unit::Us,
            Target::RatioAndAdded(1.5, 1000.0),
        ),
        row(
            "added latency one at a time, p50".to_owned(),
            f.one.floor.p50 - one_d.p50,
            f.one.plumb.p50 - one_d.p50,
            Unit::AddedUs,
            Target::Unjudged,
        ),
        row(
            "added latency one at a time, p99".to_owned(),
            f.one.floor.p99() - one_d.p99(),
            f.one.plumb.p99() - one_d.p99(),
            Unit::AddedUs,
            Target::Unjudged,
        ),
        row(
            "RSS idle".to_owned(),
            mb(f.rss_idle_kib.floor),
            mb(f.rss_idle_kib.plumb),
            Unit::Mb,
            Target::AtMost(8.0),
        ),
        row(
            format!("RSS with {} requests in flight", f.in_flight),
            mb(f.held.floor.peak_kib),
            mb(f.held.plumb.peak_kib),
            Unit::Mb,
            Target::AtMost(40.0),
        ),
        row(
            format!("RSS with {} streams open", f.in_flight),
            mb(f.held_streams.floor.peak_kib),
            mb(f.held_streams.plumb.peak_kib),
            Unit::Mb,
            Target::Unjudged,
        ),
        row(
            "stream on a new connection: added time to first byte, p50".to_owned(),
            ttfb_floor,
            ttfb_plumb,
            Unit::AddedUs,
            ttfb_target,
        ),
        row(
            "stream on a new connection: added time to first byte, p50, against the floor's"
                .to_owned(),
            ttfb_floor,
            ttfb_plumb,
            Unit::AddedUs,
            ttfb_floor_target,
        ),
        row(
            TTFB_P99.to_owned(),
            added(s.floor.ttfb.1, s.direct.ttfb.1),
            added(s.plumb.ttfb.1, s.direct.ttfb.1),
            Unit::AddedUs,
            Target::Unjudged,
        ),
        row(
            "stream on a kept-alive connection (an SDK's pool): added time to first byte, p50"
                .to_owned(),
            added(f.streams_kept.floor.ttfb.0, f.streams_kept.direct.ttfb.0),
            added(f.streams_kept.plumb.ttfb.0, f.streams_kept.direct.ttfb.0),
            Unit::AddedUs,
            ttfb_target,
        ),
        row(
            "stream on a kept-alive connection: added time to first byte, p99".to_owned(),
            added(f.streams_kept.floor.ttfb.1, f.streams_kept.direct.ttfb.1),
            added(f.streams_kept.plumb.ttfb.1, f.streams_kept.direct.ttfb.1),
            Unit::AddedUs,
            Target::Unjudged,
        ),
        row(
            "stream: added time to first token, p50".to_owned(),
            added(s.floor.ttft.0, s.direct.ttft.0),
            added(s.plumb.ttft.0, s.direct.ttft.0),
            Unit::AddedUs,
            Target::Unjudged,
        ),
        row(
            "stream: added gap between events, p50".to_owned(),
            added(s.floor.gap.0, s.direct.gap.0),
            added(s.plumb.gap.0, s.direct.gap.0),
            Unit::AddedUs,
            Target::NoneMeasurable(50.0),
        ),
        row(
            "stream: added gap between events, p99".to_owned(),
            added(s.floor.gap.1, s.direct.gap.1),
            added(s.plumb.gap.1, s.direct.gap.1),
            Unit::AddedUs,
            Target::Unjudged,
        ),
    ];
    if let Some((floor, plumb)) = own {
        // After the two rows that judge the added time to the first byte.
        let at = rows
            .iter()
            .position(|r| r.measure == TTFB_P99)
            .unwrap_or(rows.len());
        rows.insert(
            at,
            row(
                "stream: the proxy's own code on a core before the first byte, p50".to_owned(),
                floor.own,
                plumb.own,
                Unit::Us,
                Target::AtMost(300.0),
            ),
        );
    }
    rows
}

/// Plumb's figure over the floor's; a dash unless both are above zero (a difference within
/// noise, or below straight to the simulator, has no meaningful ratio).
fn ratio(floor: f64, plumb: f64) -> String {
    if floor > 0.0 && plumb > 0.0 {
        format!("{:.2}×", plumb / floor)
    } else {
        "—".to_owned()
    }
}

/// One layout's section of the report.
pub fn render(layout: Layout, f: &Figures) -> String {
    let mut out = format!("## {}\n\n{}\n\n", layout.title(), layout.describe());
    out.push_str("| measure | floor | Plumb | ratio | target |\n| --- | --- | --- | --- | --- |\n");
    for r in rows(layout, f) {
        let verdict = match r.target.met(r.floor, r.plumb) {
            Some(true) => " — met",
            Some(false) => " — **missed**",
            None => "",
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {}{verdict} |\n",
            r.measure,
            r.unit.show(r.floor),
            r.unit.show(r.plumb),
            ratio(r.floor, r.plumb),
            r.target.text(r.unit),
        ));
    }
    out.push_str(&format!(
        "\nRaw figures (µs; medians of {} alternating repetitions for the loads; streams one at a time, interleaved):\n\n",
        f.repeat
    ));
    out.push_str("| load | direct p50 | direct p99 | floor p50 | floor p99 | Plumb p50 | Plumb p99 | direct req/s | floor req/s | Plumb req/s |\n");
    out.push_str("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (name, t) in [
        ("one at a time".to_owned(), &f.one),
        (format!("{:.0} req/s, open loop", f.rate), &f.open),
        (
            format!("closed loop, {} connections", f.connections),
            &f.max,
        ),
    ] {
        out.push_str(&format!(
            "| {name} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |\n",
            t.direct.p50,
            t.direct.p99(),
            t.floor.p50,
            t.floor.p99(),
            t.plumb.p50,
            t.plumb.p99(),
            t.direct.rps,
            t.floor.rps,
            t.plumb.rps
        ));
    }
    let ttfb = (|x: &StreamStats| x.ttfb) as fn(&StreamStats) -> (u64, u64);
    for (name, s, pick) in [
        ("stream on a new connection, first byte", &f.streams, ttfb),
        ("stream, first token", &f.streams, |x| x.ttft),
        ("stream, gap between events", &f.streams, |x| x.gap),
        (
            "stream on a kept-alive connection, first byte",
            &f.streams_kept,
            ttfb,
        ),
    ] {
        let (d, fl, p) = (pick(&s.direct), pick(&s.floor), pick(&s.plumb));
        out.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {} | {} | | | |\n",
            d.0, d.1, fl.0, fl.1, p.0, p.1
        ));
    }
    if f.repeat > 1 {
        out.push_str(&format!(
            "\nEach repetition's p99 (µs, in the order run), behind the medians above: {}.\n",
            [
                ("one at a time".to_owned(), &f.one),
                (format!("{:.0} req/s", f.rate), &f.open),
                (format!("{} connections", f.connections), &f.max),
            ]
            .iter()
            .map(|(name, t)| format!("{name}: {}", spread(t)))
            .collect::<Vec<_>>()
            .join("; ")
        ));
    }
    out.push_str(&format!(
        "\nThe round trip from the harness to where the proxies run and back, with no proxy at all (an echo server in \
         their place, each after a pause that lets the core idle as it does before each stream): p50 {} µs, p99 {} µs.{}\n",
        f.hop.0,
        f.hop.1,
        match layout {
            Layout::Pinned => " Any proxy on a core of its own pays it at least twice before a stream's first byte \
                               (client to proxy, proxy to simulator).",
            Layout::Shared => "",
        }
    ));
    out.push_str(&on_core(
        f.on_core.as_ref(),
        Pair {
            floor: f.streams.floor.ttfb.0,
            plumb: f.streams.plumb.ttfb.0,
        },
    ));
    let errors = |t: &Trio<Summary>| t.direct.errors + t.floor.errors + t.plumb.errors;
    out.push_str(&format!(
        "\nSends behind schedule at {:.0} req/s: direct {}, floor {}, Plumb {}. Failed requests in the loads: {}. \
         Held requests answered (errors): floor {} ({}), Plumb {} ({}); streams completed (errors): floor {} ({}), Plumb {} ({}).\n",
        f.rate,
        f.open.direct.behind,
        f.open.floor.behind,
        f.open.plumb.behind,
        errors(&f.one) + errors(&f.open) + errors(&f.max),
        f.held.floor.answered,
        f.held.floor.errors,
        f.held.plumb.answered,
        f.held.plumb.errors,
        f.held_streams.floor.answered,
        f.held_streams.floor.errors,
        f.held_streams.plumb.answered,
        f.held_streams.plumb.errors,
    ));
    for (what, held) in [
        ("floor, held requests", &f.held.floor),
        ("Plumb, held requests", &f.held.plumb),
        ("floor, streams", &f.held_streams.floor),
        ("Plumb, streams", &f.held_streams.plumb),
    ] {
        if let Some(e) = &held.first_error {
            out.push_str(&format!("First failure ({what}): {e}.\n"));
        }
    }
    out
}

/// The sentence on each proxy's own time on a core before the first byte: how it is read, and
/// its parts; or why it was not read.
fn on_core(on_core: Option<&Result<Recorded, String>>, unrecorded: Pair<u64>) -> String {
    match on_core {
        None => String::new(),
        Some(Err(why)) => {
            format!(
                "\nEach proxy's own time before a stream's first byte was not measured: {why}.\n"
            )
        }
        Some(Ok(r)) => {
            let show = |s: &Spans| match s.medians_us() {
                Some(m) => format!(
                    "{:.0} µs of its own code ({:.0} from the accept to sending the request upstream, {:.0} \
                     from there to the answer's first read, {:.0} from there to writing the first bytes to the \
                     client) and {:.0} µs inside system calls (medians of {} streams)",
                    m.own,
                    m.request,
                    m.sent,
                    m.answer,
                    m.calls,
                    s.streams.len()
                ),
                None => "not seen (no stream recorded)".to_owned(),
            };
            format!(
                "\nEach proxy's own time on a core before a stream's first byte, from the kernel's record of its \
                 system calls and of its threads' switches on and off the cores (`perf record`, a second pass of \
                 the streams): the floor {}; Plumb {}. Time off the core is in neither: waiting for the client or \
                 the upstream, and being woken. The time inside system calls is mostly the socket calls, each of \
                 which may wake a peer on the other core. Recording moved each proxy's first byte (p50) by {:+} µs \
                 (the floor) and {:+} µs (Plumb) against the pass before it: about what perf adds to these \
                 figures, give or take the two passes' noise.\n",
                show(&r.spans.floor),
                show(&r.spans.plumb),
                r.first_byte.floor as i64 - unrecorded.floor as i64,
                r.first_byte.plumb as i64 - unrecorded.plumb as i64,
            )
        }
    }
}

/// Each path's p99 in every repetition, as `direct [..], floor [..], Plumb [..]`.
fn spread(t: &Trio<Summary>) -> String {
    let each = |s: &Summary| {
        let v: Vec<String> = s.p99_each.iter().map(u64::to_string).collect();
        format!("[{}]", v.join(", "))
    };
    format!(
        "direct {}, floor {}, Plumb {}",
        each(&t.direct),
        each(&t.floor),
        each(&t.plumb)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_negative_difference_keeps_its_sign() {
        assert_eq!(Unit::AddedUs.show(added(230, 250)), "-20 µs");
        assert_eq!(Unit::AddedUs.show(added(250, 230)), "+20 µs");
    }

    #[test]
    fn the_p99_target_needs_both_the_ratio_and_the_added_millisecond() {
        let t = Target::RatioAndAdded(1.5, 1000.0);
        assert_eq!(t.met(1800.0, 2700.0), Some(true));
        assert_eq!(t.met(1800.0, 2800.0), Some(false));
        assert_eq!(t.met(4000.0, 5500.0), Some(false));
    }

    #[test]
    fn the_first_byte_is_judged_by_what_the_sidecar_adds_to_the_floors() {
        let t = Target::AddedAtMost(300.0);
        assert_eq!(t.met(480.0, 560.0), Some(true));
        assert_eq!(t.met(100.0, 420.0), Some(false));
        assert_eq!(t.text(Unit::AddedUs), "≤ floor + 0.3 ms");
    }

    #[test]
    fn the_proxies_own_time_is_split_or_its_absence_explained() {
        let spans = |v: &[(u64, u64, u64, u64)]| Spans {
            streams: v
                .iter()
                .map(|&(request, sent, answer, calls)| crate::oncore::Stream {
                    request,
                    sent,
                    answer,
                    calls,
                })
                .collect(),
        };
        let unrecorded = Pair {
            floor: 600,
            plumb: 700,
        };
        let read = on_core(
            Some(&Ok(Recorded {
                spans: Pair {
                    floor: spans(&[
                        (60_000, 5_000, 20_000, 90_000),
                        (58_000, 6_000, 22_000, 80_000),
                        (61_000, 4_000, 19_000, 70_000),
                    ]),
                    plumb: spans(&[
                        (120_000, 10_000, 60_000, 70_000),
                        (124_000, 12_000, 62_000, 72_000),
                    ]),
                },
                first_byte: Pair {
                    floor: 640,
                    plumb: 690,
                },
            })),
            unrecorded,
        );
        assert!(
            read.contains(
                "the floor 85 µs of its own code (60 from the accept to sending the request upstream, 5 from"
            ),
            "{read}"
        );
        assert!(read.contains("client) and 80 µs inside system calls (medians of 3 streams)"));
        assert!(
            read.contains("Plumb 194 µs of its own code (122 from the accept"),
            "{read}"
        );
        assert!(read.contains("and 71 µs inside system calls (medians of 2 streams)"));
        assert!(
            read.contains("by +40 µs (the floor) and -10 µs (Plumb)"),
            "{read}"
        );
        let missing = on_core(
            Some(&Err("perf could not be started".to_owned())),
            unrecorded,
        );
        assert!(missing.contains("was not measured: perf could not be started."));
        assert_eq!(on_core(None, unrecorded), "");
    }

    #[test]
    fn throughput_is_judged_against_seventy_percent_of_the_floor() {
        assert_eq!(Target::RatioAtLeast(0.7).met(10_000.0, 7_000.0), Some(true));
        assert_eq!(
            Target::RatioAtLeast(0.7).met(10_000.0, 4_200.0),
            Some(false)
        );
    }

    #[test]
    fn each_repetitions_p99_is_shown_in_the_order_run() {
        let summary = |each: &[u64]| Summary {
            p99_each: each.to_vec(),
            ..Summary::default()
        };
        let t = Trio {
            direct: summary(&[2205, 1900, 2100]),
            floor: summary(&[2299, 2400, 2250]),
            plumb: summary(&[3359, 2300, 2280]),
        };
        assert_eq!(
            spread(&t),
            "direct [2205, 1900, 2100], floor [2299, 2400, 2250], Plumb [3359, 2300, 2280]"
        );
    }
}
