use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use super::*;
use crate::wire::UnixTime;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn creates_private_dir_and_files_and_migrates() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let s = Store::open(&dir).unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(DB_FILE)), 0o600);
    assert_eq!(s.schema_version().unwrap(), migrations::LATEST);
    assert!(s.integrity_ok().unwrap());
    drop(s);
    // reopening is a no-op migration
    assert_eq!(
        Store::open(&dir).unwrap().schema_version().unwrap(),
        migrations::LATEST
    );
}

#[test]
fn loose_dir_is_tightened() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    Store::open(tmp.path()).unwrap();
    assert_eq!(mode(tmp.path()), 0o700);
}

#[test]
fn enrollment_roundtrip_keeps_first_enrollment_time() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Store::open(tmp.path()).unwrap();
    assert_eq!(s.enrollment().unwrap(), None);
    assert_eq!(s.save_enrollment(7, 3, "http://x", "U").unwrap(), None);
    let first = s.enrollment().unwrap().unwrap();
    assert_eq!((first.agent_id, first.scheduler_id), (7, 3));
    let prev = s.save_enrollment(7, 4, "http://x", "U").unwrap().unwrap();
    assert_eq!(prev.scheduler_id, 3);
    assert_eq!(
        s.enrollment().unwrap().unwrap().enrolled_at,
        first.enrolled_at
    );
}

#[test]
fn agent_id_zero_is_refused_by_the_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Store::open(tmp.path()).unwrap();
    assert!(s.save_enrollment(0, 1, "http://x", "U").is_err());
    assert_eq!(s.enrollment().unwrap(), None);
}

#[test]
fn corrupt_store_is_moved_aside_not_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join(DB_FILE);
    std::fs::write(&db, b"this is not an sqlite database, just garbage bytes .................................................................").unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let err = Store::open(tmp.path()).unwrap_err();
    let StoreError::Corrupt { moved_to, .. } = &err else {
        panic!("{err}")
    };
    assert!(moved_to.exists());
    assert!(
        std::fs::read(moved_to)
            .unwrap()
            .starts_with(b"this is not an sqlite")
    );
    assert!(err.to_string().contains("moved aside"), "{err}");
    // next run starts fresh
    assert!(
        Store::open(tmp.path())
            .unwrap()
            .enrollment()
            .unwrap()
            .is_none()
    );
}

#[test]
fn newer_schema_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    drop(Store::open(tmp.path()).unwrap());
    let c = Connection::open(tmp.path().join(DB_FILE)).unwrap();
    c.pragma_update(None, "user_version", 99).unwrap();
    drop(c);
    let err = Store::open(tmp.path()).unwrap_err();
    assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
}

#[test]
fn task_lock_is_exclusive_and_released_on_drop() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Store::open(tmp.path()).unwrap();
    let held = s.lock_task("Runjobs", Duration::ZERO).unwrap();
    let err = s
        .lock_task("Runjobs", Duration::from_millis(250))
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("another armadito-agent is running Runjobs"),
        "{err}"
    );
    // other tasks are not blocked
    let _other = s.lock_task("Getjobs", Duration::ZERO).unwrap();
    drop(held);
    s.lock_task("Runjobs", Duration::ZERO).unwrap();
}

#[test]
fn symlinked_state_dir_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let err = Store::open(&link).unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
}

#[test]
fn free_space_guard_reads_the_real_filesystem() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Store::open(tmp.path()).unwrap();
    let free = space::available(tmp.path()).expect("statvfs works on a temp dir");
    assert!(free > 0);
    s.ensure_free_space(1, "a test").unwrap();
    let e = s
        .ensure_free_space(u64::MAX, "storing a reply")
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("the disk is full") && msg.contains("storing a reply needs"),
        "{msg}"
    );
    assert!(matches!(e, StoreError::Write { .. }));
}

/// Opening the store again in the same process (the daemon does, task by task) must not drop
/// the locks SQLite holds on the database file: closing any fd on it does (POSIX record locks
/// are per process), and another process could then checkpoint and delete the WAL under the
/// open connections. An OFD lock query sees the process's own record locks.
#[cfg(target_os = "linux")]
#[test]
fn reopening_keeps_the_locks_of_open_connections() {
    use std::os::fd::AsRawFd;
    fn shared_lock_held(db: &Path) -> bool {
        let f = std::fs::File::open(db).unwrap();
        // SQLite's SHARED lock range: PENDING_BYTE + 2, 510 bytes.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as i16;
        fl.l_whence = libc::SEEK_SET as i16;
        fl.l_start = 0x4000_0002;
        fl.l_len = 510;
        let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
        assert_eq!(r, 0, "F_OFD_GETLK: {}", std::io::Error::last_os_error());
        // Leaking `f` keeps this probe from dropping the locks it is looking at.
        std::mem::forget(f);
        fl.l_type != libc::F_UNLCK as i16
    }
    let tmp = tempfile::tempdir().unwrap();
    let a = Store::open(tmp.path()).unwrap();
    a.cursor("x").unwrap();
    let db = tmp.path().join(DB_FILE);
    assert!(
        shared_lock_held(&db),
        "SQLite holds a shared lock in WAL mode"
    );
    let b = Store::open(tmp.path()).unwrap();
    b.cursor("x").unwrap();
    drop(b);
    assert!(
        shared_lock_held(&db),
        "a second open dropped the first connection's lock"
    );
    a.cursor("x").unwrap();
}

#[test]
fn a_superseding_message_keeps_the_retry_schedule_of_the_one_it_replaces() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Store::open(tmp.path()).unwrap();
    let state = |body: &str| NewMessage {
        endpoint: "states",
        kind: MessageKind::State,
        supersede_key: Some("state".into()),
        job_id: None,
        body: body.as_bytes().to_vec(),
    };
    let alert = NewMessage {
        endpoint: "alerts",
        kind: MessageKind::Alerts,
        supersede_key: None,
        job_id: None,
        body: b"alert".to_vec(),
    };
    s.enqueue_messages(&[state("first"), alert]).unwrap();
    let first = s.outbox().unwrap()[0].clone();
    let later = UnixTime::now().secs() + 600;
    s.message_failed(first.id, "HTTP 503", later).unwrap();
    s.message_failed(first.id, "HTTP 503", later).unwrap();

    s.enqueue_messages(&[state("second")]).unwrap();
    let out = s.outbox().unwrap();
    assert_eq!(out.len(), 2, "replaced, not added");
    let m = &out[0];
    assert_eq!(m.id, first.id, "it keeps the FIFO position");
    assert_eq!(
        m.body, b"second",
        "the newest body is the one worth sending"
    );
    assert_eq!(
        (m.attempts, m.next_try_at, m.last_error.as_deref()),
        (2, later, Some("HTTP 503")),
        "a new State must not reset the backoff of a failing server"
    );
    assert!(
        s.due_messages(UnixTime::now().secs(), 10)
            .unwrap()
            .iter()
            .all(|d| d.kind != MessageKind::State),
        "not due before the backoff ends"
    );

    // A scan's final result replacing its failed progress report is due at once: being older
    // than the job's status, it leaves first.
    let scan = |kind| NewMessage {
        endpoint: "scans",
        kind,
        supersede_key: Some("scan:7".into()),
        job_id: Some(7),
        body: b"scan".to_vec(),
    };
    s.enqueue_messages(&[scan(MessageKind::ScanProgress)])
        .unwrap();
    let progress = s.outbox().unwrap().last().unwrap().id;
    s.message_failed(progress, "HTTP 500", later).unwrap();
    s.enqueue_messages(&[scan(MessageKind::ScanResult)])
        .unwrap();
    let result = s
        .outbox()
        .unwrap()
        .into_iter()
        .find(|m| m.id == progress)
        .unwrap();
    assert_eq!(result.kind, MessageKind::ScanResult);
    assert_eq!((result.attempts, result.last_error), (0, None));
    assert!(result.next_try_at <= UnixTime::now().secs());
}
