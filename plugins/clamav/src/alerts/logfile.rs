//! Detections in clamd's LogFile (docs/backends.md §B.9).
//!
//! Line shapes (verified with clamd 1.4):
//! * `Wed Nov 25 18:45:11 2026 -> /path: Sig.Name(44d8…:68) FOUND` (`LogTime yes`,
//!   `ExtendedDetectionInfo yes`; FILDES scans are logged with the real path too)
//! * `/path: Sig.Name FOUND` (no LogTime)
//!
//! Invariants:
//! * Only lines ending in ` FOUND` are detections; OK lines, warnings and start-up noise
//!   are ignored.
//! * The `(hash:size)` suffix of ExtendedDetectionInfo is removed from the signature, so the
//!   two lines ALLMATCHSCAN writes per hit (with and without it) compare equal.

use crate::timeutil;

/// One `FOUND` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDetection {
    /// Unix time from the `LogTime` prefix, when present.
    pub time: Option<i64>,
    pub path: String,
    pub signature: String,
}

/// Remove the ExtendedDetectionInfo suffix: `Name(md5:size)` → `Name`.
pub fn strip_detection_info(sig: &str) -> &str {
    if let Some(open) = sig.rfind('(')
        && sig.ends_with(')')
        && sig[open..].contains(':')
        && open > 0
    {
        return &sig[..open];
    }
    sig
}

pub fn parse_line(line: &str) -> Option<LogDetection> {
    let body = line.trim_end().strip_suffix(" FOUND")?;
    // Optional "ctime -> " prefix.
    let (time, rest) = match timeutil::parse_ctime_prefix(body) {
        Some((civil, used)) => match body[used..].strip_prefix(" -> ") {
            Some(rest) => (timeutil::local_to_unix(civil), rest),
            None => (None, body),
        },
        None => (None, body),
    };
    // The signature has no spaces or ": ": split on the last ": ".
    let (path, sig) = rest.rsplit_once(": ")?;
    let sig = strip_detection_info(sig.trim());
    if path.is_empty() || sig.is_empty() || sig.contains(' ') {
        return None;
    }
    Some(LogDetection {
        time,
        path: path.to_owned(),
        signature: sig.to_owned(),
    })
}

/// clamd writes a file name as is, newlines included, so a local user can name a file
/// `x\n<ctime> -> /home/ceo/report.docx` and, once it is detected, the log shows a line that
/// looks like a detection in someone else's file at a time of their choosing (verified with
/// clamd 1.4, see the `clamd` integration tests). The first physical line of such an entry,
/// `<ctime> -> /tmp/x`, ends without any of clamd's per-file verdicts; [`Joiner`] keeps it and
/// glues the lines that follow to it until a verdict ends the entry, so the detection is
/// reported with its real path and time.
const VERDICT_ENDINGS: [&str; 6] = [
    " FOUND",
    ": OK",
    " ERROR",
    ": Excluded",
    ": Empty file",
    ": Symbolic link",
];

/// Longest entry glued from several lines; beyond it the pending start is dropped.
const MAX_ENTRY: usize = 16 * 1024;

/// Reassembles log entries split by newlines in file names (see [`VERDICT_ENDINGS`]).
#[derive(Debug, Default)]
pub struct Joiner {
    /// The entry so far: its time and its text after `<ctime> -> `.
    pending: Option<(Option<i64>, String)>,
}

impl Joiner {
    /// Feed one physical line; returns the detection it completes, if any.
    pub fn feed(&mut self, line: &str) -> Option<LogDetection> {
        let line = line.trim_end_matches(['\r', '\n']);
        let ended = VERDICT_ENDINGS.iter().any(|e| line.trim_end().ends_with(e));
        if let Some((time, mut text)) = self.pending.take() {
            text.push('\n');
            text.push_str(line);
            if ended {
                let mut d = parse_line(&text)?;
                d.time = time;
                return Some(d);
            }
            if text.len() <= MAX_ENTRY {
                self.pending = Some((time, text));
            }
            return None;
        }
        if ended {
            return parse_line(line);
        }
        // A file entry that does not end on this line: `<ctime> -> /…` or `/…`.
        let (time, rest) = split_time(line);
        if rest.starts_with('/') {
            self.pending = Some((time, rest.to_owned()));
        }
        None
    }
}

/// `(time, rest)` of a line with an optional `<ctime> -> ` prefix.
fn split_time(line: &str) -> (Option<i64>, &str) {
    match timeutil::parse_ctime_prefix(line) {
        Some((civil, used)) => match line[used..].strip_prefix(" -> ") {
            Some(rest) => (timeutil::local_to_unix(civil), rest),
            None => (None, line),
        },
        None => (None, line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 12 item 14: what clamd 1.4 really logs for a detected file named
    /// `evil\n<ctime> -> /home/ceo/report.docx` under /tmp/t.
    #[test]
    fn a_newline_in_a_file_name_cannot_forge_a_detection() {
        let mut j = Joiner::default();
        let lines = [
            "Fri Dec  4 21:21:04 2026 -> Self checking disabled.",
            "Fri Dec  4 21:21:09 2026 -> /tmp/t/evil",
            "Fri Dec  4 21:00:00 2026 -> /home/ceo/report.docx: Test.EICAR(44d8:68) FOUND",
            "Fri Dec  4 21:21:10 2026 -> /srv/real.com: Eicar-Signature FOUND",
        ];
        let found: Vec<LogDetection> = lines.iter().filter_map(|l| j.feed(l)).collect();
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(
            found[0].path,
            "/tmp/t/evil\nFri Dec  4 21:00:00 2026 -> /home/ceo/report.docx"
        );
        assert_eq!(found[0].signature, "Test.EICAR");
        assert_eq!(found[0].time, split_time(lines[1]).0, "the real time");
        assert_eq!(found[1].path, "/srv/real.com");
        // a clean file with such a name ends with ": OK": nothing is reported
        let mut j = Joiner::default();
        assert!(j.feed("Fri Dec  4 21:21:09 2026 -> /tmp/t/x").is_none());
        assert!(
            j.feed("Fri Dec  4 21:00:00 2026 -> /home/ceo/a.doc: Fake FOUND: OK")
                .is_none()
        );
        assert!(j.feed("/srv/b.com: Eicar FOUND").is_some());
    }

    #[test]
    fn found_lines() {
        let d = parse_line(
            "Wed Nov 25 18:45:11 2026 -> /tmp/clamtest/files/eicar.com: \
             Test.EICAR-NDB.UNOFFICIAL(44d88612fea8a8f36de82e1278abb02f:68) FOUND",
        )
        .unwrap();
        assert_eq!(d.path, "/tmp/clamtest/files/eicar.com");
        assert_eq!(d.signature, "Test.EICAR-NDB.UNOFFICIAL");
        assert_eq!(
            d.time,
            timeutil::parse_ctime_local("Wed Nov 25 18:45:11 2026")
        );
        let d = parse_line("/a: b/x.com: Eicar-Signature FOUND").unwrap();
        assert_eq!(
            (d.path.as_str(), d.signature.as_str(), d.time),
            ("/a: b/x.com", "Eicar-Signature", None)
        );
    }

    #[test]
    fn other_lines_are_not_detections() {
        for line in [
            "Wed Nov 25 19:57:11 2026 -> /tmp/exp/files/clean.txt: OK",
            "Wed Nov 25 19:57:11 2026 -> WARNING: File path check failure on: /x",
            "Wed Nov 25 19:57:04 2026 -> Self checking disabled.",
            "",
            "FOUND",
        ] {
            assert_eq!(parse_line(line), None, "{line}");
        }
    }

    #[test]
    fn detection_info_suffix() {
        assert_eq!(strip_detection_info("Sig(abc:68)"), "Sig");
        assert_eq!(strip_detection_info("Sig"), "Sig");
        assert_eq!(strip_detection_info("Odd(name)"), "Odd(name)");
    }
}
