//! The Windows service: `armadito-agent service install|uninstall|start|stop`, and the entry
//! point the Service Control Manager (SCM) starts, `armadito-agent service run`, which runs
//! [`crate::daemon::run`] until the SCM asks it to stop. On Linux the package's systemd unit
//! (`packaging/systemd/armadito-agent.service`) plays this part.
//!
//! Invariants:
//! - Windows only. Elsewhere every action fails with exit 2 ([`AgentError::CommandLine`])
//!   naming the systemd unit; the subcommand stays in `--help` and the man page on every
//!   platform so the documentation is the same everywhere.
//! - The SCM runs `<absolute path of this exe> service run [-c <absolute config file>]` as
//!   LocalSystem; Stop, Shutdown and Preshutdown all become one [`crate::daemon::Stop::request`],
//!   so the daemon stops exactly as on SIGTERM (scan cancelled and reported, outbox flushed).
//! - `service run` must be handled before any async runtime exists: the SCM dispatcher blocks
//!   the calling thread and starts the service on a thread of its own (`main.rs` calls
//!   [`run_as_service`] first, as it does for `plugin-host`).

use std::process::ExitCode;

use crate::cli::{Cli, GlobalOptions, ServiceAction};
use crate::session::AgentError;

#[cfg(windows)]
mod windows;

/// The service's name for the SCM (`sc.exe query armadito-agent`).
pub const SERVICE_NAME: &str = "armadito-agent";

/// `armadito-agent service install|uninstall|start|stop`.
pub fn control(action: ServiceAction, opts: &GlobalOptions) -> Result<(), AgentError> {
    #[cfg(windows)]
    {
        windows::control(action, opts)
    }
    #[cfg(not(windows))]
    {
        let _ = (action, opts);
        Err(not_windows())
    }
}

/// `armadito-agent service run`: hands the main thread to the SCM dispatcher until the service
/// has stopped.
pub fn run_as_service(cli: Cli) -> ExitCode {
    #[cfg(windows)]
    {
        windows::run_as_service(cli)
    }
    #[cfg(not(windows))]
    {
        drop(cli);
        let e = not_windows();
        eprintln!("armadito-agent: {e}");
        ExitCode::from(e.exit_code())
    }
}

#[cfg(not(windows))]
fn not_windows() -> AgentError {
    AgentError::CommandLine(
        "`service` manages the Windows service; on Linux the systemd unit runs the daemon \
         (systemctl enable --now armadito-agent), or run `armadito-agent daemon` in the foreground"
            .into(),
    )
}

#[cfg(all(test, not(windows)))]
mod tests {
    use super::*;

    #[test]
    fn every_action_is_a_command_line_error_outside_windows() {
        for action in [
            ServiceAction::Install,
            ServiceAction::Uninstall,
            ServiceAction::Start,
            ServiceAction::Stop,
            ServiceAction::Run,
        ] {
            let e = control(action, &GlobalOptions::default()).unwrap_err();
            assert_eq!(e.exit_code(), crate::cli::exit::COMMAND_LINE, "{action:?}");
            assert!(e.to_string().contains("systemctl enable --now"), "{e}");
        }
    }
}
