//! `[plugins]` configuration.
//!
//! Invariant: every field has a default, so an absent `[plugins]` table is valid. Fields that
//! come from elsewhere in the agent configuration (`plugins_dir` at the top level, the
//! `[backends.<name>]` tables, the path of our own executable) are `#[serde(skip)]` and are set
//! by the caller.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Where plugin code runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// One child process per backend (`armadito-agent plugin-host`): survives plugin crashes
    /// and hangs, allows real reloads. The default.
    #[default]
    Process,
    /// Load into the agent itself: faster calls, but a segfault or a hang in the plugin hits
    /// the agent. For trusted plugins and tests.
    InProcess,
}

/// The `[plugins]` table plus what the caller fills in.
///
/// ```toml
/// [plugins]
/// isolation = "process"      # or "in-process"
/// call_timeout = 120         # seconds, state/alerts/config calls
/// scan_timeout = 21600       # seconds, scan and invoke calls
/// cache_dir = "/var/lib/armadito-agent/plugin-cache"
/// watch_interval = 2         # seconds between folder checks (daemon mode)
/// restart_backoff_max = 60   # seconds, ceiling of the restart back-off after crashes
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginsConfig {
    /// The plugins folder. Set by the caller from the top-level `plugins_dir`.
    #[serde(skip)]
    pub dir: PathBuf,
    /// Private copies of the plugins, named by content hash. Created 0700. The CLI should
    /// point it into the agent's state dir (`<state_dir>/plugin-cache`).
    pub cache_dir: PathBuf,
    pub isolation: Isolation,
    /// Timeout of `state`, `alerts`, `config_get`, `config_set` (and of starting a child).
    #[serde(deserialize_with = "seconds")]
    pub call_timeout: Duration,
    /// Timeout of `scan` and `invoke`.
    #[serde(deserialize_with = "seconds")]
    pub scan_timeout: Duration,
    /// Interval of the folder watcher (daemon mode).
    #[serde(deserialize_with = "seconds")]
    pub watch_interval: Duration,
    /// Ceiling of the exponential restart back-off of a crashing plugin process.
    #[serde(deserialize_with = "seconds")]
    pub restart_backoff_max: Duration,
    /// The executable spawned as `<host_exe> plugin-host --plugin FILE`: by default
    /// `armadito-plugin-host` next to our own executable, else our own executable.
    #[serde(skip)]
    pub host_exe: PathBuf,
    /// Per-backend settings handed to the plugin's `new()`, keyed by backend name. Set by the
    /// caller from the `[backends.<name>]` tables (converted to JSON).
    #[serde(skip)]
    pub settings: BTreeMap<String, serde_json::Value>,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        Self {
            dir: default_plugins_dir(),
            cache_dir: default_cache_dir(),
            isolation: Isolation::Process,
            call_timeout: Duration::from_secs(120),
            scan_timeout: Duration::from_secs(6 * 3600),
            watch_interval: Duration::from_secs(2),
            restart_backoff_max: Duration::from_secs(60),
            host_exe: default_host_exe(),
            settings: BTreeMap::new(),
        }
    }
}

impl PluginsConfig {
    /// Defaults with the given plugins folder and cache folder.
    pub fn new(dir: impl Into<PathBuf>, cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            cache_dir: cache_dir.into(),
            ..Self::default()
        }
    }

    /// Build from the agent configuration: the raw `[plugins]` table, the top-level
    /// `plugins_dir` and `state_dir`, and the `[backends.<name>]` tables (handed to each
    /// plugin's `new()` as JSON). The cache goes to `<state_dir>/plugin-cache` unless
    /// `[plugins] cache_dir` says otherwise.
    pub fn from_agent_config(
        plugins_table: &toml::Table,
        plugins_dir: &Path,
        state_dir: &Path,
        backends: &BTreeMap<String, toml::Table>,
    ) -> Result<Self, toml::de::Error> {
        let mut cfg: PluginsConfig = plugins_table.clone().try_into()?;
        cfg.dir = plugins_dir.to_path_buf();
        if !plugins_table.contains_key("cache_dir") {
            cfg.cache_dir = state_dir.join("plugin-cache");
        }
        cfg.settings = backends
            .iter()
            .map(|(name, table)| {
                let json = serde_json::to_value(table).unwrap_or_else(|_| serde_json::json!({}));
                (name.clone(), json)
            })
            .collect();
        Ok(cfg)
    }

    /// The settings JSON for backend `name` (`{}` when none).
    pub(crate) fn settings_json(&self, name: &str) -> String {
        self.settings
            .get(name)
            .map(|v| v.to_string())
            .unwrap_or_else(|| "{}".to_owned())
    }
}

/// `armadito-plugin-host` installed next to the running executable (a small binary: only the
/// plugin host), else the running executable itself (`armadito-agent plugin-host`).
fn default_host_exe() -> PathBuf {
    let me = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("armadito-agent"));
    let host = me.with_file_name(format!(
        "armadito-plugin-host{}",
        std::env::consts::EXE_SUFFIX
    ));
    if host.is_file() { host } else { me }
}

fn default_plugins_dir() -> PathBuf {
    if cfg!(windows) {
        let base = std::env::var_os("ProgramData")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"));
        base.join("Armadito-Agent").join("plugins")
    } else {
        PathBuf::from("/usr/lib/armadito-agent/plugins")
    }
}

fn default_cache_dir() -> PathBuf {
    if cfg!(windows) {
        let base = std::env::var_os("ProgramData")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"));
        base.join("Armadito-Agent").join("plugin-cache")
    } else {
        PathBuf::from("/var/lib/armadito-agent/plugin-cache")
    }
}

/// Seconds as an integer or a float (`call_timeout = 2.5`).
fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let secs = f64::deserialize(d)?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(serde::de::Error::custom(
            "expected a positive number of seconds",
        ));
    }
    Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plugins_table() {
        let c: PluginsConfig =
            toml::from_str("isolation = \"in-process\"\ncall_timeout = 2.5\nscan_timeout = 10\n")
                .unwrap();
        assert_eq!(c.isolation, Isolation::InProcess);
        assert_eq!(c.call_timeout, Duration::from_millis(2500));
        assert_eq!(c.scan_timeout, Duration::from_secs(10));
        assert_eq!(c.watch_interval, Duration::from_secs(2));
        let empty: PluginsConfig = toml::from_str("").unwrap();
        assert_eq!(empty.isolation, Isolation::Process);
        assert!(toml::from_str::<PluginsConfig>("isolaton = \"process\"").is_err());
        assert!(toml::from_str::<PluginsConfig>("call_timeout = -1").is_err());
    }

    #[test]
    fn from_agent_config_fills_the_rest() {
        let table: toml::Table = toml::from_str("isolation = \"in-process\"").unwrap();
        let backends: BTreeMap<String, toml::Table> =
            toml::from_str("[clamav]\nsocket = \"/run/clamav/clamd.ctl\"\n").unwrap();
        let c = PluginsConfig::from_agent_config(
            &table,
            Path::new("/p"),
            Path::new("/var/lib/a"),
            &backends,
        )
        .unwrap();
        assert_eq!(c.dir, Path::new("/p"));
        assert_eq!(c.cache_dir, Path::new("/var/lib/a/plugin-cache"));
        assert_eq!(c.isolation, Isolation::InProcess);
        assert_eq!(
            c.settings_json("clamav"),
            r#"{"socket":"/run/clamav/clamd.ctl"}"#
        );
        assert_eq!(c.settings_json("defender"), "{}");
    }
}
