//! The transport against a plain-HTTP loopback server: URLs, headers, bodies, every error shape
//! of the plugin, and the retry rules.

mod transport_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent_core::transport::{
    Endpoint, GlpiClient, HttpOptions, RetryPolicy, Secret, TransportError, USER_AGENT,
    json_object_start,
};
use transport_support::{
    Action, Server, fast_opts, html, json, recording_sleeper, refused_port, with_headers,
};

const PLUGIN: &str = "/glpi/plugins/armadito";

fn client(server: &Server, opts: &HttpOptions) -> GlpiClient {
    GlpiClient::new(&server.base(), opts).expect("client builds")
}

fn assert_one_line_naming(err: &TransportError, url: &str) -> String {
    let d = err.to_string();
    assert!(!d.contains('\n') && !d.contains('\r'), "one line: {d:?}");
    assert!(d.contains(url), "names the URL {url}: {d}");
    d
}

#[tokio::test]
async fn post_sends_json_headers_and_exact_body_to_the_trailing_slash_url() {
    let server = Server::start(vec![json(200, ""), json(200, "")]).await;
    let body = br#"{"agent_id":2,"uuid":"4C4C4544-0033-4A10-8051-B4C04F4E4B32","task":{}}"#;
    // With and without trailing slash on the configured server URL.
    for base in [server.base(), format!("{}/", server.base())] {
        let c = GlpiClient::new(&base, &fast_opts()).expect("client");
        let reply = c.post(Endpoint::States, body).await.expect("200");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, "");
        assert_eq!(reply.content_type.as_deref(), Some("application/json"));
    }
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    for r in &reqs {
        assert_eq!(r.method, "POST");
        assert_eq!(r.target, format!("{PLUGIN}/api/states/"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("accept"), Some("application/json"));
        assert_eq!(r.header("user-agent"), Some(USER_AGENT));
        assert!(USER_AGENT.starts_with("armadito-agent/"));
        assert_eq!(r.header("authorization"), None, "no credentials configured");
        assert_eq!(r.body, body.to_vec());
    }
}

#[tokio::test]
async fn every_endpoint_url() {
    let script = (0..Endpoint::ALL.len()).map(|_| json(200, "")).collect();
    let server = Server::start(script).await;
    let c = client(&server, &fast_opts());
    for e in Endpoint::ALL {
        c.post(e, b"{}").await.expect("200");
    }
    let targets: Vec<String> = server.requests().into_iter().map(|r| r.target).collect();
    let expected: Vec<String> = Endpoint::ALL
        .iter()
        .map(|e| format!("{PLUGIN}/api/{}/", e.name()))
        .collect();
    assert_eq!(targets, expected);
}

#[tokio::test]
async fn get_jobs_and_get_config_use_a_single_agent_id() {
    let jobs = r#"{ "jobs": []}"#;
    let server = Server::start(vec![
        json(200, jobs),
        json(400, r#"{"error" : "Invalid request sent to plugin index"}"#),
        json(400, r#"{"error" : "Invalid request sent to plugin index"}"#),
    ])
    .await;
    let c = client(&server, &fast_opts());
    let reply = c.get_jobs(7).await.expect("jobs");
    assert_eq!(reply.body, jobs);
    let e = c.get_config(Endpoint::AvConfigs, 7).await.expect_err("400");
    assert_eq!(e.status(), Some(400));
    let e = c
        .get_config(Endpoint::Schedulers, 7)
        .await
        .expect_err("400");
    assert_eq!(e.status(), Some(400));
    let reqs = server.requests();
    let lines: Vec<(String, String)> = reqs
        .iter()
        .map(|r| (r.method.clone(), r.target.clone()))
        .collect();
    assert_eq!(
        lines,
        [
            ("GET".into(), format!("{PLUGIN}/api/jobs/?agent_id=7")),
            ("GET".into(), format!("{PLUGIN}/api/avconfigs/?agent_id=7")),
            ("GET".into(), format!("{PLUGIN}/api/schedulers/?agent_id=7")),
        ]
    );
    assert!(
        reqs.iter()
            .all(|r| r.header("accept") == Some("application/json"))
    );

    // No GET of configuration from other endpoints, and no empty POST: refused without a request.
    let e = c
        .get_config(Endpoint::States, 7)
        .await
        .expect_err("refused");
    assert!(matches!(e, TransportError::InvalidRequest { .. }), "{e:?}");
    let e = c.post(Endpoint::Alerts, b"").await.expect_err("refused");
    assert!(e.to_string().contains("empty body"), "{e}");
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn error_400_json() {
    let server = Server::start(vec![json(
        400,
        r#"{"error" : "Json parsing error : Syntax error"}"#,
    )])
    .await;
    let c = client(&server, &fast_opts());
    let e = c.post(Endpoint::States, b"{").await.expect_err("400");
    match &e {
        TransportError::Server {
            endpoint,
            status,
            message,
            body_excerpt,
            ..
        } => {
            assert_eq!(*endpoint, Endpoint::States);
            assert_eq!(*status, 400);
            assert_eq!(message, "Json parsing error : Syntax error");
            assert_eq!(
                body_excerpt,
                r#"{"error" : "Json parsing error : Syntax error"}"#
            );
        }
        other => panic!("expected Server, got {other:?}"),
    }
    let url = format!("{}/api/states/", server.base());
    let d = assert_one_line_naming(&e, &url);
    assert_eq!(
        d,
        format!(
            "POST {url}: server answered HTTP 400: Json parsing error : Syntax error; the server could not read the request (agent/plugin version mismatch?)"
        )
    );
    assert_eq!(server.requests().len(), 1, "4xx is never retried");
}

#[tokio::test]
async fn error_500_json_deterministic_is_not_retried() {
    let server = Server::start(vec![json(
        500,
        r#"{"error" : "UUID not found in database. This agent has to be re-enrolled."}"#,
    )])
    .await;
    let c = client(&server, &fast_opts());
    let e = c.post(Endpoint::States, b"{}").await.expect_err("500");
    assert_eq!(e.status(), Some(500));
    let d = assert_one_line_naming(&e, &format!("{}/api/states/", server.base()));
    assert!(
        d.contains("HTTP 500: UUID not found in database. This agent has to be re-enrolled."),
        "{d}"
    );
    assert!(d.contains("pluginArmadito.log"), "{d}");
    assert_eq!(
        server.requests().len(),
        1,
        "same request, same answer: not retried"
    );
}

#[tokio::test]
async fn error_500_invalid_json_message_is_extracted() {
    let server = Server::start(vec![json(500, r#"{"error" : "Invalid UUID : "x""}"#)]).await;
    let c = client(&server, &fast_opts());
    let e = c.post(Endpoint::Alerts, b"{}").await.expect_err("500");
    let TransportError::Server { message, .. } = &e else {
        panic!("expected Server, got {e:?}");
    };
    assert_eq!(message, r#"Invalid UUID : "x""#);
    assert_one_line_naming(&e, &format!("{}/api/alerts/", server.base()));
}

#[tokio::test]
async fn ok_200_with_php_notice_before_json() {
    let body = r#"<div style="position:float-left; background-color:red; z-index:10000"><span class="b">PHP Notice: </span>Undefined property: stdClass::$agent_version in /var/www/glpi/plugins/armadito/inc/agent.class.php at line 83</div>{"agent_id": 2,"scheduler_id": 2}"#;
    let server = Server::start(vec![json(200, body)]).await;
    let c = client(&server, &fast_opts());
    let reply = c
        .post(Endpoint::Agents, b"{}")
        .await
        .expect("status decides: 200 is success");
    assert_eq!(reply.body, body);
    let obj = json_object_start(&reply.body).expect("has an object");
    let v: serde_json::Value = serde_json::from_str(obj).expect("valid JSON from the first {");
    assert_eq!(v["agent_id"], 2);
    assert_eq!(reply.json_object(), Some(obj));
}

#[tokio::test]
async fn error_500_html_page() {
    let page = "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>500 Internal Server Error</title>\n</head><body>\n<h1>Internal Server Error</h1>\n<p>The server encountered an internal error or\nmisconfiguration and was unable to complete\nyour request.</p>\n</body></html>\n";
    let server = Server::start(vec![html(500, page), html(500, page), html(500, page)]).await;
    let c = client(&server, &fast_opts());
    let e = c.post(Endpoint::Scans, b"{}").await.expect_err("500");
    let TransportError::Server { message, .. } = &e else {
        panic!("expected Server, got {e:?}");
    };
    assert_eq!(
        message,
        "500 Internal Server Error Internal Server Error The server encountered an internal error or misconfiguration and was unable to complete your request."
    );
    assert_one_line_naming(&e, &format!("{}/api/scans/", server.base()));
    assert_eq!(
        server.requests().len(),
        3,
        "a generic 500 on a replay-safe POST is retried"
    );
}

#[tokio::test]
async fn error_500_empty_body() {
    let server = Server::start(vec![html(500, "")]).await;
    let opts = HttpOptions {
        retry: RetryPolicy::no_retry(),
        ..fast_opts()
    };
    let c = client(&server, &opts);
    let e = c.post(Endpoint::Alerts, b"{}").await.expect_err("500");
    let TransportError::Server {
        message, status, ..
    } = &e
    else {
        panic!("expected Server, got {e:?}");
    };
    assert_eq!((*status, message.as_str()), (500, "empty body"));
    let d = assert_one_line_naming(&e, &format!("{}/api/alerts/", server.base()));
    assert!(d.contains("HTTP 500: empty body"), "{d}");
}

#[tokio::test]
async fn connection_refused() {
    let (_, base) = refused_port().await;
    let (delays, sleeper) = recording_sleeper();
    let c = GlpiClient::new(&base, &fast_opts())
        .expect("client")
        .with_sleeper(sleeper);
    let e = c.post(Endpoint::States, b"{}").await.expect_err("refused");
    assert!(matches!(e, TransportError::Connect { .. }), "{e:?}");
    assert!(!e.request_may_have_reached_server());
    assert!(e.is_retryable());
    let d = assert_one_line_naming(&e, &format!("{base}/api/states/"));
    assert!(
        d.contains("cannot connect") && d.to_lowercase().contains("refused"),
        "{d}"
    );
    assert_eq!(
        delays.lock().expect("lock").len(),
        2,
        "3 attempts = 2 waits"
    );
}

#[tokio::test]
async fn timeout_is_honoured_and_reported() {
    let server = Server::start(vec![Action::Hang]).await;
    let opts = HttpOptions {
        timeout: 1,
        retry: RetryPolicy::no_retry(),
        ..fast_opts()
    };
    let c = client(&server, &opts);
    let started = Instant::now();
    let e = c.post(Endpoint::States, b"{}").await.expect_err("timeout");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(8),
        "timeout ignored? {elapsed:?}"
    );
    match &e {
        TransportError::Timeout {
            after, connecting, ..
        } => {
            assert_eq!(*after, Duration::from_secs(1));
            assert!(!connecting);
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(e.request_may_have_reached_server());
    let d = assert_one_line_naming(&e, &format!("{}/api/states/", server.base()));
    assert!(d.contains("within 1 s (timeout)"), "{d}");
}

#[tokio::test]
async fn dropped_connection_is_io_and_retried_when_replay_safe() {
    let server = Server::start(vec![Action::Drop, json(200, "")]).await;
    let c = client(&server, &fast_opts());
    let reply = c
        .post(Endpoint::Alerts, b"{}")
        .await
        .expect("second attempt succeeds");
    assert_eq!(reply.status, 200);
    assert_eq!(server.requests().len(), 2);

    let server = Server::start(vec![Action::Drop]).await;
    let c = client(&server, &fast_opts());
    let e = c.post(Endpoint::Agents, b"{}").await.expect_err("dropped");
    assert!(matches!(e, TransportError::Io { .. }), "{e:?}");
    assert!(e.request_may_have_reached_server());
    assert_one_line_naming(&e, &format!("{}/api/agents/", server.base()));
    assert_eq!(
        server.requests().len(),
        1,
        "enrollment is never re-sent once it may have arrived"
    );
}

#[tokio::test]
async fn redirect_is_not_followed_for_post() {
    let server = Server::start(vec![with_headers(
        301,
        &[("Location", "/glpi/plugins/armadito/api/agents/")],
    )])
    .await;
    // A configured URL that (wrongly) yields a redirect.
    let c = client(&server, &fast_opts());
    let e = c.post(Endpoint::Agents, b"{}").await.expect_err("301");
    let location = format!("{}/api/agents/", server.base());
    match &e {
        TransportError::Redirect {
            status,
            location: l,
            ..
        } => {
            assert_eq!(*status, 301);
            assert_eq!(l, &location, "relative Location resolved");
        }
        other => panic!("expected Redirect, got {other:?}"),
    }
    let d = assert_one_line_naming(&e, &format!("{}/api/agents/", server.base()));
    assert!(
        d.contains(&format!(
            "server redirected to {location}: check the `server` URL (trailing slash?"
        )),
        "{d}"
    );
    assert_eq!(server.requests().len(), 1, "not followed, not retried");
}

#[tokio::test]
async fn retry_after_503_is_honoured_then_success() {
    let server = Server::start(vec![
        with_headers(503, &[("Retry-After", "2")]),
        json(200, ""),
    ])
    .await;
    let opts = HttpOptions {
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay_ms: 1,
            max_delay_ms: 5_000,
        },
        ..fast_opts()
    };
    let (delays, sleeper) = recording_sleeper();
    let c = client(&server, &opts).with_sleeper(sleeper);
    let reply = c
        .post(Endpoint::States, b"{}")
        .await
        .expect("success after 503");
    assert_eq!(reply.status, 200);
    assert_eq!(
        *delays.lock().expect("lock"),
        [Duration::from_secs(2)],
        "Retry-After, not backoff"
    );
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn retry_after_really_sleeps_and_is_capped() {
    // Real sleeping: Retry-After 1 s honoured (backoff alone would be ≤ 1 ms).
    let server = Server::start(vec![
        with_headers(503, &[("Retry-After", "1")]),
        json(200, ""),
    ])
    .await;
    let opts = HttpOptions {
        retry: RetryPolicy {
            max_attempts: 2,
            base_delay_ms: 1,
            max_delay_ms: 5_000,
        },
        ..fast_opts()
    };
    let started = Instant::now();
    client(&server, &opts)
        .post(Endpoint::States, b"{}")
        .await
        .expect("success");
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );

    // Retry-After far above the cap: capped at max_delay.
    let server = Server::start(vec![
        with_headers(429, &[("Retry-After", "Wed, 21 Oct 2099 07:28:00 GMT")]),
        json(200, ""),
    ])
    .await;
    let (delays, sleeper) = recording_sleeper();
    let opts = HttpOptions {
        retry: RetryPolicy {
            max_attempts: 2,
            base_delay_ms: 1,
            max_delay_ms: 50,
        },
        ..fast_opts()
    };
    client(&server, &opts)
        .with_sleeper(sleeper)
        .post(Endpoint::Alerts, b"{}")
        .await
        .expect("success after 429");
    assert_eq!(*delays.lock().expect("lock"), [Duration::from_millis(50)]);
}

#[tokio::test]
async fn replay_unsafe_requests_are_not_resent_after_500_or_timeout() {
    // POST agents: 500 (transient-looking) → not re-sent.
    let server = Server::start(vec![json(
        500,
        r#"{"error" : "executeQuery NewAgent failed. Deadlock"}"#,
    )])
    .await;
    let c = client(&server, &fast_opts());
    let e = c.post(Endpoint::Agents, b"{}").await.expect_err("500");
    assert!(e.is_retryable(), "retryable in itself…");
    assert_eq!(
        server.requests().len(),
        1,
        "…but enrollment consumed a key use: not re-sent"
    );

    // GET jobs: timeout → not re-sent (the jobs may already be marked downloaded).
    let server = Server::start(vec![Action::Hang, json(200, r#"{"jobs": []}"#)]).await;
    let opts = HttpOptions {
        timeout: 1,
        ..fast_opts()
    };
    let e = client(&server, &opts)
        .get_jobs(3)
        .await
        .expect_err("timeout");
    assert!(matches!(e, TransportError::Timeout { .. }), "{e:?}");
    assert_eq!(server.requests().len(), 1);

    // The same failures on replay-safe endpoints are retried.
    let server = Server::start(vec![Action::Hang, json(200, "")]).await;
    client(&server, &opts)
        .post(Endpoint::Jobs, b"{}")
        .await
        .expect("retried");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn replay_unsafe_request_is_retried_after_connection_refused() {
    // Nothing listens at first; during the first backoff the server comes up on that port.
    let (addr, base) = refused_port().await;
    let started: Arc<Mutex<Option<Server>>> = Arc::new(Mutex::new(None));
    let slot = started.clone();
    let c = GlpiClient::new(&base, &fast_opts())
        .expect("client")
        .with_sleeper(move |_| {
            let slot = slot.clone();
            Box::pin(async move {
                let mut guard = slot.lock().expect("lock");
                if guard.is_none() {
                    let listener = std::net::TcpListener::bind(addr).expect("rebind the port");
                    listener.set_nonblocking(true).expect("nonblocking");
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    *guard = Some(Server::on(
                        listener,
                        vec![json(200, r#"{"agent_id": 5,"scheduler_id": 1}"#)],
                    ));
                }
            })
        });
    let reply = c
        .post(Endpoint::Agents, b"{}")
        .await
        .expect("second attempt reaches the server");
    assert_eq!(reply.body, r#"{"agent_id": 5,"scheduler_id": 1}"#);
    let guard = started.lock().expect("lock");
    let server = guard.as_ref().expect("server started by the sleeper");
    assert_eq!(
        server.requests().len(),
        1,
        "exactly one enrollment reached the server"
    );
}

#[tokio::test]
async fn basic_auth_is_sent_preemptively_and_never_printed() {
    let server = Server::start(vec![json(200, "")]).await;
    let opts = HttpOptions {
        user: Some("agent".into()),
        password: Some(Secret::new("s3cr3t-pw")),
        ..fast_opts()
    };
    assert!(!format!("{opts:?}").contains("s3cr3t-pw"));
    let c = client(&server, &opts);
    assert!(!format!("{c:?}").contains("s3cr3t-pw"));
    c.post(Endpoint::States, b"{}").await.expect("200");
    let reqs = server.requests();
    // base64("agent:s3cr3t-pw")
    assert_eq!(
        reqs[0].header("authorization"),
        Some("Basic YWdlbnQ6czNjcjN0LXB3")
    );
}
