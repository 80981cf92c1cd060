//! The `proxy` option, against a loopback proxy that records the request line and answers
//! itself. The server host does not resolve: only a request sent through the proxy can succeed.

mod transport_support;

use agent_core::transport::{Endpoint, GlpiClient, HttpOptions, RetryPolicy};
use transport_support::{Server, fast_opts, json, with_headers};

const UNRESOLVABLE: &str = "http://glpi.invalid/glpi/plugins/armadito";

#[tokio::test]
async fn proxy_option_carries_http_requests_in_absolute_form() {
    let proxy = Server::start(vec![json(200, ""), json(200, r#"{"jobs": []}"#)]).await;
    let opts = HttpOptions {
        proxy: Some(proxy.origin()),
        ..fast_opts()
    };
    let c = GlpiClient::new(UNRESOLVABLE, &opts).expect("client");
    c.post(Endpoint::States, b"{\"x\":1}")
        .await
        .expect("through the proxy");
    let reply = c.get_jobs(4).await.expect("through the proxy");
    assert_eq!(reply.body, r#"{"jobs": []}"#);

    let reqs = proxy.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].target.as_str()),
        (
            "POST",
            "http://glpi.invalid/glpi/plugins/armadito/api/states/"
        )
    );
    assert_eq!(reqs[0].body, b"{\"x\":1}");
    assert_eq!(reqs[0].header("content-type"), Some("application/json"));
    assert_eq!(
        (reqs[1].method.as_str(), reqs[1].target.as_str()),
        (
            "GET",
            "http://glpi.invalid/glpi/plugins/armadito/api/jobs/?agent_id=4"
        )
    );
    assert_eq!(reqs[0].header("proxy-authorization"), None);
}

#[tokio::test]
async fn proxy_credentials_are_sent_and_never_printed() {
    let proxy = Server::start(vec![json(200, "")]).await;
    let proxy_url = format!("http://bob:pr0xy-pw@{}", proxy.addr);
    let opts = HttpOptions {
        proxy: Some(proxy_url),
        ..fast_opts()
    };
    assert!(!format!("{opts:?}").contains("pr0xy-pw"));
    let c = GlpiClient::new(UNRESOLVABLE, &opts).expect("client");
    c.post(Endpoint::Alerts, b"{}")
        .await
        .expect("through the proxy");
    let reqs = proxy.requests();
    // base64("bob:pr0xy-pw")
    assert_eq!(
        reqs[0].header("proxy-authorization"),
        Some("Basic Ym9iOnByMHh5LXB3")
    );
}

#[tokio::test]
async fn proxy_option_tunnels_https_with_connect() {
    let proxy = Server::start(vec![with_headers(403, &[])]).await;
    let opts = HttpOptions {
        proxy: Some(proxy.origin()),
        retry: RetryPolicy::no_retry(),
        ..fast_opts()
    };
    let c = GlpiClient::new("https://glpi.invalid/glpi/plugins/armadito", &opts).expect("client");
    let e = c
        .post(Endpoint::States, b"{}")
        .await
        .expect_err("proxy refused the tunnel");
    let reqs = proxy.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].target.as_str()),
        ("CONNECT", "glpi.invalid:443")
    );
    let d = e.to_string();
    assert!(
        d.contains("https://glpi.invalid/glpi/plugins/armadito/api/states/"),
        "{d}"
    );
    assert!(!d.contains('\n'), "{d}");
}
