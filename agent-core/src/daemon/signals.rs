//! Signals: SIGTERM and SIGINT stop the daemon, SIGHUP reloads it (Unix); Ctrl-C stops it on
//! Windows, where the service control handler calls [`Stop::request`] itself.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::session::Stop;

/// Listens until the daemon stops: requests `stop` on SIGTERM/SIGINT (Ctrl-C), notifies
/// `reload` on SIGHUP. The caller aborts the returned task when the daemon ends.
pub fn listen(stop: Stop, reload: Arc<Notify>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let (term, hup) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            );
            let (Ok(mut term), Ok(mut hup)) = (term, hup) else {
                tracing::error!(
                    "cannot install the SIGTERM/SIGHUP handlers: only Ctrl-C stops the daemon"
                );
                let _ = tokio::signal::ctrl_c().await;
                stop.request();
                return;
            };
            loop {
                tokio::select! {
                    _ = term.recv() => {
                        tracing::info!("SIGTERM: stopping");
                        break;
                    }
                    _ = tokio::signal::ctrl_c() => {
                        tracing::info!("SIGINT: stopping");
                        break;
                    }
                    _ = hup.recv() => {
                        tracing::info!("SIGHUP: reloading the configuration and rescanning the plugins folder");
                        reload.notify_one();
                    }
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = reload;
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("Ctrl-C: stopping");
        }
        stop.request();
    })
}

/// Tells systemd (`Type=notify`) how the daemon is doing; does nothing without `NOTIFY_SOCKET`
/// (or off Unix).
pub fn notify_systemd(state: SystemdState<'_>) {
    #[cfg(unix)]
    {
        use sd_notify::NotifyState;
        let states: Vec<NotifyState<'_>> = match state {
            SystemdState::Ready(status) => vec![NotifyState::Ready, NotifyState::Status(status)],
            SystemdState::Reloading => vec![NotifyState::Reloading],
            SystemdState::Status(status) => vec![NotifyState::Status(status)],
            SystemdState::Stopping => vec![NotifyState::Stopping],
        };
        if let Err(e) = sd_notify::notify(false, &states) {
            tracing::debug!("sd_notify: {e}");
        }
    }
    #[cfg(not(unix))]
    let _ = state;
}

/// What [`notify_systemd`] says (nothing is read off Unix, where there is no systemd).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(unix), allow(dead_code))]
pub enum SystemdState<'a> {
    Ready(&'a str),
    Reloading,
    Status(&'a str),
    Stopping,
}

/// glibc's allocator keeps freed memory and one arena per thread that ever allocated (the
/// blocking pool, the folder watcher): a daemon that is idle most of the time should not. One
/// arena, and freed pages given back after each run. Elsewhere a no-op.
pub fn lean_allocator(first: bool) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if first {
            // SAFETY: mallopt only changes allocator tuning; called before other threads start.
            unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
        }
        // SAFETY: malloc_trim releases free heap pages; it has no preconditions.
        unsafe { libc::malloc_trim(0) };
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = first;
}
