//! reqwest's standard proxy environment (`http_proxy`, `no_proxy`) applies when the `proxy`
//! option is unset.
//!
//! Environment variables are process-global, and `set_var` races with other threads; so each
//! test re-runs this test binary as a child process with the variables set by
//! `Command::env`, and asserts in the parent what the loopback proxy and server saw. In a normal
//! run, [`child_request`] does nothing.

mod transport_support;

use std::process::Output;

use agent_core::transport::{Endpoint, GlpiClient, HttpOptions, RetryPolicy};
use transport_support::{Server, json};

/// Set in the child only: the server URL the child must POST to.
const CHILD_SERVER: &str = "ARMADITO_TRANSPORT_TEST_CHILD_SERVER";

const PROXY_VARS: [&str; 8] = [
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// Runs [`child_request`] in a child process with `env` (and no other proxy variable).
async fn run_child(server: &str, env: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args([
        "--exact",
        "child_request",
        "--nocapture",
        "--test-threads=1",
    ]);
    for v in PROXY_VARS {
        cmd.env_remove(v);
    }
    cmd.env_remove("REQUEST_METHOD"); // CGI mode would make reqwest ignore HTTP_PROXY
    cmd.env(CHILD_SERVER, server);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The child's side: one POST with default proxy settings (no `proxy` option).
#[tokio::test]
async fn child_request() {
    let Ok(server) = std::env::var(CHILD_SERVER) else {
        return; // normal run: nothing to do
    };
    let opts = HttpOptions {
        timeout: 10,
        connect_timeout: 5,
        retry: RetryPolicy::no_retry(),
        ..HttpOptions::default()
    };
    let c = GlpiClient::new(&server, &opts).expect("client");
    let reply = c
        .post(Endpoint::States, b"{}")
        .await
        .expect("request succeeds");
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn http_proxy_env_is_used_without_the_proxy_option() {
    let proxy = Server::start(vec![json(200, "")]).await;
    run_child(
        "http://glpi.invalid/glpi/plugins/armadito",
        &[("http_proxy", &proxy.origin())],
    )
    .await;
    let reqs = proxy.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].target,
        "http://glpi.invalid/glpi/plugins/armadito/api/states/"
    );
}

#[tokio::test]
async fn no_proxy_env_bypasses_the_proxy() {
    let proxy = Server::start(vec![json(200, "")]).await;
    let server = Server::start(vec![json(200, "")]).await;
    run_child(
        &server.base(),
        &[("http_proxy", &proxy.origin()), ("no_proxy", "127.0.0.1")],
    )
    .await;
    assert!(
        proxy.requests().is_empty(),
        "no_proxy host went through the proxy"
    );
    assert_eq!(server.requests().len(), 1);
    assert_eq!(
        server.requests()[0].target,
        "/glpi/plugins/armadito/api/states/"
    );
}
