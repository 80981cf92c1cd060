//! One `armadito-journal` syslog line into a detection (backends.md A.5).
//!
//! Invariants: no I/O except the host's time-zone rules, read by `chrono` (BSD syslog stamps
//! are local time without a year or zone). Lines of other programs, other journal types (start,
//! completed, quarantine, real_time_prot) and clean verdicts give `None`.

use std::sync::OnceLock;

use chrono::{DateTime, Datelike, Local, NaiveDate, TimeZone};
use regex::Regex;

/// A detection read from the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalDetection {
    pub time: i64,
    /// `real-time` or `on-demand`.
    pub context: String,
    pub path: String,
    pub action: String,
    pub module_name: String,
    pub module_report: String,
}

fn bsd_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| {
        Regex::new(r"^([A-Z][a-z]{2}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) \S+ armadito-journal(?:\[\d+\])?: (.*)$")
            .expect("static regex")
    })
}

fn rfc3339_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| {
        Regex::new(
            r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})) \S+ armadito-journal(?:\[\d+\])?: (.*)$",
        )
        .expect("static regex")
    })
}

fn message_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| {
        Regex::new(
            r#"^type="detection", context="([^"]*)", scan_id=-?\d+, path="(.*)", scan_status="([^"]*)", scan_action="([^"]*)", module_name="([^"]*)", module_report="(.*?)"(?:, .*)?$"#,
        )
        .expect("static regex")
    })
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Local civil time → unix seconds by the host's zone rules (`TZ` or /etc/localtime). A time
/// repeated by a DST change is the earlier instant; a time the change skipped is `None`.
fn local_to_unix(y: i32, mon: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<i64> {
    let naive = NaiveDate::from_ymd_opt(y, mon, d)?.and_hms_opt(h, mi, s)?;
    Some(Local.from_local_datetime(&naive).earliest()?.timestamp())
}

/// The local calendar year at `now`.
fn current_year(now: i64) -> Option<i32> {
    Some(
        DateTime::from_timestamp(now, 0)?
            .with_timezone(&Local)
            .year(),
    )
}

/// The stamp and message of an `armadito-journal` line; `now` resolves the BSD format's
/// missing year (a date more than a day ahead belongs to the previous year).
pub fn split_line(line: &str, now: i64) -> Option<(i64, &str)> {
    if let Some(c) = rfc3339_re().captures(line) {
        let t = DateTime::parse_from_rfc3339(&c[1]).ok()?;
        return Some((t.timestamp(), c.get(2)?.as_str()));
    }
    let c = bsd_re().captures(line)?;
    let mon = MONTHS.iter().position(|m| *m == &c[1])? as u32 + 1;
    let p = |i: usize| c[i].parse::<u32>().ok();
    let year = current_year(now)?;
    let mut t = local_to_unix(year, mon, p(2)?, p(3)?, p(4)?, p(5)?)?;
    if t > now + 86400 {
        t = local_to_unix(year - 1, mon, p(2)?, p(3)?, p(4)?, p(5)?)?;
    }
    Some((t, c.get(6)?.as_str()))
}

/// A journal message (without the syslog prefix) stamped `time`.
pub fn parse_message(time: i64, msg: &str) -> Option<JournalDetection> {
    let c = message_re().captures(msg.trim_end())?;
    if !matches!(&c[3], "malware" | "suspicious") {
        return None;
    }
    Some(JournalDetection {
        time,
        context: c[1].to_string(),
        path: c[2].to_string(),
        action: c[4].to_string(),
        module_name: c[5].to_string(),
        module_report: c[6].to_string(),
    })
}

pub fn parse_line(line: &str, now: i64) -> Option<JournalDetection> {
    let (t, msg) = split_line(line, now)?;
    parse_message(t, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// reference-agent.md §7.1 (source comment of the old agent).
    const SAMPLE: &str = r#"Mar  9 14:48:45 uhuru-ThinkPad-L540 armadito-journal[30027]: type="detection", context="real-time", scan_id=0, path="/home/uhuru/malwares/contagio-malware/elf-linux/MALWARE_ELF_LINUX_100_files/ELF_FC805DBA06638E410EBFF1E18FAF23D9", scan_status="malware", scan_action="none", module_name="clamav", module_report="Unix.Malware.Agent-1577465""#;

    #[test]
    fn reference_sample() {
        // in UTC (the test harness may run anywhere: compare with the local conversion)
        let now = local_to_unix(2017, 3, 10, 0, 0, 0).unwrap();
        let d = parse_line(SAMPLE, now).unwrap();
        assert_eq!(d.time, local_to_unix(2017, 3, 9, 14, 48, 45).unwrap());
        assert_eq!(d.context, "real-time");
        assert!(d.path.ends_with("ELF_FC805DBA06638E410EBFF1E18FAF23D9"));
        assert_eq!(
            (d.action.as_str(), d.module_name.as_str()),
            ("none", "clamav")
        );
        assert_eq!(d.module_report, "Unix.Malware.Agent-1577465");
        // in January, a March stamp is last year's
        let jan = local_to_unix(2018, 1, 2, 0, 0, 0).unwrap();
        assert_eq!(parse_line(SAMPLE, jan).unwrap().time, d.time);
    }

    #[test]
    fn rfc3339_and_odd_paths() {
        let l = r#"2026-12-04T20:36:53.123456+01:00 host armadito-journal[1]: type="detection", context="on-demand", scan_id=42, path="/tmp/a", b", scan_status="x.pdf", scan_status="suspicious", scan_action="alert+quarantine", module_name="moduleH1", module_report="Heur.PDF", future_field="1""#;
        let d = parse_line(l, 0).unwrap();
        assert_eq!(d.time, 1796413013);
        assert_eq!(d.path, r#"/tmp/a", b", scan_status="x.pdf"#);
        assert_eq!(d.action, "alert+quarantine");
        assert_eq!(d.module_report, "Heur.PDF");
    }

    #[test]
    fn other_lines_are_ignored() {
        for l in [
            r#"Mar  9 14:48:45 h armadito-journal[1]: type="on_demand_completed", scan_id=1, cancelled=0, total_malware_count=1, total_suspicious_count=0, total_scanned_count=2, duration=3"#,
            r#"Mar  9 14:48:45 h other-program[1]: type="detection", context="real-time", scan_id=0, path="/x", scan_status="malware", scan_action="none", module_name="clamav", module_report="X""#,
            r#"Mar  9 14:48:45 h armadito-journal[1]: type="detection", context="on-demand", scan_id=0, path="/x", scan_status="clean", scan_action="none", module_name="clamav", module_report="""#,
            "",
            "garbage",
        ] {
            assert_eq!(parse_line(l, 1_500_000_000), None, "{l}");
        }
    }
}
