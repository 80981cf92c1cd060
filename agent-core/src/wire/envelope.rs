//! The request envelope every POST carries (server-api.md §1.4).

use serde::Serialize;

use super::types::{MachineUuid, WireError};

/// What the agent reports as `agent_version` (stored by the server at enrollment).
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The tasks the old agent knew, spelled exactly as on its command line and in `task.name`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    clap::ValueEnum,
    strum::IntoStaticStr,
    strum::Display,
    strum::VariantArray,
)]
pub enum TaskName {
    #[value(name = "Enrollment")]
    Enrollment,
    #[value(name = "Scheduler")]
    Scheduler,
    #[value(name = "Getjobs")]
    Getjobs,
    #[value(name = "Runjobs")]
    Runjobs,
    #[value(name = "State")]
    State,
    #[value(name = "Scan")]
    Scan,
    #[value(name = "Alerts")]
    Alerts,
    #[value(name = "AVConfig")]
    AVConfig,
}

impl TaskName {
    pub const ALL: [TaskName; 8] = [
        TaskName::Enrollment,
        TaskName::Scheduler,
        TaskName::Getjobs,
        TaskName::Runjobs,
        TaskName::State,
        TaskName::Scan,
        TaskName::Alerts,
        TaskName::AVConfig,
    ];

    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// What the task does, for `--list-tasks` and the man page.
    pub fn summary(self) -> &'static str {
        match self {
            TaskName::Enrollment => {
                "register this machine with the server (POST api/agents) and keep the agent id"
            }
            TaskName::Scheduler => "install the local schedule and report it (api/schedulers)",
            TaskName::Getjobs => {
                "fetch the jobs queued for this agent (GET api/jobs) into the local queue"
            }
            TaskName::Runjobs => {
                "run queued jobs by priority and report their results (POST api/jobs)"
            }
            TaskName::State => "report the antivirus state (POST api/states)",
            TaskName::Scan => {
                "scan local paths (--path) and print the results; --report sends the detections (POST api/alerts)"
            }
            TaskName::Alerts => "report new detections (POST api/alerts)",
            TaskName::AVConfig => "report and apply the antivirus configuration (api/avconfigs)",
        }
    }
}

/// `task.antivirus.os_info`: the old agent sent Perl's `$^O` (`linux`, `MSWin32`). The server folds
/// `name` into the antivirus identity (`Armadito+0.10.2+linux`) that scan configurations hang off,
/// so we keep the same spelling: a migrated machine keeps its antivirus row and scan configs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OsInfo {
    pub name: String,
    pub libpath: String,
}

impl OsInfo {
    pub fn current() -> Self {
        if cfg!(windows) {
            Self {
                name: "MSWin32".into(),
                libpath: "Win32".into(),
            }
        } else {
            Self {
                name: std::env::consts::OS.into(),
                libpath: "Linux".into(),
            }
        }
    }
}

/// `task.antivirus`: the product the backend drives (identity part of the server's AV row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AntivirusInfo {
    pub name: String,
    pub version: String,
    pub os_info: OsInfo,
    pub program_path: String,
}

impl AntivirusInfo {
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            os_info: OsInfo::current(),
            program_path: String::new(),
        }
    }
}

/// `task`: field order is fixed (the old agent's was random), which makes bodies reproducible.
#[derive(Debug, Clone, Serialize)]
pub struct TaskPayload<T: Serialize> {
    pub name: TaskName,
    pub antivirus: AntivirusInfo,
    pub obj: T,
}

/// The whole POST body. `agent_id` is 0 before enrollment (the server ignores it for identity then).
#[derive(Debug, Clone, Serialize)]
pub struct Envelope<T: Serialize> {
    pub agent_id: i64,
    pub agent_version: &'static str,
    pub uuid: MachineUuid,
    pub task: TaskPayload<T>,
}

impl<T: Serialize> Envelope<T> {
    pub fn new(
        agent_id: i64,
        uuid: MachineUuid,
        name: TaskName,
        antivirus: AntivirusInfo,
        obj: T,
    ) -> Self {
        Self {
            agent_id,
            agent_version: AGENT_VERSION,
            uuid,
            task: TaskPayload {
                name,
                antivirus,
                obj,
            },
        }
    }

    /// Compact JSON bytes, fields in declaration order.
    pub fn to_body(&self) -> Result<Vec<u8>, WireError> {
        serde_json::to_vec(self).map_err(|e| WireError::Encode(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_names_are_the_old_agents_spelling() {
        use strum::VariantArray;
        assert_eq!(TaskName::ALL.as_slice(), TaskName::VARIANTS);
        let names: Vec<&str> = TaskName::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(
            names,
            [
                "Enrollment",
                "Scheduler",
                "Getjobs",
                "Runjobs",
                "State",
                "Scan",
                "Alerts",
                "AVConfig"
            ]
        );
        for t in TaskName::ALL {
            assert_eq!(t.to_string(), t.as_str());
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
    }
}
