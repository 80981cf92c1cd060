//! CI's short mode: every target fuzzed for a few seconds (`ARMADITO_FUZZ_SECONDS`, default 3)
//! in the normal `cargo test` run; a panic or a hang fails the test with the input.
//! The long mode is `cargo run --release -p armadito-fuzz -- --minutes 10 all`.
#![cfg(unix)]

use std::time::Duration;

use armadito_fuzz::engine::{Settings, fuzz};
use armadito_fuzz::targets::{Target, all, find};

fn seconds() -> f64 {
    std::env::var("ARMADITO_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0)
}

fn short(name: &str) {
    let t = find(name).unwrap_or_else(|| panic!("no target {name}"));
    let mut settings = Settings::new(Duration::from_secs_f64(seconds()));
    settings.crash_dir = Some(std::env::temp_dir().join("armadito-fuzz-crashes"));
    let o = fuzz(&t, &settings);
    eprintln!(
        "{name}: {} inputs ({} seeds), {} crashes, {:.1} s, slowest {:.1} ms",
        o.inputs,
        o.seeds,
        o.crashes.len(),
        o.elapsed.as_secs_f64(),
        o.slowest.as_secs_f64() * 1e3
    );
    if let Some(c) = o.crashes.first() {
        panic!(
            "{name} crashed on {:?} (saved to {:?}):\n{}",
            String::from_utf8_lossy(&c.input[..c.input.len().min(500)]),
            c.saved,
            c.message
        );
    }
    assert!(
        o.inputs > o.seeds as u64 + 10,
        "{name}: only {} inputs tried: the loop did not run",
        o.inputs
    );
}

macro_rules! short_tests {
    ($($name:ident),* $(,)?) => {
        $( #[test] fn $name() { short(stringify!($name)); } )*

        /// A target added to the list but not here would never run in CI.
        #[test]
        fn every_target_runs_in_ci() {
            let here = [$(stringify!($name)),*];
            for t in all() {
                assert!(here.contains(&t.name), "target {} has no short test", t.name);
            }
        }
    };
}

short_tests!(
    enrollment_reply,
    jobs_reply,
    scan_options,
    server_config,
    server_schedule,
    transport_body,
    wire_types,
    agent_toml,
    plugin_protocol,
    clamd_reply,
    clamd_log,
    clamav_spool,
    clamd_conf,
    armadito_events,
    armadito_journal,
    armadito_conf,
    proc_net_tcp,
    defender_powershell,
    defender_mpcmdrun,
    mdatp_json,
    eset_scan,
    eset_alerts,
    eset_config,
    kesl_outputs,
    kes_windows,
);

/// The harness itself can fail: a parser that panics on some input is caught, with that input.
#[test]
fn a_panicking_parser_is_reported_with_its_input() {
    let t = Target {
        name: "self_test",
        about: "panics on any input containing a 'Z' after an 'X'",
        seeds: || vec![b"XY".to_vec()],
        dict: &["Z"],
        generate: None,
        run: |d| {
            if let Some(i) = d.iter().position(|b| *b == b'X') {
                assert!(!d[i..].contains(&b'Z'), "found it");
            }
        },
    };
    let o = fuzz(&t, &Settings::new(Duration::from_secs(2)));
    let c = o.crashes.first().expect("the planted bug is found");
    assert!(c.message.contains("found it"), "{}", c.message);
    let x = c.input.iter().position(|b| *b == b'X').expect("input kept");
    assert!(c.input[x..].contains(&b'Z'));
}
