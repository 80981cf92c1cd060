//! On-demand scan output: `odscan` (EEA/ESSL) and `esets_scan` (ESETS 4.x) share the line
//! format `name="…", result|threat="…", action="…", info="…"` and the summary block;
//! `--show-scan-info` adds a JSON object naming the scan's log, whose
//! `lslog --ods-details=<log>` gives the totals.

use serde::Deserialize;

/// One detection line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub path: String,
    pub threat: String,
    pub action: String,
    pub info: String,
}

/// Threat values that are not detections (legacy scanner prints them for containers and
/// clean objects).
const NOT_A_THREAT: &[&str] = &["", "is OK", "multiple threats"];

/// Parse one detection line. File names may contain `", ` and quotes, so the line is cut at
/// the *last* `", action="` and, before it, at the last `", result="` / `", threat="`.
pub fn hit(line: &str) -> Option<Hit> {
    let rest = line.trim_end().strip_prefix("name=\"")?;
    let action_at = rest.rfind("\", action=\"")?;
    let (head, tail) = (
        &rest[..action_at],
        &rest[action_at + "\", action=\"".len()..],
    );
    let threat_at = ["\", result=\"", "\", threat=\""]
        .iter()
        .filter_map(|k| head.rfind(k).map(|i| (i, k.len())))
        .max()?;
    let path = &head[..threat_at.0];
    let threat = &head[threat_at.0 + threat_at.1..];
    let (action, info) = match tail.rfind("\", info=\"") {
        Some(i) => (
            &tail[..i],
            tail[i + "\", info=\"".len()..].trim_end_matches('"'),
        ),
        None => (tail.trim_end_matches('"'), ""),
    };
    if NOT_A_THREAT.contains(&threat) || path.is_empty() {
        return None;
    }
    Some(Hit {
        path: path.to_string(),
        threat: threat.to_string(),
        action: action.to_string(),
        info: info.to_string(),
    })
}

/// Totals of a scan, from the summary block or `lslog --ods-details`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub scanned: Option<u64>,
    pub detected: Option<u64>,
    pub cleaned: Option<u64>,
    pub not_scanned: Option<u64>,
}

/// The summary block (legacy fixture; R-E1 for odscan):
/// `Total:             files - 232, objects 1699`, `Infected:` (ESETS) or `Detected:`
/// (current), `Cleaned:`. The file count is taken.
pub fn summary(text: &str) -> Totals {
    let mut t = Totals::default();
    for line in text.lines() {
        let Some((label, value)) = line.split_once(':') else {
            continue;
        };
        let files = || {
            let v = value.trim();
            let v = v.strip_prefix("files -").unwrap_or(v);
            v.split(|c: char| c == ',' || c.is_whitespace())
                .find(|w| !w.is_empty())
                .and_then(|w| w.parse::<u64>().ok())
        };
        match label.trim() {
            "Total" => t.scanned = files(),
            "Infected" | "Detected" => t.detected = files(),
            "Cleaned" => t.cleaned = files(),
            _ => {}
        }
    }
    t
}

/// `--show-scan-info` JSON (F-E5), possibly pretty-printed over several lines, anywhere in
/// the output: the log name of the scan.
pub fn scan_log_name(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Info {
        log_name: String,
    }
    let mut buf = String::new();
    let mut depth = 0usize;
    for line in text.lines() {
        let t = line.trim();
        if depth == 0 && !t.starts_with('{') {
            continue;
        }
        depth += t.matches('{').count();
        depth = depth.saturating_sub(t.matches('}').count());
        buf.push_str(t);
        if depth == 0 {
            if let Ok(info) = serde_json::from_str::<Info>(&buf) {
                return Some(info.log_name).filter(|n| !n.is_empty());
            }
            buf.clear();
        }
    }
    None
}

/// `lslog --ods-details=<log>` (F-E6): `Key: value` lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OdsDetails {
    pub totals: Totals,
    pub started: Option<String>,
    /// Empty while the scan still runs (Saphir's "still running" signal).
    pub completed: Option<String>,
}

pub fn ods_details(text: &str) -> OdsDetails {
    let mut d = OdsDetails::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let n = || value.parse::<u64>().ok();
        match key.trim() {
            "Scanned" => d.totals.scanned = n(),
            "Detections occurred" | "Detected" | "Infected" => d.totals.detected = n(),
            "Cleaned" => d.totals.cleaned = n(),
            "Not scanned" => d.totals.not_scanned = n(),
            "Time started" => d.started = Some(value.to_string()),
            "Time of completion" => d.completed = Some(value.to_string()).filter(|v| !v.is_empty()),
            _ => {}
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Legacy esets_scan output, verbatim from the old agent's test (reference-agent §7.2).
    const LEGACY: &str = "name=\"/home/malwares/Mal_Java_64FD14CEF0026D4240A4550E6A6F9E83.jar » ZIP » a/kors.class\", threat=\"a variant of Java/Exploit.Agent.OKJ trojan\", action=\"action selection postponed until scan completion\", info=\"\"\nScan completed at: mer. 23 nov. 2016 15:05:32 CET\nScan time:         9 sec (0:00:09)\nTotal:             files - 232, objects 1699\nInfected:          files - 188, objects 886\nCleaned:           files - 0, objects 0\n";

    /// R-E1: a reconstruction, not a capture (`Detected:` label, `result=` key).
    const RECONSTRUCTED_ODSCAN: &str = "Scan started at:   Tue Jan  1 01:32:57 2019\nname=\"/tmp/eicar.com\", result=\"Eicar test file\", action=\"retained\", info=\"\"\n\nScan completed at: Tue Jan  1 01:32:57 2019\nScan time:         0 sec (0:00:00)\nTotal:             files - 1, objects 1\nDetected:          files - 1, objects 1\nCleaned:           files - 0, objects 0\n";

    #[test]
    fn result_key_f_e4() {
        let h =
            hit(r#"name="/tmp/eicar.txt", result="Eicar test file", action="retained", info="""#)
                .unwrap();
        assert_eq!(h.path, "/tmp/eicar.txt");
        assert_eq!(h.threat, "Eicar test file");
        assert_eq!(h.action, "retained");
        assert_eq!(h.info, "");
    }

    #[test]
    fn legacy_threat_key_and_summary() {
        let hits: Vec<Hit> = LEGACY.lines().filter_map(hit).collect();
        assert_eq!(hits.len(), 1);
        assert!(hits[0].path.ends_with(".jar » ZIP » a/kors.class"));
        assert_eq!(hits[0].threat, "a variant of Java/Exploit.Agent.OKJ trojan");
        assert_eq!(
            summary(LEGACY),
            Totals {
                scanned: Some(232),
                detected: Some(188),
                cleaned: Some(0),
                not_scanned: None
            }
        );
    }

    #[test]
    fn renamed_summary_label_r_e1() {
        let t = summary(RECONSTRUCTED_ODSCAN);
        assert_eq!(
            (t.scanned, t.detected, t.cleaned),
            (Some(1), Some(1), Some(0))
        );
        assert_eq!(RECONSTRUCTED_ODSCAN.lines().filter_map(hit).count(), 1);
    }

    #[test]
    fn names_with_quotes_and_commas_survive() {
        let h = hit(r#"name="/srv/a", result="x", b.txt", result="Win32/Agent trojan", action="retained", info="found in, archive""#)
            .unwrap();
        assert_eq!(h.path, r#"/srv/a", result="x", b.txt"#);
        assert_eq!(h.threat, "Win32/Agent trojan");
        assert_eq!(h.info, "found in, archive");
    }

    #[test]
    fn non_threats_and_junk_are_skipped() {
        assert_eq!(
            hit(r#"name="/a", threat="is OK", action="", info="""#),
            None
        );
        assert_eq!(hit(r#"name="/a", threat="", action="", info="""#), None);
        assert_eq!(
            hit(r#"name="/a.zip", threat="multiple threats", action="", info="""#),
            None
        );
        assert_eq!(hit("name=\"/a"), None);
        assert_eq!(hit(""), None);
    }

    #[test]
    fn scan_info_json_f_e5_and_details_f_e6() {
        let out = "{\n    \"type\":0,\n    \"session_id\":6,\n    \"log_name\":\"ndlnJ78oi\"\n}\nname=\"/x\", result=\"y\", action=\"retained\", info=\"\"\n";
        assert_eq!(scan_log_name(out).as_deref(), Some("ndlnJ78oi"));
        assert_eq!(scan_log_name("{broken\n"), None);
        let d = ods_details(
            "Triggered by: root\nTime started: 04/02/25 20:24:12\nTime of completion: 04/02/25 20:24:12\nDuration: 00:00:00\nScanned targets: /mnt/storage/benchfile_100ko_1\nDetections occurred: 0\nCleaned: 0\nNot scanned: 0\nScanned: 1\n",
        );
        assert_eq!(
            d.totals,
            Totals {
                scanned: Some(1),
                detected: Some(0),
                cleaned: Some(0),
                not_scanned: Some(0)
            }
        );
        assert_eq!(d.completed.as_deref(), Some("04/02/25 20:24:12"));
        assert_eq!(ods_details("Time of completion: \n").completed, None);
    }
}
