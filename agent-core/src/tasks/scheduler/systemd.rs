//! `mode = "systemd"`: per task, `armadito-agent-<task>.service` (Type=oneshot, the agent's
//! argv in `ExecStart=`) and `armadito-agent-<task>.timer`, in `/etc/systemd/system`.
//!
//! ## Cron expression → `OnCalendar=`
//!
//! Every expression accepted by [`CronExpr`] converts exactly; no `OnUnitActiveSec=`
//! approximation is needed:
//!
//! | cron field | `OnCalendar=` component |
//! |---|---|
//! | `*` (all values) | `*` |
//! | a regular repetition reaching the field's end (`*/20`, `5-59/15`, `0,20,40`) | `00/20`, `05/15` |
//! | anything else | the explicit list, consecutive runs as ranges: `01,12,22`, `00..05,09` |
//! | day-of-week | names, `Mon..Fri`; omitted when all days |
//!
//! The seconds are `00`. The one semantic trap is cron's day rule: when both day-of-month
//! and day-of-week are restricted (neither starts with `*`), cron runs on days matching
//! EITHER, while one `OnCalendar=` requires both. Such an expression becomes two
//! `OnCalendar=` lines (a timer elapses when any of its lines does): one for the weekdays,
//! one for the days of the month. The conversion is checked against `systemd-analyze
//! calendar` in the tests when it is available.
//!
//! `systemctl` runs (as an argv) only when `[schedule] root` is `/`: `daemon-reload`, then
//! `enable --now` for the timers, and `disable --now` before removing a timer we installed.

use std::process::Command;

use super::files::{MARKER, Target, is_generated, remove_generated, write_atomic};
use super::{AgentCommand, Installed, SchedulerError, cron};
use crate::schedule::{CronExpr, Schedule, ScheduledTask, TaskEntry, is_full, progression, values};

/// The unit folder, on the real system.
pub const UNIT_DIR: &str = "/etc/systemd/system";

/// `armadito-agent-getjobs` (units are conventionally lowercase).
pub fn unit_base(task: ScheduledTask) -> String {
    format!("armadito-agent-{}", task.as_str().to_ascii_lowercase())
}

/// The executable of `ExecStart=`, double-quoted. systemd treats it differently from the
/// arguments (checked with `systemd-analyze verify`): `$` is not expanded there (so it must not
/// be doubled), `%` specifiers are (doubled), and a path containing `\`, `"`, `'` or a
/// control character is refused by systemd itself ("Executable name contains special
/// characters"), so it is refused here with a clearer message.
pub fn exec_quote_program(path: &str) -> Result<String, SchedulerError> {
    if let Some(c) = path
        .chars()
        .find(|c| c.is_control() || matches!(c, '\\' | '"' | '\''))
    {
        return Err(SchedulerError::Setting(format!(
            "the agent's executable {path:?} contains {c:?}, which systemd refuses in ExecStart=: install it elsewhere or use mode = \"cron\""
        )));
    }
    Ok(format!("\"{}\"", path.replace('%', "%%")))
}

/// One argument for `ExecStart=`: always double-quoted, with `\` and `"` escaped, `%`
/// (specifiers) doubled and `$` (variable expansion) doubled, so systemd passes the exact
/// bytes. Control characters cannot be expressed on one unit-file line and are refused.
pub fn exec_quote(word: &str) -> Result<String, SchedulerError> {
    if let Some(c) = word.chars().find(|c| c.is_control()) {
        return Err(SchedulerError::Setting(format!(
            "{word:?} contains {c:?}, which cannot appear in a systemd unit"
        )));
    }
    let mut s = String::with_capacity(word.len() + 2);
    s.push('"');
    for c in word.chars() {
        match c {
            '\\' => s.push_str(r"\\"),
            '"' => s.push_str("\\\""),
            '%' => s.push_str("%%"),
            '$' => s.push_str("$$"),
            c => s.push(c),
        }
    }
    s.push('"');
    Ok(s)
}

/// The `OnCalendar=` values equivalent to `expr` (see the module doc): one, or two for
/// cron's "either day" rule.
pub fn on_calendar(expr: &CronExpr) -> Vec<String> {
    let time = format!(
        "{}:{}:00",
        component(expr.hours(), 0, 23),
        component(expr.minutes(), 0, 59)
    );
    let month = component(expr.months(), 1, 12);
    let days = component(expr.days(), 1, 31);
    let weekdays = weekday_names(expr.weekdays());
    if expr.days_or_weekdays() {
        vec![
            format!("{} *-{month}-* {time}", weekdays.as_deref().unwrap_or("*")),
            format!("*-{month}-{days} {time}"),
        ]
    } else {
        let prefix = weekdays.map(|w| format!("{w} ")).unwrap_or_default();
        vec![format!("{prefix}*-{month}-{days} {time}")]
    }
}

/// One numeric component: `*`, `start/step`, or a list of values and `a..b` runs.
fn component(mask: u64, low: u8, high: u8) -> String {
    if is_full(mask, low, high) {
        return "*".into();
    }
    let v = values(mask);
    if v.len() >= 3
        && let Some((start, step)) = progression(mask, high)
    {
        return format!("{start:02}/{step}");
    }
    runs(&v)
        .iter()
        .map(|&(a, b)| match b - a {
            0 => format!("{a:02}"),
            1 => format!("{a:02},{b:02}"),
            _ => format!("{a:02}..{b:02}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Consecutive runs of sorted values.
fn runs(v: &[u8]) -> Vec<(u8, u8)> {
    let mut out: Vec<(u8, u8)> = Vec::new();
    for &x in v {
        match out.last_mut() {
            Some((_, b)) if *b + 1 == x => *b = x,
            _ => out.push((x, x)),
        }
    }
    out
}

/// `Mon..Fri`, `Sat,Sun`; `None` for every day. Cron counts from Sunday = 0, systemd's week
/// starts on Monday, so runs are built in Monday-first order.
fn weekday_names(mask: u64) -> Option<String> {
    const NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    if is_full(mask, 0, 6) {
        return None;
    }
    // position in the Monday-first week → cron day number
    let monday_first: Vec<u8> = (0u8..7)
        .filter(|pos| mask & (1 << ((pos + 1) % 7)) != 0)
        .collect();
    let name = |pos: u8| NAMES[((pos + 1) % 7) as usize];
    Some(
        runs(&monday_first)
            .iter()
            .map(|&(a, b)| match b - a {
                0 => name(a).to_string(),
                1 => format!("{},{}", name(a), name(b)),
                _ => format!("{}..{}", name(a), name(b)),
            })
            .collect::<Vec<_>>()
            .join(","),
    )
}

pub fn render_service(
    task: ScheduledTask,
    entry: &TaskEntry,
    schedule: &Schedule,
    cmd: &AgentCommand,
) -> Result<String, SchedulerError> {
    let argv = cmd.argv(task, entry.wait_rand);
    let mut words = vec![exec_quote_program(&argv[0])?];
    for w in &argv[1..] {
        words.push(exec_quote(w)?);
    }
    let exec = words.join(" ");
    let user = if schedule.user == "root" {
        String::new()
    } else {
        format!("User={}\n", schedule.user)
    };
    // The log file is validated (absolute, no space, `%`, quote or control character), so it
    // can follow `append:` as is.
    Ok(format!(
        "# {MARKER}: overwritten on every run, do not edit.\n\
         [Unit]\n\
         Description=armadito-agent {task} task\n\
         Documentation=man:armadito-agent(1)\n\
         Wants=network-online.target\n\
         After=network-online.target\n\n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={exec}\n\
         {user}\
         StandardOutput=append:{log}\n\
         StandardError=append:{log}\n",
        log = schedule.logfile
    ))
}

pub fn render_timer(task: ScheduledTask, entry: &TaskEntry) -> String {
    let calendars: String = on_calendar(&entry.freq)
        .iter()
        .map(|c| format!("OnCalendar={c}\n"))
        .collect();
    format!(
        "# {MARKER}: overwritten on every run, do not edit.\n\
         [Unit]\n\
         Description=armadito-agent {task} task, cron \"{freq}\"\n\n\
         [Timer]\n\
         {calendars}\
         AccuracySec=1s\n\
         Unit={base}.service\n\n\
         [Install]\n\
         WantedBy=timers.target\n",
        freq = entry.freq,
        base = unit_base(task)
    )
}

/// Writes the units of the enabled tasks, removes those of disabled ones and the cron file of
/// a previous `mode = "cron"` run, then (real system only) reloads systemd and starts the
/// timers.
pub fn install(
    target: &Target,
    schedule: &Schedule,
    cmd: &AgentCommand,
) -> Result<Installed, SchedulerError> {
    let dir = target.path(UNIT_DIR);
    target.require_dir(
        &dir,
        "systemd does not seem to be the init system: set [schedule] mode = \"cron\"",
    )?;
    target.ensure_log_dir(&schedule.logfile)?;
    let mut installed = Installed {
        written: Vec::new(),
        unchanged: Vec::new(),
        removed: Vec::new(),
    };
    let mut timers = Vec::new();
    for (task, entry) in schedule.enabled() {
        let base = unit_base(task);
        for (suffix, content) in [
            ("service", render_service(task, entry, schedule, cmd)?),
            ("timer", render_timer(task, entry)),
        ] {
            let path = dir.join(format!("{base}.{suffix}"));
            let shown = path.display().to_string();
            if write_atomic(&path, &content)? {
                installed.written.push(shown);
            } else {
                installed.unchanged.push(shown);
            }
        }
        timers.push(format!("{base}.timer"));
    }
    let disabled: Vec<ScheduledTask> = ScheduledTask::ALL
        .into_iter()
        .filter(|t| !schedule.enabled().any(|(e, _)| e == *t))
        .collect();
    installed.removed = remove_units(target, &disabled)?;
    installed.removed.extend(cron::remove(target)?);
    if target.real {
        systemctl(target, &["daemon-reload"])?;
        if !timers.is_empty() {
            let mut args = vec!["enable", "--now"];
            args.extend(timers.iter().map(String::as_str));
            systemctl(target, &args)?;
        }
    }
    Ok(installed)
}

/// Removes every unit this task installed (another mode is now in charge).
pub fn remove_all(target: &Target) -> Result<Vec<String>, SchedulerError> {
    let removed = remove_units(target, &ScheduledTask::ALL)?;
    if target.real && !removed.is_empty() {
        systemctl(target, &["daemon-reload"])?;
    }
    Ok(removed)
}

/// Stops (real system) and removes our units of `tasks`; units we did not write are left alone.
fn remove_units(target: &Target, tasks: &[ScheduledTask]) -> Result<Vec<String>, SchedulerError> {
    let dir = target.path(UNIT_DIR);
    let mut removed = Vec::new();
    for &task in tasks {
        let base = unit_base(task);
        let timer = dir.join(format!("{base}.timer"));
        let service = dir.join(format!("{base}.service"));
        if target.real && is_generated(&timer) {
            systemctl(target, &["disable", "--now", &format!("{base}.timer")])?;
        }
        for path in [timer, service] {
            if remove_generated(&path)? {
                removed.push(path.display().to_string());
            }
        }
    }
    Ok(removed)
}

/// Runs `systemctl ARGS…` (argv, never a shell) and fails with its own message.
/// By absolute path, with a cleared environment (the agent's may hold its secrets).
fn systemctl(target: &Target, args: &[&str]) -> Result<(), SchedulerError> {
    let command = format!("{} {}", target.systemctl.display(), args.join(" "));
    tracing::debug!(%command, "running");
    let out = Command::new(&target.systemctl)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LANG", "C")
        .output()
        .map_err(|e| SchedulerError::Command {
            command: command.clone(),
            detail: e.to_string(),
        })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(SchedulerError::Command {
        command,
        detail: format!("{}: {}", out.status, stderr.trim()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Source;

    fn cal(s: &str) -> Vec<String> {
        on_calendar(&CronExpr::parse(s).unwrap())
    }

    #[test]
    fn calendar_mapping() {
        assert_eq!(cal("* * * * *"), ["*-*-* *:*:00"]);
        assert_eq!(cal("*/2 * * * *"), ["*-*-* *:00/2:00"]);
        assert_eq!(cal("0,20,40 * * * *"), ["*-*-* *:00/20:00"]);
        assert_eq!(
            cal("01,12,22,31,41,51 * * * *"),
            ["*-*-* *:01,12,22,31,41,51:00"]
        );
        assert_eq!(cal("30 * * * *"), ["*-*-* *:30:00"]);
        assert_eq!(cal("15 */6 * * *"), ["*-*-* 00/6:15:00"]);
        assert_eq!(cal("0 3 * * 1-5"), ["Mon..Fri *-*-* 03:00:00"]);
        assert_eq!(cal("0 3 * * 0,6"), ["Sat,Sun *-*-* 03:00:00"]);
        assert_eq!(cal("0 3 * * 7"), ["Sun *-*-* 03:00:00"]);
        assert_eq!(cal("0 3 * * 5-7"), ["Fri..Sun *-*-* 03:00:00"]);
        assert_eq!(cal("5 0-5,9 1 1,7 *"), ["*-01,07-01 00..05,09:05:00"]);
        assert_eq!(cal("0 0 * * */2"), ["Tue,Thu,Sat,Sun *-*-* 00:00:00"]);
        // cron's "either day" rule: two lines
        assert_eq!(
            cal("0 0 1,15 * 1"),
            ["Mon *-*-* 00:00:00", "*-*-01,15 00:00:00"]
        );
        assert_eq!(cal("0 0 */2 * 1"), ["Mon *-*-01/2 00:00:00"]);
    }

    #[test]
    fn exec_quoting() {
        assert_eq!(
            exec_quote("/usr/bin/armadito-agent").unwrap(),
            "\"/usr/bin/armadito-agent\""
        );
        assert_eq!(
            exec_quote(r#"a "b" \c %n $HOME ; x"#).unwrap(),
            r#""a \"b\" \\c %%n $$HOME ; x""#
        );
        assert!(exec_quote("a\nb").is_err());
        assert!(exec_quote("a\tb").is_err());
        assert_eq!(
            exec_quote_program("/opt/a b/$x/50%/armadito-agent").unwrap(),
            "\"/opt/a b/$x/50%%/armadito-agent\""
        );
        for bad in ["/opt/it's/a", "/opt/a\\b/a", "/opt/a\"b/a", "/opt/a\nb/a"] {
            assert!(exec_quote_program(bad).is_err(), "{bad:?}");
        }
    }

    fn schedule(user: &str) -> Schedule {
        Schedule {
            user: user.into(),
            logfile: "/var/log/armadito-agent/agent.log".into(),
            tasks: ScheduledTask::ALL
                .into_iter()
                .map(|t| (t, t.default_entry()))
                .collect(),
            source: Source::Local,
        }
    }

    #[test]
    fn units() {
        let s = schedule("armadito");
        let cmd = AgentCommand::new(
            "/usr/bin/armadito-agent".into(),
            Some("/etc/armadito-agent/agent.toml".into()),
        )
        .unwrap();
        let e = &s.tasks[&ScheduledTask::Runjobs];
        let service = render_service(ScheduledTask::Runjobs, e, &s, &cmd).unwrap();
        assert!(service.starts_with(&format!("# {MARKER}")));
        assert!(service.contains("\nType=oneshot\n"));
        assert!(service.contains(
            "\nExecStart=\"/usr/bin/armadito-agent\" \"-c\" \"/etc/armadito-agent/agent.toml\" \"-t\" \"Runjobs\" \"--wait-rand\" \"60\"\n"
        ), "{service}");
        assert!(service.contains("\nUser=armadito\n"));
        assert!(service.contains("\nStandardOutput=append:/var/log/armadito-agent/agent.log\n"));
        assert!(
            !render_service(ScheduledTask::Runjobs, e, &schedule("root"), &cmd)
                .unwrap()
                .contains("User=")
        );
        let timer = render_timer(ScheduledTask::Runjobs, e);
        assert!(timer.contains("\nOnCalendar=*-*-* *:00/2:00\n"), "{timer}");
        assert!(timer.contains("\nUnit=armadito-agent-runjobs.service\n"));
        assert!(timer.contains("\nWantedBy=timers.target\n"));
        assert_eq!(
            unit_base(ScheduledTask::AvConfig),
            "armadito-agent-avconfig"
        );
    }

    #[test]
    fn install_under_root_writes_units_and_removes_stale_ones() {
        let d = tempfile::tempdir().unwrap();
        let target = Target::new(d.path()).unwrap();
        let cron_file = target.path(cron::CRON_FILE);
        std::fs::create_dir_all(cron_file.parent().unwrap()).unwrap();
        std::fs::write(&cron_file, format!("# {MARKER}\n")).unwrap();
        let cmd = AgentCommand::new("/usr/bin/armadito-agent".into(), None).unwrap();

        let mut s = schedule("root");
        let all = install(&target, &s, &cmd).unwrap();
        assert_eq!(all.written.len(), 12, "{all:?}");
        assert_eq!(all.removed, [cron_file.display().to_string()]);
        let dir = d.path().join("etc/systemd/system");
        assert!(dir.join("armadito-agent-scheduler.timer").is_file());

        s.tasks.get_mut(&ScheduledTask::Scheduler).unwrap().enabled = false;
        let fewer = install(&target, &s, &cmd).unwrap();
        assert_eq!(fewer.unchanged.len(), 10);
        assert_eq!(fewer.removed.len(), 2);
        assert!(!dir.join("armadito-agent-scheduler.timer").exists());
        assert!(!dir.join("armadito-agent-scheduler.service").exists());

        assert_eq!(remove_all(&target).unwrap().len(), 10);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    }

    // ---- cross-check against systemd itself ---------------------------------------------------

    /// How far ahead the two are compared (covers one February 29th).
    const HORIZON: i64 = 4 * 366 * 86_400;

    /// The next `n` minutes (unix seconds, UTC) after `base` at which cron would run `expr`.
    fn cron_next(expr: &CronExpr, base: i64, n: usize) -> Vec<i64> {
        let mut out = Vec::new();
        let mut t = (base / 60 + 1) * 60;
        while out.len() < n && t < base + HORIZON {
            use chrono::{Datelike, Timelike};
            let dt = chrono::DateTime::from_timestamp(t, 0).unwrap();
            if expr.matches(
                dt.minute(),
                dt.hour(),
                dt.day(),
                dt.month(),
                dt.weekday().num_days_from_sunday(),
            ) {
                out.push(t);
            }
            t += 60;
        }
        out
    }

    /// What `systemd-analyze calendar` says, or `None` when it cannot be run here.
    fn systemd_next(calendar: &str, base: i64, n: usize) -> Option<Vec<i64>> {
        let out = Command::new("systemd-analyze")
            .env("TZ", "UTC")
            .args([
                "calendar",
                &format!("--iterations={n}"),
                &format!("--base-time=@{base}"),
                calendar,
            ])
            .output()
            .ok()?;
        assert!(
            out.status.success(),
            "systemd rejected {calendar:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).ok()?;
        let mut times = Vec::new();
        for line in text.lines() {
            let Some((label, when)) = line.split_once(": ") else {
                continue;
            };
            if !(label.ends_with("Next elapse") || label.trim_start().starts_with("Iter.")) {
                continue;
            }
            let w: Vec<&str> = when.split_whitespace().collect();
            if w.len() < 3 {
                continue; // "never"
            }
            let when = format!("{} {}", w[1], w[2]);
            let dt = chrono::NaiveDateTime::parse_from_str(&when, "%Y-%m-%d %H:%M:%S").unwrap();
            times.push(dt.and_utc().timestamp());
        }
        Some(times)
    }

    #[test]
    fn conversions_agree_with_systemd_analyze() {
        // .ci/install-tools.sh installs systemd-analyze: without it this fails, never skips.
        Command::new("systemd-analyze")
            .arg("--version")
            .output()
            .expect("systemd-analyze is needed for this test (apt-get install systemd)");
        let base = 1_700_000_000; // Tue 2023-11-14 22:13:20 UTC
        let n = 40;
        for s in [
            "* * * * *",
            "*/2 * * * *",
            "0,20,40 * * * *",
            "01,12,22,31,41,51 * * * *",
            "7-59/5 * * * *",
            "15 */6 * * *",
            "0 3 * * 1-5",
            "30 4 * * 0,6",
            "5 0-5,9 1 1,7 *",
            "0 0 1,15 * 1",
            "0 0 */2 * 3",
            "0 12 * * 7",
            "10 1 29 2 *",
            "0 0 13 * 5",
            "45 23 31 * *",
        ] {
            let expr = CronExpr::parse(s).unwrap();
            let mut got = Vec::new();
            for c in on_calendar(&expr) {
                got.extend(systemd_next(&c, base, n).expect("systemd-analyze runs"));
            }
            got.sort_unstable();
            got.dedup();
            got.retain(|t| *t < base + HORIZON);
            got.truncate(n);
            assert_eq!(
                got,
                cron_next(&expr, base, n),
                "{s:?} → {:?}",
                on_calendar(&expr)
            );
        }
    }
}
