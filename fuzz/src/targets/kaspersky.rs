//! Kaspersky backend: KESL `kesl-control` output (app info, task state, scan summary, events,
//! settings INI), KES for Windows `avp.com` reports (UTF-16 or UTF-8) and `kescli` output (with
//! the alerts cursor paging over threats), the settings export XML, tuning values.

use armadito_backend_kaspersky::kes;
use armadito_backend_kaspersky::parse::{avp, kescli, kesl, pairs};
use armadito_backend_kaspersky::{dates, tuning};
use armadito_plugin_api::model::AlertsQuery;
use serde_json::Value;

use super::{Target, assert_pages_make_the_whole, seeds, text};

macro_rules! fake {
    ($path:literal) => {
        include_bytes!(concat!("../../../tests/fakes/kaspersky/kesl/out/", $path)).to_vec()
    };
}

const F_K1: &str = "2019-06-28 09:50:17\tScan_Objects$0546         starting   1%         \n2019-06-28 09:50:18\tScan_Objects$0546         running    1%         \n2019-06-28 09:50:18 C:\\virus-checker\\eicar.com \tdetected\tEICAR-Test-File\n2019-06-28 09:50:18\tC:\\virus-checker\\eicar.com \tskipped\n2019-06-28 09:50:18\tScan_Objects$0546         completed             \n;  --- Statistics ---\n; Time Start:\t2019-06-28 09:50:17\n; Time Finish:\t2019-06-28 09:50:18\n; Processed objects:\t1\n; Total OK:\t0\n; Total detected:\t1\n; Suspicions:\t0\n; Total skipped:\t0\n; Password protected:\t0\n; Corrupted:\t0\n; Errors:\t0\n;  ------------------\n";

pub fn targets() -> Vec<Target> {
    vec![
        Target {
            name: "kesl_outputs",
            about: "kesl-control output: --app-info, --get-task-state, --scan-file, -E events, settings INI",
            seeds: || {
                vec![
                    fake!("app-info.default"),
                    fake!("app-info.renamed"),
                    fake!("task-state.default"),
                    fake!("scan-file.default"),
                    fake!("scan-file.clean"),
                    fake!("scan-file.stopped"),
                    fake!("events.default"),
                    fake!("settings-1.default"),
                    fake!("settings-2.default"),
                    fake!("set-settings.policy"),
                ]
            },
            dict: &[
                "EventType=",
                "EventId=",
                "Date=",
                "DangerLevel=",
                "FileName=",
                "DetectName=",
                ":",
                "=",
                "\n\n",
                "[ScanSettings]",
                "Started",
                "Stopped",
                "Running",
                "2019-06-11 22:12:16",
                "9999-99-99 99:99:99",
                "Total detected objects:",
            ],
            generate: None,
            run: |d| {
                let t = text(d);
                let _ = kesl::app_info(&t);
                if let Some(s) = kesl::task_state(&t) {
                    let _ = kesl::task_running(&s);
                }
                let _ = kesl::scan_summary(&t);
                let _ = kesl::events(&t);
                let _ = kesl::settings_ini(&t);
                let _ = pairs(&t, ':');
                let _ = pairs(&t, '=');
                for line in t.lines() {
                    let _ = dates::parse(line);
                    if let Some((_, v)) = line.split_once('=') {
                        let _ = tuning::normalise(
                            line.split('=').next().unwrap_or(""),
                            &Value::String(v.into()),
                        );
                    }
                }
            },
        },
        Target {
            name: "kes_windows",
            about: "avp.com reports (UTF-16/UTF-8, progress and detection lines, statistics), kescli output and threats through the alerts cursor, the settings export XML",
            seeds: || {
                let mut s = seeds(&[
                    F_K1,
                    "EICAR-Test-File 1 2019-06-28 09:50:18 C:\\a b\\eicar.com 15 2\nHEUR:Trojan.Win32.Generic 2 2019-06-29 10:00:00 C:\\x.exe 11 1\n",
                    "12.3.0.493\r\n6/28/2019 9:50:17 AM\r\n1\r\n",
                    r#"<root><ekaSettings><on_demand_tasks><item name="Scan_My_Computer"><settings ScanArchives="0" MaxFileSize="8"/></item></on_demand_tasks></ekaSettings></root>"#,
                ]);
                let utf16: Vec<u8> = [0xFF, 0xFE]
                    .into_iter()
                    .chain(F_K1.encode_utf16().flat_map(u16::to_le_bytes))
                    .collect();
                s.push(utf16);
                s
            },
            dict: &[
                "\t",
                "detected",
                "skipped",
                "completed",
                "running",
                "%",
                "; Total detected:\t",
                "; Errors:\t",
                "Scan_Objects$",
                "<item name=\"",
                "<settings ",
                "=\"",
                "\"/>",
                "\u{feff}",
                " AM",
                " PM",
            ],
            generate: None,
            run: |d| {
                let report = avp::decode_report(d);
                let _ = avp::statistics(&report);
                let _ = avp::bases_date(&report);
                let _ = avp::last_error_code(&report);
                for code in [None, Some(0), Some(1), Some(2), Some(-1), Some(i32::MAX)] {
                    let _ = kes::scan_result(&report, code);
                }
                let _ = kes::export_entries(&report);
                let _ = kescli::version(&report);
                let _ = kescli::definition_date(&report);
                let _ = kescli::realtime(&report);
                for line in report.lines() {
                    let _ = avp::line(line);
                    let _ = avp::is_detection(line);
                    if let Some(p) = kes::progress(line) {
                        assert!(p <= 100, "progress {p}%");
                    }
                    let _ = kes::line_detection(line);
                    let _ = kescli::threat(line);
                }
                check_paging(&report);
            },
        },
    ]
}

/// Paging through the threats two at a time gives what one big page gives.
fn check_paging(text: &str) {
    let Ok(whole) = kes::threats_page(text, &AlertsQuery::default(), usize::MAX >> 1) else {
        return;
    };
    // Paging re-reads the whole history per page: keep it quadratic in something small.
    if whole.detections.len() > 40 {
        return;
    }
    let query = AlertsQuery::default();
    assert_pages_make_the_whole(&whole, whole.detections.len() + 1, query, |q| {
        kes::threats_page(text, q, 2).expect("our own cursor is accepted")
    });
}
