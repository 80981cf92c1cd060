//! Applying configuration changes: validate, rewrite clamd.conf atomically, restart clamd,
//! roll back if clamd does not come back.
//!
//! Invariants:
//! * Nothing is written unless at least one value really changes, and every requested
//!   entry ends up in exactly one of applied / unchanged / rejected.
//! * The candidate file is validated before it replaces the live one: by the built-in
//!   option table always, and by `clamconf` when available (clamconf exits 0 even on
//!   errors, so its `ERROR:` lines are what counts).
//! * The live file is replaced by `rename` of a fully written, fsynced sibling carrying
//!   the original mode and owner, so clamd never reads a half-written file.
//! * If the restart command fails, or clamd does not answer PING in time, the previous
//!   file is put back and clamd restarted again; the error says whether that worked.
//! * The whole apply (clamconf, restart, wait, rollback) fits in `ApplyOptions::budget`, which
//!   the settings keep below the agent's call timeout: the first half for going forward, the
//!   rest always left for the rollback, so the agent never kills the plugin mid-rollback.
//! * The previous file is kept as `.<name>.armadito-backup` next to it until the apply is over;
//!   if the process dies first (SIGKILL included), [`recover`] puts it back at the next start.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use armadito_plugin_api::model::{ConfigApplyReport, ConfigEntry, ConfigRejection};
use serde_json::Value;

use super::ConfigError;
use super::conf::{self, ClamdConf};
use super::schema::{self, Kind};
use crate::clamd::Client;
use crate::exec;

/// How to validate and restart.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// clamconf program; `None` = skip external validation.
    pub clamconf: Option<String>,
    /// argv; empty = no restart (the report says `restart_required`).
    pub restart_command: Vec<String>,
    pub restart_timeout: Duration,
    /// Wait until this clamd answers PING after the restart.
    pub ready_check: Option<(Client, Duration)>,
    /// A local caller (the plugin's own hook installer, never a remote `config_set`): the
    /// [`schema::REMOTE_TUNABLE`] allow-list does not apply.
    pub allow_protected: bool,
    /// Time for the whole apply, rollback included (`None`: the step timeouts only).
    pub budget: Option<Duration>,
}

/// The backup of `path` kept while an apply is in progress.
pub fn backup_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.armadito-backup"))
}

/// An apply did not finish (the process was killed): put the previous file back and, when
/// clamd does not answer, restart it. `Some(note)` when something was recovered.
pub fn recover(path: &Path, opts: &ApplyOptions) -> Option<String> {
    let backup = backup_path(path);
    let text = fs::read_to_string(&backup).ok()?;
    if let Err(e) = write_atomically(path, &text) {
        return Some(format!(
            "an interrupted configuration change left {}; restoring it failed: {e}",
            backup.display()
        ));
    }
    let _ = fs::remove_file(&backup);
    let mut note = format!(
        "an interrupted configuration change was rolled back: {} restored",
        path.display()
    );
    let down = opts
        .ready_check
        .as_ref()
        .is_some_and(|(c, _)| c.ping().is_err());
    if down && !opts.restart_command.is_empty() {
        let deadline = Instant::now() + opts.budget.unwrap_or(opts.restart_timeout);
        match restart(opts, deadline) {
            Ok(()) => note.push_str(", clamd restarted"),
            Err(e) => note.push_str(&format!(", clamd restart failed: {e}")),
        }
    }
    Some(note)
}

/// One changed option, for logs and humans.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub attr: String,
    pub old: Value,
    pub new: Value,
}

/// What `apply` did.
#[derive(Debug, Clone, Default)]
pub struct ApplyOutcome {
    pub report: ConfigApplyReport,
    pub changes: Vec<Change>,
    /// Notes for the log (validation skipped, …).
    pub notes: Vec<String>,
}

/// Convert a requested JSON value into clamd.conf arguments, checking the option's kind.
fn to_args(name: &str, kind: Kind, repeatable: bool, value: &Value) -> Result<Vec<String>, String> {
    let items: Vec<&Value> = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) if repeatable => items.iter().collect(),
        Value::Array(_) => return Err(format!("{name} takes a single value, not a list")),
        v => vec![v],
    };
    items
        .into_iter()
        .map(|v| {
            let arg = match (kind, v) {
                (Kind::Bool, Value::Bool(b)) => if *b { "yes" } else { "no" }.to_owned(),
                (Kind::Bool, Value::Number(n)) if n.as_u64() == Some(0) => "no".into(),
                (Kind::Bool, Value::Number(n)) if n.as_u64() == Some(1) => "yes".into(),
                (Kind::Bool, Value::String(s)) => match conf::parse_bool(s) {
                    Some(true) => "yes".into(),
                    Some(false) => "no".into(),
                    None => return Err(format!("{name} expects yes/no, got {s:?}")),
                },
                (Kind::Size | Kind::Number, Value::Number(n)) => match n.as_u64() {
                    Some(n) => n.to_string(),
                    None => return Err(format!("{name} expects a non-negative integer, got {n}")),
                },
                (Kind::Size, Value::String(s)) if conf::parse_size(s).is_some() => {
                    s.trim().to_owned()
                }
                (Kind::Number, Value::String(s))
                    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    s.clone()
                }
                (Kind::Str, Value::String(s)) => s.clone(),
                (Kind::Str, Value::Number(n)) => n.to_string(),
                (kind, v) => return Err(format!("{name} expects a {kind:?} value, got {v}")),
            };
            if arg.contains(['\n', '\r', '\0']) {
                return Err(format!("{name}: a value cannot span lines"));
            }
            Ok(arg)
        })
        .collect()
}

/// Current value of `name` in the same JSON shape `to_args` produces it from.
fn current_value(conf: &ClamdConf, name: &str) -> Value {
    conf.entries()
        .into_iter()
        .find(|(n, _)| n == name)
        .map_or(Value::Null, |(_, v)| v)
}

/// Apply `entries` to the clamd.conf at `path`.
pub fn apply(
    path: &Path,
    entries: &[ConfigEntry],
    opts: &ApplyOptions,
) -> Result<ApplyOutcome, ConfigError> {
    let original = fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut conf = ClamdConf::parse(&original);
    let mut out = ApplyOutcome::default();

    for entry in entries {
        let attr = entry.attr.as_str();
        let reject = |reason: String| ConfigRejection {
            attr: attr.to_owned(),
            reason,
        };
        let Some((kind, repeatable)) = schema::lookup(attr) else {
            out.report.rejected.push(reject(
                "unknown clamd option (clamd would refuse to start)".into(),
            ));
            continue;
        };
        if !schema::is_remotely_tunable(attr) && !opts.allow_protected {
            out.report.rejected.push(reject(
                "not changeable remotely (only limits, timeouts and scan-type switches are; change it on the host itself)".into(),
            ));
            continue;
        }
        let args = match to_args(attr, kind, repeatable, &entry.value) {
            Ok(args) => args,
            Err(reason) => {
                out.report.rejected.push(reject(reason));
                continue;
            }
        };
        let old = current_value(&conf, attr);
        let mut candidate = conf.clone();
        candidate.set(attr, &args);
        let new = current_value(&candidate, attr);
        if new == old {
            out.report.unchanged.push(attr.to_owned());
            continue;
        }
        conf = candidate;
        out.report.applied.push(attr.to_owned());
        out.changes.push(Change {
            attr: attr.to_owned(),
            old,
            new,
        });
    }
    if out.changes.is_empty() {
        return Ok(out);
    }

    let started = Instant::now();
    // Half the budget going forward, the rest kept for the rollback.
    let (forward, end) = match opts.budget {
        Some(b) => (started + b / 2, started + b),
        None => {
            let far = started
                + Duration::from_secs(30)
                + 2 * (opts.restart_timeout + ready_timeout(opts));
            (far, far)
        }
    };
    let text = conf.to_text();
    if let Some(program) = &opts.clamconf
        && let Some(note) = validate_with_clamconf(program, &text, remaining(forward))?
    {
        out.notes.push(note);
    }
    let backup = backup_path(path);
    write_atomically(&backup, &original)?;
    write_atomically(path, &text)?;

    if opts.restart_command.is_empty() {
        let _ = fs::remove_file(&backup);
        out.report.restart_required = true;
        return Ok(out);
    }
    if let Err(failure) = restart(opts, forward) {
        // Put the previous file back and try to bring clamd back with it.
        let restored = write_atomically(path, &original).is_ok();
        if restored {
            let _ = fs::remove_file(&backup);
        }
        let rolled_back = restored && restart(opts, end).is_ok();
        return Err(ConfigError::Restart {
            message: failure,
            rolled_back,
        });
    }
    let _ = fs::remove_file(&backup);
    out.report.restarted = true;
    Ok(out)
}

fn ready_timeout(opts: &ApplyOptions) -> Duration {
    opts.ready_check
        .as_ref()
        .map_or(Duration::ZERO, |(_, t)| *t)
}

/// Time left until `deadline` (at least 1 ms, so a step still gets tried and times out).
fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

/// Run clamconf on the candidate in a scratch directory. `Ok(Some(note))` when validation
/// was skipped (clamconf missing), `Err(Invalid)` when clamconf reports an error.
fn validate_with_clamconf(
    program: &str,
    text: &str,
    timeout: Duration,
) -> Result<Option<String>, ConfigError> {
    let dir = scratch_dir().map_err(|source| ConfigError::Write {
        path: std::env::temp_dir(),
        source,
    })?;
    let result = (|| {
        let candidate = dir.join("clamd.conf");
        fs::write(&candidate, text).map_err(|source| ConfigError::Write {
            path: candidate.clone(),
            source,
        })?;
        let argv = vec![
            program.to_owned(),
            "-n".into(),
            "-c".into(),
            dir.to_string_lossy().into_owned(),
        ];
        match exec::run(&argv, timeout.min(Duration::from_secs(30))) {
            Ok(output) => {
                let errors: Vec<&str> = output
                    .stderr
                    .lines()
                    .chain(output.stdout.lines())
                    .filter(|l| l.starts_with("ERROR"))
                    .collect();
                if errors.is_empty() {
                    Ok(None)
                } else {
                    let dir_text = dir.to_string_lossy();
                    Err(ConfigError::Invalid(
                        errors.join("; ").replace(dir_text.as_ref(), "<candidate>"),
                    ))
                }
            }
            Err(exec::ExecError::NotFound { .. }) => Ok(Some(format!(
                "{program} not found: clamd.conf not validated by clamconf"
            ))),
            Err(e) => Err(ConfigError::Invalid(format!("clamconf failed: {e}"))),
        }
    })();
    let _ = fs::remove_dir_all(&dir);
    result
}

/// A private scratch directory under the temp dir (0700, unique name).
fn scratch_dir() -> std::io::Result<PathBuf> {
    let base = std::env::temp_dir();
    for attempt in 0..100u32 {
        let name = format!(
            "armadito-clamconf-{}-{}-{attempt}",
            std::process::id(),
            crate::timeutil::now_f64().to_bits() % 1_000_000
        );
        let dir = base.join(name);
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        "no free scratch directory name",
    ))
}

/// Replace `path` with `text`: sibling temp file, same mode and owner, fsync, rename,
/// fsync the directory.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), ConfigError> {
    let werr = |source| ConfigError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let meta = fs::metadata(path).ok();
    let mut tmp_path = None;
    let mut file = None;
    for attempt in 0..100u32 {
        let candidate = dir.join(format!(".{name}.armadito-{}-{attempt}", std::process::id()));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&candidate)
        {
            Ok(f) => {
                tmp_path = Some(candidate);
                file = Some(f);
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(werr(e)),
        }
    }
    let (Some(tmp_path), Some(mut file)) = (tmp_path, file) else {
        return Err(werr(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "no free temporary file name",
        )));
    };
    let result = (|| {
        file.write_all(text.as_bytes())?;
        if let Some(meta) = &meta {
            file.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))?;
            // Keeping the owner needs privileges; as an unprivileged user the file is ours.
            let _ = std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()));
        }
        file.sync_all()?;
        fs::rename(&tmp_path, path)?;
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp_path);
    }
    result.map_err(werr)
}

/// Run the restart command and wait for clamd to answer. `Err(text)` says what failed.
fn restart(opts: &ApplyOptions, by: Instant) -> Result<(), String> {
    let output = exec::run(
        &opts.restart_command,
        opts.restart_timeout.min(remaining(by)),
    )
    .map_err(|e| format!("restart command failed: {e}"))?;
    if !output.status.success() {
        return Err(format!("restart command failed: {}", output.summary()));
    }
    if let Some((client, timeout)) = &opts.ready_check {
        let deadline = (Instant::now() + *timeout).min(by);
        loop {
            match client.ping() {
                Ok(()) => break,
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("clamd did not come back after the restart: {e}"));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(attr: &str, value: Value) -> ConfigEntry {
        ConfigEntry::new(attr, value)
    }

    #[test]
    fn value_conversion_checks_kinds() {
        assert_eq!(
            to_args("LogTime", Kind::Bool, false, &json!(true)).unwrap(),
            ["yes"]
        );
        assert_eq!(
            to_args("LogTime", Kind::Bool, false, &json!("false")).unwrap(),
            ["no"]
        );
        assert!(to_args("LogTime", Kind::Bool, false, &json!("perhaps")).is_err());
        assert_eq!(
            to_args("StreamMaxLength", Kind::Size, false, &json!("4M")).unwrap(),
            ["4M"]
        );
        assert_eq!(
            to_args("StreamMaxLength", Kind::Size, false, &json!(1024)).unwrap(),
            ["1024"]
        );
        assert!(to_args("StreamMaxLength", Kind::Size, false, &json!(-1)).is_err());
        assert!(to_args("MaxThreads", Kind::Number, false, &json!("4M")).is_err());
        assert!(to_args("MaxThreads", Kind::Number, false, &json!([1, 2])).is_err());
        assert_eq!(
            to_args("OnAccessIncludePath", Kind::Str, true, &json!(["/a", "/b"])).unwrap(),
            ["/a", "/b"]
        );
        assert!(to_args("LogFacility", Kind::Str, false, &json!("a\nExample")).is_err());
        assert!(
            to_args("LogTime", Kind::Bool, false, &Value::Null)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn apply_without_restart_reports_each_entry_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clamd.conf");
        fs::write(&path, "# keep me\nScanPDF yes\nMaxThreads 4\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let out = apply(
            &path,
            &[
                entry("ScanPDF", json!("true")),
                entry("MaxThreads", json!(8)),
                entry("StreamMaxLength", json!("2M")),
                entry("Bogus", json!(1)),
                entry("VirusEvent", json!("/bin/sh -c evil")),
                entry("ScanPE", json!("perhaps")),
            ],
            &ApplyOptions::default(),
        )
        .unwrap();
        let r = &out.report;
        assert_eq!(r.applied, ["MaxThreads", "StreamMaxLength"]);
        assert_eq!(r.unchanged, ["ScanPDF"]);
        let rejected: Vec<_> = r.rejected.iter().map(|x| x.attr.as_str()).collect();
        assert_eq!(rejected, ["Bogus", "VirusEvent", "ScanPE"]);
        assert!(r.restart_required && !r.restarted);
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "# keep me\nScanPDF yes\nMaxThreads 8\nStreamMaxLength 2M\n"
        );
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o640);
        assert_eq!(out.changes[0].old, json!(4));
        assert_eq!(out.changes[1].new, json!(2_097_152));
        // Nothing left behind in the directory.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn clamconf_errors_refuse_the_candidate() {
        let err = validate_with_clamconf(
            "/usr/bin/clamconf",
            "LocalSocket /tmp/x.sock\nBytecodeSecurity Whatever\n",
            Duration::from_secs(30),
        )
        .unwrap_err();
        assert!(err.to_string().contains("BytecodeSecurity"), "{err}");
    }

    #[test]
    fn no_change_means_no_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clamd.conf");
        fs::write(&path, "LogTime yes\n").unwrap();
        let before = fs::metadata(&path).unwrap().ino();
        let out = apply(
            &path,
            &[entry("LogTime", json!(true))],
            &ApplyOptions {
                restart_command: vec!["/nonexistent/restart".into()],
                ..Default::default()
            },
        )
        .unwrap();
        assert!(out.report.applied.is_empty() && !out.report.restarted);
        assert_eq!(
            fs::metadata(&path).unwrap().ino(),
            before,
            "file not rewritten"
        );
    }

    #[test]
    fn failed_restart_rolls_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clamd.conf");
        fs::write(&path, "MaxThreads 4\n").unwrap();
        let err = apply(
            &path,
            &[entry("MaxThreads", json!(2))],
            &ApplyOptions {
                restart_command: vec!["false".into()],
                restart_timeout: Duration::from_secs(5),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Restart {
                    rolled_back: false,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "MaxThreads 4\n");
    }
}
