//! Microsoft Defender backend: PowerShell `ConvertTo-Json` rows (status, preferences,
//! detections and threats), `MpCmdRun.exe` text, `mdatp --output json` (health, threat list,
//! exclusions) and `mdatp scan` text; the alerts cursor paging over what they give.

use armadito_backend_defender::cursor::{Timed, page};
use armadito_backend_defender::mdatp::{features, health, scan_counters, threats as mthreats};
use armadito_backend_defender::windows::{mpcmdrun, powershell, prefs, status, threats};
use armadito_backend_defender::{config::values, dates};
use armadito_plugin_api::model::AlertsQuery;
use serde_json::Value;

use super::{Target, assert_pages_make_the_whole, text};
use crate::make;

const NOW: i64 = 1_717_600_000;

pub fn targets() -> Vec<Target> {
    vec![
        Target {
            name: "defender_powershell",
            about: "PowerShell JSON rows: Get-MpComputerStatus, Get-MpPreference, Get-MpThreatDetection/Get-MpThreat (windows::*)",
            seeds: || {
                vec![
                    include_bytes!(
                        "../../../tests/fakes/defender/fixtures/windows/status-ps51.json"
                    )
                    .to_vec(),
                    include_bytes!(
                        "../../../tests/fakes/defender/fixtures/windows/status-ps7.json"
                    )
                    .to_vec(),
                    include_bytes!(
                        "../../../tests/fakes/defender/fixtures/windows/status-inactive.txt"
                    )
                    .to_vec(),
                    include_bytes!("../../../tests/fakes/defender/fixtures/windows/prefs.json")
                        .to_vec(),
                    include_bytes!(
                        "../../../tests/fakes/defender/fixtures/windows/prefs-after.json"
                    )
                    .to_vec(),
                    include_bytes!(
                        "../../../tests/fakes/defender/fixtures/windows/detections-0.json"
                    )
                    .to_vec(),
                    include_bytes!(
                        "../../../tests/fakes/defender/fixtures/windows/detections-1.json"
                    )
                    .to_vec(),
                    include_bytes!(
                        "../../../tests/fakes/defender/fixtures/windows/detections-n.json"
                    )
                    .to_vec(),
                    include_bytes!("../../../tests/fakes/defender/fixtures/windows/threats-1.json")
                        .to_vec(),
                    include_bytes!("../../../tests/fakes/defender/fixtures/windows/threats-n.json")
                        .to_vec(),
                ]
            },
            dict: &[
                "\u{feff}",
                "\"\\/Date(",
                ")\\/\"",
                "\"ThreatID\"",
                "\"ThreatStatusID\"",
                "\"Resources\"",
                "\"InitialDetectionTime\"",
                "\"AMRunningMode\"",
                "\"RealTimeProtectionEnabled\"",
                "\"AntivirusSignatureLastUpdated\"",
                "\"ExclusionPath\"",
                "\"DisableRealtimeMonitoring\"",
                "file:_",
                "null",
                "[",
                "]",
            ],
            generate: Some(|u| {
                let keys = [
                    "ThreatID",
                    "ThreatStatusID",
                    "Resources",
                    "InitialDetectionTime",
                    "ThreatName",
                    "DetectionID",
                    "AMRunningMode",
                    "AMServiceEnabled",
                    "RealTimeProtectionEnabled",
                    "AntivirusSignatureLastUpdated",
                    "AntivirusSignatureVersion",
                    "ExclusionPath",
                    "DisableRealtimeMonitoring",
                    "ScanAvgCPULoadFactor",
                ];
                let words = [
                    "\\/Date(1717513587000)\\/",
                    "/Date(-1)/",
                    "file:_C:\\x",
                    "Normal",
                    "Passive Mode",
                ];
                let rows = make::json(u, &keys, &words, 3)?;
                Ok(rows.to_string().into_bytes())
            }),
            run: run_powershell,
        },
        Target {
            name: "defender_mpcmdrun",
            about: "MpCmdRun.exe -Scan text output (windows::mpcmdrun)",
            seeds: || {
                vec![
                    include_bytes!(
                        "../../../tests/fakes/defender/fixtures/windows/mpcmdrun-clean.txt"
                    )
                    .to_vec(),
                    include_bytes!(
                        "../../../tests/fakes/defender/fixtures/windows/mpcmdrun-infected.txt"
                    )
                    .to_vec(),
                    include_bytes!(
                        "../../../tests/fakes/defender/fixtures/windows/mpcmdrun-failed.txt"
                    )
                    .to_vec(),
                ]
            },
            dict: &[
                "Threat                  : ",
                "Resources               : ",
                "    file                : ",
                " total",
                "found ",
                " threats.",
                "<===========================LIST OF DETECTED THREATS==========================>",
                "----------------------------- Threat information ------------------------------",
                "Scan starting...",
                "Scan finished.",
                "\r\n",
            ],
            generate: None,
            run: |d| {
                let t = text(d);
                let _ = mpcmdrun::parse(&t);
                for line in t.lines() {
                    let _ = threats::resource_path(line);
                }
            },
        },
        Target {
            name: "mdatp_json",
            about: "mdatp --output json: health, threat list, exclusion list; mdatp scan text (mdatp::*)",
            seeds: || {
                vec![
                    include_bytes!("../../seeds/mdatp-health-101.23062.0010.json").to_vec(),
                    include_bytes!("../../../tests/fakes/defender/fixtures/mdatp/health.json")
                        .to_vec(),
                    include_bytes!(
                        "../../../tests/fakes/defender/fixtures/mdatp/health-managed.json"
                    )
                    .to_vec(),
                    include_bytes!(
                        "../../../tests/fakes/defender/fixtures/mdatp/health-after-config.json"
                    )
                    .to_vec(),
                    include_bytes!(
                        "../../../tests/fakes/defender/fixtures/mdatp/threat-list-0.json"
                    )
                    .to_vec(),
                    include_bytes!(
                        "../../../tests/fakes/defender/fixtures/mdatp/threat-list-1.json"
                    )
                    .to_vec(),
                    include_bytes!(
                        "../../../tests/fakes/defender/fixtures/mdatp/threat-list-2.json"
                    )
                    .to_vec(),
                    include_bytes!(
                        "../../../tests/fakes/defender/fixtures/mdatp/threat-list-scan.json"
                    )
                    .to_vec(),
                    include_bytes!(
                        "../../../tests/fakes/defender/fixtures/mdatp/exclusion-list.json"
                    )
                    .to_vec(),
                    include_bytes!(
                        "../../../tests/fakes/defender/fixtures/mdatp/exclusion-list-after.json"
                    )
                    .to_vec(),
                    include_bytes!("../../../tests/fakes/defender/fixtures/mdatp/scan-custom.txt")
                        .to_vec(),
                ]
            },
            dict: &[
                "\"value\"",
                "\"scope\"",
                "\"id\"",
                "\"threatName\"",
                "\"state\"",
                "\"detectionTime\"",
                "\"resources\"",
                "\"healthy\"",
                "\"definitionsUpdated\"",
                "\"realTimeProtectionEnabled\"",
                "\"$type\"",
                "\"excludedPath\"",
                "\"isDirectory\"",
                "file(s) scanned",
                "threat(s) detected",
                "1717513587000",
            ],
            generate: None,
            run: run_mdatp,
        },
    ]
}

fn run_powershell(d: &[u8]) {
    let Ok(rows) = powershell::rows(&text(d)) else {
        return;
    };
    for row in &rows {
        let _ = status::parse(row, NOW, 7, 14);
        let entries = prefs::entries(row);
        let plan = prefs::plan(&entries, row);
        let _ = plan;
        for e in &entries {
            let _ = prefs::holds(row, &e.attr, &e.value);
        }
        for key in ["ThreatName", "Resources", "ExclusionPath", "AMRunningMode"] {
            let _ = (powershell::text(row, key), powershell::strings(row, key));
        }
        if let Value::Object(m) = row {
            for v in m.values().take(40) {
                let _ = (dates::millis(v), dates::secs(v));
                let _ = (
                    values::boolean(v),
                    values::integer(v, -5, 100),
                    values::list(v),
                );
            }
        }
    }
    let _ = powershell::excerpt(&text(d));
    check_paging(threats::join(&rows, &rows));
}

fn run_mdatp(d: &[u8]) {
    let t = text(d);
    let _ = scan_counters(&t);
    let Ok(v) = serde_json::from_str::<Value>(&t) else {
        return;
    };
    let _ = health::parse(&v, NOW, 7, 14);
    let _ = health::entries(&v);
    let _ = health::setting(&v);
    let _ = features::parse_exclusions(&v);
    check_paging(mthreats::parse(&v));
}

/// Paging through every detection with a small limit returns what one big page returns:
/// each detection once, and the paging ends.
fn check_paging(all: Vec<Timed>) {
    let everything = AlertsQuery {
        limit: Some(u32::MAX),
        ..AlertsQuery::default()
    };
    let whole = page(all.clone(), &everything, 100).expect("no cursor");
    let query = AlertsQuery {
        limit: Some(2),
        ..AlertsQuery::default()
    };
    assert_pages_make_the_whole(&whole, all.len() + 1, query, |q| {
        page(all.clone(), q, 100).expect("our own cursor is accepted")
    });
}
