//! The seven `api/<name>/index.php` scripts: dispatch (§1.2), response
//! shapes (§1.5) and the per-endpoint state machine (§3).
//!
//! Everything here is synchronous and runs under the double's single lock,
//! so a request is applied atomically — the PHP scripts were not, but no
//! agent-visible behaviour depends on interleaving within one request.

mod agents;
mod alerts;
mod common;
mod config;
mod jobs;
mod scans;
mod states;
mod strict;

pub use alerts::checksum;

use serde_json::Value;

use super::Quirks;
use super::db::Db;
use super::php::{Ctx, Failure, PLUGIN_DIR, json_decode};

/// The plugin version string sent in headers (never bumped upstream).
pub const PLUGIN_VERSION: &str = "0.10.1";

/// The seven endpoint directories under `plugins/armadito/api/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Agents,
    Jobs,
    Scans,
    States,
    Alerts,
    AvConfigs,
    Schedulers,
}

impl Endpoint {
    pub fn from_name(name: &str) -> Option<Endpoint> {
        Some(match name {
            "agents" => Endpoint::Agents,
            "jobs" => Endpoint::Jobs,
            "scans" => Endpoint::Scans,
            "states" => Endpoint::States,
            "alerts" => Endpoint::Alerts,
            "avconfigs" => Endpoint::AvConfigs,
            "schedulers" => Endpoint::Schedulers,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Agents => "agents",
            Endpoint::Jobs => "jobs",
            Endpoint::Scans => "scans",
            Endpoint::States => "states",
            Endpoint::Alerts => "alerts",
            Endpoint::AvConfigs => "avconfigs",
            Endpoint::Schedulers => "schedulers",
        }
    }

    pub const ALL: [Endpoint; 7] = [
        Endpoint::Agents,
        Endpoint::Jobs,
        Endpoint::Scans,
        Endpoint::States,
        Endpoint::Alerts,
        Endpoint::AvConfigs,
        Endpoint::Schedulers,
    ];
}

/// What the PHP script sees of a request.
#[derive(Debug, Clone)]
pub struct ApiRequest<'a> {
    pub endpoint: Endpoint,
    pub method: &'a str,
    /// Raw query string (without `?`), if any.
    pub query: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub referer: Option<&'a str>,
    pub body: &'a [u8],
}

/// A complete answer (status, headers in order, body bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Settings the scripts read.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub getjobs_limit: u32,
    pub strict: bool,
    pub quirks: Quirks,
    pub now: i64,
}

/// Response plus strict-mode findings.
#[derive(Debug)]
pub struct Handled {
    pub response: ApiResponse,
    pub violations: Vec<String>,
}

/// Which headers a response carries, depending on how far PHP got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeaderSet {
    /// `initGLPISession()` ran and `writeHttpHeader()` ran.
    Plugin,
    /// Only `writeHttpHeader()` (empty-body 400: no `server-type`).
    NoSession,
    /// `initGLPISession()` ran, then a fatal error: PHP's default HTML type.
    FatalHtml,
    /// Nothing from the plugin (alerts' undefined-function fatal).
    Bare,
}

fn headers(set: HeaderSet) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = vec![
        ("X-Powered-By".into(), "PHP/7.2.34".into()),
        ("Expires".into(), "Thu, 19 Nov 1981 08:52:00 GMT".into()),
        (
            "Cache-Control".into(),
            "no-store, no-cache, must-revalidate".into(),
        ),
        ("Pragma".into(), "no-cache".into()),
        (
            "Set-Cookie".into(),
            format!(
                "glpi_8ac3914e6e7da6d3bc9a8dbc49d5d1b9={}; path=/glpi; HttpOnly",
                session_id()
            ),
        ),
    ];
    if matches!(set, HeaderSet::Plugin | HeaderSet::FatalHtml) {
        h.push((
            "server-type".into(),
            format!("glpi/armadito {PLUGIN_VERSION}"),
        ));
    }
    match set {
        HeaderSet::Plugin | HeaderSet::NoSession => {
            h.push(("Content-Type".into(), "application/json".into()));
            h.push(("X-ArmaditoPlugin-Version".into(), PLUGIN_VERSION.into()));
        }
        HeaderSet::FatalHtml | HeaderSet::Bare => {
            h.push(("Content-Type".into(), "text/html; charset=UTF-8".into()))
        }
    }
    h
}

/// A PHP-looking session id (clients must ignore the cookie).
fn session_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..26)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// `writeHttpErrorResponse`'s body: the message is **not** escaped (§1.5)
/// unless the quirk is switched off.
pub fn error_body(message: &str, quirks: &Quirks) -> String {
    if quirks.unescaped_json {
        format!("{{\"error\" : \"{message}\"}}")
    } else {
        let quoted = serde_json::to_string(message).unwrap_or_else(|_| "\"\"".into());
        format!("{{\"error\" : {quoted}}}")
    }
}

/// PHP's HTML rendering of an uncaught `Error` with `display_errors=On`.
fn fatal_html(message: &str, file: &str, line: u32) -> String {
    let path = format!("{PLUGIN_DIR}/{file}");
    format!(
        "<br />\n<b>Fatal error</b>: Uncaught Error: {message} in {path}:{line}\nStack trace:\n#0 {{main}}\n  thrown in <b>{path}</b> on line <b>{line}</b><br />\n"
    )
}

/// Turns the outcome of a script into bytes on the wire.
fn render(ctx: &Ctx, result: Result<String, Failure>, quirks: &Quirks) -> ApiResponse {
    let mut body = ctx.notices_html();
    match result {
        Ok(s) => {
            body.push_str(&s);
            ApiResponse {
                status: 200,
                headers: headers(HeaderSet::Plugin),
                body: body.into_bytes(),
            }
        }
        Err(Failure::Exception { status, message }) => {
            body.push_str(&error_body(&message, quirks));
            ApiResponse {
                status,
                headers: headers(HeaderSet::Plugin),
                body: body.into_bytes(),
            }
        }
        Err(Failure::Fatal {
            message,
            file,
            line,
        }) => {
            body.push_str(&fatal_html(&message, file, line));
            ApiResponse {
                status: 200,
                headers: headers(HeaderSet::FatalHtml),
                body: body.into_bytes(),
            }
        }
    }
}

/// The GLPI core page shown when a form content type triggers the CSRF
/// check (§1.3) — plain HTML with status 200.
fn csrf_page(referer_ok: bool) -> ApiResponse {
    let msg = if referer_ok {
        "The action you have requested is not allowed."
    } else {
        "The action you have requested is not allowed. Reload previous page before doing action again."
    };
    let body = format!(
        "<!DOCTYPE html>\n<html lang=\"fr\">\n<head>\n<meta charset=\"utf-8\">\n<title>GLPI</title>\n</head>\n<body>\n<div class='center'><br><br><img src='/glpi/pics/warning.png' alt='Warning'><br><br>\n<span class='b'>{msg}</span></div>\n</body>\n</html>\n"
    );
    ApiResponse {
        status: 200,
        headers: headers(HeaderSet::Bare),
        body: body.into_bytes(),
    }
}

/// PHP's `$_GET[name]`: last occurrence wins, `name[]` makes an array,
/// `.`/space in names become `_`, values are url-decoded.
pub fn php_query_get(query: Option<&str>, name: &str) -> Option<Value> {
    let mut out: Option<Value> = None;
    for pair in query?.split('&') {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = url_decode(k);
        let v = url_decode(v);
        let k = k.trim_start_matches(' ');
        let (base, is_array) = match k.find('[') {
            Some(i) if k[i..].contains(']') => (&k[..i], true),
            _ => (k, false),
        };
        let base: String = base
            .chars()
            .map(|c| if c == '.' || c == ' ' { '_' } else { c })
            .collect();
        if base != name {
            continue;
        }
        if is_array {
            match &mut out {
                Some(Value::Array(a)) => a.push(Value::String(v)),
                _ => out = Some(Value::Array(vec![Value::String(v)])),
            }
        } else {
            out = Some(Value::String(v));
        }
    }
    out
}

fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(x) => {
                        out.push(x);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// PHP `empty($rawdata)`: `""` and `"0"` are empty.
fn php_empty(body: &[u8]) -> bool {
    body.is_empty() || body == b"0"
}

/// Runs one request against the database.
pub fn handle(db: &mut Db, settings: &Settings, req: &ApiRequest) -> Handled {
    let mut ctx = Ctx::new(settings.strict, settings.now);
    let label = format!("{} {}", req.method, req.endpoint.name());
    let quirks = &settings.quirks;

    if req.method.eq_ignore_ascii_case("POST") && !req.body.is_empty() {
        let ct = req.content_type.unwrap_or("").to_ascii_lowercase();
        if ct.starts_with("application/x-www-form-urlencoded")
            || ct.starts_with("multipart/form-data")
        {
            ctx.violation(format!("{label}: form Content-Type {ct:?} triggers GLPI's CSRF check; send application/json"));
            let referer_ok = req.referer.map(|r| r.contains("/glpi/")).unwrap_or(false);
            return Handled {
                response: csrf_page(referer_ok),
                violations: ctx.violations,
            };
        }
    }

    // jobs: GET branch iff `agent_id` is in the query string, whatever the method.
    if req.endpoint == Endpoint::Jobs
        && let Some(agent) = php_query_get(req.query, "agent_id")
    {
        db.contact_counter += 1;
        if !req.method.eq_ignore_ascii_case("GET") {
            ctx.violation(format!(
                "{label}: job fetch with method {} (only works because the plugin ignores the method)",
                req.method
            ));
        }
        let result = jobs::get_jobs(&mut ctx, db, settings, &agent);
        let response = render(&ctx, result, quirks);
        return Handled {
            response,
            violations: ctx.violations,
        };
    }

    if php_empty(req.body) {
        if matches!(req.endpoint, Endpoint::AvConfigs | Endpoint::Schedulers)
            && req.method.eq_ignore_ascii_case("GET")
            && let Some(body) = config::server_defined(db, req.endpoint, req.query)
        {
            db.contact_counter += 1;
            return Handled {
                response: render(&ctx, Ok(body), quirks),
                violations: ctx.violations,
            };
        }
        if req.body == b"0" {
            ctx.violation(format!("{label}: body \"0\" is treated as empty by PHP"));
        } else if req.method.eq_ignore_ascii_case("POST") {
            ctx.violation(format!(
                "{label}: POST without body (a 301 turned into GET/empty POST?)"
            ));
        }
        let response = if req.endpoint == Endpoint::Alerts {
            // else-branch calls the undefined writeErrorResponse(): PHP fatal, 500, empty body.
            ApiResponse {
                status: 500,
                headers: headers(HeaderSet::Bare),
                body: Vec::new(),
            }
        } else {
            ApiResponse {
                status: 400,
                headers: headers(HeaderSet::NoSession),
                body: error_body("Invalid request sent to plugin index", quirks).into_bytes(),
            }
        };
        return Handled {
            response,
            violations: ctx.violations,
        };
    }

    db.contact_counter += 1;
    if settings.strict {
        let ct = req.content_type.unwrap_or("").to_ascii_lowercase();
        if !ct.starts_with("application/json") {
            ctx.violation(format!(
                "{label}: Content-Type {ct:?} instead of application/json"
            ));
        }
    }
    let json = match json_decode(req.body) {
        Ok(v) => v,
        Err(msg) => {
            let r = Err(Failure::Exception {
                status: 400,
                message: format!("Json parsing error : {msg}"),
            });
            return Handled {
                response: render(&ctx, r, quirks),
                violations: ctx.violations,
            };
        }
    };
    strict::envelope(&mut ctx, &label, req.endpoint, &json);
    let result = match req.endpoint {
        Endpoint::Agents => agents::post(&mut ctx, db, &json),
        Endpoint::Jobs => jobs::post(&mut ctx, db, &json),
        Endpoint::Scans => scans::post(&mut ctx, db, &json),
        Endpoint::States => states::post(&mut ctx, db, settings, &json),
        Endpoint::Alerts => alerts::post(&mut ctx, db, settings, &json),
        Endpoint::AvConfigs => config::post_avconfigs(&mut ctx, db, settings, &json),
        Endpoint::Schedulers => config::post_schedulers(&mut ctx, db, &json),
    };
    // Prefix findings with the endpoint for readable test failures.
    let violations = ctx
        .violations
        .iter()
        .map(|v| {
            if v.starts_with(&label) {
                v.clone()
            } else {
                format!("{label}: {v}")
            }
        })
        .collect();
    let response = render(&ctx, result, quirks);
    Handled {
        response,
        violations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing_is_php_like() {
        assert_eq!(
            php_query_get(Some("agent_id=2"), "agent_id"),
            Some(Value::from("2"))
        );
        assert_eq!(
            php_query_get(Some("agent_id=2&antivirus=A&agent_id=3"), "agent_id"),
            Some(Value::from("3"))
        );
        assert_eq!(
            php_query_get(Some("agent_id"), "agent_id"),
            Some(Value::from(""))
        );
        assert_eq!(
            php_query_get(Some("agent.id=%202"), "agent_id"),
            Some(Value::from(" 2"))
        );
        assert_eq!(
            php_query_get(Some("agent_id[]=1"), "agent_id"),
            Some(serde_json::json!(["1"]))
        );
        assert_eq!(php_query_get(Some("x=1"), "agent_id"), None);
        assert_eq!(php_query_get(None, "agent_id"), None);
        assert_eq!(
            php_query_get(Some("agent_id=a%2"), "agent_id"),
            Some(Value::from("a%2"))
        );
    }
}
