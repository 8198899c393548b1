//! `plumb init`: a starter routes file, with comments, that `plumb check` accepts.

use std::fmt::Write as _;

use crate::args::{StarterCredentials, StarterProvider};

/// What the starter file is for.
#[derive(Clone, Debug)]
pub struct Starter {
    /// Providers, in order of preference.
    pub providers: Vec<StarterProvider>,
    /// The model name clients ask for.
    pub model: String,
    /// The route's name.
    pub name: String,
    /// Where keys come from.
    pub credentials: StarterCredentials,
}

struct Defaults {
    name: &'static str,
    provider: &'static str,
    base_url: &'static str,
    model: &'static str,
    env: &'static str,
    note: &'static str,
}

fn defaults(p: StarterProvider) -> Defaults {
    match p {
        StarterProvider::Openai => Defaults {
            name: "openai",
            provider: "openai",
            base_url: "https://api.openai.com/v1",
            model: "gpt-4o",
            env: "OPENAI_API_KEY",
            note: "OpenAI: baseUrl up to and including /v1",
        },
        StarterProvider::Anthropic => Defaults {
            name: "anthropic",
            provider: "anthropic",
            base_url: "https://api.anthropic.com",
            model: "claude-sonnet-4-5",
            env: "ANTHROPIC_API_KEY",
            note: "Anthropic: baseUrl without /v1; OpenAI clients are translated to it",
        },
        StarterProvider::AzureOpenai => Defaults {
            name: "azure",
            provider: "azure-openai",
            base_url: "https://my-resource.openai.azure.com",
            model: "gpt-4o",
            env: "AZURE_OPENAI_API_KEY",
            note: "Azure OpenAI: your resource's URL; model is the deployment name",
        },
        StarterProvider::OpenaiCompatible => Defaults {
            name: "local",
            provider: "openai-compatible",
            base_url: "http://localhost:8000/v1",
            model: "meta-llama/Llama-3.1-8B-Instruct",
            env: "",
            note: "an OpenAI-compatible server (vLLM, Ollama…): baseUrl up to /v1",
        },
        StarterProvider::Gemini => Defaults {
            name: "gemini",
            provider: "gemini",
            base_url: "https://generativelanguage.googleapis.com",
            model: "gemini-2.5-flash",
            env: "GEMINI_API_KEY",
            note: "Gemini: baseUrl without /v1beta; every client is translated to it",
        },
        StarterProvider::Bedrock => Defaults {
            name: "bedrock",
            provider: "bedrock",
            base_url: "https://bedrock-runtime.us-east-1.amazonaws.com",
            model: "us.anthropic.claude-sonnet-4-20250514-v1:0",
            // Signed with SigV4 from the AWS default chain (keys, IRSA, Pod Identity), not a key.
            env: "",
            note: "AWS Bedrock: the regional runtime endpoint and its region; signed with the pod's AWS credentials (IRSA, Pod Identity or AWS_ACCESS_KEY_ID); every client is translated to it",
        },
    }
}

impl Starter {
    /// The file's text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let kind = match self.credentials {
            StarterCredentials::Env => {
                "Standalone: plumb-sidecar --routes THIS_FILE (keys from environment variables)."
            }
            StarterCredentials::Secret => {
                "In a cluster: kubectl apply -f THIS_FILE (keys from the Secret llm-keys, labelled plumb.dev/credentials=true)."
            }
        };
        let _ = writeln!(
            out,
            "# A starter LlmRoute written by `plumb init`. {kind}\n# Check it with `plumb check FILE`; see the plan with `plumb explain FILE --model {}`.",
            self.model
        );
        let _ = writeln!(
            out,
            "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata:\n  name: {}\nspec:\n  # The model names clients send in the request's `model` field (\"*\": any model no\n  # other route serves).\n  match:\n    models: [{}]",
            self.name,
            yaml_string(&self.model)
        );
        let _ = writeln!(
            out,
            "  # Targets in order of preference: every target of the lowest priority is tried before\n  # any of the next; weights share traffic inside a priority."
        );
        let _ = writeln!(out, "  targets:");
        let mut used: Vec<String> = Vec::new();
        for (i, p) in self.providers.iter().enumerate() {
            let d = defaults(*p);
            let mut name = d.name.to_owned();
            let mut n = 2;
            while used.contains(&name) {
                name = format!("{}-{n}", d.name);
                n += 1;
            }
            used.push(name.clone());
            let _ = writeln!(out, "    # {}.", d.note);
            let _ = writeln!(out, "    - name: {name}");
            let _ = writeln!(out, "      provider: {}", d.provider);
            let _ = writeln!(out, "      baseUrl: {}", d.base_url);
            let _ = writeln!(out, "      model: {}", d.model);
            if *p == StarterProvider::AzureOpenai {
                let _ = writeln!(out, "      apiVersion: \"2024-10-21\"");
            }
            if *p == StarterProvider::Bedrock {
                let _ = writeln!(out, "      region: us-east-1");
            }
            let creds = match (self.credentials, d.env.is_empty()) {
                (_, true) if *p == StarterProvider::Bedrock => "{aws: true}".to_owned(),
                (_, true) => "{none: true}".to_owned(),
                (StarterCredentials::Env, false) => format!("{{env: {}}}", d.env),
                (StarterCredentials::Secret, false) => {
                    format!("{{secretRef: {{name: llm-keys, key: {}}}}}", d.name)
                }
            };
            let _ = writeln!(out, "      credentials: {creds}");
            if i > 0 {
                let _ = writeln!(out, "      priority: {i}");
            }
        }
        out.push_str(
            "  # Time limits (Go durations). Unset: connect 3s, firstByte 60s, firstToken 30s,\n  # streamIdle 30s, total 120s.\n  deadlines:\n    total: 120s\n    firstToken: 30s\n",
        );
        out.push_str(
            "  # Per failure class, how this route departs from the default plan, e.g.:\n  # classes:\n  #   rateLimited: {retries: 1, backoff: {initial: 1s, max: 8s}}\n  #   serverError: {retries: 2}\n",
        );
        out.push_str(
            "  # The breaker opens after 5 consecutive failures or half of at least 20 in 30s.\n  breaker:\n    consecutiveFailures: 5\n    cooldown: 2s\n",
        );
        out.push_str("  # When every target is unavailable: failFast, waitForHalfOpen, or target.\n  lastResort:\n    mode: failFast\n");
        out
    }
}

/// A model name as a YAML flow scalar (quoted when it needs to be).
fn yaml_string(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        && !matches!(
            s,
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "~"
        )
        && s.parse::<f64>().is_err();
    if plain {
        s.to_owned()
    } else {
        serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_are_quoted_only_when_yaml_needs_it() {
        assert_eq!(yaml_string("chat"), "chat");
        assert_eq!(yaml_string("*"), "\"*\"");
        assert_eq!(yaml_string("1.5"), "\"1.5\"");
    }

    #[test]
    fn a_starter_for_every_provider_compiles() {
        let s = Starter {
            providers: vec![
                StarterProvider::Openai,
                StarterProvider::Anthropic,
                StarterProvider::AzureOpenai,
                StarterProvider::OpenaiCompatible,
                StarterProvider::Gemini,
                StarterProvider::Bedrock,
                StarterProvider::Openai,
            ],
            model: "*".into(),
            name: "chat".into(),
            credentials: StarterCredentials::Secret,
        };
        let text = s.render();
        let report = crate::check::check_files(&[("s.yaml".into(), text.clone())]);
        assert!(report.ok(), "{text}\n{report:?}");
        assert!(text.contains("name: openai-2"));
        assert!(
            text.contains("region: us-east-1\n      credentials: {aws: true}"),
            "{text}"
        );
    }
}
