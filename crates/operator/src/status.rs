//! An `LlmRoute`'s status, from what the reconciler found: whether the spec compiled, which
//! generation serves, and what the sidecars said. Pure: the reconciler writes the result.
//!
//! - `Accepted`: the observed generation compiles (`Compiled`), or not (`Invalid`, with the
//!   compiler's message: the field and what to fix), or it names Secrets that are not
//!   labelled for routes (`SecretNotLabelled`, naming them and saying how to label them), or
//!   the namespace's snapshot would be too large with it (`SnapshotTooLarge`).
//! - `Programmed`: every connected sidecar of the namespace runs the serving generation
//!   (`Programmed`), some do not yet (`Pending`), some refused it (`Rejected`), none is
//!   connected (`NoSidecars`, status Unknown), or nothing can serve (`NotServing`).
//! - `Degraded`: an invalid update left an older generation serving (`InvalidUpdate`), or
//!   sidecars refused the route (`SidecarRejected`); else `AsExpected`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use plumb_api::{LlmRouteStatus, SidecarRejection, SidecarsStatus};

use crate::policies::Programmed;

/// Why the observed generation is not served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The spec does not compile, or a ConfigMap it names is missing: what to fix.
    Invalid(String),
    /// It names Secrets of `namespace` that are not labelled `plumb.dev/credentials: "true"`.
    SecretsNotLabelled {
        /// The route's namespace.
        namespace: String,
        /// The Secrets' names.
        secrets: Vec<String>,
    },
    /// The namespace's snapshot would be over the control stream's message limit with it.
    SnapshotTooLarge(crate::policies::TooLarge),
}

impl Refusal {
    /// The `Accepted` condition's reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Invalid(_) => "Invalid",
            Refusal::SecretsNotLabelled { .. } => "SecretNotLabelled",
            Refusal::SnapshotTooLarge(_) => "SnapshotTooLarge",
        }
    }

    /// The `Accepted` condition's message: what to fix.
    pub fn message(&self) -> String {
        match self {
            Refusal::Invalid(msg) => msg.clone(),
            Refusal::SecretsNotLabelled { namespace, secrets } => {
                crate::credentials::not_labelled_message(namespace, secrets)
            }
            Refusal::SnapshotTooLarge(too_large) => too_large.to_string(),
        }
    }
}

/// What the reconciler found.
#[derive(Clone, Debug)]
pub struct Found {
    /// `metadata.generation`.
    pub generation: i64,
    /// The number of targets, or why the generation is refused.
    pub compiled: Result<u32, Refusal>,
    /// What the compiled generation does that is probably not meant
    /// ([`plumb_policy::Route::warnings`]); empty when it is refused.
    pub warnings: Vec<String>,
    /// The generation in force for the sidecars.
    pub serving: Option<i64>,
    /// The sidecars' word.
    pub sidecars: Programmed,
}

fn condition(
    prev: Option<&LlmRouteStatus>,
    kind: &str,
    status: &str,
    reason: &str,
    message: String,
    generation: i64,
    now: &Time,
) -> Condition {
    // The transition time moves only when the status does.
    let since = prev
        .and_then(|p| p.conditions.iter().find(|c| c.type_ == kind))
        .filter(|c| c.status == status)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    Condition {
        type_: kind.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: Some(generation),
        last_transition_time: since,
    }
}

/// The status for what was found, keeping transition times of unchanged conditions.
pub fn status(prev: Option<&LlmRouteStatus>, f: &Found, now: &Time) -> LlmRouteStatus {
    let g = f.generation;
    let accepted = match &f.compiled {
        Ok(n) => condition(
            prev,
            "Accepted",
            "True",
            "Compiled",
            match f.warnings.len() {
                0 => format!("generation {g} compiles: {n} targets"),
                1 => format!(
                    "generation {g} compiles: {n} targets, with a warning in status.warnings"
                ),
                w => format!(
                    "generation {g} compiles: {n} targets, with {w} warnings in status.warnings"
                ),
            },
            g,
            now,
        ),
        Err(refusal) => condition(
            prev,
            "Accepted",
            "False",
            refusal.reason(),
            refusal.message(),
            g,
            now,
        ),
    };
    let s = &f.sidecars;
    let rejections: Vec<String> = s
        .rejections
        .iter()
        .map(|(pod, why)| format!("{pod}: {why}"))
        .collect();
    let programmed = match f.serving {
        None => condition(
            prev,
            "Programmed",
            "False",
            "NotServing",
            "no generation of this route has compiled; nothing is given to the sidecars".into(),
            g,
            now,
        ),
        Some(_) if s.connected == 0 => condition(
            prev,
            "Programmed",
            "Unknown",
            "NoSidecars",
            "no sidecar of the namespace is connected".into(),
            g,
            now,
        ),
        Some(sg) if !rejections.is_empty() => condition(
            prev,
            "Programmed",
            "False",
            "Rejected",
            format!(
                "{} of {} sidecars refused generation {sg}: {}",
                s.rejections.len(),
                s.connected,
                rejections.join("; ")
            ),
            g,
            now,
        ),
        Some(sg) if s.programmed >= s.connected => condition(
            prev,
            "Programmed",
            "True",
            "Programmed",
            format!(
                "{} of {} sidecars run generation {sg}",
                s.programmed, s.connected
            ),
            g,
            now,
        ),
        Some(sg) => condition(
            prev,
            "Programmed",
            "False",
            "Pending",
            format!(
                "{} of {} sidecars run generation {sg}",
                s.programmed, s.connected
            ),
            g,
            now,
        ),
    };
    let degraded = match (&f.compiled, f.serving) {
        (Err(_), Some(sg)) => condition(
            prev,
            "Degraded",
            "True",
            "InvalidUpdate",
            format!("generation {g} was refused; generation {sg} keeps serving"),
            g,
            now,
        ),
        _ if !rejections.is_empty() => condition(
            prev,
            "Degraded",
            "True",
            "SidecarRejected",
            format!("sidecars refused the route: {}", rejections.join("; ")),
            g,
            now,
        ),
        _ => condition(
            prev,
            "Degraded",
            "False",
            "AsExpected",
            String::new(),
            g,
            now,
        ),
    };
    LlmRouteStatus {
        observed_generation: Some(g),
        conditions: vec![accepted, programmed, degraded],
        target_count: f.compiled.as_ref().ok().copied(),
        warnings: if f.compiled.is_ok() {
            f.warnings.clone()
        } else {
            Vec::new()
        },
        // `healthy` and `targets` are the knowledge store's (crate::knowledge), written under
        // its own field manager.
        healthy: None,
        serving_generation: f.serving,
        sidecars: Some(SidecarsStatus {
            connected: s.connected,
            programmed: s.programmed,
            rejections: s
                .rejections
                .iter()
                .take(10)
                .map(|(pod, reason)| SidecarRejection {
                    pod: pod.clone(),
                    reason: reason.clone(),
                })
                .collect(),
        }),
        targets: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Time {
        Time(s.parse().unwrap_or_else(|e| panic!("{e}")))
    }

    fn get<'a>(s: &'a LlmRouteStatus, kind: &str) -> &'a Condition {
        s.conditions
            .iter()
            .find(|c| c.type_ == kind)
            .unwrap_or_else(|| panic!("{kind}"))
    }

    #[test]
    fn warnings_of_an_accepted_generation_are_listed_and_counted_in_accepted() {
        let f = Found {
            generation: 2,
            warnings: vec![
                "spec.sameModel: the targets run 2 models not declared the same: [a (x)] and [b (y)]".to_owned(),
            ],
            compiled: Ok(2),
            serving: Some(2),
            sidecars: Programmed::default(),
        };
        let s = status(None, &f, &t("2026-01-01T00:00:00Z"));
        assert_eq!(s.warnings, f.warnings);
        let accepted = get(&s, "Accepted");
        assert_eq!(accepted.status, "True");
        assert_eq!(
            accepted.message,
            "generation 2 compiles: 2 targets, with a warning in status.warnings"
        );
        let refused = Found {
            compiled: Err(Refusal::Invalid("spec.targets: x".to_owned())),
            ..f
        };
        assert!(
            status(None, &refused, &t("2026-01-01T00:00:00Z"))
                .warnings
                .is_empty(),
            "a refused generation has no warnings of its own"
        );
    }

    #[test]
    fn a_valid_route_with_every_sidecar_programmed() {
        let f = Found {
            generation: 3,
            warnings: vec![],
            compiled: Ok(2),
            serving: Some(3),
            sidecars: Programmed {
                connected: 2,
                programmed: 2,
                rejections: vec![],
            },
        };
        let s = status(None, &f, &t("2026-11-28T10:00:00Z"));
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(get(&s, "Accepted").status, "True");
        assert_eq!(get(&s, "Programmed").reason, "Programmed");
        assert_eq!(
            get(&s, "Programmed").message,
            "2 of 2 sidecars run generation 3"
        );
        assert_eq!(get(&s, "Degraded").status, "False");
        assert_eq!(s.target_count, Some(2));
    }

    #[test]
    fn an_invalid_update_says_what_to_fix_and_that_the_last_good_one_serves() {
        let f = Found {
            generation: 4,
            warnings: vec![],
            compiled: Err(Refusal::Invalid(
                "spec.deadlines.total: \"30 seconds\" is not a duration".into(),
            )),
            serving: Some(3),
            sidecars: Programmed {
                connected: 1,
                programmed: 1,
                rejections: vec![],
            },
        };
        let s = status(None, &f, &t("2026-11-28T10:00:00Z"));
        let a = get(&s, "Accepted");
        assert_eq!((a.status.as_str(), a.reason.as_str()), ("False", "Invalid"));
        assert!(a.message.contains("spec.deadlines.total"));
        assert_eq!(
            get(&s, "Degraded").message,
            "generation 4 was refused; generation 3 keeps serving"
        );
        assert_eq!(
            get(&s, "Programmed").status,
            "True",
            "generation 3 still runs"
        );
        assert_eq!(s.serving_generation, Some(3));
    }

    #[test]
    fn a_route_naming_an_unlabelled_secret_is_refused_by_name_and_the_last_good_one_serves() {
        let f = Found {
            generation: 5,
            warnings: vec![],
            compiled: Err(Refusal::SecretsNotLabelled {
                namespace: "team-a".into(),
                secrets: vec!["db-password".into()],
            }),
            serving: Some(4),
            sidecars: Programmed {
                connected: 1,
                programmed: 1,
                rejections: vec![],
            },
        };
        let s = status(None, &f, &t("2026-11-28T10:00:00Z"));
        let a = get(&s, "Accepted");
        assert_eq!(
            (a.status.as_str(), a.reason.as_str()),
            ("False", "SecretNotLabelled")
        );
        assert!(
            a.message
                .contains("Secret \"db-password\" is not labelled plumb.dev/credentials: \"true\""),
            "{}",
            a.message
        );
        assert!(
            a.message
                .ends_with("kubectl -n team-a label secret db-password plumb.dev/credentials=true"),
            "{}",
            a.message
        );
        assert_eq!(
            get(&s, "Degraded").message,
            "generation 5 was refused; generation 4 keeps serving"
        );
    }

    #[test]
    fn a_generation_too_large_to_send_is_refused_with_its_size_and_the_limit() {
        let f = Found {
            generation: 2,
            warnings: vec![],
            compiled: Err(Refusal::SnapshotTooLarge(crate::policies::TooLarge {
                bytes: 17_000_000,
                limit: 16_777_216,
            })),
            serving: Some(1),
            sidecars: Programmed::default(),
        };
        let s = status(None, &f, &t("2026-11-28T10:00:00Z"));
        let a = get(&s, "Accepted");
        assert_eq!(
            (a.status.as_str(), a.reason.as_str()),
            ("False", "SnapshotTooLarge")
        );
        assert!(
            a.message.starts_with("the namespace's policy snapshot would be 17000000 bytes with this generation, over the 16777216-byte limit"),
            "{}",
            a.message
        );
        assert_eq!(
            get(&s, "Degraded").message,
            "generation 2 was refused; generation 1 keeps serving"
        );
    }

    #[test]
    fn sidecar_rejections_and_pending_and_no_sidecars() {
        let base = Found {
            generation: 1,
            warnings: vec![],
            compiled: Ok(1),
            serving: Some(1),
            sidecars: Programmed::default(),
        };
        let now = t("2026-11-28T10:00:00Z");
        assert_eq!(
            get(&status(None, &base, &now), "Programmed").status,
            "Unknown"
        );
        let pending = Found {
            sidecars: Programmed {
                connected: 3,
                programmed: 1,
                rejections: vec![],
            },
            ..base.clone()
        };
        assert_eq!(
            get(&status(None, &pending, &now), "Programmed").message,
            "1 of 3 sidecars run generation 1"
        );
        let rejected = Found {
            sidecars: Programmed {
                connected: 2,
                programmed: 1,
                rejections: vec![("web-1".into(), "secret api/key not found".into())],
            },
            ..base
        };
        let s = status(None, &rejected, &now);
        assert_eq!(get(&s, "Programmed").reason, "Rejected");
        assert!(
            get(&s, "Degraded")
                .message
                .contains("web-1: secret api/key not found")
        );
        assert_eq!(s.sidecars.unwrap_or_default().rejections.len(), 1);
    }

    #[test]
    fn transition_times_move_only_when_the_status_does() {
        let f = Found {
            generation: 1,
            warnings: vec![],
            compiled: Ok(1),
            serving: Some(1),
            sidecars: Programmed {
                connected: 1,
                programmed: 0,
                rejections: vec![],
            },
        };
        let first = status(None, &f, &t("2026-11-28T10:00:00Z"));
        let later = status(Some(&first), &f, &t("2026-11-28T11:00:00Z"));
        assert_eq!(
            get(&later, "Accepted").last_transition_time,
            t("2026-11-28T10:00:00Z")
        );
        let done = Found {
            sidecars: Programmed {
                connected: 1,
                programmed: 1,
                rejections: vec![],
            },
            ..f
        };
        let s = status(Some(&later), &done, &t("2026-11-28T12:00:00Z"));
        assert_eq!(
            get(&s, "Programmed").last_transition_time,
            t("2026-11-28T12:00:00Z")
        );
        assert_eq!(
            get(&s, "Accepted").last_transition_time,
            t("2026-11-28T10:00:00Z")
        );
    }
}
