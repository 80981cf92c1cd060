//! `bench soak --minutes N`: the daemon for N minutes with jobs, detections and State flowing
//! against the double and a real clamd; RSS, fds, threads and store size (first, last, max
//! after a warm-up). The 3-minute version runs in CI as the `soak` test.

use std::time::Duration;

use anyhow::{Result, anyhow};
use armadito_tests::soak;

#[derive(clap::Args)]
pub struct Args {
    /// Minutes of soak
    #[arg(long, default_value_t = 30.0)]
    pub minutes: f64,
}

pub fn run(args: &Args) -> Result<()> {
    let total = Duration::from_secs_f64(args.minutes.max(0.5) * 60.0);
    let warmup = Duration::from_secs(40).min(total / 3);
    println!(
        "soak: {:.1} min (warm-up {} s), a job every 5 s, State every 10 s, ClamAV on clamd",
        args.minutes,
        warmup.as_secs()
    );
    let r = soak::run(
        total,
        warmup,
        Duration::from_secs(5),
        Duration::from_secs(5),
    )
    .map_err(|e| anyhow!(e))?;
    print!("{}", r.table());
    Ok(())
}
