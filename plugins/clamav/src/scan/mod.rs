//! On-demand scan: agent-side walk, pipelined clamd workers, progress and results.
//!
//! Shape: one walker thread feeds a bounded job queue; `connections` workers each own an
//! IDSESSION and keep up to `pipeline` requests in flight; the calling thread aggregates
//! outcomes, emits throttled progress and watches for cancel.
//!
//! Invariants:
//! * Every file the walk yields ends with exactly one outcome (clean, malware, ignored,
//!   error); counts are derived from outcomes only.
//! * Cancel (observer says stop) sets one flag and shuts every clamd socket down, so
//!   workers blocked on a long scan return at once; the result is partial, `cancelled`.
//! * Losing clamd mid-scan (not reachable after reconnect attempts) aborts the scan with an
//!   error naming the endpoint; detections found before were already streamed through
//!   progress events, so none is lost.
//! * Memory is bounded by the job queue, in-flight windows and (when asked for) the
//!   per-file result list.

pub mod walk;
mod worker;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use armadito_plugin_api::model::{
    Detection, DetectionAction, FileResult, FileStatus, ScanKind, ScanProgress, ScanRequest,
    ScanResult,
};

use crate::clamd::{ClamdError, Client, Stream};
use crate::settings::ScanMode;
use crate::timeutil;
pub use walk::{Job, Outcome, WalkEvent, WalkOptions};
pub use worker::is_access_denied;

/// Job batches buffered between the walker and the workers.
const JOB_QUEUE: usize = 64;
/// Jobs per batch: one channel operation (and at most one wake-up) per batch, not per file.
const JOB_BATCH: usize = 64;

/// Receives progress while a scan runs; decides about cancel.
pub trait ScanObserver: Sync {
    /// A progress event; return `false` to cancel the scan.
    fn on_progress(&self, progress: &ScanProgress) -> bool;
    /// Polled between events; `true` cancels the scan.
    fn is_cancelled(&self) -> bool {
        false
    }
}

/// An observer that ignores progress and never cancels.
pub struct NoObserver;

impl ScanObserver for NoObserver {
    fn on_progress(&self, _: &ScanProgress) -> bool {
        true
    }
}

/// Tuning and limits of one scan (from settings and clamd.conf).
#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub connections: usize,
    pub pipeline: usize,
    pub mode: ScanMode,
    pub fallback: bool,
    /// clamd's StreamMaxLength: INSTREAM never sends more.
    pub stream_max_length: u64,
    pub progress_interval: Duration,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            connections: 2,
            pipeline: 16,
            mode: ScanMode::Path,
            fallback: true,
            stream_max_length: 25 * 1024 * 1024,
            progress_interval: Duration::from_millis(250),
        }
    }
}

/// Connections to use when the settings say "auto": enough to keep clamd's threads busy
/// while one connection waits on a reply, never more than clamd has threads.
pub fn auto_connections(clamd_max_threads: Option<u64>) -> usize {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let max_threads = clamd_max_threads.unwrap_or(10).max(1) as usize;
    cpus.clamp(2, 8).min(max_threads)
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("invalid scan request: {0}")]
    InvalidRequest(String),
    /// clamd could not be used at all.
    #[error(transparent)]
    Clamd(ClamdError),
    /// clamd went away during the scan.
    #[error("scan aborted after {done} files: {source}")]
    ClamdLost {
        #[source]
        source: ClamdError,
        done: u64,
    },
    #[error("cannot start a scan thread: {0}")]
    Thread(std::io::Error),
}

/// What workers send to the aggregator.
pub(crate) enum Msg {
    /// A file the walker settled itself (skipped, unreadable).
    Walked(Outcome),
    /// Files a worker got verdicts for.
    Scanned(Vec<Outcome>),
    Fatal(ClamdError),
}

/// State shared by the walker and the workers.
pub(crate) struct Shared<'a> {
    pub client: &'a Client,
    pub opts: &'a ScanOptions,
    pub jobs: Mutex<Receiver<Vec<Job>>>,
    pub stop: &'a AtomicBool,
    /// Handles on every open session, to shut them down on cancel.
    pub sockets: Mutex<Vec<Stream>>,
}

/// Hand a batch to the workers. Never blocks for good: the queue's receiver outlives the
/// workers, so a full queue after a cancel or a lost clamd must not hang the walker.
fn send_batch(tx: &mpsc::SyncSender<Vec<Job>>, mut batch: Vec<Job>, stop: &AtomicBool) -> bool {
    loop {
        match tx.try_send(batch) {
            Ok(()) => return true,
            Err(mpsc::TrySendError::Disconnected(_)) => return false,
            Err(mpsc::TrySendError::Full(back)) => {
                if stop.load(Ordering::Relaxed) {
                    return false;
                }
                batch = back;
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

/// Check and normalise the requested paths.
fn request_roots(req: &ScanRequest) -> Result<Vec<PathBuf>, ScanError> {
    if req.kind != ScanKind::Custom {
        return Err(ScanError::InvalidRequest(format!(
            "scan kind {:?} is not supported by clamd (use a custom scan with paths)",
            req.kind
        )));
    }
    if req.paths.is_empty() {
        return Err(ScanError::InvalidRequest("no path to scan".into()));
    }
    req.paths
        .iter()
        .map(|p| {
            std::path::absolute(p)
                .map_err(|e| ScanError::InvalidRequest(format!("bad path {p:?}: {e}")))
        })
        .collect()
}

/// `options.allowed_roots`: the agent's `[scan] allowed_paths`, resolved, that the walk must
/// stay in (absent: no limit).
fn allowed_roots(req: &ScanRequest) -> Result<Vec<PathBuf>, ScanError> {
    let Some(v) = req.options.get("allowed_roots") else {
        return Ok(Vec::new());
    };
    let bad =
        || ScanError::InvalidRequest(format!("allowed_roots must be absolute paths, got {v}"));
    let list = v.as_array().ok_or_else(bad)?;
    list.iter()
        .map(|p| {
            p.as_str()
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .ok_or_else(bad)
        })
        .collect()
}

/// Run a scan. Returns when every file has an outcome, on cancel, or when clamd is lost.
pub fn scan(
    client: &Client,
    opts: &ScanOptions,
    req: &ScanRequest,
    observer: &dyn ScanObserver,
) -> Result<ScanResult, ScanError> {
    let roots = request_roots(req)?;
    if opts.mode == ScanMode::Fildes && !client.endpoint().is_unix() {
        return Err(ScanError::InvalidRequest(format!(
            "scan_mode fildes needs a unix socket, clamd endpoint is {}",
            client.endpoint()
        )));
    }
    // Fail fast, with the endpoint in the message, when clamd is down.
    client.ping().map_err(ScanError::Clamd)?;

    let started = Instant::now();
    let start_time = timeutil::now();
    let walk_opts = WalkOptions {
        recursive: req.recursive,
        follow_symlinks: req.follow_symlinks,
        max_file_size: req.max_file_size,
        allowed_roots: allowed_roots(req)?,
    };
    let stop = AtomicBool::new(false);
    let discovered = AtomicU64::new(0);
    let walk_done = AtomicBool::new(false);
    let (job_tx, job_rx) = mpsc::sync_channel::<Vec<Job>>(JOB_QUEUE);
    let (res_tx, res_rx) = mpsc::channel::<Msg>();
    let shared = Shared {
        client,
        opts,
        jobs: Mutex::new(job_rx),
        stop: &stop,
        sockets: Mutex::new(Vec::new()),
    };
    let mut agg = Aggregator::new(req.per_file_results, start_time);

    let outcome = std::thread::scope(|s| -> Result<(), ScanError> {
        let walker_tx = res_tx.clone();
        let walker = std::thread::Builder::new()
            .name("clamav-walk".into())
            .spawn_scoped(s, {
                let (stop, discovered, walk_done) = (&stop, &discovered, &walk_done);
                move || {
                    let mut batch = Vec::with_capacity(JOB_BATCH);
                    walk::walk(&roots, &walk_opts, stop, &mut |event| match event {
                        WalkEvent::File(job) => {
                            discovered.fetch_add(1, Ordering::Relaxed);
                            batch.push(job);
                            batch.len() < JOB_BATCH
                                || send_batch(&job_tx, std::mem::take(&mut batch), stop)
                        }
                        WalkEvent::Done(o) => walker_tx.send(Msg::Walked(o)).is_ok(),
                    });
                    if !batch.is_empty() {
                        send_batch(&job_tx, batch, stop);
                    }
                    walk_done.store(true, Ordering::Release);
                }
            });
        if let Err(e) = walker {
            stop.store(true, Ordering::Relaxed);
            return Err(ScanError::Thread(e));
        }
        for i in 0..opts.connections.max(1) {
            let shared = &shared;
            let results = res_tx.clone();
            if let Err(e) = std::thread::Builder::new()
                .name(format!("clamav-scan-{i}"))
                .spawn_scoped(s, move || worker::run(shared, results))
            {
                if i == 0 {
                    stop.store(true, Ordering::Relaxed);
                    return Err(ScanError::Thread(e));
                }
                break; // fewer workers is fine
            }
        }
        drop(res_tx);

        let interval = opts.progress_interval;
        let mut last_event = Instant::now();
        let mut fatal = None;
        let mut cancelled = false;
        let shared_ref = &shared;
        let cancel = || {
            stop.store(true, Ordering::Relaxed);
            let sockets = shared_ref
                .sockets
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for socket in sockets.iter() {
                socket.shutdown();
            }
        };
        loop {
            match res_rx.recv_timeout(interval) {
                Ok(Msg::Walked(o)) => agg.add(o, false),
                Ok(Msg::Scanned(batch)) => {
                    for o in batch {
                        agg.add(o, true);
                    }
                }
                Ok(Msg::Fatal(e)) => {
                    if fatal.is_none() {
                        fatal = Some(e);
                    }
                    cancel();
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if !cancelled && fatal.is_none() {
                let due = last_event.elapsed() >= interval;
                if observer.is_cancelled()
                    || (due
                        && !observer.on_progress(&agg.progress(
                            discovered.load(Ordering::Relaxed),
                            walk_done.load(Ordering::Acquire),
                        )))
                {
                    cancelled = true;
                    cancel();
                }
                if due {
                    last_event = Instant::now();
                }
            }
        }
        agg.cancelled = cancelled;
        match fatal {
            Some(source) if !cancelled => Err(ScanError::ClamdLost {
                source,
                done: agg.done(),
            }),
            _ => Ok(()),
        }
    });
    outcome?;
    if !agg.cancelled {
        // Every file has its outcome: a cancel answered to this last event comes too late
        // to change anything, so the scan stays complete.
        let mut last = agg.progress(discovered.load(Ordering::Relaxed), true);
        last.percent = Some(100);
        let _ = observer.on_progress(&last);
    }
    Ok(agg.finish(started.elapsed()))
}

/// Counts, detections and per-file results, built from outcomes.
struct Aggregator {
    per_file: bool,
    start_time: i64,
    result: ScanResult,
    ignored: u64,
    /// Outcomes of files the walker handed to workers (the `discovered` count's share).
    jobs_done: u64,
    /// Detections not yet sent in a progress event.
    fresh: Vec<Detection>,
    current: Option<String>,
    cancelled: bool,
}

impl Aggregator {
    fn new(per_file: bool, start_time: i64) -> Self {
        Aggregator {
            per_file,
            start_time,
            result: ScanResult {
                start_time,
                ..ScanResult::default()
            },
            ignored: 0,
            jobs_done: 0,
            fresh: Vec::new(),
            current: None,
            cancelled: false,
        }
    }

    /// Outcomes so far (every status).
    fn done(&self) -> u64 {
        self.result.scanned + self.result.errors + self.ignored
    }

    fn add(&mut self, o: Outcome, from_worker: bool) {
        self.jobs_done += u64::from(from_worker);
        let path = o.path.to_string_lossy().into_owned();
        match o.status {
            FileStatus::Clean => self.result.scanned += 1,
            FileStatus::Malware | FileStatus::Suspicious => {
                self.result.scanned += 1;
                if o.status == FileStatus::Malware {
                    self.result.malware += 1;
                } else {
                    self.result.suspicious += 1;
                }
                let threat = o.threat.clone().unwrap_or_default();
                let detection = Detection {
                    id: detection_id(self.start_time, &path, &threat),
                    threat_name: threat,
                    file_path: path.clone(),
                    action: DetectionAction::None,
                    detection_time: timeutil::now(),
                    module_name: Some("clamd".into()),
                    info: Some("on-demand".into()),
                };
                self.result.detections.push(detection.clone());
                self.fresh.push(detection);
            }
            FileStatus::Error | FileStatus::Unknown => self.result.errors += 1,
            FileStatus::Ignored => self.ignored += 1,
        }
        if self.per_file {
            self.result.files.push(FileResult {
                path: path.clone(),
                status: o.status,
                threat_name: o.threat,
                message: o.message,
            });
        }
        self.current = Some(path);
    }

    fn progress(&mut self, discovered: u64, walk_done: bool) -> ScanProgress {
        // `discovered` counts files handed to workers; compare like with like.
        let done = self.jobs_done;
        let total = discovered.max(1);
        ScanProgress {
            files_scanned: self.result.scanned,
            files_total_estimate: Some(discovered),
            malware: self.result.malware,
            suspicious: self.result.suspicious,
            errors: self.result.errors,
            current_path: self.current.clone(),
            percent: walk_done.then(|| (done.min(total) * 100 / total).min(99) as u8),
            new_detections: std::mem::take(&mut self.fresh),
        }
    }

    fn finish(mut self, elapsed: Duration) -> ScanResult {
        self.result.end_time = timeutil::now();
        self.result.duration_secs = elapsed.as_secs_f64();
        self.result.cancelled = self.cancelled;
        self.result
    }
}

/// Stable id of a scan detection: same scan start, path and threat → same id.
pub fn detection_id(start_time: i64, path: &str, threat: &str) -> String {
    format!(
        "clamav-scan-{:016x}",
        crate::fnv64(&[
            &start_time.to_le_bytes(),
            path.as_bytes(),
            threat.as_bytes()
        ])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_validation() {
        let req = ScanRequest {
            kind: ScanKind::Full,
            paths: vec!["/".into()],
            ..Default::default()
        };
        assert!(matches!(
            request_roots(&req),
            Err(ScanError::InvalidRequest(_))
        ));
        let req = ScanRequest::default();
        assert!(matches!(
            request_roots(&req),
            Err(ScanError::InvalidRequest(_))
        ));
        let req = ScanRequest {
            paths: vec!["relative/x".into()],
            ..Default::default()
        };
        let roots = request_roots(&req).unwrap();
        assert!(roots[0].is_absolute());
    }

    #[test]
    fn aggregator_counts_and_progress() {
        let mut agg = Aggregator::new(true, 100);
        agg.add(
            Outcome {
                path: "/a".into(),
                status: FileStatus::Clean,
                threat: None,
                message: None,
            },
            true,
        );
        agg.add(
            Outcome {
                path: "/b".into(),
                status: FileStatus::Malware,
                threat: Some("Eicar".into()),
                message: None,
            },
            true,
        );
        agg.add(Outcome::error("/c", "boom"), true);
        agg.add(Outcome::ignored("/d", "fifo"), false);
        let p = agg.progress(4, false);
        assert_eq!((p.files_scanned, p.malware, p.errors), (2, 1, 1));
        assert_eq!(p.percent, None);
        assert_eq!(p.new_detections.len(), 1);
        assert_eq!(p.current_path.as_deref(), Some("/d"));
        // Detections are sent once; percent counts worker outcomes against discovered files.
        let p = agg.progress(4, true);
        assert!(p.new_detections.is_empty());
        assert_eq!(p.percent, Some(75));
        let r = agg.finish(Duration::from_millis(1500));
        assert_eq!(r.files.len(), 4);
        assert_eq!(r.detections[0].threat_name, "Eicar");
        assert_eq!(r.detections[0].id, detection_id(100, "/b", "Eicar"));
        assert!((r.duration_secs - 1.5).abs() < 1e-9);
    }

    #[test]
    fn a_full_job_queue_does_not_hang_the_walker_after_stop() {
        let (tx, _rx) = mpsc::sync_channel::<Vec<Job>>(1);
        let stop = AtomicBool::new(false);
        assert!(send_batch(&tx, Vec::new(), &stop));
        stop.store(true, Ordering::Relaxed);
        let start = Instant::now();
        assert!(
            !send_batch(&tx, Vec::new(), &stop),
            "full queue + stop = give up"
        );
        assert!(start.elapsed() < Duration::from_secs(1));
        drop(_rx);
        stop.store(false, Ordering::Relaxed);
        assert!(!send_batch(&tx, Vec::new(), &stop), "no receiver = give up");
    }

    #[test]
    fn auto_connections_respects_clamd_threads() {
        assert_eq!(auto_connections(Some(1)), 1);
        assert!(auto_connections(None) >= 2);
    }
}
