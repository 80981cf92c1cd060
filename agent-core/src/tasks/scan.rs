//! `-t Scan --path P [--path Q] [--report]`: a local, on-demand scan through the backend.
//! Prints the results (a progress line on a terminal); sends nothing unless `--report`, which
//! delivers the detections as alerts (there is no server job to attach figures to).
//! Exit status 6 when malware was found (`cli::exit::MALWARE_FOUND`), as scripts expect from
//! clamscan's 1.

use std::io::{IsTerminal, Write};

use armadito_plugin_api::model::{ScanProgress, ScanRequest};

use crate::plugins::CancelToken;
use crate::session::{AgentError, Context};
use crate::session::{Enrolled, blocking};
use crate::wire::UnixTime;

pub async fn run(ctx: &Context) -> Result<(), AgentError> {
    let paths = &ctx.cli.path;
    if paths.is_empty() {
        return Err(AgentError::CommandLine(
            "-t Scan needs --path PATH (one or more)".into(),
        ));
    }
    let mut request = ScanRequest::default();
    for p in paths {
        let abs = std::path::absolute(p)
            .map_err(|e| AgentError::CommandLine(format!("{}: {e}", p.display())))?;
        if !abs.exists() {
            return Err(AgentError::CommandLine(format!(
                "{} does not exist",
                abs.display()
            )));
        }
        request.paths.push(abs.display().to_string());
    }
    // Checked first: --report must not scan for an hour and then find it cannot deliver.
    let mut agent = if ctx.cli.report {
        Some(Enrolled::open(ctx)?)
    } else {
        None
    };
    let (_registry, backend) = ctx.backend()?;
    let tty = std::io::stderr().is_terminal();
    let cancel = CancelToken::new();
    let result = blocking(move || {
        backend.scan(
            &request,
            &mut |p: ScanProgress| {
                if tty {
                    let current = p.current_path.as_deref().unwrap_or("");
                    let tail: String = current
                        .chars()
                        .rev()
                        .take(50)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect();
                    eprint!(
                        "\r\x1b[2K{} files, {} malware, {} errors  {}",
                        p.files_scanned, p.malware, p.errors, tail
                    );
                    let _ = std::io::stderr().flush();
                }
            },
            &cancel,
        )
    })
    .await??;
    if tty {
        eprintln!();
    }
    for d in &result.detections {
        println!("FOUND {}: {}", d.threat_name, d.file_path);
    }
    if let Some(why) = &result.interrupted {
        println!("Scan interrupted: {why} (partial results below)");
    }
    println!(
        "Scan: {} files scanned, {} malware, {} suspicious, {} errors in {:.1} s",
        result.scanned, result.malware, result.suspicious, result.errors, result.duration_secs
    );
    if let Some(agent) = agent.as_mut()
        && !result.detections.is_empty()
    {
        let backend_name = ctx.config.backend.as_deref().unwrap_or("backend");
        let msg = agent.alerts_message(
            &result.detections,
            UnixTime::now(),
            backend_name,
            "on-demand scan",
            None,
        )?;
        agent.send(ctx, msg.as_slice(), None).await?;
        println!(
            "Reported {} detection(s) to the server",
            result.detections.len()
        );
    }
    if result.malware > 0 {
        return Err(AgentError::MalwareFound(result.malware));
    }
    Ok(())
}
