//! What `plumb check` says of a refused route: the field, the message and how to fix it, for
//! the compiler's [`InvalidRoute`] and for what the CRD's schema or CEL rules refused.

use plumb_policy::InvalidRoute;

use crate::schema;

/// The field an [`InvalidRoute`] names.
pub fn field_of(e: &InvalidRoute) -> String {
    match e {
        InvalidRoute::NoModels | InvalidRoute::ModelTaken { .. } => "spec.match.models".into(),
        InvalidRoute::NoTargets => "spec.targets".into(),
        InvalidRoute::LastResortTarget(_)
        | InvalidRoute::UnknownLastResortTarget(_)
        | InvalidRoute::NoRotationTarget => "spec.lastResort.target".into(),
        InvalidRoute::EmptyModel { field }
        | InvalidRoute::DuplicateTarget { field, .. }
        | InvalidRoute::EmptyTargetName { field }
        | InvalidRoute::TargetName { field, .. }
        | InvalidRoute::BaseUrl { field, .. }
        | InvalidRoute::CredentialsInUrl { field }
        | InvalidRoute::EmptyUpstreamModel { field }
        | InvalidRoute::MissingApiVersion { field }
        | InvalidRoute::Region { field, .. }
        | InvalidRoute::OpenaiAccount { field, .. }
        | InvalidRoute::Vertex { field, .. }
        | InvalidRoute::Proxy { field, .. }
        | InvalidRoute::ProxyUrl { field, .. }
        | InvalidRoute::ProxyCredentialsInUrl { field }
        | InvalidRoute::SameModel { field, .. }
        | InvalidRoute::Credentials { field, .. }
        | InvalidRoute::Duration { field, .. }
        | InvalidRoute::OutOfRange { field, .. }
        | InvalidRoute::DeadlineExceedsTotal { field, .. }
        | InvalidRoute::Contract { field, .. } => field.clone(),
    }
}

/// The message of an [`InvalidRoute`] without the field it starts with.
pub fn message_of(e: &InvalidRoute) -> String {
    let text = e.to_string();
    let field = field_of(e);
    text.strip_prefix(&format!("{field}: "))
        .map_or_else(|| text.clone(), str::to_owned)
}

/// How to fix an [`InvalidRoute`]: one decision per kind of mistake, so a new one cannot be
/// left without advice.
pub fn fix_of(e: &InvalidRoute) -> &'static str {
    match e {
        InvalidRoute::NoModels => "add the model names clients send, e.g. `models: [chat]`",
        InvalidRoute::EmptyModel { .. } => "remove the empty entry or write the model name",
        InvalidRoute::NoTargets => "add at least one target (`plumb init` writes an example)",
        InvalidRoute::DuplicateTarget { .. } => "rename one of the two targets",
        InvalidRoute::EmptyTargetName { .. } => "give the target a name such as `primary`",
        InvalidRoute::TargetName { .. } => "use a DNS label such as `openai-east`",
        InvalidRoute::BaseUrl { .. } => {
            "write an http:// or https:// URL without query or fragment, e.g. https://api.openai.com/v1"
        }
        InvalidRoute::CredentialsInUrl { .. } => {
            "remove user:password@ from the URL and use credentials.secretRef, env or file"
        }
        InvalidRoute::EmptyUpstreamModel { .. } => "set `model` to the provider's model name",
        InvalidRoute::MissingApiVersion { .. } => "add `apiVersion: \"2024-10-21\"` to the target",
        InvalidRoute::Region { .. } => {
            "give bedrock targets `region: us-east-1` (their AWS region) and `credentials: {aws: true}` only there"
        }
        InvalidRoute::Proxy { .. } => {
            "set either proxy.url (with credentialsSecret if it needs a login) or proxy.none: true"
        }
        InvalidRoute::ProxyUrl { .. } => {
            "write the proxy as http://host:port (the tunnel to the provider is TLS inside it)"
        }
        InvalidRoute::ProxyCredentialsInUrl { .. } => {
            "remove user:password@ from proxy.url and name a Secret in proxy.credentialsSecret"
        }
        InvalidRoute::SameModel { .. } => {
            "list groups of two or more target names of this route, each target in one group"
        }
        InvalidRoute::OpenaiAccount { .. } => {
            "set organization and project only on openai targets, as the ids OpenAI shows (org-…, proj_…)"
        }
        InvalidRoute::Vertex { .. } => {
            "give vertex-ai targets project and region (the Google Cloud project id and location) and a service-account key or google: true; region and google: true on no other provider"
        }
        InvalidRoute::Credentials { .. } => {
            "keep exactly one of secretRef, env, file, passthrough: true, none: true, aws: true"
        }
        InvalidRoute::Duration { .. } => "write a Go duration such as 250ms, 30s or 1m30s",
        InvalidRoute::OutOfRange { .. } => "use a value inside the range the message gives",
        InvalidRoute::DeadlineExceedsTotal { .. } => {
            "shorten this deadline or lengthen spec.deadlines.total"
        }
        InvalidRoute::LastResortTarget(_) => {
            "use `mode: target` together with `target: NAME`, or neither"
        }
        InvalidRoute::UnknownLastResortTarget(_) => "name one of the route's targets",
        InvalidRoute::NoRotationTarget => {
            "add another target, or drop lastResort: the last resort takes no normal traffic"
        }
        InvalidRoute::Contract { .. } => "fix the schema, rule or setting the message names",
        InvalidRoute::ModelTaken { .. } => {
            "serve each model name from one route per namespace: remove it here or there"
        }
    }
}

/// How to fix what the schema or a CEL rule refused.
pub(super) fn schema_fix(v: &schema::Violation) -> String {
    if v.rule {
        return "change the fields the rule names so that it holds".into();
    }
    let m = v.message.as_str();
    let f = v.field.as_str();
    let duration_field = [
        "total",
        "connect",
        "firstByte",
        "firstToken",
        "streamIdle",
        "streamMax",
        "floor",
        "holdFor",
        "window",
        "cooldown",
        "maxCooldown",
        "initial",
        "max",
    ]
    .iter()
    .any(|d| f.ends_with(&format!(".{d}")));
    if m.starts_with("unknown field") {
        "remove the field or correct its spelling (fields are camelCase, e.g. baseUrl)".into()
    } else if m == "required field missing" {
        "add the field".into()
    } else if m.contains("does not match") && duration_field {
        "write a Go duration such as 250ms, 30s or 1m30s".into()
    } else if m.contains("does not match") && f.ends_with(".name") {
        "use a DNS label: lower-case letters, digits and '-', e.g. `openai-east`".into()
    } else if m.contains("does not match") && f.ends_with("baseUrl") {
        "write an http:// or https:// URL without spaces, query or fragment".into()
    } else if m.contains("is not one of") {
        "use one of the listed values".into()
    } else if m.contains("is not of type") {
        "write a value of the type the message names".into()
    } else if m.contains("less than") || m.contains("greater than") {
        "use a value inside the allowed range".into()
    } else if m.contains("longer than")
        || m.contains("shorter than")
        || m.contains("has more than")
        || m.contains("has less than")
        || m.contains("has fewer than")
        || m.contains("empty")
    {
        "change the length as the message says".into()
    } else {
        "see `kubectl explain llmroute.spec` for the field's shape".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_invalid_route_has_a_field_that_its_message_starts_with() {
        let e = InvalidRoute::OutOfRange {
            field: "spec.breaker.failureRate".into(),
            value: "2".into(),
            expected: "a number from 0 to 1",
        };
        assert_eq!(field_of(&e), "spec.breaker.failureRate");
        assert_eq!(
            message_of(&e),
            "2 is out of range; expected a number from 0 to 1"
        );
    }
}
