//! Admin HTTP side under `/admin/` (JSON): a thin layer over the same
//! operations as the Rust API, for demo scripts and people exploring with
//! curl. Not part of the plugin; never subject to faults or logging.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::db::AdminError;
use super::{Fault, PendingJob, Shared};

type St = AxState<Arc<Shared>>;

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(index))
        .route("/keys", get(list_keys).post(create_key))
        .route("/keys/{value}/delete", post(delete_key))
        .route(
            "/scanconfigs",
            get(list_scanconfigs).post(create_scanconfig),
        )
        .route("/jobs", get(list_jobs).post(create_job))
        .route("/jobs/{id}/cancel", post(cancel_job))
        .route("/agents", get(list_agents))
        .route("/agents/{id}/purge", post(purge_agent))
        .route("/antiviruses", get(list_antiviruses))
        .route("/schedulers", get(list_schedulers))
        .route("/scans", get(list_scans))
        .route("/alerts", get(list_alerts))
        .route("/states", get(list_states))
        .route("/avconfigs", get(list_avconfigs))
        .route("/faults", get(list_faults).post(inject_fault))
        .route("/delay", post(set_delay))
        .route("/requests", get(list_requests).delete(clear_requests))
        .route("/violations", get(list_violations))
}

/// Admin failures as HTTP statuses.
fn admin_error(e: AdminError) -> Response {
    let status = match e {
        AdminError::NotFound(_) => StatusCode::NOT_FOUND,
        AdminError::Conflict(_) => StatusCode::CONFLICT,
        AdminError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    (status, Json(json!({"error": e.to_string()}))).into_response()
}

fn bad_request(msg: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": msg.into()}))).into_response()
}

pub(crate) async fn index() -> Json<Value> {
    Json(json!({
        "post": ["/admin/keys", "/admin/scanconfigs", "/admin/jobs", "/admin/jobs/{id}/cancel",
                 "/admin/agents/{id}/purge", "/admin/keys/{value}/delete", "/admin/faults", "/admin/delay"],
        "get": ["/admin/agents", "/admin/antiviruses", "/admin/schedulers", "/admin/keys", "/admin/scanconfigs",
                "/admin/jobs", "/admin/scans", "/admin/alerts", "/admin/states", "/admin/avconfigs",
                "/admin/requests", "/admin/violations", "/admin/faults"],
        "delete": ["/admin/requests"]
    }))
}

/// The plugin's key generator: five zero-padded base-36 groups, uppercase.
pub fn generate_key() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let group = |rng: &mut rand::rngs::ThreadRng| {
        let mut n: u32 = rng.random_range(0..=60_466_175);
        let mut s = Vec::new();
        for _ in 0..5 {
            let d = (n % 36) as u8;
            s.push(if d < 10 { b'0' + d } else { b'A' + d - 10 } as char);
            n /= 36;
        }
        s.iter().rev().collect::<String>()
    };
    (0..5)
        .map(|_| group(&mut rng))
        .collect::<Vec<_>>()
        .join("-")
}

#[derive(Deserialize)]
struct NewKey {
    value: Option<String>,
    #[serde(default = "default_uses")]
    uses: i64,
    #[serde(default = "default_expiry")]
    expires_in: i64,
}

fn default_uses() -> i64 {
    10
}

fn default_expiry() -> i64 {
    86_400 * 365
}

async fn create_key(AxState(s): St, Json(k): Json<NewKey>) -> Response {
    let value = k.value.unwrap_or_else(generate_key);
    let mut st = s.lock();
    let now = st.now();
    match st.db.create_key(&value, k.uses, now, k.expires_in) {
        Ok(id) => Json(json!({"id": id, "value": value})).into_response(),
        Err(e) => admin_error(e),
    }
}

async fn delete_key(AxState(s): St, Path(value): Path<String>) -> Response {
    match s.lock().db.set_key_deleted(&value, true) {
        Ok(()) => Json(json!({"deleted": value})).into_response(),
        Err(e) => admin_error(e),
    }
}

async fn list_keys(AxState(s): St) -> Json<Value> {
    Json(json!(s.lock().db.keys))
}

#[derive(Deserialize)]
struct NewScanConfig {
    name: String,
    path: String,
    #[serde(default)]
    options: String,
    antivirus_id: i64,
}

async fn create_scanconfig(AxState(s): St, Json(c): Json<NewScanConfig>) -> Response {
    match s
        .lock()
        .db
        .create_scanconfig(&c.name, &c.path, &c.options, c.antivirus_id)
    {
        Ok(id) => Json(json!({"id": id})).into_response(),
        Err(e) => admin_error(e),
    }
}

async fn list_scanconfigs(AxState(s): St) -> Json<Value> {
    Json(json!(s.lock().db.scanconfigs))
}

/// Either `{agent_id, scanconfig_id, priority}`, `{agent_id, path, options,
/// priority}` (scan config created/reused; deferred until enrollment if the
/// agent does not exist yet) or `{agent_id, job_type, priority_db, obj_raw}`.
#[derive(Deserialize)]
struct NewJob {
    agent_id: i64,
    scanconfig_id: Option<i64>,
    path: Option<String>,
    #[serde(default)]
    options: String,
    #[serde(default)]
    priority: u8,
    job_type: Option<String>,
    priority_db: Option<String>,
    obj_raw: Option<String>,
}

async fn create_job(AxState(s): St, Json(j): Json<NewJob>) -> Response {
    let mut st = s.lock();
    if let Some(sc) = j.scanconfig_id {
        return match st.db.create_job(j.agent_id, sc, j.priority) {
            Ok(id) => Json(json!({"id": id})).into_response(),
            Err(e) => admin_error(e),
        };
    }
    if let Some(obj) = j.obj_raw {
        let id = st.db.create_raw_job(
            j.agent_id,
            j.job_type.as_deref().unwrap_or("Scan"),
            j.priority_db.as_deref().unwrap_or("0 - low"),
            &obj,
        );
        return Json(json!({"id": id})).into_response();
    }
    let Some(path) = j.path else {
        return bad_request("need scanconfig_id, path or obj_raw");
    };
    let before = st.db.jobs.len();
    st.db.pending_jobs.push(PendingJob {
        agent_id: j.agent_id,
        path,
        options: j.options,
        priority: j.priority,
    });
    if st.db.agent(j.agent_id).is_some() {
        st.db.materialize_pending_jobs(j.agent_id);
        match st.db.jobs.get(before) {
            Some(job) => Json(json!({"id": job.id})).into_response(),
            None => bad_request("job could not be created"),
        }
    } else {
        Json(json!({"pending": true, "agent_id": j.agent_id})).into_response()
    }
}

async fn cancel_job(AxState(s): St, Path(id): Path<i64>) -> Response {
    match s.lock().db.cancel_job(id) {
        Ok(()) => Json(json!({"cancelled": id})).into_response(),
        Err(e) => admin_error(e),
    }
}

async fn list_jobs(AxState(s): St) -> Json<Value> {
    Json(json!(s.lock().db.jobs))
}

async fn purge_agent(AxState(s): St, Path(id): Path<i64>) -> Response {
    match s.lock().db.purge_agent(id) {
        Ok(()) => Json(json!({"purged": id})).into_response(),
        Err(e) => admin_error(e),
    }
}

async fn list_agents(AxState(s): St) -> Json<Value> {
    Json(json!(s.lock().db.agents))
}

async fn list_antiviruses(AxState(s): St) -> Json<Value> {
    Json(json!(s.lock().db.antiviruses))
}

async fn list_schedulers(AxState(s): St) -> Json<Value> {
    Json(json!(s.lock().db.schedulers))
}

async fn list_scans(AxState(s): St) -> Json<Value> {
    Json(json!(s.lock().db.scans))
}

async fn list_alerts(AxState(s): St) -> Json<Value> {
    Json(json!(s.lock().db.alerts))
}

async fn list_states(AxState(s): St) -> Json<Value> {
    let st = s.lock();
    Json(
        json!({"states": st.db.states, "modules": st.db.state_modules, "stateavdetails": st.db.stateavdetails.rows}),
    )
}

async fn list_avconfigs(AxState(s): St) -> Json<Value> {
    let st = s.lock();
    Json(json!({"avconfigs": st.db.avconfigs, "avconfigdetails": st.db.avconfigdetails.rows}))
}

/// `{"kind": "status503_retry_after", "secs": 5, "count": 2}`; kinds:
/// status500_json, status500_invalid_json, status503_retry_after, html200,
/// html500, drop_connection, delay (`ms`), status400_json.
#[derive(Deserialize)]
struct FaultSpec {
    kind: String,
    #[serde(default = "one")]
    count: u32,
    #[serde(default)]
    secs: u32,
    #[serde(default)]
    ms: u64,
}

fn one() -> u32 {
    1
}

/// Parses an admin fault description.
pub fn parse_fault(kind: &str, secs: u32, ms: u64) -> Option<Fault> {
    Some(match kind.to_ascii_lowercase().replace('-', "_").as_str() {
        "status500_json" | "500" => Fault::Status500Json,
        "status500_invalid_json" => Fault::Status500InvalidJson,
        "status503_retry_after" | "503" => Fault::Status503RetryAfter(secs),
        "html200" => Fault::Html200,
        "html500" => Fault::Html500,
        "drop_connection" | "drop" => Fault::DropConnection,
        "delay" => Fault::Delay(Duration::from_millis(ms)),
        "status400_json" | "400" => Fault::Status400Json,
        "invalid_json200" | "invalid_json" => Fault::InvalidJson200,
        "truncated200" | "truncated" => Fault::Truncated200,
        "stall" => Fault::Stall,
        _ => return None,
    })
}

async fn inject_fault(AxState(s): St, Json(f): Json<FaultSpec>) -> Response {
    let Some(fault) = parse_fault(&f.kind, f.secs, f.ms) else {
        return bad_request(format!("unknown fault kind {:?}", f.kind));
    };
    let mut st = s.lock();
    for _ in 0..f.count {
        st.faults.push_back(fault);
    }
    Json(json!({"queued": st.faults.len()})).into_response()
}

async fn list_faults(AxState(s): St) -> Json<Value> {
    let st = s.lock();
    Json(json!(
        st.faults
            .iter()
            .map(|f| format!("{f:?}"))
            .collect::<Vec<_>>()
    ))
}

#[derive(Deserialize)]
struct DelaySpec {
    ms: u64,
}

async fn set_delay(AxState(s): St, Json(d): Json<DelaySpec>) -> Json<Value> {
    s.lock().delay = Duration::from_millis(d.ms);
    Json(json!({"delay_ms": d.ms}))
}

async fn list_requests(AxState(s): St) -> Json<Value> {
    Json(json!(s.lock().requests))
}

async fn clear_requests(AxState(s): St) -> Json<Value> {
    s.lock().requests.clear();
    Json(json!({"cleared": true}))
}

async fn list_violations(AxState(s): St) -> Json<Value> {
    Json(json!(s.lock().violations))
}
