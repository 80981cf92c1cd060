//! How Armadito's tools, `journalctl` and the restart command are run: through
//! [`armadito_cli_exec`] (argv only, absolute path, cleared environment plus a C locale,
//! deadline, cancel kills the process group, bounded output).

use std::time::Duration;

pub use armadito_cli_exec::{Cmd, ExecError, Output, program_name};

/// Output kept per stream: a recursive scan's JSON events of a large tree are long.
pub const MAX_OUTPUT: usize = 16 * 1024 * 1024;

/// `argv[0]` (absolute) with the rest as arguments, and Armadito's output bound.
pub fn command<S: AsRef<str>>(argv: &[S], timeout: Duration) -> Result<Cmd, ExecError> {
    Ok(Cmd::from_argv(argv, timeout)?.max_output(MAX_OUTPUT))
}

/// Runs `argv` to completion.
pub fn run<S: AsRef<str>>(argv: &[S], timeout: Duration) -> Result<Output, ExecError> {
    command(argv, timeout)?.run()
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn status_summary_and_bound() {
        let out = run(
            &["/bin/sh", "-c", "echo oops >&2; exit 3"],
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(out.summary(), "exit code 3: oops");
        let cmd = command(&["/bin/true"], Duration::from_secs(1)).unwrap();
        assert_eq!(cmd.max_output, MAX_OUTPUT);
        let err = run(&["/nonexistent/armadito-scan"], Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, ExecError::NotFound { .. }), "{err}");
    }
}
