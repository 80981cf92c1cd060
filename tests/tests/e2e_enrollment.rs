//! End to end: the real agent binary enrolls against the GLPI plugin double over HTTP.

use std::time::Duration;

use armadito_tests::agent::AgentSandbox;
use armadito_tests::double::{Double, Fault};

const KEY: &str = "0RV2V-2RYTX-NX4OW-7LARZ-KZQAJ";
const UUID: &str = "4C4C4544-0033-4A10-8051-B4C04F4E4B32";

fn sandbox(d: &Double) -> AgentSandbox {
    let s = AgentSandbox::new(&d.base_url());
    s.write_config(UUID);
    s
}

fn agent_id(s: &AgentSandbox) -> String {
    s.run(&["--get-agentid"])
        .assert_code(0)
        .stdout
        .trim()
        .to_string()
}

#[test]
fn first_enrollment_then_reenrollment_keeps_the_id() {
    let d = Double::start();
    d.create_key(KEY, 10, 3600);
    let s = sandbox(&d);
    assert_eq!(agent_id(&s), "0", "not enrolled yet");

    let r = s.run(&["-t", "Enrollment", "-k", KEY]);
    r.assert_code(0);
    let agents = d.agents();
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0].uuid, UUID);
    assert_eq!(agent_id(&s), agents[0].id.to_string());
    assert_eq!(
        s.run(&["--get-schedulerid"]).stdout.trim(),
        agents[0].plugin_armadito_schedulers_id.to_string()
    );
    assert_eq!(d.key_use_counter(KEY), Some(9));

    // the request on the wire: trailing slash, JSON content type, key in the body only
    let reqs = d.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].path, "/glpi/plugins/armadito/api/agents/");
    assert!(
        reqs[0]
            .headers
            .iter()
            .any(|(k, v)| k == "content-type" && v == "application/json")
    );
    assert!(
        !r.stderr.contains(KEY) && !r.stdout.contains(KEY),
        "the key must never be printed or logged"
    );

    // re-enrollment: same id back, one more key use consumed
    s.run(&["-t", "Enrollment", "-k", KEY, "-d"]).assert_code(0);
    assert_eq!(d.agents().len(), 1);
    assert_eq!(agent_id(&s), agents[0].id.to_string());
    assert_eq!(d.key_use_counter(KEY), Some(8));
    assert!(d.violations().is_empty(), "{:?}", d.violations());
}

#[test]
fn server_refusals_store_nothing_and_say_why() {
    let d = Double::start();
    d.create_key("EXPIR-EDKEY-AAAAA-BBBBB-CCCCC", 10, -60);
    d.create_key("USEDU-PKEYA-AAAAA-BBBBB-CCCCC", 0, 3600);
    let s = sandbox(&d);
    for (key, message) in [
        (
            "EXPIR-EDKEY-AAAAA-BBBBB-CCCCC",
            "Your enrollment key has expired.",
        ),
        (
            "USEDU-PKEYA-AAAAA-BBBBB-CCCCC",
            "Your enrollment key reached its maximum usage count.",
        ),
        (
            "NOTIN-THEDB-AAAAA-BBBBB-CCCCC",
            "Enrollment key not found in database",
        ),
    ] {
        s.run(&["-t", "Enrollment", "-k", key])
            .assert_code(1)
            .assert_one_error_line(message);
        assert_eq!(agent_id(&s), "0");
    }
    assert!(d.agents().is_empty());
}

#[test]
fn malformed_keys_send_nothing() {
    let d = Double::start();
    let s = sandbox(&d);
    for bad in [
        "",
        "AAAAA-BBBBB",
        "AAAAA-BBBBB-CCCCC-DDDDD-EEEE$",
        "AAAAA BBBBB CCCCC DDDDD EEEEE",
    ] {
        s.run(&["-t", "Enrollment", "-k", bad])
            .assert_code(3)
            .assert_stderr_contains("invalid enrollment key format");
    }
    s.run(&["-t", "Enrollment"])
        .assert_code(3)
        .assert_stderr_contains("no enrollment key");
    assert!(
        d.requests().is_empty(),
        "no request may reach the server: {:?}",
        d.requests()
    );
}

#[test]
fn key_file_is_trimmed_uppercased_and_removed_only_on_success() {
    let d = Double::start();
    d.create_key(KEY, 10, 3600);
    let s = sandbox(&d);
    std::fs::create_dir_all(s.state_dir()).unwrap();
    let key_file = s.state_dir().join("enrollment.key");

    // a failure keeps the file
    d.inject(Fault::Status500Json, 1);
    std::fs::write(&key_file, format!("  {}\n\n", KEY.to_lowercase())).unwrap();
    s.run(&["-t", "Enrollment"]).assert_code(1);
    assert!(
        key_file.exists(),
        "the key file must survive a failed enrollment"
    );

    let r = s.run(&["-t", "Enrollment"]);
    r.assert_code(0).assert_stderr_contains("upper-cased");
    assert!(
        !key_file.exists(),
        "the key file is removed once the ids are stored"
    );
    assert_ne!(agent_id(&s), "0");

    // an explicit --key-file is the admin's: left in place
    let explicit = s.dir.path().join("my.key");
    std::fs::write(&explicit, KEY).unwrap();
    s.run(&["-t", "Enrollment", "--key-file", explicit.to_str().unwrap()])
        .assert_code(0);
    assert!(explicit.exists());
}

/// Issue 12 item 11: `-k KEY` (readable by every local user in /proc) warns and says what to
/// use instead; the environment and `--key-file -` (stdin) do not put it in argv.
#[test]
fn a_key_on_the_command_line_warns_and_stdin_works() {
    let d = Double::start();
    d.create_key(KEY, 10, 3600);
    let s = sandbox(&d);
    let r = s.run(&["-t", "Enrollment", "-k", KEY]);
    r.assert_code(0);
    assert!(
        r.stderr
            .contains("every local user can read the command line")
            && r.stderr.contains("--key-file"),
        "{}",
        r.stderr
    );

    let s = sandbox(&d);
    let mut child = s
        .command(&["-t", "Enrollment", "--key-file", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "{KEY}").unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("every local user"), "{stderr}");
}

#[test]
fn key_from_environment() {
    let d = Double::start();
    d.create_key(KEY, 10, 3600);
    let s = sandbox(&d);
    let out = s
        .command(&["-t", "Enrollment"])
        .env("ARMADITO_AGENT_KEY", KEY)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("every local user"));
    assert_eq!(d.agents().len(), 1);
}

#[test]
fn every_server_error_shape_gives_one_clear_line_and_keeps_state() {
    let d = Double::start();
    d.create_key(KEY, 100, 3600);
    let s = sandbox(&d);
    s.run(&["-t", "Enrollment", "-k", KEY]).assert_code(0);
    let id = agent_id(&s);
    for (fault, expect) in [
        (Fault::Status400Json, "400"),
        (Fault::Status500Json, "500"),
        (Fault::Status500InvalidJson, "500"),
        (Fault::Html500, "500"),
        (Fault::Html200, "enrollment failed"),
        (Fault::DropConnection, "http://127.0.0.1"),
    ] {
        d.inject(fault, 1);
        let r = s.run(&["-t", "Enrollment", "-k", KEY]);
        r.assert_code(1).assert_one_error_line(expect);
        assert!(
            !r.stderr.contains("<div") && !r.stderr.contains("<html"),
            "no raw HTML:\n{}",
            r.stderr
        );
        assert_eq!(agent_id(&s), id, "{fault:?} must not change the stored id");
    }
    // a slow server: the timeout is honoured
    d.set_delay(Duration::from_secs(4));
    let r = s.run(&["-t", "Enrollment", "-k", KEY, "--timeout", "1"]);
    r.assert_code(1).assert_one_error_line("timeout");
    d.set_delay(Duration::ZERO);
    assert_eq!(agent_id(&s), id);
}

#[test]
fn server_down_is_a_clear_error() {
    // bind then drop: a loopback port nobody listens on
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = AgentSandbox::new(&format!("http://127.0.0.1:{port}/glpi/plugins/armadito"));
    s.write_config(UUID);
    let r = s.run(&["-t", "Enrollment", "-k", KEY]);
    r.assert_code(1)
        .assert_stderr_contains(&format!("127.0.0.1:{port}"));
    assert_eq!(agent_id(&s), "0");
}

#[test]
fn tasks_needing_an_id_refuse_before_calling_the_server() {
    let d = Double::start();
    let s = sandbox(&d);
    for task in [
        "Getjobs",
        "Runjobs",
        "State",
        "Alerts",
        "AVConfig",
        "Scheduler",
    ] {
        s.run(&["-t", task])
            .assert_code(4)
            .assert_stderr_contains("not enrolled: run -t Enrollment");
    }
    assert!(d.requests().is_empty());
}

#[test]
fn unusable_state_dir_is_a_local_error() {
    let d = Double::start();
    d.create_key(KEY, 10, 3600);
    let s = sandbox(&d);
    std::fs::write(s.state_dir(), "a file, not a directory").unwrap();
    s.run(&["-t", "Enrollment", "-k", KEY])
        .assert_code(5)
        .assert_stderr_contains("not a directory");
    assert!(
        d.requests().is_empty(),
        "the store is checked before the key is spent"
    );
}

#[test]
fn help_version_list_tasks_and_bad_task() {
    let s = AgentSandbox::new("http://127.0.0.1:1/glpi/plugins/armadito");
    let help = s.run(&["--help"]);
    help.assert_code(0);
    assert!(
        help.stdout.contains("--task") && help.stdout.contains("Exit codes"),
        "{}",
        help.stdout
    );
    let v = s.run(&["--version"]);
    v.assert_code(0);
    assert!(v.stdout.starts_with("armadito-agent "), "{}", v.stdout);
    let l = s.run(&["--list-tasks"]);
    l.assert_code(0);
    for t in [
        "Enrollment",
        "Scheduler",
        "Getjobs",
        "Runjobs",
        "State",
        "Scan",
        "Alerts",
        "AVConfig",
    ] {
        assert!(l.stdout.contains(t), "{t} missing:\n{}", l.stdout);
    }
    let bad = s.run(&["-t", "Nonsense"]);
    assert_eq!(bad.code, Some(2));
    assert!(
        bad.stderr.contains("invalid value 'Nonsense'"),
        "{}",
        bad.stderr
    );
    assert_eq!(s.run(&["--frobnicate"]).code, Some(2));
    let man = s.run(&["man"]);
    man.assert_code(0);
    assert!(man.stdout.contains(".TH"), "roff man page");
}

#[test]
fn wait_sleeps_before_the_task() {
    let d = Double::start();
    let s = sandbox(&d);
    let t = std::time::Instant::now();
    s.run(&["-t", "Getjobs", "-w", "1"]).assert_code(4);
    assert!(t.elapsed() >= Duration::from_secs(1));
    let t = std::time::Instant::now();
    s.run(&["-t", "Getjobs", "-wr", "1"]).assert_code(4); // 0..0 s: no wait, old spelling accepted
    assert!(t.elapsed() < Duration::from_secs(1));
}
