//! `armadito-agent`: a thin shell over `agent_core`. Parses argv, runs, maps errors to the exit
//! codes documented in `--help` (the table `agent_core::cli::EXIT_CODES`).

use std::process::ExitCode;

use clap::Parser;

use agent_core::app;
use agent_core::cli::{Cli, Command, ServiceAction, normalize_legacy_args};

fn main() -> ExitCode {
    let cli = match Cli::try_parse_from(normalize_legacy_args(std::env::args_os())) {
        Ok(cli) => cli,
        // clap prints help/version on stdout (exit 0) and errors on stderr (exit 2).
        Err(e) => e.exit(),
    };
    if let Some(Command::PluginHost { plugin }) = &cli.command {
        return agent_core::plugins::plugin_host_main(plugin);
    }
    // The Windows Service Control Manager takes the main thread before any runtime exists.
    if let Some(Command::Service {
        action: ServiceAction::Run,
    }) = &cli.command
    {
        return agent_core::service::run_as_service(cli);
    }
    // One thread is enough: a run does one task, its waits are I/O, and backend calls go to
    // `spawn_blocking`. Worker threads would only cost start-up time and memory.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("armadito-agent: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(app::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("armadito-agent: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
