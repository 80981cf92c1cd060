//! Plugins log through the host callback: their lines reach the agent's tracing, with the
//! backend name, in both isolation modes (in process isolation they travel over the pipe).

#![cfg(unix)]

mod plugins_common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_core::plugins::{Isolation, Registry};
use plugins_common::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[test]
fn plugin_logs_reach_the_agent() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .init();

    for isolation in [Isolation::InProcess, Isolation::Process] {
        let sandbox = Sandbox::new(&["example"]);
        let registry = Registry::open(sandbox.config(isolation)).unwrap();
        assert_eq!(registry.names(), vec!["example"]);
        assert!(
            wait_for(Duration::from_secs(5), || {
                captured
                    .text()
                    .lines()
                    .filter(|l| {
                        l.contains("example backend ready") && l.contains("backend=\"example\"")
                    })
                    .count()
                    == if isolation == Isolation::InProcess {
                        1
                    } else {
                        2
                    }
            }),
            "{isolation:?}: {}",
            captured.text()
        );
    }
    // Registry changes are logged too.
    assert!(
        captured.text().contains("backend loaded"),
        "{}",
        captured.text()
    );
}
