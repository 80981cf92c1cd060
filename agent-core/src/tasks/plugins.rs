//! `armadito-agent plugins [--json]` and `--list-backends`.

use crate::plugins::{discover, render_table};
use crate::session::{AgentError, Context};

pub fn list(ctx: &Context, json: bool, check: bool) -> Result<(), AgentError> {
    let reports = discover(&ctx.plugins_config()?, check);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&reports).map_err(|e| AgentError::Task(e.to_string()))?
        );
    } else if reports.is_empty() {
        println!("no plugin files in {}", ctx.config.plugins_dir.display());
    } else {
        print!("{}", render_table(&reports));
    }
    Ok(())
}

/// One usable backend name per line (read from the files' metadata; no plugin runs).
pub fn list_backends(ctx: &Context) -> Result<(), AgentError> {
    let mut names: Vec<String> = discover(&ctx.plugins_config()?, false)
        .into_iter()
        .filter(|r| r.is_usable())
        .filter_map(|r| r.name.clone())
        .collect();
    names.sort();
    names.dedup();
    for n in names {
        println!("{n}");
    }
    Ok(())
}

/// `armadito-agent backend install-hook`: the backend's `install-virusevent-hook` extension
/// method, run locally by an administrator (the server never triggers it).
pub fn install_hook(ctx: &Context, force: bool) -> Result<(), AgentError> {
    let (_registry, backend) = ctx.backend()?;
    let result = backend.invoke(
        "install-virusevent-hook",
        &serde_json::json!({ "force": force }),
        &mut |_| {},
        &crate::plugins::CancelToken::new(),
    )?;
    println!(
        "{}",
        serde_json::to_string_pretty(&result).map_err(|e| AgentError::Task(e.to_string()))?
    );
    Ok(())
}
