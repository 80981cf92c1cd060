//! `bench daemon`: what a running `armadito-agent daemon` costs and how fast it reacts, on the
//! real binary against the GLPI double with the ClamAV backend on a real clamd.
//!
//! 1. Idle, default schedule (nothing in `[schedule]`): after a short settle, CPU time (user +
//!    system, `/proc/<pid>/stat`) over `--idle` seconds and the resident set (`VmRSS`) at the
//!    end, of the daemon and of its plugin host.
//! 2. With `[schedule.tasks.Getjobs] every = "5s"`: the delay from a job queued on the server
//!    to its final status there (median of `--jobs` jobs, one small scan each).
//! 3. The delay from a detection (clamd has logged it: a one-shot `-t Scan` of an EICAR file
//!    returned) to its alert on the server, with the default `[daemon] alerts_every` (5 s).

use std::fs::{self, File};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use armadito_tests::agent::{AgentSandbox, target_profile_dir};
use armadito_tests::double::Double;

use super::state::Clamd;

const KEY: &str = "0RV2V-2RYTX-NX4OW-7LARZ-KZQAJ";
const UUID: &str = "4C4C4544-0033-4A10-8051-B4C04F4E4B32";

#[derive(clap::Args)]
pub struct Args {
    /// Seconds of idle measured
    #[arg(long, default_value_t = 60)]
    idle: u64,
    /// Jobs timed for the job delay (the median is reported)
    #[arg(long, default_value_t = 5)]
    jobs: usize,
    /// Do not run `cargo build` first (use what is in the target dir)
    #[arg(long)]
    no_build: bool,
}

/// Clock ticks per second for /proc times (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

/// (utime + stime in seconds, VmRSS in kB) of a live process.
fn cpu_and_rss(pid: u32) -> Result<(f64, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').context("stat format")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        f.get(11).context("utime")?.parse::<u64>()? + f.get(12).context("stime")?.parse::<u64>()?;
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS")?;
    Ok((ticks as f64 / TICKS, rss))
}

/// The plugin hosts among the children of `pid`.
fn hosts(pid: u32) -> Vec<u32> {
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
    out.retain(|c| {
        fs::read(format!("/proc/{c}/cmdline")).is_ok_and(|c| {
            c.split(|b| *b == 0)
                .any(|arg| arg == b"plugin-host" || arg == b"--plugin")
        })
    });
    out
}

struct Running {
    child: Child,
    log: PathBuf,
}

impl Running {
    fn start(s: &AgentSandbox, name: &str) -> Result<Running> {
        let log = s.dir.path().join(format!("{name}.log"));
        let out = File::create(&log)?;
        let child = s
            .command(&["daemon"])
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        let r = Running { child, log };
        r.wait_for(
            || Ok(fs::read_to_string(&r.log)?.contains("daemon started")),
            "daemon start",
        )?;
        Ok(r)
    }

    fn wait_for(&self, mut ok: impl FnMut() -> Result<bool>, what: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !ok()? {
            if Instant::now() > deadline {
                bail!(
                    "timed out: {what}\n{}",
                    fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn stop(mut self) -> Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        let status = self.child.wait()?;
        if !status.success() {
            bail!(
                "daemon exit {status}\n{}",
                fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
        Ok(())
    }
}

fn sandbox(d: &Double, clamd: &Clamd, schedule: &str) -> Result<AgentSandbox> {
    let mut s = AgentSandbox::new(&d.base_url());
    s.top_config = "backend = \"clamav\"".into();
    s.extra_config = format!("[outbox]\nretry_base = 0\n{}{schedule}", clamd.settings());
    s.write_config(UUID);
    let profile = target_profile_dir();
    s.install_plugins(&[profile.join(format!(
        "{}armadito_backend_clamav{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))]);
    let r = s.run(&["-t", "Enrollment", "-k", KEY]);
    if r.code != Some(0) {
        bail!("enrollment failed: {}", r.stderr);
    }
    Ok(s)
}

fn eicar() -> Vec<u8> {
    let mut s = String::from(r"X5O!P%@AP[4\PZX54(P^)7CC)7}$");
    s.push_str("EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*");
    s.into_bytes()
}

pub fn run(args: &Args) -> Result<()> {
    let profile = target_profile_dir();
    let agent = profile.join("armadito-agent");
    if !args.no_build {
        eprintln!("building the agent and the ClamAV backend...");
        super::state::cargo_build(&profile, &["agent-core", "armadito-backend-clamav"])?;
    }
    if !agent.exists() {
        bail!("{} is missing", agent.display());
    }
    // SAFETY: single-threaded at this point (no double yet).
    unsafe { std::env::set_var("ARMADITO_AGENT_BIN", &agent) };
    let clamd = Clamd::start().map_err(anyhow::Error::msg)?;
    let d = Double::start();
    d.create_key(KEY, 1000, 3600);
    println!(
        "bench daemon: {} daemon, ClamAV backend on a real clamd, GLPI double",
        agent.display()
    );

    // 1. Idle with the default schedule.
    let s = sandbox(&d, &clamd, "")?;
    let daemon = Running::start(&s, "idle")?;
    let pid = daemon.child.id();
    std::thread::sleep(Duration::from_secs(5));
    let host_pids = hosts(pid);
    let (cpu0, _) = cpu_and_rss(pid)?;
    let host0: f64 = host_pids
        .iter()
        .filter_map(|h| cpu_and_rss(*h).ok())
        .map(|(c, _)| c)
        .sum();
    std::thread::sleep(Duration::from_secs(args.idle));
    let (cpu1, rss) = cpu_and_rss(pid)?;
    let (host1, host_rss) = host_pids
        .iter()
        .filter_map(|h| cpu_and_rss(*h).ok())
        .fold((0.0, 0u64), |(c, r), (c2, r2)| (c + c2, r + r2));
    let requests = d.requests().len();
    let breakdown = fs::read_to_string(format!("/proc/{pid}/status"))?
        .lines()
        .filter(|l| l.starts_with("RssAnon:") || l.starts_with("RssFile:"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ");
    daemon.stop()?;
    println!(
        "idle {} s, default schedule: daemon CPU {:.2} s, RSS {:.1} MB ({breakdown}); plugin host(s) {}: CPU {:.2} s, RSS {:.1} MB; {} requests to the server in the whole run",
        args.idle,
        cpu1 - cpu0,
        rss as f64 / 1024.0,
        host_pids.len(),
        host1 - host0,
        host_rss as f64 / 1024.0,
        requests
    );

    // 2. Job queued on the server -> its status on the server, Getjobs every 5 s.
    let s = sandbox(
        &d,
        &clamd,
        "[schedule.tasks.Getjobs]\nevery = \"5s\"\nwait_rand = 0\n",
    )?;
    let agent_id = d
        .agents()
        .into_iter()
        .find(|a| a.uuid == UUID)
        .context("agent enrolled")?;
    let tree = s.dir.path().join("tree");
    fs::create_dir_all(&tree)?;
    fs::write(tree.join("clean.txt"), "clean\n")?;
    let cfg = d.create_scanconfig(
        "tree",
        tree.to_str().context("utf-8")?,
        "",
        agent_id.plugin_armadito_antiviruses_id,
    );
    let daemon = Running::start(&s, "jobs")?;
    let mut delays = Vec::new();
    for _ in 0..args.jobs {
        let queued = Instant::now();
        let job = d.create_job(agent_id.id, cfg, 2);
        daemon.wait_for(
            || {
                Ok(d.job(job)
                    .is_some_and(|j| j.job_status == "successful" || j.job_status == "failed"))
            },
            "job status on the server",
        )?;
        delays.push(queued.elapsed());
        // Not in phase with the poll: start the next job at a random point of the period.
        std::thread::sleep(Duration::from_millis(rand::random_range(0..5000)));
    }
    delays.sort();
    println!(
        "job queued on the server -> status on the server (Getjobs every 5 s, {} jobs): median {:.2} s, min {:.2} s, max {:.2} s",
        delays.len(),
        delays[delays.len() / 2].as_secs_f64(),
        delays[0].as_secs_f64(),
        delays[delays.len() - 1].as_secs_f64()
    );

    // 3. Detection (clamd logged it) -> alert on the server.
    let live = s.dir.path().join("live");
    fs::create_dir_all(&live)?;
    let file = live.join("eicar-live.com");
    fs::write(&file, eicar())?;
    let path = file.display().to_string();
    let _ = s.run(&["-t", "Scan", "--path", live.to_str().context("utf-8")?]);
    let detected = Instant::now();
    daemon.wait_for(
        || Ok(d.alerts().iter().any(|a| a.filepath == path)),
        "alert on the server",
    )?;
    println!(
        "detection (clamd logged it) -> alert on the server ([daemon] alerts_every = 5s): {:.2} s",
        detected.elapsed().as_secs_f64()
    );
    daemon.stop()?;
    Ok(())
}
