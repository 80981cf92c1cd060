//! Parsers for clamd replies (docs/backends.md §B.2, B.5).
//!
//! Invariants:
//! * Pure functions over text: no I/O, no panics, unknown shapes become `Other`/`None`.
//! * A scan reply is `<subject>: <verdict>` where the subject may itself contain `": "`, and
//!   an error message does too (`File path check failure: Permission denied. ERROR`). When
//!   the caller knows the subject it sent (a path), it is stripped exactly; otherwise the
//!   split is chosen by verdict kind (see [`parse_scan_reply`]).

use crate::timeutil;

/// What clamd said about one scanned object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `OK`
    Clean,
    /// `<signature> FOUND`
    Found(String),
    /// `<message> ERROR` (message without the trailing `.`)
    Error(String),
    /// `Excluded` (path matched clamd's ExcludePath)
    Excluded,
    /// Anything else, verbatim.
    Other(String),
}

/// One scan reply line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanReply {
    /// The path, `stream`, or `fd[N]`; empty for subject-less errors
    /// (`INSTREAM size limit exceeded. ERROR`).
    pub subject: String,
    pub verdict: Verdict,
}

/// Parse a scan reply. `sent` is the subject the caller sent, when known (the path of a
/// `SCAN`): it is stripped byte-exactly, which is the only unambiguous split.
pub fn parse_scan_reply(text: &str, sent: Option<&str>) -> ScanReply {
    let text = text.trim_end_matches(['\n', '\r', '\0']);
    if let Some(sent) = sent
        && let Some(rest) = text.strip_prefix(sent).and_then(|r| r.strip_prefix(": "))
    {
        return ScanReply {
            subject: sent.to_owned(),
            verdict: parse_verdict(rest),
        };
    }
    // Unknown subject: a signature never contains ": " or spaces, so FOUND and OK split on the
    // last ": "; an error message may contain ": " but paths rarely do, so ERROR splits on the
    // first one.
    let split = if text.ends_with(" ERROR") {
        text.find(": ")
    } else {
        text.rfind(": ")
    };
    match split {
        Some(i) => ScanReply {
            subject: text[..i].to_owned(),
            verdict: parse_verdict(&text[i + 2..]),
        },
        None => ScanReply {
            subject: String::new(),
            verdict: parse_verdict(text),
        },
    }
}

/// Parse the verdict part (after `<subject>: `).
pub fn parse_verdict(v: &str) -> Verdict {
    let v = v.trim();
    if v == "OK" {
        Verdict::Clean
    } else if v == "Excluded" {
        Verdict::Excluded
    } else if let Some(sig) = v.strip_suffix(" FOUND") {
        Verdict::Found(sig.trim().to_owned())
    } else if let Some(msg) = v.strip_suffix("ERROR") {
        Verdict::Error(msg.trim().trim_end_matches('.').trim().to_owned())
    } else {
        Verdict::Other(v.to_owned())
    }
}

/// Split an IDSESSION reply `<id>: <rest>`.
pub fn split_session_id(text: &str) -> Option<(u64, &str)> {
    let (id, rest) = text.split_once(": ")?;
    let id = id.parse().ok()?;
    Some((id, rest))
}

/// The answer of `VERSION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    /// Engine version, e.g. `1.4.6`.
    pub engine: String,
    /// Version of the loaded `daily` database, when one is loaded.
    pub db_version: Option<u64>,
    /// Its build time as clamd printed it (ctime, local time).
    pub db_time_text: Option<String>,
    /// Its build time, unix seconds.
    pub db_time: Option<i64>,
}

/// `ClamAV 1.4.6` or `ClamAV 1.4.6/27000/Wed Nov 25 18:46:29 2026`. The date contains no
/// `/`, so at most two splits.
pub fn parse_version(text: &str) -> Option<VersionInfo> {
    let text = text.trim_matches(['\n', '\r', '\0', ' ']);
    let mut parts = text.splitn(3, '/');
    let engine = parts.next()?.strip_prefix("ClamAV ")?.trim().to_owned();
    if engine.is_empty() {
        return None;
    }
    let db_version = parts.next().and_then(|v| v.trim().parse().ok());
    let db_time_text = parts.next().map(|t| t.trim().to_owned());
    let db_time = db_time_text
        .as_deref()
        .and_then(timeutil::parse_ctime_local);
    Some(VersionInfo {
        engine,
        db_version,
        db_time_text,
        db_time,
    })
}

/// The useful part of `STATS` (the format is documented as unstable: every field optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub pools: Option<u32>,
    pub state: Option<String>,
    pub threads_live: Option<u32>,
    pub threads_idle: Option<u32>,
    pub threads_max: Option<u32>,
    pub queue_items: Option<u32>,
}

pub fn parse_stats(text: &str) -> Stats {
    let mut stats = Stats::default();
    for line in text.lines() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("POOLS:") {
            stats.pools = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("STATE:") {
            stats.state = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("THREADS:") {
            let words: Vec<&str> = v.split_whitespace().collect();
            for pair in words.windows(2) {
                let n = pair[1].parse().ok();
                match pair[0] {
                    "live" => stats.threads_live = n,
                    "idle" => stats.threads_idle = n,
                    "max" => stats.threads_max = n,
                    _ => {}
                }
            }
        } else if let Some(v) = line.strip_prefix("QUEUE:") {
            stats.queue_items = v.split_whitespace().next().and_then(|n| n.parse().ok());
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_replies_from_a_real_clamd() {
        let r = parse_scan_reply("/tmp/x/clean.txt: OK", None);
        assert_eq!(r.subject, "/tmp/x/clean.txt");
        assert_eq!(r.verdict, Verdict::Clean);
        let r = parse_scan_reply("/tmp/a: b/eicar.com: Test.EICAR-NDB.UNOFFICIAL FOUND", None);
        assert_eq!(r.subject, "/tmp/a: b/eicar.com");
        assert_eq!(
            r.verdict,
            Verdict::Found("Test.EICAR-NDB.UNOFFICIAL".into())
        );
        let r = parse_scan_reply(
            "/nonexistent: File path check failure: No such file or directory. ERROR",
            None,
        );
        assert_eq!(r.subject, "/nonexistent");
        assert_eq!(
            r.verdict,
            Verdict::Error("File path check failure: No such file or directory".into())
        );
        let r = parse_scan_reply("INSTREAM size limit exceeded. ERROR", None);
        assert_eq!(r.subject, "");
        assert_eq!(
            r.verdict,
            Verdict::Error("INSTREAM size limit exceeded".into())
        );
        let r = parse_scan_reply("fd[12]: Eicar-Signature FOUND", None);
        assert_eq!(r.subject, "fd[12]");
        let r = parse_scan_reply("/x/fifo: Not supported file type ERROR", None);
        assert_eq!(r.verdict, Verdict::Error("Not supported file type".into()));
        let r = parse_scan_reply("/x/y: Excluded", None);
        assert_eq!(r.verdict, Verdict::Excluded);
        let r = parse_scan_reply("UNKNOWN COMMAND", None);
        assert_eq!(r.verdict, Verdict::Other("UNKNOWN COMMAND".into()));
    }

    #[test]
    fn known_subject_is_stripped_exactly() {
        let path = "/tmp/odd: name: here";
        let r = parse_scan_reply(
            "/tmp/odd: name: here: File path check failure: Permission denied. ERROR",
            Some(path),
        );
        assert_eq!(r.subject, path);
        assert_eq!(
            r.verdict,
            Verdict::Error("File path check failure: Permission denied".into())
        );
        // A reply for another subject falls back to the generic split.
        let r = parse_scan_reply("fd[9]: OK", Some(path));
        assert_eq!(r.subject, "fd[9]");
        assert_eq!(r.verdict, Verdict::Clean);
    }

    #[test]
    fn session_ids() {
        assert_eq!(split_session_id("12: /a: OK"), Some((12, "/a: OK")));
        assert_eq!(split_session_id("PONG"), None);
        assert_eq!(split_session_id("x: y"), None);
    }

    #[test]
    fn version_with_and_without_daily() {
        let v = parse_version("ClamAV 1.4.6").unwrap();
        assert_eq!(v.engine, "1.4.6");
        assert_eq!(v.db_version, None);
        assert_eq!(v.db_time, None);
        let v = parse_version("ClamAV 1.4.6/27000/Thu Nov  5 18:46:29 2026\0").unwrap();
        assert_eq!(v.db_version, Some(27000));
        assert_eq!(v.db_time_text.as_deref(), Some("Thu Nov  5 18:46:29 2026"));
        assert!(v.db_time.is_some());
        assert!(parse_version("PONG").is_none());
        assert!(parse_version("ClamAV ").is_none());
    }

    #[test]
    fn stats_reply() {
        let s = parse_stats(
            "POOLS: 1\n\nSTATE: VALID PRIMARY\nTHREADS: live 2  idle 1 max 4 idle-timeout 30\n\
             QUEUE: 3 items\n\tSTATS 0.000005 \n\nMEMSTATS: heap N/A\nEND",
        );
        assert_eq!(s.pools, Some(1));
        assert_eq!(s.state.as_deref(), Some("VALID PRIMARY"));
        assert_eq!(
            (s.threads_live, s.threads_idle, s.threads_max),
            (Some(2), Some(1), Some(4))
        );
        assert_eq!(s.queue_items, Some(3));
        assert_eq!(parse_stats("garbage"), Stats::default());
    }
}
