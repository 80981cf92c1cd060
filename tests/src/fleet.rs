//! Shared set-ups for end-to-end tests: an enrolled agent with the `testav` backend, trees of
//! files to scan, helpers to read what the double received.

use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::agent::{AgentSandbox, built_plugins};
use crate::double::Double;

pub const KEY: &str = "0RV2V-2RYTX-NX4OW-7LARZ-KZQAJ";
pub const UUID: &str = "4C4C4544-0033-4A10-8051-B4C04F4E4B32";

/// The EICAR test file (68 bytes), built at run time so no scanner flags this source.
pub fn eicar() -> Vec<u8> {
    let mut s = String::from(r"X5O!P%@AP[4\PZX54(P^)7CC)7}$");
    s.push_str("EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*");
    s.into_bytes()
}

/// `n` clean files and `infected` EICAR copies under `dir`.
pub fn make_tree(dir: &Path, n: usize, infected: usize) -> PathBuf {
    std::fs::create_dir_all(dir.join("sub")).expect("tree dir");
    for i in 0..n {
        std::fs::write(
            dir.join(if i % 2 == 0 { "sub" } else { "." })
                .join(format!("clean-{i}.txt")),
            format!("clean file {i}\n"),
        )
        .expect("write clean file");
    }
    for i in 0..infected {
        std::fs::write(dir.join(format!("eicar-{i}.com")), eicar()).expect("write eicar");
    }
    dir.to_path_buf()
}

/// An agent enrolled on `d`, using the `testav` backend with `extra` appended to its config.
pub fn enrolled_agent(d: &Double, extra: &str) -> (AgentSandbox, i64, i64) {
    enrolled_agent_with(d, "testav", "test-plugin-testav", extra)
}

/// An agent enrolled on `d` with backend `backend`, built from cdylib package `package`.
/// Returns the sandbox, the agent id and the antivirus id the double filed it under.
pub fn enrolled_agent_with(
    d: &Double,
    backend: &str,
    package: &str,
    extra: &str,
) -> (AgentSandbox, i64, i64) {
    d.create_key(KEY, 1000, 3600);
    let mut s = AgentSandbox::new(&d.base_url());
    s.top_config = format!("backend = \"{backend}\"");
    s.extra_config = format!("[outbox]\nretry_base = 0\n{extra}");
    s.write_config(UUID);
    s.install_plugins(&built_plugins(&[package]));
    s.run(&["-t", "Enrollment", "-k", KEY]).assert_code(0);
    let agent = d
        .agents()
        .into_iter()
        .find(|a| a.uuid == UUID)
        .expect("agent enrolled on the double");
    (s, agent.id, agent.plugin_armadito_antiviruses_id)
}

/// Job ids in the order their status was POSTed to the double.
pub fn status_order(d: &Double) -> Vec<i64> {
    d.requests()
        .iter()
        .filter(|r| {
            r.method == "POST" && r.path.contains("/api/jobs/") && (200..300).contains(&r.status)
        })
        .filter_map(|r| serde_json::from_str::<serde_json::Value>(&r.body).ok())
        .filter_map(|v| v["task"]["obj"]["job_id"].as_i64())
        .collect()
}

/// The decoded failure message the GLPI UI would show for a job.
pub fn job_error(d: &Double, job_id: i64) -> Option<String> {
    let msg = d.job(job_id)?.job_error_msg?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(msg.trim())
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// Consumes the double's queued faults with harmless requests (GET jobs of agent 0, which
/// has none), so a test can "bring the server back".
pub fn drain_faults(d: &Double) {
    use std::io::{Read, Write};
    while d.pending_faults() > 0 {
        if let Ok(mut c) = std::net::TcpStream::connect(d.addr()) {
            let req = "GET /glpi/plugins/armadito/api/jobs/?agent_id=0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
            let _ = c.write_all(req.as_bytes());
            let mut sink = Vec::new();
            let _ = c.read_to_end(&mut sink);
        }
    }
}
