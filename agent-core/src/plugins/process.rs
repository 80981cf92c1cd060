//! Process isolation, agent side: one `plugin-host` child per backend, supervised.
//!
//! Invariants:
//! * A child is disposable. If it dies (segfault, abort, exit) every call in flight on it
//!   fails with `BackendError::Crashed`; if a call exceeds its timeout the child is killed
//!   (which also fails the other calls in flight on it) and the call fails with `Timeout`.
//! * Restarts are lazy (on the next call) with exponential back-off: the first restart after
//!   a success is immediate, then 0.5 s, 1 s, 2 s… up to `restart_backoff_max`. During the
//!   back-off calls fail fast with `Unavailable` instead of waiting.
//! * Dropping a [`ProcessBackend`] stops its child, but only once the calls in flight (which
//!   hold an `Arc` of the connection) have returned: that is how a hot swap waits for them.
//! * Reader threads never block the caller: replies travel through per-call channels.
//! * A child cannot exhaust the agent: a stdout message is at most [`MAX_MESSAGE_BYTES`], a
//!   stderr line is cut at [`MAX_STDERR_LINE`], and more than [`MAX_CHATTER_PER_MINUTE`]
//!   stderr lines or log messages in a minute stop the child; the calls in flight fail
//!   with the reason.
//! * A child starts with a cleared environment plus [`CHILD_ENV`]: the agent's secrets
//!   (`ARMADITO_AGENT_KEY`, `ARMADITO_AGENT_PASSWORD`, proxies with credentials…) never reach
//!   plugin code.
//! * The connection ([`Conn::connect`]) works on any `Read`/`Write` pair; the child process is
//!   optional, so the protocol is tested in memory (pipes and a thread as the host).
//! * Stopping a child costs what its exit costs: the reader thread reaps it and wakes the
//!   stopper (no fixed sleep), which kills it only after `STOP_GRACE`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use armadito_plugin_api::model::{
    AlertsPage, AlertsQuery, BackendState, ConfigApplyReport, ConfigEntry, PluginError,
    PluginMetadata, ScanProgress, ScanRequest, ScanResult,
};
use serde_json::{Value, json};

use super::loader::{LoadError, emit_log};
use super::protocol::{Message, Request, method};

type Writer = Box<dyn Write + Send>;
use super::{Backend, BackendError, CancelToken, PluginsConfig, call, decode_value, timeout_for};

const POLL: Duration = Duration::from_millis(50);
/// Largest stdout message (one JSON line) from a plugin host: a scan result listing every
/// file of a large tree fits; an endless line does not eat the agent's memory.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;
/// Longest stderr line logged; the rest of the line is dropped.
pub const MAX_STDERR_LINE: usize = 4096;
/// stderr lines plus log messages per minute above which a child is stopped as flooding.
pub const MAX_CHATTER_PER_MINUTE: u32 = 1000;
/// The only environment a plugin host gets (everything else is cleared).
#[cfg(unix)]
pub const CHILD_ENV: &[(&str, &str)] = &[("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), ("LANG", "C")];
#[cfg(not(unix))]
pub const CHILD_ENV: &[(&str, &str)] = &[];
/// Variables passed through from the agent's environment when set (Windows needs these to
/// start a process at all).
#[cfg(not(unix))]
const CHILD_ENV_PASS: &[&str] = &[
    "SystemRoot",
    "SystemDrive",
    "windir",
    "TEMP",
    "TMP",
    "ProgramData",
];
/// `TZ`: backends turn the product's local dates into UTC; the host must see the same zone as
/// the agent (it carries no secret and names no program).
#[cfg(unix)]
const CHILD_ENV_PASS: &[&str] = &["TZ"];

/// Counts stderr lines / log messages in the current minute.
struct Chatter {
    window: Instant,
    count: u32,
}

impl Chatter {
    fn new() -> Chatter {
        Chatter {
            window: Instant::now(),
            count: 0,
        }
    }

    /// One more line; `true` when the budget of the minute is exceeded.
    fn flooding(&mut self) -> bool {
        if self.window.elapsed() >= Duration::from_secs(60) {
            self.window = Instant::now();
            self.count = 0;
        }
        self.count += 1;
        self.count > MAX_CHATTER_PER_MINUTE
    }
}

/// One line of at most `max` bytes (newline removed) into `buf`. `Ok(false)` at EOF;
/// `Err(InvalidData)` when the line is longer (the excess is not consumed).
pub(super) fn read_line_bounded(
    r: &mut impl BufRead,
    max: usize,
    buf: &mut Vec<u8>,
) -> std::io::Result<bool> {
    use std::io::Read;
    buf.clear();
    let n = r.by_ref().take(max as u64 + 1).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(false);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        return Ok(true);
    }
    if buf.len() > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "line too long",
        ));
    }
    Ok(true)
}

/// Drop the rest of the current line; `Ok(false)` when it goes on beyond `max` bytes.
fn skip_line(r: &mut impl BufRead, max: usize) -> std::io::Result<bool> {
    let mut skipped = 0usize;
    loop {
        let (done, used) = {
            let chunk = r.fill_buf()?;
            if chunk.is_empty() {
                return Ok(true);
            }
            match chunk.iter().position(|b| *b == b'\n') {
                Some(i) => (true, i + 1),
                None => (false, chunk.len()),
            }
        };
        r.consume(used);
        skipped += used;
        if done {
            return Ok(true);
        }
        if skipped > max {
            return Ok(false);
        }
    }
}
/// How long a child may take to exit after its stdin is closed before it is killed.
const STOP_GRACE: Duration = Duration::from_millis(500);

enum Reply {
    Progress(Value),
    Result(Value),
    Error(PluginError),
    Died(String),
}

/// How one request on one connection failed.
enum Failure {
    Plugin(PluginError),
    Died(String),
    Timeout(Duration),
}

/// State shared between a connection and its reader thread.
struct Shared {
    /// Backend name for logs (the file name until the child says hello).
    label: Mutex<String>,
    pending: Mutex<HashMap<u64, mpsc::Sender<Reply>>>,
    /// The child process, when there is one (none in in-memory tests).
    child: Mutex<Option<Child>>,
    /// Set once the child is gone: how it ended. `exited` is notified then.
    exit: Mutex<Option<String>>,
    /// Why the agent stopped the child (flooding), reported instead of the kill signal.
    stopped: Mutex<Option<String>>,
    exited: Condvar,
}

/// One connection to a `plugin-host` (a child process, or any reader/writer pair).
struct Conn {
    shared: Arc<Shared>,
    stdin: Mutex<Option<Writer>>,
    next_id: AtomicU64,
    pid: u32,
}

/// A child that loaded the plugin and said hello, not yet initialized.
pub(crate) struct Probe {
    conn: Arc<Conn>,
    pub metadata: PluginMetadata,
}

/// Describe how a child ended (`killed by signal 11 (SIGSEGV)`, `exited with status 101`).
fn describe_exit(status: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            let name = match sig {
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGABRT => " (SIGABRT)",
                libc::SIGKILL => " (SIGKILL)",
                libc::SIGBUS => " (SIGBUS)",
                libc::SIGILL => " (SIGILL)",
                libc::SIGFPE => " (SIGFPE)",
                libc::SIGTERM => " (SIGTERM)",
                _ => "",
            };
            return format!("killed by signal {sig}{name}");
        }
    }
    match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "exited".to_owned(),
    }
}

impl Conn {
    /// Spawn `host_exe plugin-host --plugin <cached>` and wait for its hello.
    fn spawn(cfg: &PluginsConfig, cached: &Path) -> Result<(Arc<Conn>, PluginMetadata), LoadError> {
        let label = cached
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut command = Command::new(&cfg.host_exe);
        command.env_clear().envs(CHILD_ENV.iter().copied());
        for name in CHILD_ENV_PASS {
            if let Some(v) = std::env::var_os(name) {
                command.env(name, v);
            }
        }
        let mut child = command
            .arg("plugin-host")
            .arg("--plugin")
            .arg(cached)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                LoadError::Other(format!(
                    "cannot start the plugin host {}: {e}",
                    cfg.host_exe.display()
                ))
            })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(LoadError::Other("plugin host without pipes".into()));
        };
        let pid = child.id();
        Conn::connect(
            stdout,
            Box::new(stdin),
            Some(Box::new(stderr)),
            Some(child),
            pid,
            label,
            cfg.call_timeout,
        )
    }

    /// Talk the protocol over `reader`/`writer` (the child's stdout/stdin) and wait for the
    /// hello. `child`, when given, is reaped (or killed) when the connection ends.
    fn connect(
        reader: impl Read + Send + 'static,
        writer: Writer,
        stderr: Option<Box<dyn Read + Send>>,
        child: Option<Child>,
        pid: u32,
        label: String,
        hello_timeout: Duration,
    ) -> Result<(Arc<Conn>, PluginMetadata), LoadError> {
        let shared = Arc::new(Shared {
            label: Mutex::new(label),
            pending: Mutex::new(HashMap::new()),
            child: Mutex::new(child),
            exit: Mutex::new(None),
            stopped: Mutex::new(None),
            exited: Condvar::new(),
        });

        let (hello_tx, hello_rx) = mpsc::channel();
        {
            let reader_shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("plugin-host-{pid}-out"))
                .spawn(move || read_loop(reader_shared, reader, hello_tx));
            if let Err(e) = spawned {
                kill(&mut shared.child.lock());
                return Err(LoadError::Other(format!("cannot start a thread: {e}")));
            }
        }
        if let Some(stderr) = stderr {
            let shared = shared.clone();
            let _ = std::thread::Builder::new()
                .name(format!("plugin-host-{pid}-err"))
                .spawn(move || stderr_loop(&shared, stderr));
        }

        let conn = Arc::new(Conn {
            shared,
            stdin: Mutex::new(Some(writer)),
            next_id: AtomicU64::new(1),
            pid,
        });
        match hello_rx.recv_timeout(hello_timeout) {
            Ok(Ok(metadata)) => {
                *conn.shared.label.lock() = metadata.name.clone();
                tracing::debug!(backend = metadata.name, pid, "plugin host ready");
                Ok((conn, metadata))
            }
            Ok(Err(refused)) => Err(refused),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(LoadError::Other(format!(
                "the plugin host did not answer within {hello_timeout:?}"
            ))),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(LoadError::Other(format!(
                "the plugin host {} while loading the plugin",
                conn.exit_detail()
            ))),
        }
    }

    fn alive(&self) -> bool {
        self.shared.exit.lock().is_none()
    }

    fn exit_detail(&self) -> String {
        self.shared
            .exit
            .lock()
            .clone()
            .unwrap_or_else(|| "ended".to_owned())
    }

    fn kill(&self) {
        kill(&mut self.shared.child.lock());
        // Without a child (in-memory), closing our side is the only way to end it.
        if self.shared.child.lock().is_none() {
            self.stdin.lock().take();
        }
    }

    fn write(&self, request: &Request) -> Result<(), String> {
        let mut line = serde_json::to_string(request).map_err(|e| e.to_string())?;
        line.push('\n');
        let mut stdin = self.stdin.lock();
        let Some(pipe) = stdin.as_mut() else {
            return Err("connection closed".into());
        };
        pipe.write_all(line.as_bytes())
            .and_then(|_| pipe.flush())
            .map_err(|e| format!("cannot write to the plugin host: {e}"))
    }

    /// Send one request and wait for its answer, relaying progress events.
    fn request(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
        on_progress: &mut dyn FnMut(Value),
        cancel: Option<&CancelToken>,
    ) -> Result<Value, Failure> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        self.shared.pending.lock().insert(id, tx);
        // Registered before the alive check: the reader fails every pending call when the
        // child dies, so either it sees us or we see the exit.
        if !self.alive() {
            self.shared.pending.lock().remove(&id);
            return Err(Failure::Died(self.exit_detail()));
        }
        if let Err(e) = self.write(&Request {
            id,
            method: method.to_owned(),
            params,
        }) {
            self.shared.pending.lock().remove(&id);
            return Err(Failure::Died(if self.alive() {
                e
            } else {
                self.exit_detail()
            }));
        }

        let deadline = Instant::now() + timeout;
        let mut cancel_sent = false;
        let outcome = loop {
            if !cancel_sent && cancel.is_some_and(CancelToken::is_cancelled) {
                cancel_sent = true;
                let cancel_id = self.next_id.fetch_add(1, Ordering::Relaxed);
                let _ = self.write(&Request {
                    id: cancel_id,
                    method: method::CANCEL.to_owned(),
                    params: json!({ "id": id }),
                });
            }
            let now = Instant::now();
            if now >= deadline {
                break Err(Failure::Timeout(timeout));
            }
            match rx.recv_timeout(POLL.min(deadline - now)) {
                Ok(Reply::Progress(event)) => on_progress(event),
                Ok(Reply::Result(value)) => break Ok(value),
                Ok(Reply::Error(error)) => break Err(Failure::Plugin(error)),
                Ok(Reply::Died(detail)) => break Err(Failure::Died(detail)),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    break Err(Failure::Died(self.exit_detail()));
                }
            }
        };
        self.shared.pending.lock().remove(&id);
        outcome
    }
}

impl Drop for Conn {
    /// Close stdin (the child exits on EOF); wait until the reader thread has reaped it, at
    /// most `STOP_GRACE`, then kill it.
    fn drop(&mut self) {
        self.stdin.lock().take();
        let mut exit = self.shared.exit.lock();
        let waited = self
            .shared
            .exited
            .wait_while_for(&mut exit, |e| e.is_none(), STOP_GRACE);
        drop(exit);
        if waited.timed_out() {
            self.kill();
        }
        tracing::debug!(pid = self.pid, "plugin host stopped");
    }
}

/// SIGKILL the child unless it was already reaped (std then does nothing, so a reused pid is
/// never signalled).
fn kill(child: &mut Option<Child>) {
    if let Some(child) = child {
        let _ = child.kill();
    }
}

/// Stop a flooding child: the reason is what the calls in flight report.
fn stop_flooding(shared: &Shared, reason: String) {
    let label = shared.label.lock().clone();
    tracing::error!(target: "plugin", backend = label, "stopping the plugin host: {reason}");
    shared.stopped.lock().get_or_insert(reason);
    kill(&mut shared.child.lock());
}

/// Logs the child's stderr, line by line, cut at [`MAX_STDERR_LINE`]; stops a flooding child.
fn stderr_loop(shared: &Shared, stderr: impl Read) {
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    let mut chatter = Chatter::new();
    loop {
        let cut = match read_line_bounded(&mut reader, MAX_STDERR_LINE, &mut buf) {
            Ok(false) => return,
            Ok(true) => false,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                buf.truncate(MAX_STDERR_LINE);
                match skip_line(&mut reader, MAX_MESSAGE_BYTES) {
                    Ok(true) => true,
                    Ok(false) => {
                        stop_flooding(
                            shared,
                            format!("it wrote a stderr line longer than {MAX_MESSAGE_BYTES} bytes"),
                        );
                        return;
                    }
                    Err(_) => return,
                }
            }
            Err(_) => return,
        };
        if chatter.flooding() {
            stop_flooding(
                shared,
                format!("it flooded stderr (more than {MAX_CHATTER_PER_MINUTE} lines in a minute)"),
            );
            return;
        }
        let label = shared.label.lock().clone();
        let line = String::from_utf8_lossy(&buf);
        let more = if cut { " […]" } else { "" };
        tracing::warn!(target: "plugin", backend = label, "stderr: {line}{more}");
    }
}

/// Reads the child's stdout until EOF, routing messages; then records how the child ended
/// and fails every pending call.
fn read_loop(
    shared: Arc<Shared>,
    reader: impl Read,
    hello: mpsc::Sender<Result<PluginMetadata, LoadError>>,
) {
    let mut hello = Some(hello);
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    let mut chatter = Chatter::new();
    loop {
        match read_line_bounded(&mut reader, MAX_MESSAGE_BYTES, &mut buf) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                stop_flooding(
                    &shared,
                    format!("it sent a message longer than {MAX_MESSAGE_BYTES} bytes"),
                );
                break;
            }
            Err(_) => break,
        }
        let msg: Message = match serde_json::from_slice(&buf) {
            Ok(m) => m,
            Err(e) => {
                if chatter.flooding() {
                    stop_flooding(&shared, "it flooded stdout with bad lines".into());
                    break;
                }
                let label = shared.label.lock().clone();
                tracing::warn!(target: "plugin", backend = label, "bad line from plugin host: {e}");
                continue;
            }
        };
        let (id, reply) = match msg {
            Message::Hello(h) => {
                if let Some(tx) = hello.take() {
                    let checked = match &h.protocol {
                        Some(p) => p.check(),
                        None => Err("the plugin host sent no protocol version (a plugin host \
                                     of an older agent build?)"
                            .to_owned()),
                    };
                    let _ = tx.send(checked.map(|()| h.metadata).map_err(LoadError::Other));
                }
                continue;
            }
            Message::Refused { error } => {
                if let Some(tx) = hello.take() {
                    let _ = tx.send(Err(LoadError::Other(error)));
                }
                continue;
            }
            Message::Log {
                level,
                target,
                message,
            } => {
                if chatter.flooding() {
                    stop_flooding(
                        &shared,
                        format!(
                            "it flooded the log (more than {MAX_CHATTER_PER_MINUTE} messages in a minute)"
                        ),
                    );
                    break;
                }
                emit_log(level, &target, &message);
                continue;
            }
            Message::Progress { id, event } => (id, Reply::Progress(event)),
            Message::Result { id, value } => (id, Reply::Result(value)),
            Message::Error { id, error } => (id, Reply::Error(error)),
        };
        if let Some(tx) = shared.pending.lock().get(&id) {
            let _ = tx.send(reply);
        }
    }

    // EOF: the child is exiting (or closed stdout). Reap it, killing it if it lingers. The
    // child closes stdout a moment before it can be reaped: poll from 100 µs up.
    let deadline = Instant::now() + STOP_GRACE;
    let mut pause = Duration::from_micros(100);
    let detail = loop {
        let mut guard = shared.child.lock();
        let Some(child) = guard.as_mut() else {
            break "closed the connection".to_owned();
        };
        match child.try_wait() {
            Ok(Some(status)) => break describe_exit(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                break child
                    .wait()
                    .map(describe_exit)
                    .unwrap_or_else(|e| format!("lost ({e})"));
            }
            Ok(None) => {
                drop(guard);
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(5));
            }
            Err(e) => break format!("lost ({e})"),
        }
    };
    let detail = match shared.stopped.lock().take() {
        Some(reason) => format!("stopped by the agent: {reason}"),
        None => detail,
    };
    *shared.exit.lock() = Some(detail.clone());
    shared.exited.notify_all();
    for (_, tx) in shared.pending.lock().drain() {
        let _ = tx.send(Reply::Died(detail.clone()));
    }
    drop(hello);
}

/// Start a child for `cached` and read its metadata (no plugin `new()` yet).
pub(crate) fn probe(cfg: &PluginsConfig, cached: &Path) -> Result<Probe, LoadError> {
    let (conn, metadata) = Conn::spawn(cfg, cached)?;
    Ok(Probe { conn, metadata })
}

struct Supervisor {
    conn: Option<Arc<Conn>>,
    /// Consecutive failures (crash, timeout, failed restart).
    failures: u32,
    retry_at: Option<Instant>,
}

pub(crate) struct ProcessBackend {
    metadata: PluginMetadata,
    cached: PathBuf,
    cfg: PluginsConfig,
    sup: Mutex<Supervisor>,
}

impl ProcessBackend {
    /// Initialize the probed child (`new()` in the plugin) and wrap it.
    pub(crate) fn start(
        probe: Probe,
        cached: PathBuf,
        cfg: PluginsConfig,
    ) -> Result<ProcessBackend, LoadError> {
        init(&probe.conn, &cfg, &probe.metadata.name)?;
        Ok(ProcessBackend {
            metadata: probe.metadata,
            cached,
            cfg,
            sup: Mutex::new(Supervisor {
                conn: Some(probe.conn),
                failures: 0,
                retry_at: None,
            }),
        })
    }

    fn name(&self) -> &str {
        &self.metadata.name
    }

    /// The live connection, restarting the child if allowed by the back-off.
    fn conn(&self) -> Result<Arc<Conn>, BackendError> {
        let mut sup = self.sup.lock();
        if let Some(conn) = &sup.conn {
            if conn.alive() {
                return Ok(conn.clone());
            }
            // Died between calls (nobody observed it through a call yet).
            sup.conn = None;
            Self::record_failure(&mut sup, &self.cfg);
        }
        if let Some(at) = sup.retry_at {
            let now = Instant::now();
            if now < at {
                return Err(BackendError::Unavailable {
                    backend: self.name().to_owned(),
                    reason: format!(
                        "plugin process failed {} time(s) in a row; next restart in {} ms",
                        sup.failures,
                        (at - now).as_millis()
                    ),
                });
            }
        }
        tracing::warn!(backend = self.name(), "restarting the plugin process");
        let started = Conn::spawn(&self.cfg, &self.cached).and_then(|(conn, metadata)| {
            if metadata.name != self.metadata.name {
                return Err(LoadError::Other(format!(
                    "the plugin now declares the name {:?}",
                    metadata.name
                )));
            }
            init(&conn, &self.cfg, &metadata.name)?;
            Ok(conn)
        });
        match started {
            Ok(conn) => {
                tracing::info!(
                    backend = self.name(),
                    pid = conn.pid,
                    "plugin process restarted"
                );
                sup.conn = Some(conn.clone());
                Ok(conn)
            }
            Err(e) => {
                Self::record_failure(&mut sup, &self.cfg);
                Err(BackendError::Unavailable {
                    backend: self.name().to_owned(),
                    reason: format!("restart failed: {e}"),
                })
            }
        }
    }

    fn record_failure(sup: &mut Supervisor, cfg: &PluginsConfig) {
        sup.failures = sup.failures.saturating_add(1);
        let delay = if sup.failures <= 1 {
            Duration::ZERO
        } else {
            let exp = (sup.failures - 2).min(16);
            (Duration::from_millis(500) * (1u32 << exp)).min(cfg.restart_backoff_max)
        };
        sup.retry_at = Some(Instant::now() + delay);
    }

    /// Forget `conn` after it failed (only if it is still the current one).
    fn conn_failed(&self, conn: &Arc<Conn>) {
        let mut sup = self.sup.lock();
        if sup.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            sup.conn = None;
            Self::record_failure(&mut sup, &self.cfg);
        }
    }

    fn conn_ok(&self, conn: &Arc<Conn>) {
        let mut sup = self.sup.lock();
        if sup.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            sup.failures = 0;
            sup.retry_at = None;
        }
    }

    fn call(
        &self,
        call: &'static str,
        params: Value,
        on_progress: &mut dyn FnMut(Value),
        cancel: Option<&CancelToken>,
    ) -> Result<Value, BackendError> {
        let conn = self.conn()?;
        let timeout = timeout_for(&self.cfg, call);
        match conn.request(call, params, timeout, on_progress, cancel) {
            Ok(value) => {
                self.conn_ok(&conn);
                Ok(value)
            }
            Err(Failure::Plugin(error)) => {
                self.conn_ok(&conn);
                Err(BackendError::Plugin {
                    backend: self.name().to_owned(),
                    call,
                    error,
                })
            }
            Err(Failure::Died(detail)) => {
                tracing::error!(
                    backend = self.name(),
                    "plugin process crashed during {call}: {detail}"
                );
                self.conn_failed(&conn);
                Err(BackendError::Crashed {
                    backend: self.name().to_owned(),
                    call,
                    detail,
                })
            }
            Err(Failure::Timeout(after)) => {
                tracing::error!(
                    backend = self.name(),
                    "{call} timed out after {after:?}; killing the plugin process"
                );
                conn.kill();
                self.conn_failed(&conn);
                Err(BackendError::Timeout {
                    backend: self.name().to_owned(),
                    call,
                    after,
                })
            }
        }
    }
}

/// Send `init` (the plugin's `new()` with its settings).
fn init(conn: &Conn, cfg: &PluginsConfig, name: &str) -> Result<(), LoadError> {
    let settings: Value = cfg.settings.get(name).cloned().unwrap_or_else(|| json!({}));
    match conn.request(method::INIT, settings, cfg.call_timeout, &mut |_| {}, None) {
        Ok(_) => Ok(()),
        Err(Failure::Plugin(e)) => Err(LoadError::Start(e)),
        Err(Failure::Died(d)) => Err(LoadError::Other(format!(
            "the plugin host {d} while starting the plugin"
        ))),
        Err(Failure::Timeout(t)) => Err(LoadError::Other(format!(
            "the plugin did not start within {t:?}"
        ))),
    }
}

impl Backend for ProcessBackend {
    fn metadata(&self) -> &PluginMetadata {
        &self.metadata
    }

    fn state(&self) -> Result<BackendState, BackendError> {
        let v = self.call(call::STATE, Value::Null, &mut |_| {}, None)?;
        decode_value(self.name(), call::STATE, v)
    }

    fn scan(
        &self,
        request: &ScanRequest,
        on_progress: &mut dyn FnMut(ScanProgress),
        cancel: &CancelToken,
    ) -> Result<ScanResult, BackendError> {
        let params = serde_json::to_value(request).unwrap_or(Value::Null);
        let mut relay = |event: Value| {
            if let Ok(p) = serde_json::from_value::<ScanProgress>(event) {
                on_progress(p)
            }
        };
        let v = self.call(call::SCAN, params, &mut relay, Some(cancel))?;
        decode_value(self.name(), call::SCAN, v)
    }

    fn alerts(&self, query: &AlertsQuery) -> Result<AlertsPage, BackendError> {
        let params = serde_json::to_value(query).unwrap_or(Value::Null);
        let v = self.call(call::ALERTS, params, &mut |_| {}, None)?;
        decode_value(self.name(), call::ALERTS, v)
    }

    fn config_get(&self) -> Result<Vec<ConfigEntry>, BackendError> {
        let v = self.call(call::CONFIG_GET, Value::Null, &mut |_| {}, None)?;
        decode_value(self.name(), call::CONFIG_GET, v)
    }

    fn config_set(&self, entries: &[ConfigEntry]) -> Result<ConfigApplyReport, BackendError> {
        let params = serde_json::to_value(entries).unwrap_or(Value::Null);
        let v = self.call(call::CONFIG_SET, params, &mut |_| {}, None)?;
        decode_value(self.name(), call::CONFIG_SET, v)
    }

    fn invoke(
        &self,
        method: &str,
        args: &Value,
        on_progress: &mut dyn FnMut(Value),
        cancel: &CancelToken,
    ) -> Result<Value, BackendError> {
        let params = json!({ "method": method, "args": args });
        self.call(call::INVOKE, params, on_progress, Some(cancel))
    }

    fn host_pid(&self) -> Option<u32> {
        self.sup
            .lock()
            .conn
            .as_ref()
            .filter(|c| c.alive())
            .map(|c| c.pid)
    }
}

#[cfg(test)]
mod tests {
    //! The connection over in-memory pipes, a thread playing the plugin host.
    use super::*;
    use crate::plugins::protocol::{Hello, ProtocolInfo};

    fn metadata() -> PluginMetadata {
        PluginMetadata {
            name: "fake".into(),
            version: "1.0.0".into(),
            ..PluginMetadata::default()
        }
    }

    fn send(w: &mut impl Write, msg: &Message) {
        let mut line = serde_json::to_string(msg).unwrap();
        line.push('\n');
        w.write_all(line.as_bytes()).unwrap();
    }

    /// Connect to a host thread that sends `hello` first, then runs `serve` on the requests.
    fn connect_to(
        hello: Option<Message>,
        serve: impl FnOnce(&mut dyn Iterator<Item = Request>, &mut std::io::PipeWriter) + Send + 'static,
    ) -> Result<Arc<Conn>, LoadError> {
        let (to_agent_r, mut to_agent_w) = std::io::pipe().unwrap();
        let (to_host_r, to_host_w) = std::io::pipe().unwrap();
        std::thread::spawn(move || {
            if let Some(h) = hello {
                send(&mut to_agent_w, &h);
            }
            let mut requests = BufReader::new(to_host_r)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| serde_json::from_str::<Request>(&l).ok());
            serve(&mut requests, &mut to_agent_w);
        });
        Conn::connect(
            to_agent_r,
            Box::new(to_host_w),
            None,
            None,
            0,
            "fake".into(),
            Duration::from_secs(5),
        )
        .map(|(conn, _)| conn)
    }

    fn hello(protocol: Option<ProtocolInfo>) -> Option<Message> {
        Some(Message::Hello(Hello {
            protocol,
            metadata: metadata(),
            pid: 1,
        }))
    }

    #[test]
    fn requests_get_their_answers_and_progress() {
        let conn = connect_to(hello(Some(ProtocolInfo::ours())), |requests, w| {
            for r in requests {
                send(
                    w,
                    &Message::Progress {
                        id: r.id,
                        event: json!({"n": 1}),
                    },
                );
                send(
                    w,
                    &Message::Result {
                        id: r.id,
                        value: json!({"method": r.method, "params": r.params}),
                    },
                );
            }
        })
        .unwrap();
        let mut events = Vec::new();
        let answer = conn
            .request(
                "state",
                json!([1]),
                Duration::from_secs(5),
                &mut |e| events.push(e),
                None,
            )
            .ok()
            .unwrap();
        assert_eq!(answer, json!({"method": "state", "params": [1]}));
        assert_eq!(events, vec![json!({"n": 1})]);
    }

    #[test]
    fn a_host_of_another_protocol_is_refused() {
        let other = ProtocolInfo {
            version: "2.0.0".into(),
            ..ProtocolInfo::ours()
        };
        let err = connect_to(hello(Some(other)), |_, _| {}).err().unwrap();
        assert!(
            err.to_string().contains("protocol version \"2.0.0\""),
            "{err}"
        );
        let err = connect_to(hello(None), |_, _| {}).err().unwrap();
        assert!(err.to_string().contains("no protocol version"), "{err}");
        let err = connect_to(None, |_, _| {}).err().unwrap();
        assert!(
            err.to_string()
                .contains("closed the connection while loading"),
            "{err}"
        );
    }

    #[test]
    fn a_host_that_goes_away_fails_the_call_in_flight() {
        let conn = connect_to(hello(Some(ProtocolInfo::ours())), |requests, _| {
            // Read one request, then drop both pipe ends without answering.
            let _ = requests.next();
        })
        .unwrap();
        match conn.request(
            "state",
            Value::Null,
            Duration::from_secs(5),
            &mut |_| {},
            None,
        ) {
            Err(Failure::Died(detail)) => assert_eq!(detail, "closed the connection"),
            _ => panic!("expected the call to fail as died"),
        }
        assert!(!conn.alive());
    }

    #[test]
    fn a_silent_host_times_out() {
        let (_keep_r, keep_w) = std::io::pipe().unwrap();
        let (r, _w) = std::io::pipe().unwrap();
        let err = Conn::connect(
            r,
            Box::new(keep_w),
            None,
            None,
            0,
            "x".into(),
            Duration::from_millis(50),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("did not answer within"), "{err}");
    }
}
