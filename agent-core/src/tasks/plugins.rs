//! `armadito-agent plugins [--json]` and `--list-backends`.

use crate::app::{AgentError, Context};
use crate::plugins::{discover, render_table};

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
