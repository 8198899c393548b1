//! `spec.targets`: the upstreams a route sends requests to.

use std::collections::HashSet;

use plumb_api::{CapabilitiesSpec, Provider, TargetSpec};

use super::InvalidRoute;
use super::credentials::{self, Credentials};
use super::egress::{self, Egress};

/// One validated target.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// Unique within the route.
    pub name: String,
    /// The provider's API.
    pub provider: Provider,
    /// The base URL, without a trailing slash.
    pub base_url: http::Uri,
    /// The upstream model (Azure: deployment).
    pub model: String,
    /// Azure's `api-version`.
    pub api_version: Option<String>,
    /// OpenAI's `OpenAI-Organization`.
    pub organization: Option<String>,
    /// OpenAI's `OpenAI-Project`, or a `vertex-ai` target's Google Cloud project.
    pub project: Option<String>,
    /// The cloud region: a `bedrock` target's AWS region (which SigV4 signs for), a
    /// `vertex-ai` target's Google Cloud location (`us-east5`, `global`).
    pub region: Option<String>,
    /// Where the key comes from.
    pub credentials: Credentials,
    /// Priority group (lower first).
    pub priority: u32,
    /// Weight inside the group.
    pub weight: u32,
    /// What it can do.
    pub capabilities: Capabilities,
    /// The identity of the upstream, shared by every route that uses it.
    pub upstream: UpstreamKey,
    /// How it reaches its provider.
    pub egress: Egress,
}

/// Whose model a `vertex-ai` target asks for, which decides the API it speaks there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Publisher {
    /// Google's Gemini models (`generateContent`).
    Google,
    /// Anthropic's Claude models (`rawPredict`, in the Messages shape).
    Anthropic,
}

impl Publisher {
    /// The publisher of a Vertex AI `model`: Anthropic's for `claude-…`, Google's otherwise.
    pub fn of_model(model: &str) -> Publisher {
        if model.starts_with("claude-") {
            Publisher::Anthropic
        } else {
            Publisher::Google
        }
    }

    /// The name in Vertex AI's paths: `google` or `anthropic`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Publisher::Google => "google",
            Publisher::Anthropic => "anthropic",
        }
    }
}

impl Target {
    /// The publisher of a `vertex-ai` target's model; `None` for other providers.
    pub fn publisher(&self) -> Option<Publisher> {
        match self.provider {
            Provider::VertexAi => Some(Publisher::of_model(&self.model)),
            Provider::Openai
            | Provider::OpenaiCompatible
            | Provider::AzureOpenai
            | Provider::Anthropic
            | Provider::Gemini
            | Provider::Bedrock => None,
        }
    }
}

/// What a target can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Context window in tokens, if declared.
    pub context_window: Option<u32>,
    /// Tool calling.
    pub tools: bool,
    /// JSON-schema structured output.
    pub json_schema: bool,
    /// Image input.
    pub vision: bool,
    /// Assistant prefill.
    pub prefill: bool,
}

/// The identity of an upstream: base URL, model and credential source. Breakers and shared
/// knowledge are keyed by it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UpstreamKey {
    /// Base URL, as configured without its trailing slashes: the text [`Target::base_url`]
    /// was parsed from, and what upstream URLs are written from.
    pub base_url: String,
    /// Upstream model.
    pub model: String,
    /// [`Credentials::identity`].
    pub credential: String,
}

impl std::fmt::Display for UpstreamKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({})", self.base_url, self.model, self.credential)
    }
}

/// Compiles `spec.targets`: at least one, each valid, names unique. `namespace` scopes the
/// identity of Secret credentials.
pub(super) fn compile(namespace: &str, specs: &[TargetSpec]) -> Result<Vec<Target>, InvalidRoute> {
    if specs.is_empty() {
        return Err(InvalidRoute::NoTargets);
    }
    let mut names = HashSet::new();
    let mut targets = Vec::with_capacity(specs.len());
    for (i, t) in specs.iter().enumerate() {
        let field = format!("spec.targets[{i}]");
        let target = compile_target(&field, namespace, t)?;
        if !names.insert(target.name.clone()) {
            return Err(InvalidRoute::DuplicateTarget {
                field: format!("{field}.name"),
                name: target.name,
            });
        }
        targets.push(target);
    }
    Ok(targets)
}

/// Compiles one target; `field` is its place in the spec (`spec.targets[i]`).
fn compile_target(field: &str, namespace: &str, t: &TargetSpec) -> Result<Target, InvalidRoute> {
    name(&format!("{field}.name"), &t.name)?;
    let (base_url, trimmed) = base_url(&format!("{field}.baseUrl"), &t.base_url)?;
    if t.model.trim().is_empty() {
        return Err(InvalidRoute::EmptyUpstreamModel {
            field: format!("{field}.model"),
        });
    }
    if t.provider == Provider::AzureOpenai && t.api_version.as_deref().is_none_or(str::is_empty) {
        return Err(InvalidRoute::MissingApiVersion {
            field: format!("{field}.apiVersion"),
        });
    }
    let credentials = credentials::compile(&format!("{field}.credentials"), &t.credentials)?;
    vertex(field, t, &credentials)?;
    let account = [("organization", &t.organization), ("project", &t.project)];
    for (name, value) in account {
        let Some(v) = value else { continue };
        let field = format!("{field}.{name}");
        if t.provider == Provider::VertexAi {
            continue;
        }
        if t.provider != Provider::Openai {
            return Err(InvalidRoute::OpenaiAccount {
                field,
                reason: "only openai targets take an organization or project",
            });
        }
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidRoute::OpenaiAccount {
                field,
                reason: "must be an id such as org-… or proj_…, without spaces",
            });
        }
    }
    region(field, t, &credentials)?;
    let egress = egress::compile(&format!("{field}.proxy"), t.proxy.as_ref())?;
    let upstream = UpstreamKey {
        base_url: trimmed.to_owned(),
        model: t.model.clone(),
        credential: credentials.identity(namespace),
    };
    Ok(Target {
        name: t.name.clone(),
        provider: t.provider,
        base_url,
        model: t.model.clone(),
        api_version: t.api_version.clone(),
        organization: t.organization.clone(),
        project: t.project.clone(),
        region: t.region.clone(),
        credentials,
        priority: t.priority.unwrap_or(0),
        weight: t.weight.unwrap_or(1),
        capabilities: capabilities(t.provider, &t.model, t.capabilities.as_ref()),
        upstream,
        egress,
    })
}

/// What only `vertex-ai` targets take, and what they need: a project and a region (ids of
/// lower-case letters, digits and dashes), no organization, no passthrough; `google: true`
/// credentials nowhere else.
fn vertex(field: &str, t: &TargetSpec, credentials: &Credentials) -> Result<(), InvalidRoute> {
    let invalid = |name: &str, reason| {
        Err(InvalidRoute::Vertex {
            field: format!("{field}.{name}"),
            reason,
        })
    };
    let is_id = |v: &str| {
        !v.is_empty()
            && v.len() <= 64
            && v.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if t.provider != Provider::VertexAi {
        // Another target's region is checked by `region`.
        if *credentials == Credentials::Google {
            return invalid("credentials", "google: true is for vertex-ai targets only");
        }
        return Ok(());
    }
    // Project ids are lower-case letters, digits and dashes; old domain-scoped ones hold a
    // `.` and a `:` (`example.com:proj`). Nothing that would change the URL's path.
    let is_project = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.:".contains(&b))
    };
    if !t.project.as_deref().is_some_and(is_project) {
        return invalid(
            "project",
            "vertex-ai targets need project: the Google Cloud project id",
        );
    }
    if !t.region.as_deref().is_some_and(is_id) {
        return invalid(
            "region",
            "vertex-ai targets need region: a Google Cloud location such as us-east5 or global",
        );
    }
    if t.organization.is_some() {
        return invalid("organization", "vertex-ai targets take no organization");
    }
    if *credentials == Credentials::Passthrough {
        return invalid(
            "credentials",
            "vertex-ai targets cannot pass the caller's key through: use a service-account key or google: true",
        );
    }
    Ok(())
}

/// A target name: not blank, and a DNS label (the CRD's rule, kept standalone too).
fn name(field: &str, name: &str) -> Result<(), InvalidRoute> {
    if name.trim().is_empty() {
        return Err(InvalidRoute::EmptyTargetName {
            field: field.to_owned(),
        });
    }
    let dns_label = name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !dns_label {
        return Err(InvalidRoute::TargetName {
            field: field.to_owned(),
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// A base URL: http or https, with a host, no user information and no query. Returns it
/// parsed and as written without trailing slashes (the form upstream keys use).
fn base_url<'a>(field: &str, value: &'a str) -> Result<(http::Uri, &'a str), InvalidRoute> {
    // Before anything that would quote the value back: it may hold a password.
    if has_user_info(value) {
        return Err(InvalidRoute::CredentialsInUrl {
            field: field.to_owned(),
        });
    }
    let bad_url = |reason| InvalidRoute::BaseUrl {
        field: field.to_owned(),
        value: value.to_owned(),
        reason,
    };
    let trimmed = value.trim_end_matches('/');
    let parsed: http::Uri = trimmed.parse().map_err(|_| bad_url("is not a URL"))?;
    match parsed.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(bad_url("must start with http:// or https://")),
    }
    if parsed.host().is_none_or(str::is_empty) {
        return Err(bad_url("has no host"));
    }
    if parsed.query().is_some() {
        return Err(bad_url("must not carry a query string"));
    }
    Ok((parsed, trimmed))
}

/// Whether a URL's authority (between `scheme://` and the path, query or fragment) carries
/// user information (`user@`, `user:password@`). Read from the text, so a URL too broken to
/// parse is caught too.
pub(super) fn has_user_info(value: &str) -> bool {
    let rest = value.split_once("://").map_or(value, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority.contains('@')
}

/// What a target can do: everything unless it says otherwise, except prefill, which only
/// Anthropic's API offers by default.
/// A `bedrock` target names its AWS region (a `vertex-ai` target's region is checked by
/// [`vertex`]); no other target takes one, and only `bedrock` targets sign with the
/// environment's AWS credentials.
fn region(field: &str, t: &TargetSpec, credentials: &Credentials) -> Result<(), InvalidRoute> {
    let invalid = |reason| {
        Err(InvalidRoute::Region {
            field: format!("{field}.region"),
            reason,
        })
    };
    let valid = |r: &str| {
        !r.is_empty()
            && r.len() <= 64
            && r.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    match (t.provider, t.region.as_deref()) {
        (Provider::Bedrock, None) => {
            return invalid("bedrock targets need region (for example \"us-east-1\")");
        }
        (Provider::Bedrock, Some(r)) if !valid(r) => {
            return invalid("must be an AWS region such as us-east-1");
        }
        (Provider::Bedrock, Some(_)) | (Provider::VertexAi, _) => {}
        (
            Provider::Openai
            | Provider::OpenaiCompatible
            | Provider::AzureOpenai
            | Provider::Anthropic
            | Provider::Gemini,
            Some(_),
        ) => return invalid("region is for bedrock and vertex-ai targets only"),
        (
            Provider::Openai
            | Provider::OpenaiCompatible
            | Provider::AzureOpenai
            | Provider::Anthropic
            | Provider::Gemini,
            None,
        ) => {}
    }
    if *credentials == Credentials::Aws && t.provider != Provider::Bedrock {
        return Err(InvalidRoute::Region {
            field: format!("{field}.credentials.aws"),
            reason: "aws: true credentials are for bedrock targets",
        });
    }
    Ok(())
}

fn capabilities(provider: Provider, model: &str, spec: Option<&CapabilitiesSpec>) -> Capabilities {
    let default = CapabilitiesSpec::default();
    let caps = spec.unwrap_or(&default);
    Capabilities {
        context_window: caps.context_window,
        tools: caps.tools.unwrap_or(true),
        json_schema: caps.json_schema.unwrap_or(true),
        vision: caps.vision.unwrap_or(true),
        prefill: caps.prefill.unwrap_or(match provider {
            Provider::Anthropic => true,
            // Claude on Vertex AI takes a prefill as it does on Anthropic's API.
            Provider::VertexAi => Publisher::of_model(model) == Publisher::Anthropic,
            // Gemini continues no partial model turn: a final `model` turn is refused.
            Provider::Openai
            | Provider::OpenaiCompatible
            | Provider::AzureOpenai
            | Provider::Gemini
            // Converse takes no final assistant turn to continue for every model: refused.
            | Provider::Bedrock => false,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(yaml: &str) -> Result<Vec<Target>, InvalidRoute> {
        let specs: Vec<TargetSpec> = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        compile("team", &specs)
    }

    /// One openai target named `a`, with `change` applied to its YAML.
    fn one(change: (&str, &str)) -> Result<Target, InvalidRoute> {
        let yaml = "[{name: a, provider: openai, baseUrl: 'http://h/v1', model: up, credentials: {none: true}}]";
        assert!(yaml.contains(change.0), "{}", change.0);
        targets(&yaml.replace(change.0, change.1)).map(|mut t| t.remove(0))
    }

    #[test]
    fn a_plain_target_takes_the_defaults() {
        let t = one(("name: a", "name: a")).unwrap();
        assert_eq!(t.name, "a");
        assert_eq!(t.provider, Provider::Openai);
        assert_eq!(t.base_url, "http://h/v1");
        assert_eq!(t.model, "up");
        assert_eq!(t.api_version, None);
        assert_eq!(t.credentials, Credentials::None);
        assert_eq!((t.priority, t.weight), (0, 1));
        assert_eq!(
            t.capabilities,
            Capabilities {
                context_window: None,
                tools: true,
                json_schema: true,
                vision: true,
                prefill: false,
            }
        );
        assert_eq!(t.upstream.to_string(), "http://h/v1 up (none)");
    }

    #[test]
    fn a_custom_target_keeps_what_it_declares() {
        let yaml = "
- name: az-1
  provider: azure-openai
  baseUrl: https://res.openai.azure.com/openai//
  model: deploy
  apiVersion: '2024-10-21'
  credentials: {secretRef: {name: s, key: k}}
  priority: 2
  weight: 7
  capabilities: {contextWindow: 8000, tools: false, jsonSchema: false, vision: false, prefill: true}
";
        let t = targets(yaml).unwrap().remove(0);
        assert_eq!(t.base_url, "https://res.openai.azure.com/openai");
        assert_eq!(t.api_version.as_deref(), Some("2024-10-21"));
        assert_eq!((t.priority, t.weight), (2, 7));
        assert_eq!(
            t.capabilities,
            Capabilities {
                context_window: Some(8000),
                tools: false,
                json_schema: false,
                vision: false,
                prefill: true,
            }
        );
        assert_eq!(
            t.upstream,
            UpstreamKey {
                base_url: "https://res.openai.azure.com/openai".to_owned(),
                model: "deploy".to_owned(),
                credential: "secret:team/s/k".to_owned(),
            }
        );
    }

    #[test]
    fn only_anthropic_targets_can_prefill_by_default() {
        let t = one(("provider: openai", "provider: anthropic")).unwrap();
        assert!(t.capabilities.prefill);
        let t = one(("provider: openai", "provider: openai-compatible")).unwrap();
        assert!(!t.capabilities.prefill);
    }

    #[test]
    fn a_route_without_targets_is_refused() {
        let err = targets("[]").unwrap_err();
        assert_eq!(err, InvalidRoute::NoTargets);
        assert_eq!(
            err.to_string(),
            "spec.targets: a route needs at least one target"
        );
    }

    #[test]
    fn a_target_name_used_twice_is_refused_at_the_second() {
        let yaml = "
- {name: a, provider: openai, baseUrl: 'http://h/v1', model: up, credentials: {none: true}}
- {name: b, provider: openai, baseUrl: 'http://h/v1', model: up, credentials: {none: true}}
- {name: a, provider: openai, baseUrl: 'http://g/v1', model: x, credentials: {none: true}}
";
        let err = targets(yaml).unwrap_err();
        assert_eq!(
            err,
            InvalidRoute::DuplicateTarget {
                field: "spec.targets[2].name".to_owned(),
                name: "a".to_owned(),
            }
        );
        assert_eq!(
            err.to_string(),
            "spec.targets[2].name: the target name \"a\" is used twice; names must be unique in a route"
        );
    }

    #[test]
    fn a_blank_target_name_is_refused() {
        let err = one(("name: a", "name: ' '")).unwrap_err();
        assert_eq!(
            err,
            InvalidRoute::EmptyTargetName {
                field: "spec.targets[0].name".to_owned()
            }
        );
        assert_eq!(
            err.to_string(),
            "spec.targets[0].name: give the target a name"
        );
    }

    #[test]
    fn a_target_name_that_is_not_a_dns_label_is_refused() {
        let long = "a".repeat(64);
        for bad in ["A", "-a", "a-", "a_b", "a.b", &long] {
            assert_eq!(
                one(("name: a", &format!("name: '{bad}'"))),
                Err(InvalidRoute::TargetName {
                    field: "spec.targets[0].name".to_owned(),
                    name: bad.to_owned(),
                }),
                "{bad}"
            );
        }
        assert_eq!(
            one(("name: a", "name: A")).unwrap_err().to_string(),
            "spec.targets[0].name: \"A\" must be lower-case letters, digits and '-', at most 63, starting and ending with a letter or digit"
        );
        let longest = "a".repeat(63);
        assert!(one(("name: a", &format!("name: a-{}", &longest[2..]))).is_ok());
    }

    #[test]
    fn an_unusable_base_url_is_refused_with_the_reason() {
        for (url, reason) in [
            ("not a url", "is not a URL"),
            ("http:///v1", "is not a URL"),
            ("ftp://x/v1", "must start with http:// or https://"),
            ("/v1", "must start with http:// or https://"),
            ("http://:80/v1", "has no host"),
            ("http://h/v1?x=1", "must not carry a query string"),
        ] {
            assert_eq!(
                one(("http://h/v1", url)),
                Err(InvalidRoute::BaseUrl {
                    field: "spec.targets[0].baseUrl".to_owned(),
                    value: url.to_owned(),
                    reason,
                }),
                "{url}"
            );
        }
        assert_eq!(
            one(("http://h/v1", "ftp://x/v1")).unwrap_err().to_string(),
            "spec.targets[0].baseUrl: \"ftp://x/v1\" must start with http:// or https://"
        );
    }

    #[test]
    fn a_base_url_with_a_user_or_password_is_refused_without_repeating_it() {
        for url in [
            "https://user:s3cret-pw@h/v1",
            "https://user@h/v1",
            "http://:s3cret-pw@h:8080",
            "ftp://user:s3cret-pw@h/v1",
            "https://user:s3cret-pw@/v1",
        ] {
            let err = one(("http://h/v1", url)).unwrap_err();
            assert_eq!(
                err,
                InvalidRoute::CredentialsInUrl {
                    field: "spec.targets[0].baseUrl".to_owned()
                },
                "{url}"
            );
            assert!(!err.to_string().contains("s3cret"), "{err}");
        }
        assert_eq!(
            one(("http://h/v1", "https://user:pw@h/v1"))
                .unwrap_err()
                .to_string(),
            "spec.targets[0].baseUrl: the URL carries a user name or password (user:password@host), which would be shown wherever the upstream is (status, /fleet, metrics); take it out and give the key with credentials (secretRef, env or file)"
        );
        // An `@` in the path is not user information.
        assert!(one(("http://h/v1", "https://h/v1/@models")).is_ok());
    }

    #[test]
    fn a_blank_upstream_model_is_refused() {
        let err = one(("model: up", "model: ' '")).unwrap_err();
        assert_eq!(
            err,
            InvalidRoute::EmptyUpstreamModel {
                field: "spec.targets[0].model".to_owned()
            }
        );
        assert_eq!(
            err.to_string(),
            "spec.targets[0].model: name the upstream model (for azure-openai, the deployment)"
        );
    }

    #[test]
    fn an_azure_target_without_api_version_is_refused() {
        for azure in [
            "provider: azure-openai",
            "provider: azure-openai, apiVersion: ''",
        ] {
            assert_eq!(
                one(("provider: openai", azure)),
                Err(InvalidRoute::MissingApiVersion {
                    field: "spec.targets[0].apiVersion".to_owned()
                }),
                "{azure}"
            );
        }
        assert_eq!(
            one(("provider: openai", "provider: azure-openai"))
                .unwrap_err()
                .to_string(),
            "spec.targets[0].apiVersion: azure-openai targets need apiVersion (for example \"2024-10-21\")"
        );
    }

    #[test]
    fn a_bedrock_target_needs_its_region_and_only_it_takes_one_or_aws_credentials() {
        let t = one(("provider: openai", "provider: bedrock, region: us-east-1")).unwrap();
        assert_eq!(t.region.as_deref(), Some("us-east-1"));
        assert!(!t.capabilities.prefill);
        let t = one((
            "provider: openai, baseUrl: 'http://h/v1', model: up, credentials: {none: true}",
            "provider: bedrock, region: eu-west-3, baseUrl: 'http://h', model: up, credentials: {aws: true}",
        ))
        .unwrap();
        assert_eq!(t.credentials, Credentials::Aws);
        assert_eq!(t.upstream.credential, "aws");
        let region = |reason: &'static str| InvalidRoute::Region {
            field: "spec.targets[0].region".to_owned(),
            reason,
        };
        assert_eq!(
            one(("provider: openai", "provider: bedrock")),
            Err(region(
                "bedrock targets need region (for example \"us-east-1\")"
            ))
        );
        assert_eq!(
            one(("provider: openai", "provider: bedrock, region: US_EAST")),
            Err(region("must be an AWS region such as us-east-1"))
        );
        assert_eq!(
            one(("provider: openai", "provider: anthropic, region: us-east-1")),
            Err(region("region is for bedrock and vertex-ai targets only"))
        );
        assert_eq!(
            one(("credentials: {none: true}", "credentials: {aws: true}")),
            Err(InvalidRoute::Region {
                field: "spec.targets[0].credentials.aws".to_owned(),
                reason: "aws: true credentials are for bedrock targets",
            })
        );
    }

    #[test]
    fn credential_mistakes_name_the_target() {
        assert_eq!(
            one(("{none: true}", "{}")),
            Err(InvalidRoute::Credentials {
                field: "spec.targets[0].credentials".to_owned(),
                found: 0,
            })
        );
    }

    #[test]
    fn routes_in_different_namespaces_have_different_secret_identities() {
        let spec: Vec<TargetSpec> = serde_saphyr::from_str(
            "[{name: a, provider: openai, baseUrl: 'http://h/v1', model: up, credentials: {secretRef: {name: s, key: k}}}]",
        )
        .unwrap();
        let a = compile("one", &spec).unwrap().remove(0).upstream;
        let b = compile("two", &spec).unwrap().remove(0).upstream;
        assert_ne!(a, b);
        assert_eq!(b.credential, "secret:two/s/k");
    }

    /// A vertex-ai target with `model` and `extra` fields.
    fn vertex_target(model: &str, extra: &str) -> Result<Target, InvalidRoute> {
        targets(&format!(
            "[{{name: a, provider: vertex-ai, baseUrl: 'https://us-east5-aiplatform.googleapis.com', model: {model}, credentials: {{google: true}}{extra}}}]"
        ))
        .map(|mut t| t.remove(0))
    }

    #[test]
    fn a_vertex_target_keeps_project_and_region_and_its_publisher_follows_the_model() {
        let t = vertex_target("gemini-2.5-pro", ", project: my-proj, region: us-east5").unwrap();
        assert_eq!(t.project.as_deref(), Some("my-proj"));
        assert_eq!(t.region.as_deref(), Some("us-east5"));
        assert_eq!(t.credentials, Credentials::Google);
        assert_eq!(t.publisher(), Some(Publisher::Google));
        assert!(!t.capabilities.prefill);
        let t =
            vertex_target("claude-sonnet-4-5@20250929", ", project: p, region: global").unwrap();
        assert_eq!(t.publisher(), Some(Publisher::Anthropic));
        assert!(t.capabilities.prefill, "Claude on Vertex AI prefills");
        assert_eq!(one(("name: a", "name: a")).unwrap().publisher(), None);
    }

    #[test]
    fn vertex_mistakes_are_refused_by_field() {
        let refused = |model: &str, extra: &str| match vertex_target(model, extra) {
            Err(InvalidRoute::Vertex { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            refused("g", ", region: us-east5"),
            "spec.targets[0].project"
        );
        assert_eq!(refused("g", ", project: p"), "spec.targets[0].region");
        assert_eq!(
            refused("g", ", project: 'a/b', region: us-east5"),
            "spec.targets[0].project"
        );
        assert_eq!(
            refused("g", ", project: p, region: 'US East'"),
            "spec.targets[0].region"
        );
        assert_eq!(
            refused("g", ", project: p, region: r, organization: o"),
            "spec.targets[0].organization"
        );
        let err = targets(
            "[{name: a, provider: vertex-ai, baseUrl: 'http://h', model: m, project: p, region: r, credentials: {passthrough: true}}]",
        )
        .unwrap_err();
        assert!(
            matches!(err, InvalidRoute::Vertex { ref field, .. } if field == "spec.targets[0].credentials"),
            "{err}"
        );
        let err = one((
            "credentials: {none: true}",
            "region: us-east5, credentials: {none: true}",
        ))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.targets[0].region: region is for bedrock and vertex-ai targets only"
        );
        let err = one(("credentials: {none: true}", "credentials: {google: true}")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.targets[0].credentials: google: true is for vertex-ai targets only"
        );
    }
}
