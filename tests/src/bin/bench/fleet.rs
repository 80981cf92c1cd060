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

/// The three runs: the daemon as it is, without jitter, and without alert coalescing.
pub struct Runs {
    pub on: Report,
    pub off: Report,
    pub one_alert_per_post: Report,
}

/// Runs the three modes (the first is the daemon's real behaviour).
pub fn measure(args: &Args) -> Result<Runs> {
    if args.agents == 0 || args.hours.is_nan() || args.hours <= 0.0 {
        bail!("--agents and --hours must be positive");
    }
    let run = |name: &str, jitter: bool, alerts_per_post: Option<u32>| {
        let mut p = Params::new(args.agents, args.hours, args.outage_min, jitter);
        p.seed = args.seed;
        if let Some(n) = alerts_per_post {
            p.alerts_per_post = n;
        }
        let started = Instant::now();
        let r = simulate(&p);
        eprintln!(
            "  simulated {} agents, {name}: {} runs in {:.1} s",
            args.agents,
            r.runs,
            started.elapsed().as_secs_f64()
        );
        r
    };
    Ok(Runs {
        on: run("jitter on", true, None),
        off: run("jitter off", false, None),
        one_alert_per_post: run("one alert per POST", true, Some(1)),
    })
}

pub fn run(args: &Args) -> Result<()> {
    println!(
        "fleet: {} agents, default schedule, {} h normal, {} min outage (requests/s at the server)",
        args.agents, args.hours, args.outage_min
    );
    let Runs {
        on,
        off,
        one_alert_per_post,
    } = measure(args)?;
    println!(
        "{:<16} {:>12} {:>11} {:>11} {:>14} {:>14} {:>16} {:>8}",
        "jitter, alerts",
        "normal mean",
        "normal p99",
        "normal peak",
        "recovery mean",
        "recovery p99",
        "recovery peak",
        "peak/p99"
    );
    for (name, r) in [
        ("on (daemon)", &on),
        ("off", &off),
        ("on, 1 alert/POST", &one_alert_per_post),
    ] {
        println!(
            "{:<16} {:>12.1} {:>11} {:>11} {:>14.1} {:>14} {:>16} {:>8.2}",
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
    let p = Params::new(args.agents, args.hours, args.outage_min, true);
    println!(
        "alerts: {} detections ({} per agent-hour, and {:.0}% of agents x {} during the outage); \
         delivered {}, {} still in outbox backoff at the end",
        on.detections,
        p.detections_per_hour,
        p.outbreak_share * 100.0,
        p.outbreak_detections,
        on.alerts_delivered,
        on.alerts_pending_at_end
    );
    println!(
        "alert POSTs after the outage: {} coalesced ({} per POST), {} one per alert ({:.0}x)",
        on.alert_posts_recovery,
        p.alerts_per_post,
        one_alert_per_post.alert_posts_recovery,
        one_alert_per_post.alert_posts_recovery as f64 / on.alert_posts_recovery.max(1) as f64
    );
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
