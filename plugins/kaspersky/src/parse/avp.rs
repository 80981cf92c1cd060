//! Kaspersky Endpoint Security for Windows: `avp.com SCAN … /i0 /RA:<report>` output (the
//! report file and stdout share the format, F-K1/F-K2).
//!
//! Object lines: `YYYY-MM-DD hh:mm:ss<TAB or space><path>[ ]<TAB><verdict>[<TAB><name>]`;
//! task lines: `<date><TAB>Scan_Objects$0546   running   12%`; then `;  --- Statistics ---`
//! with `; Key:<TAB>value` lines. Both `detected` and `suspicion` objects are detections
//! (the old agent kept only `suspicion`, §7.3).

use chrono::NaiveDateTime;

use crate::dates;

/// What an object line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Object {
        time: NaiveDateTime,
        path: String,
        verdict: String,
        name: String,
    },
    /// `Scan_Objects$0546 running 12%`.
    Task { state: String, percent: Option<u8> },
}

const VERDICTS: &[&str] = &[
    "detected",
    "suspicion",
    "ok",
    "skipped",
    "archive",
    "packed",
    "corrupted",
    "password protected",
    "error",
    "disinfected",
    "deleted",
    "was deleted",
    "postponed",
];

/// Is this verdict a detection?
pub fn is_detection(verdict: &str) -> bool {
    matches!(verdict, "detected" | "suspicion")
}

pub fn line(text: &str) -> Option<Line> {
    let time = dates::parse(text.get(..19)?)?;
    let rest = text[19..].strip_prefix(['\t', ' '])?;
    let rest = rest.trim_end_matches(['\r', '\n']);
    let fields: Vec<&str> = rest.split('\t').collect();
    if fields.len() >= 2 {
        return Some(Line::Object {
            time,
            path: fields[0].trim().to_string(),
            verdict: fields[1].trim().to_string(),
            name: fields.get(2).map_or("", |n| n.trim()).to_string(),
        });
    }
    let words: Vec<&str> = rest.split_whitespace().collect();
    if let [task, state, tail @ ..] = words.as_slice()
        && task.contains('$')
    {
        let percent = tail
            .first()
            .and_then(|p| p.strip_suffix('%'))
            .and_then(|p| p.parse::<u8>().ok())
            .filter(|p| *p <= 100);
        return Some(Line::Task {
            state: state.to_string(),
            percent,
        });
    }
    // TABs expanded to spaces (as in the old agent's sample): find the verdict word
    VERDICTS.iter().find_map(|v| {
        let at = rest.rfind(&format!(" {v}"))?;
        let after = &rest[at + 1 + v.len()..];
        (after.is_empty() || after.starts_with(char::is_whitespace)).then(|| Line::Object {
            time,
            path: rest[..at].trim().to_string(),
            verdict: v.to_string(),
            name: after.trim().to_string(),
        })
    })
}

/// The Statistics block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Statistics {
    pub processed: Option<u64>,
    pub ok: Option<u64>,
    pub detected: Option<u64>,
    pub suspicions: Option<u64>,
    pub skipped: Option<u64>,
    pub password_protected: Option<u64>,
    pub corrupted: Option<u64>,
    pub errors: Option<u64>,
    pub time_start: Option<NaiveDateTime>,
    pub time_finish: Option<NaiveDateTime>,
}

impl Statistics {
    pub fn found(&self) -> bool {
        self.processed.is_some() || self.detected.is_some()
    }
}

pub fn statistics(text: &str) -> Statistics {
    let mut s = Statistics::default();
    for l in text.lines() {
        let Some(l) = l.strip_prefix(';') else {
            continue;
        };
        let Some((key, value)) = l.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let n = || value.parse::<u64>().ok();
        match key.trim() {
            "Processed objects" => s.processed = n(),
            "Total OK" => s.ok = n(),
            "Total detected" => s.detected = n(),
            "Suspicions" => s.suspicions = n(),
            "Total skipped" => s.skipped = n(),
            "Password protected" => s.password_protected = n(),
            "Corrupted" => s.corrupted = n(),
            "Errors" => s.errors = n(),
            "Time Start" => s.time_start = dates::parse(value),
            "Time Finish" => s.time_finish = dates::parse(value),
            _ => {}
        }
    }
    s
}

/// `AV bases release date: 2018-05-23 12:37:00 (full)` (F-K2).
pub fn bases_date(text: &str) -> Option<NaiveDateTime> {
    text.lines()
        .find_map(|l| l.strip_prefix("AV bases release date:"))
        .and_then(|v| v.trim().get(..19))
        .and_then(dates::parse)
}

/// `Info: task 'ods' finished, last error code 0` (F-K2).
pub fn last_error_code(text: &str) -> Option<i64> {
    text.lines()
        .find_map(|l| l.split_once("last error code"))
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// Report files are UTF-16 with a BOM on some Windows installs, UTF-8 elsewhere.
pub fn decode_report(bytes: &[u8]) -> String {
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        return String::from_utf16_lossy(&units);
    }
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// F-K1 verbatim (real TABs and trailing spaces as in the source).
    pub const F_K1: &str = "2019-06-28 09:50:17\tScan_Objects$0546         starting   1%         \n2019-06-28 09:50:18\tScan_Objects$0546         running    1%         \n2019-06-28 09:50:18 C:\\virus-checker\\eicar.com \tdetected\tEICAR-Test-File\n2019-06-28 09:50:18\tC:\\virus-checker\\eicar.com \tskipped\n2019-06-28 09:50:18\tScan_Objects$0546         completed             \n;  --- Statistics ---\n; Time Start:\t2019-06-28 09:50:17\n; Time Finish:\t2019-06-28 09:50:18\n; Processed objects:\t1\n; Total OK:\t0\n; Total detected:\t1\n; Suspicions:\t0\n; Total skipped:\t0\n; Password protected:\t0\n; Corrupted:\t0\n; Errors:\t0\n;  ------------------\n";

    #[test]
    fn f_k1_objects_tasks_and_statistics() {
        let lines: Vec<Line> = F_K1.lines().filter_map(line).collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(
            lines[1],
            Line::Task {
                state: "running".into(),
                percent: Some(1)
            }
        );
        match &lines[2] {
            Line::Object {
                path,
                verdict,
                name,
                time,
            } => {
                assert_eq!(path, r"C:\virus-checker\eicar.com");
                assert_eq!(verdict, "detected");
                assert_eq!(name, "EICAR-Test-File");
                assert_eq!(time.to_string(), "2019-06-28 09:50:18");
            }
            other => panic!("{other:?}"),
        }
        let s = statistics(F_K1);
        assert_eq!(
            (s.processed, s.detected, s.suspicions, s.errors),
            (Some(1), Some(1), Some(0), Some(0))
        );
        assert_eq!(s.time_start.unwrap().to_string(), "2019-06-28 09:50:17");
    }

    #[test]
    fn old_agent_sample_with_expanded_tabs_keeps_both_verdicts() {
        // reference-agent §7.3 (as printed there, TABs shown as spaces)
        let out = "2016-11-30 16:04:36     C:\\for_eric\\75c1ae242d07bb738a5d9a9766c2a7de//data0000  detected        Exploit.JS.Pdfka.flm\n2016-11-30 16:04:36     C:\\for_eric\\779cb6dc0055bdf63cbb2c9f9f3a95cc//data0000  suspicion       HEUR:Exploit.Script.Generic\n; Processed objects:    131\n; Total detected:       57\n; Suspicions:   21\n";
        let hits: Vec<(String, String, String)> = out
            .lines()
            .filter_map(line)
            .filter_map(|l| match l {
                Line::Object {
                    path,
                    verdict,
                    name,
                    ..
                } if is_detection(&verdict) => Some((path, verdict, name)),
                _ => None,
            })
            .collect();
        assert_eq!(hits.len(), 2, "detected AND suspicion lines");
        assert_eq!(
            hits[0].0,
            r"C:\for_eric\75c1ae242d07bb738a5d9a9766c2a7de//data0000"
        );
        assert_eq!(hits[1].2, "HEUR:Exploit.Script.Generic");
        let s = statistics(out);
        assert_eq!(
            (s.processed, s.detected, s.suspicions),
            (Some(131), Some(57), Some(21))
        );
    }

    #[test]
    fn f_k2_header_and_footer() {
        let out = "AV bases release date: 2018-05-23 12:37:00 (full)\nWarning: scan action parameter is ignored due to non-interactive mode is in effect\n; --- Settings ---\n; Action on detect:     Disinfect automatically\nInfo: task 'ods' finished, last error code 0\n";
        assert_eq!(bases_date(out).unwrap().to_string(), "2018-05-23 12:37:00");
        assert_eq!(last_error_code(out), Some(0));
        assert!(out.lines().filter_map(line).next().is_none());
        assert!(!statistics(out).found());
    }

    #[test]
    fn utf16_reports_decode() {
        let mut bytes = vec![0xFF, 0xFE];
        for u in "; Total detected:\t2\n".encode_utf16() {
            bytes.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(statistics(&decode_report(&bytes)).detected, Some(2));
        assert_eq!(decode_report(b"\xEF\xBB\xBFok"), "ok");
    }
}
