//! The fuzz loop: seeds first, then mutated and generated inputs until the time is up.
//!
//! Invariants: every input runs under `catch_unwind` (a panic is recorded with its input, the
//! loop goes on); a watchdog thread aborts the process when one input runs longer than
//! `per_input`, after writing that input down (a hang cannot be unwound); the same seed gives
//! the same input sequence, so a failure can be reproduced with `--seed`. A stack overflow
//! aborts the process too: a SIGABRT handler then writes the input in flight to
//! `<crash_dir>/<target>-abort.bin` (async-signal-safe calls only).

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use arbitrary::Unstructured;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::targets::Target;

/// How long and how hard to fuzz one target.
#[derive(Debug, Clone)]
pub struct Settings {
    pub duration: Duration,
    /// Longest input tried, in bytes.
    pub max_len: usize,
    /// One input running longer than this is a hang.
    pub per_input: Duration,
    pub seed: u64,
    /// Where failing inputs are written (`<target>-<n>.bin`, `<target>-hang.bin`).
    pub crash_dir: Option<PathBuf>,
}

impl Settings {
    pub fn new(duration: Duration) -> Self {
        Settings {
            duration,
            max_len: 64 * 1024,
            // Unoptimised builds (the CI test) are ~10x slower than release.
            per_input: if cfg!(debug_assertions) {
                Duration::from_secs(5)
            } else {
                Duration::from_secs(1)
            },
            seed: 0x00A2_3AD1_70F0_u64,
            crash_dir: None,
        }
    }
}

/// One failing input.
#[derive(Debug, Clone)]
pub struct Crash {
    pub message: String,
    pub input: Vec<u8>,
    pub saved: Option<PathBuf>,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub target: &'static str,
    pub inputs: u64,
    pub seeds: usize,
    pub crashes: Vec<Crash>,
    pub elapsed: Duration,
    /// CPU time of the fuzzing thread (less than `elapsed` when the machine is shared).
    pub cpu: Duration,
    /// The slowest single input.
    pub slowest: Duration,
}

/// Stop collecting after this many distinct crashes (the first ones are what matters).
const MAX_CRASHES: usize = 10;
/// Inputs made on top of the seeds are kept (up to this many) to be mutated further.
const POOL_MAX: usize = 1024;

thread_local! {
    /// For the SIGABRT handler: the file to write to, and the input running on this thread.
    static ABORT_DUMP: Cell<(i32, *const u8, usize)> = const { Cell::new((-1, std::ptr::null(), 0)) };
    static QUIET: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Panics inside a fuzzed call are recorded, not printed (thousands would flood the output);
/// panics anywhere else still reach the default hook.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) {
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(info.to_string()));
            } else {
                default(info);
            }
        }));
    });
}

extern "C" fn on_abort(_sig: libc::c_int) {
    let (fd, ptr, len) = ABORT_DUMP.with(Cell::get);
    if fd >= 0 && !ptr.is_null() {
        // SAFETY: `ptr`/`len` describe the input buffer, alive while its target runs on this
        // thread; ftruncate and pwrite are async-signal-safe.
        unsafe {
            libc::ftruncate(fd, 0);
            libc::pwrite(fd, ptr.cast(), len, 0);
        }
    }
    // Returning lets abort() go on with the default action.
}

fn install_abort_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: installs a handler that only calls async-signal-safe functions.
        unsafe {
            libc::signal(libc::SIGABRT, on_abort as *const () as libc::sighandler_t);
        }
    });
}

/// Runs `target` once on `input`; `Err(panic message)` if it panicked.
pub fn run_once(target: &Target, input: &[u8]) -> Result<(), String> {
    install_hook();
    QUIET.with(|q| q.set(true));
    let r = catch_unwind(AssertUnwindSafe(|| (target.run)(input)));
    QUIET.with(|q| q.set(false));
    r.map_err(|_| {
        LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| "panic without a message".into())
    })
}

/// The watchdog's view of the input in flight.
struct InFlight {
    /// Milliseconds since `epoch` when the current input started; 0 = none running.
    started: AtomicU64,
    input: Mutex<Vec<u8>>,
    done: AtomicBool,
    epoch: Instant,
}

fn watchdog(target: &'static str, flight: Arc<InFlight>, limit: Duration, dir: Option<PathBuf>) {
    std::thread::spawn(move || {
        while !flight.done.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
            let started = flight.started.load(Ordering::Relaxed);
            if started == 0 {
                continue;
            }
            let now = flight.epoch.elapsed().as_millis() as u64;
            if now.saturating_sub(started) > limit.as_millis() as u64 {
                let input = flight.input.lock().map(|i| i.clone()).unwrap_or_default();
                let saved = dir
                    .as_ref()
                    .and_then(|d| save(d, &format!("{target}-hang"), &input));
                eprintln!(
                    "fuzz {target}: HANG: one input ran longer than {limit:?} ({} bytes{}): {:?}",
                    input.len(),
                    saved
                        .map(|p| format!(", saved to {}", p.display()))
                        .unwrap_or_default(),
                    String::from_utf8_lossy(&input[..input.len().min(300)])
                );
                std::process::abort();
            }
        }
    });
}

fn save(dir: &std::path::Path, name: &str, input: &[u8]) -> Option<PathBuf> {
    std::fs::create_dir_all(dir).ok()?;
    let path = dir.join(format!("{name}.bin"));
    std::fs::write(&path, input).ok()?;
    Some(path)
}

/// Fuzzes `target` for `settings.duration`.
pub fn fuzz(target: &Target, settings: &Settings) -> Outcome {
    let start = Instant::now();
    // A worker thread fuzzes several targets in turn: count this target's share only.
    let cpu_start = thread_cpu_time();
    let mut rng = StdRng::seed_from_u64(settings.seed ^ fnv(target.name));
    let seeds: Vec<Vec<u8>> = (target.seeds)();
    let mut pool = seeds.clone();
    if pool.is_empty() {
        pool.push(Vec::new());
    }
    let flight = Arc::new(InFlight {
        started: AtomicU64::new(0),
        input: Mutex::new(Vec::new()),
        done: AtomicBool::new(false),
        epoch: Instant::now(),
    });
    watchdog(
        target.name,
        flight.clone(),
        settings.per_input,
        settings.crash_dir.clone(),
    );

    let mut out = Outcome {
        target: target.name,
        inputs: 0,
        seeds: seeds.len(),
        crashes: Vec::new(),
        elapsed: Duration::ZERO,
        cpu: Duration::ZERO,
        slowest: Duration::ZERO,
    };
    let mut input = Vec::new();
    let mut n = 0usize;
    // The file the abort handler writes to (opened now: nothing can be opened in a handler).
    let dump = settings.crash_dir.as_ref().and_then(|d| {
        std::fs::create_dir_all(d).ok()?;
        let path = d.join(format!("{}-abort.bin", target.name));
        std::fs::File::create(&path).ok().map(|f| (f, path))
    });
    if dump.is_some() {
        install_abort_handler();
    }
    loop {
        // The seeds as they are first, then new inputs until the time is up.
        if n < seeds.len() {
            input.clone_from(&seeds[n]);
        } else {
            if start.elapsed() >= settings.duration || out.crashes.len() >= MAX_CRASHES {
                break;
            }
            next_input(&mut rng, target, &pool, settings.max_len, &mut input);
        }
        n += 1;

        if let Ok(mut slot) = flight.input.lock() {
            slot.clone_from(&input);
        }
        let t0 = Instant::now();
        flight.started.store(
            flight.epoch.elapsed().as_millis() as u64 + 1,
            Ordering::Relaxed,
        );
        if let Some((f, _)) = &dump {
            use std::os::fd::AsRawFd;
            ABORT_DUMP.with(|c| c.set((f.as_raw_fd(), input.as_ptr(), input.len())));
        }
        let r = run_once(target, &input);
        ABORT_DUMP.with(|c| c.set((-1, std::ptr::null(), 0)));
        flight.started.store(0, Ordering::Relaxed);
        out.slowest = out.slowest.max(t0.elapsed());
        out.inputs += 1;

        if let Err(message) = r {
            // One report per panic site (the first line names file:line).
            let site = message.lines().next().unwrap_or("").to_owned();
            if !out
                .crashes
                .iter()
                .any(|c| c.message.lines().next() == Some(site.as_str()))
            {
                let saved = settings.crash_dir.as_ref().and_then(|d| {
                    save(d, &format!("{}-{}", target.name, out.crashes.len()), &input)
                });
                out.crashes.push(Crash {
                    message,
                    input: input.clone(),
                    saved,
                });
            }
        } else if n > seeds.len() && rng.random_ratio(1, 8) {
            // Keep some inputs to build on (no coverage feedback: a random sample).
            if pool.len() < POOL_MAX {
                pool.push(input.clone());
            } else {
                let i = rng.random_range(seeds.len().min(pool.len() - 1)..pool.len());
                pool[i].clone_from(&input);
            }
        }
    }
    flight.done.store(true, Ordering::Relaxed);
    if let Some((f, path)) = dump {
        // Nothing aborted: no dump to keep.
        drop(f);
        let _ = std::fs::remove_file(path);
    }
    out.elapsed = start.elapsed();
    out.cpu = thread_cpu_time().saturating_sub(cpu_start);
    out
}

/// CPU time this thread has used (zero where the platform has no per-thread clock).
fn thread_cpu_time() -> Duration {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
        if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0 {
            return Duration::new(
                ts.tv_sec.max(0) as u64,
                ts.tv_nsec.clamp(0, 999_999_999) as u32,
            );
        }
    }
    Duration::ZERO
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A new input: generated from the target's grammar (if it has one), or a pool entry mutated.
fn next_input(
    rng: &mut StdRng,
    target: &Target,
    pool: &[Vec<u8>],
    max_len: usize,
    out: &mut Vec<u8>,
) {
    let generated = match target.generate {
        Some(g) if rng.random_ratio(1, 4) => {
            let len = rng.random_range(16..4096);
            let raw: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            g(&mut Unstructured::new(&raw)).ok()
        }
        _ => None,
    };
    match generated {
        Some(g) => {
            *out = g;
            // Half of the generated inputs are also bent a little.
            if rng.random_bool(0.5) {
                mutate(rng, out, pool, target.dict, max_len, 2);
            }
        }
        None => {
            out.clone_from(&pool[rng.random_range(0..pool.len())]);
            mutate(rng, out, pool, target.dict, max_len, 8);
        }
    }
    out.truncate(max_len);
}

/// Bytes that matter to text and JSON parsers.
const INTERESTING: &[u8] = b"\0\n\r\t \"'\\{}[],:;=#-+.019eE/|<>%\x7f\x80\xc3\xff";

/// Replacements that break number and text handling.
const SPECIAL: &[&str] = &[
    "0",
    "-1",
    "-0",
    "1e400",
    "-1e400",
    "1.5",
    "NaN",
    "inf",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "18446744073709551616",
    "4294967296",
    "99999999999999999999999999",
    "0x7fffffff",
    "",
    "\u{0}",
    "\u{feff}",
    "é",
    "€",
    "𝄞",
    "\u{202e}",
    "\u{2028}",
    "\\u0000",
    "\\ud800",
    "%s%n",
    "\r\n",
    "\n\n",
    "../../../../etc/passwd",
    "1970-01-01",
    "2038-01-19 03:14:08",
    "9999-12-31 23:59:59",
    "0000-00-00 00:00:00",
    "Feb 30 25:61:61",
];

/// AFL-style havoc: 1..=`max_ops` stacked mutations.
pub fn mutate(
    rng: &mut StdRng,
    data: &mut Vec<u8>,
    pool: &[Vec<u8>],
    dict: &[&str],
    max_len: usize,
    max_ops: u32,
) {
    let ops = rng.random_range(1..=max_ops);
    for _ in 0..ops {
        let len = data.len();
        match rng.random_range(0..14u32) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                data[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                data[i] = rng.random();
            }
            2 if len > 0 => {
                let i = rng.random_range(0..len);
                data[i] = INTERESTING[rng.random_range(0..INTERESTING.len())];
            }
            3 => {
                let i = rng.random_range(0..=len);
                let n = rng.random_range(1..16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                data.splice(i..i, bytes);
            }
            4 if len > 0 => {
                // Delete a range.
                let i = rng.random_range(0..len);
                let n = rng.random_range(1..=(len - i).min(64));
                data.drain(i..i + n);
            }
            5 if len > 0 => {
                // Repeat a range many times: long lines, deep nesting, big counts.
                let i = rng.random_range(0..len);
                let n = rng.random_range(1..=(len - i).min(32));
                let chunk = data[i..i + n].to_vec();
                let times = *[2usize, 8, 100, 1000]
                    .get(rng.random_range(0..4))
                    .unwrap_or(&2);
                let mut rep = Vec::with_capacity(n * times);
                for _ in 0..times {
                    rep.extend_from_slice(&chunk);
                }
                data.splice(i..i, rep);
            }
            6 if !pool.is_empty() => {
                // Splice: our head, another input's tail.
                let other = &pool[rng.random_range(0..pool.len())];
                let cut = rng.random_range(0..=len);
                let from = rng.random_range(0..=other.len());
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            7 | 8 if !dict.is_empty() => {
                let tok = dict[rng.random_range(0..dict.len())].as_bytes();
                let i = rng.random_range(0..=len);
                if rng.random_bool(0.5) || len == 0 {
                    data.splice(i..i, tok.iter().copied());
                } else {
                    let end = (i + tok.len()).min(len);
                    data.splice(i..end, tok.iter().copied());
                }
            }
            9 => {
                let tok = SPECIAL[rng.random_range(0..SPECIAL.len())].as_bytes();
                replace_token(rng, data, tok);
            }
            10 if len > 0 => {
                // Truncate (half a reply, a cut line).
                let cut = rng.random_range(0..len);
                data.truncate(cut);
            }
            11 if len > 1 => {
                // Swap two bytes far apart.
                let (a, b) = (rng.random_range(0..len), rng.random_range(0..len));
                data.swap(a, b);
            }
            12 => {
                // Duplicate a whole line (repeated keys, repeated records).
                if let Some((s, e)) = random_line(rng, data) {
                    let line = data[s..e].to_vec();
                    data.splice(e..e, line);
                }
            }
            _ => {
                // Delete a whole line.
                if let Some((s, e)) = random_line(rng, data) {
                    data.drain(s..e);
                }
            }
        }
        if data.len() > max_len {
            data.truncate(max_len);
        }
    }
}

/// Replaces a run of digits or letters (a number, a word) with `tok`, or inserts it.
fn replace_token(rng: &mut StdRng, data: &mut Vec<u8>, tok: &[u8]) {
    let len = data.len();
    if len == 0 {
        data.extend_from_slice(tok);
        return;
    }
    let i = rng.random_range(0..len);
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'-';
    if !word(data[i]) {
        data.splice(i..i, tok.iter().copied());
        return;
    }
    let mut s = i;
    while s > 0 && word(data[s - 1]) {
        s -= 1;
    }
    let mut e = i;
    while e < len && word(data[e]) {
        e += 1;
    }
    data.splice(s..e, tok.iter().copied());
}

/// The byte range of a random line, its newline included.
fn random_line(rng: &mut StdRng, data: &[u8]) -> Option<(usize, usize)> {
    if data.is_empty() {
        return None;
    }
    let i = rng.random_range(0..data.len());
    let s = data[..i]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |p| p + 1);
    let e = data[i..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(data.len(), |p| i + p + 1);
    Some((s, e))
}
