//! A faithful, in-process test double of the Armadito plugin for GLPI
//! (PHP, REST/JSON), speaking real HTTP on 127.0.0.1.
//!
//! The contract is `server-api.md`: routes, method-agnostic dispatch,
//! exact response bytes (including the plugin's invalid JSON and PHP notice
//! HTML), validation quirks, and the table-level effects of every request.
//! On top of the faithful behaviour the double offers what tests need and
//! the plugin lacks: an admin side (keys, scan configs, jobs, purges,
//! table read-back), a traffic log, fault injection and a *strict mode*
//! that records requests the real server accepts only by accident.
//!
//! Layout: `php/` (PHP 7 value semantics, dates), `validate.rs` (§1.6
//! primitives), `db/` (tables, EAV, admin operations), `api/` (the seven
//! `index.php` scripts), `server/` (accept loop, routing, faults),
//! `admin/` (JSON admin side), `client.rs` (raw test client).
//!
//! Fidelity notes (where the double knowingly approximates the plugin):
//! - PHP 7 semantics are modelled (the plugin's CI ran PHP 7.0); `[PHP7≠8]`
//!   cases follow PHP 7.
//! - PHP notices are echoed in the documented cases (missing
//!   `agent_version`, job report without `message`/times, empty or missing
//!   `alerts`, array-to-string conversions…); their file/line numbers are
//!   plausible, not the real ones.
//! - `strtotime()` (scan `start_time`) knows `@<unix>`, `now` and
//!   ISO-8601/MySQL date-times only; other inputs yield the epoch.
//! - SQL injection holes are not emulated; a `'` in the antivirus identity
//!   yields the documented SQL error.
//! - Time zone is UTC; the clock can be frozen with [`Double::set_now`].
//!
//! ```no_run
//! use armadito_tests::double::Double;
//! let d = Double::start();
//! d.create_key("0RV2V-2RYTX-NX4OW-7LARZ-KZQAJ", 10, 3600);
//! // point the agent at d.base_url() …
//! assert!(d.violations().is_empty());
//! ```

pub mod admin;
pub mod api;
pub mod client;
pub mod db;
pub mod php;
pub mod server;
pub mod validate;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use self::api::checksum;
use self::db::Db;
pub use self::db::eav::EavEntry;
pub use self::db::{
    AdminError, AgentRow, AlertRow, AntivirusRow, AvConfigRow, ComputerRow, EavRow,
    EnrollmentKeyRow, JobRow, PendingJob, ScanConfigRow, ScanRow, SchedulerRow, StateModuleRow,
    StateRow,
};

/// Documented server bugs (§15) that can be switched off. `true` = behave
/// like the real plugin (the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quirks {
    /// §3.5: the module UPDATE binds parameters in the wrong order, so
    /// module rows are written once and never updated.
    pub module_update_noop: bool,
    /// §3.7: `realtime_status` is read from an array and is always
    /// `non-available`. Fixed: taken from an entry with attr `realtime_status`.
    pub realtime_status_always_na: bool,
    /// §3.6: per-alert `job_id` is overwritten by `task.obj.job_id` (or 0).
    pub alert_job_id_override: bool,
    /// §3.2: jobs in the GLPI dustbin are still delivered by GET jobs.
    pub deleted_jobs_delivered: bool,
    /// §1.5/§3.2: error messages and `scan_name` are not JSON-escaped.
    pub unescaped_json: bool,
    /// §3.6: an empty `alerts` array yields a 200 carrying PHP notice HTML.
    pub empty_alerts_notice: bool,
    /// §3.6: an alert with `job_id > 0` and no scans row fails the INSERT
    /// (NULL scan id) with a 500. Fixed: scan id 0.
    pub null_scan_id_alert_fails: bool,
}

impl Default for Quirks {
    fn default() -> Self {
        Quirks {
            module_update_noop: true,
            realtime_status_always_na: true,
            alert_job_id_override: true,
            deleted_jobs_delivered: true,
            unescaped_json: true,
            empty_alerts_notice: true,
            null_scan_id_alert_fails: true,
        }
    }
}

impl Quirks {
    /// All documented bugs fixed (a "hardened" server that is still
    /// wire-compatible).
    pub fn fixed() -> Quirks {
        Quirks {
            module_update_noop: false,
            realtime_status_always_na: false,
            alert_job_id_override: false,
            deleted_jobs_delivered: false,
            unescaped_json: false,
            empty_alerts_notice: false,
            null_scan_id_alert_fails: false,
        }
    }
}

/// Start-up configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoubleConfig {
    /// Plugin config `getjobs_limit` (default 10).
    pub getjobs_limit: u32,
    /// Record [`Double::violations`] (default true).
    pub strict: bool,
    pub quirks: Quirks,
}

impl Default for DoubleConfig {
    fn default() -> Self {
        DoubleConfig {
            getjobs_limit: 10,
            strict: true,
            quirks: Quirks::default(),
        }
    }
}

/// Injectable transport/server failures. Except `Delay`, a faulted request
/// is **not** processed (no state change).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fault {
    /// 500 with the plugin's headers and a valid `{"error" : "…"}` body.
    Status500Json,
    /// 500 whose `{"error" : "…"}` body is invalid JSON (unescaped quotes),
    /// as the plugin really produces.
    Status500InvalidJson,
    /// 503 with `Retry-After: <secs>` and an Apache HTML page.
    Status503RetryAfter(u32),
    /// 200 with an HTML page (GLPI maintenance mode).
    Html200,
    /// 500 with Apache's HTML error page.
    Html500,
    /// The TCP connection is closed without any HTTP answer.
    DropConnection,
    /// Waits, then processes the request normally.
    Delay(Duration),
    /// 400 with the plugin's JSON syntax-error body.
    Status400Json,
    /// 200 with the plugin's headers and a body cut in the middle of its JSON (a PHP that
    /// died mid-`echo`, a proxy buffer limit); `Content-Length` matches what was sent.
    InvalidJson200,
    /// 200 whose `Content-Length` announces more bytes than are sent before the connection
    /// closes (a truncated transfer).
    Truncated200,
    /// Accepts the request and never answers (a hung PHP worker or proxy); not processed.
    Stall,
}

/// A lasting fault on one endpoint (an outage of that script), until [`Double::heal`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outage {
    /// The API directory: `agents`, `jobs`, `scans`, `states`, `alerts`, `avconfigs`,
    /// `schedulers`.
    pub endpoint: String,
    /// Only requests with this method (`GET` for GET jobs); `None`: every method.
    pub method: Option<String>,
    pub fault: Fault,
    /// Matching requests served normally before the outage begins ("fails mid-way").
    pub after: u32,
}

/// One request that reached the double (API side; admin routes excluded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// 1-based arrival order.
    pub seq: u64,
    pub method: String,
    /// Path including the query string.
    pub path: String,
    /// Header names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// Body (lossy UTF-8).
    pub body: String,
    /// Status answered; 0 when the connection was dropped.
    pub status: u16,
    /// Response header names lowercased.
    pub response_headers: Vec<(String, String)>,
    pub response_body: String,
    /// Debug name of the injected fault, if any.
    pub fault: Option<String>,
}

impl RecordedRequest {
    /// First request header with that (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Everything behind the lock.
#[derive(Debug)]
pub(crate) struct State {
    pub db: Db,
    pub cfg: DoubleConfig,
    pub faults: VecDeque<Fault>,
    pub outages: Vec<Outage>,
    pub delay: Duration,
    pub requests: Vec<RecordedRequest>,
    pub violations: Vec<String>,
    pub clock: Option<i64>,
    pub seq: u64,
}

impl State {
    /// `time()` of the emulated server.
    pub fn now(&self) -> i64 {
        self.clock.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        })
    }
}

/// Shared between the server tasks and the [`Double`] handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub state: Mutex<State>,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("double state lock poisoned")
    }
}

/// A running double. Dropping it stops the server.
pub struct Double {
    shared: Arc<Shared>,
    server: server::ServerHandle,
}

impl std::fmt::Debug for Double {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Double")
            .field("addr", &self.server.addr)
            .finish()
    }
}

impl Double {
    /// Starts with the default configuration on `127.0.0.1:0`.
    pub fn start() -> Double {
        Double::start_with(DoubleConfig::default())
    }

    /// Starts on `127.0.0.1:0` (own thread, own tokio runtime).
    pub fn start_with(cfg: DoubleConfig) -> Double {
        Double::start_on("127.0.0.1:0".parse().expect("static address"), cfg)
            .unwrap_or_else(|e| panic!("cannot start the GLPI double: {e}"))
    }

    /// Starts on a given address (the binary uses this).
    pub fn start_on(addr: SocketAddr, cfg: DoubleConfig) -> std::io::Result<Double> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                db: Db::default(),
                cfg,
                faults: VecDeque::new(),
                outages: Vec::new(),
                delay: Duration::ZERO,
                requests: Vec::new(),
                violations: Vec::new(),
                clock: None,
                seq: 0,
            }),
        });
        let server = server::spawn(addr, shared.clone())?;
        Ok(Double { shared, server })
    }

    /// `http://127.0.0.1:PORT/glpi/plugins/armadito` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}/glpi/plugins/armadito", self.server.addr)
    }

    /// Full URL of an endpoint, with the trailing slash the agent must use.
    pub fn api_url(&self, endpoint: &str) -> String {
        format!("{}/api/{endpoint}/", self.base_url())
    }

    pub fn port(&self) -> u16 {
        self.server.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    // ---- clock -------------------------------------------------------------

    /// Freezes the server clock at `unix_secs` (`None` = real time). Used for
    /// key expiry and `last_contact`/`last_avconfig`.
    pub fn set_now(&self, unix_secs: Option<i64>) {
        self.state().clock = unix_secs;
    }

    pub fn now(&self) -> i64 {
        self.state().now()
    }

    // ---- admin side ----------------------------------------------------------

    /// Adds an enrollment key; `expires_in_secs < 0` ⇒ already expired.
    pub fn create_key(&self, value: &str, use_counter: i64, expires_in_secs: i64) -> i64 {
        let mut st = self.state();
        let now = st.now();
        st.db
            .create_key(value, use_counter, now, expires_in_secs)
            .unwrap_or_else(|e| panic!("create_key: {e}"))
    }

    /// Puts a key in the GLPI dustbin (revocation).
    pub fn delete_key(&self, value: &str) {
        self.state()
            .db
            .set_key_deleted(value, true)
            .unwrap_or_else(|e| panic!("delete_key: {e}"))
    }

    /// Restores a key from the dustbin.
    pub fn restore_key(&self, value: &str) {
        self.state()
            .db
            .set_key_deleted(value, false)
            .unwrap_or_else(|e| panic!("restore_key: {e}"))
    }

    pub fn key_use_counter(&self, value: &str) -> Option<i64> {
        self.state()
            .db
            .keys
            .iter()
            .find(|k| k.value == value)
            .map(|k| k.use_counter)
    }

    pub fn keys(&self) -> Vec<EnrollmentKeyRow> {
        self.state().db.keys.clone()
    }

    /// A `glpi_computers` row; agents with that UUID get linked to it.
    pub fn create_computer(&self, name: &str, uuid: &str) -> i64 {
        self.state().db.create_computer(name, uuid)
    }

    pub fn create_scanconfig(
        &self,
        name: &str,
        path: &str,
        options: &str,
        antivirus_id: i64,
    ) -> i64 {
        self.try_create_scanconfig(name, path, options, antivirus_id)
            .unwrap_or_else(|e| panic!("create_scanconfig: {e}"))
    }

    pub fn try_create_scanconfig(
        &self,
        name: &str,
        path: &str,
        options: &str,
        antivirus_id: i64,
    ) -> Result<i64, AdminError> {
        self.state()
            .db
            .create_scanconfig(name, path, options, antivirus_id)
    }

    /// Edits a scan configuration (already-queued jobs see the change).
    pub fn update_scanconfig(&self, id: i64, path: &str, options: &str) {
        self.state()
            .db
            .update_scanconfig(id, path, options)
            .unwrap_or_else(|e| panic!("update_scanconfig: {e}"))
    }

    pub fn scanconfigs(&self) -> Vec<ScanConfigRow> {
        self.state().db.scanconfigs.clone()
    }

    /// Queues a Scan job (and its scans row); panics when the GLPI UI would
    /// refuse (unknown agent/config, antivirus mismatch) — see [`Self::try_create_job`].
    pub fn create_job(&self, agent_id: i64, scanconfig_id: i64, priority: u8) -> i64 {
        self.try_create_job(agent_id, scanconfig_id, priority)
            .unwrap_or_else(|e| panic!("create_job: {e}"))
    }

    pub fn try_create_job(
        &self,
        agent_id: i64,
        scanconfig_id: i64,
        priority: u8,
    ) -> Result<i64, AdminError> {
        self.state()
            .db
            .create_job(agent_id, scanconfig_id, priority)
    }

    /// Queues a job whose `obj` is served verbatim (`job_priority` is still
    /// derived from `priority_db` like the plugin does; unknown ⇒ "0").
    pub fn create_raw_job(
        &self,
        agent_id: i64,
        job_type: &str,
        priority_db: &str,
        obj_json_raw: &str,
    ) -> i64 {
        self.state()
            .db
            .create_raw_job(agent_id, job_type, priority_db, obj_json_raw)
    }

    /// Queues a job for an agent id that has not enrolled yet; it is created
    /// (with a scan configuration for the agent's antivirus) on enrollment.
    pub fn queue_job_on_enroll(&self, agent_id: i64, path: &str, options: &str, priority: u8) {
        let mut st = self.state();
        st.db.pending_jobs.push(PendingJob {
            agent_id,
            path: path.into(),
            options: options.into(),
            priority,
        });
        if st.db.agent(agent_id).is_some() {
            st.db.materialize_pending_jobs(agent_id);
        }
    }

    /// UI "Cancel": no-op (like the UI's refusal) unless the job is queued.
    pub fn cancel_job(&self, job_id: i64) {
        let _ = self.try_cancel_job(job_id);
    }

    pub fn try_cancel_job(&self, job_id: i64) -> Result<(), AdminError> {
        self.state().db.cancel_job(job_id)
    }

    /// Puts a job in the dustbin (still delivered unless the quirk is off).
    pub fn trash_job(&self, job_id: i64) {
        self.state()
            .db
            .trash_job(job_id)
            .unwrap_or_else(|e| panic!("trash_job: {e}"))
    }

    /// Removes a job's scans row (GET jobs then hits the PHP fatal path).
    pub fn purge_scan_of_job(&self, job_id: i64) {
        self.state()
            .db
            .purge_scan_of_job(job_id)
            .unwrap_or_else(|e| panic!("purge_scan_of_job: {e}"))
    }

    /// Deletes a scan configuration ("Scanconfig initFromDB failed.").
    pub fn purge_scanconfig(&self, id: i64) {
        self.state()
            .db
            .purge_scanconfig(id)
            .unwrap_or_else(|e| panic!("purge_scanconfig: {e}"))
    }

    /// GLPI purge of an agent (its scheduler id becomes reusable).
    pub fn purge_agent(&self, agent_id: i64) {
        self.state()
            .db
            .purge_agent(agent_id)
            .unwrap_or_else(|e| panic!("purge_agent: {e}"))
    }

    /// Extension: configuration served by `GET …/avconfigs/?agent_id=N`.
    pub fn set_server_avconfig(&self, agent_id: i64, entries: Vec<(String, Value)>) {
        self.state().db.server_avconfig.insert(agent_id, entries);
    }

    /// Extension: schedule served by `GET …/schedulers/?agent_id=N`.
    pub fn set_server_schedule(&self, agent_id: i64, name: &str, entries: Vec<(String, String)>) {
        self.state()
            .db
            .server_schedule
            .insert(agent_id, (name.to_string(), entries));
    }

    /// Back to the real plugin's 400 for these GETs.
    pub fn clear_server_config(&self, agent_id: i64) {
        let mut st = self.state();
        st.db.server_avconfig.remove(&agent_id);
        st.db.server_schedule.remove(&agent_id);
    }

    // ---- read back -------------------------------------------------------------

    pub fn agents(&self) -> Vec<AgentRow> {
        self.state().db.agents.clone()
    }

    pub fn agent(&self, id: i64) -> Option<AgentRow> {
        self.state().db.agent(id).cloned()
    }

    pub fn antiviruses(&self) -> Vec<AntivirusRow> {
        self.state().db.antiviruses.clone()
    }

    pub fn schedulers(&self) -> Vec<SchedulerRow> {
        self.state().db.schedulers.clone()
    }

    pub fn computers(&self) -> Vec<ComputerRow> {
        self.state().db.computers.clone()
    }

    pub fn jobs(&self) -> Vec<JobRow> {
        self.state().db.jobs.clone()
    }

    pub fn job(&self, id: i64) -> Option<JobRow> {
        self.state().db.jobs.iter().find(|j| j.id == id).cloned()
    }

    pub fn scans(&self) -> Vec<ScanRow> {
        self.state().db.scans.clone()
    }

    pub fn alerts(&self) -> Vec<AlertRow> {
        self.state().db.alerts.clone()
    }

    pub fn states(&self) -> Vec<StateRow> {
        self.state().db.states.clone()
    }

    /// `glpi_plugin_armadito_stateupdatedetails`.
    pub fn state_modules(&self) -> Vec<StateModuleRow> {
        self.state().db.state_modules.clone()
    }

    pub fn avconfigs(&self) -> Vec<AvConfigRow> {
        self.state().db.avconfigs.clone()
    }

    fn agent_av(st: &State, agent_id: i64) -> i64 {
        st.db
            .agent(agent_id)
            .map(|a| a.plugin_armadito_antiviruses_id)
            .unwrap_or(0)
    }

    /// Effective AV configuration of an agent (base overlaid by overrides).
    pub fn avconfig_effective(&self, agent_id: i64) -> Vec<(String, Option<String>)> {
        let st = self.state();
        st.db
            .avconfigdetails
            .effective(agent_id, Self::agent_av(&st, agent_id))
    }

    pub fn stateavdetails_effective(&self, agent_id: i64) -> Vec<(String, Option<String>)> {
        let st = self.state();
        st.db
            .stateavdetails
            .effective(agent_id, Self::agent_av(&st, agent_id))
    }

    pub fn scheduler_details_effective(&self, agent_id: i64) -> Vec<(String, Option<String>)> {
        let st = self.state();
        st.db
            .schedulerdetails
            .effective(agent_id, Self::agent_av(&st, agent_id))
    }

    /// Raw EAV rows of `glpi_plugin_armadito_avconfigdetails`.
    pub fn avconfig_details(&self) -> Vec<EavRow> {
        self.state().db.avconfigdetails.rows.clone()
    }

    pub fn stateav_details(&self) -> Vec<EavRow> {
        self.state().db.stateavdetails.rows.clone()
    }

    pub fn scheduler_details(&self) -> Vec<EavRow> {
        self.state().db.schedulerdetails.rows.clone()
    }

    /// Requests that reached a GET/POST branch (`LastContactStat` total).
    pub fn contact_counter(&self) -> u64 {
        self.state().db.contact_counter
    }

    // ---- traffic log and faults --------------------------------------------------

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }

    /// How many requests were recorded, once none came in for 100 ms. A client killed just
    /// after sending a request leaves it to be handled after the kill: counted before that,
    /// it would look sent by whatever runs next (the chaos tests attribute requests to runs
    /// by this count).
    pub fn settled_request_count(&self) -> usize {
        let mut n = self.state().requests.len();
        loop {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let now = self.state().requests.len();
            if now == n {
                return n;
            }
            n = now;
        }
    }

    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }

    /// Strict-mode findings, each prefixed with the request's `#seq`.
    pub fn violations(&self) -> Vec<String> {
        self.state().violations.clone()
    }

    pub fn clear_violations(&self) {
        self.state().violations.clear();
    }

    /// Queues `count` copies of `fault` for the next API requests.
    pub fn inject(&self, fault: Fault, count: u32) {
        let mut st = self.state();
        for _ in 0..count {
            st.faults.push_back(fault);
        }
    }

    /// Every later request to `endpoint` (with `method`, when given) gets `fault`, after
    /// `after` normal ones, until [`Double::heal`]. Queued [`Double::inject`] faults apply to
    /// requests an outage does not match.
    pub fn outage(&self, endpoint: &str, method: Option<&str>, fault: Fault, after: u32) {
        self.state().outages.push(Outage {
            endpoint: endpoint.to_string(),
            method: method.map(str::to_string),
            fault,
            after,
        });
    }

    /// Ends every outage: the server is healthy again.
    pub fn heal(&self) {
        self.state().outages.clear();
    }

    /// Faults still queued.
    pub fn pending_faults(&self) -> usize {
        self.state().faults.len()
    }

    /// Delays every API answer (after processing); zero = off.
    pub fn set_delay(&self, d: Duration) {
        self.state().delay = d;
    }

    pub fn config(&self) -> DoubleConfig {
        self.state().cfg
    }
}

impl Drop for Double {
    fn drop(&mut self) {
        self.server.shutdown();
    }
}
