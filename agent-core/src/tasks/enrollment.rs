//! `-t Enrollment`: POST api/agents with the enrollment key; store agent and scheduler ids.
//!
//! Order matters for safety:
//! 1. the key is found and validated before anything else (a bad key sends no request: each
//!    request that reaches the server burns one key use, even when it fails later);
//! 2. the ids are stored in one transaction;
//! 3. only then is the provisioning key file (`<state_dir>/enrollment.key`) deleted.
//!
//! A failure at any step leaves the previous enrollment untouched.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::session::{AgentError, Context};
use crate::transport::Endpoint;
use crate::wire::{
    AntivirusInfo, EnrollmentKey, EnrollmentRequest, Envelope, TaskName, parse_enrollment_reply,
};

/// Name of the provisioning key file in the state directory.
pub const KEY_FILE: &str = "enrollment.key";

/// Where the key came from; decides whether a file is removed after success.
#[derive(Debug, PartialEq, Eq)]
enum KeySource {
    /// `-k` or `ARMADITO_AGENT_KEY`.
    Argument,
    /// `--key-file FILE`: an admin-managed file, left in place.
    ExplicitFile(PathBuf),
    /// `<state_dir>/enrollment.key`: a one-shot provisioning drop, removed after success.
    StateDirFile(PathBuf),
}

pub async fn run(ctx: &Context) -> Result<(), AgentError> {
    let (key, source) = find_key(ctx)?;
    let server = ctx.server()?.to_string();
    let client = ctx.client()?;
    let mut store = ctx.open_store()?;
    let _lock = store.lock_task("Enrollment", Duration::from_secs(60))?;
    let uuid = ctx.uuid(&store)?;
    let previous = store.enrollment()?;

    let antivirus = antivirus_identity(ctx).await;
    let agent_id = previous.as_ref().map_or(0, |e| e.agent_id);
    let body = Envelope::new(
        agent_id,
        uuid.clone(),
        TaskName::Enrollment,
        antivirus,
        EnrollmentRequest { key },
    )
    .to_body()?;

    tracing::info!(server = %crate::transport::redact_url(&server), uuid = %uuid, "enrolling");
    let reply = client.post(Endpoint::Agents, &body).await?;
    let ids = parse_enrollment_reply(&reply.body).map_err(|e| {
        AgentError::Task(match reply.json_object() {
            None => format!(
                "enrollment failed: the server answered HTTP {} without the expected JSON: {}",
                reply.status,
                reply.summary()
            ),
            Some(_) => format!("enrollment failed: {e}"),
        })
    })?;

    let previous = store.save_enrollment(ids.agent_id, ids.scheduler_id, &server, uuid.as_str())?;
    match previous {
        Some(p) if p.agent_id != ids.agent_id => tracing::warn!(
            old = p.agent_id,
            new = ids.agent_id,
            "the server assigned a different agent id; the new one replaces the old one"
        ),
        Some(_) => tracing::info!(
            agent_id = ids.agent_id,
            scheduler_id = ids.scheduler_id,
            "re-enrolled with the same agent id"
        ),
        None => tracing::info!(
            agent_id = ids.agent_id,
            scheduler_id = ids.scheduler_id,
            "enrolled"
        ),
    }
    if let KeySource::StateDirFile(path) = source
        && let Err(e) = std::fs::remove_file(&path)
    {
        tracing::warn!(file = %path.display(), error = %e, "enrolled, but could not remove the enrollment key file");
    }
    println!(
        "Enrolled: agent id {} (scheduler id {})",
        ids.agent_id, ids.scheduler_id
    );
    Ok(())
}

/// The antivirus the server files this agent under (its scan configurations hang off it): the
/// backend's product name and version. The backend is not required to enroll (the old agent
/// failed here when the AV was missing): without it, the configured backend name is used.
async fn antivirus_identity(ctx: &Context) -> AntivirusInfo {
    if ctx.config.backend.is_none() {
        return ctx.antivirus();
    }
    let state = match ctx.backend() {
        Ok((_registry, backend)) => match crate::session::blocking(move || backend.state()).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e.to_string()),
    };
    match state {
        Ok(s) if !s.product_name.is_empty() => {
            AntivirusInfo::new(s.product_name, s.product_version)
        }
        Ok(_) => ctx.antivirus(),
        Err(e) => {
            tracing::warn!("enrolling without the backend's product details: {e}");
            ctx.antivirus()
        }
    }
}

fn find_key(ctx: &Context) -> Result<(EnrollmentKey, KeySource), AgentError> {
    let state_file = ctx.config.state_dir.join(KEY_FILE);
    let (raw, source) = if let Some(k) = &ctx.cli.options.key {
        if key_on_command_line(std::env::args_os()) {
            tracing::warn!(
                "the enrollment key was given with -k/--key: every local user can read the command line (/proc/<pid>/cmdline, ps); use ARMADITO_AGENT_KEY, --key-file FILE or --key-file - (stdin) instead"
            );
        }
        (k.clone(), KeySource::Argument)
    } else if let Some(f) = &ctx.cli.options.key_file {
        (read_key_file(f)?, KeySource::ExplicitFile(f.clone()))
    } else if state_file.exists() {
        (
            read_key_file(&state_file)?,
            KeySource::StateDirFile(state_file),
        )
    } else {
        return Err(AgentError::Usage(format!(
            "no enrollment key: use --key-file FILE (or - for stdin), ARMADITO_AGENT_KEY, or put it in {}",
            state_file.display()
        )));
    };
    let origin = match &source {
        KeySource::Argument => "the command line / ARMADITO_AGENT_KEY".to_string(),
        KeySource::ExplicitFile(p) | KeySource::StateDirFile(p) => p.display().to_string(),
    };
    let (key, uppercased) = EnrollmentKey::parse(&raw)
        .map_err(|e| AgentError::Usage(format!("{e} (key from {origin})")))?;
    if uppercased {
        tracing::warn!(
            "the enrollment key was not in uppercase; the server only accepts uppercase, so it was upper-cased"
        );
    }
    Ok((key, source))
}

/// Whether the key came from argv (as opposed to `ARMADITO_AGENT_KEY`, which clap also maps
/// to `--key`).
fn key_on_command_line(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    args.skip(1).any(|a| {
        let a = a.to_string_lossy();
        a == "-k" || a == "--key" || a.starts_with("--key=") || (a.starts_with("-k") && a.len() > 2)
    })
}

/// `-` reads the key from stdin (one line), so it never appears in argv or the environment.
fn read_key_file(path: &Path) -> Result<String, AgentError> {
    if path == Path::new("-") {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map_err(|e| {
            AgentError::Usage(format!("cannot read the enrollment key from stdin: {e}"))
        })?;
        return Ok(line);
    }
    std::fs::read_to_string(path).map_err(|e| {
        AgentError::Usage(format!(
            "cannot read enrollment key file {}: {e}",
            path.display()
        ))
    })
}
