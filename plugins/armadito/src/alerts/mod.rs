//! Alerts: the detection history from the `armadito-journal` syslog lines (a syslog file, or
//! journald when no file exists), plus live detections from the daemon's `listen` stream.
//!
//! Invariants:
//! * Cursor-based, never a time window: the cursor holds the file identity (device, inode)
//!   and the offset after the last consumed line (or journald's `__CURSOR`), so each line is
//!   returned once across calls and restarts, and an outage of any length loses nothing.
//! * Rotation: when the file's inode changed, the rest of the old file is read from its
//!   rotated name (`<file>.1`) first, then the new file from the start.
//! * Only complete lines are consumed; a page holds at most `limit` detections and the
//!   cursor moves only past what was returned (or skipped), so `more` loses nothing.
//! * A live detection is returned at once and its key kept in the cursor, so the same
//!   detection read later from the journal is not sent twice.
//! * A cursor that does not parse is an error (a silent restart would resend everything).

pub mod line;

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use armadito_plugin_api::{AlertsPage, Detection};
use serde::{Deserialize, Serialize};

use crate::transport::exec;
use crate::wire::event::action;
use line::{JournalDetection, parse_line, parse_message};

/// Seconds within which the same file+threat is one detection (live copy vs journal line).
pub const DEDUP_WINDOW: i64 = 10;
const RECENT_MAX: usize = 256;
/// Live detections kept in memory until `alerts()` collects them.
pub const LIVE_MAX: usize = 10_000;
const MAX_LINE: usize = 64 * 1024;
/// Bytes read at once while looking for the end of a line.
const READ_LIMIT: u64 = MAX_LINE as u64 * 4;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePos {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    pub offset: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Cursor {
    pub file: Option<FilePos>,
    pub journald: Option<String>,
    /// (fnv64(path, threat), time) of recently returned detections.
    pub recent: Vec<(u64, i64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error("invalid alerts cursor: {0}")]
    BadCursor(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("journalctl: {0}")]
    Journald(String),
}

/// Live detections shared with the `listen` thread.
pub type LiveQueue = Arc<Mutex<VecDeque<Detection>>>;

pub struct Sources<'a> {
    pub syslog_files: &'a [PathBuf],
    pub journalctl: &'a Path,
    pub live: Option<&'a LiveQueue>,
    pub timeout: Duration,
}

fn key(path: &str, threat: &str) -> u64 {
    crate::fnv64(&[path.as_bytes(), threat.as_bytes()])
}

pub fn to_detection(j: &JournalDetection) -> Detection {
    Detection {
        id: format!(
            "{:016x}",
            crate::fnv64(&[
                j.path.as_bytes(),
                j.module_report.as_bytes(),
                &j.time.to_le_bytes()
            ])
        ),
        threat_name: j.module_report.clone(),
        file_path: j.path.clone(),
        action: action(&j.action),
        detection_time: j.time,
        module_name: Some(j.module_name.clone()).filter(|m| !m.is_empty()),
        info: Some(j.context.clone()).filter(|c| !c.is_empty()),
    }
}

struct Page {
    cursor: Cursor,
    /// Without a cursor: skip detections before this unix time (`AlertsQuery::since`).
    since: Option<i64>,
    found: Vec<Detection>,
    limit: usize,
    more: bool,
}

impl Page {
    fn seen(&self, d: &Detection) -> bool {
        let k = key(&d.file_path, &d.threat_name);
        self.cursor
            .recent
            .iter()
            .any(|(rk, t)| *rk == k && (t - d.detection_time).abs() <= DEDUP_WINDOW)
    }

    /// Takes `d` unless it is a duplicate; `false` = the page is full (not taken).
    fn offer(&mut self, d: Detection) -> bool {
        if self.seen(&d) || self.since.is_some_and(|t| d.detection_time < t) {
            return true;
        }
        if self.found.len() >= self.limit {
            self.more = true;
            return false;
        }
        self.cursor
            .recent
            .push((key(&d.file_path, &d.threat_name), d.detection_time));
        self.found.push(d);
        true
    }
}

/// Reads complete lines of `path` from `offset`; `on_line` returns `false` to stop before
/// consuming that line. Returns the offset after the last consumed line.
fn read_from(
    path: &Path,
    file: File,
    offset: u64,
    on_line: &mut dyn FnMut(&str) -> bool,
) -> Result<u64, AlertsError> {
    let err = |source| AlertsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut r = BufReader::new(file);
    r.seek(SeekFrom::Start(offset)).map_err(err)?;
    let mut pos = offset;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = (&mut r)
            .take(READ_LIMIT)
            .read_until(b'\n', &mut buf)
            .map_err(err)?;
        if n == 0 {
            return Ok(pos);
        }
        if buf.last() != Some(&b'\n') {
            if (n as u64) < READ_LIMIT {
                return Ok(pos); // a line still being written
            }
            // an over-long line: skip it whole (a cursor must never stick on it)
            let mut skipped = n as u64;
            loop {
                let mut rest = Vec::new();
                let k = (&mut r)
                    .take(READ_LIMIT)
                    .read_until(b'\n', &mut rest)
                    .map_err(err)?;
                if k == 0 {
                    return Ok(pos);
                }
                skipped += k as u64;
                if rest.last() == Some(&b'\n') {
                    break;
                }
            }
            pos += skipped;
            continue;
        }
        let text = String::from_utf8_lossy(&buf[..buf.len().min(MAX_LINE)]);
        if !on_line(text.trim_end_matches(['\n', '\r'])) {
            return Ok(pos);
        }
        pos += n as u64;
    }
}

fn now() -> i64 {
    crate::transport::now_f64() as i64
}

fn read_syslog(page: &mut Page, path: &Path) -> Result<(), AlertsError> {
    let err = |source| AlertsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(err)?;
    let meta = file.metadata().map_err(err)?;
    let now = now();
    let saved = page.cursor.file.clone().filter(|p| p.path == path);
    let mut start = 0;
    if let Some(pos) = &saved {
        if pos.dev == meta.dev() && pos.ino == meta.ino() && meta.len() >= pos.offset {
            start = pos.offset;
        } else {
            // rotated: finish the old file under its new name first
            let rotated = PathBuf::from(format!("{}.1", path.display()));
            if let Ok(old) = File::open(&rotated)
                && let Ok(m) = old.metadata()
                && m.dev() == pos.dev
                && m.ino() == pos.ino
            {
                let mut full = false;
                let end = read_from(
                    &rotated,
                    old,
                    pos.offset,
                    &mut |l| match parse_line(l, now) {
                        Some(j) => {
                            full = !page.offer(to_detection(&j));
                            !full
                        }
                        None => true,
                    },
                )?;
                if full {
                    page.cursor.file = Some(FilePos {
                        path: path.to_path_buf(),
                        dev: pos.dev,
                        ino: pos.ino,
                        offset: end,
                    });
                    return Ok(());
                }
            }
        }
    }
    let end = read_from(path, file, start, &mut |l| match parse_line(l, now) {
        Some(j) => page.offer(to_detection(&j)),
        None => true,
    })?;
    page.cursor.file = Some(FilePos {
        path: path.to_path_buf(),
        dev: meta.dev(),
        ino: meta.ino(),
        offset: end,
    });
    Ok(())
}

fn read_journald(page: &mut Page, journalctl: &Path, timeout: Duration) -> Result<(), AlertsError> {
    let mut argv = vec![
        journalctl.display().to_string(),
        "--no-pager".into(),
        "--output=json".into(),
        "--identifier=armadito-journal".into(),
    ];
    if let Some(c) = &page.cursor.journald {
        argv.push(format!("--after-cursor={c}"));
    }
    let out = exec::run(&argv, timeout).map_err(|e| AlertsError::Journald(e.to_string()))?;
    if !out.status.success() {
        return Err(AlertsError::Journald(out.summary()));
    }
    for l in out.stdout.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(l) else {
            continue;
        };
        let time = v["__REALTIME_TIMESTAMP"]
            .as_str()
            .and_then(|t| t.parse::<i64>().ok())
            .map_or(0, |us| us / 1_000_000);
        if let Some(msg) = v["MESSAGE"].as_str()
            && let Some(j) = parse_message(time, msg)
            && !page.offer(to_detection(&j))
        {
            break;
        }
        if let Some(c) = v["__CURSOR"].as_str() {
            page.cursor.journald = Some(c.to_string());
        }
    }
    Ok(())
}

/// One page of detections after `cursor` (see the module invariants).
pub fn fetch(
    sources: &Sources<'_>,
    cursor: Option<&str>,
    since: Option<i64>,
    limit: usize,
) -> Result<AlertsPage, AlertsError> {
    let (cursor, since) = match cursor {
        Some(c) if !c.is_empty() => (
            serde_json::from_str(c).map_err(|e| AlertsError::BadCursor(e.to_string()))?,
            None,
        ),
        _ => (Cursor::default(), since),
    };
    let mut page = Page {
        cursor,
        since,
        found: Vec::new(),
        limit: limit.max(1),
        more: false,
    };
    match sources.syslog_files.iter().find(|p| p.exists()) {
        Some(p) => read_syslog(&mut page, p)?,
        None if sources.journalctl.exists() => {
            read_journald(&mut page, sources.journalctl, sources.timeout)?
        }
        None => {}
    }
    if let Some(live) = sources.live {
        let mut q = live.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(d) = q.pop_front() {
            if !page.offer(d.clone()) {
                q.push_front(d);
                break;
            }
        }
    }
    let keep = page.cursor.recent.len().saturating_sub(RECENT_MAX);
    page.cursor.recent.drain(..keep);
    Ok(AlertsPage {
        detections: page.found,
        next_cursor: Some(serde_json::to_string(&page.cursor).unwrap_or_default()),
        more: page.more,
    })
}

/// Adds a live detection (drops the oldest beyond [`LIVE_MAX`]).
pub fn push_live(q: &LiveQueue, d: Detection) {
    let mut q = q.lock().unwrap_or_else(|p| p.into_inner());
    if q.len() >= LIVE_MAX {
        q.pop_front();
    }
    q.push_back(d);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn det_line(n: u32, ctx: &str) -> String {
        format!(
            "2026-12-04T10:00:{:02}+00:00 host armadito-journal[7]: type=\"detection\", context=\"{ctx}\", scan_id=0, path=\"/home/u/f{n}\", scan_status=\"malware\", scan_action=\"none\", module_name=\"clamav\", module_report=\"Eicar-{n}\"\n",
            n % 60
        )
    }

    fn sources(files: &[PathBuf]) -> Sources<'_> {
        Sources {
            syslog_files: files,
            journalctl: Path::new("/nonexistent/journalctl"),
            live: None,
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn cursor_pages_rotation_and_partial_lines() {
        let t = tempfile::tempdir().unwrap();
        let log = t.path().join("syslog");
        let files = vec![t.path().join("missing"), log.clone()];
        let mut f = File::create(&log).unwrap();
        write!(
            f,
            "Dec  4 10:00:00 host cron[1]: noise\n{}{}{}",
            det_line(1, "real-time"),
            det_line(2, "on-demand"),
            det_line(3, "real-time")
        )
        .unwrap();
        let p = fetch(&sources(&files), None, None, 2).unwrap();
        assert_eq!(p.detections.len(), 2);
        assert!(p.more);
        assert_eq!(p.detections[0].threat_name, "Eicar-1");
        assert_eq!(p.detections[0].info.as_deref(), Some("real-time"));
        assert_eq!(p.detections[0].detection_time, 1796378401);
        let p = fetch(&sources(&files), p.next_cursor.as_deref(), None, 2).unwrap();
        assert_eq!(p.detections.len(), 1);
        assert!(!p.more);
        // a half-written line waits; then rotation: rest of the old file, then the new one
        write!(f, "{}", &det_line(4, "real-time")[..30]).unwrap();
        let p = fetch(&sources(&files), p.next_cursor.as_deref(), None, 10).unwrap();
        assert!(p.detections.is_empty());
        write!(f, "{}", &det_line(4, "real-time")[30..]).unwrap();
        drop(f);
        std::fs::rename(&log, t.path().join("syslog.1")).unwrap();
        std::fs::write(&log, det_line(5, "real-time")).unwrap();
        let c = p.next_cursor;
        let p = fetch(&sources(&files), c.as_deref(), None, 10).unwrap();
        let names: Vec<_> = p
            .detections
            .iter()
            .map(|d| d.threat_name.as_str())
            .collect();
        assert_eq!(names, ["Eicar-4", "Eicar-5"]);
        let p = fetch(&sources(&files), p.next_cursor.as_deref(), None, 10).unwrap();
        assert!(p.detections.is_empty(), "nothing twice");
        assert!(matches!(
            fetch(&sources(&files), Some("{bad"), None, 1),
            Err(AlertsError::BadCursor(_))
        ));
        // without a cursor, `since` skips older lines (the live file holds Eicar-5, 10:00:05)
        let p = fetch(&sources(&files), None, Some(1796378405), 10).unwrap();
        assert_eq!(p.detections.len(), 1);
        let p = fetch(&sources(&files), None, Some(1796378406), 10).unwrap();
        assert!(p.detections.is_empty());
    }

    #[test]
    fn an_over_long_line_is_skipped_not_stuck_on() {
        let t = tempfile::tempdir().unwrap();
        let log = t.path().join("syslog");
        let long = format!(
            "Dec  4 10:00:00 host x[1]: {}\n",
            "y".repeat(READ_LIMIT as usize * 2 + 7)
        );
        std::fs::write(&log, format!("{long}{}", det_line(1, "real-time"))).unwrap();
        let files = vec![log];
        let p = fetch(&sources(&files), None, None, 10).unwrap();
        assert_eq!(p.detections.len(), 1);
    }

    #[test]
    fn live_detections_are_not_sent_again_from_the_journal() {
        let t = tempfile::tempdir().unwrap();
        let log = t.path().join("syslog");
        std::fs::write(&log, "").unwrap();
        let files = vec![log.clone()];
        let live: LiveQueue = Arc::default();
        let j = parse_line(det_line(9, "real-time").trim_end(), 0).unwrap();
        push_live(
            &live,
            to_detection(&JournalDetection {
                time: j.time - 1,
                ..j.clone()
            }),
        );
        let src = Sources {
            live: Some(&live),
            ..sources(&files)
        };
        let p = fetch(&src, None, None, 10).unwrap();
        assert_eq!(p.detections.len(), 1);
        std::fs::write(&log, det_line(9, "real-time")).unwrap();
        let p = fetch(&src, p.next_cursor.as_deref(), None, 10).unwrap();
        assert!(p.detections.is_empty(), "{:?}", p.detections);
    }

    #[test]
    fn journald_through_journalctl_by_argv_with_its_cursor() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let argv = t.path().join("argv");
        let fake = t.path().join("journalctl");
        let rec = r#"{"__CURSOR":"s=abc;i=1","__REALTIME_TIMESTAMP":"1796378401000000","SYSLOG_IDENTIFIER":"armadito-journal","MESSAGE":"type=\"detection\", context=\"real-time\", scan_id=0, path=\"/x\", scan_status=\"malware\", scan_action=\"alert+removed\", module_name=\"clamav\", module_report=\"Eicar\""}"#;
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\necho \"$@\" >> {}\n/bin/cat <<'EOF'\n{rec}\nEOF\n",
                argv.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let src = Sources {
            syslog_files: &[],
            journalctl: &fake,
            live: None,
            timeout: Duration::from_secs(5),
        };
        let p = fetch(&src, None, None, 10).unwrap();
        assert_eq!(p.detections.len(), 1);
        assert_eq!(p.detections[0].detection_time, 1796378401);
        assert_eq!(
            p.detections[0].action,
            armadito_plugin_api::DetectionAction::Removed
        );
        fetch(&src, p.next_cursor.as_deref(), None, 10).unwrap();
        let calls = std::fs::read_to_string(&argv).unwrap();
        let lines: Vec<_> = calls.lines().collect();
        assert_eq!(
            lines[0],
            "--no-pager --output=json --identifier=armadito-journal"
        );
        assert_eq!(
            lines[1],
            "--no-pager --output=json --identifier=armadito-journal --after-cursor=s=abc;i=1"
        );
    }
}
