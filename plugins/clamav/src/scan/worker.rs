//! One scan worker: a clamd connection that pipelines requests (IDSESSION) and maps replies
//! back to files, falling back to FILDES/INSTREAM when clamd cannot open a path.
//!
//! Invariants:
//! * At most `pipeline` requests are in flight on a session; the worker reads a reply
//!   whenever the window is full or there is nothing to send, so clamd never blocks on us.
//! * Work moves in batches to keep system calls and thread wake-ups (on both sides: each
//!   write wakes clamd's dispatcher) well below one per file: jobs arrive in batches, the
//!   window is refilled only once half of it has drained, all replies already buffered are
//!   handled before the next write, and outcomes go to the aggregator per batch.
//! * The first reply for an id decides that file; later replies for the same id (clamd
//!   repeats some errors) are ignored because the id is no longer in flight.
//! * A file gets exactly one outcome. Requests lost with a dropped connection are re-sent
//!   once on a new connection; a file in flight during two losses is reported as an error
//!   (it may be what kills clamd) instead of being retried forever.
//! * INSTREAM never sends more than StreamMaxLength bytes: a bigger file is reported as an
//!   error without streaming, and INSTREAM runs on its own connection so a size error
//!   cannot take a whole session down.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{RecvTimeoutError, Sender, TryRecvError};
use std::time::Duration;

use armadito_plugin_api::model::FileStatus;

use super::walk::{Job, Outcome, io_text};
use super::{Msg, Shared};
use crate::clamd::session::SessionReply;
use crate::clamd::{ClamdError, ScanReply, Session, Verdict, reply};
use crate::settings::ScanMode;

/// Consecutive reconnections without a single reply before the worker gives up.
const MAX_RECONNECTS: u32 = 3;

/// How a request was sent, to know what to do with its reply.
#[derive(Debug)]
enum Attempt {
    Path,
    Fildes,
}

#[derive(Debug)]
struct Pending {
    job: Job,
    attempt: Attempt,
    /// Connection losses this request lived through.
    losses: u8,
}

/// Is this clamd error about clamd lacking permission on the file (so the agent, which
/// may have it, should pass the content itself)?
pub fn is_access_denied(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("access denied") || m.contains("permission denied") || m.contains("not permitted")
}

/// Open a file for FILDES/INSTREAM without following a link planted after the walk and
/// without blocking on a FIFO swapped in since.
fn open_for_scan(path: &Path) -> Result<(File, u64), String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| format!("cannot open: {}", io_text(&e)))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot stat: {}", io_text(&e)))?;
    if !meta.is_file() {
        return Err("no longer a regular file".into());
    }
    Ok((file, meta.len()))
}

/// Turn a clamd verdict into the file's outcome.
fn outcome_of(path: &Path, verdict: Verdict, via: Option<&str>) -> Outcome {
    let (status, threat, message) = match verdict {
        Verdict::Clean => (FileStatus::Clean, None, None),
        Verdict::Found(sig) => (FileStatus::Malware, Some(sig), None),
        Verdict::Error(msg) => (FileStatus::Error, None, Some(msg)),
        Verdict::Excluded => (
            FileStatus::Ignored,
            None,
            Some("excluded by clamd (ExcludePath)".into()),
        ),
        Verdict::Other(text) => (
            FileStatus::Error,
            None,
            Some(format!("unexpected clamd reply: {text}")),
        ),
    };
    let message = match (message, via) {
        (Some(m), Some(via)) => Some(format!("{m} (via {via})")),
        (m, _) => m,
    };
    Outcome {
        path: path.to_path_buf(),
        status,
        threat,
        message,
    }
}

pub(super) fn run(shared: &Shared<'_>, results: Sender<Msg>) {
    let mut out = Out {
        tx: &results,
        buf: Vec::new(),
    };
    let mut feed = Feed::default();
    let result = match shared.opts.mode {
        ScanMode::Instream => run_one_shot(shared, &mut feed, &mut out),
        ScanMode::Path | ScanMode::Fildes => run_session(shared, &mut feed, &mut out),
    };
    out.flush();
    if let Err(e) = result
        && !shared.stop.load(Ordering::Relaxed)
    {
        shared.stop.store(true, Ordering::Relaxed);
        let _ = results.send(Msg::Fatal(e));
    }
}

/// Outcomes waiting to go to the aggregator (sent per batch).
struct Out<'s> {
    tx: &'s Sender<Msg>,
    buf: Vec<Outcome>,
}

impl Out<'_> {
    fn push(&mut self, outcome: Outcome) {
        self.buf.push(outcome);
    }

    fn flush(&mut self) {
        if !self.buf.is_empty() {
            let _ = self.tx.send(Msg::Scanned(std::mem::take(&mut self.buf)));
        }
    }
}

/// This worker's share of the walker's job batches.
#[derive(Default)]
struct Feed {
    local: VecDeque<Job>,
}

impl Feed {
    /// Next job: `Ok(None)` = walk finished and nothing left; `Err(())` = none right now.
    /// With `wait`, blocks up to 100 ms for a batch (then the caller re-checks cancel).
    fn next(&mut self, shared: &Shared<'_>, wait: bool) -> Result<Option<Job>, ()> {
        if let Some(job) = self.local.pop_front() {
            return Ok(Some(job));
        }
        let Ok(jobs) = shared.jobs.lock() else {
            return Ok(None);
        };
        let batch = if wait {
            match jobs.recv_timeout(Duration::from_millis(100)) {
                Ok(batch) => batch,
                Err(RecvTimeoutError::Timeout) => return Err(()),
                Err(RecvTimeoutError::Disconnected) => return Ok(None),
            }
        } else {
            match jobs.try_recv() {
                Ok(batch) => batch,
                Err(TryRecvError::Empty) => return Err(()),
                Err(TryRecvError::Disconnected) => return Ok(None),
            }
        };
        drop(jobs);
        self.local.extend(batch);
        self.local.pop_front().map_or(Err(()), |job| Ok(Some(job)))
    }
}

/// INSTREAM of one file on its own connection, within StreamMaxLength.
fn instream(shared: &Shared<'_>, job: &Job, file: File, size: u64) -> Outcome {
    let limit = shared.opts.stream_max_length;
    if size > limit {
        return Outcome::error(
            &job.display,
            format!(
                "not scanned: {size} bytes is over clamd's StreamMaxLength ({limit} bytes) \
                 and clamd cannot open the file itself"
            ),
        );
    }
    // `take` guards against a file that grew since fstat.
    let mut reader = file.take(limit);
    match shared.client.instream(&mut reader) {
        Ok(ScanReply { verdict, .. }) => outcome_of(&job.display, verdict, Some("INSTREAM")),
        Err(e) => Outcome::error(&job.display, e.to_string()),
    }
}

/// `instream` mode: every file streamed on a one-shot connection.
fn run_one_shot(shared: &Shared<'_>, feed: &mut Feed, out: &mut Out<'_>) -> Result<(), ClamdError> {
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let job = match feed.next(shared, true) {
            Ok(Some(job)) => job,
            Ok(None) => return Ok(()),
            Err(()) => continue,
        };
        let outcome = match open_for_scan(&job.target) {
            Ok((file, size)) => instream(shared, &job, file, size),
            Err(why) => Outcome::error(&job.display, why),
        };
        if let Some(Msg::Fatal(e)) = fatal_if_unreachable(&outcome, shared) {
            return Err(e);
        }
        out.push(outcome);
        out.flush();
    }
}

/// A one-shot failure that is really "clamd is gone" must stop the scan, not be reported
/// against every remaining file.
fn fatal_if_unreachable(outcome: &Outcome, shared: &Shared<'_>) -> Option<Msg> {
    if outcome.status != FileStatus::Error {
        return None;
    }
    match shared.client.ping() {
        Ok(()) => None,
        Err(e) if e.is_unreachable() => Some(Msg::Fatal(e)),
        Err(_) => None,
    }
}

struct SessionWorker<'s, 'a, 'o> {
    shared: &'s Shared<'a>,
    feed: &'s mut Feed,
    out: &'s mut Out<'o>,
    session: Session,
    inflight: HashMap<u64, Pending>,
    /// Requests to send before new jobs (fallbacks and re-sends after a reconnect).
    retry: VecDeque<Pending>,
    walk_done: bool,
    reconnects: u32,
}

fn open_session(shared: &Shared<'_>) -> Result<Session, ClamdError> {
    let session = shared.client.session()?;
    if let (Ok(handle), Ok(mut sockets)) = (session.shutdown_handle(), shared.sockets.lock()) {
        sockets.push(handle);
    }
    // A cancel that raced with the connect must still stop this session.
    if shared.stop.load(Ordering::Relaxed)
        && let Ok(handle) = session.shutdown_handle()
    {
        handle.shutdown();
    }
    Ok(session)
}

fn run_session(shared: &Shared<'_>, feed: &mut Feed, out: &mut Out<'_>) -> Result<(), ClamdError> {
    let session = open_session(shared)?;
    let mut w = SessionWorker {
        shared,
        feed,
        out,
        session,
        inflight: HashMap::new(),
        retry: VecDeque::new(),
        walk_done: false,
        reconnects: 0,
    };
    let result = w.run();
    let _ = w.session.end();
    result
}

impl SessionWorker<'_, '_, '_> {
    fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed)
    }

    fn run(&mut self) -> Result<(), ClamdError> {
        let window = self.shared.opts.pipeline.max(1);
        // Refill once half the window has drained: one write per several requests.
        let low_water = window / 2;
        loop {
            if self.stopped() {
                return Ok(());
            }
            // Fill the window.
            let refill = self.inflight.len() <= low_water || !self.retry.is_empty();
            while refill && self.inflight.len() < window {
                let pending = if let Some(p) = self.retry.pop_front() {
                    p
                } else if self.walk_done {
                    break;
                } else {
                    // Block for work only when nothing is in flight (else read replies).
                    let idle = self.inflight.is_empty();
                    if idle {
                        self.out.flush();
                    }
                    match self.feed.next(self.shared, idle) {
                        Ok(Some(job)) => Pending {
                            job,
                            attempt: match self.shared.opts.mode {
                                ScanMode::Fildes => Attempt::Fildes,
                                _ => Attempt::Path,
                            },
                            losses: 0,
                        },
                        Ok(None) => {
                            self.walk_done = true;
                            break;
                        }
                        Err(()) => break,
                    }
                };
                if let Err(e) = self.send(pending) {
                    self.connection_lost(e)?;
                }
                if self.stopped() {
                    return Ok(());
                }
            }
            if let Err(e) = self.session.flush() {
                self.connection_lost(e)?;
                continue;
            }
            if self.inflight.is_empty() {
                if self.walk_done && self.retry.is_empty() {
                    return Ok(());
                }
                continue;
            }
            // One blocking read, then whatever else is already buffered.
            self.receive()?;
            while !self.inflight.is_empty() && self.session.has_buffered_reply() {
                self.receive()?;
            }
            self.out.flush();
        }
    }

    /// Read and handle one reply; a dead connection is handled (reconnect) or returned.
    fn receive(&mut self) -> Result<(), ClamdError> {
        match self.session.recv() {
            Ok(Some(SessionReply::Tagged(id, text))) => {
                if let Some(p) = self.inflight.remove(&id) {
                    self.reconnects = 0;
                    self.on_reply(p, &text);
                }
                Ok(())
            }
            Ok(Some(SessionReply::Untagged(text))) => {
                // clamd reports session-wide failures without an id, then closes.
                let e = ClamdError::UnexpectedReply {
                    endpoint: self.session.endpoint().clone(),
                    command: "IDSESSION",
                    reply: text,
                };
                self.connection_lost(e)
            }
            Ok(None) => {
                let e = ClamdError::NoReply {
                    endpoint: self.session.endpoint().clone(),
                    command: "SCAN",
                };
                self.connection_lost(e)
            }
            Err(e) => self.connection_lost(e),
        }
    }

    /// Queue (path) or send (FILDES) one request. A local failure to open the file becomes
    /// that file's outcome; only connection failures are returned.
    fn send(&mut self, p: Pending) -> Result<(), ClamdError> {
        let id = match p.attempt {
            Attempt::Path => self.session.queue_scan(&p.job.target),
            Attempt::Fildes => {
                let (file, _) = match open_for_scan(&p.job.target) {
                    Ok(f) => f,
                    Err(why) => {
                        self.out.push(Outcome::error(&p.job.display, why));
                        return Ok(());
                    }
                };
                match self.session.send_fildes(file.as_fd()) {
                    Ok(id) => id,
                    Err(e) => {
                        self.retry.push_front(p);
                        return Err(e);
                    }
                }
            }
        };
        self.inflight.insert(id, p);
        Ok(())
    }

    fn on_reply(&mut self, p: Pending, text: &str) {
        let sent = p.job.target.to_string_lossy();
        let parsed = match p.attempt {
            Attempt::Path => reply::parse_scan_reply(text, Some(&sent)),
            Attempt::Fildes => reply::parse_scan_reply(text, None),
        };
        match parsed.verdict {
            Verdict::Error(ref msg)
                if matches!(p.attempt, Attempt::Path)
                    && self.shared.opts.fallback
                    && is_access_denied(msg) =>
            {
                self.fallback(p, msg.clone())
            }
            verdict => {
                let via = matches!(p.attempt, Attempt::Fildes)
                    && self.shared.opts.mode != ScanMode::Fildes;
                self.out
                    .push(outcome_of(&p.job.display, verdict, via.then_some("FILDES")));
            }
        }
    }

    /// clamd could not open the file: hand it the content ourselves.
    fn fallback(&mut self, p: Pending, clamd_msg: String) {
        if self.session.endpoint().is_unix() {
            self.retry.push_front(Pending {
                attempt: Attempt::Fildes,
                ..p
            });
            return;
        }
        let outcome = match open_for_scan(&p.job.target) {
            Ok((file, size)) => instream(self.shared, &p.job, file, size),
            Err(why) => Outcome::error(&p.job.display, format!("{clamd_msg}; agent: {why}")),
        };
        self.out.push(outcome);
    }

    /// The session died: re-queue what was in flight and reconnect, or give up.
    fn connection_lost(&mut self, e: ClamdError) -> Result<(), ClamdError> {
        if self.stopped() {
            return Ok(());
        }
        let mut lost: Vec<(u64, Pending)> = self.inflight.drain().collect();
        lost.sort_by_key(|(id, _)| *id);
        for (_, mut p) in lost.into_iter().rev() {
            p.losses += 1;
            if p.losses >= 2 {
                self.out.push(Outcome::error(
                    &p.job.display,
                    format!("clamd dropped the connection twice while scanning this file: {e}"),
                ));
            } else {
                self.retry.push_front(p);
            }
        }
        self.reconnects += 1;
        if self.reconnects > MAX_RECONNECTS {
            return Err(e);
        }
        // A restart of clamd, or a session closed for load reasons, deserves one more try;
        // a stopped clamd fails here with "not reachable".
        std::thread::sleep(Duration::from_millis(50 * self.reconnects as u64));
        self.session = open_session(self.shared)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_denied_variants() {
        assert!(is_access_denied("Access denied"));
        assert!(is_access_denied(
            "File path check failure: Permission denied"
        ));
        assert!(is_access_denied("lstat() failed: Operation not permitted"));
        assert!(!is_access_denied(
            "File path check failure: No such file or directory"
        ));
    }

    #[test]
    fn verdicts_map_to_file_status() {
        let p = Path::new("/x");
        assert_eq!(
            outcome_of(p, Verdict::Clean, None).status,
            FileStatus::Clean
        );
        let o = outcome_of(p, Verdict::Found("Eicar".into()), None);
        assert_eq!(
            (o.status, o.threat.as_deref()),
            (FileStatus::Malware, Some("Eicar"))
        );
        let o = outcome_of(p, Verdict::Error("Boom".into()), Some("FILDES"));
        assert_eq!(o.message.as_deref(), Some("Boom (via FILDES)"));
        assert_eq!(
            outcome_of(p, Verdict::Excluded, None).status,
            FileStatus::Ignored
        );
        assert_eq!(
            outcome_of(p, Verdict::Other("??".into()), None).status,
            FileStatus::Error
        );
    }

    #[test]
    fn open_for_scan_refuses_non_files() {
        let dir = tempfile::tempdir().unwrap();
        assert!(open_for_scan(dir.path()).is_err());
        let link = dir.path().join("l");
        std::os::unix::fs::symlink("/etc/hostname", &link).unwrap();
        assert!(open_for_scan(&link).unwrap_err().contains("cannot open"));
    }
}
