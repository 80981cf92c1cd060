//! What `armadito-agent plugins [--json]` and `--list-backends` show.

use std::fmt::Write as _;
use std::path::PathBuf;

use armadito_plugin_api::model::Capabilities;
use serde::Serialize;

use super::{Isolation, PluginsConfig, Registry};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginStatus {
    /// Started and serving calls.
    Loaded,
    /// Valid (read from its metadata, not started: a listing, or a run that needs another
    /// backend); the file a run would start for this name.
    Available,
    /// Not usable; `reason` says why.
    Refused,
    /// Valid, but another file with the same name and a higher version wins.
    Duplicate,
}

/// One file of the plugins folder (or the folder itself when it is refused as a whole).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginReport {
    /// The file in the plugins folder.
    pub file: PathBuf,
    /// Declared backend name (unknown when the file was refused before loading).
    pub name: Option<String>,
    pub version: Option<String>,
    pub interface_version: Option<String>,
    /// SHA-256 of the content, hex.
    pub hash: Option<String>,
    /// The private copy that is actually loaded.
    pub cached: Option<PathBuf>,
    pub status: PluginStatus,
    /// Why it is refused or a duplicate.
    pub reason: Option<String>,
    pub isolation: Isolation,
    pub description: Option<String>,
    pub capabilities: Option<Capabilities>,
}

impl PluginReport {
    pub fn is_loaded(&self) -> bool {
        self.status == PluginStatus::Loaded
    }

    /// Loaded, or available to a run that asks for it.
    pub fn is_usable(&self) -> bool {
        matches!(self.status, PluginStatus::Loaded | PluginStatus::Available)
    }

    pub(crate) fn refused(file: PathBuf, reason: String, isolation: Isolation) -> Self {
        PluginReport {
            file,
            name: None,
            version: None,
            interface_version: None,
            hash: None,
            cached: None,
            status: PluginStatus::Refused,
            reason: Some(reason),
            isolation,
            description: None,
            capabilities: None,
        }
    }
}

/// Report every file of the plugins folder. For `armadito-agent plugins` and
/// `--list-backends`. Without `check` the metadata is read from the files and no plugin runs
/// (except plugins built without a metadata section, which are probed); with `check` every
/// winner is started (its `new()` runs with its settings) and stopped again.
pub fn discover(cfg: &PluginsConfig, check: bool) -> Vec<PluginReport> {
    let opened = if check {
        Registry::open(cfg.clone())
    } else {
        Registry::inspect(cfg.clone())
    };
    match opened {
        Ok(registry) => registry.reports(),
        Err(e) => vec![PluginReport::refused(
            cfg.cache_dir.clone(),
            e.to_string(),
            cfg.isolation,
        )],
    }
}

/// A fixed-width table; refusal reasons go on their own line under the file.
pub fn render_table(reports: &[PluginReport]) -> String {
    let dash = || "-".to_owned();
    let rows: Vec<[String; 6]> = reports
        .iter()
        .map(|r| {
            [
                r.name.clone().unwrap_or_else(dash),
                r.version.clone().unwrap_or_else(dash),
                r.interface_version.clone().unwrap_or_else(dash),
                match r.status {
                    PluginStatus::Loaded => "loaded",
                    PluginStatus::Available => "available",
                    PluginStatus::Refused => "refused",
                    PluginStatus::Duplicate => "duplicate",
                }
                .to_owned(),
                r.file
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_else(|| r.file.display().to_string()),
                r.hash
                    .as_ref()
                    .map(|h| h[..h.len().min(16)].to_owned())
                    .unwrap_or_else(dash),
            ]
        })
        .collect();
    let header = ["NAME", "VERSION", "INTERFACE", "STATUS", "FILE", "SHA256"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<w$}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut out, &header.map(str::to_owned));
    if reports.is_empty() {
        out.push_str("(no plugin files found)\n");
    }
    for (row, report) in rows.iter().zip(reports) {
        line(&mut out, row);
        if let Some(reason) = &report.reason {
            let _ = writeln!(out, "    -> {reason}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_reasons() {
        let mut ok =
            PluginReport::refused("/p/libclamav.so".into(), String::new(), Isolation::Process);
        ok.status = PluginStatus::Loaded;
        ok.reason = None;
        ok.name = Some("clamav".into());
        ok.version = Some("1.2.0".into());
        ok.hash = Some("0123456789abcdef0123".into());
        let bad = PluginReport::refused(
            "/p/x.so".into(),
            "not a loadable library: file too short".into(),
            Isolation::Process,
        );
        let table = render_table(&[ok, bad]);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("NAME"), "{table}");
        assert!(
            lines[1].contains("clamav")
                && lines[1].contains("loaded")
                && lines[1].contains("0123456789abcdef")
        );
        assert!(!lines[1].contains("0123456789abcdef0123"));
        assert!(lines[2].contains("refused") && lines[2].contains("x.so"));
        assert_eq!(lines[3], "    -> not a loadable library: file too short");
    }
}
