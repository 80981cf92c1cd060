//! `armadito-info --json` and `armadito-scan --json [-r] PATH` (backends.md A.4), what the old
//! agent's DEV branch used.
//!
//! Invariants:
//! * The tools are run by the absolute paths of the settings, with an argv; the only value
//!   from the server is the scan path, always the last argument and always absolute.
//! * The tools talk to the daemon socket themselves without checking who serves it, so the
//!   socket's owner is checked first, as for [`super::rpc`], when a daemon socket is there.
//! * A non-zero exit fails the call with the tool's message; detections printed before are
//!   not reported as a successful scan.

use std::cell::Cell;
use std::path::PathBuf;
use std::time::Duration;

use armadito_plugin_api::ScanResult;

use super::exec::{ExecError, command, program_name, run};
use super::rpc::RpcTransport;
use super::{Kind, ScanJob, ScanSink, Transport, TransportError, now_f64};
use crate::scan::{ScanState, Step};
use crate::wire::event::parse_gen3;
use crate::wire::framing::{Frame, split_cli_output};
use crate::wire::info::{AvInfo, parse_info};

pub struct CliTransport {
    pub info: PathBuf,
    pub scan: PathBuf,
    pub call_timeout: Duration,
    pub scan_timeout: Duration,
    /// The daemon socket the tools will use, checked before they run.
    pub daemon: RpcTransport,
}

fn exec_error(e: ExecError) -> TransportError {
    match e {
        ExecError::NotFound { .. } => TransportError::Unavailable(e.to_string()),
        ExecError::Timeout { .. } => TransportError::Timeout(e.to_string()),
        other => TransportError::Failed(other.to_string()),
    }
}

impl CliTransport {
    fn check_daemon(&self) -> Result<(), TransportError> {
        match self.daemon.connect() {
            Ok(_) | Err(TransportError::Unavailable(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Transport for CliTransport {
    fn kind(&self) -> Kind {
        Kind::Cli
    }

    fn status(&self) -> Result<AvInfo, TransportError> {
        if !self.info.exists() {
            return Err(TransportError::Unavailable(format!(
                "{} is not installed",
                self.info.display()
            )));
        }
        self.check_daemon()?;
        let argv = vec![self.info.display().to_string(), "--json".to_string()];
        let out = run(&argv, self.call_timeout).map_err(exec_error)?;
        if !out.status.success() {
            return Err(TransportError::Failed(format!(
                "{} --json failed ({})",
                program_name(&self.info),
                out.summary()
            )));
        }
        let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).map_err(|e| {
            TransportError::Failed(format!(
                "{} --json printed invalid JSON: {e}",
                program_name(&self.info)
            ))
        })?;
        parse_info(&v).map_err(TransportError::Failed)
    }

    fn scan(&self, job: &ScanJob<'_>, sink: &dyn ScanSink) -> Result<ScanResult, TransportError> {
        if !self.scan.exists() {
            return Err(TransportError::Unavailable(format!(
                "{} is not installed",
                self.scan.display()
            )));
        }
        if !job.path.starts_with('/') {
            return Err(TransportError::Failed(format!(
                "scan path {:?} is not absolute",
                job.path
            )));
        }
        self.check_daemon()?;
        let mut argv = vec![self.scan.display().to_string(), "--json".to_string()];
        if job.recursive {
            argv.push("-r".into());
        }
        argv.push(job.path.to_string());

        let mut state = ScanState::new(None, job.per_file, now_f64());
        let mut pending = String::new();
        let mut invalid = 0u64;
        let feed = |state: &mut ScanState, chunk_text: &str, invalid: &mut u64| -> bool {
            for frame in split_cli_output(chunk_text) {
                match frame {
                    Frame::Json(v) => {
                        if let Step::Progress(p) = state.on_event(parse_gen3(&v), now_f64() as i64)
                            && !sink.progress(&p)
                        {
                            return false;
                        }
                    }
                    Frame::Invalid(why) => {
                        *invalid += 1;
                        sink.warn(&format!(
                            "armadito-scan printed a chunk that is not JSON: {why}"
                        ));
                    }
                }
            }
            true
        };
        // the parser may ask to stop (a sink that refuses progress): that is a cancel too
        let keep_going = Cell::new(true);
        let out = command(&argv, self.scan_timeout).and_then(|cmd| {
            cmd.run_with(
                &mut |line| {
                    if !keep_going.get() {
                        return;
                    }
                    pending.push_str(line);
                    pending.push('\n');
                    // hand over complete chunks as they arrive (a chunk ends with a blank line)
                    if line.is_empty()
                        && let Some(end) = pending.rfind("\n\n")
                    {
                        let complete: String = pending.drain(..end + 2).collect();
                        keep_going.set(feed(&mut state, &complete, &mut invalid));
                    }
                },
                &|| sink.cancelled() || !keep_going.get(),
            )
        });
        let out = match out {
            // a refusal just before the tool exited is a cancel all the same
            Ok(out) if keep_going.get() => out,
            Ok(_) | Err(ExecError::Cancelled { .. }) => {
                let mut r = state.finish(now_f64());
                r.cancelled = true;
                return Ok(r);
            }
            Err(e) => return Err(exec_error(e)),
        };
        if !out.status.success() {
            return Err(TransportError::Failed(format!(
                "{} returned error ({})",
                program_name(&self.scan),
                out.summary()
            )));
        }
        let rest = std::mem::take(&mut pending);
        feed(&mut state, &rest, &mut invalid);
        let done = state.is_done();
        let mut r = state.finish(now_f64());
        r.errors += invalid;
        if !done {
            r.interrupted = Some(format!(
                "{} exited without its completion summary",
                program_name(&self.scan)
            ));
        }
        Ok(r)
    }
}
