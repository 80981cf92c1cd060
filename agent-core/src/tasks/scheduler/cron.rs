//! `mode = "cron"`: one `/etc/cron.d/armadito-agent` file (system crontab format, with a user
//! column), as the old agent wrote, minus its holes.
//!
//! cron hands each command to `/bin/sh -c`, so every word is single-quoted (an embedded `'`
//! becomes `'\''`), and what sh-quoting cannot protect is refused: a newline ends the cron
//! entry and `%` is turned into a newline by cron itself. The frequency, user and log file
//! come validated from [`crate::schedule`]; the log file is outside world-writable folders.

use super::files::{MARKER, Target, remove_generated, write_atomic};
use super::{AgentCommand, Installed, SchedulerError, systemd};
use crate::schedule::{Schedule, args_string};

/// The file, on the real system (prefixed with `[schedule] root`).
pub const CRON_FILE: &str = "/etc/cron.d/armadito-agent";

/// Quotes one word for `/bin/sh` (shlex). Refuses newlines and `%` (see the module doc) and NULs.
pub fn shell_quote(word: &str) -> Result<String, SchedulerError> {
    if let Some(c) = word.chars().find(|c| matches!(c, '\n' | '\r' | '%' | '\0')) {
        return Err(SchedulerError::Setting(format!(
            "{word:?} contains {c:?}, which cannot appear in a cron entry"
        )));
    }
    shlex::try_quote(word)
        .map(|q| q.into_owned())
        .map_err(|e| SchedulerError::Setting(format!("{word:?} cannot be quoted for /bin/sh: {e}")))
}

/// The file's content. Deterministic (no timestamp): an unchanged schedule leaves the file
/// untouched.
pub fn render(schedule: &Schedule, cmd: &AgentCommand) -> Result<String, SchedulerError> {
    let mut out = format!(
        "# {MARKER}: overwritten on every run, do not edit.\n\
         # Change [schedule] in agent.toml (or the schedule on the GLPI server), then run\n\
         # armadito-agent -t Scheduler.\n\
         SHELL=/bin/sh\n\
         PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\n"
    );
    let log = shell_quote(&schedule.logfile)?;
    let mut any = false;
    for (task, entry) in schedule.enabled() {
        let words = cmd
            .argv(task, entry.wait_rand)
            .iter()
            .map(|w| shell_quote(w))
            .collect::<Result<Vec<_>, _>>()?;
        out.push_str(&format!(
            "# {task}{}\n{}\t{}\t{} >>{log} 2>&1\n",
            match args_string(entry.wait_rand) {
                a if a.is_empty() => String::new(),
                a => format!(" ({a})"),
            },
            entry.freq,
            schedule.user,
            words.join(" "),
        ));
        any = true;
    }
    if !any {
        out.push_str("# no task is enabled\n");
    }
    Ok(out)
}

/// Writes the cron file (cron notices the change by itself), then removes the systemd units a
/// previous `mode = "systemd"` run installed.
pub fn install(
    target: &Target,
    schedule: &Schedule,
    cmd: &AgentCommand,
) -> Result<Installed, SchedulerError> {
    let content = render(schedule, cmd)?;
    let path = target.path(CRON_FILE);
    if let Some(dir) = path.parent() {
        target.require_dir(
            dir,
            "cron does not seem to be installed: install it (apt install cron) or set [schedule] mode = \"systemd\"",
        )?;
    }
    target.ensure_log_dir(&schedule.logfile)?;
    let mut installed = Installed {
        written: Vec::new(),
        unchanged: Vec::new(),
        removed: Vec::new(),
    };
    let shown = path.display().to_string();
    if write_atomic(&path, &content)? {
        installed.written.push(shown);
    } else {
        installed.unchanged.push(shown);
    }
    installed.removed = systemd::remove_all(target)?;
    Ok(installed)
}

/// Removes the cron file if this task wrote it (another mode is now in charge).
pub fn remove(target: &Target) -> Result<Vec<String>, SchedulerError> {
    let path = target.path(CRON_FILE);
    Ok(if remove_generated(&path)? {
        vec![path.display().to_string()]
    } else {
        Vec::new()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{ScheduledTask, Source};

    fn schedule() -> Schedule {
        Schedule {
            user: "root".into(),
            logfile: "/var/log/armadito-agent/agent.log".into(),
            tasks: ScheduledTask::ALL
                .into_iter()
                .map(|t| (t, t.default_entry()))
                .collect(),
            source: Source::Local,
        }
    }

    #[test]
    fn quoting_survives_sh() {
        assert_eq!(shell_quote("plain").unwrap(), "plain");
        for special in [
            "it's",
            "$(id) `id` ; | & > *",
            "a b",
            "{a,b}",
            "~root",
            "x\u{a0}y",
        ] {
            let q = shell_quote(special).unwrap();
            assert!(q.starts_with(['\'', '"']), "{special:?} left unquoted: {q}");
        }
        for bad in ["a\nb", "a\rb", "50%", "a\0b"] {
            assert!(shell_quote(bad).is_err(), "{bad:?}");
        }
        // the quoted words come back intact through a real /bin/sh (argv, no interpretation)
        #[cfg(unix)]
        if std::path::Path::new("/bin/sh").exists() {
            let words = [
                "it's",
                "$(touch /nonexistent-x)",
                "a b",
                "\\",
                "'",
                "\"",
                "*",
                "$(id) `id` ; | & > *",
                "{a,b}",
                "~root",
                "",
            ];
            let script = format!(
                "printf '%s\\n' {}",
                words.map(|w| shell_quote(w).unwrap()).join(" ")
            );
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(&script)
                .output()
                .unwrap();
            let got = String::from_utf8(out.stdout).unwrap();
            assert_eq!(got.lines().collect::<Vec<_>>(), words);
        }
    }

    #[test]
    fn one_line_per_enabled_task_with_quoted_argv() {
        let mut s = schedule();
        s.tasks.get_mut(&ScheduledTask::AvConfig).unwrap().enabled = false;
        s.tasks.get_mut(&ScheduledTask::Getjobs).unwrap().wait_rand = None;
        let cmd = AgentCommand::new(
            "/opt/it's/armadito-agent".into(),
            Some("/etc/armadito-agent/agent.toml".into()),
        )
        .unwrap();
        let text = render(&s, &cmd).unwrap();
        assert!(text.starts_with(&format!("# {MARKER}")));
        let entries: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains('\t'))
            .collect();
        assert_eq!(entries.len(), 5, "{text}");
        assert_eq!(
            entries[0],
            "* * * * *\troot\t\"/opt/it's/armadito-agent\" -c /etc/armadito-agent/agent.toml -t Getjobs >>/var/log/armadito-agent/agent.log 2>&1"
        );
        assert_eq!(
            entries[1],
            "*/2 * * * *\troot\t\"/opt/it's/armadito-agent\" -c /etc/armadito-agent/agent.toml -t Runjobs --wait-rand 60 >>/var/log/armadito-agent/agent.log 2>&1"
        );
        assert!(!text.contains("AVConfig"), "{text}");
        assert!(text.ends_with('\n'));
        assert!(text.contains("\nSHELL=/bin/sh\n"));
        // deterministic
        assert_eq!(render(&s, &cmd).unwrap(), text);
    }

    #[test]
    fn install_writes_under_root_and_removes_our_systemd_units() {
        let d = tempfile::tempdir().unwrap();
        let target = Target::new(d.path()).unwrap();
        let units = d.path().join("etc/systemd/system");
        std::fs::create_dir_all(&units).unwrap();
        std::fs::write(
            units.join("armadito-agent-getjobs.timer"),
            format!("# {MARKER}\n"),
        )
        .unwrap();
        std::fs::write(units.join("armadito-agent-mine.timer"), "# the admin's\n").unwrap();
        let cmd = AgentCommand::new("/usr/bin/armadito-agent".into(), None).unwrap();

        let first = install(&target, &schedule(), &cmd).unwrap();
        let file = d.path().join("etc/cron.d/armadito-agent");
        assert_eq!(first.written, [file.display().to_string()]);
        assert_eq!(first.removed.len(), 1, "{first:?}");
        assert!(!units.join("armadito-agent-getjobs.timer").exists());
        assert!(units.join("armadito-agent-mine.timer").exists());
        assert!(d.path().join("var/log/armadito-agent").is_dir());

        let again = install(&target, &schedule(), &cmd).unwrap();
        assert_eq!(again.unchanged, [file.display().to_string()]);
        assert!(again.written.is_empty() && again.removed.is_empty());

        assert_eq!(remove(&target).unwrap(), [file.display().to_string()]);
        assert!(!file.exists());
    }
}
