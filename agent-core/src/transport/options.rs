//! The `[http]` table of `agent.toml`.
//!
//! Invariants:
//! - every option the old agent documented is honoured for real (its SSL options and `timeout`
//!   were dead, reference-agent.md §12.2/§12.23); validation happens in
//!   [`GlpiClient::new`](super::GlpiClient::new), which names the offending option;
//! - `Debug` never shows the password nor the password of a proxy URL.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::secret::Secret;
use super::urls::redact_url;

/// HTTP client options (`[http]` in `agent.toml`). Every field has a default, unknown keys are
/// rejected so that a typo (`ca-cert-file`) fails loudly instead of silently doing nothing.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpOptions {
    /// Whole-request timeout in seconds (connect + send + wait + read the answer). Default 180,
    /// the old agent's value. Must be ≥ 1.
    pub timeout: u64,
    /// TCP + TLS connect timeout in seconds. Default 30. Must be ≥ 1.
    pub connect_timeout: u64,
    /// PEM file of the CA certificate(s) to trust *instead of* the built-in Mozilla roots.
    pub ca_cert_file: Option<PathBuf>,
    /// Directory whose files hold the PEM CA certificates to trust instead of the built-in roots
    /// (every regular file containing a `CERTIFICATE` block; e.g. an OpenSSL `CApath`). Exclusive
    /// with `ca_cert_file`.
    pub ca_cert_dir: Option<PathBuf>,
    /// Disable every TLS certificate check (UNSAFE: anyone on the path can impersonate the
    /// server). Logged as a WARN at client build.
    pub no_ssl_check: bool,
    /// Proxy URL (`http://[user:pass@]host:port`) for all requests. When unset, the standard
    /// `https_proxy`/`http_proxy`/`all_proxy`/`no_proxy` environment variables apply.
    pub proxy: Option<String>,
    /// HTTP basic user (web-server authentication in front of GLPI; the plugin has none).
    pub user: Option<String>,
    /// HTTP basic password.
    pub password: Option<Secret>,
    /// PEM client certificate (chain) for mutual TLS. Requires `client_key`.
    pub client_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1, unencrypted) matching `client_cert`.
    pub client_key: Option<PathBuf>,
    /// Retry policy (`[http.retry]`).
    pub retry: RetryPolicy,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            timeout: 180,
            connect_timeout: 30,
            ca_cert_file: None,
            ca_cert_dir: None,
            no_ssl_check: false,
            proxy: None,
            user: None,
            password: None,
            client_cert: None,
            client_key: None,
            retry: RetryPolicy::default(),
        }
    }
}

impl HttpOptions {
    /// [`Self::timeout`] as a `Duration`.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout)
    }

    /// [`Self::connect_timeout`] as a `Duration`.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout)
    }
}

impl fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpOptions")
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("ca_cert_file", &self.ca_cert_file)
            .field("ca_cert_dir", &self.ca_cert_dir)
            .field("no_ssl_check", &self.no_ssl_check)
            .field("proxy", &self.proxy.as_deref().map(redact_url))
            .field("user", &self.user)
            .field("password", &self.password)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .field("retry", &self.retry)
            .finish()
    }
}

/// Capped full-jitter exponential backoff (`[http.retry]`).
///
/// The n-th retry (n = 0, 1, …) sleeps `rand(0, min(max_delay, base_delay · 2ⁿ))`, or the
/// server's `Retry-After` (429/503) capped at `max_delay`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Total attempts including the first one (4 = 1 + 3 retries). 0 is treated as 1.
    pub max_attempts: u32,
    /// Backoff base in milliseconds.
    pub base_delay_ms: u64,
    /// Backoff cap (and `Retry-After` cap) in milliseconds.
    pub max_delay_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay_ms: 500,
            max_delay_ms: 30_000,
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub const fn no_retry() -> Self {
        Self {
            max_attempts: 1,
            base_delay_ms: 0,
            max_delay_ms: 0,
        }
    }

    /// `max_attempts`, at least 1.
    pub fn attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }

    /// `max_delay_ms` as a `Duration`.
    pub fn max_delay(&self) -> Duration {
        Duration::from_millis(self.max_delay_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let o: HttpOptions = toml::from_str("").expect("empty table");
        assert_eq!(o, HttpOptions::default());
        assert_eq!(o.timeout(), Duration::from_secs(180));
        assert_eq!(o.connect_timeout(), Duration::from_secs(30));
        assert!(!o.no_ssl_check);
        assert_eq!(
            o.retry,
            RetryPolicy {
                max_attempts: 4,
                base_delay_ms: 500,
                max_delay_ms: 30_000
            }
        );
    }

    #[test]
    fn full_table_parses() {
        let o: HttpOptions = toml::from_str(
            r#"
            timeout = 60
            connect_timeout = 5
            ca_cert_file = "/etc/armadito/ca.pem"
            no_ssl_check = false
            proxy = "http://proxy.lan:3128"
            user = "agent"
            password = "pw"
            client_cert = "/etc/armadito/agent.pem"
            client_key = "/etc/armadito/agent.key"
            [retry]
            max_attempts = 2
            "#,
        )
        .expect("valid table");
        assert_eq!(o.timeout, 60);
        assert_eq!(o.password.as_ref().map(Secret::expose), Some("pw"));
        assert_eq!(o.retry.max_attempts, 2);
        assert_eq!(
            o.retry.base_delay_ms, 500,
            "other retry fields keep defaults"
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let e = toml::from_str::<HttpOptions>("ca-cert-file = \"x\"").expect_err("typo");
        assert!(e.to_string().contains("ca-cert-file"), "{e}");
        let e = toml::from_str::<HttpOptions>("[retry]\nmax = 1").expect_err("typo");
        assert!(e.to_string().contains("max"), "{e}");
    }

    #[test]
    fn debug_hides_passwords() {
        let o = HttpOptions {
            password: Some(Secret::new("hunter2")),
            proxy: Some("http://bob:proxypw@proxy.lan:3128/".into()),
            user: Some("alice".into()),
            ..HttpOptions::default()
        };
        let d = format!("{o:?}");
        assert!(!d.contains("hunter2"), "{d}");
        assert!(!d.contains("proxypw"), "{d}");
        assert!(d.contains("alice") && d.contains("proxy.lan"), "{d}");
    }

    #[test]
    fn attempts_is_at_least_one() {
        let p = RetryPolicy {
            max_attempts: 0,
            ..RetryPolicy::default()
        };
        assert_eq!(p.attempts(), 1);
    }
}
