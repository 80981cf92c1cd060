//! Row types of the plugin's tables, field names = MySQL column names so
//! that tests read like the plugin's schema (§12).

use serde::{Deserialize, Serialize};

/// `glpi_plugin_armadito_enrollmentkeys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentKeyRow {
    pub id: i64,
    pub value: String,
    pub creation_date: String,
    pub expiration_date: String,
    pub use_counter: i64,
    pub is_deleted: bool,
    /// `expiration_date` as unix seconds (what the expiry check compares).
    pub expiration_ts: i64,
}

/// `glpi_plugin_armadito_antiviruses`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AntivirusRow {
    pub id: i64,
    pub name: String,
    pub osname: String,
    pub fullname: String,
    pub version: String,
    pub is_deleted: bool,
}

/// `glpi_plugin_armadito_agents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRow {
    pub id: i64,
    pub entities_id: i64,
    pub computers_id: i64,
    pub agent_version: Option<String>,
    pub plugin_armadito_antiviruses_id: i64,
    pub plugin_armadito_schedulers_id: i64,
    pub last_contact: Option<String>,
    pub last_alert: Option<String>,
    pub uuid: String,
    pub is_deleted: bool,
}

/// `glpi_plugin_armadito_schedulers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulerRow {
    pub id: i64,
    pub name: Option<String>,
    pub plugin_armadito_agents_id: i64,
    pub plugin_armadito_antiviruses_id: i64,
    pub plugin_armadito_schedulerdetails_id: i64,
    pub is_used: bool,
}

/// `glpi_computers` (only what the plugin reads: id, name, uuid).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComputerRow {
    pub id: i64,
    pub name: String,
    pub uuid: String,
}

/// `glpi_plugin_armadito_scanconfigs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanConfigRow {
    pub id: i64,
    pub scan_name: String,
    pub scan_path: String,
    pub scan_options: String,
    pub plugin_armadito_antiviruses_id: i64,
    pub is_deleted: bool,
}

/// `glpi_plugin_armadito_jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRow {
    pub id: i64,
    pub plugin_armadito_agents_id: i64,
    pub plugin_armadito_antiviruses_id: i64,
    pub job_type: String,
    /// `"0 - low"`, `"1 - medium"`, `"2 - high"`, `"3 - urgent"`.
    pub job_priority: String,
    /// `queued`, `downloaded`, `successful`, `failed`, `cancelled`.
    pub job_status: String,
    pub job_error_code: Option<i64>,
    pub job_error_msg: Option<String>,
    pub start_time: String,
    pub end_time: String,
    pub duration: Option<String>,
    pub is_deleted: bool,
}

/// `glpi_plugin_armadito_scans`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanRow {
    pub id: i64,
    pub plugin_armadito_jobs_id: i64,
    pub plugin_armadito_agents_id: i64,
    pub plugin_armadito_scanconfigs_id: i64,
    pub plugin_armadito_antiviruses_id: i64,
    pub malware_count: Option<i64>,
    pub suspicious_count: Option<i64>,
    pub scanned_count: Option<i64>,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub duration: Option<String>,
    pub progress: Option<i64>,
    pub is_deleted: bool,
}

/// `glpi_plugin_armadito_alerts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRow {
    pub id: i64,
    pub plugin_armadito_agents_id: i64,
    pub plugin_armadito_antiviruses_id: i64,
    pub plugin_armadito_jobs_id: i64,
    pub plugin_armadito_scans_id: i64,
    pub threat_name: String,
    pub filepath: String,
    pub module_name: String,
    pub info: String,
    pub action: String,
    pub detection_time: String,
    pub checksum: String,
    pub is_deleted: bool,
}

/// `glpi_plugin_armadito_states`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRow {
    pub id: i64,
    pub plugin_armadito_agents_id: i64,
    pub update_status: String,
    pub last_update: String,
    pub plugin_armadito_antiviruses_id: i64,
    pub service_status: String,
    pub plugin_armadito_stateupdatedetails_id: i64,
    pub plugin_armadito_stateavdetails_id: i64,
    pub is_deleted: bool,
}

/// `glpi_plugin_armadito_stateupdatedetails` (one per agent × module).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateModuleRow {
    pub id: i64,
    pub plugin_armadito_agents_id: i64,
    pub module_name: String,
    pub module_version: String,
    pub module_update_status: String,
    pub module_last_update: String,
}

/// `glpi_plugin_armadito_avconfigs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvConfigRow {
    pub id: i64,
    pub realtime_status: String,
    pub last_avconfig: String,
    pub plugin_armadito_avconfigdetails_id: i64,
    pub plugin_armadito_agents_id: i64,
    pub plugin_armadito_antiviruses_id: i64,
}

/// A row of one of the EAV tables (`avconfigdetails`, `stateavdetails`,
/// `schedulerdetails`); agent 0 = the antivirus' base configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EavRow {
    pub id: i64,
    #[serde(rename = "type")]
    pub type_: String,
    pub value: Option<String>,
    pub plugin_armadito_agents_id: i64,
    pub plugin_armadito_antiviruses_id: i64,
}
