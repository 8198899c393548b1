//! Deterministic, meaningful embeddings (hashed bag of words) and the judge's verdicts.

use serde::{Deserialize, Serialize};

/// Dimensions of an embedding when the request does not ask for a number.
pub const DEFAULT_DIMENSIONS: usize = 256;

/// Embeds a text as a hashed bag of words: each lower-cased word adds ±1 to one of `dims`
/// buckets chosen by its FNV-1a hash, and the vector is L2-normalised. Texts that share words
/// get close vectors; the same text always gets the same vector.
pub fn embed(text: &str, dims: usize) -> Vec<f32> {
    let dims = dims.max(1);
    let mut v = vec![0f32; dims];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let h = fnv1a(&word.to_lowercase());
        let idx = (h % dims as u64) as usize;
        let sign = if (h >> 63) & 1 == 0 { 1.0 } else { -1.0 };
        v[idx] += sign;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in &mut v {
            *x /= norm;
        }
    }
    v
}

/// Cosine similarity of two vectors of the same length.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The rule that decides a judge model's verdict. Set through the admin API, so a test decides
/// what the judge says.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case", deny_unknown_fields)]
pub enum JudgeRule {
    /// Always the same verdict.
    Always {
        /// Whether the answers are judged equivalent.
        equivalent: bool,
    },
    /// Equivalent exactly when the grading prompt contains `needle`.
    Contains {
        /// The text to look for.
        needle: String,
    },
    /// Equivalent when the two answers the prompt quotes between `<answer_a>` / `<answer_b>`
    /// tags (or `<a>` / `<b>`) share at least `min_overlap` of their words (Jaccard).
    Overlap {
        /// The threshold, 0 to 1.
        min_overlap: f64,
    },
}

impl Default for JudgeRule {
    fn default() -> Self {
        JudgeRule::Overlap { min_overlap: 0.8 }
    }
}

/// A judge's verdict, serialised as the strict JSON the judge answers with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Whether the two answers are equivalent.
    pub equivalent: bool,
    /// A score from 0 to 1.
    pub score: f64,
    /// A short reason.
    pub reason: String,
}

impl JudgeRule {
    /// The verdict for a grading prompt.
    pub fn judge(&self, prompt: &str) -> Verdict {
        match self {
            JudgeRule::Always { equivalent } => Verdict {
                equivalent: *equivalent,
                score: if *equivalent { 1.0 } else { 0.0 },
                reason: "fixed verdict".to_owned(),
            },
            JudgeRule::Contains { needle } => {
                let equivalent = prompt.contains(needle.as_str());
                Verdict {
                    equivalent,
                    score: if equivalent { 1.0 } else { 0.0 },
                    reason: format!(
                        "prompt {} the marker",
                        if equivalent { "contains" } else { "lacks" }
                    ),
                }
            }
            JudgeRule::Overlap { min_overlap } => {
                let a = between(prompt, "answer_a").or_else(|| between(prompt, "a"));
                let b = between(prompt, "answer_b").or_else(|| between(prompt, "b"));
                let score = match (a, b) {
                    (Some(a), Some(b)) => jaccard(a, b),
                    _ => 0.0,
                };
                Verdict {
                    equivalent: score >= *min_overlap,
                    score,
                    reason: format!("word overlap {score:.2}"),
                }
            }
        }
    }
}

fn between<'a>(text: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&close)?;
    Some(&text[start..end])
}

fn jaccard(a: &str, b: &str) -> f64 {
    use std::collections::BTreeSet;
    let words = |s: &str| -> BTreeSet<String> {
        s.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    };
    let (a, b) = (words(a), words(b));
    let union = a.union(&b).count();
    if union == 0 {
        return 1.0;
    }
    a.intersection(&b).count() as f64 / union as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_texts_are_closer_than_unrelated_ones() {
        let a = embed("the cat sat on the mat", 256);
        let b = embed("the cat sat on a mat", 256);
        let c = embed("quarterly revenue grew nine percent", 256);
        assert!(cosine(&a, &b) > 0.8);
        assert!(cosine(&a, &c) < 0.3);
        assert_eq!(embed("same", 64), embed("same", 64));
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }

    #[test]
    fn judge_rules_decide_verdicts() {
        assert!(JudgeRule::Always { equivalent: true }.judge("x").equivalent);
        let c = JudgeRule::Contains {
            needle: "OK".into(),
        };
        assert!(c.judge("is it OK").equivalent);
        assert!(!c.judge("is it fine").equivalent);
        let o = JudgeRule::default();
        assert!(
            o.judge("<answer_a>the answer is 42</answer_a><answer_b>The answer is 42.</answer_b>")
                .equivalent
        );
        assert!(
            !o.judge("<answer_a>the answer is 42</answer_a><answer_b>no idea</answer_b>")
                .equivalent
        );
    }
}
