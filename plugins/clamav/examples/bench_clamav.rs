//! Benchmark: the ClamAV backend's pipelined scan vs `clamdscan --multiscan --fdpass`,
//! against the same throw-away clamd, on the same generated tree, in the same run.
//!
//!   cargo run --release -p armadito-backend-clamav --example bench_clamav -- \
//!       [--files 20000] [--eicar 20] [--rounds 3] [--clamd-threads 4] \
//!       [--connections N] [--pipeline N] [--mode path|fildes|instream]
//!
//! Prints both wall times (median of the rounds, after one warm-up run each so both see a
//! warm page cache and clamd cache), their ratio (plugin / clamdscan: <= 1.0 means the
//! plugin is at least as fast), files/s, and the agent's peak RSS during its scans.
//! The plugin run includes per-file results and progress events; clamdscan gives neither.
//!
//! Needs clamd, clamdscan and sigtool (apt-get install clamav-daemon clamav clamdscan).

#[path = "../tests/support/mod.rs"]
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use armadito_backend_clamav::ClamavBackend;
use armadito_backend_clamav::scan::ScanObserver;
use armadito_plugin_api::model::{ScanProgress, ScanRequest};
use serde_json::json;
use support::{Clamd, ClamdOptions, Tree, eicar};

struct Args {
    files: usize,
    eicar: usize,
    rounds: usize,
    clamd_threads: usize,
    connections: Option<usize>,
    pipeline: Option<usize>,
    mode: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        files: 20_000,
        eicar: 20,
        rounds: 3,
        clamd_threads: 4,
        connections: None,
        pipeline: None,
        mode: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let num = |v: String| v.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--files" => a.files = num(value()?)?,
            "--eicar" => a.eicar = num(value()?)?,
            "--rounds" => a.rounds = num(value()?)?.max(1),
            "--clamd-threads" => a.clamd_threads = num(value()?)?.max(1),
            "--connections" => a.connections = Some(num(value()?)?),
            "--pipeline" => a.pipeline = Some(num(value()?)?),
            "--mode" => a.mode = Some(value()?),
            "-h" | "--help" => {
                println!(
                    "bench_clamav [--files N] [--eicar N] [--rounds N] [--clamd-threads N] \
                     [--connections N] [--pipeline N] [--mode path|fildes|instream]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.eicar > a.files {
        return Err("--eicar cannot exceed --files".into());
    }
    Ok(a)
}

/// Deterministic small files: 100 directories in two levels, 64 B..4 KiB each, with
/// `eicar` EICAR copies spread over the tree.
fn generate(tree: &Tree, files: usize, infected: usize) {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let every = files.checked_div(infected).unwrap_or(usize::MAX);
    let mut made = 0;
    for i in 0..files {
        let rel = format!("d{:02}/e{:02}/file-{i:05}.dat", i % 10, (i / 10) % 10);
        if infected > 0 && i % every == 0 && made < infected {
            tree.file(&rel, &eicar());
            made += 1;
        } else {
            let len = 64 + (next() % 4032) as usize;
            let mut data = Vec::with_capacity(len + 8);
            while data.len() < len {
                data.extend_from_slice(&next().to_le_bytes());
            }
            data.truncate(len);
            tree.file(&rel, &data);
        }
    }
}

#[derive(Default)]
struct Counter {
    events: AtomicU64,
}

impl ScanObserver for Counter {
    fn on_progress(&self, _: &ScanProgress) -> bool {
        self.events.fetch_add(1, Ordering::Relaxed);
        true
    }
}

fn status_kb(field: &str) -> Option<u64> {
    let text = fs::read_to_string("/proc/self/status").ok()?;
    text.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU seconds (user+system) of a process, from /proc/<pid>/stat.
fn proc_cpu_secs(pid: i32) -> f64 {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the ")" of the command name: state is field 3, utime 14, stime 15.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}

/// CPU seconds used by this process (`who` = RUSAGE_SELF) or its reaped children.
fn rusage_cpu_secs(who: libc::c_int) -> f64 {
    // SAFETY: zeroed rusage is valid; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut ru) } != 0 {
        return 0.0;
    }
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// Reset VmHWM so the next reading is the peak of what follows (Linux >= 4.0).
fn reset_peak_rss() {
    let _ = fs::write("/proc/self/clear_refs", "5");
}

struct PluginRun {
    secs: f64,
    files: usize,
    malware: u64,
    events: u64,
    peak_rss_kb: Option<u64>,
}

fn run_plugin(backend: &ClamavBackend, root: &Path) -> Result<PluginRun, String> {
    let req = ScanRequest {
        paths: vec![root.to_string_lossy().into_owned()],
        per_file_results: true,
        ..Default::default()
    };
    let counter = Counter::default();
    reset_peak_rss();
    let start = Instant::now();
    let r = backend.scan(&req, &counter).map_err(|e| e.to_string())?;
    let secs = start.elapsed().as_secs_f64();
    Ok(PluginRun {
        secs,
        files: r.files.len(),
        malware: r.malware,
        events: counter.events.load(Ordering::Relaxed),
        peak_rss_kb: status_kb("VmHWM:"),
    })
}

fn run_clamdscan(conf: &Path, root: &Path) -> Result<(f64, usize), String> {
    let start = Instant::now();
    let out = Command::new("clamdscan")
        .arg("-c")
        .arg(conf)
        .args(["--multiscan", "--fdpass", "--no-summary"])
        .arg(root)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run clamdscan: {e}"))?;
    let secs = start.elapsed().as_secs_f64();
    // Exit codes: 0 clean, 1 found, 2 error.
    if out.status.code() == Some(2) || out.status.code().is_none() {
        return Err(format!(
            "clamdscan failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let found = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.ends_with(" FOUND"))
        .count();
    Ok((secs, found))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    if let Err(e) = run() {
        eprintln!("bench_clamav: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let t = Instant::now();
    let tree = Tree::new();
    generate(&tree, args.files, args.eicar);
    eprintln!(
        "generated {} files ({} EICAR) in {} in {:.1}s",
        args.files,
        args.eicar,
        tree.path().display(),
        t.elapsed().as_secs_f64()
    );

    let clamd = Clamd::start_with(ClamdOptions {
        // Production-like logging: Debian's default does not log clean files (the test
        // harness does, for debugging), and a log line per file serialises clamd's threads.
        extra_conf: vec![
            format!("MaxThreads {}", args.clamd_threads),
            "LogClean no".into(),
        ],
        ..Default::default()
    });
    let conf_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let clamdscan_conf: PathBuf = conf_dir.path().join("clamd.conf");
    fs::write(
        &clamdscan_conf,
        format!("LocalSocket {}\n", clamd.socket.display()),
    )
    .map_err(|e| e.to_string())?;

    let mut settings = clamd.settings();
    if let Some(s) = settings.as_object_mut() {
        s.insert("progress_interval_ms".into(), json!(250));
        if let Some(n) = args.connections {
            s.insert("scan_connections".into(), json!(n));
        }
        if let Some(n) = args.pipeline {
            s.insert("scan_pipeline".into(), json!(n));
        }
        if let Some(m) = &args.mode {
            s.insert("scan_mode".into(), json!(m));
        }
    }
    let backend = ClamavBackend::from_json(&settings).map_err(|e| e.to_string())?;
    let client = backend.client().map_err(|e| e.to_string())?;
    let opts = backend.scan_options(&client, backend.clamd_conf().as_ref());
    eprintln!(
        "clamd MaxThreads {}, plugin: {} connections x {} in flight, mode {:?}",
        args.clamd_threads, opts.connections, opts.pipeline, opts.mode
    );

    // Warm-up: page cache and clamd's result cache, for both.
    let warm = run_plugin(&backend, tree.path())?;
    let (_, warm_found) = run_clamdscan(&clamdscan_conf, tree.path())?;
    if warm.malware != args.eicar as u64 || warm_found != args.eicar || warm.files != args.files {
        return Err(format!(
            "sanity check failed: plugin {} files / {} malware, clamdscan {} found, expected \
             {} files / {} EICAR",
            warm.files, warm.malware, warm_found, args.files, args.eicar
        ));
    }

    let mut plugin_times = Vec::new();
    let mut clamdscan_times = Vec::new();
    // CPU seconds: (client side, clamd side) per run.
    let mut plugin_cpu = (0.0, 0.0);
    let mut clamdscan_cpu = (0.0, 0.0);
    let mut peak = 0;
    let mut events = 0;
    for round in 0..args.rounds {
        // Alternate the order so neither always runs right after the other.
        let mut once = |first_plugin: bool| -> Result<(), String> {
            let clamd_before = proc_cpu_secs(clamd.pid);
            if first_plugin {
                let me = rusage_cpu_secs(libc::RUSAGE_SELF);
                let r = run_plugin(&backend, tree.path())?;
                plugin_cpu.0 += rusage_cpu_secs(libc::RUSAGE_SELF) - me;
                plugin_cpu.1 += proc_cpu_secs(clamd.pid) - clamd_before;
                peak = peak.max(r.peak_rss_kb.unwrap_or(0));
                events = r.events;
                plugin_times.push(r.secs);
            } else {
                let kids = rusage_cpu_secs(libc::RUSAGE_CHILDREN);
                clamdscan_times.push(run_clamdscan(&clamdscan_conf, tree.path())?.0);
                clamdscan_cpu.0 += rusage_cpu_secs(libc::RUSAGE_CHILDREN) - kids;
                clamdscan_cpu.1 += proc_cpu_secs(clamd.pid) - clamd_before;
            }
            Ok(())
        };
        let plugin_first = round % 2 == 0;
        once(plugin_first)?;
        once(!plugin_first)?;
        eprintln!(
            "round {}: plugin {:.3}s, clamdscan {:.3}s",
            round + 1,
            plugin_times[round],
            clamdscan_times[round]
        );
    }
    let rounds = args.rounds as f64;
    // Each round runs both back to back, so the per-round ratio cancels slow drifts in the
    // machine's load; its median is the headline number.
    let round_ratio = median(
        plugin_times
            .iter()
            .zip(&clamdscan_times)
            .map(|(p, c)| p / c)
            .collect(),
    );
    let p = median(plugin_times);
    let c = median(clamdscan_times);
    let n = args.files as f64;
    println!("files                 {}", args.files);
    println!("EICAR copies          {} (found by both)", args.eicar);
    println!(
        "plugin                {:.3} s  ({:.0} files/s, per-file results + {} progress events)",
        p,
        n / p,
        events
    );
    println!(
        "clamdscan --multiscan --fdpass  {:.3} s  ({:.0} files/s)",
        c,
        n / c
    );
    println!(
        "ratio plugin/clamdscan {:.3} (median of per-round ratios; ratio of medians {:.3})",
        round_ratio,
        p / c
    );
    println!("agent peak RSS        {:.1} MiB", peak as f64 / 1024.0);
    println!(
        "CPU per run           plugin {:.2} s + clamd {:.2} s | clamdscan {:.2} s + clamd {:.2} s",
        plugin_cpu.0 / rounds,
        plugin_cpu.1 / rounds,
        clamdscan_cpu.0 / rounds,
        clamdscan_cpu.1 / rounds
    );
    Ok(())
}
