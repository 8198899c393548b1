//! A route's equivalence settings, compiled: what failover may do, how answers are compared,
//! and how much shadow sampling may cost.

pub use plumb_api::{Downgrades, EquivalenceMode};
use plumb_api::{EquivalenceSpec, MethodKind, Provider};

use crate::route::{InvalidRoute, Target};

/// How two answers are compared.
#[derive(Clone, Debug, PartialEq)]
pub enum Method {
    /// Equal texts.
    Exact,
    /// Equal JSON values (texts that are not JSON: equal texts).
    CanonicalJson,
    /// Chosen fields (JSON Pointers) equal, numbers within a tolerance.
    Fields(Vec<Field>),
    /// Cosine of word counts at least `min`.
    Lexical {
        /// The least similarity that agrees.
        min: f64,
    },
    /// Cosine of embeddings from `target` at least `min`.
    Embedding {
        /// The embedding target's name.
        target: String,
        /// The least similarity that agrees.
        min: f64,
    },
    /// An LLM judge.
    Judge {
        /// The judge target's name.
        target: String,
    },
}

impl Method {
    /// The method's name as the route spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Method::Exact => "exact",
            Method::CanonicalJson => "canonicalJson",
            Method::Fields(_) => "fields",
            Method::Lexical { .. } => "lexical",
            Method::Embedding { .. } => "embedding",
            Method::Judge { .. } => "judge",
        }
    }

    /// The helper target the method calls, if any.
    pub fn helper(&self) -> Option<&str> {
        match self {
            Method::Embedding { target, .. } | Method::Judge { target } => Some(target),
            Method::Exact | Method::CanonicalJson | Method::Fields(_) | Method::Lexical { .. } => {
                None
            }
        }
    }
}

/// One compared field.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    /// A JSON Pointer.
    pub path: String,
    /// The largest absolute difference of numbers that still agrees.
    pub tolerance: f64,
}

/// Shadow sampling limits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shadow {
    /// Share of successful primary requests sampled; 0 is off.
    pub rate: f64,
    /// Shadow requests in flight at once.
    pub max_concurrent: u32,
    /// Shadow requests per minute.
    pub requests_per_minute: u32,
    /// Estimated tokens per minute.
    pub tokens_per_minute: u32,
}

impl Default for Shadow {
    fn default() -> Self {
        Shadow {
            rate: 0.0,
            max_concurrent: 2,
            requests_per_minute: 60,
            tokens_per_minute: 100_000,
        }
    }
}

/// A route's equivalence settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Equivalence {
    /// What failover may do.
    pub mode: EquivalenceMode,
    /// The least Wilson lower bound that certifies.
    pub threshold: f64,
    /// The fewest samples that certify.
    pub min_samples: u32,
    /// Whether failover may leave the primary's priority group.
    pub downgrades: Downgrades,
    /// The comparison.
    pub method: Method,
    /// Shadow sampling.
    pub shadow: Shadow,
    /// The target the embedding or judge method calls. It is taken out of rotation: it serves
    /// comparisons only, never client traffic.
    pub helper: Option<Box<Target>>,
}

impl Default for Equivalence {
    fn default() -> Self {
        Equivalence {
            mode: EquivalenceMode::Off,
            threshold: 0.9,
            min_samples: 20,
            downgrades: Downgrades::Allow,
            method: Method::CanonicalJson,
            shadow: Shadow::default(),
            helper: None,
        }
    }
}

fn unit(field: &str, v: f64) -> Result<f64, InvalidRoute> {
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(InvalidRoute::OutOfRange {
            field: field.to_owned(),
            value: v.to_string(),
            expected: "a number from 0 to 1",
        })
    }
}

fn positive(field: &str, v: Option<u32>, default: u32) -> Result<u32, InvalidRoute> {
    match v {
        Some(0) => Err(InvalidRoute::OutOfRange {
            field: field.to_owned(),
            value: "0".to_owned(),
            expected: "1 or more",
        }),
        Some(v) => Ok(v),
        None => Ok(default),
    }
}

impl Equivalence {
    /// Compiles `spec.equivalence` against the route's targets (all of them, last resort
    /// included), which the embedding and judge methods name.
    pub fn compile(
        spec: &EquivalenceSpec,
        targets: &[&Target],
    ) -> Result<Equivalence, InvalidRoute> {
        let d = Equivalence::default();
        let m = spec.method.clone().unwrap_or_default();
        let helper = |kind: &str| -> Result<String, InvalidRoute> {
            let field = "spec.equivalence.method.target".to_owned();
            let name = m.target.clone().ok_or_else(|| InvalidRoute::Contract {
                field: field.clone(),
                reason: format!("the {kind} method needs the name of a target to call"),
            })?;
            let t =
                targets
                    .iter()
                    .find(|t| t.name == name)
                    .ok_or_else(|| InvalidRoute::Contract {
                        field: field.clone(),
                        reason: format!("no target is named {name:?}"),
                    })?;
            // Plumb asks embeddings in OpenAI's shape only.
            let family = match t.provider {
                Provider::Openai | Provider::OpenaiCompatible | Provider::AzureOpenai => None,
                Provider::Anthropic => Some("an anthropic"),
                Provider::Gemini => Some("a gemini"),
                Provider::Bedrock => Some("a bedrock"),
                Provider::VertexAi => Some("a vertex-ai"),
            };
            if let (Some(family), "embedding") = (family, kind) {
                return Err(InvalidRoute::Contract {
                    field,
                    reason: format!(
                        "{name:?} is {family} target, which has no embeddings endpoint Plumb speaks"
                    ),
                });
            }
            Ok(name)
        };
        let min = |default: f64| {
            m.min_similarity.map_or(Ok(default), |v| {
                unit("spec.equivalence.method.minSimilarity", v)
            })
        };
        let method = match m.kind.unwrap_or_default() {
            MethodKind::Exact => Method::Exact,
            MethodKind::CanonicalJson => Method::CanonicalJson,
            MethodKind::Fields => {
                let fields = m.fields.clone().unwrap_or_default();
                if fields.is_empty() {
                    return Err(InvalidRoute::Contract {
                        field: "spec.equivalence.method.fields".to_owned(),
                        reason: "the fields method needs at least one field".to_owned(),
                    });
                }
                let mut out = Vec::with_capacity(fields.len());
                for (i, f) in fields.into_iter().enumerate() {
                    if !f.path.is_empty() && !f.path.starts_with('/') {
                        return Err(InvalidRoute::Contract {
                            field: format!("spec.equivalence.method.fields[{i}].path"),
                            reason: format!(
                                "{:?} is not a JSON Pointer; write it like /verdict or /items/0/score",
                                f.path
                            ),
                        });
                    }
                    let tolerance = f.tolerance.unwrap_or(0.0);
                    if !(tolerance >= 0.0 && tolerance.is_finite()) {
                        return Err(InvalidRoute::OutOfRange {
                            field: format!("spec.equivalence.method.fields[{i}].tolerance"),
                            value: tolerance.to_string(),
                            expected: "0 or more",
                        });
                    }
                    out.push(Field {
                        path: f.path,
                        tolerance,
                    });
                }
                Method::Fields(out)
            }
            MethodKind::Lexical => Method::Lexical { min: min(0.8)? },
            MethodKind::Embedding => Method::Embedding {
                target: helper("embedding")?,
                min: min(0.9)?,
            },
            MethodKind::Judge => Method::Judge {
                target: helper("judge")?,
            },
        };
        let s = spec.shadow.clone().unwrap_or_default();
        let sd = Shadow::default();
        let shadow = Shadow {
            rate: unit("spec.equivalence.shadow.rate", s.rate.unwrap_or(sd.rate))?,
            max_concurrent: positive(
                "spec.equivalence.shadow.maxConcurrent",
                s.max_concurrent,
                sd.max_concurrent,
            )?,
            requests_per_minute: positive(
                "spec.equivalence.shadow.requestsPerMinute",
                s.requests_per_minute,
                sd.requests_per_minute,
            )?,
            tokens_per_minute: positive(
                "spec.equivalence.shadow.tokensPerMinute",
                s.tokens_per_minute,
                sd.tokens_per_minute,
            )?,
        };
        Ok(Equivalence {
            mode: spec.mode.unwrap_or(d.mode),
            threshold: unit(
                "spec.equivalence.threshold",
                spec.threshold.unwrap_or(d.threshold),
            )?,
            min_samples: positive(
                "spec.equivalence.minSamples",
                spec.min_samples,
                d.min_samples,
            )?,
            downgrades: spec.downgrades.unwrap_or(d.downgrades),
            method,
            shadow,
            helper: None,
        })
    }
}
