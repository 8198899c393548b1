//! The pod's cloud identity, shared with the sidecar.
//!
//! The clouds give a pod its identity through other mutating webhooks, which write environment
//! variables and projected token volumes into the pod's containers: EKS's pod-identity webhook
//! for IRSA (`AWS_ROLE_ARN`, `AWS_WEB_IDENTITY_TOKEN_FILE` and the `aws-iam-token` volume, for a
//! ServiceAccount annotated `eks.amazonaws.com/role-arn`), the EKS Pod Identity agent's webhook
//! (`AWS_CONTAINER_CREDENTIALS_FULL_URI`, `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` and the
//! `eks-pod-identity-token` volume), or the application's own manifest (a service-account key
//! named by `GOOGLE_APPLICATION_CREDENTIALS`). GKE Workload Identity needs nothing here: the
//! metadata server answers every container of the pod.
//!
//! The sidecar is the container that calls the providers, so it gets the same identity: the
//! first application container that carries any of [`CLOUD_ENV`] lends those variables, and the
//! volume mounts that hold the files they name, to the sidecar. Whichever webhook runs first,
//! the result is the same: if the cloud's runs after this one it writes the sidecar itself or —
//! with `reinvocationPolicy: IfNeeded` — this webhook is called again and adds what is missing,
//! never twice. A pod annotated `plumb.dev/cloud-identity: none` keeps its identity from the
//! sidecar.

use serde_json::{Value, json};

/// The annotation that keeps the pod's cloud identity from the sidecar (`none`) or lends it
/// (`copy`, the default).
pub const CLOUD_IDENTITY_ANNOTATION: &str = "plumb.dev/cloud-identity";

/// The variables that carry a pod's cloud identity.
pub const CLOUD_ENV: [&str; 11] = [
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_SESSION_NAME",
    "AWS_STS_REGIONAL_ENDPOINTS",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CLOUD_PROJECT",
    "GCE_METADATA_HOST",
];

/// Those of [`CLOUD_ENV`] that name a file the sidecar must be able to read.
const FILE_ENV: [&str; 3] = [
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "GOOGLE_APPLICATION_CREDENTIALS",
];

/// What the sidecar borrows: environment entries and volume mounts, as they appear in the lending
/// container (mounts made read-only).
#[derive(Debug, Default, PartialEq)]
pub struct Identity {
    /// `env` entries, whole (`value` or `valueFrom`).
    pub env: Vec<Value>,
    /// `volumeMounts` entries.
    pub mounts: Vec<Value>,
}

/// Whether the annotation lends the identity; an error names the values it takes.
pub fn lends(annotation: Option<&str>) -> Result<bool, String> {
    match annotation {
        None | Some("copy") => Ok(true),
        Some("none") => Ok(false),
        Some(other) => Err(format!(
            "annotation {CLOUD_IDENTITY_ANNOTATION}: {other:?} must be \"copy\" or \"none\""
        )),
    }
}

/// The identity the first application container that has one lends, or an empty one.
pub fn borrowed(pod: &Value) -> Identity {
    let containers = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for c in containers {
        let env: Vec<Value> = c
            .get("env")
            .and_then(Value::as_array)
            .map(|e| {
                e.iter()
                    .filter(|v| v["name"].as_str().is_some_and(|n| CLOUD_ENV.contains(&n)))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if env.is_empty() {
            continue;
        }
        let mounts = c
            .get("volumeMounts")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut wanted: Vec<Value> = Vec::new();
        for file in env
            .iter()
            .filter(|v| v["name"].as_str().is_some_and(|n| FILE_ENV.contains(&n)))
            .filter_map(|v| v["value"].as_str())
        {
            // The mount that holds the file: the deepest whose path is a directory above it.
            let holder = mounts
                .iter()
                .filter(|m| {
                    m["mountPath"].as_str().is_some_and(|p| {
                        let p = p.trim_end_matches('/');
                        file.strip_prefix(p)
                            .is_some_and(|rest| rest.starts_with('/'))
                    })
                })
                .max_by_key(|m| m["mountPath"].as_str().map_or(0, str::len));
            if let Some(m) = holder
                && !wanted
                    .iter()
                    .any(|w| w["name"] == m["name"] && w["mountPath"] == m["mountPath"])
            {
                let mut m = m.clone();
                m["readOnly"] = json!(true);
                wanted.push(m);
            }
        }
        return Identity {
            env,
            mounts: wanted,
        };
    }
    Identity::default()
}

/// What of `identity` the sidecar container `sidecar` does not have yet: variables by name,
/// mounts by path.
pub fn missing(sidecar: &Value, identity: Identity) -> Identity {
    let has_env = |name: &Value| {
        sidecar
            .get("env")
            .and_then(Value::as_array)
            .is_some_and(|e| e.iter().any(|v| &v["name"] == name))
    };
    let has_mount = |m: &Value| {
        sidecar
            .get("volumeMounts")
            .and_then(Value::as_array)
            .is_some_and(|ms| ms.iter().any(|v| v["mountPath"] == m["mountPath"]))
    };
    Identity {
        env: identity
            .env
            .into_iter()
            .filter(|v| !has_env(&v["name"]))
            .collect(),
        mounts: identity
            .mounts
            .into_iter()
            .filter(|m| !has_mount(m))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A container as EKS's pod-identity webhook leaves it for IRSA.
    fn irsa_app() -> Value {
        json!({"name": "app", "image": "app",
        "env": [
            {"name": "LOG", "value": "debug"},
            {"name": "AWS_STS_REGIONAL_ENDPOINTS", "value": "regional"},
            {"name": "AWS_DEFAULT_REGION", "value": "us-east-1"},
            {"name": "AWS_REGION", "value": "us-east-1"},
            {"name": "AWS_ROLE_ARN", "value": "arn:aws:iam::111122223333:role/llm"},
            {"name": "AWS_WEB_IDENTITY_TOKEN_FILE",
             "value": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"},
        ],
        "volumeMounts": [
            {"name": "kube-api-access-x", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true},
            {"name": "aws-iam-token", "mountPath": "/var/run/secrets/eks.amazonaws.com/serviceaccount", "readOnly": true},
        ]})
    }

    #[test]
    fn irsa_lends_its_variables_and_the_token_mount_only() {
        let pod = json!({"spec": {"containers": [{"name": "other", "image": "x"}, irsa_app()]}});
        let id = borrowed(&pod);
        let names: Vec<&str> = id.env.iter().filter_map(|v| v["name"].as_str()).collect();
        assert_eq!(
            names,
            [
                "AWS_STS_REGIONAL_ENDPOINTS",
                "AWS_DEFAULT_REGION",
                "AWS_REGION",
                "AWS_ROLE_ARN",
                "AWS_WEB_IDENTITY_TOKEN_FILE"
            ]
        );
        assert_eq!(id.mounts.len(), 1);
        assert_eq!(id.mounts[0]["name"], "aws-iam-token");
        assert_eq!(id.mounts[0]["readOnly"], true);
    }

    #[test]
    fn pod_identity_and_a_google_key_lend_their_files_mounts() {
        let pod = json!({"spec": {"containers": [{"name": "app", "image": "app",
        "env": [
            {"name": "AWS_CONTAINER_CREDENTIALS_FULL_URI", "value": "http://169.254.170.23/v1/credentials"},
            {"name": "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
             "value": "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token"},
            {"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": "/etc/gcp/sa/key.json"},
        ],
        "volumeMounts": [
            {"name": "eks-pod-identity-token", "mountPath": "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount"},
            {"name": "gcp", "mountPath": "/etc/gcp"},
            {"name": "gcp-sa", "mountPath": "/etc/gcp/sa/"},
            {"name": "near-miss", "mountPath": "/etc/gc"},
        ]}]}});
        let id = borrowed(&pod);
        assert_eq!(id.env.len(), 3);
        let mounts: Vec<&str> = id
            .mounts
            .iter()
            .filter_map(|m| m["name"].as_str())
            .collect();
        assert_eq!(mounts, ["eks-pod-identity-token", "gcp-sa"]);
    }

    #[test]
    fn no_identity_lends_nothing_and_what_the_sidecar_has_is_not_added_twice() {
        let plain = json!({"spec": {"containers": [{"name": "app", "image": "app",
            "env": [{"name": "LOG", "value": "x"}]}]}});
        assert_eq!(borrowed(&plain), Identity::default());

        let pod = json!({"spec": {"containers": [irsa_app()]}});
        let sidecar = json!({"name": "plumb-sidecar",
            "env": [{"name": "AWS_ROLE_ARN", "value": "arn:aws:iam::111122223333:role/llm"}],
            "volumeMounts": [{"name": "aws-iam-token",
                "mountPath": "/var/run/secrets/eks.amazonaws.com/serviceaccount"}]});
        let rest = missing(&sidecar, borrowed(&pod));
        assert_eq!(rest.env.len(), 4);
        assert!(rest.env.iter().all(|v| v["name"] != "AWS_ROLE_ARN"));
        assert!(rest.mounts.is_empty());
    }

    #[test]
    fn the_annotation_takes_copy_or_none() {
        assert_eq!(lends(None), Ok(true));
        assert_eq!(lends(Some("copy")), Ok(true));
        assert_eq!(lends(Some("none")), Ok(false));
        let err = lends(Some("yes")).unwrap_err();
        assert!(err.contains("\"copy\" or \"none\""), "{err}");
    }
}
