//! The transport's logs, in a test binary of their own: tracing caches per call site whether
//! anyone listens, so a thread-local subscriber in one test races with other tests' threads.

mod transport_support;

use std::sync::{Arc, Mutex};

use agent_core::transport::{Endpoint, GlpiClient, HttpOptions, Secret};
use transport_support::{Server, fast_opts, json};

fn client(server: &Server, opts: &HttpOptions) -> GlpiClient {
    GlpiClient::new(&server.base(), opts).expect("client builds")
}

/// A `MakeWriter` into a shared buffer.
#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn logs_have_requests_but_never_enrollment_bodies_nor_passwords() {
    let buf = LogBuf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    tracing::subscriber::with_default(subscriber, || {
        rt.block_on(async {
            let server = Server::start(vec![
                json(200, r#"{"agent_id": 9,"scheduler_id": 1}"#),
                json(200, ""),
                json(500, r#"{"error" : "Invalid Key format : "aaaaa-bbbbb""}"#),
            ])
            .await;
            let opts = HttpOptions {
                user: Some("agent".into()),
                password: Some(Secret::new("s3cr3t-pw")),
                ..fast_opts()
            };
            let c = client(&server, &opts);
            c.post(
                Endpoint::Agents,
                br#"{"task":{"obj":{"key":"AAAAF-111AF-DZ78F-EE78F-DDD1F"}}}"#,
            )
            .await
            .expect("enrolled");
            c.post(
                Endpoint::States,
                br#"{"task":{"obj":{"state":"STATE-BODY-MARKER"}}}"#,
            )
            .await
            .expect("state");
            let e = c
                .post(Endpoint::Agents, br#"{"key":"aaaaa-bbbbb"}"#)
                .await
                .expect_err("500");
            let shown = format!("{e} {e:?}");
            assert!(
                !shown.contains("aaaaa-bbbbb"),
                "echoed key redacted: {shown}"
            );
        });
    });
    let logs = String::from_utf8(buf.0.lock().expect("lock").clone()).expect("utf8");
    assert!(
        logs.contains("/api/agents/") && logs.contains("status=200"),
        "requests are logged: {logs}"
    );
    assert!(
        logs.contains("STATE-BODY-MARKER"),
        "non-secret bodies at trace"
    );
    assert!(!logs.contains("DZ78F"), "enrollment key logged:\n{logs}");
    assert!(
        !logs.contains("agent_id\": 9"),
        "enrollment reply logged:\n{logs}"
    );
    assert!(
        !logs.contains("s3cr3t-pw") && !logs.contains("YWdlbnQ6czNjcjN0LXB3"),
        "password logged:\n{logs}"
    );
}
