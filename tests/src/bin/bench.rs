//! Benchmarks. One subcommand per area:
//!
//! * `bench plugins`: plugin load time (every plugin, both isolation modes) and per-call
//!   overhead in-process vs in a `plugin-host` child.
//!
//! * `bench state`: wall time (median of N runs) and memory of `armadito-agent -t State`, the
//!   real binary against the GLPI double with the ClamAV backend on a real clamd, with the three
//!   shipped backends in the plugins folder and with ClamAV alone, in both isolation modes.
//!   `--agent`/`--libs` measure another build (e.g. the one before a change).
//!
//! * `bench daemon`: `armadito-agent daemon` idle CPU time and RSS over 60 s with the default
//!   schedule, the delay job queued on the server -> status there (`every = "5s"` Getjobs), and
//!   detection -> alert on the server; ClamAV backend on a real clamd, GLPI double.
//!
//! * `bench fleet --agents 10000 [--hours H] [--outage-min 60]`: a simulated fleet paced by
//!   the daemon's own policy in virtual time; the request rate the server sees (mean, p99 per
//!   second, peak) in normal operation and after the outage, with and without jitter.
//!
//! * `bench soak --minutes N`: the daemon for N minutes with jobs, detections and State
//!   flowing (double, real clamd): RSS, open fds, threads, store size, first/last/max.
//!
//! * `bench clamav [ARGS]`: the ClamAV backend against `clamdscan --multiscan --fdpass` on the
//!   same generated tree and clamd (runs the crate's `bench_clamav` example; ARGS go to it).
//!
//! * `bench outbox`: 10,000 queued one-alert messages drained against the double, coalesced
//!   (`[outbox] coalesce_alerts = 100`) vs one POST per message: seconds, POSTs sent, ratio.
//! * `bench all`: all of the above once (soak aside), then one summary table.
//!
//! Run: `cargo run --release -p armadito-tests --bin bench -- plugins`.
//! Add an area by adding a variant to [`Area`] and a module below.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Armadito agent benchmarks")]
struct Cli {
    #[command(subcommand)]
    area: Area,
}

#[derive(Subcommand)]
enum Area {
    /// Plugin load time and per-call overhead (in-process vs process isolation)
    Plugins(plugins::Args),
    /// `-t State` wall time and RSS against the double with ClamAV on a real clamd
    State(state::Args),
    /// The daemon: idle CPU and RSS, job and alert delays (ClamAV on a real clamd)
    Daemon(daemon::Args),
    /// Outbox drain: queued alerts delivered coalesced vs one POST per message
    Outbox(outbox::Args),
    /// Simulated fleet (daemon policy, virtual time): request rate at the server, outage herd
    Fleet(fleet::Args),
    /// Every benchmark once, then one summary table
    All(all::Args),
    /// The daemon for N minutes with work flowing: RSS, fds, threads, store size
    Soak(soak::Args),
    /// ClamAV plugin vs clamdscan --multiscan --fdpass (arguments are passed to bench_clamav)
    Clamav {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Internal: serve a plugin over stdin/stdout (the bench is its own plugin host)
    #[command(hide = true)]
    PluginHost {
        #[arg(long)]
        plugin: std::path::PathBuf,
    },
}

fn main() -> ExitCode {
    match Cli::parse().area {
        Area::Plugins(args) => match plugins::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench plugins: {e:#}");
                ExitCode::FAILURE
            }
        },
        Area::Daemon(args) => match daemon::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench daemon: {e:#}");
                ExitCode::FAILURE
            }
        },
        Area::Fleet(args) => match fleet::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench fleet: {e:#}");
                ExitCode::FAILURE
            }
        },
        Area::All(args) => match all::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench all: {e:#}");
                ExitCode::FAILURE
            }
        },
        Area::Soak(args) => match soak::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench soak: {e:#}");
                ExitCode::FAILURE
            }
        },
        Area::State(args) => match state::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench state: {e:#}");
                ExitCode::FAILURE
            }
        },
        Area::Outbox(args) => match outbox::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench outbox: {e:#}");
                ExitCode::FAILURE
            }
        },
        Area::Clamav { args } => {
            // The benchmark lives with the backend crate (it drives the backend's own harness).
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = std::process::Command::new(cargo)
                .args([
                    "run",
                    "--release",
                    "-q",
                    "-p",
                    "armadito-backend-clamav",
                    "--example",
                    "bench_clamav",
                    "--",
                ])
                .args(&args)
                .status();
            match status {
                Ok(s) if s.success() => ExitCode::SUCCESS,
                Ok(_) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("bench clamav: cannot run cargo: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Area::PluginHost { plugin } => agent_core::plugins::plugin_host_main(&plugin),
    }
}

#[path = "bench/all.rs"]
mod all;
#[path = "bench/daemon.rs"]
mod daemon;
#[path = "bench/fleet.rs"]
mod fleet;
#[path = "bench/soak.rs"]
mod soak;
#[path = "bench/state.rs"]
mod state;

#[path = "bench/outbox.rs"]
mod outbox;

mod plugins {
    use std::fs;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::time::{Duration, Instant};

    use agent_core::plugins::{Backend, CancelToken, Isolation, PluginsConfig, Registry};
    use anyhow::{Context, Result, bail};
    use armadito_plugin_api::model::ScanRequest;
    use serde_json::json;

    #[derive(clap::Args)]
    pub struct Args {
        /// Calls per measurement
        #[arg(long, default_value_t = 2000)]
        iterations: u32,
        /// Do not run `cargo build` for the plugins (use what is in the target dir)
        #[arg(long)]
        no_build: bool,
    }

    /// (cargo package, library base name). The example plugins are the measured ones; the
    /// real backends are loaded to report their load time.
    const PLUGINS: &[(&str, &str)] = &[
        ("test-plugin-example", "test_plugin_example"),
        ("test-plugin-example2", "test_plugin_example2"),
        ("armadito-backend-clamav", "armadito_backend_clamav"),
        ("armadito-backend-armadito", "armadito_backend_armadito"),
        ("armadito-backend-defender", "armadito_backend_defender"),
    ];

    fn lib_file(base: &str) -> String {
        format!(
            "{}{base}{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        )
    }

    /// The folder holding this executable (`target/<profile>`), where cdylibs land too.
    fn profile_dir() -> Result<PathBuf> {
        let exe = std::env::current_exe().context("current exe")?;
        Ok(exe.parent().context("exe folder")?.to_path_buf())
    }

    fn build_plugins(dir: &Path) -> Result<()> {
        let profile = dir
            .file_name()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let target = dir.parent().context("target dir")?;
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "--target-dir"]).arg(target);
        match profile.as_str() {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        for (package, _) in PLUGINS {
            cmd.args(["-p", package]);
        }
        eprintln!("building the plugins ({profile})...");
        if !cmd.status().context("run cargo")?.success() {
            bail!("cargo build of the plugins failed");
        }
        Ok(())
    }

    struct Sandbox {
        root: tempfile::TempDir,
    }

    /// The modes the plugin loader trusts (unix); on Windows the ACLs of a temp dir apply.
    fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(path, fs::Permissions::from_mode(mode))
        }
        #[cfg(not(unix))]
        {
            let _ = (path, mode);
            Ok(())
        }
    }

    impl Sandbox {
        fn new(libs: &[PathBuf]) -> Result<Sandbox> {
            let root = tempfile::tempdir()?;
            let dir = root.path().join("plugins");
            fs::create_dir(&dir)?;
            set_mode(&dir, 0o755)?;
            for lib in libs {
                let dest = dir.join(lib.file_name().context("file name")?);
                fs::copy(lib, &dest)?;
                set_mode(&dest, 0o644)?;
            }
            Ok(Sandbox { root })
        }

        fn config(&self, isolation: Isolation) -> Result<PluginsConfig> {
            let mut cfg = PluginsConfig::new(
                self.root.path().join("plugins"),
                self.root.path().join("cache"),
            );
            cfg.isolation = isolation;
            cfg.host_exe = std::env::current_exe()?;
            Ok(cfg)
        }
    }

    fn ms(d: Duration) -> String {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }

    fn us(d: Duration, n: u32) -> String {
        format!("{:.1} µs", d.as_secs_f64() * 1e6 / f64::from(n))
    }

    /// Mean time of `n` calls of `f` after a short warm-up.
    fn time_calls(n: u32, mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
        for _ in 0..n.min(50) {
            f()?;
        }
        let start = Instant::now();
        for _ in 0..n {
            f()?;
        }
        Ok(start.elapsed())
    }

    pub fn run(args: &Args) -> Result<()> {
        let dir = profile_dir()?;
        if !args.no_build {
            build_plugins(&dir)?;
        }
        let libs: Vec<PathBuf> = PLUGINS
            .iter()
            .map(|(_, base)| dir.join(lib_file(base)))
            .collect();
        for lib in &libs {
            if !lib.exists() {
                bail!("{} is missing (build the plugins first)", lib.display());
            }
        }
        println!(
            "plugin benchmark ({} build, {} iterations)",
            dir.display(),
            args.iterations
        );

        // ---- load time -------------------------------------------------------------------
        println!();
        println!("Load time (check + hash + cache copy + load + interface/layout checks + new())");
        println!(
            "{:<34} {:>14} {:>14}  status",
            "plugin", "in-process", "process"
        );
        for lib in &libs {
            let mut cells = Vec::new();
            let mut status = String::new();
            for isolation in [Isolation::InProcess, Isolation::Process] {
                let sandbox = Sandbox::new(std::slice::from_ref(lib))?;
                let cfg = sandbox.config(isolation)?;
                let start = Instant::now();
                let registry = Registry::open(cfg)?;
                cells.push(ms(start.elapsed()));
                let report = registry.reports().into_iter().next();
                status = match report {
                    Some(r) if r.is_loaded() => format!(
                        "loaded {} {}",
                        r.name.unwrap_or_default(),
                        r.version.unwrap_or_default()
                    ),
                    Some(r) => format!("refused: {}", r.reason.unwrap_or_default()),
                    None => "not found".into(),
                };
            }
            let name = lib
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            println!("{name:<34} {:>14} {:>14}  {status}", cells[0], cells[1]);
        }
        // Stopping a plugin host: what the end of every run pays (median of 20).
        {
            let sandbox = Sandbox::new(&libs[..1])?;
            let mut stops = Vec::new();
            for _ in 0..20 {
                let registry = Registry::open(sandbox.config(Isolation::Process)?)?;
                registry.get("example").context("example not loaded")?;
                let start = Instant::now();
                drop(registry);
                stops.push(start.elapsed());
            }
            stops.sort();
            println!(
                "{:<34} {:>14}  (median of 20; min {}, max {})",
                "stop one plugin host",
                ms(stops[10]),
                ms(stops[0]),
                ms(stops[19])
            );
        }
        for isolation in [Isolation::InProcess, Isolation::Process] {
            let sandbox = Sandbox::new(&libs)?;
            let start = Instant::now();
            let registry = Registry::open(sandbox.config(isolation)?)?;
            println!(
                "{:<34} {:>14}  ({:?}, {} loaded)",
                "all plugins in one folder",
                ms(start.elapsed()),
                isolation,
                registry.names().len()
            );
        }

        // ---- per-call overhead ------------------------------------------------------------
        println!();
        println!(
            "Per-call cost, mean over {} calls (plugin work is negligible)",
            args.iterations
        );
        println!("{:<44} {:>12} {:>12}", "call", "in-process", "process");
        let sandbox = Sandbox::new(&libs[..2])?;
        let in_proc = Registry::open(sandbox.config(Isolation::InProcess)?)?;
        let sandbox2 = Sandbox::new(&libs[..2])?;
        let child = Registry::open(sandbox2.config(Isolation::Process)?)?;
        let pick = |r: &Registry, name: &str| -> Result<std::sync::Arc<dyn Backend>> {
            r.get(name).with_context(|| format!("{name} not loaded"))
        };
        let modes = [pick(&in_proc, "example2")?, pick(&child, "example2")?];
        let n = args.iterations;

        let row = |label: &str, f: &dyn Fn(&dyn Backend) -> Result<()>, calls: u32| -> Result<()> {
            let a = time_calls(n, || f(&*modes[0]))?;
            let b = time_calls(n, || f(&*modes[1]))?;
            println!(
                "{label:<44} {:>12} {:>12}",
                us(a, n * calls),
                us(b, n * calls)
            );
            Ok(())
        };
        row("state()", &|b| b.state().map(|_| ()).map_err(Into::into), 1)?;
        row(
            "config_get()",
            &|b| b.config_get().map(|_| ()).map_err(Into::into),
            1,
        )?;
        let payload = json!({ "paths": vec!["/some/path/to/a/file"; 50] });
        row(
            "invoke(\"echo\", 50 paths ~1.3 KB)",
            &|b| {
                b.invoke("echo", &payload, &mut |_| {}, &CancelToken::new())
                    .map(|_| ())
                    .map_err(Into::into)
            },
            1,
        )?;
        let request = ScanRequest {
            options: [
                ("steps".to_string(), json!(100)),
                ("step_ms".to_string(), json!(0)),
            ]
            .into(),
            ..ScanRequest::default()
        };
        let events = 100;
        let scans = (n / 20).max(10);
        for (label, backend) in [("in-process", &modes[0]), ("process", &modes[1])] {
            let start = Instant::now();
            for _ in 0..scans {
                let mut seen = 0u32;
                backend.scan(&request, &mut |_| seen += 1, &CancelToken::new())?;
                if seen != events {
                    bail!("expected {events} progress events, got {seen}");
                }
            }
            println!(
                "{:<44} {:>12}",
                format!("scan: per progress event streamed ({label})"),
                us(start.elapsed(), scans * events)
            );
        }
        println!();
        println!(
            "In-process: the call is handed to a pooled thread (so it can time out) and the \
             answer back, JSON in and out. Process: a JSON-lines round trip over pipes to the \
             plugin-host child, which also runs the call on a pooled thread."
        );
        Ok(())
    }
}
