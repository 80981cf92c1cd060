//! `armadito-plugin-host`: the plugin host alone, the child the agent starts for each backend
//! in process isolation (the agent falls back to `armadito-agent plugin-host` when this file is
//! not installed next to it).
//!
//! Why a second binary: a child that maps only the plugin host (no HTTP client, runtime, store
//! or CLI) starts faster and uses a fraction of the memory of the whole agent.
//! Same argv as the agent's subcommand: `plugin-host --plugin FILE`.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    match args.as_slice() {
        [cmd, flag, file] if cmd == "plugin-host" && flag == "--plugin" => {
            agent_core::plugins::plugin_host_main(Path::new(file))
        }
        _ => {
            eprintln!(
                "usage: armadito-plugin-host plugin-host --plugin FILE (started by armadito-agent)"
            );
            ExitCode::from(2)
        }
    }
}
