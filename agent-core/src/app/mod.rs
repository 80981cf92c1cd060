//! What one run of `armadito-agent` does: resolve configuration, then run one task or one
//! inspection command. The binary (`main.rs`) only parses argv and maps errors to exit codes.

mod error;

use std::sync::Arc;
use std::time::Duration;

pub use error::AgentError;

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::plugins::{Backend, PluginsConfig, Registry};
use crate::store::{DB_FILE, Store, TaskLock};
use crate::tasks;
use crate::transport::{GlpiClient, HttpOptions};
use crate::wire::{AntivirusInfo, MachineUuid, TaskName};

/// Everything a task needs, built once per run.
pub struct Context {
    pub config: Config,
    pub cli: Cli,
}

impl Context {
    pub fn open_store(&self) -> Result<Store, AgentError> {
        Ok(Store::open(&self.config.state_dir)?)
    }

    pub fn uuid(&self, store: &Store) -> Result<MachineUuid, AgentError> {
        Ok(crate::identity::machine_uuid(
            self.config.uuid.as_deref(),
            store,
        )?)
    }

    pub fn server(&self) -> Result<&str, AgentError> {
        self.config.server.as_deref().filter(|s| !s.trim().is_empty()).ok_or_else(|| {
            AgentError::Usage("no server configured: set `server` in agent.toml, ARMADITO_AGENT_SERVER or -s URL".into())
        })
    }

    /// The `[plugins]` settings with the folders and `[backends.*]` tables filled in.
    pub fn plugins_config(&self) -> Result<PluginsConfig, AgentError> {
        let c = &self.config;
        PluginsConfig::from_agent_config(&c.plugins, &c.plugins_dir, &c.state_dir, &c.backends)
            .map_err(|e| c.table_error("plugins", &e).into())
    }

    /// The configured backend, started (only that one: one plugin host in process mode).
    /// The registry is returned too: it owns the plugin's process (or library) and must live
    /// as long as the backend is used.
    pub fn backend(&self) -> Result<(Arc<Registry>, Arc<dyn Backend>), AgentError> {
        let name = self.config.backend.as_deref().ok_or_else(|| {
            AgentError::Usage("no backend configured: set `backend` in agent.toml or --backend NAME (see --list-backends)".into())
        })?;
        let registry = Arc::new(Registry::open_for(self.plugins_config()?, name)?);
        if let Some(b) = registry.get(name) {
            return Ok((registry, b));
        }
        let refused: Vec<String> = registry
            .reports()
            .into_iter()
            .filter(|r| r.name.as_deref() == Some(name))
            .filter_map(|r| r.reason)
            .collect();
        if !refused.is_empty() {
            return Err(AgentError::Task(format!(
                "backend {name:?} cannot start: {}",
                refused.join("; ")
            )));
        }
        let names = registry.usable_names();
        Err(AgentError::Usage(format!(
            "backend {name:?} is not available in {} (available: {}); see `armadito-agent plugins`",
            self.config.plugins_dir.display(),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )))
    }

    /// `task.antivirus` of our messages: the backend's name until a backend reports its product.
    pub fn antivirus(&self) -> AntivirusInfo {
        AntivirusInfo::new(
            self.config
                .backend
                .clone()
                .unwrap_or_else(|| "unknown".into()),
            "unknown",
        )
    }

    pub fn client(&self) -> Result<GlpiClient, AgentError> {
        let opts: HttpOptions = self.config.table("http", &self.config.http)?;
        GlpiClient::new(self.server()?, &opts).map_err(|e| match e.is_config_error() {
            true => AgentError::Usage(e.to_string()),
            false => AgentError::Transport(e),
        })
    }
}

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
        Some(Command::Status { json }) => return tasks::status::run(ctx, *json),
        Some(Command::Plugins { json, check }) => {
            return tasks::plugins::list(ctx, *json, *check);
        }
        Some(Command::Queue { json }) => return tasks::inspect::queue(ctx, *json),
        Some(Command::Outbox { json }) => return tasks::inspect::outbox(ctx, *json),
        Some(Command::Backend {
            action: crate::cli::BackendAction::InstallHook { force },
        }) => return tasks::plugins::install_hook(ctx, *force),
        Some(Command::PluginHost { .. } | Command::Completions { .. } | Command::Man) => {
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
