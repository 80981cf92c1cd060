//! Runs one job. Every failure becomes a message the GLPI admin reads (base64 in the job
//! status), so each says what was wrong in plain words.

use std::time::Instant;

use armadito_plugin_api::model::{ScanProgress, ScanRequest, ScanResult};

use crate::plugins::CancelToken;
use crate::session::{AgentError, Context};
use crate::session::{BackendSource, Enrolled, Stop};
use crate::store::{MessageKind, NewMessage, StoredJob};
use crate::transport::Endpoint;
use crate::wire::{ScanJobParams, ScanReport, TaskName, UnixTime};

/// The result of one job: an error message (None = success) and the result messages to queue
/// with its status.
#[derive(Debug, Default)]
pub struct Outcome {
    pub error: Option<String>,
    pub messages: Vec<NewMessage>,
}

impl Outcome {
    pub fn failed(error: impl Into<String>) -> Self {
        Self {
            error: Some(error.into()),
            messages: Vec::new(),
        }
    }
}

/// Job types this agent runs.
pub const JOB_TYPES: &[&str] = &["Scan"];

/// Runs jobs with the backend of `backends` (asked for once per job); `stop` cancels a running
/// scan, whose partial results are then reported.
pub struct Executor<'a> {
    ctx: &'a Context,
    backends: &'a dyn BackendSource,
    stop: Stop,
    /// A stop signal arrived during a job: run no further job.
    pub stop_requested: bool,
}

impl<'a> Executor<'a> {
    pub fn new(ctx: &'a Context, backends: &'a dyn BackendSource, stop: Stop) -> Self {
        Self {
            ctx,
            backends,
            stop,
            stop_requested: false,
        }
    }

    pub async fn execute(&mut self, job: &StoredJob, agent: &mut Enrolled) -> Outcome {
        if let Some(reason) = &job.invalid {
            return Outcome::failed(format!("malformed job: {reason}"));
        }
        match job.job_type.as_str() {
            "Scan" => self
                .scan(job, agent)
                .await
                .unwrap_or_else(|e| Outcome::failed(e.to_string())),
            other => Outcome::failed(format!(
                "unknown job type {other:?}: this agent runs {}",
                JOB_TYPES.join(", ")
            )),
        }
    }

    async fn scan(&mut self, job: &StoredJob, agent: &mut Enrolled) -> Result<Outcome, AgentError> {
        let params = ScanJobParams::from_obj(&job.obj).map_err(AgentError::Task)?;
        let mut request =
            scan_request(&params, &self.ctx.config.scan.allowed_paths).map_err(AgentError::Task)?;
        request.job_id = Some(job.job_id.to_string());
        // Held until the scan returns: the daemon swaps a newer plugin in only after it.
        let lease = self.backends.lease(self.ctx)?;
        let backend = lease.backend.clone();
        let started = UnixTime::now();
        let interval = self.ctx.config.scan.progress_interval();

        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<ScanProgress>();
        let cancel = CancelToken::new();
        let call = {
            let cancel = cancel.clone();
            let request = request.clone();
            tokio::task::spawn_blocking(move || {
                backend.scan(&request, &mut |p| drop(tx.send(p)), &cancel)
            })
        };
        tokio::pin!(call);
        // While the scan runs: at most one progress report per interval, each resending every
        // field (the server overwrites the whole scan row).
        let mut last_sent = Instant::now();
        let stop = self.stop.clone();
        let stop = stop.requested();
        tokio::pin!(stop);
        let mut stopping = false;
        let mut last_percent = 0u8;
        let result = loop {
            tokio::select! {
                r = &mut call => break r,
                _ = &mut stop, if !stopping => {
                    // SIGTERM/SIGINT: cancel the scan, then report what it found so far.
                    tracing::warn!(job_id = job.job_id, "stop requested: cancelling the scan, partial results will be reported");
                    cancel.cancel();
                    stopping = true;
                    self.stop_requested = true;
                }
                Some(p) = rx.recv() => {
                    last_percent = percent_of(&p);
                    if last_sent.elapsed() >= interval {
                        self.send_progress(job.job_id, &p, started, agent).await?;
                        last_sent = Instant::now();
                    }
                }
            }
        };
        let result = match result {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                return Ok(Outcome::failed(format!(
                    "scan of {} failed: {e}",
                    params.scan_path
                )));
            }
            Err(join) => {
                return Ok(Outcome::failed(format!(
                    "scan of {} stopped: {join}",
                    params.scan_path
                )));
            }
        };
        self.scan_outcome(job.job_id, &params, &result, started, last_percent, agent)
    }

    async fn send_progress(
        &self,
        job_id: i64,
        p: &ScanProgress,
        started: UnixTime,
        agent: &mut Enrolled,
    ) -> Result<(), AgentError> {
        let percent = percent_of(p);
        let report = ScanReport::new(
            job_id,
            percent,
            p.files_scanned,
            p.malware,
            p.suspicious,
            0,
            started,
            UnixTime::now(),
        );
        let msg = NewMessage {
            endpoint: Endpoint::Scans.name(),
            kind: MessageKind::ScanProgress,
            supersede_key: Some(format!("scan:{job_id}")),
            job_id: Some(job_id),
            body: agent.body(TaskName::Scan, report)?,
        };
        agent.store.enqueue_messages(&[msg])?;
        agent.flush_outbox(self.ctx).await?;
        Ok(())
    }

    fn scan_outcome(
        &self,
        job_id: i64,
        params: &ScanJobParams,
        r: &ScanResult,
        started: UnixTime,
        cancelled_at_percent: u8,
        agent: &Enrolled,
    ) -> Result<Outcome, AgentError> {
        let end = UnixTime::new(r.end_time).unwrap_or_else(|_| UnixTime::now());
        let start = UnixTime::new(r.start_time)
            .ok()
            .filter(|s| *s <= end)
            .unwrap_or(started);
        let progress = if r.cancelled || r.interrupted.is_some() {
            cancelled_at_percent
        } else {
            100
        };
        let report = ScanReport::new(
            job_id,
            progress,
            r.scanned,
            r.malware,
            r.suspicious,
            r.cleaned,
            start,
            end,
        );
        let mut messages = vec![NewMessage {
            endpoint: Endpoint::Scans.name(),
            kind: MessageKind::ScanResult,
            // replaces a progress report still pending: the final figures make it moot
            supersede_key: Some(format!("scan:{job_id}")),
            job_id: Some(job_id),
            body: agent.body(TaskName::Scan, report)?,
        }];
        let backend = self.ctx.config.backend.as_deref().unwrap_or("backend");
        messages.extend(agent.alerts_message(
            &r.detections,
            end,
            backend,
            "on-demand scan",
            Some(job_id),
        )?);
        let error = if let Some(why) = &r.interrupted {
            Some(format!(
                "scan of {} interrupted after {} files: {why} (partial results sent)",
                params.scan_path, r.scanned
            ))
        } else if r.cancelled {
            Some(format!(
                "scan of {} cancelled after {} files (partial results sent)",
                params.scan_path, r.scanned
            ))
        } else {
            None
        };
        tracing::info!(
            job_id,
            scanned = r.scanned,
            malware = r.malware,
            suspicious = r.suspicious,
            errors = r.errors,
            skipped = r.skipped,
            "scan finished"
        );
        Ok(Outcome { error, messages })
    }
}

/// How far a scan got, for the server's `progress` column: never 100 before the end (boards
/// read 100 as "finished").
fn percent_of(p: &ScanProgress) -> u8 {
    p.percent
        .or_else(|| {
            p.files_total_estimate
                .filter(|t| *t > 0)
                .map(|t| (p.files_scanned.saturating_mul(100) / t).min(99) as u8)
        })
        .unwrap_or(0)
        .min(99)
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C): how a service manager or an admin stops the agent.
/// Turns a Scan job's decoded parameters into a typed request. Options are words from the
/// admin's scan configuration; each must be known (they are never handed to a shell or to the
/// antivirus command line as text).
pub fn scan_request(
    params: &ScanJobParams,
    allowed: &[std::path::PathBuf],
) -> Result<ScanRequest, String> {
    let path = params.scan_path.trim_end_matches(['\n', '\r']);
    if path.trim().is_empty() {
        return Err("empty scan path".into());
    }
    let p = std::path::Path::new(path);
    if !p.is_absolute() {
        return Err(format!("scan path {path:?} is not absolute"));
    }
    if p.components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(format!("scan path {path:?} contains '..'"));
    }
    if !allowed.is_empty() && !allowed.iter().any(|a| p.starts_with(a)) {
        return Err(format!(
            "scan path {path} is outside the allowed paths of this agent ([scan] allowed_paths)"
        ));
    }
    // What counts is where the path leads: a symlink under an allowed folder may point anywhere.
    let real = match std::fs::canonicalize(p) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("scan path {path} does not exist"));
        }
        Err(e) => return Err(format!("scan path {path} cannot be read: {e}")),
    };
    // Allowed folders resolved too (`/home` may itself be a link); one that does not exist
    // allows nothing.
    let roots: Vec<std::path::PathBuf> = allowed
        .iter()
        .filter_map(|a| std::fs::canonicalize(a).ok())
        .collect();
    if !allowed.is_empty() && !roots.iter().any(|a| real.starts_with(a)) {
        return Err(format!(
            "scan path {path} resolves to {}, outside the allowed paths of this agent ([scan] allowed_paths)",
            real.display()
        ));
    }
    let mut req = ScanRequest {
        paths: vec![path.to_string()],
        ..ScanRequest::default()
    };
    if !allowed.is_empty() {
        // The backend keeps its walk (and any followed link) inside these.
        let list = roots
            .iter()
            .map(|r| serde_json::Value::String(r.to_string_lossy().into_owned()))
            .collect();
        req.options
            .insert("allowed_roots".into(), serde_json::Value::Array(list));
    }
    let mut words = params.scan_options.split_whitespace();
    while let Some(w) = words.next() {
        let (name, inline) = match w.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (w, None),
        };
        match name {
            "-r" | "--recursive" => req.recursive = true,
            "--no-recursive" | "--not-recursive" => req.recursive = false,
            "--follow-symlinks" => req.follow_symlinks = true,
            "--no-archive" | "--no-archives" => {
                req.options
                    .insert("scan_archives".into(), serde_json::Value::Bool(false));
            }
            "--max-filesize" | "--max-file-size" => {
                let v = inline
                    .or_else(|| words.next().map(str::to_string))
                    .ok_or("option --max-filesize needs a size")?;
                req.max_file_size = Some(
                    parse_size(&v)
                        .ok_or_else(|| format!("invalid size {v:?} for --max-filesize"))?,
                );
            }
            _ => return Err(format!("unsupported scan option {w:?}")),
        }
    }
    Ok(req)
}

/// `100`, `10K`, `20M`, `1G` (binary multiples, like clamd).
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 1u64 << 10),
        (i, 'm' | 'M') => (&s[..i], 1 << 20),
        (i, 'g' | 'G') => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(path: &str, options: &str) -> ScanJobParams {
        ScanJobParams {
            scanconfig_id: 1,
            scan_name: "t".into(),
            scan_path: path.into(),
            scan_options: options.into(),
        }
    }

    #[test]
    fn options_become_a_typed_request() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_str().unwrap();
        let r = scan_request(&params(root, "-r --no-archive --max-filesize=20M"), &[]).unwrap();
        assert_eq!(r.paths, vec![root.to_string()]);
        assert!(r.recursive);
        assert_eq!(r.max_file_size, Some(20 << 20));
        assert_eq!(r.options["scan_archives"], serde_json::Value::Bool(false));
        assert!(
            !scan_request(&params(root, "--no-recursive"), &[])
                .unwrap()
                .recursive
        );
    }

    #[test]
    fn bad_paths_and_options_are_specific_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_str().unwrap();
        assert_eq!(
            scan_request(&params("", ""), &[]).unwrap_err(),
            "empty scan path"
        );
        assert!(
            scan_request(&params("home/user", ""), &[])
                .unwrap_err()
                .contains("not absolute")
        );
        assert!(
            scan_request(&params("/nonexistent/x", ""), &[])
                .unwrap_err()
                .contains("does not exist")
        );
        assert!(
            scan_request(&params(&format!("{root}/../etc"), ""), &[])
                .unwrap_err()
                .contains("..")
        );
        // shell metacharacters are inert: just an unknown option
        assert_eq!(
            scan_request(&params(root, "; rm -rf /"), &[]).unwrap_err(),
            "unsupported scan option \";\""
        );
        assert_eq!(
            scan_request(&params(root, "$(reboot)"), &[]).unwrap_err(),
            "unsupported scan option \"$(reboot)\""
        );
        let elsewhere = [std::path::PathBuf::from("/nonexistent-srv")];
        assert!(
            scan_request(&params(root, ""), &elsewhere)
                .unwrap_err()
                .contains("outside the allowed paths")
        );
    }

    /// Issue 12 item 4: a link under an allowed folder that leads elsewhere is refused, and
    /// the backend is told the resolved roots to keep its walk in.
    #[test]
    fn a_symlink_out_of_the_allowed_paths_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let allowed = tmp.path().join("allowed");
        std::fs::create_dir(&allowed).unwrap();
        std::os::unix::fs::symlink("/etc", allowed.join("escape")).unwrap();
        let roots = [allowed.clone()];
        let escape = allowed.join("escape");
        let e = scan_request(&params(escape.to_str().unwrap(), "-r"), &roots).unwrap_err();
        assert!(
            e.contains("resolves to /etc, outside the allowed paths"),
            "{e}"
        );
        let e =
            scan_request(&params(&format!("{}/passwd", escape.display()), ""), &roots).unwrap_err();
        assert!(e.contains("outside the allowed paths"), "{e}");
        let r = scan_request(
            &params(allowed.to_str().unwrap(), "-r --follow-symlinks"),
            &roots,
        )
        .unwrap();
        assert!(r.follow_symlinks);
        let real = std::fs::canonicalize(&allowed).unwrap();
        assert_eq!(
            r.options["allowed_roots"],
            serde_json::json!([real.to_str().unwrap()])
        );
    }
}
