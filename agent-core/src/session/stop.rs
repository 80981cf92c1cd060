//! The daemon's stop handle: requested once (a signal, a Windows service control, a test),
//! observed by every part of the loop. Thread-safe and runtime-free on the requesting side, so a
//! Windows service control handler thread may call [`Stop::request`] directly.

use std::sync::Arc;

use tokio::sync::watch;

/// A cloneable "please stop" flag. Clones share one flag; once requested it stays requested.
#[derive(Clone, Debug)]
pub struct Stop {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Stop {
    fn default() -> Self {
        Self::new()
    }
}

impl Stop {
    pub fn new() -> Self {
        Self {
            tx: Arc::new(watch::Sender::new(false)),
        }
    }

    /// Asks the daemon to stop: callable from any thread, async or not, any number of times.
    pub fn request(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_requested(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once a stop has been requested (at once if it already was).
    pub async fn requested(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives in `self`, so wait_for cannot fail while we hold it.
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_from_another_thread_wakes_every_waiter() {
        let stop = Stop::new();
        assert!(!stop.is_requested());
        let waiter = tokio::spawn({
            let s = stop.clone();
            async move { s.requested().await }
        });
        let other = stop.clone();
        std::thread::spawn(move || other.request()).join().unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        // Already requested: resolves at once, and stays requested.
        stop.requested().await;
        assert!(stop.is_requested());
    }
}
