//! Standalone mode: routes from a file of `LlmRoute` documents, validated by the same code a
//! cluster uses, reloaded when the file (or a key file or variable it names) changes.
//!
//! The file is polled rather than watched: polling sees every kind of replacement (editors'
//! rename-over, Kubernetes ConfigMap symlink swaps) the same way, and costs one small read a
//! second.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use plumb_policy::{InvalidRoutesFile, Sources, parse_routes_file_with};
use plumb_telemetry::{Metrics, ReloadLabels};

use crate::keys::{InvalidKey, Keys};
use crate::table::{Policy, Table};

/// Why a routes file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The routes are invalid.
    #[error("{path}: {source}")]
    Routes {
        /// The path.
        path: String,
        /// What is wrong.
        source: Box<InvalidRoutesFile>,
    },
    /// A key cannot be resolved.
    #[error("{path}: {source}")]
    Key {
        /// The path.
        path: String,
        /// What is wrong.
        source: Box<InvalidKey>,
    },
}

fn fingerprint(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// Reads, validates and resolves a routes file.
pub fn load(path: &Path) -> Result<(Policy, u64), LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.display().to_string(),
        source,
    })?;
    resolve(path, &bytes)
}

/// Validates and resolves the contents `bytes` of the routes file at `path`.
fn resolve(path: &Path, bytes: &[u8]) -> Result<(Policy, u64), LoadError> {
    let display = path.display().to_string();
    let hash = fingerprint(bytes);
    let text = String::from_utf8_lossy(bytes);
    let dir = path.parent().unwrap_or(Path::new("."));
    let routes = parse_routes_file_with(&text, &Sources::in_dir(dir)).map_err(|source| {
        LoadError::Routes {
            path: display.clone(),
            source: Box::new(source),
        }
    })?;
    let keys = Keys::resolve_local(&routes, |v| std::env::var(v).ok()).map_err(|source| {
        LoadError::Key {
            path: display.clone(),
            source: Box::new(source),
        }
    })?;
    let policy = Policy {
        routes,
        keys,
        version: format!("{display}#{hash:016x}"),
    };
    Ok((policy, hash))
}

/// Logs, once per load, what the routes do that compiles but is probably not meant (the
/// operator writes the same warnings into each route's status).
pub fn log_warnings(routes: &plumb_policy::RouteSet) {
    for route in routes.routes() {
        for w in route.warnings() {
            tracing::warn!(route = %route.id, warning = %w, "route warning");
        }
    }
}

/// Polls the file every `interval` and applies each valid change; an invalid change is logged
/// once and the last good policy keeps serving. A change is taken once it reads the same at two
/// polls in a row, so a file caught while it is being written (truncated, or half there, as a
/// plain write leaves it for a moment) is neither applied nor rejected. Runs until the task is
/// dropped.
pub async fn watch(
    path: PathBuf,
    table: Arc<Table>,
    metrics: Arc<Metrics>,
    interval: Duration,
    mut applied: u64,
) {
    let mut rejected: Option<u64> = None;
    // The changed contents the last poll read, not yet taken.
    let mut changing: Option<u64> = None;
    loop {
        tokio::time::sleep(interval).await;
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                if rejected != Some(0) {
                    tracing::error!(path = %path.display(), error = %e, "cannot read the routes file; the last good routes keep serving");
                    metrics
                        .policy_loads
                        .get_or_create(&ReloadLabels { result: "rejected" })
                        .inc();
                    rejected = Some(0);
                }
                continue;
            }
        };
        let hash = fingerprint(&bytes);
        if hash == applied {
            changing = None;
            refresh_keys(&path, &table, &metrics);
            continue;
        }
        if rejected == Some(hash) {
            changing = None;
            continue;
        }
        if changing.replace(hash) != Some(hash) {
            continue;
        }
        match resolve(&path, &bytes) {
            Ok((policy, hash)) => {
                tracing::info!(version = %policy.version, routes = policy.routes.routes().len(), "routes reloaded");
                log_warnings(&policy.routes);
                table.apply(policy, &metrics);
                metrics
                    .policy_loads
                    .get_or_create(&ReloadLabels { result: "applied" })
                    .inc();
                applied = hash;
                rejected = None;
            }
            Err(e) => {
                tracing::error!(error = %e, "the changed routes file is invalid; the last good routes keep serving");
                metrics
                    .policy_loads
                    .get_or_create(&ReloadLabels { result: "rejected" })
                    .inc();
                rejected = Some(hash);
            }
        }
    }
}

/// Re-reads the keys of the routes in force (a rotated key file or variable) and applies them
/// when they changed.
fn refresh_keys(path: &Path, table: &Table, metrics: &Metrics) {
    let Some(current) = table.current() else {
        return;
    };
    match Keys::resolve_local(&current.routes, |v| std::env::var(v).ok()) {
        Ok(keys) if keys != current.keys => {
            tracing::info!(path = %path.display(), "API keys changed; applied");
            table.apply(
                Policy {
                    routes: current.routes.clone(),
                    keys,
                    version: current.version.clone(),
                },
                metrics,
            );
        }
        Ok(_) => {}
        Err(e) => {
            tracing::debug!(error = %e, "keys could not be refreshed; keeping the ones in force")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str) -> String {
        format!(
            "apiVersion: plumb.dev/v1alpha1
kind: LlmRoute
metadata: {{name: {name}}}
spec:
  match: {{models: [{name}]}}
  targets:
    - {{name: primary, provider: openai, baseUrl: 'http://127.0.0.1:9/v1', model: m, credentials: {{none: true}}}}
"
        )
    }

    fn loads(metrics: &Metrics, result: &'static str) -> u64 {
        metrics
            .policy_loads
            .get_or_create(&ReloadLabels { result })
            .get()
    }

    #[tokio::test(start_paused = true)]
    async fn a_file_caught_half_written_is_neither_applied_nor_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("routes.yaml");
        std::fs::write(&path, route("a")).unwrap();
        let (policy, hash) = load(&path).unwrap();
        let (table, metrics) = (Arc::new(Table::new()), Arc::new(Metrics::new()));
        table.apply(policy, &metrics);
        let interval = Duration::from_secs(1);
        let watcher = tokio::spawn(watch(
            path.clone(),
            table.clone(),
            metrics.clone(),
            interval,
            hash,
        ));
        let routes = || table.current().map(|p| p.routes.routes().len());
        // A poll reads the new file while it is written: its first route only (valid, and
        // one route short), then the whole of it at the next poll.
        let whole = format!("{}---\n{}", route("a"), route("b"));
        std::fs::write(&path, &whole[..route("a").len()]).unwrap();
        tokio::time::sleep(interval + interval / 10).await;
        std::fs::write(&path, "apiVersion: plumb.dev/v1alpha1\nkind: Llm").unwrap();
        tokio::time::sleep(interval).await;
        std::fs::write(&path, &whole).unwrap();
        tokio::time::sleep(interval).await;
        assert_eq!(
            routes(),
            Some(1),
            "nothing taken before it read the same twice"
        );
        tokio::time::sleep(interval).await;
        assert_eq!(routes(), Some(2));
        assert_eq!(
            (loads(&metrics, "applied"), loads(&metrics, "rejected")),
            (1, 0)
        );
        // An invalid file that stays is rejected, once; the last good routes keep serving.
        std::fs::write(&path, "apiVersion: plumb.dev/v1alpha1\nkind: Llm").unwrap();
        tokio::time::sleep(interval * 4).await;
        assert_eq!(routes(), Some(2));
        assert_eq!(
            (loads(&metrics, "applied"), loads(&metrics, "rejected")),
            (1, 1)
        );
        watcher.abort();
    }
}
