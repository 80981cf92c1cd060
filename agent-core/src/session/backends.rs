//! Where a task gets its backend from: a one-shot run starts it on first need and keeps it for
//! the run ([`OneShot`]); the daemon hands out its long-lived, hot-loaded one (a
//! [`BackendSource`] of its own). A task asks once per call or per job, never caches a lease
//! across jobs, so a newer plugin is picked up between two calls and never under one.

use std::any::Any;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::plugins::{Backend, Registry};
use crate::session::{AgentError, Context};

/// The backend for one call or one job. What keeps it alive (its registry, and in the daemon a
/// guard that holds plugin swaps back) lives as long as the lease.
pub struct BackendLease {
    pub backend: Arc<dyn Backend>,
    _keep: Box<dyn Any + Send + Sync>,
}

impl BackendLease {
    pub fn new(backend: Arc<dyn Backend>, keep: Box<dyn Any + Send + Sync>) -> Self {
        Self {
            backend,
            _keep: keep,
        }
    }
}

/// Gives out the configured backend.
pub trait BackendSource: Send + Sync {
    fn lease(&self, ctx: &Context) -> Result<BackendLease, AgentError>;
}

/// A started backend and the registry that owns its plugin host.
type Started = (Arc<Registry>, Arc<dyn Backend>);

/// One-shot runs: the backend is started on first need (one plugin host) and kept until the
/// run ends.
#[derive(Default)]
pub struct OneShot {
    started: Mutex<Option<Started>>,
}

impl BackendSource for OneShot {
    fn lease(&self, ctx: &Context) -> Result<BackendLease, AgentError> {
        let mut started = self.started.lock();
        let (registry, backend) = match &*started {
            Some(s) => s.clone(),
            None => {
                let s = ctx.backend()?;
                *started = Some(s.clone());
                s
            }
        };
        Ok(BackendLease::new(backend, Box::new(registry)))
    }
}
