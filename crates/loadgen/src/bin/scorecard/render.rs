//! The card as markdown: one row per scenario, then the timed sequences and the counts.

use super::*;

/// An outcome for the table: the word, what was served when it is news, and the model the
/// answer names when it is none of those asked for.
pub(super) fn cell(v: &Verdict, direct: bool, asked: &[&str]) -> String {
    let word = if direct {
        v.outcome.direct()
    } else {
        v.outcome.through()
    };
    let mut out =
        if v.outcome == Outcome::Rescued && (v.detail == "complete" || v.detail == "valid JSON") {
            word.to_owned()
        } else {
            // Plumb's errors name every target and why: they get the room.
            format!(
                "{word}: {}",
                short(&v.detail, if direct { 48 } else { 130 })
            )
        };
    if let Some(m) = v.model.as_deref().filter(|m| !asked.contains(m)) {
        out.push_str(&format!(" (answer names `{m}`)"));
    }
    out
}

pub(super) fn or_dash(s: &str) -> &str {
    if s.is_empty() { "–" } else { s }
}

pub(super) fn render(
    args: &Args,
    results: &[Scored],
    flaps: &[Flapped],
    degrades: &[(Degrade, Vec<Shot>)],
    skipped: &[&str],
    wall: Duration,
) -> (String, usize) {
    let mut r = String::new();
    let date = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let kind = if args.quick {
        "quick card"
    } else {
        "full card"
    };
    r.push_str(&format!(
        "Scorecard ({kind}), commit {}, {date}, {:.0} s wall time. Each fault with its default parameters on every attempt to the primary of a default route (a primary and one fallback of the other family); the same request sent directly to the primary's model with the same fault.\n\n",
        git_commit(),
        wall.as_secs_f64()
    ));
    r.push_str("| fault | client | stream | through Plumb | ms | attempts (primary + fallback) | served by | failure classes | direct to the provider |\n");
    r.push_str("| --- | --- | --- | --- | ---: | --- | --- | --- | --- |\n");
    let mut through = Tally::default();
    let mut direct = Tally::default();
    let mut by_route: BTreeMap<RouteKind, (Tally, Tally)> = BTreeMap::new();
    let mut unsafe_lines = Vec::new();
    for res in results {
        let s = &res.scenario;
        through.add(res.through_verdict.outcome);
        direct.add(res.direct_verdict.outcome);
        let e = by_route.entry(s.route).or_default();
        e.0.add(res.through_verdict.outcome);
        e.1.add(res.direct_verdict.outcome);
        if res.through_verdict.outcome == Outcome::Unsafe {
            unsafe_lines.push(format!(
                "{} {} {}: {}",
                s.label(),
                s.route.client().as_str(),
                if s.stream { "streamed" } else { "unstreamed" },
                res.through_verdict.detail
            ));
        }
        let attempts = if res.through.attempts.is_empty() {
            format!("– ({} + {})", res.sim_attempts.0, res.sim_attempts.1)
        } else {
            format!(
                "{} ({} + {})",
                res.through.attempts, res.sim_attempts.0, res.sim_attempts.1
            )
        };
        r.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            s.label(),
            s.route.client().as_str(),
            if s.stream { "yes" } else { "no" },
            cell(
                &res.through_verdict,
                false,
                &[s.id.as_str(), &s.primary(), &s.fallback()]
            ),
            res.through.elapsed.as_millis(),
            attempts,
            or_dash(&res.through.served_by),
            or_dash(&res.through.failure_classes),
            cell(
                &res.direct_verdict,
                true,
                &[s.route.primary_model(s.fault.is_none())]
            ),
        ));
    }
    r.push('\n');
    if !skipped.is_empty() {
        r.push_str(&format!(
            "Not in the quick card: {} (it waits out the default 60 s first-byte deadline; `make scorecard` runs it).\n\n",
            skipped
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    let mut seq_tally = Tally::default();
    for (flap, shots, seen) in flaps {
        let mut t = Tally::default();
        for s in shots {
            t.add(s.verdict.outcome);
            seq_tally.add(s.verdict.outcome);
            if s.verdict.outcome == Outcome::Unsafe {
                unsafe_lines.push(format!(
                    "flapping outage, {} request at {} ms: {}",
                    flap.route.client().as_str(),
                    s.at.as_millis(),
                    s.verdict.detail
                ));
            }
        }
        let downs: Vec<String> = flap
            .downs
            .iter()
            .map(|(a, l)| format!("{:.1}–{:.1} s", a.as_secs_f64(), (*a + *l).as_secs_f64()))
            .collect();
        r.push_str(&format!(
            "**Flapping outage**, {} client: the primary answers 503 during {} and is healthy otherwise; a request every 250 ms for {} s (streamed and not in turn): {} rescued, {} safe errors, {} unsafe.",
            flap.route.client().as_str(),
            downs.join(" and "),
            flap.length.as_secs(),
            t.rescued,
            t.safe,
            t.unsafe_
        ));
        for (a, l) in &flap.downs {
            let up = *a + *l;
            let next_down = flap
                .downs
                .iter()
                .map(|(s, _)| *s)
                .find(|s| *s > up)
                .unwrap_or(flap.length);
            // The first request of the up phase from which every later one went to the primary.
            let phase: Vec<&Shot> = shots
                .iter()
                .filter(|s| s.at >= up && s.at < next_down)
                .collect();
            let back = phase.iter().position(|s| s.capture.served_by == "primary");
            match back {
                Some(i) => r.push_str(&format!(
                    " Back up at {:.1} s: the primary answered again from the request sent at {:.2} s ({} ms after it recovered){}.",
                    up.as_secs_f64(),
                    phase[i].at.as_secs_f64(),
                    (phase[i].at - up).as_millis(),
                    if phase[i..].iter().all(|s| s.capture.served_by == "primary") {
                        ""
                    } else {
                        ", though not every later request"
                    }
                )),
                None => r.push_str(&format!(
                    " Back up at {:.1} s: the primary answered none of the requests sent before {:.1} s.",
                    up.as_secs_f64(),
                    next_down.as_secs_f64()
                )),
            }
        }
        let timeline: String = shots
            .iter()
            .map(
                |s| match (s.verdict.outcome, s.capture.served_by.as_str()) {
                    (Outcome::Unsafe, _) => '!',
                    (Outcome::SafeError, _) => 'x',
                    (Outcome::Rescued, "primary") => 'P',
                    (Outcome::Rescued, _) => 'f',
                },
            )
            .collect();
        r.push_str(&format!(
            " Who answered, every 250 ms: `{timeline}` (P primary, f fallback, x safe error, ! unsafe). Attempts on the primary (s: status): {}.\n\n",
            primary_attempts(seen)
        ));
    }

    for (d, shots) in degrades {
        let mut t = Tally::default();
        let mut primary_up_to = None;
        let mut failovers = Vec::new();
        let mut slowest = Duration::ZERO;
        for s in shots {
            t.add(s.verdict.outcome);
            seq_tally.add(s.verdict.outcome);
            slowest = slowest.max(s.capture.elapsed);
            let delay = s.delay.unwrap_or_default();
            if s.verdict.outcome == Outcome::Unsafe {
                unsafe_lines.push(format!(
                    "slow degradation, {} client, {}, primary delay {} ms: {}",
                    d.route.client().as_str(),
                    d.slow.describe(),
                    delay.as_millis(),
                    s.verdict.detail
                ));
            }
            if s.capture.served_by == "primary"
                && s.fallback_attempts == 0
                && s.verdict.outcome == Outcome::Rescued
            {
                primary_up_to = Some(delay);
            } else {
                let by = match (s.capture.served_by.as_str(), s.fallback_attempts) {
                    ("", _) => "nobody".to_owned(),
                    ("primary", n) if n > 0 => "primary, continued by the fallback".to_owned(),
                    (who, _) => who.to_owned(),
                };
                failovers.push(format!(
                    "{} → {} ms, {}, served by {by}",
                    delay.as_millis(),
                    s.capture.elapsed.as_millis(),
                    s.verdict.outcome.through()
                ));
            }
        }
        let first = d.delays.first().copied().unwrap_or_default();
        let last = d.delays.last().copied().unwrap_or_default();
        let ramp_top = d.delays.iter().rev().nth(1).copied().unwrap_or_default();
        r.push_str(&format!(
            "**Slow degradation**, {} client, {}: {} requests one after another while the primary's delay grows (20 at {} ms, then 30% slower each up to {} ms, then one at {} ms): {} rescued, {} safe errors, {} unsafe; the primary served up to a delay of {} ms; {} not answered by the primary alone (primary's delay → client's wait: {}); slowest answer {} ms.\n\n",
            d.route.client().as_str(),
            d.slow.describe(),
            shots.len(),
            first.as_millis(),
            ramp_top.as_millis(),
            last.as_millis(),
            t.rescued,
            t.safe,
            t.unsafe_,
            primary_up_to.map_or("–".to_owned(), |d| d.as_millis().to_string()),
            failovers.len(),
            if failovers.is_empty() { "none".to_owned() } else { failovers.join(", ") },
            slowest.as_millis(),
        ));
    }

    for (route, (t, dt)) in &by_route {
        r.push_str(&format!(
            "- {} client: through Plumb {} rescued, {} safe errors, {} unsafe; directly {} correct, {} errors, {} unsafe\n",
            route.client().as_str(),
            t.rescued,
            t.safe,
            t.unsafe_,
            dt.rescued,
            dt.safe,
            dt.unsafe_
        ));
    }
    if !flaps.is_empty() || !degrades.is_empty() {
        r.push_str(&format!(
            "- flapping and degradation requests through Plumb: {} rescued, {} safe errors, {} unsafe\n",
            seq_tally.rescued, seq_tally.safe, seq_tally.unsafe_
        ));
    }
    r.push_str(&format!(
        "\n**Summary**: {} scenarios through Plumb: {} rescued, {} safe errors, {} unsafe. Directly: {} correct, {} errors, {} unsafe.\n",
        results.len(),
        through.rescued,
        through.safe,
        through.unsafe_,
        direct.rescued,
        direct.safe,
        direct.unsafe_
    ));
    if !unsafe_lines.is_empty() {
        r.push_str("\nUnsafe through Plumb:\n\n");
        for l in &unsafe_lines {
            r.push_str(&format!("- {l}\n"));
        }
    }
    let total_unsafe = through.unsafe_ + seq_tally.unsafe_;
    (r, total_unsafe)
}
