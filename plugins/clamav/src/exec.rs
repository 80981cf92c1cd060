//! How ClamAV's helpers (clamd restart command, clamconf) are run: through
//! [`armadito_cli_exec`] (argv only, absolute path never looked up in `PATH`, cleared
//! environment, deadline with the whole process group killed, bounded output, and a restart
//! script that leaves clamd behind holding our pipes does not hang us).
//!
//! ClamAV's own invariant: a restart script may call other programs, so children also get the
//! system `PATH` ([`armadito_cli_exec::SYSTEM_PATH`]) next to the C locale.

use std::time::Duration;

pub use armadito_cli_exec::{Cmd, ExecError, Output};

/// Output kept per stream: these helpers print little.
const MAX_OUTPUT: usize = 256 * 1024;

/// Run `argv` (`argv[0]` absolute) with stdin closed, capture its output, kill it after
/// `timeout`.
pub fn run(argv: &[String], timeout: Duration) -> Result<Output, ExecError> {
    Cmd::from_argv(argv, timeout)?
        .system_path()
        .max_output(MAX_OUTPUT)
        .run()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// Issue 12 item 10: a program name is never looked up in PATH, and the child does not
    /// inherit the agent's environment (only the allow-list plus the system PATH).
    #[test]
    fn programs_by_name_are_refused_and_the_environment_is_cleared() {
        let err = run(&argv(&["sh", "-c", "true"]), Duration::from_secs(5)).unwrap_err();
        assert!(matches!(err, ExecError::NotAbsolute { .. }), "{err}");
        assert!(err.to_string().contains("never looked up in PATH"), "{err}");
        let out = run(&argv(&["/usr/bin/env"]), Duration::from_secs(5)).unwrap();
        let mut vars: Vec<&str> = out.stdout.lines().collect();
        vars.sort();
        assert_eq!(
            vars,
            ["LANG=C", "LC_ALL=C", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
            "{}",
            out.stdout
        );
        assert!(matches!(
            run(&[], Duration::from_secs(1)),
            Err(ExecError::Empty)
        ));
    }

    #[test]
    fn output_is_bounded() {
        let out = run(
            &argv(&["/usr/bin/head", "-c", "1000000", "/dev/zero"]),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(out.stdout.len(), MAX_OUTPUT);
    }
}
