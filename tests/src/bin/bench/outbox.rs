//! `bench outbox`: draining an outbox of queued one-alert messages (what an outage leaves),
//! the real agent binary against the GLPI double.
//!
//! For each `[outbox] coalesce_alerts` value (100 = coalesced, 1 = one POST per message, the
//! behaviour before coalescing): a fresh double and an enrolled agent (`testav` backend),
//! `--alerts` one-alert messages queued with the agent's own store API, then one timed
//! `-t Alerts` run that delivers them. Reported: wall time, POSTs the double received, alerts
//! it stored, and the ratio to the one-per-message run. `--request-cost-ms` makes the double
//! hold every answer that long (GLPI pays ~14 ms per request; the loopback double ~0).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use armadito_tests::double::Double;
use armadito_tests::fleet::{UUID, enrolled_agent};
use armadito_tests::outbox::{one_alert_body, outbox_len, queue_alert_bodies};

#[derive(clap::Args)]
pub struct Args {
    /// Queued one-alert messages to drain
    #[arg(long, default_value_t = 10_000)]
    alerts: usize,
    /// Alerts per POST to compare (1 = one POST per message, the old path)
    #[arg(long, value_delimiter = ',', default_value = "100,1")]
    coalesce: Vec<usize>,
    /// Milliseconds the double holds every answer (server-side cost of a request)
    #[arg(long, default_value_t = 0)]
    request_cost_ms: u64,
}

struct Outcome {
    per_post: usize,
    secs: f64,
    posts: usize,
    stored: usize,
}

fn drain(args: &Args, per_post: usize) -> Result<Outcome> {
    let d = Double::start();
    let (s, agent, _) = enrolled_agent(
        &d,
        &format!(
            "coalesce_alerts = {per_post}\ndeadline = 86400\nmax_messages = {}\n",
            args.alerts + 1
        ),
    );
    queue_alert_bodies(
        &s.state_dir(),
        (0..args.alerts)
            .map(|i| one_alert_body(agent, UUID, i))
            .collect(),
    );
    d.clear_requests();
    d.set_delay(Duration::from_millis(args.request_cost_ms));
    let start = Instant::now();
    let r = s.run(&["-t", "Alerts"]);
    let secs = start.elapsed().as_secs_f64();
    if r.code != Some(0) {
        bail!("-t Alerts failed: {}", r.stderr);
    }
    let left = outbox_len(&s.state_dir());
    if left != 0 {
        bail!("{left} message(s) left in the outbox");
    }
    let posts = d
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/api/alerts/"))
        .count();
    Ok(Outcome {
        per_post,
        secs,
        posts,
        stored: d.alerts().len(),
    })
}

pub fn run(args: &Args) -> Result<()> {
    println!(
        "bench outbox: {} queued one-alert messages drained by one `-t Alerts` run, {} ms per request on the server",
        args.alerts, args.request_cost_ms
    );
    let mut rows = Vec::new();
    for &per_post in &args.coalesce {
        eprintln!("coalesce_alerts = {per_post}...");
        rows.push(drain(args, per_post)?);
    }
    let base = rows.iter().find(|o| o.per_post == 1);
    println!(
        "{:<18} {:>10} {:>10} {:>14} {:>16} {:>14}",
        "coalesce_alerts", "seconds", "POSTs", "alerts stored", "alerts/second", "vs 1 per POST"
    );
    for o in &rows {
        let ratio = base
            .map(|b| format!("{:.1}x faster", b.secs / o.secs.max(1e-9)))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<18} {:>10.2} {:>10} {:>14} {:>16.0} {:>14}",
            o.per_post,
            o.secs,
            o.posts,
            o.stored,
            o.stored as f64 / o.secs.max(1e-9),
            ratio
        );
        if o.stored != args.alerts {
            bail!("the double stored {} of {} alerts", o.stored, args.alerts);
        }
    }
    Ok(())
}
