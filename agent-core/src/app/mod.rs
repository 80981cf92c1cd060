//! What one run of `armadito-agent` does: resolve configuration, then run one task or one
//! inspection command. The binary (`main.rs`) only parses argv and maps errors to exit codes.
//! Dispatch only: what a task needs ([`Context`], [`AgentError`]) is in [`crate::session`].

use std::time::Duration;

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::session::{AgentError, Context};
use crate::store::{DB_FILE, TaskLock};
use crate::tasks;
use crate::wire::TaskName;

/// Runs what the command line asks for.
pub async fn run(cli: Cli) -> Result<(), AgentError> {
    if let Some(Command::Completions { shell }) = &cli.command {
        return print_bytes(&crate::cli::render_completions(*shell));
    }
    if let Some(Command::Man) = &cli.command {
        return print_bytes(
            &crate::cli::render_man().map_err(|e| AgentError::Task(e.to_string()))?,
        );
    }
    // The Windows service commands act on the Service Control Manager only: no configuration
    // (install loads the file it registers itself).
    if let Some(Command::Service { action }) = &cli.command {
        return crate::service::control(*action, &cli.options);
    }
    if cli.list_tasks {
        print!("{}", crate::cli::list_tasks());
        return Ok(());
    }
    let config = Config::load(&cli.options)?;
    crate::logging::init(&config.log)?;
    let ctx = Context { config, cli };
    let result = dispatch(&ctx).await;
    if let Err(e) = &result
        && ctx.config.log.file.is_some()
    {
        // stderr gets the error from main; a log file must record it too
        tracing::error!(exit_code = e.exit_code(), "{e}");
    }
    result
}

async fn dispatch(ctx: &Context) -> Result<(), AgentError> {
    if ctx.cli.task.is_some() && ctx.cli.command.is_some() {
        return Err(AgentError::CommandLine(
            "give either a task (-t) or a subcommand, not both".into(),
        ));
    }
    if ctx.cli.get_agentid || ctx.cli.get_schedulerid {
        let enrollment = read_only_enrollment(ctx)?;
        let (agent, scheduler) = enrollment.map_or((0, 0), |e| (e.agent_id, e.scheduler_id));
        println!(
            "{}",
            if ctx.cli.get_agentid {
                agent
            } else {
                scheduler
            }
        );
        return Ok(());
    }
    match &ctx.cli.command {
        Some(Command::Status { json }) => return crate::daemon::status::show(ctx, *json),
        Some(Command::Daemon) => {
            return crate::daemon::run(ctx, crate::daemon::Stop::new()).await;
        }
        Some(Command::Plugins { json, check }) => {
            return tasks::plugins::list(ctx, *json, *check);
        }
        Some(Command::Queue { json }) => return tasks::inspect::queue(ctx, *json),
        Some(Command::Outbox { json }) => return tasks::inspect::outbox(ctx, *json),
        Some(Command::Backend {
            action: crate::cli::BackendAction::InstallHook { force },
        }) => return tasks::plugins::install_hook(ctx, *force),
        Some(
            Command::PluginHost { .. }
            | Command::Completions { .. }
            | Command::Man
            | Command::Service { .. },
        ) => {
            return Err(AgentError::Usage(
                "internal: subcommand handled by main".into(),
            ));
        }
        None => {}
    }
    if ctx.cli.list_backends {
        return tasks::plugins::list_backends(ctx);
    }
    let Some(task) = ctx.cli.task else {
        return Err(AgentError::CommandLine(
            "nothing to do: give a task with -t (see --list-tasks) or a subcommand (see --help)"
                .into(),
        ));
    };
    // One run per task at a time: cron-started runs must not pile up behind a slow server
    // (and send the same messages twice). Taken before the wait, held to the end.
    let lock_name = format!("run-{}", task.as_str());
    let Some(_run_lock) = TaskLock::try_acquire(&ctx.config.state_dir, &lock_name)? else {
        tracing::warn!(
            task = task.as_str(),
            "another {} run is in progress (it holds {}): this run exits",
            task.as_str(),
            ctx.config
                .state_dir
                .join(format!("{lock_name}.lock"))
                .display()
        );
        return Ok(());
    };
    wait_before_task(ctx.cli.wait, ctx.cli.wait_rand).await;
    match task {
        TaskName::Enrollment => tasks::enrollment::run(ctx).await,
        TaskName::Getjobs => crate::jobs::getjobs::run(ctx).await,
        TaskName::Runjobs => crate::jobs::runjobs::run(ctx).await,
        TaskName::State => tasks::state::run(ctx).await,
        TaskName::Scan => tasks::scan::run(ctx).await,
        TaskName::Alerts => tasks::alerts::run(ctx).await,
        TaskName::AVConfig => tasks::avconfig::run(ctx).await,
        TaskName::Scheduler => tasks::scheduler::run(ctx).await,
    }
}

/// `--get-agentid` must not create a state directory as a side effect.
fn read_only_enrollment(ctx: &Context) -> Result<Option<crate::store::Enrollment>, AgentError> {
    if !ctx.config.state_dir.join(DB_FILE).exists() {
        return Ok(None);
    }
    Ok(ctx.open_store()?.enrollment()?)
}

/// `-w N` then `--wait-rand N` (0..N-1 s), as the old agent did, to spread cron-started runs.
async fn wait_before_task(wait: Option<u64>, wait_rand: Option<u64>) {
    let mut secs = wait.unwrap_or(0);
    if let Some(n) = wait_rand.filter(|n| *n > 0) {
        secs += rand::random_range(0..n);
    }
    if secs > 0 {
        tracing::info!(seconds = secs, "waiting before the task");
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }
}

fn print_bytes(b: &[u8]) -> Result<(), AgentError> {
    use std::io::Write;
    std::io::stdout()
        .write_all(b)
        .map_err(|e| AgentError::Task(e.to_string()))
}
