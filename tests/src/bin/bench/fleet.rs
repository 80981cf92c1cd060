//! `bench fleet`: the request rate a GLPI server sees from a simulated fleet of daemons, in
//! normal operation and right after an outage (the recovery herd), with and without jitter.
//! The simulation (`armadito_tests::fleet_sim`) paces each agent with the daemon's own policy.

use std::time::Instant;

use anyhow::{Result, bail};
use armadito_tests::fleet_sim::{Params, Report, simulate};

#[derive(clap::Args)]
pub struct Args {
    /// Agents in the fleet
    #[arg(long, default_value_t = 10_000)]
    pub agents: u32,
    /// Hours of normal operation measured (after one hour of warm-up)
    #[arg(long, default_value_t = 1.0)]
    pub hours: f64,
    /// Minutes the server is down
    #[arg(long, default_value_t = 60)]
    pub outage_min: u64,
    /// Seed of the agents' generators
    #[arg(long, default_value_t = 16)]
    pub seed: u64,
}

/// Runs both modes; returns the jittered report (the daemon's real behaviour).
pub fn measure(args: &Args) -> Result<(Report, Report)> {
    if args.agents == 0 || args.hours.is_nan() || args.hours <= 0.0 {
        bail!("--agents and --hours must be positive");
    }
    let mut out = Vec::new();
    for jitter in [true, false] {
        let mut p = Params::new(args.agents, args.hours, args.outage_min, jitter);
        p.seed = args.seed;
        let started = Instant::now();
        let r = simulate(&p);
        eprintln!(
            "  simulated {} agents, jitter {}: {} runs in {:.1} s",
            args.agents,
            if jitter { "on" } else { "off" },
            r.runs,
            started.elapsed().as_secs_f64()
        );
        out.push(r);
    }
    let off = out.pop().unwrap_or_else(|| unreachable!());
    let on = out.pop().unwrap_or_else(|| unreachable!());
    Ok((on, off))
}

pub fn run(args: &Args) -> Result<()> {
    println!(
        "fleet: {} agents, default schedule, {} h normal, {} min outage (requests/s at the server)",
        args.agents, args.hours, args.outage_min
    );
    let (on, off) = measure(args)?;
    println!(
        "{:<12} {:>12} {:>11} {:>11} {:>14} {:>14} {:>16} {:>8}",
        "jitter",
        "normal mean",
        "normal p99",
        "normal peak",
        "recovery mean",
        "recovery p99",
        "recovery peak",
        "peak/p99"
    );
    for (name, r) in [("on (daemon)", &on), ("off", &off)] {
        println!(
            "{:<12} {:>12.1} {:>11} {:>11} {:>14.1} {:>14} {:>16} {:>8.2}",
            name,
            r.normal.mean,
            r.normal.p99,
            r.normal.peak,
            r.recovery.mean,
            r.recovery.p99,
            format!("{} (+{} s)", r.recovery.peak, r.recovery_peak_after),
            r.herd_ratio()
        );
    }
    let ok = on.herd_ratio() <= 2.0;
    println!(
        "goal (recovery peak <= 2x normal p99, jitter on): {}",
        if ok { "met" } else { "MISSED" }
    );
    if !ok {
        bail!(
            "recovery peak {} > 2 x normal p99 {}",
            on.recovery.peak,
            on.normal.p99
        );
    }
    Ok(())
}
