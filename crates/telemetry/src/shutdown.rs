//! How a Plumb process learns it must stop.

use tokio::signal::unix::{SignalKind, signal as unix_signal};

/// Resolves when the process is asked to stop: SIGTERM (what Kubernetes sends) or SIGINT
/// (ctrl-c). Logs that it happened.
///
/// If SIGTERM cannot be listened for, only SIGINT stops the process; if SIGINT cannot, this
/// resolves at once (the process cannot be stopped cleanly, so it stops now).
pub async fn signal() {
    let term = async {
        match unix_signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    tracing::info!("shutdown signal received");
}
