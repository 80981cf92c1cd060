//! Enrollment under hostile conditions: SIGKILL at random moments, a full disk.

use std::path::Path;
use std::time::Duration;

use armadito_tests::agent::AgentSandbox;
use armadito_tests::double::Double;
use armadito_tests::tmpfs::Tmpfs;
use rand::Rng;

const KEY: &str = "0RV2V-2RYTX-NX4OW-7LARZ-KZQAJ";
const UUID: &str = "4C4C4544-0033-4A10-8051-B4C04F4E4B32";

/// What a killed run may leave: a readable store holding no enrollment or the one the double
/// assigned, never anything else; and a provisioning key file that is gone only if the ids
/// were stored first.
fn check_store(state_dir: &Path, expected_id: i64) -> Option<i64> {
    let db = state_dir.join("state.db");
    if !db.exists() {
        return None;
    }
    let conn = rusqlite::Connection::open(&db).expect("store opens after a kill");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check runs");
    assert_eq!(check, "ok");
    let has_table: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'enrollment'",
            [],
            |r| r.get(0),
        )
        .expect("schema readable");
    if has_table == 0 {
        return None;
    }
    let id: Option<i64> = conn
        .query_row("SELECT agent_id FROM enrollment", [], |r| r.get(0))
        .ok();
    if let Some(id) = id {
        assert_eq!(id, expected_id, "only the double's id can be stored");
    } else {
        assert!(
            state_dir.join("enrollment.key").exists(),
            "key file deleted before the ids were stored"
        );
    }
    id
}

#[test]
fn sigkill_at_random_points_never_corrupts_or_half_writes() {
    let d = Double::start();
    d.create_key(KEY, 100_000, 3600);
    let s = AgentSandbox::new(&d.base_url());
    s.write_config(UUID);
    std::fs::create_dir_all(s.state_dir()).unwrap();
    // the id the double gives this UUID (it always maps the UUID back to the same agent)
    let expected = {
        let other = AgentSandbox::new(&d.base_url());
        other.write_config(UUID);
        other.run(&["-t", "Enrollment", "-k", KEY]).assert_code(0);
        d.agents()[0].id
    };
    let mut rng = rand::rng();
    let (mut killed, mut finished, mut enrolled_after) = (0, 0, 0);
    // until 100 kills have landed inside a run (bounded, in case runs get too fast to hit)
    for _ in 0..1000 {
        if killed >= 100 {
            break;
        }
        d.set_delay(Duration::from_millis(rng.random_range(0..30)));
        std::fs::write(s.state_dir().join("enrollment.key"), KEY).unwrap();
        let mut child = s.spawn(&["-t", "Enrollment"]);
        std::thread::sleep(Duration::from_micros(rng.random_range(0..40_000)));
        match child.try_wait().unwrap() {
            Some(_) => finished += 1,
            None => {
                child.kill().unwrap(); // SIGKILL
                killed += 1;
            }
        }
        child.wait().unwrap();
        if check_store(&s.state_dir(), expected).is_some() {
            enrolled_after += 1;
        }
    }
    eprintln!(
        "crash test: {killed} killed, {finished} finished, {enrolled_after} runs left an enrollment"
    );
    assert!(
        killed >= 20,
        "the kills must land inside runs to mean anything ({killed} of 100)"
    );
    // and the agent still works on the store that survived all this
    d.set_delay(Duration::ZERO);
    s.run(&["-t", "Enrollment", "-k", KEY]).assert_code(0);
    assert_eq!(check_store(&s.state_dir(), expected), Some(expected));
}

#[test]
fn full_disk_is_a_clear_error_and_keeps_the_previous_state() {
    let d = Double::start();
    d.create_key(KEY, 100, 3600);

    // A store that cannot grow at all (SQLite's page budget, as a full disk answers): exit 5,
    // and the key is not spent because the store is opened before the request.
    let s = AgentSandbox::new(&d.base_url());
    s.write_config(UUID);
    let out = s
        .command(&["-t", "Enrollment", "-k", KEY])
        .env("ARMADITO_AGENT_TEST_MAX_PAGES", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("disk is full"), "{stderr}");
    assert_eq!(d.key_use_counter(KEY), Some(100));

    // A real full filesystem (tmpfs).
    let Some(mnt) = Tmpfs::mount_or_skip(
        "256k",
        "the real full-disk case (the page-budget case above still runs)",
    ) else {
        return;
    };
    let mut s = AgentSandbox::new(&d.base_url());
    s.extra_config.clear();
    let state = mnt.path().join("state");
    let cfg = format!(
        "server = \"{}\"\nstate_dir = \"{}\"\nuuid = \"{UUID}\"\n[http]\ntimeout = 5\n",
        d.base_url(),
        state.display()
    );
    std::fs::write(s.config_path(), cfg).unwrap();
    s.run(&["-t", "Enrollment", "-k", KEY]).assert_code(0);
    let id = s.run(&["--get-agentid"]).stdout.trim().to_string();
    // fill the filesystem
    let filler = mnt.path().join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 1 << 20]);
    let r = s.run(&["-t", "Enrollment", "-k", KEY]);
    assert!(matches!(r.code, Some(5) | Some(1)), "{r:?}");
    assert!(!r.stderr.contains("panicked"));
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(
        s.run(&["--get-agentid"]).stdout.trim(),
        id,
        "the previous enrollment survives"
    );
}
