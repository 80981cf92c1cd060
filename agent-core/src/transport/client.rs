//! [`GlpiClient`]: one configured reqwest client, the retry loop, and the mapping of every
//! answer to a [`Reply`] or a [`TransportError`].

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use regex::Regex;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION, RETRY_AFTER,
};
use reqwest::{Identity, Url};
use tracing::{debug, trace, warn};

use super::body::{excerpt, json_object_start, server_message};
use super::endpoint::{Endpoint, Method};
use super::error::{TransportError, cause_chain, from_reqwest};
use super::options::{HttpOptions, RetryPolicy};
use super::retry::{parse_retry_after, retry_delay, should_retry};
use super::tls::{CaFile, load_ca_dir, load_ca_file, load_identity};
use super::urls::{endpoint_url, endpoint_url_for_agent, normalize_server_url, redact_url};

/// `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("armadito-agent/", env!("CARGO_PKG_VERSION"));

/// Largest response body read (the biggest legitimate answer, `GET jobs` with
/// `getjobs_limit` jobs, is a few KiB); a bigger body is an error, not an allocation.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// A 2xx answer. `body` is decoded as UTF-8 (lossily: the plugin only writes UTF-8).
///
/// A 2xx is not proof of success at the protocol level: PHP fatal errors come back as 200
/// `text/html` (server-api.md Addendum 1). Callers parsing JSON use [`Reply::json_object`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: String,
}

impl Reply {
    /// The body from its first `{` (PHP notices may precede the JSON), see
    /// [`json_object_start`].
    pub fn json_object(&self) -> Option<&str> {
        json_object_start(&self.body)
    }

    /// Whether the server labelled the body `text/html` (a PHP error page, a proxy page).
    pub fn is_html(&self) -> bool {
        self.content_type
            .as_deref()
            .is_some_and(|c| c.to_ascii_lowercase().starts_with("text/html"))
    }

    /// A one-line summary of the body, for error messages when it is not what the protocol says.
    pub fn summary(&self) -> String {
        server_message(&self.body)
    }
}

/// A boxed sleep, as returned by a custom sleeper (see [`GlpiClient::with_sleeper`]).
pub type SleepFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

type Sleeper = Arc<dyn Fn(Duration) -> SleepFuture + Send + Sync>;

/// HTTP client of the Armadito GLPI plugin. Cheap to clone (shares one connection pool).
#[derive(Clone)]
pub struct GlpiClient {
    http: reqwest::Client,
    base: Url,
    retry: RetryPolicy,
    timeout: Duration,
    connect_timeout: Duration,
    sleeper: Sleeper,
}

impl fmt::Debug for GlpiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GlpiClient")
            .field("base", &self.base.as_str())
            .field("retry", &self.retry)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl GlpiClient {
    /// Builds the client for `server` (the plugin directory, e.g.
    /// `https://glpi.example.org/glpi/plugins/armadito`, trailing slash optional).
    ///
    /// Reads the CA / client certificate / key files now, so that a bad file fails at start-up
    /// with its name and the reason, not at the first request.
    pub fn new(server: &str, opts: &HttpOptions) -> Result<Self, TransportError> {
        let base = normalize_server_url(server)?;
        if opts.timeout == 0 {
            return Err(invalid("timeout", "must be at least 1 second"));
        }
        if opts.connect_timeout == 0 {
            return Err(invalid("connect_timeout", "must be at least 1 second"));
        }

        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(auth) = basic_auth_header(opts)? {
            if base.scheme() == "http" {
                warn!(
                    server = %base,
                    "[http] user/password are sent in clear text over plain http; use an https server URL"
                );
            }
            headers.insert(AUTHORIZATION, auth);
        }

        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .user_agent(USER_AGENT)
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(opts.timeout())
            .connect_timeout(opts.connect_timeout());

        let cas: Vec<CaFile> = match (&opts.ca_cert_file, &opts.ca_cert_dir) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "ca_cert_file/ca_cert_dir",
                    "set only one of ca_cert_file and ca_cert_dir",
                ));
            }
            (Some(file), None) => vec![load_ca_file(file)?],
            (None, Some(dir)) => load_ca_dir(dir)?,
            (None, None) => Vec::new(),
        };
        if !cas.is_empty() {
            // The configured CAs replace the built-in roots, as the old agent's SSL_ca_file did:
            // an admin who names a CA means "trust this one".
            builder = builder.tls_built_in_root_certs(false);
            for cert in cas.iter().flat_map(|ca| ca.certs.iter()) {
                builder = builder.add_root_certificate(cert.clone());
            }
        }
        if opts.no_ssl_check {
            warn!(
                server = %base,
                "!!! [http] no_ssl_check = true: TLS certificates are NOT verified; anyone on the network path can impersonate the GLPI server and read or alter everything the agent sends and receives. Set ca_cert_file instead !!!"
            );
            builder = builder.danger_accept_invalid_certs(true);
        }

        let identity: Option<(&Path, &Path, Identity)> = match (&opts.client_cert, &opts.client_key)
        {
            (Some(cert), Some(key)) => Some((cert, key, load_identity(cert, key)?)),
            (Some(_), None) => {
                return Err(invalid(
                    "client_key",
                    "client_cert is set but client_key is not",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "client_cert",
                    "client_key is set but client_cert is not",
                ));
            }
            (None, None) => None,
        };
        if let Some((_, _, id)) = &identity {
            builder = builder.identity(id.clone());
        }

        if let Some(proxy) = &opts.proxy {
            builder = builder.proxy(build_proxy(proxy)?);
        }

        let http = builder
            .build()
            .map_err(|e| diagnose_build_failure(&e, &cas, identity.as_ref()))?;
        debug!(
            server = %base,
            timeout_s = opts.timeout,
            connect_timeout_s = opts.connect_timeout,
            proxy = opts.proxy.as_deref().map(redact_url).as_deref().unwrap_or("(environment)"),
            ca_files = cas.len(),
            client_cert = identity.is_some(),
            "HTTP client ready"
        );
        Ok(Self {
            http,
            base,
            retry: opts.retry.clone(),
            timeout: opts.timeout(),
            connect_timeout: opts.connect_timeout(),
            sleeper: Arc::new(|d| Box::pin(tokio::time::sleep(d))),
        })
    }

    /// Replaces the function used to wait between attempts (tests record the delays instead of
    /// sleeping; a daemon may make the wait abort on shutdown).
    pub fn with_sleeper<F>(mut self, sleeper: F) -> Self
    where
        F: Fn(Duration) -> SleepFuture + Send + Sync + 'static,
    {
        self.sleeper = Arc::new(sleeper);
        self
    }

    /// The normalised server base URL (no trailing slash).
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// `<base>/api/<name>/`.
    pub fn endpoint_url(&self, endpoint: Endpoint) -> Url {
        endpoint_url(&self.base, endpoint)
    }

    /// `POST <base>/api/<name>/` with a JSON body. Retried per [`Endpoint::replay_safety`].
    pub async fn post(&self, endpoint: Endpoint, body: &[u8]) -> Result<Reply, TransportError> {
        let url = self.endpoint_url(endpoint);
        // PHP's `empty()` is true for "" and "0": the server would answer 400.
        if body.is_empty() || body == b"0" {
            return Err(TransportError::InvalidRequest {
                method: Method::Post,
                url: url.to_string(),
                reason: "empty body (the server answers 400 to an empty or \"0\" body)".to_owned(),
            });
        }
        self.execute(endpoint, Method::Post, url, Some(body)).await
    }

    /// `GET <base>/api/jobs/?agent_id=N`. Never re-sent once it may have reached the server:
    /// the server marks the jobs downloaded before answering.
    pub async fn get_jobs(&self, agent_id: i64) -> Result<Reply, TransportError> {
        let url = endpoint_url_for_agent(&self.base, Endpoint::Jobs, agent_id);
        self.execute(Endpoint::Jobs, Method::Get, url, None).await
    }

    /// `GET <base>/api/{avconfigs,schedulers}/?agent_id=N` (documented, not implemented by plugin
    /// 0.10.1, which answers 400). Other endpoints are refused without a request.
    pub async fn get_config(
        &self,
        endpoint: Endpoint,
        agent_id: i64,
    ) -> Result<Reply, TransportError> {
        let url = endpoint_url_for_agent(&self.base, endpoint, agent_id);
        match endpoint {
            Endpoint::AvConfigs | Endpoint::Schedulers => {
                self.execute(endpoint, Method::Get, url, None).await
            }
            _ => Err(TransportError::InvalidRequest {
                method: Method::Get,
                url: url.to_string(),
                reason: format!(
                    "there is no configuration to GET from {endpoint} (only avconfigs and schedulers)"
                ),
            }),
        }
    }

    async fn execute(
        &self,
        endpoint: Endpoint,
        method: Method,
        url: Url,
        body: Option<&[u8]>,
    ) -> Result<Reply, TransportError> {
        let safety = endpoint.replay_safety(method);
        let max = self.retry.attempts();
        let mut attempt: u32 = 1;
        loop {
            let err = match self.send_once(endpoint, method, &url, body).await {
                Ok(reply) => return Ok(reply),
                Err(err) => err,
            };
            if attempt >= max || !should_retry(safety, &err) {
                if attempt < max && err.is_retryable() {
                    debug!(
                        %method, url = %url, attempt, max,
                        "not re-sending: the request may have reached the server and {method} {endpoint} is not replay-safe"
                    );
                }
                return Err(err);
            }
            let delay = {
                let mut rng = rand::rng();
                retry_delay(&self.retry, attempt - 1, err.retry_after(), &mut rng)
            };
            warn!(
                "retrying {method} {url} (attempt {next}/{max}) in {ms} ms: {err}",
                next = attempt + 1,
                ms = delay.as_millis()
            );
            (self.sleeper)(delay).await;
            attempt += 1;
        }
    }

    async fn send_once(
        &self,
        endpoint: Endpoint,
        method: Method,
        url: &Url,
        body: Option<&[u8]>,
    ) -> Result<Reply, TransportError> {
        let url_s = url.as_str();
        // Enrollment bodies carry the enrollment key: never log them, at any level.
        let loggable = endpoint != Endpoint::Agents;
        let mut req = self.http.request(method.into(), url.clone());
        if let Some(b) = body {
            if loggable {
                trace!(%method, url = url_s, body = %String::from_utf8_lossy(b), "request body");
            }
            req = req.body(b.to_vec());
        }
        let started = Instant::now();
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let err = from_reqwest(e, method, url_s, self.timeout, self.connect_timeout);
                debug!(
                    %method, url = url_s, elapsed_ms = elapsed_ms(started), error = %err,
                    "request failed"
                );
                return Err(err);
            }
        };
        let status = resp.status();
        debug!(
            %method, url = url_s, status = status.as_u16(), elapsed_ms = elapsed_ms(started),
            "response"
        );

        if status.is_redirection() {
            let location = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(|l| url.join(l).map_or_else(|_| l.to_owned(), |u| u.to_string()))
                .map_or_else(|| "(no Location header)".to_owned(), |l| redact_url(&l));
            return Err(TransportError::Redirect {
                method,
                url: url_s.to_owned(),
                status: status.as_u16(),
                location,
            });
        }
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let retry_after = if matches!(status.as_u16(), 429 | 503) {
            resp.headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()))
        } else {
            None
        };
        let text = self.read_body(resp, method, url_s).await?;

        if status.is_success() {
            if loggable {
                trace!(%method, url = url_s, body = %excerpt(&text), "response body");
            }
            return Ok(Reply {
                status: status.as_u16(),
                content_type,
                body: text,
            });
        }
        let (mut message, mut body_excerpt) = (server_message(&text), excerpt(&text));
        if endpoint == Endpoint::Agents {
            message = redact_enrollment_key(&message);
            body_excerpt = redact_enrollment_key(&body_excerpt);
        }
        Err(TransportError::Server {
            endpoint,
            method,
            url: url_s.to_owned(),
            status: status.as_u16(),
            message,
            body_excerpt,
            retry_after,
        })
    }

    /// The whole body, at most [`MAX_BODY_BYTES`], lossily decoded as UTF-8.
    async fn read_body(
        &self,
        mut resp: reqwest::Response,
        method: Method,
        url: &str,
    ) -> Result<String, TransportError> {
        let mut buf: Vec<u8> = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if buf.len() + chunk.len() > MAX_BODY_BYTES {
                        return Err(TransportError::Io {
                            method,
                            url: url.to_owned(),
                            detail: format!(
                                "response body larger than {} MiB",
                                MAX_BODY_BYTES / (1024 * 1024)
                            ),
                            source: None,
                        });
                    }
                    buf.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(from_reqwest(
                        e,
                        method,
                        url,
                        self.timeout,
                        self.connect_timeout,
                    ));
                }
            }
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
}

fn invalid(option: &'static str, reason: &str) -> TransportError {
    TransportError::InvalidOption {
        option,
        reason: reason.to_owned(),
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Preemptive HTTP basic `Authorization` (marked sensitive so hyper never logs it).
///
/// Sent on every request rather than after a 401 like the old agent: a 401 round-trip would make
/// every request two, and re-sending an enrollment after a challenge is exactly the kind of
/// replay [`Endpoint::replay_safety`] forbids.
fn basic_auth_header(opts: &HttpOptions) -> Result<Option<HeaderValue>, TransportError> {
    let user = match (&opts.user, &opts.password) {
        (None, None) => return Ok(None),
        (None, Some(_)) => return Err(invalid("user", "password is set but user is not")),
        (Some(user), _) => user,
    };
    if user.is_empty() {
        return Err(invalid("user", "is empty"));
    }
    if user.contains(':') || user.chars().any(char::is_control) {
        return Err(invalid(
            "user",
            "must not contain ':' or control characters",
        ));
    }
    let password = opts.password.as_ref().map_or("", |p| p.expose());
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut value = HeaderValue::from_str(&format!("Basic {token}"))
        .map_err(|_| invalid("user", "cannot be encoded in an HTTP header"))?;
    value.set_sensitive(true);
    Ok(Some(value))
}

fn build_proxy(raw: &str) -> Result<reqwest::Proxy, TransportError> {
    let shown = redact_url(raw.trim());
    let url = Url::parse(raw.trim()).map_err(|e| TransportError::InvalidOption {
        option: "proxy",
        reason: format!(
            "{shown:?} is not a URL ({e}); expected e.g. http://proxy.example.org:3128"
        ),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(TransportError::InvalidOption {
            option: "proxy",
            reason: format!(
                "{shown:?}: scheme {:?} is not supported (http:// or https:// proxies only)",
                url.scheme()
            ),
        });
    }
    let proxy = reqwest::Proxy::all(url.as_str()).map_err(|e| TransportError::InvalidOption {
        option: "proxy",
        reason: format!("{shown:?}: {}", cause_chain(&e)),
    })?;
    // Like curl: an explicit proxy still honours `no_proxy`/`NO_PROXY`.
    Ok(proxy.no_proxy(reqwest::NoProxy::from_env()))
}

/// Turns a client build failure into an error that names the file at fault, by building with
/// each CA file, then the identity, alone.
fn diagnose_build_failure(
    err: &reqwest::Error,
    cas: &[CaFile],
    identity: Option<&(&Path, &Path, Identity)>,
) -> TransportError {
    for ca in cas {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false);
        for cert in &ca.certs {
            b = b.add_root_certificate(cert.clone());
        }
        if let Err(e) = b.build() {
            return TransportError::CertFile {
                option: ca.option,
                path: ca.path.clone(),
                reason: format!("unusable CA certificate: {}", cause_chain(&e)),
            };
        }
    }
    if let Some((cert, key, id)) = identity
        && let Err(e) = reqwest::Client::builder()
            .use_rustls_tls()
            .identity(id.clone())
            .build()
    {
        return TransportError::CertFile {
            option: "client_key",
            path: key.to_path_buf(),
            reason: format!(
                "unusable with client_cert {}: {} (does the key match the certificate?)",
                cert.display(),
                cause_chain(&e)
            ),
        };
    }
    TransportError::ClientBuild {
        detail: cause_chain(err),
    }
}

/// Hides enrollment keys the server echoes back (`Invalid Key format : "<key>"`) and anything
/// shaped like one.
fn redact_enrollment_key(text: &str) -> String {
    static INVALID_KEY: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(Invalid Key format\s*:\s*).*").expect("constant pattern"));
    static KEY_SHAPED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\b[A-Za-z0-9]{5}(?:-[A-Za-z0-9]{5}){4}\b").expect("constant pattern")
    });
    let text = INVALID_KEY.replace_all(text, "${1}\"***\"");
    KEY_SHAPED
        .replace_all(&text, "*****-*****-*****-*****-*****")
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::secret::Secret;

    #[test]
    fn enrollment_keys_are_redacted_from_server_messages() {
        assert_eq!(
            redact_enrollment_key(r#"Invalid Key format : "aaaaf-111af-dz78f""#),
            r#"Invalid Key format : "***""#
        );
        assert_eq!(
            redact_enrollment_key("key AAAAF-111AF-DZ78F-EE78F-DDD1F expired"),
            "key *****-*****-*****-*****-***** expired"
        );
        assert_eq!(
            redact_enrollment_key("UUID 4C4C4544-0033-4A10-8051-B4C04F4E4B32 unknown"),
            "UUID 4C4C4544-0033-4A10-8051-B4C04F4E4B32 unknown"
        );
    }

    #[test]
    fn basic_auth_rules() {
        let mut o = HttpOptions::default();
        assert!(basic_auth_header(&o).expect("none").is_none());
        o.password = Some(Secret::new("pw"));
        assert!(basic_auth_header(&o).is_err(), "password without user");
        o.user = Some("a:b".into());
        assert!(basic_auth_header(&o).is_err(), "colon in user");
        o.user = Some("agent".into());
        let v = basic_auth_header(&o).expect("ok").expect("some");
        assert!(v.is_sensitive());
        assert_eq!(v.to_str().expect("ascii"), "Basic YWdlbnQ6cHc=");
        o.password = None;
        let v = basic_auth_header(&o).expect("ok").expect("some");
        assert_eq!(v.to_str().expect("ascii"), "Basic YWdlbnQ6");
    }

    #[test]
    fn option_validation() {
        let e = |o: HttpOptions| {
            GlpiClient::new("https://h/glpi/plugins/armadito", &o)
                .expect_err("invalid")
                .to_string()
        };
        let msg = e(HttpOptions {
            ca_cert_file: Some("/a".into()),
            ca_cert_dir: Some("/b".into()),
            ..HttpOptions::default()
        });
        assert_eq!(
            msg,
            "invalid [http] ca_cert_file/ca_cert_dir: set only one of ca_cert_file and ca_cert_dir"
        );
        assert!(
            e(HttpOptions {
                timeout: 0,
                ..HttpOptions::default()
            })
            .contains("timeout")
        );
        assert!(
            e(HttpOptions {
                client_cert: Some("/c".into()),
                ..HttpOptions::default()
            })
            .contains("client_key")
        );
        assert!(
            e(HttpOptions {
                proxy: Some("socks5://u:pw@p:1080".into()),
                ..HttpOptions::default()
            })
            .contains("not supported")
        );
        let m = e(HttpOptions {
            proxy: Some("::nope u:pw@".into()),
            ..HttpOptions::default()
        });
        assert!(m.contains("proxy"), "{m}");
    }

    #[test]
    fn reply_helpers() {
        let r = Reply {
            status: 200,
            content_type: Some("text/html; charset=UTF-8".into()),
            body: "<div>PHP Notice: x</div>{\"agent_id\": 1}".into(),
        };
        assert!(r.is_html());
        assert_eq!(r.json_object(), Some("{\"agent_id\": 1}"));
    }
}
