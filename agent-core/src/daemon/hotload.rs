//! The daemon's backend: started once and kept (in process isolation, one plugin host that
//! lives between calls, so an idle daemon pays no spawn per call), and kept in line with the
//! plugins folder.
//!
//! Invariants:
//! * Tasks lease the backend per call or per job ([`BackendSource`]); the folder is rescanned
//!   ([`Registry::rescan`]: new file checked, newer version of the selected backend swapped in,
//!   removed file unloaded, bad file refused and reported) only while no lease is out, so a
//!   newer plugin replaces the old one between two calls, never under a running scan.
//! * Rescans are triggered by the folder watcher (inotify through `notify`), every `[plugins]
//!   watch_interval` (a missed event), and by SIGHUP.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::plugins::{Change, PluginStatus, Registry};
use crate::session::{AgentError, BackendLease, BackendSource, Context};

use super::status::BackendInUse;

/// The configured backend of a running daemon.
pub struct LiveBackend {
    name: String,
    registry: Arc<Registry>,
    leases: Arc<AtomicUsize>,
}

/// Counts a lease out; dropped with it.
struct LeaseGuard(Arc<AtomicUsize>);

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl LiveBackend {
    /// Starts the backend `ctx` names (errors as a one-shot run reports them).
    pub fn start(ctx: &Context) -> Result<Self, AgentError> {
        let (registry, backend) = ctx.backend()?;
        Ok(Self {
            name: backend.metadata().name.clone(),
            registry,
            leases: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// No call or job is using the backend.
    pub fn idle(&self) -> bool {
        self.leases.load(Ordering::SeqCst) == 0
    }

    /// Rescans the plugins folder (blocking: hashes and may start a plugin host).
    pub fn rescan(&self) -> Vec<Change> {
        self.registry.rescan()
    }

    /// The backend in use: name, version, file and SHA-256, from the registry's report.
    pub fn in_use(&self) -> Option<BackendInUse> {
        self.registry
            .reports()
            .into_iter()
            .find(|r| r.status == PluginStatus::Loaded && r.name.as_deref() == Some(&self.name))
            .map(|r| BackendInUse {
                name: self.name.clone(),
                version: r.version.unwrap_or_default(),
                file: r.file.display().to_string(),
                sha256: r.hash.unwrap_or_default(),
            })
    }

    /// `[plugins] watch_interval`: the periodic rescan, a fallback to the folder watcher.
    pub fn watch_interval(&self) -> std::time::Duration {
        self.registry.config().watch_interval
    }

    pub fn plugins_dir(&self) -> &Path {
        &self.registry.config().dir
    }
}

impl BackendSource for LiveBackend {
    fn lease(&self, _ctx: &Context) -> Result<BackendLease, AgentError> {
        let backend = self.registry.get(&self.name).ok_or_else(|| {
            AgentError::Task(format!(
                "backend {:?} is not loaded (its plugin was removed or refused: see `armadito-agent plugins`)",
                self.name
            ))
        })?;
        self.leases.fetch_add(1, Ordering::SeqCst);
        let guard = LeaseGuard(self.leases.clone());
        Ok(BackendLease::new(
            backend,
            Box::new((guard, self.registry.clone())),
        ))
    }
}

/// Watches `dir` (not recursively) and signals every change on `tx`. `None` (logged) when the
/// platform watcher cannot start: the periodic rescan still works.
pub fn watch(
    dir: &Path,
    tx: tokio::sync::mpsc::UnboundedSender<()>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let handler = move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            let _ = tx.send(());
        }
    };
    let started = notify::recommended_watcher(handler).and_then(|mut w| {
        w.watch(dir, notify::RecursiveMode::NonRecursive)?;
        Ok(w)
    });
    match started {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), "cannot watch the plugins folder, rescanning it periodically only: {e}");
            None
        }
    }
}
