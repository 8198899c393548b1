//! The timed sequences of the card: a flapping outage (the primary down, then up, then down
//! again) and a slow degradation (the primary slower request by request), each a run of
//! requests whose every answer is judged like a scenario's.

use super::*;

/// One request of a timed sequence (flapping, degradation).
pub(super) struct Shot {
    /// When it was sent, from the start of the sequence.
    pub(super) at: Duration,
    /// The primary's delay for this request, for a degradation.
    pub(super) delay: Option<Duration>,
    /// Attempts on the fallback for this request, for a degradation (requests one at a time).
    pub(super) fallback_attempts: usize,
    pub(super) capture: Capture,
    pub(super) verdict: Verdict,
}

/// A flapping outage: the primary answers 503 during `downs` (start, length), healthy
/// otherwise; a request every 250 ms for `length`, streamed and not in turn.
pub(super) struct Flap {
    pub(super) id: String,
    pub(super) route: RouteKind,
    pub(super) downs: Vec<(Duration, Duration)>,
    pub(super) length: Duration,
}

/// A flapping outage's requests, and the attempts its primary saw: when (from the start of
/// the sequence) and with what status.
pub(super) type Flapped = (Flap, Vec<Shot>, Vec<(Duration, u16)>);

pub(super) async fn run_flap(env: Arc<Env>, flap: Flap) -> anyhow::Result<Flapped> {
    let primary = format!("sc-{}-p", flap.id);
    let start = Instant::now();
    let mut plans = Vec::new();
    for (at, len) in flap.downs.clone() {
        let env = env.clone();
        let primary = primary.clone();
        plans.push(tokio::spawn(async move {
            tokio::time::sleep_until(start + at).await;
            let spec = PlanSpec {
                fault: Fault::Unavailable,
                first: None,
                for_: Some(format!("{}ms", len.as_millis())),
                share: None,
                seed: None,
            };
            env.sim.set_plan(&primary, spec)
        }));
    }
    let mut shots = Vec::new();
    let mut k = 0u32;
    loop {
        let at = Duration::from_millis(250) * k;
        if at >= flap.length {
            break;
        }
        let env = env.clone();
        let id = flap.id.clone();
        let family = flap.route.client();
        let stream = k % 2 == 1;
        shots.push(tokio::spawn(async move {
            tokio::time::sleep_until(start + at).await;
            let capture = env.through(family, &id, stream, false).await;
            let verdict = classify(family, &Expect::plain(), &capture);
            Shot {
                at,
                delay: None,
                fallback_attempts: 0,
                capture,
                verdict,
            }
        }));
        k += 1;
    }
    for p in plans {
        p.await?.map_err(|e| anyhow!("plan: {e}"))?;
    }
    let mut out = Vec::new();
    for s in shots {
        out.push(s.await?);
    }
    let offset = start.duration_since(env.sim_epoch).as_secs_f64() * 1000.0;
    let mut seen = env
        .sim
        .attempts(Some(&primary))
        .iter()
        .map(|a| {
            (
                Duration::from_secs_f64((a.at_ms - offset).max(0.0) / 1000.0),
                a.status,
            )
        })
        .collect::<Vec<_>>();
    seen.sort_by_key(|(at, _)| *at);
    Ok((flap, out, seen))
}

/// How a degrading primary is slow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slow {
    /// A stream whose head and preamble come at once and whose first token comes late
    /// (`slow_first_token`).
    FirstToken,
    /// A stream whose response head comes late (`slow_first_byte`).
    StreamHead,
    /// An unstreamed answer whose response head comes late (`slow_first_byte`).
    WholeHead,
}

impl Slow {
    fn stream(self) -> bool {
        self != Slow::WholeHead
    }

    fn fault(self) -> &'static str {
        match self {
            Slow::FirstToken => "slow_first_token",
            Slow::StreamHead | Slow::WholeHead => "slow_first_byte",
        }
    }

    pub(super) fn tag(self) -> &'static str {
        match self {
            Slow::FirstToken => "t",
            Slow::StreamHead => "h",
            Slow::WholeHead => "u",
        }
    }

    pub(super) fn describe(self) -> &'static str {
        match self {
            Slow::FirstToken => "streamed, head at once and the first token late",
            Slow::StreamHead => "streamed, the response head late",
            Slow::WholeHead => "unstreamed, the response head late",
        }
    }
}

/// A slow degradation: requests one after another while the primary gets slower with each.
pub(super) struct Degrade {
    pub(super) id: String,
    pub(super) route: RouteKind,
    pub(super) slow: Slow,
    pub(super) delays: Vec<Duration>,
}

pub(super) async fn run_degrade(env: Arc<Env>, d: Degrade) -> anyhow::Result<(Degrade, Vec<Shot>)> {
    let primary = format!("sc-{}-p", d.id);
    let fallback = format!("sc-{}-f", d.id);
    let family = d.route.client();
    let start = Instant::now();
    let mut out = Vec::new();
    for delay in &d.delays {
        let fault: Fault = format!("{}:delay={}ms", d.slow.fault(), delay.as_millis())
            .parse()
            .map_err(|e| anyhow!("{e}"))?;
        env.sim
            .set_plan(
                &primary,
                PlanSpec {
                    fault,
                    first: Some(1_000),
                    for_: None,
                    share: None,
                    seed: None,
                },
            )
            .map_err(|e| anyhow!("plan: {e}"))?;
        let at = start.elapsed();
        let before = env.sim.attempts(Some(&fallback)).len();
        let capture = env.through(family, &d.id, d.slow.stream(), false).await;
        let verdict = classify(family, &Expect::plain(), &capture);
        out.push(Shot {
            at,
            delay: Some(*delay),
            fallback_attempts: env.sim.attempts(Some(&fallback)).len() - before,
            capture,
            verdict,
        });
    }
    if env.progress {
        eprintln!("{:<34} done", d.id);
    }
    Ok((d, out))
}

/// The primary's attempts in a flapping outage, runs of answered ones folded:
/// `0.00: 503, 0.01: 503, …, 7.00–9.75: 200 ×12`.
pub(super) fn primary_attempts(seen: &[(Duration, u16)]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < seen.len() {
        let (at, status) = seen[i];
        let mut j = i;
        while j + 1 < seen.len() && seen[j + 1].1 == status && status == 200 {
            j += 1;
        }
        if j > i {
            parts.push(format!(
                "{:.2}–{:.2}: {status} ×{}",
                at.as_secs_f64(),
                seen[j].0.as_secs_f64(),
                j - i + 1
            ));
        } else {
            parts.push(format!("{:.2}: {status}", at.as_secs_f64()));
        }
        i = j + 1;
    }
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}
