//! Transport errors: one human line each, and the two facts the retry loop needs.
//!
//! Invariants:
//! - `Display` is ONE line that names the URL (never with credentials: server URLs with
//!   credentials are rejected at build, proxy URLs are redacted) and says what to do;
//! - [`TransportError::request_may_have_reached_server`] answers `false` only when the request
//!   provably never left the agent or never got past connection set-up: the retry loop re-sends
//!   non-replay-safe requests (enrollment, `GET jobs`) on that answer alone;
//! - server bodies are kept only as a short excerpt; messages are extracted leniently (see
//!   [`super::body`]).

use std::path::PathBuf;
use std::time::Duration;

use super::endpoint::{Endpoint, Method};

/// What went wrong in a TLS failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsProblem {
    /// The server's certificate did not verify (unknown CA, wrong name, expired, …).
    ServerCertificate,
    /// Any other handshake failure (client certificate refused or missing, protocol mismatch,
    /// plain HTTP on an HTTPS URL, …).
    Handshake,
}

/// Everything that can go wrong between the agent and the GLPI plugin.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// An `[http]` option is invalid or inconsistent.
    #[error("invalid [http] {option}: {reason}")]
    InvalidOption {
        option: &'static str,
        reason: String,
    },

    /// A CA, certificate or key file named by an option is unreadable or invalid.
    #[error("[http] {option} {}: {reason}", path.display())]
    CertFile {
        option: &'static str,
        path: PathBuf,
        reason: String,
    },

    /// The configured `server` URL is unusable.
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidServerUrl { url: String, reason: String },

    /// The HTTP client could not be built for a reason not attributable to one option.
    #[error("cannot set up the HTTP client: {detail}")]
    ClientBuild { detail: String },

    /// The agent refused to send a request the server cannot handle.
    #[error("refusing to send {method} {url}: {reason}")]
    InvalidRequest {
        method: Method,
        url: String,
        reason: String,
    },

    /// The server answered with a non-2xx, non-3xx status.
    #[error("{method} {url}: server answered HTTP {status}: {message}; {}", server_hint(*status))]
    Server {
        endpoint: Endpoint,
        method: Method,
        url: String,
        status: u16,
        /// Leniently extracted message (the plugin's `"error"` value, or the page's text).
        message: String,
        /// The first characters of the raw body (not redacted beyond the enrollment key; keep it
        /// out of INFO+ logs).
        body_excerpt: String,
        /// `Retry-After` of a 429/503, already parsed.
        retry_after: Option<Duration>,
    },

    /// The TCP connection could not be established (refused, DNS failure, unreachable).
    #[error(
        "{method} {url}: cannot connect: {detail}; check the `server` URL, DNS, firewall and proxy settings"
    )]
    Connect {
        method: Method,
        url: String,
        detail: String,
        #[source]
        source: reqwest::Error,
    },

    /// No (complete) answer in time.
    #[error("{}", timeout_line(*method, url, *after, *connecting))]
    Timeout {
        method: Method,
        url: String,
        after: Duration,
        /// The connect timeout fired: the request never left the agent.
        connecting: bool,
        #[source]
        source: reqwest::Error,
    },

    /// TLS failure; the message says which setting to look at.
    #[error("{}", tls_line(url, *problem, detail))]
    Tls {
        method: Method,
        url: String,
        problem: TlsProblem,
        detail: String,
        /// The failure happened while connecting (before the request was sent).
        during_connect: bool,
        #[source]
        source: reqwest::Error,
    },

    /// The server answered 3xx; redirects are never followed (a POST would arrive as an empty
    /// GET, server-api.md §1.1).
    #[error(
        "{method} {url}: server redirected to {location}: check the `server` URL (trailing slash? http instead of https?)"
    )]
    Redirect {
        method: Method,
        url: String,
        status: u16,
        location: String,
    },

    /// The connection broke after the request was (possibly) sent, or the answer was unreadable.
    #[error(
        "{method} {url}: no complete answer: {detail}; the server or a proxy dropped the connection, check their logs"
    )]
    Io {
        method: Method,
        url: String,
        detail: String,
        #[source]
        source: Option<reqwest::Error>,
    },
}

impl TransportError {
    /// Whether trying again later may succeed. Says nothing about whether re-sending is *safe*:
    /// see [`Self::request_may_have_reached_server`] and
    /// [`Endpoint::replay_safety`](super::Endpoint::replay_safety).
    ///
    /// Retryable: connection failures, timeouts, dropped connections, 429, and 5xx except 501/505
    /// and except the plugin's deterministic 500s (validation, unknown key/UUID, not installed:
    /// the same request gets the same answer, see [`is_deterministic_plugin_error`]). Never 4xx
    /// (but 429), TLS, redirects or configuration errors.
    pub fn is_retryable(&self) -> bool {
        match self {
            TransportError::Connect { .. }
            | TransportError::Timeout { .. }
            | TransportError::Io { .. } => true,
            TransportError::Server {
                status, message, ..
            } => match *status {
                429 => true,
                501 | 505 => false,
                500 => !is_deterministic_plugin_error(message),
                s => (500..600).contains(&s),
            },
            TransportError::InvalidOption { .. }
            | TransportError::CertFile { .. }
            | TransportError::InvalidServerUrl { .. }
            | TransportError::ClientBuild { .. }
            | TransportError::InvalidRequest { .. }
            | TransportError::Tls { .. }
            | TransportError::Redirect { .. } => false,
        }
    }

    /// `false` only when the request surely did not reach the server: it was never sent
    /// (configuration errors), or the connection could not be established (refused, DNS, connect
    /// timeout, TLS failure while connecting). Any answer, even a 429/503 from a front proxy,
    /// counts as "may have reached": the agent cannot tell who answered.
    pub fn request_may_have_reached_server(&self) -> bool {
        match self {
            TransportError::InvalidOption { .. }
            | TransportError::CertFile { .. }
            | TransportError::InvalidServerUrl { .. }
            | TransportError::ClientBuild { .. }
            | TransportError::InvalidRequest { .. }
            | TransportError::Connect { .. } => false,
            TransportError::Timeout { connecting, .. } => !connecting,
            TransportError::Tls { during_connect, .. } => !during_connect,
            TransportError::Server { .. }
            | TransportError::Redirect { .. }
            | TransportError::Io { .. } => true,
        }
    }

    /// Whether the error is in the configuration (`server` URL, an `[http]` option or a file it
    /// names): fixing the configuration, not waiting, is what helps.
    pub fn is_config_error(&self) -> bool {
        matches!(
            self,
            TransportError::InvalidOption { .. }
                | TransportError::CertFile { .. }
                | TransportError::InvalidServerUrl { .. }
        )
    }

    /// The HTTP status, for [`Self::Server`] and [`Self::Redirect`].
    pub fn status(&self) -> Option<u16> {
        match self {
            TransportError::Server { status, .. } | TransportError::Redirect { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// The server's `Retry-After` (429/503 only).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TransportError::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The request URL, when there was a request.
    pub fn url(&self) -> Option<&str> {
        match self {
            TransportError::InvalidRequest { url, .. }
            | TransportError::Server { url, .. }
            | TransportError::Connect { url, .. }
            | TransportError::Timeout { url, .. }
            | TransportError::Tls { url, .. }
            | TransportError::Redirect { url, .. }
            | TransportError::Io { url, .. } => Some(url),
            _ => None,
        }
    }
}

/// Whether a plugin 500 message is one the same request will always get again: input
/// validation, unknown key/UUID/job, plugin not installed (server-api.md §1.5 catalogue).
/// Database errors (`executeQuery … failed`, `Error getJobs : …`) and unknown messages are
/// treated as transient.
pub fn is_deterministic_plugin_error(message: &str) -> bool {
    const PREFIXES: [&str; 14] = [
        "Invalid request sent to plugin index",
        "Plugin Armadito is not installed",
        "Json parsing error",
        "Invalid int",
        "Invalid Key format",
        "Invalid UUID",
        "Date is not a valid unix timestamp",
        "DateInterval::__construct()",
        "Enrollment key not found in database",
        "Your enrollment key has expired",
        "Your enrollment key reached its maximum usage count",
        "UUID not found in database",
        "Unknown Job type",
        "Unable to get job from database",
    ];
    PREFIXES.iter().any(|p| message.starts_with(p))
}

fn server_hint(status: u16) -> &'static str {
    match status {
        400 => "the server could not read the request (agent/plugin version mismatch?)",
        401 => "check [http] user and password (web-server authentication in front of GLPI)",
        403 => "access denied by the web server in front of GLPI, check its access rules",
        404 => {
            "check the `server` URL: it must point to <GLPI>/plugins/armadito with the plugin installed"
        }
        407 => "the proxy requires authentication: put user:password in the [http] proxy URL",
        429 | 503 => "the server is busy or in maintenance, try again later",
        500 => "see the GLPI server's files/_log/pluginArmadito.log and PHP error log",
        502 | 504 => "a proxy or gateway could not reach GLPI, check the web server and proxy",
        s if s >= 500 => "server-side failure, check the GLPI web server logs",
        _ => "request refused by the server",
    }
}

fn secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

fn timeout_line(method: Method, url: &str, after: Duration, connecting: bool) -> String {
    if connecting {
        format!(
            "{method} {url}: could not connect within {} (connect_timeout); check that the server is up and reachable (firewall, proxy)",
            secs(after)
        )
    } else {
        format!(
            "{method} {url}: no complete answer within {} (timeout); the server or the network is slow or down; raise [http] timeout if the server is just slow",
            secs(after)
        )
    }
}

fn tls_line(url: &str, problem: TlsProblem, detail: &str) -> String {
    // rustls names certificate errors by enum variant; say what the common ones mean.
    const GLOSSES: [(&str, &str); 4] = [
        (
            "UnknownIssuer",
            "the certificate is signed by a CA the agent does not trust",
        ),
        ("Expired", "the certificate has expired"),
        (
            "NotValidYet",
            "the certificate is not valid yet (check the clocks)",
        ),
        ("BadSignature", "the certificate signature is invalid"),
    ];
    let gloss = GLOSSES
        .iter()
        .find(|(k, _)| detail.contains(k))
        .map(|(_, g)| format!(" ({g})"))
        .unwrap_or_default();
    let detail = format!("{detail}{gloss}");
    match problem {
        TlsProblem::ServerCertificate => format!(
            "TLS certificate verification failed for {url}: {detail}; set ca_cert_file or (unsafe) no_ssl_check"
        ),
        TlsProblem::Handshake => format!(
            "TLS handshake with {url} failed: {detail}; check that the server speaks HTTPS on this port, and set client_cert and client_key if it requires a client certificate"
        ),
    }
}

/// The messages of `err`'s source chain below reqwest's generic top level, de-duplicated and
/// joined with `": "`, on one line.
pub(crate) fn cause_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = err.source();
    while let Some(e) = cur {
        let msg = e
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        // hyper-util's wrappers ("client error (Connect)") add nothing a reader can use.
        let noise = msg.starts_with("client error (") && msg.ends_with(')');
        if !msg.is_empty() && !noise && !parts.iter().any(|p| p.contains(&msg)) {
            // Drop a parent whose text the child repeats ("…: Connection refused").
            parts.retain(|p| !msg.contains(p.as_str()));
            parts.push(msg);
        }
        cur = e.source();
    }
    if parts.is_empty() {
        err.to_string()
    } else {
        parts.join(": ")
    }
}

/// Sorts a reqwest failure into the variant whose advice fits.
pub(crate) fn from_reqwest(
    err: reqwest::Error,
    method: Method,
    url: &str,
    timeout: Duration,
    connect_timeout: Duration,
) -> TransportError {
    let err = err.without_url();
    let detail = cause_chain(&err);
    let lower = detail.to_ascii_lowercase();
    let url = url.to_owned();
    if lower.contains("invalid peer certificate") || lower.contains("certificate verify failed") {
        return TransportError::Tls {
            method,
            url,
            problem: TlsProblem::ServerCertificate,
            during_connect: err.is_connect(),
            detail,
            source: err,
        };
    }
    let tls_markers = [
        "received fatal alert",
        "tls handshake",
        "peer is incompatible",
        "peer misbehaved",
        "corrupt message",
        "invalidcontenttype",
        "certificaterequired",
    ];
    if tls_markers.iter().any(|m| lower.contains(m)) {
        return TransportError::Tls {
            method,
            url,
            problem: TlsProblem::Handshake,
            during_connect: err.is_connect(),
            detail,
            source: err,
        };
    }
    if err.is_timeout() {
        let connecting = err.is_connect();
        return TransportError::Timeout {
            method,
            url,
            after: if connecting { connect_timeout } else { timeout },
            connecting,
            source: err,
        };
    }
    if err.is_connect() {
        return TransportError::Connect {
            method,
            url,
            detail,
            source: err,
        };
    }
    TransportError::Io {
        method,
        url,
        detail,
        source: Some(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(status: u16, message: &str) -> TransportError {
        TransportError::Server {
            endpoint: Endpoint::States,
            method: Method::Post,
            url: "https://h/glpi/plugins/armadito/api/states/".into(),
            status,
            message: message.into(),
            body_excerpt: String::new(),
            retry_after: None,
        }
    }

    #[test]
    fn server_display_is_one_line_with_url_and_advice() {
        let d = server(
            500,
            "UUID not found in database. This agent has to be re-enrolled.",
        )
        .to_string();
        assert_eq!(
            d,
            "POST https://h/glpi/plugins/armadito/api/states/: server answered HTTP 500: UUID not found in database. This agent has to be re-enrolled.; see the GLPI server's files/_log/pluginArmadito.log and PHP error log"
        );
        assert!(!d.contains('\n'));
    }

    #[test]
    fn retryable_statuses() {
        assert!(server(500, "executeQuery NewAlert failed. Deadlock").is_retryable());
        assert!(server(502, "Bad Gateway").is_retryable());
        assert!(server(503, "").is_retryable());
        assert!(server(429, "").is_retryable());
        for s in [400, 401, 403, 404, 408, 413, 501, 505] {
            assert!(!server(s, "x").is_retryable(), "{s}");
        }
        assert!(
            !server(
                500,
                "UUID not found in database. This agent has to be re-enrolled."
            )
            .is_retryable()
        );
        assert!(!server(500, r#"Invalid UUID : "x""#).is_retryable());
        assert!(server(500, "empty body").is_retryable());
    }

    #[test]
    fn configuration_errors_never_reached_the_server() {
        let e = TransportError::InvalidOption {
            option: "timeout",
            reason: "must be at least 1 second".into(),
        };
        assert!(!e.request_may_have_reached_server());
        assert!(!e.is_retryable());
        assert_eq!(
            e.to_string(),
            "invalid [http] timeout: must be at least 1 second"
        );
        assert!(server(500, "x").request_may_have_reached_server());
    }
}
