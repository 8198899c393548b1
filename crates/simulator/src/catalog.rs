//! The simulated models: their keys, personas, context windows, latency and token rate, and the
//! deterministic answers they give.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fault::Fault;

/// The simulator's whole configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct SimConfig {
    /// The models the simulator knows, by name.
    #[serde(default = "default_models")]
    pub models: BTreeMap<String, ModelSpec>,
    /// Serve models that are not listed, with default settings. When false, an unlisted model
    /// gets the provider's 404.
    #[serde(default = "yes")]
    pub accept_any_model: bool,
    /// How many attempts the log keeps; the oldest are dropped first.
    #[serde(default = "default_log_capacity")]
    pub attempt_log_capacity: usize,
    /// How long a `hang` fault holds the connection before resetting it.
    #[serde(default = "default_hang_limit", with = "humantime_serde_compat")]
    pub hang_limit: Duration,
}

/// One simulated model.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ModelSpec {
    /// The API key this model requires; `None` accepts any key or none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// The persona that shapes this model's answers; models with the same persona give the
    /// same answer to the same prompt.
    #[serde(default = "default_persona")]
    pub persona: String,
    /// Context window in tokens; longer prompts get the provider's context-length error.
    #[serde(default = "default_context_window")]
    pub context_window: u32,
    /// Latency before the response head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
    /// Tokens per second while streaming (and added to non-streamed answers); unset means
    /// as fast as possible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_rate: Option<f64>,
    /// A fault applied to every request of this model unless a header or plan says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
    /// This model is a judge: it answers grading prompts with a strict JSON verdict.
    #[serde(default)]
    pub judge: bool,
    /// Refuse requests that end with a partial assistant message (prefill), as some models do.
    #[serde(default)]
    pub reject_prefill: bool,
    /// A reasoning model: it thinks before it answers, streaming its reasoning (OpenAI-style
    /// `reasoning_content` deltas, Anthropic `thinking` blocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Thinking>,
}

/// How long a reasoning model thinks before it answers, and how often it says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Thinking {
    /// How long it thinks (`4s`).
    #[serde(rename = "for", with = "humantime_serde_compat")]
    pub think_for: Duration,
    /// The time between two reasoning deltas (`250ms`).
    #[serde(with = "humantime_serde_compat")]
    pub every: Duration,
}

impl Thinking {
    /// The header form: `4s/250ms` (thinks for 4 s, a delta every 250 ms).
    pub fn parse(s: &str) -> Option<Thinking> {
        let (total, every) = s.split_once('/')?;
        let total = humantime::parse_duration(total.trim()).ok()?;
        let every = humantime::parse_duration(every.trim()).ok()?;
        (!every.is_zero()).then_some(Thinking {
            think_for: total,
            every,
        })
    }

    /// How many reasoning deltas it sends: one per `every`, at least one.
    pub fn deltas(&self) -> u32 {
        let n = self.think_for.as_nanos() / self.every.as_nanos().max(1);
        u32::try_from(n).unwrap_or(u32::MAX).clamp(1, 100_000)
    }
}

/// A latency distribution.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Latency {
    /// Always the same.
    Fixed {
        /// The latency in milliseconds.
        ms: f64,
    },
    /// Uniform between two bounds.
    Uniform {
        /// Lower bound in milliseconds.
        min_ms: f64,
        /// Upper bound in milliseconds.
        max_ms: f64,
    },
    /// Log-normal with the given median and shape.
    LogNormal {
        /// Median in milliseconds.
        median_ms: f64,
        /// Standard deviation of the underlying normal distribution.
        sigma: f64,
    },
}

impl Latency {
    /// Draws one latency.
    pub fn sample(&self, rng: &mut fastrand::Rng) -> Duration {
        let ms = match *self {
            Latency::Fixed { ms } => ms,
            Latency::Uniform { min_ms, max_ms } => min_ms + (max_ms - min_ms) * rng.f64(),
            Latency::LogNormal { median_ms, sigma } => {
                // Box–Muller: one standard normal draw from two uniforms.
                let u1 = rng.f64().max(f64::MIN_POSITIVE);
                let u2 = rng.f64();
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                median_ms * (sigma * z).exp()
            }
        };
        Duration::from_secs_f64((ms.max(0.0)) / 1000.0)
    }

    /// Parses the header form: `fixed:100ms`, `uniform:10ms..50ms`, `lognormal:50ms,0.5`.
    pub fn parse(s: &str) -> Option<Latency> {
        let (kind, rest) = s.split_once(':')?;
        let ms = |v: &str| {
            crate::fault::parse_duration("latency", v.trim())
                .ok()
                .map(|d| d.as_secs_f64() * 1000.0)
        };
        match kind.trim() {
            "fixed" => Some(Latency::Fixed { ms: ms(rest)? }),
            "uniform" => {
                let (a, b) = rest.split_once("..")?;
                Some(Latency::Uniform {
                    min_ms: ms(a)?,
                    max_ms: ms(b)?,
                })
            }
            "lognormal" => {
                let (m, s) = rest.split_once(',')?;
                Some(Latency::LogNormal {
                    median_ms: ms(m)?,
                    sigma: s.trim().parse().ok()?,
                })
            }
            _ => None,
        }
    }
}

mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

fn yes() -> bool {
    true
}

fn default_log_capacity() -> usize {
    100_000
}

fn default_hang_limit() -> Duration {
    Duration::from_secs(300)
}

fn default_persona() -> String {
    "default".to_owned()
}

fn default_context_window() -> u32 {
    8_192
}

fn model(persona: &str, context_window: u32) -> ModelSpec {
    ModelSpec {
        persona: persona.to_owned(),
        context_window,
        ..ModelSpec::default()
    }
}

/// The built-in catalogue: OpenAI-flavoured, Anthropic-flavoured and Gemini-flavoured models
/// with two personas, a large-context model, reasoning models, a judge and an embedding model.
pub fn default_models() -> BTreeMap<String, ModelSpec> {
    let mut m = BTreeMap::new();
    m.insert("sim-gpt".to_owned(), model("default", 8_192));
    m.insert("sim-gpt-mini".to_owned(), model("default", 8_192));
    m.insert("sim-gpt-large".to_owned(), model("default", 128_000));
    m.insert("sim-gpt-alt".to_owned(), model("alt", 8_192));
    m.insert("sim-claude".to_owned(), model("default", 200_000));
    m.insert("sim-claude-alt".to_owned(), model("alt", 200_000));
    m.insert(
        "sim-claude-noprefill".to_owned(),
        ModelSpec {
            reject_prefill: true,
            ..model("default", 200_000)
        },
    );
    // Reasoning models: two seconds of thought, a delta every 250 ms, then the answer.
    let thinking = Some(Thinking {
        think_for: Duration::from_secs(2),
        every: Duration::from_millis(250),
    });
    m.insert(
        "sim-gpt-reasoner".to_owned(),
        ModelSpec {
            thinking,
            ..model("default", 128_000)
        },
    );
    m.insert(
        "sim-claude-thinker".to_owned(),
        ModelSpec {
            thinking,
            ..model("default", 200_000)
        },
    );
    m.insert("sim-gemini".to_owned(), model("default", 1_048_576));
    // Bedrock model ids, with the colon that must travel percent-encoded in the path.
    m.insert(
        "anthropic.sim-claude-v1:0".to_owned(),
        model("default", 200_000),
    );
    m.insert("amazon.sim-nova-v1:0".to_owned(), model("alt", 300_000));
    m.insert("sim-embed".to_owned(), model("default", 8_192));
    m.insert(
        "sim-judge".to_owned(),
        ModelSpec {
            judge: true,
            ..model("default", 128_000)
        },
    );
    m
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            models: default_models(),
            accept_any_model: true,
            attempt_log_capacity: default_log_capacity(),
            hang_limit: default_hang_limit(),
        }
    }
}

impl SimConfig {
    /// The settings of a model, or `None` when it is unknown and unknown models are refused.
    pub fn model(&self, name: &str) -> Option<ModelSpec> {
        match self.models.get(name) {
            Some(spec) => Some(spec.clone()),
            None if self.accept_any_model => Some(ModelSpec {
                persona: default_persona(),
                context_window: default_context_window(),
                ..ModelSpec::default()
            }),
            None => None,
        }
    }
}

/// The complete answer text a persona gives to a prompt. Deterministic: the same persona and
/// prompt always give the same text, which always ends with the same closing sentence, so a
/// truncated answer can always be told from a complete one.
pub fn answer_text(persona: &str, prompt: &str) -> String {
    let topic: String = prompt
        .split_whitespace()
        .rev()
        .take(6)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join(" ");
    let body = match persona {
        "default" => {
            "The answer is forty-two. It was computed carefully, checked twice, and agrees with the reference table."
        }
        "alt" => {
            "I believe the answer might be forty-one, although this persona did not check its arithmetic at all."
        }
        other => {
            return format!(
                "Persona {other} on \"{topic}\": an answer written in the voice of {other}. End of answer."
            );
        }
    };
    format!("On \"{topic}\": {body} End of answer.")
}

/// Splits an answer into the tokens a stream sends: words with their following space.
pub fn tokens(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b' ' {
            out.push(&text[start..=i]);
            start = i + 1;
        }
        i += 1;
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// A deterministic token estimate for a prompt: a quarter of its characters, rounded up.
pub fn estimate_tokens(text: &str) -> u32 {
    let chars = text.chars().count() as u32;
    chars.div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_rejoin_to_the_text() {
        let text = answer_text("default", "what is six times seven");
        assert_eq!(tokens(&text).concat(), text);
        assert!(tokens(&text).len() > 10);
    }

    #[test]
    fn personas_answer_differently_and_deterministically() {
        let a = answer_text("default", "q");
        assert_eq!(a, answer_text("default", "q"));
        assert_ne!(a, answer_text("alt", "q"));
        assert!(a.ends_with("End of answer."));
        assert!(answer_text("pirate", "q").ends_with("End of answer."));
    }

    #[test]
    fn latency_header_forms_parse() {
        assert_eq!(
            Latency::parse("fixed:100ms"),
            Some(Latency::Fixed { ms: 100.0 })
        );
        assert_eq!(
            Latency::parse("uniform:10ms..50ms"),
            Some(Latency::Uniform {
                min_ms: 10.0,
                max_ms: 50.0
            })
        );
        assert_eq!(
            Latency::parse("lognormal:50ms,0.5"),
            Some(Latency::LogNormal {
                median_ms: 50.0,
                sigma: 0.5
            })
        );
        assert_eq!(Latency::parse("normal:1ms"), None);
    }

    #[test]
    fn latency_samples_stay_in_their_distribution() {
        let mut rng = fastrand::Rng::with_seed(7);
        let u = Latency::Uniform {
            min_ms: 10.0,
            max_ms: 20.0,
        };
        for _ in 0..1000 {
            let d = u.sample(&mut rng);
            assert!(d >= Duration::from_millis(10) && d <= Duration::from_millis(20));
        }
        let ln = Latency::LogNormal {
            median_ms: 50.0,
            sigma: 0.5,
        };
        let mut v: Vec<Duration> = (0..2001).map(|_| ln.sample(&mut rng)).collect();
        v.sort();
        let median = v[1000].as_secs_f64() * 1000.0;
        assert!((40.0..60.0).contains(&median), "median {median}");
    }
}
