//! Product identity and health: `upd -version`, `upd --list-modules`, `lic --status`,
//! `systemctl is-active`, and the legacy `data.txt` / `esets_scan --version`.

use chrono::NaiveDate;

use crate::dates::parse_ymd;

/// `/opt/eset/eea/bin/upd (eea) 12.0.13.0` (F-E3) → `("eea", "12.0.13.0")`. The same GNU
/// shape is expected from the legacy `esets_scan --version` ([R] in the doc).
pub fn version(text: &str) -> Option<(String, String)> {
    text.lines().find_map(|line| {
        let open = line.find('(')?;
        let close = open + line[open..].find(')')?;
        let code = line[open + 1..close].trim().to_string();
        let ver = line[close + 1..].split_whitespace().next()?;
        ver.chars()
            .next()
            .filter(char::is_ascii_digit)
            .map(|_| (code, ver.trim_end_matches('.').to_string()))
    })
}

/// Fallback when the version line has no `(code)`: the last whitespace field that looks like
/// a version (`odscan --version | awk '{print $NF}'`, Saphir).
pub fn last_version_field(text: &str) -> Option<String> {
    text.split_whitespace()
        .rev()
        .find(|w| w.contains('.') && w.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .map(str::to_string)
}

/// One row of `upd --list-modules` (F-E1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub id: String,
    pub version: String,
    pub date: Option<NaiveDate>,
    pub name: String,
}

/// The ESET module id of the detection engine (signatures).
pub const DETECTION_ENGINE: &str = "EM002";

/// `EM002<TAB> 31832 (20250909)<TAB>Detection engine`: TAB-separated, versions right-aligned
/// with spaces and possibly non-integer (`2054.1`). Rows that are not modules are skipped.
pub fn modules(text: &str) -> Vec<Module> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let id = line.split_whitespace().next()?;
            if !(id.starts_with("EM")
                && id.len() > 2
                && id[2..].chars().all(|c| c.is_ascii_digit()))
            {
                return None;
            }
            let rest = line[id.len()..].trim_start();
            let open = rest.find('(')?;
            let close = open + rest[open..].find(')')?;
            Some(Module {
                id: id.to_string(),
                version: rest[..open].trim().to_string(),
                date: parse_ymd(&rest[open + 1..close]),
                name: rest[close + 1..].trim().to_string(),
            })
        })
        .collect()
}

/// `lic --status` (F-E2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct License {
    pub product_name: Option<String>,
    pub status: Option<String>,
    pub public_id: Option<String>,
    pub validity: Option<String>,
}

/// `Key: value` lines; keys compared case-insensitively (`License Validity` / `License validity`).
pub fn license(text: &str) -> License {
    let mut lic = License::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = Some(value.trim().to_string()).filter(|v| !v.is_empty());
        match key.trim().to_ascii_lowercase().as_str() {
            "product name" | "product" => lic.product_name = value,
            "status" | "license status" => lic.status = value,
            "public id" => lic.public_id = value,
            "license validity" | "validity" | "expiration" | "expiration date" => {
                lic.validity = value
            }
            _ => {}
        }
    }
    lic
}

/// Human product name from the `(code)` of a version line.
pub fn product_name(code: &str) -> &'static str {
    match code {
        "eea" => "ESET Endpoint Antivirus for Linux",
        "efs" | "essl" => "ESET Server Security for Linux",
        "esets" => "ESET NOD32 / File Security (ESETS)",
        _ => "ESET for Linux",
    }
}

/// `systemctl is-active` prints one word.
pub fn service_active(text: &str) -> Option<bool> {
    match text.split_whitespace().next()? {
        "active" | "reloading" | "activating" => Some(true),
        "inactive" | "failed" | "deactivating" | "unknown" => Some(false),
        _ => None,
    }
}

/// Legacy ESETS `data.txt`: `Key=Value` lines (`InstallTime=`, `LastUpdate=`,
/// `LastUpdateAttempt=` as epochs, `VerFileETAG_update.eset.com=` the signature version).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegacyData {
    pub install_time: Option<i64>,
    pub last_update: Option<i64>,
    pub last_update_attempt: Option<i64>,
    pub signature_version: Option<String>,
}

pub fn legacy_data(text: &str) -> LegacyData {
    let mut d = LegacyData::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let epoch = || value.parse::<i64>().ok().filter(|t| *t > 0);
        match key.trim() {
            "InstallTime" => d.install_time = epoch(),
            "LastUpdate" => d.last_update = epoch(),
            "LastUpdateAttempt" => d.last_update_attempt = epoch(),
            k if k.starts_with("VerFileETAG") && !value.is_empty() => {
                d.signature_version = Some(value.trim_matches('"').to_string())
            }
            _ => {}
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    /// F-E1, verbatim (TABs and alignment as in the source).
    const LIST_MODULES: &str = "EM000\t  1088 (20250708)\tUpdate module\nEM001\t  1629 (20250805)\tAntivirus and antispyware scanner module\nEM002\t 31832 (20250909)\tDetection engine\nEM003\t  1359 (20250813)\tArchive support module\nEM017\t2054.1 (20250805)\tTranslation support module\n";

    #[test]
    fn version_line_f_e3() {
        assert_eq!(
            version("/opt/eset/eea/bin/upd (eea) 12.0.13.0\n"),
            Some(("eea".into(), "12.0.13.0".into()))
        );
        assert_eq!(version("no version here"), None);
        assert_eq!(
            last_version_field("odscan 8.0.375.0\n"),
            Some("8.0.375.0".into())
        );
    }

    #[test]
    fn modules_f_e1() {
        let m = modules(LIST_MODULES);
        assert_eq!(m.len(), 5);
        let engine = m.iter().find(|m| m.id == DETECTION_ENGINE).unwrap();
        assert_eq!(engine.version, "31832");
        assert_eq!(engine.date, NaiveDate::from_ymd_opt(2025, 9, 9));
        assert_eq!(engine.name, "Detection engine");
        assert_eq!(m[4].version, "2054.1");
        assert!(modules("Error: cannot connect\n\n").is_empty());
    }

    #[test]
    fn license_f_e2_and_a_renamed_label() {
        let l = license(
            "Product name: ESET Endpoint Antivirus for Linux\nStatus: Activated\nPublic ID: 999-XXX-YYY\nLicense Validity: 2026-06-21\n",
        );
        assert_eq!(l.status.as_deref(), Some("Activated"));
        assert_eq!(l.validity.as_deref(), Some("2026-06-21"));
        assert_eq!(
            l.product_name.as_deref(),
            Some("ESET Endpoint Antivirus for Linux")
        );
        let l = license("License status: Expired\nLicense validity: 2020-01-01\n");
        assert_eq!(l.status.as_deref(), Some("Expired"));
        assert_eq!(l.validity.as_deref(), Some("2020-01-01"));
    }

    #[test]
    fn legacy_data_txt() {
        // [R] shape: keys are those the old agent and IRMA read; values invented
        let d = legacy_data(
            "InstallTime=1479900000\nLastUpdate=1479907353\nLastUpdateAttempt=1479910000\nVerFileETAG_update.eset.com=\"14502\"\nJunk\n",
        );
        assert_eq!(d.last_update, Some(1_479_907_353));
        assert_eq!(d.install_time, Some(1_479_900_000));
        assert_eq!(d.signature_version.as_deref(), Some("14502"));
        assert_eq!(legacy_data("LastUpdate=abc"), LegacyData::default());
    }

    #[test]
    fn service_words() {
        assert_eq!(service_active("active\n"), Some(true));
        assert_eq!(service_active("inactive\n"), Some(false));
        assert_eq!(service_active(""), None);
    }
}
