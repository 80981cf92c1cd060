//! `armadito-agent queue` and `armadito-agent outbox`: what the agent holds, for admins.

use std::borrow::Cow;

use serde::Serialize;

use crate::session::{AgentError, Context};
use crate::store::{DB_FILE, OutboxMessage, StoredJob, UnreportableJob};
use crate::wire::UnixTime;

/// Text from the server (job types, error messages) as it may reach an admin's terminal:
/// control characters (ESC sequences that move the cursor, rewrite the title or the screen,
/// C1 controls, newlines that forge rows) are shown escaped (`\u{1b}`), everything else as is.
pub fn terminal_safe(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn time(t: Option<i64>) -> String {
    t.and_then(|s| UnixTime::new(s).ok())
        .map_or_else(|| "-".into(), |t| t.mysql_datetime_utc())
}

fn print_json<T: Serialize>(v: &T) -> Result<(), AgentError> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).map_err(|e| AgentError::Task(e.to_string()))?
    );
    Ok(())
}

#[derive(Serialize)]
struct QueueView {
    jobs: Vec<StoredJob>,
    unreportable: Vec<UnreportableJob>,
}

pub fn queue(ctx: &Context, json: bool) -> Result<(), AgentError> {
    let view = if ctx.config.state_dir.join(DB_FILE).exists() {
        let store = ctx.open_store()?;
        QueueView {
            jobs: store.jobs()?,
            unreportable: store.unreportable_jobs()?,
        }
    } else {
        QueueView {
            jobs: Vec::new(),
            unreportable: Vec::new(),
        }
    };
    if json {
        return print_json(&view);
    }
    println!(
        "{:>8}  {:<9}  {:<6}  {:<8}  {:>8}  {:<19}  {:<19}  last error",
        "job", "state", "type", "priority", "attempts", "received (UTC)", "finished (UTC)"
    );
    for j in &view.jobs {
        let priority =
            crate::wire::JobPriority::new(i64::from(j.priority)).map_or("?", |p| p.label());
        println!(
            "{:>8}  {:<9}  {:<6}  {:<8}  {:>8}  {:<19}  {:<19}  {}",
            j.job_id,
            j.state.as_str(),
            if j.job_type.is_empty() {
                "?".into()
            } else {
                terminal_safe(&j.job_type)
            },
            priority,
            j.attempts,
            time(Some(j.received_at)),
            time(j.finished_at),
            terminal_safe(
                j.last_error
                    .as_deref()
                    .or(j.invalid.as_deref())
                    .unwrap_or("")
            )
        );
    }
    for u in &view.unreportable {
        println!(
            "unreportable job received {}: {}",
            time(Some(u.received_at)),
            terminal_safe(&u.reason)
        );
    }
    if view.jobs.is_empty() && view.unreportable.is_empty() {
        println!("(no jobs)");
    }
    Ok(())
}

pub fn outbox(ctx: &Context, json: bool) -> Result<(), AgentError> {
    let msgs: Vec<OutboxMessage> = if ctx.config.state_dir.join(DB_FILE).exists() {
        ctx.open_store()?.outbox()?
    } else {
        Vec::new()
    };
    if json {
        return print_json(&msgs);
    }
    println!(
        "{:>6}  {:<13}  {:<10}  {:>6}  {:>8}  {:<19}  {:<19}  last error",
        "id", "kind", "endpoint", "job", "attempts", "created (UTC)", "next try (UTC)"
    );
    for m in &msgs {
        println!(
            "{:>6}  {:<13}  {:<10}  {:>6}  {:>8}  {:<19}  {:<19}  {}",
            m.id,
            m.kind.as_str(),
            terminal_safe(&m.endpoint),
            m.job_id.map_or("-".into(), |j| j.to_string()),
            m.attempts,
            time(Some(m.created_at)),
            time(Some(m.next_try_at)),
            terminal_safe(m.last_error.as_deref().unwrap_or(""))
        );
    }
    if msgs.is_empty() {
        println!("(nothing pending)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(terminal_safe("plain é text"), "plain é text");
        assert_eq!(
            terminal_safe("Wipe\u{1b}]0;pwned\u{7}\u{1b}[2J\r\nfake row\u{9b}"),
            "Wipe\\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\r\\nfake row\\u{9b}"
        );
    }
}
