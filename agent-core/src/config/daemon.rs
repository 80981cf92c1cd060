//! `[daemon]` of agent.toml: how `armadito-agent daemon` paces what is not in `[schedule]`.
//! (The plugins folder is watched with inotify and also rescanned every `[plugins]
//! watch_interval`, in case a change notification is missed.)
//!
//! ```toml
//! [daemon]
//! alerts_every = "5s"     # live alerts: how often the backend's detections are read
//! stop_timeout = "10s"    # on SIGTERM: time left to report a cancelled scan and flush the outbox
//! backoff_max = "10min"   # longest wait between two tries of a task while the server is down
//! ```

use std::time::Duration;

use serde::Deserialize;

/// `[daemon]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct DaemonConfig {
    /// Alerts in the daemon run this often (unless `[schedule.tasks.Alerts] every` is set), so a
    /// detection reaches GLPI within seconds. One backend call that reads a log tail or a spool
    /// folder: cheap when idle.
    #[serde(deserialize_with = "super::duration::required")]
    pub alerts_every: Duration,
    /// On SIGTERM/SIGINT: how long the cancelled scan's report and the outbox flush may take
    /// before the daemon exits anyway (undelivered messages stay in the outbox).
    #[serde(deserialize_with = "super::duration::required")]
    pub stop_timeout: Duration,
    /// Cap of the exponential backoff of a task whose runs fail (server down or 5xx).
    #[serde(deserialize_with = "super::duration::required")]
    pub backoff_max: Duration,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            alerts_every: Duration::from_secs(5),
            stop_timeout: Duration::from_secs(10),
            backoff_max: Duration::from_secs(600),
        }
    }
}

impl DaemonConfig {
    pub fn validate(&self) -> Result<(), String> {
        let check = |key: &str, d: Duration, min: u64, max: u64| {
            if d < Duration::from_secs(min) || d > Duration::from_secs(max) {
                Err(format!(
                    "[daemon] {key} = {:?}: between {min} s and {max} s",
                    humantime::format_duration(d).to_string()
                ))
            } else {
                Ok(())
            }
        };
        check("alerts_every", self.alerts_every, 1, 86_400)?;
        check("stop_timeout", self.stop_timeout, 1, 600)?;
        check("backoff_max", self.backoff_max, 1, 86_400)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c: DaemonConfig = toml::from_str("").unwrap();
        assert_eq!(c, DaemonConfig::default());
        c.validate().unwrap();
        let c: DaemonConfig = toml::from_str("alerts_every = '2s'\nbackoff_max = '1h'").unwrap();
        assert_eq!(c.alerts_every, Duration::from_secs(2));
        assert_eq!(c.backoff_max, Duration::from_secs(3600));
        let e = toml::from_str::<DaemonConfig>("alerts_every = 'often'").unwrap_err();
        assert!(e.to_string().contains("not a duration"), "{e}");
        let e = toml::from_str::<DaemonConfig>("alerts_evry = '2s'").unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        let c: DaemonConfig = toml::from_str("stop_timeout = '1h'").unwrap();
        assert!(c.validate().unwrap_err().contains("stop_timeout"));
    }
}
