//! `bench all`: every benchmark once, then one summary table.
//!
//! Each area runs as a child `bench <area>` (its full output is echoed, so nothing is hidden);
//! the table picks the headline numbers from those outputs by pattern. A number that is not
//! found shows as "n/a" and the command fails, so a changed output format cannot go unnoticed.

use std::process::Command;

use anyhow::{Context, Result, bail};
use regex::Regex;

#[derive(clap::Args)]
pub struct Args {
    /// Agents in the fleet simulation
    #[arg(long, default_value_t = 10_000)]
    pub fleet_agents: u32,
    /// Seconds of daemon idle measured
    #[arg(long, default_value_t = 60)]
    pub idle: u64,
}

/// One child bench: (its arguments, its stdout) or why it failed.
fn child(args: &[&str]) -> Result<String> {
    let exe = std::env::current_exe().context("bench's own path")?;
    eprintln!("== bench {}", args.join(" "));
    let out = Command::new(&exe)
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("run bench {}", args.join(" ")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{stdout}");
    if !out.status.success() {
        bail!("bench {} failed ({})", args.join(" "), out.status);
    }
    Ok(stdout)
}

/// The captures of `re` in `text`, joined by `sep`, or `None`.
fn pick(text: &str, re: &str, sep: &str) -> Option<String> {
    let re = Regex::new(re).ok()?;
    let c = re.captures(text)?;
    Some(
        c.iter()
            .skip(1)
            .flatten()
            .map(|m| m.as_str().trim().to_string())
            .collect::<Vec<_>>()
            .join(sep),
    )
}

pub fn run(args: &Args) -> Result<()> {
    let mut rows: Vec<(&str, Option<String>)> = Vec::new();
    let mut failed = Vec::new();
    let mut area = |name: &str, a: &[&str]| match child(a) {
        Ok(out) => out,
        Err(e) => {
            eprintln!("{e:#}");
            failed.push(name.to_string());
            String::new()
        }
    };

    let state = area("state", &["state"]);
    rows.push((
        "one-shot -t State, ClamAV alone, process isolation: median / agent peak RSS / agent+hosts",
        pick(
            &state,
            r"(?m)^ClamAV alone\s+process\s+(\S+ ms)\s+\S+ ms\s+\S+ ms\s+(\S+ MB)\s+(\S+ MB)",
            " / ",
        ),
    ));
    rows.push((
        "one-shot -t State, 3 shipped backends, process isolation: median / agent / agent+hosts",
        pick(
            &state,
            r"(?m)^3 shipped backends\s+process\s+(\S+ ms)\s+\S+ ms\s+\S+ ms\s+(\S+ MB)\s+(\S+ MB)",
            " / ",
        ),
    ));

    let idle = args.idle.to_string();
    let daemon = area("daemon", &["daemon", "--no-build", "--idle", &idle]);
    let cpu_per_hour = pick(&daemon, r"daemon CPU ([0-9.]+) s", "")
        .and_then(|c| c.parse::<f64>().ok())
        .map(|c| format!("{:.1} s", c * 3600.0 / args.idle.max(1) as f64));
    rows.push((
        "daemon idle (default schedule): RSS / plugin host RSS",
        pick(
            &daemon,
            r"daemon CPU [0-9.]+ s, RSS ([0-9.]+ MB).*plugin host\(s\) \d+: CPU [0-9.]+ s, RSS ([0-9.]+ MB)",
            " / ",
        ),
    ));
    rows.push(("daemon idle CPU per hour (daemon alone)", cpu_per_hour));
    rows.push((
        "job queued on the server -> status there (Getjobs every 5 s), median",
        pick(
            &daemon,
            r"job queued on the server .*: median ([0-9.]+ s)",
            "",
        ),
    ));
    rows.push((
        "detection -> alert on the server (alerts_every 5 s)",
        pick(
            &daemon,
            r"detection .*-> alert on the server .*: ([0-9.]+ s)",
            "",
        ),
    ));

    let plugins = area("plugins", &["plugins"]);
    rows.push((
        "plugin load, ClamAV backend: in-process / process",
        pick(
            &plugins,
            r"(?m)^\S*armadito_backend_clamav\S*\s+(\S+ ms)\s+(\S+ ms)",
            " / ",
        ),
    ));
    rows.push((
        "plugin call state(): in-process / process",
        pick(&plugins, r"(?m)^state\(\)\s+(\S+ µs)\s+(\S+ µs)", " / "),
    ));

    let clamav = area("clamav", &["clamav"]);
    rows.push((
        "scan throughput, plugin vs clamdscan --multiscan --fdpass (ratio plugin/clamdscan)",
        pick(
            &clamav,
            r"(?s)plugin\s+[0-9.]+ s\s+\(([0-9]+ files/s).*clamdscan --multiscan --fdpass\s+[0-9.]+ s\s+\(([0-9]+ files/s)\).*ratio plugin/clamdscan ([0-9.]+)",
            " / ",
        ),
    ));

    let outbox = area("outbox", &["outbox"]);
    rows.push((
        "outbox drain, 10,000 queued alerts: coalesced s / POSTs, one per POST s / POSTs",
        pick(
            &outbox,
            r"(?ms)^100\s+([0-9.]+)\s+(\d+)\s.*^1\s+([0-9.]+)\s+(\d+)\s",
            " / ",
        ),
    ));

    let agents = args.fleet_agents.to_string();
    let fleet = area("fleet", &["fleet", "--agents", &agents]);
    rows.push((
        "fleet (simulated, jitter on): normal p99 / recovery peak after 1 h outage (req/s)",
        pick(
            &fleet,
            r"(?m)^on \(daemon\)\s+[0-9.]+\s+(\d+)\s+\d+\s+[0-9.]+\s+\d+\s+(\d+)",
            " / ",
        ),
    ));
    rows.push((
        "fleet: alert POSTs after the outage (outbreak), coalesced / one per alert",
        pick(
            &fleet,
            r"alert POSTs after the outage: (\d+) coalesced .*?, (\d+) one per alert",
            " / ",
        ),
    ));

    println!();
    println!("== summary (see each bench's output above for the details)");
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut missing = 0;
    for (k, v) in &rows {
        let v = v.clone().unwrap_or_else(|| {
            missing += 1;
            "n/a".into()
        });
        println!("{k:<width$}  {v}");
    }
    if !failed.is_empty() || missing > 0 {
        bail!("{missing} number(s) missing; failed: {failed:?}");
    }
    Ok(())
}
