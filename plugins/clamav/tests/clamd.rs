//! Integration tests against a real clamd (started per test by tests/clamd/start-clamd.sh).
//!
//! Every test builds its own small tree; the 20k-file tree belongs to the benchmark
//! (examples/bench_clamav.rs), not here.

mod support;

use std::fs;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use armadito_backend_clamav::clamd::{Client, Endpoint, Timeouts, Verdict};
use armadito_backend_clamav::scan::ScanObserver;
use armadito_backend_clamav::{BackendError, ClamavBackend};
use armadito_plugin_api::model::{
    AlertsQuery, ConfigEntry, ErrorKind, FileResult, FileStatus, OnOff, ScanProgress, ScanRequest,
    ScanResult, ServiceStatus, UpdateStatus,
};
use serde_json::{Value, json};
use support::{Clamd, ClamdOptions, Tree, eicar, is_root};

/// Records progress; optionally acts on the first event.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<ScanProgress>>,
    cancel_after: Option<usize>,
    on_first: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl ScanObserver for Recorder {
    fn on_progress(&self, p: &ScanProgress) -> bool {
        if let Some(f) = self.on_first.lock().unwrap().take() {
            f();
        }
        let mut events = self.events.lock().unwrap();
        events.push(p.clone());
        self.cancel_after.is_none_or(|n| events.len() < n)
    }
}

fn backend(clamd: &Clamd, extra: Value) -> ClamavBackend {
    let mut settings = clamd.settings();
    if let (Some(s), Some(e)) = (settings.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    ClamavBackend::from_json(&settings).expect("settings")
}

fn request(paths: &[&Path]) -> ScanRequest {
    ScanRequest {
        paths: paths
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect(),
        per_file_results: true,
        ..Default::default()
    }
}

fn file<'a>(r: &'a ScanResult, path: &Path) -> &'a FileResult {
    let p = path.to_string_lossy();
    r.files
        .iter()
        .find(|f| f.path == p)
        .unwrap_or_else(|| panic!("no result for {p} in {:#?}", r.files))
}

#[test]
fn clean_file_and_eicar_by_path_over_unix_and_tcp() {
    let clamd = Clamd::start();
    let tree = Tree::new();
    let clean = tree.file("docs/clean.txt", b"hello, clean world\n");
    let bad = tree.file("docs/sub/eicar.com", &eicar());
    let empty = tree.file("empty", b"");

    for extra in [
        json!({}),
        json!({"socket": null, "tcp": clamd.tcp()}),
        json!({"scan_mode": "fildes"}),
    ] {
        let b = backend(&clamd, extra.clone());
        let rec = Recorder::default();
        let r = b.scan(&request(&[tree.path()]), &rec).expect("scan");
        assert_eq!(
            (r.scanned, r.malware, r.errors),
            (3, 1, 0),
            "{extra} {r:#?}"
        );
        assert!(!r.cancelled);
        assert_eq!(file(&r, &clean).status, FileStatus::Clean);
        assert_eq!(file(&r, &empty).status, FileStatus::Clean);
        let f = file(&r, &bad);
        assert_eq!(f.status, FileStatus::Malware);
        assert!(
            f.threat_name.as_deref().unwrap().starts_with("Test.EICAR"),
            "{f:?}"
        );
        assert_eq!(r.detections.len(), 1);
        assert_eq!(r.detections[0].file_path, bad.to_string_lossy());
        assert!(r.duration_secs > 0.0 && r.end_time >= r.start_time);
        // Progress: the last event is complete and carried the detection once.
        let events = rec.events.lock().unwrap();
        let last = events.last().expect("progress events");
        assert_eq!(last.percent, Some(100));
        assert_eq!(last.files_scanned, 3);
        let streamed: usize = events.iter().map(|e| e.new_detections.len()).sum();
        assert_eq!(streamed, 1);
    }
}

#[test]
fn eicar_only_readable_by_the_agent_uses_fildes_or_instream() {
    if !is_root() {
        eprintln!("skipped: needs root (clamd must run as another user than the agent)");
        return;
    }
    let clamd = Clamd::start();
    let tree = Tree::new();
    let secret = tree.file("secret.com", &eicar());
    tree.chmod("secret.com", 0o600);
    let hidden = tree.file("private/inside.com", &eicar());
    let secret_clean = tree.file("private/notes.txt", b"nothing to see");
    tree.chmod("private", 0o700);

    // Prove the premise: clamd itself cannot open them by path.
    let client = Client::new(Endpoint::Unix(clamd.socket.clone()), Timeouts::default());
    let replies = client.scan_path(&secret).unwrap();
    assert!(
        matches!(&replies[0].verdict, Verdict::Error(m) if m.contains("denied")),
        "{replies:?}"
    );

    for (extra, via) in [
        (json!({}), "FILDES"),
        (json!({"socket": null, "tcp": clamd.tcp()}), "INSTREAM"),
    ] {
        let b = backend(&clamd, extra);
        let r = b
            .scan(&request(&[tree.path()]), &Recorder::default())
            .unwrap();
        assert_eq!((r.malware, r.errors), (2, 0), "{via}: {r:#?}");
        assert_eq!(file(&r, &secret).status, FileStatus::Malware, "{via}");
        assert_eq!(file(&r, &hidden).status, FileStatus::Malware, "{via}");
        assert_eq!(file(&r, &secret_clean).status, FileStatus::Clean, "{via}");
    }
    // Without fallback the permission problem is reported per file, not as a failure.
    let b = backend(&clamd, json!({"scan_fallback": false}));
    let r = b
        .scan(&request(&[tree.path()]), &Recorder::default())
        .unwrap();
    assert_eq!(r.errors, 3, "{r:#?}");
    assert!(
        file(&r, &secret)
            .message
            .as_deref()
            .unwrap()
            .contains("denied")
    );
}

#[test]
fn file_over_stream_max_length() {
    let clamd = Clamd::start(); // StreamMaxLength 1M
    let tree = Tree::new();
    let mut big = vec![b'a'; 2 * 1024 * 1024];
    big.extend_from_slice(&eicar());
    let readable = tree.file("big-readable.bin", &big);

    // By path clamd reads the file itself: StreamMaxLength does not apply.
    let b = backend(&clamd, json!({}));
    let r = b
        .scan(&request(&[&readable]), &Recorder::default())
        .unwrap();
    assert_eq!(file(&r, &readable).status, FileStatus::Malware, "{r:#?}");

    // Streamed (INSTREAM mode, or TCP fallback): not sent, reported as an error.
    let b = backend(&clamd, json!({"scan_mode": "instream"}));
    let small = tree.file("small.com", &eicar());
    let r = b
        .scan(&request(&[&readable, &small]), &Recorder::default())
        .unwrap();
    let f = file(&r, &readable);
    assert_eq!(f.status, FileStatus::Error);
    assert!(
        f.message.as_deref().unwrap().contains("StreamMaxLength"),
        "{f:?}"
    );
    assert_eq!(file(&r, &small).status, FileStatus::Malware);
    let log = fs::read_to_string(clamd.log_path()).unwrap();
    assert!(
        !log.contains("INSTREAM: Size limit"),
        "the agent must not exceed the limit"
    );

    // The protocol-level limit is real: a raw 2 MiB INSTREAM is refused by clamd.
    let client = Client::new(Endpoint::Unix(clamd.socket.clone()), Timeouts::default());
    let reply = client.instream(&mut &big[..]).unwrap();
    assert!(
        matches!(&reply.verdict, Verdict::Error(m) if m.contains("size limit")),
        "{reply:?}"
    );
}

#[test]
fn missing_path_and_special_files_are_per_file_results() {
    let clamd = Clamd::start();
    let tree = Tree::new();
    let ok = tree.file("ok.txt", b"fine");
    let fifo = tree.path().join("pipe");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let missing = tree.path().join("does-not-exist");
    let b = backend(&clamd, json!({}));
    let r = b
        .scan(&request(&[tree.path(), &missing]), &Recorder::default())
        .unwrap();
    assert_eq!(file(&r, &ok).status, FileStatus::Clean);
    assert_eq!(file(&r, &fifo).status, FileStatus::Ignored);
    let m = file(&r, &missing);
    assert_eq!(m.status, FileStatus::Error);
    assert!(
        m.message.as_deref().unwrap().contains("No such file"),
        "{m:?}"
    );
    assert_eq!((r.scanned, r.errors), (1, 1));
}

/// Scan as `nobody` so a directory can be unreadable to the agent itself.
#[test]
fn unreadable_directory_is_reported_and_the_scan_goes_on() {
    const CHILD: &str = "ARMADITO_UNREADABLE_DIR_CHILD";
    if let Ok(spec) = std::env::var(CHILD) {
        // Child: run the scan with the settings and tree the parent prepared.
        let v: Value = serde_json::from_str(&spec).unwrap();
        let b = ClamavBackend::from_json(&v["settings"]).unwrap();
        let root = Path::new(v["root"].as_str().unwrap());
        let r = b.scan(&request(&[root]), &Recorder::default()).unwrap();
        let locked = file(&r, &root.join("locked"));
        assert_eq!(locked.status, FileStatus::Error);
        assert!(
            locked
                .message
                .as_deref()
                .unwrap()
                .contains("Permission denied"),
            "{locked:?}"
        );
        assert_eq!(file(&r, &root.join("open.txt")).status, FileStatus::Clean);
        assert_eq!(file(&r, &root.join("open.com")).status, FileStatus::Malware);
        assert_eq!((r.scanned, r.errors), (2, 1), "{r:#?}");
        return;
    }
    let clamd = Clamd::start();
    let tree = Tree::new();
    tree.file("open.txt", b"readable");
    tree.file("open.com", &eicar());
    tree.file("locked/inside.txt", b"unreachable");
    tree.chmod("locked", 0o000);
    let spec = json!({"settings": clamd.settings(), "root": tree.path()}).to_string();
    let exe = std::env::current_exe().unwrap();
    // The checkout may not be reachable by nobody (e.g. under /root): run a copy from /tmp.
    let bin_dir = Tree::new();
    let copy = bin_dir.path().join("scan-as-nobody");
    fs::copy(&exe, &copy).unwrap();
    fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut cmd = if is_root() {
        // root reads everything: drop to nobody for the scan (clamd's socket is 0666).
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(&copy);
        c
    } else {
        std::process::Command::new(&copy)
    };
    let out = cmd
        .args([
            "--exact",
            "unreadable_directory_is_reported_and_the_scan_goes_on",
            "--nocapture",
        ])
        .env(CHILD, spec)
        .output()
        .unwrap();
    tree.chmod("locked", 0o755);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("1 passed"), "child ran the test: {text}");
}

fn many_files(tree: &Tree, n: usize) {
    for i in 0..n {
        tree.file(
            &format!("d{}/f{i}.txt", i % 20),
            format!("file number {i}\n").as_bytes(),
        );
    }
}

#[test]
fn clamd_stopped_mid_scan_fails_fast_with_a_clear_error() {
    let mut clamd = Clamd::start();
    let tree = Tree::new();
    many_files(&tree, 3000);
    let b = backend(&clamd, json!({"scan_connections": 2, "scan_pipeline": 4}));
    let pids = [clamd.pid];
    let rec = Recorder {
        on_first: Mutex::new(Some(Box::new(move || {
            for pid in pids {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }))),
        ..Default::default()
    };
    let start = Instant::now();
    let err = b.scan(&request(&[tree.path()]), &rec).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let text = err.to_string();
    assert!(text.contains("scan aborted after"), "{text}");
    assert!(
        text.contains(&clamd.socket.to_string_lossy().into_owned()),
        "{text}"
    );
    clamd.kill();
    // And a new scan says clamd is down, naming the socket.
    let err = b
        .scan(&request(&[tree.path()]), &Recorder::default())
        .unwrap_err();
    assert!(matches!(err, BackendError::Clamd(_)));
    assert!(
        err.to_string().starts_with("clamd not reachable at "),
        "{err}"
    );
    assert_eq!(b.state().service_status, ServiceStatus::Stopped);
}

#[test]
fn cancel_stops_early_with_partial_counts() {
    let clamd = Clamd::start();
    let tree = Tree::new();
    many_files(&tree, 3000);
    let b = backend(&clamd, json!({"scan_connections": 1, "scan_pipeline": 2}));
    let rec = Recorder {
        cancel_after: Some(1),
        ..Default::default()
    };
    let r = b.scan(&request(&[tree.path()]), &rec).unwrap();
    assert!(r.cancelled);
    assert!(r.scanned < 3000, "stopped early: {}", r.scanned);
    assert_eq!(rec.events.lock().unwrap().len(), 1, "no event after cancel");

    // The observer's is_cancelled flag works too, from the first poll.
    struct Flag(AtomicBool);
    impl ScanObserver for Flag {
        fn on_progress(&self, _: &ScanProgress) -> bool {
            true
        }
        fn is_cancelled(&self) -> bool {
            self.0.load(Ordering::Relaxed)
        }
    }
    let r = b
        .scan(&request(&[tree.path()]), &Flag(AtomicBool::new(true)))
        .unwrap();
    assert!(r.cancelled && r.scanned < 3000);
    // clamd is still fine afterwards.
    let r = b
        .scan(&request(&[&tree.path().join("d1")]), &Recorder::default())
        .unwrap();
    assert_eq!((r.scanned, r.cancelled), (150, false));
}

#[test]
fn version_with_and_without_daily_db() {
    let clamd = Clamd::start();
    let st = backend(&clamd, json!({})).state();
    assert_eq!(st.product_name, "ClamAV");
    assert_eq!(st.service_status, ServiceStatus::Running);
    assert!(st.product_version.starts_with("1."), "{st:?}");
    let daily = st
        .modules
        .iter()
        .find(|m| m.name == "daily")
        .expect("daily module");
    assert_eq!(daily.version.as_deref(), Some("27000"));
    assert_eq!(daily.status, UpdateStatus::UpToDate, "db built just now");
    assert_eq!(st.update_status, UpdateStatus::UpToDate);
    let age = armadito_backend_clamav::timeutil::now() - st.last_update.unwrap();
    assert!((0..600).contains(&age), "db time is now-ish: {age}");
    assert_eq!(st.realtime, OnOff::Off, "no clamonacc here");
    let attrs: Vec<_> = st.details.iter().map(|d| d.attr.as_str()).collect();
    for a in [
        "engine_version",
        "daily_version",
        "threads_max",
        "queue_items",
    ] {
        assert!(attrs.contains(&a), "{a} in {attrs:?}");
    }

    // With thresholds of zero days, the same db is already critical... after 1 s.
    let strict = backend(
        &clamd,
        json!({"update_late_days": 0, "update_critical_days": 0}),
    );
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(strict.state().update_status, UpdateStatus::Critical);

    let bare = Clamd::start_with(ClamdOptions {
        no_daily: true,
        ..Default::default()
    });
    let st = backend(&bare, json!({})).state();
    assert_eq!(st.service_status, ServiceStatus::Running);
    assert!(st.modules.is_empty(), "{:?}", st.modules);
    assert_eq!(st.update_status, UpdateStatus::NonAvailable);
    assert_eq!(st.last_update, None);
}

#[test]
fn config_read_and_apply_with_restart() {
    let clamd = Clamd::start();
    let b = backend(&clamd, json!({}));
    let entries = b.config_get().unwrap();
    let get = |entries: &[ConfigEntry], k: &str| {
        entries
            .iter()
            .find(|e| e.attr == k)
            .map(|e| e.value.clone())
    };
    assert_eq!(get(&entries, "StreamMaxLength"), Some(json!(1_048_576)));
    assert_eq!(get(&entries, "LogTime"), Some(json!(true)));
    assert_eq!(get(&entries, "MaxThreads"), Some(json!(4)));
    assert_eq!(get(&entries, "TCPAddr"), Some(json!(["127.0.0.1"])));
    assert!(
        entries
            .iter()
            .find(|e| e.attr == "VirusEvent")
            .unwrap()
            .read_only
    );

    let client = Client::new(Endpoint::Unix(clamd.socket.clone()), Timeouts::default());
    let two_megs = vec![b'z'; 2 * 1024 * 1024];
    let before = client.instream(&mut &two_megs[..]).unwrap();
    assert!(matches!(before.verdict, Verdict::Error(_)), "{before:?}");

    let old_pid = clamd.current_pid();
    let original = fs::read_to_string(clamd.conf_path()).unwrap();
    let report = b
        .config_set(&[
            ConfigEntry::new("StreamMaxLength", "4M"),
            ConfigEntry::new("MaxThreads", 4),
            ConfigEntry::new("VirusEvent", "/bin/evil"),
            ConfigEntry::new("NoSuchOption", 1),
        ])
        .unwrap();
    assert_eq!(report.applied, ["StreamMaxLength"]);
    assert_eq!(report.unchanged, ["MaxThreads"]);
    assert_eq!(report.rejected.len(), 2);
    assert!(report.restarted && !report.restart_required);
    assert_ne!(clamd.current_pid(), old_pid, "clamd was restarted");
    let text = fs::read_to_string(clamd.conf_path()).unwrap();
    assert_eq!(
        text,
        original.replace("StreamMaxLength 1M", "StreamMaxLength 4M")
    );
    // The new limit is live.
    let after = client.instream(&mut &two_megs[..]).unwrap();
    assert_eq!(after.verdict, Verdict::Clean);
}

/// Issue 12 item 2: a hostile server cannot make every open() on the host fail while clamd is
/// down, blind scanning, or relax clamd's trust: only allow-listed tuning options are applied.
#[test]
fn remote_config_cannot_block_the_host_or_blind_clamd() {
    let clamd = Clamd::start();
    let b = backend(&clamd, json!({}));
    let old_pid = clamd.current_pid();
    let original = fs::read_to_string(clamd.conf_path()).unwrap();
    let hostile = [
        ConfigEntry::new("OnAccessPrevention", true),
        ConfigEntry::new("OnAccessDenyOnError", true),
        ConfigEntry::new("OnAccessMountPath", json!(["/"])),
        ConfigEntry::new("OnAccessIncludePath", json!(["/"])),
        ConfigEntry::new("ExcludePath", json!(["^/"])),
        ConfigEntry::new("BytecodeUnsigned", true),
        ConfigEntry::new("LeaveTemporaryFiles", true),
        ConfigEntry::new("Debug", true),
        ConfigEntry::new("LogFile", "/etc/passwd"),
        ConfigEntry::new("FollowDirectorySymlinks", true),
    ];
    let report = b.config_set(&hostile).unwrap();
    assert!(report.applied.is_empty(), "{report:?}");
    assert_eq!(report.rejected.len(), hostile.len(), "{report:?}");
    for r in &report.rejected {
        assert!(r.reason.contains("not changeable remotely"), "{r:?}");
    }
    assert!(!report.restarted);
    assert_eq!(fs::read_to_string(clamd.conf_path()).unwrap(), original);
    assert_eq!(clamd.current_pid(), old_pid, "clamd was not restarted");
    // and they are reported read-only
    let entries = b.config_get().unwrap();
    assert!(
        entries
            .iter()
            .filter(|e| e.attr == "LogFile")
            .all(|e| e.read_only)
    );
    assert!(
        entries
            .iter()
            .filter(|e| e.attr == "MaxThreads")
            .all(|e| !e.read_only)
    );
}

#[test]
fn alerts_from_log_and_virusevent_with_cursor() {
    let clamd = Clamd::start();
    let b = backend(&clamd, json!({}));
    // Install the plugin's own VirusEvent hook (rewrites clamd.conf, restarts clamd).
    // The harness configured its own VirusEvent: not replaced without force.
    let err = b.install_virusevent_hook(false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("virusevent.sh"), "{err}");
    let outcome = b.install_virusevent_hook(true).unwrap();
    assert!(outcome.report.restarted, "{:?}", outcome.report);
    let conf = fs::read_to_string(clamd.conf_path()).unwrap();
    assert!(
        conf.contains("VirusEvent ") && conf.contains("hook/virusevent-hook.sh"),
        "{conf}"
    );
    // Idempotent: a second install changes nothing and does not restart.
    let again = b.install_virusevent_hook(false).unwrap();
    assert!(again.report.applied.is_empty() && !again.report.restarted);

    let tree = Tree::new();
    let one = tree.file("one.com", &eicar());
    tree.file("clean.txt", b"ok");
    b.scan(&request(&[tree.path()]), &Recorder::default())
        .unwrap();

    // The hook runs asynchronously in clamd: wait for the spool line.
    // clamd runs the hook and writes its log line asynchronously (the log line may even
    // come after the hook): wait for both.
    let spool = clamd.dir.join("events/spool");
    let log = clamd.log_path();
    wait_for(&clamd, || {
        fs::read_to_string(&spool).is_ok_and(|s| s.contains("one.com"))
    });
    wait_for(&clamd, || {
        fs::read_to_string(&log).is_ok_and(|s| s.contains("one.com"))
    });

    let page = b.alerts(&AlertsQuery::default()).unwrap();
    let hits: Vec<_> = page
        .detections
        .iter()
        .map(|d| d.file_path.clone())
        .collect();
    assert_eq!(
        hits,
        [one.to_string_lossy()],
        "log + VirusEvent folded into one: {page:#?}"
    );
    let d = &page.detections[0];
    assert!(d.threat_name.starts_with("Test.EICAR") && !d.threat_name.contains('('));
    assert!(!page.more);
    let cursor = page.next_cursor.clone();

    // Nothing new: nothing returned.
    let again = b.alerts(&AlertsQuery {
        cursor: cursor.clone(),
        ..Default::default()
    });
    assert!(again.unwrap().detections.is_empty());

    // Rotate the log the logrotate way (rename + SIGHUP to reopen), then a new detection.
    fs::rename(&log, log.with_extension("log.1")).unwrap();
    let pid = clamd.current_pid().unwrap();
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let two = tree.file("two.com", &eicar());
    b.scan(&request(&[&two]), &Recorder::default()).unwrap();
    wait_for(&clamd, || {
        fs::read_to_string(&spool).is_ok_and(|s| s.contains("two.com"))
    });
    wait_for(&clamd, || {
        fs::read_to_string(&log).is_ok_and(|s| s.contains("two.com"))
    });
    let page = b
        .alerts(&AlertsQuery {
            cursor,
            ..Default::default()
        })
        .unwrap();
    let hits: Vec<_> = page
        .detections
        .iter()
        .map(|d| d.file_path.clone())
        .collect();
    assert_eq!(hits, [two.to_string_lossy()], "{page:#?}");

    // Each source alone also sees each detection exactly once.
    for source in ["log", "virusevent"] {
        let only = backend(&clamd, json!({"alert_sources": [source]}));
        let p = only.alerts(&AlertsQuery::default()).unwrap();
        let mut hits: Vec<_> = p.detections.iter().map(|d| d.file_path.clone()).collect();
        hits.sort();
        let expected = if source == "log" {
            // Only the current log: one.com went to clamd.log.1 before the cursor-less
            // read (a cursor-less read starts at the live file).
            vec![two.to_string_lossy().into_owned()]
        } else {
            vec![
                one.to_string_lossy().into_owned(),
                two.to_string_lossy().into_owned(),
            ]
        };
        assert_eq!(
            hits,
            expected,
            "{source}: {}",
            fs::read_to_string(&log).unwrap_or_default()
        );
    }
}

fn wait_for(clamd: &Clamd, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "condition not met within 10 s; clamd log:\n{}",
            fs::read_to_string(clamd.log_path()).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn session_pipelining_handles_duplicate_replies() {
    // Protocol fact: clamd answers some requests twice inside IDSESSION.
    let clamd = Clamd::start();
    let client = Client::new(Endpoint::Unix(clamd.socket.clone()), Timeouts::default());
    let mut session = client.session().unwrap();
    let missing = session.queue_scan(Path::new("/nonexistent/file"));
    let ping = session.queue_ping();
    session.flush().unwrap();
    session.end().unwrap();
    let mut replies = Vec::new();
    while let Some(r) = session.recv().unwrap() {
        replies.push(r);
    }
    use armadito_backend_clamav::clamd::session::SessionReply;
    let for_missing = replies
        .iter()
        .filter(|r| matches!(r, SessionReply::Tagged(id, _) if *id == missing))
        .count();
    assert!(for_missing >= 2, "clamd repeats path errors: {replies:?}");
    assert!(replies.contains(&SessionReply::Tagged(ping, "PONG".into())));

    // A pipelined scan still gives exactly one result per file, whatever clamd repeats.
    if !is_root() {
        return; // files clamd cannot reach need clamd to run as another user
    }
    let tree = Tree::new();
    for i in 0..40 {
        tree.file(&format!("open/f{i}"), b"x");
        tree.file(&format!("shut/f{i}"), b"x");
    }
    tree.chmod("shut", 0o700);
    let b = backend(
        &clamd,
        json!({"scan_connections": 1, "scan_pipeline": 8, "scan_fallback": false}),
    );
    let r = b
        .scan(&request(&[tree.path()]), &Recorder::default())
        .unwrap();
    assert_eq!((r.scanned, r.errors, r.files.len()), (40, 40, 80), "{r:#?}");
    let mut paths: Vec<_> = r.files.iter().map(|f| f.path.as_str()).collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), 80, "one result per file");
}

/// A process pretending to be clamd: answers PING, swallows INSTREAM data and answers
/// `stream: OK`, and records every byte and connection it gets.
struct FakeClamd {
    received: std::sync::Arc<Mutex<Vec<u8>>>,
    connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<AtomicBool>,
}

impl FakeClamd {
    fn serve<S: std::io::Read + std::io::Write>(mut s: S, received: &Mutex<Vec<u8>>) {
        let mut all = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
            if all.starts_with(b"zPING\0") {
                let _ = s.write_all(b"PONG\0");
                break;
            }
            if all.starts_with(b"zINSTREAM\0") && all.ends_with(&[0, 0, 0, 0]) {
                let _ = s.write_all(b"stream: OK\0");
                break;
            }
        }
        received.lock().unwrap().extend_from_slice(&all);
    }

    fn start(listener: impl FnMut() -> Option<Box<dyn ReadWrite>> + Send + 'static) -> FakeClamd {
        let received = std::sync::Arc::new(Mutex::new(Vec::new()));
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (r, c, st) = (received.clone(), connections.clone(), stop.clone());
        let mut accept = listener;
        std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match accept() {
                    Some(s) => {
                        c.fetch_add(1, Ordering::SeqCst);
                        FakeClamd::serve(s, &r);
                    }
                    None => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FakeClamd {
            received,
            connections,
            stop,
        }
    }

    fn unix(path: &Path) -> FakeClamd {
        let l = std::os::unix::net::UnixListener::bind(path).expect("bind fake socket");
        l.set_nonblocking(true).unwrap();
        FakeClamd::start(move || {
            let (s, _) = l.accept().ok()?;
            s.set_nonblocking(false).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
            Some(Box::new(s))
        })
    }

    fn tcp(addr: &str) -> FakeClamd {
        let l = std::net::TcpListener::bind(addr)
            .unwrap_or_else(|e| panic!("this test needs {addr} free: {e}"));
        l.set_nonblocking(true).unwrap();
        FakeClamd::start(move || {
            let (s, _) = l.accept().ok()?;
            s.set_nonblocking(false).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
            Some(Box::new(s))
        })
    }
}

trait ReadWrite: std::io::Read + std::io::Write + Send {}
impl<T: std::io::Read + std::io::Write + Send> ReadWrite for T {}

impl Drop for FakeClamd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Issue 12 item 6: when clamd is down, a local user who puts their own socket where clamd's
/// was must not receive the root-only files the agent streams (INSTREAM) or passes (FILDES).
#[test]
fn a_socket_of_another_user_where_clamd_was_gets_no_file_contents() {
    assert!(
        is_root(),
        "this test needs root (it chowns a socket to nobody)"
    );
    let mut clamd = Clamd::start();
    let tree = Tree::new();
    let secret = tree.file("secret.txt", b"ROOT-ONLY-SECRET-4242\n");
    tree.chmod("secret.txt", 0o600);
    let b = backend(&clamd, json!({"scan_mode": "instream"}));
    // the premise: the real clamd gets the file and answers
    let r = b.scan(&request(&[&secret]), &Recorder::default()).unwrap();
    assert_eq!(file(&r, &secret).status, FileStatus::Clean);

    clamd.kill();
    let _ = fs::remove_file(&clamd.socket);
    let fake = FakeClamd::unix(&clamd.socket);
    let nobody = 65534;
    std::os::unix::fs::chown(&clamd.socket, Some(nobody), Some(nobody)).unwrap();

    let err = b
        .scan(&request(&[&secret]), &Recorder::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("refusing the socket"), "{err}");
    assert!(err.contains("not known to be clamd"), "{err}");
    let got = fake.received.lock().unwrap().clone();
    assert!(
        !got.windows(16).any(|w| w == b"ROOT-ONLY-SECRET"),
        "the fake clamd received the root-only file"
    );
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    assert_eq!(b.state().service_status, ServiceStatus::Stopped);
}

/// Issue 12 item 6: with no TCP configured anywhere, nobody listening on clamd's default port
/// 127.0.0.1:3310 is ever contacted.
#[test]
fn the_default_tcp_port_is_never_tried_unless_configured() {
    let clamd = Clamd::start();
    let conf = clamd.dir.join("no-tcp.conf");
    fs::write(
        &conf,
        format!("LocalSocket {}/gone.sock\n", clamd.dir.display()),
    )
    .unwrap();
    let fake = FakeClamd::tcp("127.0.0.1:3310");
    let b = ClamavBackend::from_json(&json!({
        "clamd_conf": conf,
        "connect_timeout_ms": 1000,
        "read_timeout_ms": 3000,
    }))
    .unwrap();
    assert!(b.client().is_err());
    assert_eq!(b.state().service_status, ServiceStatus::Stopped);
    assert_eq!(
        fake.connections.load(Ordering::SeqCst),
        0,
        "the agent talked to 127.0.0.1:3310"
    );
}

/// Issue 12 item 3: a restart that hangs cannot make the apply outlive its budget (the agent
/// would kill the plugin mid-rollback): the previous clamd.conf is back before the budget ends.
#[test]
fn a_hung_restart_is_rolled_back_within_the_apply_budget() {
    let clamd = Clamd::start();
    let original = fs::read_to_string(clamd.conf_path()).unwrap();
    let b = backend(
        &clamd,
        json!({
            "restart_command": ["/bin/sleep", "1000"],
            "restart_timeout_secs": 60,
            "apply_timeout_secs": 4,
        }),
    );
    let started = Instant::now();
    let err = b
        .config_set(&[ConfigEntry::new("MaxThreads", 8)])
        .unwrap_err()
        .to_string();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "took {took:?}: {err}");
    assert!(err.contains("previous clamd.conf restored"), "{err}");
    assert_eq!(fs::read_to_string(clamd.conf_path()).unwrap(), original);
    assert!(
        !armadito_backend_clamav::config::apply::backup_path(&clamd.conf_path()).exists(),
        "no backup left behind"
    );
    assert!(b.client().is_ok(), "clamd still runs with the old file");
}

/// Issue 12 item 14: clamd logs file names raw, so a user who names a detected file
/// `evil\n<ctime> -> /home/ceo/report.docx` gets a log line that reads as a detection in the
/// CEO's file at a chosen time. The agent reports the real path and time instead.
#[test]
fn a_newline_in_a_file_name_cannot_forge_a_detection_in_clamds_log() {
    let clamd = Clamd::start();
    let b = backend(&clamd, json!({"alert_sources": ["log"]}));
    let tree = Tree::new();
    let forged = "evil\nMon Jan  5 03:00:00 2026 -> /home/ceo/report.docx";
    let file = tree.file(forged, &eicar());
    let r = b.scan(&request(&[&file]), &Recorder::default()).unwrap();
    assert_eq!(r.malware, 1, "{r:#?}");
    let log = clamd.log_path();
    wait_for(&clamd, || {
        fs::read_to_string(&log).is_ok_and(|s| s.contains("report.docx"))
    });
    // the premise: clamd really wrote the forged-looking line
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.lines().any(
            |l| l.starts_with("Mon Jan  5 03:00:00 2026 -> /home/ceo/report.docx: ")
                && l.ends_with(" FOUND")
        ),
        "{text}"
    );
    let page = b.alerts(&AlertsQuery::default()).unwrap();
    let hits: Vec<_> = page
        .detections
        .iter()
        .filter(|d| d.file_path.contains("report.docx"))
        .collect();
    assert!(!hits.is_empty(), "{page:#?}");
    for d in hits {
        assert_eq!(d.file_path, file.to_string_lossy(), "{d:?}");
        assert!(
            (d.detection_time - armadito_backend_clamav::timeutil::now()).abs() < 600,
            "the real time, not the forged one: {d:?}"
        );
    }
}
