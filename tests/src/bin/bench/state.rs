//! `bench state`: what one cron-started `-t State` costs, measured on the real binary.
//!
//! Set-up: the GLPI double (loopback HTTP), a throw-away clamd (`tests/clamd/start-clamd.sh`),
//! an agent enrolled once per scenario. Scenarios: {three shipped backends in the plugins
//! folder, ClamAV alone} × {process, in-process isolation}. For each: `--runs` timed runs (wall
//! clock, median and min/max), then `--rss-runs` runs with a sampler that reads `VmHWM` of the
//! agent and of every child it starts (the plugin hosts) every 200 µs; reported: the agent's
//! peak, the sum of the peaks of the agent and its plugin hosts, and how many hosts started.
//! The timed runs are not sampled (the sampler would perturb them).

pub use armadito_tests::clamd::Clamd;
use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use armadito_tests::agent::{AgentSandbox, target_profile_dir};
use armadito_tests::double::Double;

const KEY: &str = "0RV2V-2RYTX-NX4OW-7LARZ-KZQAJ";
const UUID: &str = "4C4C4544-0033-4A10-8051-B4C04F4E4B32";
const SHIPPED: &[&str] = &[
    "armadito_backend_clamav",
    "armadito_backend_armadito",
    "armadito_backend_defender",
];

#[derive(clap::Args)]
pub struct Args {
    /// Timed runs per scenario (the median is reported)
    #[arg(long, default_value_t = 30)]
    runs: usize,
    /// Sampled runs per scenario for the memory figures
    #[arg(long, default_value_t = 10)]
    rss_runs: usize,
    /// The agent binary to measure [default: armadito-agent next to this executable]
    #[arg(long)]
    agent: Option<PathBuf>,
    /// Folder holding the backend libraries [default: the folder of this executable]
    #[arg(long)]
    libs: Option<PathBuf>,
    /// Do not run `cargo build` first (use what is in the target dir)
    #[arg(long)]
    no_build: bool,
}

fn lib_file(base: &str) -> String {
    format!(
        "{}{base}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// Peak resident set (`VmHWM`, kB) of a live process, if readable.
fn hwm_kb(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Whether `pid` runs a plugin host already. Between fork and exec a child still shares the
/// agent's memory (and shows the agent's command line): it must not count as a host.
fn is_host(pid: u32) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| c.split(|b| *b == 0).any(|arg| arg == b"plugin-host"))
}

/// Children of `pid` (all its threads).
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in tasks.filter_map(Result::ok) {
        if let Ok(list) = fs::read_to_string(t.path().join("children")) {
            out.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    out
}

/// One run with the sampler: (agent peak kB, sum of peaks kB, plugin hosts seen).
fn sampled_run(s: &AgentSandbox) -> Result<(u64, u64, usize)> {
    let mut child = s
        .command(&["-t", "State"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let pid = child.id();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peaks: BTreeMap<u32, u64> = BTreeMap::new();
            while !done.load(Ordering::Relaxed) {
                let hosts = children(pid).into_iter().filter(|c| is_host(*c));
                for p in std::iter::once(pid).chain(hosts) {
                    if let Some(kb) = hwm_kb(p) {
                        let e = peaks.entry(p).or_default();
                        *e = (*e).max(kb);
                    }
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            peaks
        })
    };
    let status = child.wait()?;
    done.store(true, Ordering::Relaxed);
    let peaks = sampler
        .join()
        .map_err(|_| anyhow::anyhow!("sampler panicked"))?;
    if !status.success() {
        bail!("-t State failed: {status}");
    }
    let agent = peaks.get(&pid).copied().unwrap_or(0);
    let sum = peaks.values().sum();
    Ok((agent, sum, peaks.len().saturating_sub(1)))
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

/// `cargo build` of `packages` in the profile of `profile` (the bench's own target folder).
pub fn cargo_build<S: AsRef<str>>(profile: &std::path::Path, packages: &[S]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet"]);
    for p in packages {
        cmd.args(["-p", p.as_ref()]);
    }
    if profile.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    if !cmd.status()?.success() {
        bail!("cargo build failed");
    }
    Ok(())
}

pub fn run(args: &Args) -> Result<()> {
    let profile = target_profile_dir();
    let agent = args
        .agent
        .clone()
        .unwrap_or_else(|| profile.join("armadito-agent"));
    let libs = args.libs.clone().unwrap_or_else(|| profile.clone());
    if !args.no_build && args.agent.is_none() {
        let mut packages = vec!["agent-core".to_string()];
        packages.extend(SHIPPED.iter().map(|p| p.replace('_', "-")));
        eprintln!("building the agent and the shipped backends...");
        cargo_build(&profile, &packages)?;
    }
    if !agent.exists() {
        bail!("{} is missing", agent.display());
    }
    // AgentSandbox runs ARMADITO_AGENT_BIN; set before any thread exists.
    // SAFETY: single-threaded at this point (no double, no sampler yet).
    unsafe { std::env::set_var("ARMADITO_AGENT_BIN", &agent) };

    let clamd = Clamd::start().map_err(anyhow::Error::msg)?;
    let d = Double::start();
    d.create_key(KEY, 1000, 3600);
    println!(
        "bench state: {} -t State, {} timed runs (median) + {} sampled runs per scenario",
        agent.display(),
        args.runs,
        args.rss_runs
    );
    println!(
        "{:<26} {:<11} {:>9} {:>9} {:>9} {:>11} {:>14} {:>6}",
        "folder", "isolation", "median", "min", "max", "agent RSS", "agent+hosts", "hosts"
    );
    for (label, set) in [
        ("3 shipped backends", SHIPPED),
        ("ClamAV alone", &SHIPPED[..1]),
    ] {
        for isolation in ["process", "in-process"] {
            let mut s = AgentSandbox::new(&d.base_url());
            s.top_config = "backend = \"clamav\"".into();
            s.extra_config = format!(
                "[plugins]\nisolation = \"{isolation}\"\n{}",
                clamd.settings()
            );
            s.write_config(UUID);
            let files: Vec<PathBuf> = set.iter().map(|b| libs.join(lib_file(b))).collect();
            for f in &files {
                if !f.exists() {
                    bail!("{} is missing", f.display());
                }
            }
            s.install_plugins(&files);
            let r = s.run(&["-t", "Enrollment", "-k", KEY]);
            if r.code != Some(0) {
                bail!("enrollment failed: {}", r.stderr);
            }
            for _ in 0..3 {
                let r = s.run(&["-t", "State"]);
                if r.code != Some(0) {
                    bail!("-t State failed: {}", r.stderr);
                }
            }
            let mut times = Vec::with_capacity(args.runs);
            for _ in 0..args.runs {
                let start = Instant::now();
                let status = s
                    .command(&["-t", "State"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()?;
                times.push(start.elapsed());
                if !status.success() {
                    bail!("-t State failed: {status}");
                }
            }
            let (mut agent_kb, mut sum_kb, mut hosts) = (0, 0, 0);
            for _ in 0..args.rss_runs {
                let (a, t, h) = sampled_run(&s)?;
                agent_kb = agent_kb.max(a);
                sum_kb = sum_kb.max(t);
                hosts = hosts.max(h);
            }
            let min = *times.iter().min().unwrap_or(&Duration::ZERO);
            let max = *times.iter().max().unwrap_or(&Duration::ZERO);
            let med = median(&mut times);
            let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
            println!(
                "{label:<26} {isolation:<11} {:>9} {:>9} {:>9} {:>11} {:>14} {:>6}",
                ms(med),
                ms(min),
                ms(max),
                mb(agent_kb),
                mb(sum_kb),
                hosts
            );
        }
    }
    println!();
    println!(
        "RSS: peak VmHWM of the agent, and the sum of the peaks of the agent and the plugin \
         hosts it started (max over the sampled runs); hosts: children seen in one run."
    );
    Ok(())
}
