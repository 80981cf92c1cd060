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

#[cfg(test)]
mod tests {
    use super::*;

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
