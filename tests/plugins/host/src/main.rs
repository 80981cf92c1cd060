//! `test-plugin-host plugin-host --plugin <file>`: the same server loop as
//! `armadito-agent plugin-host`, without the rest of the agent's CLI, so the plugin tests do
//! not depend on the CLI wiring.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [cmd, flag, file] if cmd == "plugin-host" && flag == "--plugin" => {
            agent_core::plugins::plugin_host_main(&PathBuf::from(file))
        }
        _ => {
            eprintln!("usage: test-plugin-host plugin-host --plugin <file>");
            ExitCode::from(2)
        }
    }
}
