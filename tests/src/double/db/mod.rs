//! In-memory model of the plugin's tables and of the admin-side operations
//! that only exist in the GLPI UI (§4, §5, §10).
//!
//! Ids are per-table auto-increments that are never reused (MyISAM), except
//! scheduler ids which the plugin itself recycles.

pub mod eav;
pub mod rows;

use std::collections::BTreeMap;

use serde_json::Value;

use self::eav::EavTable;
pub use self::rows::*;
use super::php::ci_eq;
use super::php::time::fmt_datetime;

/// Failure of an admin-side operation (what the GLPI UI would refuse).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid: {0}")]
    Invalid(String),
}

/// A job requested before its agent exists (binary `--job`): created as soon
/// as that agent id enrolls, with a scan configuration for its antivirus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingJob {
    pub agent_id: i64,
    pub path: String,
    pub options: String,
    pub priority: u8,
}

/// The whole database.
#[derive(Debug, Default)]
pub struct Db {
    pub keys: Vec<EnrollmentKeyRow>,
    pub antiviruses: Vec<AntivirusRow>,
    pub agents: Vec<AgentRow>,
    pub schedulers: Vec<SchedulerRow>,
    pub computers: Vec<ComputerRow>,
    pub scanconfigs: Vec<ScanConfigRow>,
    pub jobs: Vec<JobRow>,
    /// Verbatim `obj` of jobs injected with `create_raw_job`.
    pub raw_job_objs: BTreeMap<i64, String>,
    pub scans: Vec<ScanRow>,
    pub alerts: Vec<AlertRow>,
    pub states: Vec<StateRow>,
    pub state_modules: Vec<StateModuleRow>,
    pub avconfigs: Vec<AvConfigRow>,
    pub avconfigdetails: EavTable,
    pub stateavdetails: EavTable,
    pub schedulerdetails: EavTable,
    /// Extension: configuration pushed by the server (`GET avconfigs`).
    pub server_avconfig: BTreeMap<i64, Vec<(String, Value)>>,
    /// Extension: schedule pushed by the server (`GET schedulers`).
    pub server_schedule: BTreeMap<i64, (String, Vec<(String, String)>)>,
    pub pending_jobs: Vec<PendingJob>,
    /// `LastContactStat` total (every request reaching a GET/POST branch).
    pub contact_counter: u64,
    next: BTreeMap<&'static str, i64>,
}

/// Maps the UI's 0..3 to the stored label (other values ⇒ `0 - low`).
pub fn priority_label(p: u8) -> &'static str {
    match p {
        1 => "1 - medium",
        2 => "2 - high",
        3 => "3 - urgent",
        _ => "0 - low",
    }
}

/// Maps the stored label to the wire digit (`Job::toJson`; unknown ⇒ "0").
pub fn priority_wire(label: &str) -> &'static str {
    match label {
        "1 - medium" => "1",
        "2 - high" => "2",
        "3 - urgent" => "3",
        _ => "0",
    }
}

impl Db {
    /// Next auto-increment value of `table`.
    pub fn alloc(&mut self, table: &'static str) -> i64 {
        let n = self.next.entry(table).or_insert(0);
        *n += 1;
        *n
    }

    pub fn agent(&self, id: i64) -> Option<&AgentRow> {
        self.agents.iter().find(|a| a.id == id)
    }

    pub fn agent_mut(&mut self, id: i64) -> Option<&mut AgentRow> {
        self.agents.iter_mut().find(|a| a.id == id)
    }

    /// `isAgentInDB(uuid)`, through the case-insensitive collation.
    pub fn agent_by_uuid(&self, uuid: &str) -> Option<&AgentRow> {
        self.agents.iter().find(|a| ci_eq(&a.uuid, uuid))
    }

    pub fn job_mut(&mut self, id: i64) -> Option<&mut JobRow> {
        self.jobs.iter_mut().find(|j| j.id == id)
    }

    /// Antivirus upsert by `fullname` (§3.1 step 10).
    pub fn upsert_antivirus(
        &mut self,
        name: &str,
        osname: &str,
        version: &str,
        fullname: &str,
    ) -> i64 {
        if let Some(av) = self
            .antiviruses
            .iter_mut()
            .find(|a| ci_eq(&a.fullname, fullname))
        {
            av.name = name.into();
            av.osname = osname.into();
            av.version = version.into();
            av.fullname = fullname.into();
            return av.id;
        }
        let id = self.alloc("antiviruses");
        self.antiviruses.push(AntivirusRow {
            id,
            name: name.into(),
            osname: osname.into(),
            fullname: fullname.into(),
            version: version.into(),
            is_deleted: false,
        });
        id
    }

    /// Scheduler assignment at enrollment (§3.1 step 12): keep the agent's
    /// row, else recycle the lowest unused id, else insert.
    pub fn scheduler_for_enrollment(&mut self, agent_id: i64, av_id: i64) -> i64 {
        let reset = |s: &mut SchedulerRow| {
            s.name = Some("unknown".into());
            s.plugin_armadito_antiviruses_id = av_id;
            s.plugin_armadito_schedulerdetails_id = 0;
            s.is_used = true;
            s.plugin_armadito_agents_id = agent_id;
            s.id
        };
        if let Some(s) = self
            .schedulers
            .iter_mut()
            .find(|s| s.plugin_armadito_agents_id == agent_id)
        {
            return reset(s);
        }
        if let Some(s) = self
            .schedulers
            .iter_mut()
            .filter(|s| !s.is_used)
            .min_by_key(|s| s.id)
        {
            return reset(s);
        }
        let id = self.alloc("schedulers");
        self.schedulers.push(SchedulerRow {
            id,
            name: Some("unknown".into()),
            plugin_armadito_agents_id: agent_id,
            plugin_armadito_antiviruses_id: av_id,
            plugin_armadito_schedulerdetails_id: 0,
            is_used: true,
        });
        id
    }

    // ---- admin side -------------------------------------------------------

    /// UI "add enrollment key".
    pub fn create_key(
        &mut self,
        value: &str,
        use_counter: i64,
        now: i64,
        expires_in_secs: i64,
    ) -> Result<i64, AdminError> {
        if use_counter < 0 {
            return Err(AdminError::Invalid("use_counter must be >= 0".into()));
        }
        let id = self.alloc("enrollmentkeys");
        let exp = now.saturating_add(expires_in_secs);
        self.keys.push(EnrollmentKeyRow {
            id,
            value: value.into(),
            creation_date: fmt_datetime(now),
            expiration_date: fmt_datetime(exp),
            use_counter,
            is_deleted: false,
            expiration_ts: exp,
        });
        Ok(id)
    }

    /// UI "put in dustbin" (revocation) / "restore".
    pub fn set_key_deleted(&mut self, value: &str, deleted: bool) -> Result<(), AdminError> {
        let k = self
            .keys
            .iter_mut()
            .find(|k| k.value == value)
            .ok_or_else(|| AdminError::NotFound(format!("key {value}")))?;
        k.is_deleted = deleted;
        Ok(())
    }

    /// A `glpi_computers` row (FusionInventory); links agents with that UUID
    /// like the FI inventory hook does.
    pub fn create_computer(&mut self, name: &str, uuid: &str) -> i64 {
        let id = self.alloc("computers");
        self.computers.push(ComputerRow {
            id,
            name: name.into(),
            uuid: uuid.into(),
        });
        for a in self.agents.iter_mut().filter(|a| ci_eq(&a.uuid, uuid)) {
            a.computers_id = id;
        }
        id
    }

    pub fn create_scanconfig(
        &mut self,
        name: &str,
        path: &str,
        options: &str,
        av: i64,
    ) -> Result<i64, AdminError> {
        if self.scanconfigs.iter().any(|s| ci_eq(&s.scan_name, name)) {
            return Err(AdminError::Conflict(format!(
                "scan_name {name:?} already exists"
            )));
        }
        let id = self.alloc("scanconfigs");
        self.scanconfigs.push(ScanConfigRow {
            id,
            scan_name: name.into(),
            scan_path: path.into(),
            scan_options: options.into(),
            plugin_armadito_antiviruses_id: av,
            is_deleted: false,
        });
        Ok(id)
    }

    pub fn update_scanconfig(
        &mut self,
        id: i64,
        path: &str,
        options: &str,
    ) -> Result<(), AdminError> {
        let s = self
            .scanconfigs
            .iter_mut()
            .find(|s| s.id == id)
            .ok_or_else(|| AdminError::NotFound(format!("scanconfig {id}")))?;
        s.scan_path = path.into();
        s.scan_options = options.into();
        Ok(())
    }

    pub fn purge_scanconfig(&mut self, id: i64) -> Result<(), AdminError> {
        let before = self.scanconfigs.len();
        self.scanconfigs.retain(|s| s.id != id);
        if before == self.scanconfigs.len() {
            return Err(AdminError::NotFound(format!("scanconfig {id}")));
        }
        Ok(())
    }

    /// Massive action "Scan" (`processMassiveActionNewScan`), with its
    /// antivirus match rule.
    pub fn create_job(
        &mut self,
        agent_id: i64,
        scanconfig_id: i64,
        priority: u8,
    ) -> Result<i64, AdminError> {
        let agent = self
            .agent(agent_id)
            .ok_or_else(|| AdminError::NotFound(format!("agent {agent_id}")))?;
        let av = agent.plugin_armadito_antiviruses_id;
        let sc = self
            .scanconfigs
            .iter()
            .find(|s| s.id == scanconfig_id)
            .ok_or_else(|| AdminError::NotFound(format!("scanconfig {scanconfig_id}")))?;
        if sc.plugin_armadito_antiviruses_id != av {
            return Err(AdminError::Invalid(format!(
                "Cannot apply scan configuration ({scanconfig_id}) for agent ({agent_id}) with antivirus ({av})."
            )));
        }
        let id = self.insert_job(agent_id, av, "Scan", priority_label(priority));
        let sid = self.alloc("scans");
        self.scans.push(ScanRow {
            id: sid,
            plugin_armadito_jobs_id: id,
            plugin_armadito_agents_id: agent_id,
            plugin_armadito_scanconfigs_id: scanconfig_id,
            plugin_armadito_antiviruses_id: av,
            malware_count: None,
            suspicious_count: None,
            scanned_count: None,
            start_time: None,
            end_time: None,
            duration: None,
            progress: None,
            is_deleted: false,
        });
        Ok(id)
    }

    fn insert_job(&mut self, agent_id: i64, av: i64, job_type: &str, priority: &str) -> i64 {
        let id = self.alloc("jobs");
        self.jobs.push(JobRow {
            id,
            plugin_armadito_agents_id: agent_id,
            plugin_armadito_antiviruses_id: av,
            job_type: job_type.into(),
            job_priority: priority.into(),
            job_status: "queued".into(),
            job_error_code: None,
            job_error_msg: None,
            // NOT NULL without default, omitted by the INSERT, empty sql_mode.
            start_time: super::php::time::ZERO_DATETIME.into(),
            end_time: super::php::time::ZERO_DATETIME.into(),
            duration: None,
            is_deleted: false,
        });
        id
    }

    /// A queued job whose wire `obj` is served verbatim (bad-input tests).
    pub fn create_raw_job(
        &mut self,
        agent_id: i64,
        job_type: &str,
        priority_db: &str,
        obj_json_raw: &str,
    ) -> i64 {
        let av = self
            .agent(agent_id)
            .map(|a| a.plugin_armadito_antiviruses_id)
            .unwrap_or(0);
        let id = self.insert_job(agent_id, av, job_type, priority_db);
        self.raw_job_objs.insert(id, obj_json_raw.to_string());
        id
    }

    /// UI "Cancel" (only from `queued`); epoch times like `downloaded`.
    pub fn cancel_job(&mut self, job_id: i64) -> Result<(), AdminError> {
        let j = self
            .job_mut(job_id)
            .ok_or_else(|| AdminError::NotFound(format!("job {job_id}")))?;
        if j.job_status != "queued" {
            return Err(AdminError::Conflict(
                "You cannot cancel a job already downloaded.".into(),
            ));
        }
        j.job_status = "cancelled".into();
        j.start_time = fmt_datetime(0);
        j.end_time = fmt_datetime(0);
        j.duration = Some("0d 00h 00m 00s".into());
        Ok(())
    }

    /// UI "put in dustbin" for a job (ignored by GET jobs unless fixed).
    pub fn trash_job(&mut self, job_id: i64) -> Result<(), AdminError> {
        let j = self
            .job_mut(job_id)
            .ok_or_else(|| AdminError::NotFound(format!("job {job_id}")))?;
        j.is_deleted = true;
        Ok(())
    }

    /// Deletes the scans row of a job (makes GET jobs hit the PHP fatal).
    pub fn purge_scan_of_job(&mut self, job_id: i64) -> Result<(), AdminError> {
        let before = self.scans.len();
        self.scans.retain(|s| s.plugin_armadito_jobs_id != job_id);
        if before == self.scans.len() {
            return Err(AdminError::NotFound(format!("scan of job {job_id}")));
        }
        Ok(())
    }

    /// GLPI purge of an agent: the row goes, its scheduler becomes unused
    /// (`item_purge` hook); everything else stays.
    pub fn purge_agent(&mut self, agent_id: i64) -> Result<(), AdminError> {
        let before = self.agents.len();
        self.agents.retain(|a| a.id != agent_id);
        if before == self.agents.len() {
            return Err(AdminError::NotFound(format!("agent {agent_id}")));
        }
        for s in self
            .schedulers
            .iter_mut()
            .filter(|s| s.plugin_armadito_agents_id == agent_id)
        {
            s.plugin_armadito_agents_id = -1;
            s.is_used = false;
        }
        Ok(())
    }

    /// Creates the jobs queued with `--job` for an agent that just enrolled.
    pub fn materialize_pending_jobs(&mut self, agent_id: i64) {
        let Some(av) = self
            .agent(agent_id)
            .map(|a| a.plugin_armadito_antiviruses_id)
        else {
            return;
        };
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending_jobs)
            .into_iter()
            .partition(|p| p.agent_id == agent_id);
        self.pending_jobs = rest;
        for p in mine {
            let existing = self
                .scanconfigs
                .iter()
                .find(|s| {
                    s.plugin_armadito_antiviruses_id == av
                        && s.scan_path == p.path
                        && s.scan_options == p.options
                })
                .map(|s| s.id);
            let sc = match existing {
                Some(id) => id,
                None => {
                    let n = self.scanconfigs.len() + 1;
                    let name = format!("cli scan {n} (av {av})");
                    match self.create_scanconfig(&name, &p.path, &p.options, av) {
                        Ok(id) => id,
                        Err(_) => continue,
                    }
                }
            };
            let _ = self.create_job(agent_id, sc, p.priority);
        }
    }
}
