//! AVConfig: `armadito.conf` plus `conf.d/*.conf` (loaded in name order, later files win),
//! reported as `section:key` attributes; changes applied through an allow-list.
//!
//! Invariants:
//! * Only [`TUNABLE`] attributes can be changed remotely, each with a value check; everything
//!   else is rejected as "not changeable remotely" (paths, white lists, quarantine folder
//!   and module lists would let a server redirect or blind the AV).
//! * A value never contains a line break or a `[`/`#` start (it cannot inject a section).
//! * A change is written where the key is defined (last definition wins), atomically
//!   (temporary file in the same folder, fsync, rename), keeping comments and modes.
//! * After a restart failure the previous files are put back and the restart is tried again.

pub mod conf;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use armadito_plugin_api::{ConfigApplyReport, ConfigChange, ConfigEntry, ConfigRejection, OnOff};
use serde_json::Value;

use crate::transport::exec;

/// Attributes a server may change, and the kind of value each takes.
pub const TUNABLE: &[(&str, ValueKind)] = &[
    ("on-demand:max-size", ValueKind::Size),
    ("on-demand:mime-types", ValueKind::QuotedList),
    ("on-access-linux:enable", ValueKind::Flag),
    ("on-access-linux:enable-permission", ValueKind::Flag),
    ("on-access-linux:enable-removable-media", ValueKind::Flag),
    ("on-access-linux:autoscan-removable-media", ValueKind::Flag),
    ("on-access-linux:max-size", ValueKind::Size),
    ("on-access-linux:mime-types", ValueKind::QuotedList),
    ("quarantine:enable", ValueKind::Flag),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// `0` or `1`.
    Flag,
    /// Bytes, a decimal integer.
    Size,
    /// `"a"; "b"` (quoted items, `;`-separated), e.g. mime types.
    QuotedList,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("restarting Armadito AV failed ({0}); the previous configuration was put back")]
    Restart(String),
}

/// One loaded file.
#[derive(Debug, Clone)]
pub struct ConfFile {
    pub path: PathBuf,
    pub text: String,
}

/// The files in load order: the main file (must exist), then `conf_dir/*.conf` by name.
pub fn load(main: &Path, dir: &Path) -> Result<Vec<ConfFile>, ConfigError> {
    let read = |p: &Path| {
        fs::read_to_string(p).map_err(|source| ConfigError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let mut files = vec![ConfFile {
        path: main.to_path_buf(),
        text: read(main)?,
    }];
    let mut extra: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "conf") && p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    extra.sort();
    for p in extra {
        files.push(ConfFile {
            text: read(&p)?,
            path: p,
        });
    }
    Ok(files)
}

/// Effective entries, first-definition order, later files overriding values.
pub fn entries(files: &[ConfFile]) -> Vec<ConfigEntry> {
    let mut out: Vec<ConfigEntry> = Vec::new();
    for f in files {
        for e in conf::parse(&f.text) {
            let attr = e.attr();
            match out.iter_mut().find(|c| c.attr == attr) {
                Some(c) => c.value = Value::String(e.value),
                None => out.push(ConfigEntry::new(attr, e.value)),
            }
        }
    }
    out
}

/// Real-time protection = `[on-access-linux] enable`.
pub fn realtime(entries: &[ConfigEntry]) -> OnOff {
    match entries
        .iter()
        .find(|e| e.attr == "on-access-linux:enable")
        .and_then(|e| e.value.as_str())
        .map(|v| v.trim().trim_matches('"').to_ascii_lowercase())
        .as_deref()
    {
        Some("1" | "yes" | "true" | "on") => OnOff::On,
        Some("0" | "no" | "false" | "off") => OnOff::Off,
        _ => OnOff::Unknown,
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => u8::from(*b).to_string(),
        other => other.to_string(),
    }
}

/// The value to write for `attr`, or why it is refused.
pub fn check(attr: &str, value: &Value) -> Result<String, String> {
    let Some((_, kind)) = TUNABLE.iter().find(|(a, _)| *a == attr) else {
        return Err("not changeable remotely".into());
    };
    let v = text_of(value).trim().to_string();
    if v.contains(['\n', '\r', '\0']) {
        return Err("invalid value: line breaks are not allowed".into());
    }
    match kind {
        ValueKind::Flag => match v.to_ascii_lowercase().as_str() {
            "1" | "yes" | "true" => Ok("1".into()),
            "0" | "no" | "false" => Ok("0".into()),
            _ => Err(format!("invalid value {v:?}: expected 0 or 1")),
        },
        ValueKind::Size => v
            .parse::<u64>()
            .map(|n| n.to_string())
            .map_err(|_| format!("invalid value {v:?}: expected a size in bytes")),
        ValueKind::QuotedList => {
            let ok = !v.is_empty()
                && v.split(';').all(|item| {
                    let t = item.trim();
                    t.len() >= 2
                        && t.starts_with('"')
                        && t.ends_with('"')
                        && !t[1..t.len() - 1].contains(['"', '[', '#'])
                });
            if ok {
                Ok(v)
            } else {
                Err(format!("invalid value {v:?}: expected \"a\"; \"b\""))
            }
        }
    }
}

/// Writes `text` to `path` atomically, keeping the file's permissions.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), ConfigError> {
    let err = |source| ConfigError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.armadito-agent.tmp"));
    let mode = fs::metadata(path)
        .map(|m| m.permissions().mode())
        .unwrap_or(0o644);
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.set_permissions(fs::Permissions::from_mode(mode & 0o7777))?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(err)
}

/// What `apply` needs besides the entries.
pub struct ApplyContext<'a> {
    pub main: &'a Path,
    pub dir: &'a Path,
    pub restart: &'a [String],
    pub restart_timeout: Duration,
}

pub fn apply(
    ctx: &ApplyContext<'_>,
    wanted: &[ConfigEntry],
) -> Result<ConfigApplyReport, ConfigError> {
    let mut files = load(ctx.main, ctx.dir)?;
    let before = files.clone();
    let current = entries(&files);
    let mut report = ConfigApplyReport::default();
    let mut touched = Vec::new();
    for w in wanted {
        let value = match check(&w.attr, &w.value) {
            Ok(v) => v,
            Err(reason) => {
                report.rejected.push(ConfigRejection {
                    attr: w.attr.clone(),
                    reason,
                });
                continue;
            }
        };
        let old = current
            .iter()
            .find(|c| c.attr == w.attr)
            .map(|c| c.value.clone());
        if old.as_ref().map(text_of).as_deref().map(str::trim) == Some(value.as_str()) {
            report.unchanged.push(w.attr.clone());
            continue;
        }
        let (section, key) = w.attr.split_once(':').unwrap_or((&w.attr, ""));
        // the file that defines it last (its value wins), else the main file
        let idx = files
            .iter()
            .rposition(|f| {
                conf::parse(&f.text)
                    .iter()
                    .any(|e| e.section == section && e.key == key)
            })
            .unwrap_or(0);
        files[idx].text = conf::set(&files[idx].text, section, key, &value);
        if !touched.contains(&idx) {
            touched.push(idx);
        }
        report.applied.push(w.attr.clone());
        report.changes.push(ConfigChange {
            attr: w.attr.clone(),
            old,
            new: Value::String(value),
        });
    }
    if touched.is_empty() {
        return Ok(report);
    }
    for &i in &touched {
        write_atomic(&files[i].path, &files[i].text)?;
    }
    if ctx.restart.is_empty() {
        report.restart_required = true;
        return Ok(report);
    }
    match restart(ctx) {
        Ok(()) => {
            report.restarted = true;
            Ok(report)
        }
        Err(why) => {
            for &i in &touched {
                write_atomic(&before[i].path, &before[i].text)?;
            }
            let _ = restart(ctx);
            Err(ConfigError::Restart(why))
        }
    }
}

fn restart(ctx: &ApplyContext<'_>) -> Result<(), String> {
    let out = exec::run(ctx.restart, ctx.restart_timeout).map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}: {}", ctx.restart.join(" "), out.summary()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let main = t.path().join("armadito.conf");
        let dir = t.path().join("conf.d");
        fs::create_dir(&dir).unwrap();
        fs::write(
            &main,
            "[on-demand]\nwhite-list-dir = \"/boot\"; \"/dev\"\nmax-size = 10485760\n[on-access-linux]\nenable = 0\n",
        )
        .unwrap();
        fs::write(
            dir.join("50-local.conf"),
            "# site\n[on-access-linux]\nenable = 1\n",
        )
        .unwrap();
        fs::write(dir.join("not-a-conf.txt"), "[x]\ny = 1\n").unwrap();
        (t, main, dir)
    }

    #[test]
    fn conf_d_overrides_and_realtime() {
        let (_t, main, dir) = setup();
        let e = entries(&load(&main, &dir).unwrap());
        assert_eq!(e.len(), 3);
        assert!(e.contains(&ConfigEntry::new("on-access-linux:enable", "1")));
        assert_eq!(realtime(&e), OnOff::On);
        assert!(load(&dir.join("missing.conf"), &dir).is_err());
    }

    #[test]
    fn allow_list_and_values() {
        assert_eq!(
            check("on-demand:max-size", &json!(20971520)).unwrap(),
            "20971520"
        );
        assert_eq!(check("quarantine:enable", &json!(true)).unwrap(), "1");
        assert_eq!(
            check("on-demand:white-list-dir", &json!("\"/\"")).unwrap_err(),
            "not changeable remotely"
        );
        assert!(check("on-demand:max-size", &json!("1\n[quarantine]")).is_err());
        assert!(
            check(
                "on-demand:mime-types",
                &json!("\"text/*\"; \"application/pdf\"")
            )
            .is_ok()
        );
        assert!(check("on-demand:mime-types", &json!("\"a\"; b")).is_err());
        assert!(check("on-access-linux:enable", &json!("maybe")).is_err());
    }

    #[test]
    fn apply_writes_where_defined_reports_old_new_and_restarts_by_argv() {
        let (t, main, dir) = setup();
        let log = t.path().join("restart.argv");
        let script = t.path().join("restart.sh");
        fs::write(
            &script,
            format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display()),
        )
        .unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let restart = vec![script.display().to_string(), "restart".into()];
        let ctx = ApplyContext {
            main: &main,
            dir: &dir,
            restart: &restart,
            restart_timeout: Duration::from_secs(5),
        };
        let r = apply(
            &ctx,
            &[
                ConfigEntry::new("on-access-linux:enable", "0"),
                ConfigEntry::new("on-demand:max-size", "10485760"),
                ConfigEntry::new("on-demand:white-list-dir", "\"/\""),
                ConfigEntry::new("quarantine:enable", "1"),
            ],
        )
        .unwrap();
        assert_eq!(r.applied, ["on-access-linux:enable", "quarantine:enable"]);
        assert_eq!(r.unchanged, ["on-demand:max-size"]);
        assert_eq!(r.rejected[0].attr, "on-demand:white-list-dir");
        assert!(r.restarted);
        assert_eq!(r.changes[0].old, Some(json!("1")));
        assert_eq!(r.changes[0].new, json!("0"));
        assert_eq!(r.changes[1].old, None);
        let local = fs::read_to_string(dir.join("50-local.conf")).unwrap();
        assert_eq!(
            local, "# site\n[on-access-linux]\nenable = 0\n",
            "changed where it was defined"
        );
        assert!(
            fs::read_to_string(&main)
                .unwrap()
                .contains("[quarantine]\nenable = 1\n")
        );
        assert_eq!(fs::read_to_string(&log).unwrap(), "restart\n");
    }

    #[test]
    fn a_failed_restart_puts_the_files_back() {
        let (_t, main, dir) = setup();
        let before = fs::read_to_string(&main).unwrap();
        let restart = vec!["/bin/false".to_string()];
        let ctx = ApplyContext {
            main: &main,
            dir: &dir,
            restart: &restart,
            restart_timeout: Duration::from_secs(5),
        };
        let e = apply(&ctx, &[ConfigEntry::new("on-demand:max-size", "1")]).unwrap_err();
        assert!(e.to_string().contains("put back"), "{e}");
        assert_eq!(fs::read_to_string(&main).unwrap(), before);
        let none: Vec<String> = Vec::new();
        let ctx = ApplyContext {
            restart: &none,
            ..ctx
        };
        let r = apply(&ctx, &[ConfigEntry::new("on-demand:max-size", "1")]).unwrap();
        assert!(r.restart_required && !r.restarted);
    }
}
