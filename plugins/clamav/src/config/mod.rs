//! AVConfig for clamd: read clamd.conf into `{attr, value}` entries, apply changes.
//!
//! Invariants:
//! * Reading never changes anything; values are normalised by the option table
//!   ([`schema`]) so GLPI sees booleans, byte counts and numbers, not clamd spellings.
//! * Writing goes through [`apply::apply`] only (validation, atomic rewrite, restart,
//!   rollback); only the allow-listed options ([`schema::REMOTE_TUNABLE`]) change remotely.

pub mod apply;
pub mod conf;
pub mod schema;

use std::path::{Path, PathBuf};

use armadito_plugin_api::model::ConfigEntry;

pub use apply::{ApplyOptions, ApplyOutcome, Change};
pub use conf::ClamdConf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("new clamd.conf refused by clamconf: {0}")]
    Invalid(String),
    #[error("{message}; previous clamd.conf {}", if *rolled_back { "restored and clamd restarted" } else { "restored, but clamd could not be restarted with it" })]
    Restart { message: String, rolled_back: bool },
}

/// Load and parse a clamd.conf.
pub fn load(path: &Path) -> Result<ClamdConf, ConfigError> {
    std::fs::read_to_string(path)
        .map(|text| ClamdConf::parse(&text))
        .map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })
}

/// The entries reported by `config_get`: every option in the file, normalised, protected
/// ones flagged read-only.
pub fn entries(conf: &ClamdConf) -> Vec<ConfigEntry> {
    conf.entries()
        .into_iter()
        .map(|(attr, value)| ConfigEntry {
            read_only: !schema::is_remotely_tunable(&attr),
            attr,
            value,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tunable_entries_are_writable() {
        let conf = ClamdConf::parse("VirusEvent /x %v\nScanPDF yes\n");
        let e = entries(&conf);
        assert!(e[0].read_only);
        assert!(!e[1].read_only);
        assert_eq!(e[1].value, serde_json::json!(true));
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = load(Path::new("/nonexistent/clamd.conf")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/clamd.conf"));
    }
}
