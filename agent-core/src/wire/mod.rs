//! The GLPI Armadito plugin's wire protocol (version 0.10.1), as typed Rust values.
//!
//! No I/O lives here: this module only turns typed values into the exact JSON the PHP plugin
//! accepts, and the plugin's replies into typed values. The transport sends the bytes; the tasks
//! decide what to send. Keeping the two apart lets snapshot tests pin every byte of every request
//! body (see `tests` at the bottom of each file).
//!
//! Invariants enforced by construction (the server answers 500 otherwise, see server-api.md §0):
//! - a [`MachineUuid`] is `^[A-Z0-9]{8}-[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{12}$`, no
//!   trailing whitespace;
//! - an [`EnrollmentKey`] is `^[A-Z0-9]{5}(-[A-Z0-9]{5}){4}$`;
//! - a [`UnixTime`] sent where the server runs `formatDate` has exactly 10 digits;
//! - a [`ScanDuration`] is an ISO-8601 duration with integer fields only (`PT<h>H<m>M<s>S`);
//! - counts are plain JSON numbers (never the old agent's `["131"]` arrays);
//! - the job-status `message` is base64 (standard alphabet, no line breaks).

mod coalesce;
mod envelope;
mod jobs;
mod payloads;
mod types;

#[cfg(test)]
mod snapshots;

pub use coalesce::{AlertsBody, DEFAULT_ALERTS_PER_POST, MAX_COALESCED_BYTES, merge_alerts};
pub use envelope::{AGENT_VERSION, AntivirusInfo, Envelope, OsInfo, TaskName, TaskPayload};
pub use jobs::{
    Job, JobPriority, JobsReply, MalformedJob, ParsedJob, ScanJobParams, parse_jobs_reply,
};
pub use payloads::{
    AlertsReport, AttrValue, DbInfo, EnrollmentReply, EnrollmentRequest, JobStatus, ModuleState,
    ScanReport, SchedulerReport, StateReport, WireAlert, parse_enrollment_reply,
    parse_server_config, parse_server_schedule,
};
pub use types::{EnrollmentKey, MachineUuid, ScanDuration, UnixTime, WireError};
