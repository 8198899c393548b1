//! When an attempt's connection was ready: its first-byte and first-token deadlines count from
//! then, not from before it connected.
//!
//! Opening a connection (TCP, a proxy's tunnel, TLS) has a deadline of its own, the route's
//! `connect`; `firstByte` and `firstToken` are what the upstream takes to answer once the request
//! could be sent. Counting the connect inside them cut attempts at a connection storm: a burst of
//! new connections overflows a listen queue, the kernel sends the SYN again after 1 s, and a
//! learned first-token deadline of 1 s (the floor, when the upstream answers in milliseconds)
//! failed the attempt and its failover although the upstream answered at its usual pace once
//! connected (`make bench`, 1,000 streams opened at once through a sidecar on one core: 61–97
//! answered 504).
//!
//! The attempt's future runs in a [`scope`]; the upstream connector, wrapped in [`Clocked`],
//! notes in it when a connection starts opening and when it is ready ([`connection`]), while
//! the attempt polls its request (hyper-util calls and polls the connector from inside the
//! request's future). An attempt on a pooled connection notes nothing. Two cases are not exact:
//! hyper-util races a new connection against the pool, so an attempt whose request went out on
//! a connection freed meanwhile still counts from the new one (later than it could, by at most
//! the connect deadline); and an HTTP/2 request that waits for another attempt's new
//! connection counts from its own start, as every attempt did before.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Uri;
use tokio::time::Instant;
use tower_service::Service;

tokio::task_local! {
    /// The connection the current attempt opened, if it opened one.
    static ATTEMPT: Cell<Connection>;
}

/// What an attempt knows of its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connection {
    /// It opened none (a pooled connection), or runs outside a [`scope`].
    Pooled,
    /// It is opening one, since this instant (or the opening failed: the transport says so).
    Opening {
        /// When the connect started.
        since: Instant,
    },
    /// The connection it opened was ready at this instant.
    Ready {
        /// When the connect (TLS included) finished.
        at: Instant,
    },
}

/// Runs an attempt's `future` with a clock for the connection it may open.
pub async fn scope<F: Future>(future: F) -> F::Output {
    ATTEMPT.scope(Cell::new(Connection::Pooled), future).await
}

/// What the current attempt knows of its connection ([`Connection::Pooled`] outside a
/// [`scope`]).
pub fn connection() -> Connection {
    ATTEMPT.try_with(Cell::get).unwrap_or(Connection::Pooled)
}

/// Notes `now` for the current attempt, if the code runs in one's [`scope`].
fn note(now: Connection) {
    let _ = ATTEMPT.try_with(|c| c.set(now));
}

/// A connector that notes, for the attempt that asked, when its connection started opening and
/// when it was ready.
#[derive(Clone, Debug)]
pub struct Clocked<C>(pub C);

impl<C> Service<Uri> for Clocked<C>
where
    C: Service<Uri>,
    C::Future: Send + 'static,
{
    type Response = C::Response;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, C::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        note(Connection::Opening {
            since: Instant::now(),
        });
        let connecting = self.0.call(dst);
        Box::pin(async move {
            let connected = connecting.await;
            // Finished on another task (the pool answered the attempt first, and hyper-util
            // finishes the connect in the background): no scope there, nothing noted.
            if connected.is_ok() {
                note(Connection::Ready { at: Instant::now() });
            }
            connected
        })
    }
}

/// A connector that takes a given time to connect, for tests of what the clock tells.
#[cfg(test)]
#[derive(Clone)]
pub(crate) struct SlowConnect(pub std::time::Duration);

#[cfg(test)]
impl Service<Uri> for SlowConnect {
    type Response = ();
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<(), std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let took = self.0;
        Box::pin(async move {
            tokio::time::sleep(took).await;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_attempt_sees_when_the_connection_it_opened_was_ready() {
        let start = Instant::now();
        let mut connector = Clocked(SlowConnect(Duration::from_millis(1500)));
        scope(async {
            assert_eq!(connection(), Connection::Pooled);
            let connecting = connector.call(Uri::from_static("http://upstream"));
            assert_eq!(connection(), Connection::Opening { since: start });
            connecting.await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                connection(),
                Connection::Ready {
                    at: start + Duration::from_millis(1500)
                }
            );
        })
        .await;
        // Each attempt has its own scope; outside one, nothing is known.
        assert_eq!(connection(), Connection::Pooled);
        scope(async { assert_eq!(connection(), Connection::Pooled) }).await;
        // A connect finished on another task (hyper-util's background connect) notes nothing
        // in the attempt that started it, and does not fail.
        let connecting = ATTEMPT.sync_scope(Cell::new(Connection::Pooled), || {
            connector.call(Uri::from_static("http://upstream"))
        });
        tokio::spawn(connecting)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
    }
}
