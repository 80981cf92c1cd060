//! A throw-away clamd for tests and benchmarks, started by `tests/clamd/start-clamd.sh`
//! (offline, EICAR-only database) and stopped on drop. `.ci/run` installs clamav-daemon;
//! without it `start` is an error that says so (callers fail, they never skip silently).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Clamd {
    /// The instance's folder: `clamd.conf`, `log/clamd.log`, the socket.
    pub dir: PathBuf,
    pub socket: String,
    _tmp: tempfile::TempDir,
}

impl Clamd {
    pub fn start() -> Result<Clamd, String> {
        let tmp = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let dir = tmp.path().join("clamd");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("clamd/start-clamd.sh");
        let out = Command::new("sh")
            .arg(script)
            .arg(&dir)
            .output()
            .map_err(|e| format!("run start-clamd.sh: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "clamd did not start (is clamav-daemon installed? see .ci/install-clamav.sh):\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let socket = line
            .split_whitespace()
            .nth(2)
            .ok_or_else(|| format!("start-clamd.sh printed {line:?}, not PID PORT SOCKET"))?
            .to_string();
        Ok(Clamd {
            dir,
            socket,
            _tmp: tmp,
        })
    }

    /// `start`, panicking with its message (for tests).
    pub fn start_or_panic() -> Clamd {
        Clamd::start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The agent.toml table that points the ClamAV backend at this clamd.
    pub fn settings(&self) -> String {
        format!(
            "[backends.clamav]\nsocket = \"{}\"\nclamd_conf = \"{}\"\nlog_file = \"{}\"\n",
            self.socket,
            self.dir.join("clamd.conf").display(),
            self.dir.join("log/clamd.log").display()
        )
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("clamd/stop-clamd.sh");
        let _ = Command::new("sh")
            .arg(script)
            .arg(&self.dir)
            .stdout(Stdio::null())
            .status();
    }
}
