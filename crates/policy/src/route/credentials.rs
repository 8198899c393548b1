//! `spec.targets[i].credentials`: where a target's API key comes from.

use std::path::PathBuf;

use plumb_api::{CredentialsSpec, SecretKeyRef};

use super::InvalidRoute;

/// Where a target's API key comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Credentials {
    /// A Secret's key (resolved by the operator).
    Secret(SecretKeyRef),
    /// An environment variable of the sidecar.
    Env(String),
    /// A file.
    File(PathBuf),
    /// The caller's own key.
    Passthrough,
    /// No key.
    None,
    /// The AWS credentials of the sidecar's environment (the default chain), for SigV4.
    Aws,
    /// Google Application Default Credentials of the sidecar's environment (`vertex-ai`).
    Google,
}

impl Credentials {
    /// A stable identity of the credential *source* (never the secret itself), used to key
    /// breakers and to tell whether two targets use different keys.
    pub fn identity(&self, namespace: &str) -> String {
        match self {
            Credentials::Secret(r) => format!("secret:{namespace}/{}/{}", r.name, r.key),
            Credentials::Env(v) => format!("env:{v}"),
            Credentials::File(p) => format!("file:{}", p.display()),
            Credentials::Passthrough => "passthrough".to_owned(),
            Credentials::None => "none".to_owned(),
            Credentials::Aws => "aws".to_owned(),
            Credentials::Google => "google".to_owned(),
        }
    }
}

/// Compiles one target's `credentials` (`field` names it): exactly one source, and an `env`
/// or `file` source that is not empty (an empty one counts as none set).
pub(super) fn compile(field: &str, c: &CredentialsSpec) -> Result<Credentials, InvalidRoute> {
    let found = usize::from(c.secret_ref.is_some())
        + usize::from(c.env.is_some())
        + usize::from(c.file.is_some())
        + usize::from(c.passthrough == Some(true))
        + usize::from(c.none == Some(true))
        + usize::from(c.aws == Some(true))
        + usize::from(c.google == Some(true));
    let invalid = |found| InvalidRoute::Credentials {
        field: field.to_owned(),
        found,
    };
    if found != 1 {
        return Err(invalid(found));
    }
    if c.google == Some(true) {
        return Ok(Credentials::Google);
    }
    match (&c.secret_ref, &c.env, &c.file, c.passthrough, c.none) {
        (Some(r), ..) => Ok(Credentials::Secret(r.clone())),
        (_, Some(v), ..) if !v.is_empty() => Ok(Credentials::Env(v.clone())),
        (_, _, Some(p), ..) if !p.is_empty() => Ok(Credentials::File(PathBuf::from(p))),
        (_, _, _, Some(true), _) => Ok(Credentials::Passthrough),
        (_, _, _, _, Some(true)) => Ok(Credentials::None),
        _ if c.aws == Some(true) => Ok(Credentials::Aws),
        _ => Err(invalid(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELD: &str = "spec.targets[0].credentials";

    fn credentials(yaml: &str) -> Result<Credentials, InvalidRoute> {
        let spec: CredentialsSpec = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        compile(FIELD, &spec)
    }

    #[test]
    fn each_source_compiles_to_its_own_kind() {
        assert_eq!(
            credentials("{secretRef: {name: s, key: k}}"),
            Ok(Credentials::Secret(SecretKeyRef {
                name: "s".to_owned(),
                key: "k".to_owned()
            }))
        );
        assert_eq!(
            credentials("{env: KEY}"),
            Ok(Credentials::Env("KEY".to_owned()))
        );
        assert_eq!(
            credentials("{file: /run/key}"),
            Ok(Credentials::File(PathBuf::from("/run/key")))
        );
        assert_eq!(
            credentials("{passthrough: true}"),
            Ok(Credentials::Passthrough)
        );
        assert_eq!(credentials("{none: true}"), Ok(Credentials::None));
        assert_eq!(credentials("{aws: true}"), Ok(Credentials::Aws));
        assert_eq!(credentials("{google: true}"), Ok(Credentials::Google));
        assert_eq!(
            credentials("{passthrough: false, none: true}"),
            Ok(Credentials::None),
            "false is not a source"
        );
    }

    #[test]
    fn two_sources_are_refused_with_the_count() {
        let err = credentials("{none: true, env: X}").unwrap_err();
        assert_eq!(
            err,
            InvalidRoute::Credentials {
                field: FIELD.to_owned(),
                found: 2
            }
        );
        assert_eq!(
            err.to_string(),
            "spec.targets[0].credentials: set exactly one of secretRef, env, file, passthrough: true, none: true, aws: true or google: true (found 2)"
        );
    }

    #[test]
    fn no_source_is_refused() {
        for yaml in ["{}", "{none: false}"] {
            assert_eq!(
                credentials(yaml),
                Err(InvalidRoute::Credentials {
                    field: FIELD.to_owned(),
                    found: 0
                }),
                "{yaml}"
            );
        }
    }

    #[test]
    fn an_empty_env_or_file_counts_as_no_source() {
        for yaml in ["{env: \"\"}", "{file: \"\"}"] {
            assert_eq!(
                credentials(yaml),
                Err(InvalidRoute::Credentials {
                    field: FIELD.to_owned(),
                    found: 0
                }),
                "{yaml}"
            );
        }
    }

    #[test]
    fn identities_name_the_source_never_the_secret() {
        let secret = Credentials::Secret(SecretKeyRef {
            name: "s".to_owned(),
            key: "k".to_owned(),
        });
        assert_eq!(secret.identity("team"), "secret:team/s/k");
        assert_eq!(Credentials::Env("K".to_owned()).identity("team"), "env:K");
        assert_eq!(
            Credentials::File(PathBuf::from("/k")).identity("team"),
            "file:/k"
        );
        assert_eq!(Credentials::Passthrough.identity("team"), "passthrough");
        assert_eq!(Credentials::None.identity("team"), "none");
    }
}
