//! Request routing: the seven API directories (with Apache's `DirectorySlash`
//! 301 for the slash-less form), the admin side under `/admin/`, and the
//! traffic log / fault queue around every API request.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

use super::ConnKiller;
use super::faults::canned;
use crate::double::api::{self, ApiRequest, ApiResponse, Endpoint, Settings};
use crate::double::{Fault, RecordedRequest, Shared, State};

/// The `Server` header of the emulated host.
pub(crate) const SERVER: &str = "Apache/2.4.38 (Debian)";
/// GLPI installed at `/glpi`.
pub(crate) const API_PREFIX: &str = "/glpi/plugins/armadito/api/";
/// PHP's default `post_max_size` is 8M; leave room for abuse tests.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .nest("/admin", crate::double::admin::router())
        // `nest` maps the inner "/" to "/admin" only.
        .route("/admin/", axum::routing::get(crate::double::admin::index))
        .fallback(entry)
        .with_state(shared)
}

enum Route {
    Api(Endpoint),
    Redirect,
    NotFound,
}

/// Apache merges duplicate slashes when mapping to files (`…/armadito//api/`
/// reaches the plugin too).
fn classify(path: &str) -> Route {
    let mut norm = String::with_capacity(path.len());
    for c in path.chars() {
        if c == '/' && norm.ends_with('/') {
            continue;
        }
        norm.push(c);
    }
    let Some(rest) = norm.strip_prefix(API_PREFIX) else {
        return Route::NotFound;
    };
    let (name, tail) = match rest.split_once('/') {
        Some((n, t)) => (n, Some(t)),
        None => (rest, None),
    };
    let Some(ep) = Endpoint::from_name(name) else {
        return Route::NotFound;
    };
    match tail {
        None => Route::Redirect,
        Some("") | Some("index.php") => Route::Api(ep),
        Some(_) => Route::NotFound,
    }
}

fn lower_headers(h: &HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// What the log needs to know about the incoming request.
#[derive(Clone)]
struct Incoming {
    method: String,
    path_q: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
}

fn record(st: &mut State, inc: &Incoming, resp: Option<&ApiResponse>, fault: Option<Fault>) -> u64 {
    st.seq += 1;
    let seq = st.seq;
    let (status, response_headers, response_body) = match resp {
        Some(r) => (
            r.status,
            r.headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            String::from_utf8_lossy(&r.body).into_owned(),
        ),
        None => (0, Vec::new(), String::new()),
    };
    st.requests.push(RecordedRequest {
        seq,
        method: inc.method.clone(),
        path: inc.path_q.clone(),
        headers: lower_headers(&inc.headers),
        body: String::from_utf8_lossy(&inc.body).into_owned(),
        status,
        response_headers,
        response_body,
        fault: fault.map(|f| format!("{f:?}")),
    });
    seq
}

fn to_response(mut r: ApiResponse) -> Response {
    r.headers.push(("Server".into(), SERVER.into()));
    let mut resp = Response::new(Body::from(r.body));
    *resp.status_mut() =
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in r.headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::try_from(k.as_str()),
            HeaderValue::from_str(&v),
        ) {
            resp.headers_mut().append(name, value);
        }
    }
    resp
}

async fn entry(AxState(shared): AxState<Arc<Shared>>, req: Request) -> Response {
    let killer = req.extensions().get::<ConnKiller>().cloned();
    let (parts, body) = req.into_parts();
    let body = to_bytes(body, BODY_LIMIT).await.unwrap_or_default();
    let path = parts.uri.path().to_string();
    let inc = Incoming {
        method: parts.method.as_str().to_string(),
        path_q: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| path.clone()),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        body,
    };
    match classify(&path) {
        Route::Api(ep) => api_request(shared, inc, ep, killer).await,
        Route::Redirect => redirect(&shared, &inc, &path),
        Route::NotFound => not_found(&shared, &inc, &path),
    }
}

/// Apache's `DirectorySlash` answer.
fn redirect(shared: &Shared, inc: &Incoming, path: &str) -> Response {
    let host = inc
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let q = inc
        .query
        .as_deref()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let location = format!("http://{host}{path}/{q}");
    let (host_name, port) = match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|c| c.is_ascii_digit()) => (h, p),
        _ => (host.as_str(), "80"),
    };
    let body = format!(
        "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>301 Moved Permanently</title>\n</head><body>\n<h1>Moved Permanently</h1>\n<p>The document has moved <a href=\"{location}\">here</a>.</p>\n<hr>\n<address>{SERVER} Server at {host_name} Port {port}</address>\n</body></html>\n"
    );
    let resp = ApiResponse {
        status: 301,
        headers: vec![
            ("Location".into(), location),
            (
                "Content-Type".into(),
                "text/html; charset=iso-8859-1".into(),
            ),
        ],
        body: body.into_bytes(),
    };
    let mut st = shared.lock();
    let seq = record(&mut st, inc, Some(&resp), None);
    if st.cfg.strict {
        st.violations.push(format!(
            "#{seq} {} {path}: slash-less URL answered 301 by Apache; use the trailing slash (POST bodies are lost on redirect)",
            inc.method
        ));
    }
    to_response(resp)
}

fn not_found(shared: &Shared, inc: &Incoming, path: &str) -> Response {
    let body = format!(
        "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>404 Not Found</title>\n</head><body>\n<h1>Not Found</h1>\n<p>The requested URL {path} was not found on this server.</p>\n<hr>\n<address>{SERVER} Server at 127.0.0.1 Port 80</address>\n</body></html>\n"
    );
    let resp = ApiResponse {
        status: 404,
        headers: vec![(
            "Content-Type".into(),
            "text/html; charset=iso-8859-1".into(),
        )],
        body: body.into_bytes(),
    };
    let mut st = shared.lock();
    let seq = record(&mut st, inc, Some(&resp), None);
    if st.cfg.strict {
        st.violations
            .push(format!("#{seq} {} {path}: no such URL (404)", inc.method));
    }
    to_response(resp)
}

/// Runs the PHP script under the lock and logs the exchange.
fn process(shared: &Shared, inc: &Incoming, ep: Endpoint, fault: Option<Fault>) -> ApiResponse {
    let mut st = shared.lock();
    let settings = Settings {
        getjobs_limit: st.cfg.getjobs_limit,
        strict: st.cfg.strict,
        quirks: st.cfg.quirks,
        now: st.now(),
    };
    let header = |name: header::HeaderName| inc.headers.get(name).and_then(|v| v.to_str().ok());
    let req = ApiRequest {
        endpoint: ep,
        method: &inc.method,
        query: inc.query.as_deref(),
        content_type: header(header::CONTENT_TYPE),
        referer: header(header::REFERER),
        body: &inc.body,
    };
    let handled = api::handle(&mut st.db, &settings, &req);
    let seq = record(&mut st, inc, Some(&handled.response), fault);
    st.violations.extend(
        handled
            .violations
            .into_iter()
            .map(|v| format!("#{seq} {v}")),
    );
    handled.response
}

/// A body that announces `len` bytes, sends the first frame, then fails: hyper closes the
/// connection mid-body, as when a PHP worker dies while answering.
struct CutBody {
    first: Option<Bytes>,
    len: u64,
    /// The failure comes a moment later, so that hyper flushes what was sent.
    dies: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl hyper::body::Body for CutBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        if let Some(b) = self.first.take() {
            return std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(b))));
        }
        if self.dies.as_mut().poll(cx).is_pending() {
            return std::task::Poll::Pending;
        }
        std::task::Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "worker died mid-answer",
        ))))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.len)
    }
}

/// `r` with its `Content-Length` but only the first half of its body.
fn truncated(r: ApiResponse) -> Response {
    let len = r.body.len() as u64;
    let half = Bytes::copy_from_slice(&r.body[..r.body.len() / 2]);
    let mut resp = to_response(ApiResponse {
        body: Vec::new(),
        ..r
    });
    *resp.body_mut() = Body::new(CutBody {
        first: Some(half),
        len,
        dies: Box::pin(tokio::time::sleep(std::time::Duration::from_millis(50))),
    });
    resp
}

async fn api_request(
    shared: Arc<Shared>,
    inc: Incoming,
    ep: Endpoint,
    killer: Option<ConnKiller>,
) -> Response {
    let (fault, delay) = {
        let mut st = shared.lock();
        let outage = st.outages.iter_mut().find(|o| {
            o.endpoint == ep.name() && o.method.as_deref().is_none_or(|m| m == inc.method)
        });
        let fault = match outage {
            Some(o) if o.after > 0 => {
                o.after -= 1;
                None
            }
            Some(o) => Some(o.fault),
            None => st.faults.pop_front(),
        };
        (fault, st.delay)
    };
    let response = match fault {
        Some(Fault::Truncated200) => {
            let r = canned(Fault::Truncated200).unwrap_or(ApiResponse {
                status: 500,
                headers: Vec::new(),
                body: Vec::new(),
            });
            record(&mut shared.lock(), &inc, Some(&r), fault);
            return truncated(r);
        }
        Some(Fault::Stall) => {
            record(&mut shared.lock(), &inc, None, fault);
            // Never answers; the client's timeout (or the double's shutdown) ends it.
            return std::future::pending::<Response>().await;
        }
        Some(Fault::DropConnection) => {
            record(&mut shared.lock(), &inc, None, fault);
            if let Some(k) = killer {
                k.0.notify_one();
            }
            // The connection task drops us (and the socket) right away.
            return std::future::pending::<Response>().await;
        }
        Some(Fault::Delay(d)) => {
            // Detached so that a client giving up does not cancel processing:
            // a request that arrived is processed, like PHP would.
            let s = shared.clone();
            let task = tokio::spawn(async move {
                tokio::time::sleep(d).await;
                process(&s, &inc, ep, fault)
            });
            match task.await {
                Ok(r) => r,
                Err(_) => ApiResponse {
                    status: 500,
                    headers: Vec::new(),
                    body: Vec::new(),
                },
            }
        }
        Some(f) => {
            let r = canned(f).unwrap_or(ApiResponse {
                status: 500,
                headers: Vec::new(),
                body: Vec::new(),
            });
            record(&mut shared.lock(), &inc, Some(&r), fault);
            r
        }
        None => process(&shared, &inc, ep, None),
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    to_response(response)
}
