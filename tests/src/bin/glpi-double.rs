//! `glpi-double`: the Armadito GLPI plugin double as a standalone server,
//! for demo scripts and manual exploration (admin JSON under `/admin/`).
//!
//! ```text
//! glpi-double --listen 127.0.0.1:8080 --key 0RV2V-2RYTX-NX4OW-7LARZ-KZQAJ --uses 10 \
//!             --job 1:/home:--no-archive:2
//! ```
//! Prints one line `glpi-double listening on <base url>` on stdout and serves
//! until SIGTERM or Ctrl-C.

use std::io::Write;
use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use armadito_tests::double::{Double, DoubleConfig, Quirks};
use clap::Parser;

/// A job requested on the command line.
#[derive(Debug, Clone)]
struct JobSpec {
    agent_id: i64,
    path: String,
    options: String,
    priority: u8,
}

/// `AGENTID:PATH:OPTIONS:PRIORITY`; the path may contain `:` (e.g. `C:\data`),
/// the options may not.
fn parse_job(s: &str) -> Result<JobSpec, String> {
    let (agent, rest) = s
        .split_once(':')
        .ok_or("expected AGENTID:PATH:OPTIONS:PRIORITY")?;
    let (rest, priority) = rest
        .rsplit_once(':')
        .ok_or("expected AGENTID:PATH:OPTIONS:PRIORITY")?;
    let (path, options) = rest
        .rsplit_once(':')
        .ok_or("expected AGENTID:PATH:OPTIONS:PRIORITY")?;
    let agent_id = agent
        .parse::<i64>()
        .map_err(|e| format!("agent id {agent:?}: {e}"))?;
    let priority = priority
        .parse::<u8>()
        .map_err(|e| format!("priority {priority:?}: {e}"))?;
    if priority > 3 {
        return Err(format!("priority {priority} not in 0..=3"));
    }
    Ok(JobSpec {
        agent_id,
        path: path.to_string(),
        options: options.to_string(),
        priority,
    })
}

#[derive(Debug, Parser)]
#[command(
    name = "glpi-double",
    about = "Test double of the Armadito plugin for GLPI (REST/JSON)"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Enrollment key to create at start-up (5 groups of 5 [A-Z0-9]).
    #[arg(long)]
    key: Option<String>,
    /// Use counter of --key.
    #[arg(long, default_value_t = 10)]
    uses: i64,
    /// Seconds until --key expires (negative: already expired).
    #[arg(long, default_value_t = 365 * 86_400)]
    expires_in: i64,
    /// Plugin setting `getjobs_limit`.
    #[arg(long, default_value_t = 10)]
    getjobs_limit: u32,
    /// Scan job to queue for an agent id (created when it enrolls):
    /// AGENTID:PATH:OPTIONS:PRIORITY, repeatable.
    #[arg(long = "job", value_parser = parse_job)]
    jobs: Vec<JobSpec>,
    /// Do not record strict-mode violations.
    #[arg(long)]
    lenient: bool,
    /// Switch off every documented server bug.
    #[arg(long)]
    fix_quirks: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let cfg = DoubleConfig {
        getjobs_limit: args.getjobs_limit,
        strict: !args.lenient,
        quirks: if args.fix_quirks {
            Quirks::fixed()
        } else {
            Quirks::default()
        },
    };
    let double = Double::start_on(args.listen, cfg)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    if let Some(key) = &args.key {
        if args.uses < 0 {
            bail!("--uses must be >= 0");
        }
        double.create_key(key, args.uses, args.expires_in);
    }
    for j in &args.jobs {
        double.queue_job_on_enroll(j.agent_id, &j.path, &j.options, j.priority);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "glpi-double listening on {}", double.base_url())?;
    out.flush()?;
    drop(out);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(wait_for_shutdown())?;

    let v = double.violations();
    eprintln!(
        "glpi-double: {} requests served, {} violations",
        double.requests().len(),
        v.len()
    );
    for line in v {
        eprintln!("  {line}");
    }
    drop(double);
    Ok(())
}

/// SIGTERM or Ctrl-C.
async fn wait_for_shutdown() -> Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_job;

    #[test]
    fn job_specs() {
        let j = parse_job("1:/home:--no-archive:2").unwrap();
        assert_eq!(
            (j.agent_id, j.path.as_str(), j.options.as_str(), j.priority),
            (1, "/home", "--no-archive", 2)
        );
        let j = parse_job("3:C:\\data::0").unwrap();
        assert_eq!((j.path.as_str(), j.options.as_str()), ("C:\\data", ""));
        assert!(parse_job("x:/:a:1").is_err());
        assert!(parse_job("1:/:a:9").is_err());
        assert!(parse_job("1:/").is_err());
    }
}
