//! How Defender's tools (`mdatp`, `powershell.exe`, `MpCmdRun.exe`) are run: through
//! [`armadito_cli_exec`] (argv only, absolute path, cleared environment, deadline, cancel kills
//! the process group, bounded output).
//!
//! Invariants specific to Defender:
//! * The PowerShell script texts are fixed strings of this crate; data (values to write)
//!   travels in environment variables the script reads ([`Cmd::env`]), so nothing from GLPI
//!   can become code.
//! * Unix children also get the system `PATH` the vendor tools need for their own helpers;
//!   Windows children get the system locations PowerShell and the Defender module need
//!   ([`armadito_cli_exec::default_env`]).

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

pub use armadito_cli_exec::{Cmd, ExecError, Output};

/// Output kept per stream (a full scan's MpCmdRun log can be long).
const MAX_OUTPUT: usize = 8 * 1024 * 1024;

/// `program args…` with Defender's environment, a 60 s deadline (callers set theirs) and
/// errors that say where the program is configured.
pub fn call<I, A>(program: &Path, args: I) -> Cmd
where
    I: IntoIterator<Item = A>,
    A: Into<OsString>,
{
    Cmd::new(program, Duration::from_secs(60))
        .args(args)
        .system_path()
        .max_output(MAX_OUTPUT)
        .settings("backends.defender")
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn environment_is_the_allow_list_plus_the_call_data() {
        // cargo sets this for the test process: the child must not inherit it
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        let out = call(
            Path::new("/bin/sh"),
            ["-c", "env; echo \"$0\"", "$(id) ; *"],
        )
        .env("ARMADITO_VALUE", "x")
        .run()
        .unwrap();
        let has = |line: &str| out.stdout.lines().any(|l| l == line);
        assert!(!out.stdout.contains("CARGO_MANIFEST_DIR"), "{}", out.stdout);
        assert!(has("ARMADITO_VALUE=x") && has("LANG=C"), "{}", out.stdout);
        assert!(has("PATH=/usr/sbin:/usr/bin:/sbin:/bin"), "{}", out.stdout);
        assert!(has("$(id) ; *"), "{}", out.stdout);
    }

    #[test]
    fn errors_say_where_the_program_is_set() {
        let err = call(Path::new("/nonexistent/mdatp"), ["health"])
            .run()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "/nonexistent/mdatp not found (set its path in [backends.defender])"
        );
        let err = call(Path::new("mdatp"), ["health"]).run().unwrap_err();
        assert!(matches!(err, ExecError::NotAbsolute { .. }), "{err}");
        assert!(err.to_string().ends_with("(set it in [backends.defender])"));
    }
}
