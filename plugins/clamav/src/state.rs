//! Backend state: clamd service, engine and signature versions, freshness, load, on-access.
//!
//! Sources (docs/backends.md §B.8): `PING`, `VERSION` (engine + loaded daily db), `STATS`,
//! the headers of the db files in DatabaseDirectory (main/daily/bytecode, readable even when
//! clamd is down), clamd.conf (`OnAccessIncludePath`) and the process table (clamonacc).
//!
//! Invariants:
//! * `collect` never fails: an unreachable clamd is a state (`stopped`, with the reason in
//!   the details), not an error; every source is optional.
//! * The db date clamd reports (what is *loaded*) wins over the file headers (what is on
//!   disk); the headers fill in when clamd is down.
//! * Freshness uses the configured thresholds: age > critical days → `critical`,
//!   > late days → `late`, else `up-to-date`; no date → `non-available`.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use armadito_plugin_api::model::{
    BackendState, Detail, ModuleInfo, OnOff, ServiceStatus, UpdateStatus,
};

use crate::clamd::{ClamdError, Client};
use crate::config::ClamdConf;

/// Where Debian keeps signatures when clamd.conf says nothing.
pub const DEFAULT_DB_DIR: &str = "/var/lib/clamav";

#[derive(Debug, Clone)]
pub struct StateOptions {
    pub late_days: u32,
    pub critical_days: u32,
    /// Executable of the on-access scanner (`/usr/sbin/clamonacc`), run by root.
    pub onaccess_executable: PathBuf,
    /// `/proc`, replaceable in tests.
    pub proc_root: PathBuf,
}

impl Default for StateOptions {
    fn default() -> Self {
        StateOptions {
            late_days: 3,
            critical_days: 7,
            onaccess_executable: PathBuf::from("/usr/sbin/clamonacc"),
            proc_root: PathBuf::from("/proc"),
        }
    }
}

/// Freshness of signatures built at `db_time`.
pub fn update_status(db_time: Option<i64>, now: i64, opts: &StateOptions) -> UpdateStatus {
    let Some(t) = db_time else {
        return UpdateStatus::NonAvailable;
    };
    let age = now - t;
    if age > opts.critical_days as i64 * 86_400 {
        UpdateStatus::Critical
    } else if age > opts.late_days as i64 * 86_400 {
        UpdateStatus::Late
    } else {
        UpdateStatus::UpToDate
    }
}

/// Header of a `.cvd`/`.cld`/`.cud` file:
/// `ClamAV-VDB:<date>:<version>:<sigs>:<flevel>:<md5>:<dsig>:<builder>:<stime>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbHeader {
    pub version: u64,
    pub signatures: Option<u64>,
    /// Build time, unix seconds (the header's last field).
    pub build_time: Option<i64>,
}

pub fn parse_db_header(head: &[u8]) -> Option<DbHeader> {
    let text = String::from_utf8_lossy(head);
    let text = text.trim_end_matches(['\0', ' ', '\n']);
    let fields: Vec<&str> = text.split(':').collect();
    if fields.first() != Some(&"ClamAV-VDB") || fields.len() < 4 {
        return None;
    }
    Some(DbHeader {
        version: fields.get(2)?.trim().parse().ok()?,
        signatures: fields.get(3).and_then(|s| s.trim().parse().ok()),
        build_time: fields
            .get(8)
            .and_then(|s| s.trim().trim_end_matches(char::is_whitespace).parse().ok()),
    })
}

/// Read the headers of the main/daily/bytecode databases in `dir` (the newest file per
/// base when several extensions exist).
pub fn db_modules(dir: &Path) -> Vec<(String, DbHeader)> {
    let mut found: Vec<(String, DbHeader)> = Vec::new();
    for base in ["main", "daily", "bytecode"] {
        let mut best: Option<DbHeader> = None;
        for ext in ["cld", "cvd", "cud"] {
            let path = dir.join(format!("{base}.{ext}"));
            let mut head = [0u8; 512];
            let Ok(mut f) = fs::File::open(&path) else {
                continue;
            };
            let Ok(n) = f.read(&mut head) else { continue };
            if let Some(h) = parse_db_header(&head[..n])
                && best.as_ref().is_none_or(|b| h.version > b.version)
            {
                best = Some(h);
            }
        }
        if let Some(h) = best {
            found.push((base.to_owned(), h));
        }
    }
    found
}

/// Is a process with this exact name running? A hint for messages only: any user can name a
/// process so. `None` when the process table is unreadable.
pub fn process_named(proc_root: &Path, name: &str) -> Option<bool> {
    let entries = fs::read_dir(proc_root).ok()?;
    Some(entries.flatten().any(|e| {
        e.file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
            && fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim_end() == name)
    }))
}

/// Is a process owned by root running `executable`? Judged by `/proc/<pid>/exe` (the file
/// the kernel started, not a name the process can choose) and the owner of `/proc/<pid>`.
/// `None` when the process table is unreadable.
pub fn process_running(proc_root: &Path, executable: &Path) -> Option<bool> {
    use std::os::unix::fs::MetadataExt;
    let entries = fs::read_dir(proc_root).ok()?;
    Some(entries.flatten().any(|e| {
        e.file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
            && fs::metadata(e.path()).is_ok_and(|m| m.uid() == 0)
            && fs::read_link(e.path().join("exe")).is_ok_and(|exe| exe == executable)
    }))
}

/// What clamd answered, or why it did not.
pub struct Probe {
    pub endpoint: Option<String>,
    pub ping: Result<(), ClamdError>,
    pub version: Option<crate::clamd::VersionInfo>,
    pub stats: Option<crate::clamd::Stats>,
}

impl Probe {
    /// Ask clamd (a located client, or the error locating one).
    pub fn run(client: Result<Client, ClamdError>) -> Probe {
        match client {
            Err(e) => Probe {
                endpoint: None,
                ping: Err(e),
                version: None,
                stats: None,
            },
            Ok(c) => {
                let ping = c.ping();
                let up = ping.is_ok();
                Probe {
                    endpoint: Some(c.endpoint().to_string()),
                    ping,
                    version: up.then(|| c.version().ok()).flatten(),
                    stats: up.then(|| c.stats().ok()).flatten(),
                }
            }
        }
    }
}

/// Assemble the state.
pub fn collect(
    probe: Probe,
    conf: Option<&ClamdConf>,
    opts: &StateOptions,
    now: i64,
) -> BackendState {
    let mut st = BackendState {
        product_name: "ClamAV".into(),
        ..BackendState::default()
    };
    let mut details = Vec::new();
    if let Some(ep) = &probe.endpoint {
        details.push(Detail::new("clamd_endpoint", ep.clone()));
    }

    st.service_status = match &probe.ping {
        Ok(()) => ServiceStatus::Running,
        Err(e) => {
            details.push(Detail::new("clamd_error", e.to_string()));
            if process_named(&opts.proc_root, "clamd") == Some(true) {
                // Loading signatures, overloaded, or listening elsewhere: unusable for us
                // either way, but worth telling the admin.
                details.push(Detail::new(
                    "clamd_process",
                    "a clamd process is running but does not answer on the configured endpoints",
                ));
            }
            if conf.is_some() || Path::new("/usr/sbin/clamd").exists() {
                ServiceStatus::Stopped
            } else {
                ServiceStatus::NotInstalled
            }
        }
    };

    // Signature bases on disk.
    let db_dir = conf
        .and_then(|c| c.get("DatabaseDirectory"))
        .map_or_else(|| PathBuf::from(DEFAULT_DB_DIR), PathBuf::from);
    let mut modules: Vec<ModuleInfo> = db_modules(&db_dir)
        .into_iter()
        .map(|(name, h)| ModuleInfo {
            status: update_status(h.build_time, now, opts),
            update_time: h.build_time,
            version: Some(h.version.to_string()),
            name,
        })
        .collect();

    // What clamd has loaded overrides the daily entry.
    let mut last_update = None;
    if let Some(v) = &probe.version {
        st.product_version = v.engine.clone();
        details.push(Detail::new("engine_version", v.engine.clone()));
        if let Some(dbv) = v.db_version {
            details.push(Detail::new("daily_version", dbv));
            let daily = ModuleInfo {
                name: "daily".into(),
                status: update_status(v.db_time, now, opts),
                update_time: v.db_time,
                version: Some(dbv.to_string()),
            };
            match modules.iter_mut().find(|m| m.name == "daily") {
                Some(m) => *m = daily,
                None => modules.push(daily),
            }
            last_update = v.db_time;
        }
        if let Some(text) = &v.db_time_text {
            details.push(Detail::new("daily_date", text.clone()));
        }
    }
    if last_update.is_none() {
        // clamd down or no daily loaded: the newest base on disk.
        last_update = modules.iter().filter_map(|m| m.update_time).max();
    }
    st.last_update = last_update;
    st.update_status = update_status(last_update, now, opts);
    st.modules = modules;

    if let Some(s) = &probe.stats {
        if let Some(n) = s.threads_live {
            details.push(Detail::new("threads_live", n));
        }
        if let Some(n) = s.threads_idle {
            details.push(Detail::new("threads_idle", n));
        }
        if let Some(n) = s.threads_max {
            details.push(Detail::new("threads_max", n));
        }
        if let Some(n) = s.queue_items {
            details.push(Detail::new("queue_items", n));
        }
        if let Some(state) = &s.state {
            details.push(Detail::new("pool_state", state.clone()));
        }
    }

    // On-access: clamonacc running *and* something to watch.
    let include: Vec<String> = conf
        .map(|c| {
            c.get_all("OnAccessIncludePath")
                .into_iter()
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let running = process_running(&opts.proc_root, &opts.onaccess_executable);
    st.realtime = match running {
        Some(true) if !include.is_empty() => OnOff::On,
        Some(_) => OnOff::Off,
        None => OnOff::Unknown,
    };
    if let Some(r) = running {
        details.push(Detail::new("onaccess_running", r));
    }
    if !include.is_empty() {
        details.push(Detail::new("onaccess_include_paths", include.join(", ")));
    }
    st.details = details;
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> StateOptions {
        StateOptions::default()
    }

    #[test]
    fn freshness_thresholds() {
        let now = 1_000_000_000;
        let day = 86_400;
        let o = opts();
        assert_eq!(update_status(None, now, &o), UpdateStatus::NonAvailable);
        assert_eq!(
            update_status(Some(now - day), now, &o),
            UpdateStatus::UpToDate
        );
        assert_eq!(
            update_status(Some(now - 3 * day), now, &o),
            UpdateStatus::UpToDate
        );
        assert_eq!(
            update_status(Some(now - 3 * day - 1), now, &o),
            UpdateStatus::Late
        );
        assert_eq!(
            update_status(Some(now - 8 * day), now, &o),
            UpdateStatus::Critical
        );
        let strict = StateOptions {
            late_days: 0,
            critical_days: 1,
            ..opts()
        };
        assert_eq!(
            update_status(Some(now - 2 * day), now, &strict),
            UpdateStatus::Critical
        );
    }

    #[test]
    fn cvd_header() {
        let h = parse_db_header(
            b"ClamAV-VDB:25 Nov 2026 18-46 +0000:27000:1:216:abcdef:X:ci:1795632360      \0\0",
        )
        .unwrap();
        assert_eq!(h.version, 27000);
        assert_eq!(h.signatures, Some(1));
        assert_eq!(h.build_time, Some(1_795_632_360));
        assert!(parse_db_header(b"not a cvd").is_none());
    }

    #[test]
    fn state_with_clamd_down_uses_db_files_and_conf() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        fs::create_dir(&db).unwrap();
        let now = 1_800_000_000;
        fs::write(
            db.join("daily.cvd"),
            format!("ClamAV-VDB:x:27001:5:216:md5:X:ci:{}", now - 5 * 86_400),
        )
        .unwrap();
        fs::write(
            db.join("main.cvd"),
            format!("ClamAV-VDB:x:62:9:216:md5:X:ci:{}", now - 400 * 86_400),
        )
        .unwrap();
        // A fake /proc with clamonacc running.
        let proc_root = dir.path().join("proc");
        fs::create_dir_all(proc_root.join("42")).unwrap();
        std::os::unix::fs::symlink("/usr/sbin/clamonacc", proc_root.join("42/exe")).unwrap();
        let conf = ClamdConf::parse(&format!(
            "DatabaseDirectory {}\nOnAccessIncludePath /home\n",
            db.display()
        ));
        let probe = Probe::run(Err(ClamdError::NoneReachable {
            tried: "/x".into(),
            last: "refused".into(),
        }));
        let st = collect(
            probe,
            Some(&conf),
            &StateOptions {
                proc_root,
                ..opts()
            },
            now,
        );
        assert_eq!(st.service_status, ServiceStatus::Stopped);
        assert_eq!(st.realtime, OnOff::On);
        assert_eq!(
            st.update_status,
            UpdateStatus::Late,
            "newest base is 5 days old"
        );
        assert_eq!(st.last_update, Some(now - 5 * 86_400));
        let main = st.modules.iter().find(|m| m.name == "main").unwrap();
        assert_eq!(main.status, UpdateStatus::Critical);
        assert!(st.details.iter().any(|d| d.attr == "clamd_error"));
    }

    #[test]
    fn onaccess_needs_an_include_path() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("7")).unwrap();
        std::os::unix::fs::symlink("/usr/sbin/clamonacc", dir.path().join("7/exe")).unwrap();
        let st = collect(
            Probe::run(Err(ClamdError::NoneReachable {
                tried: String::new(),
                last: String::new(),
            })),
            Some(&ClamdConf::parse("LogTime yes\n")),
            &StateOptions {
                proc_root: dir.path().into(),
                ..opts()
            },
            0,
        );
        assert_eq!(st.realtime, OnOff::Off);
    }

    /// Issue 12 item 9: a process merely *named* clamonacc (any user can start one) does not
    /// make real-time protection "on": not as another user, not from another executable.
    #[test]
    fn a_process_named_clamonacc_is_not_the_on_access_scanner() {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("clamonacc");
        fs::copy("/bin/sleep", &fake).unwrap();
        let conf = ClamdConf::parse("OnAccessIncludePath /home\n");
        let state = || {
            collect(
                Probe::run(Err(ClamdError::NoneReachable {
                    tried: String::new(),
                    last: String::new(),
                })),
                Some(&conf),
                &opts(),
                0,
            )
            .realtime
        };
        let check = |mut cmd: std::process::Command, who: &str| {
            let mut child = cmd.arg("30").spawn().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(200));
            let comm = fs::read_to_string(format!("/proc/{}/comm", child.id())).unwrap();
            assert_eq!(comm.trim_end(), "clamonacc", "premise: the name matches");
            let got = state();
            let _ = child.kill();
            let _ = child.wait();
            assert_eq!(got, OnOff::Off, "{who}");
        };
        // root, but not the real executable
        check(std::process::Command::new(&fake), "root running a copy");
        // another user running the real clamonacc binary's name (and path, via a copy)
        let mut as_nobody = std::process::Command::new(&fake);
        as_nobody.uid(65534).gid(65534);
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        check(as_nobody, "nobody");
    }
}
