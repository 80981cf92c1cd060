//! STUB for the packaging branch: replaced by the daemon branch at merge.
//!
//! Only the public API the Windows service and the packaging need: [`run`] and [`Stop`].
//! [`run`] here does nothing but wait for the stop request.

use crate::session::{AgentError, Context};

/// A cloneable stop handle: [`Stop::request`] from any thread (a signal handler, a Windows
/// service control handler), [`Stop::requested`] resolves once a stop was requested.
#[derive(Debug, Clone)]
pub struct Stop {
    tx: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for Stop {
    fn default() -> Self {
        Self::new()
    }
}

impl Stop {
    pub fn new() -> Self {
        Self {
            tx: std::sync::Arc::new(tokio::sync::watch::channel(false).0),
        }
    }

    /// Asks the daemon to stop. Thread-safe, never blocks.
    pub fn request(&self) {
        self.tx.send_replace(true);
    }

    /// Resolves once [`Stop::request`] was called (at once if it already was).
    pub async fn requested(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail.
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// Runs the daemon until `stop` is requested (STUB: only waits).
pub async fn run(_ctx: &Context, stop: Stop) -> Result<(), AgentError> {
    tracing::warn!("daemon STUB (packaging branch): waiting for the stop request");
    stop.requested().await;
    Ok(())
}
