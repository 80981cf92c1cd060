//! Alerts: clamd detections from its LogFile and from the VirusEvent spool, paged with an
//! opaque cursor.
//!
//! Invariants:
//! * Cursor-based: the cursor holds a position per source ([`tail::FilePos`]), so each line
//!   is returned once, across calls, restarts of the agent and log rotations.
//! * A page never returns more than `limit` detections, oldest first; the cursor advances
//!   only past what was returned (or skipped as non-detection/duplicate), so `more = true`
//!   pages lose nothing.
//! * De-duplication: the same (file, signature) seen within [`DEDUP_WINDOW`] seconds is
//!   one detection. That folds ALLMATCHSCAN's double log lines and the log+VirusEvent
//!   copies of one event. Recent keys travel in the cursor so a page boundary does not
//!   break it.
//! * The cursor is JSON; a cursor that does not parse is an error, never a silent restart
//!   (which would re-send the whole history).

pub mod logfile;
pub mod spool;
pub mod tail;

use std::path::{Path, PathBuf};

use armadito_plugin_api::model::{AlertsPage, AlertsQuery, Detection, DetectionAction};
use serde::{Deserialize, Serialize};

use crate::timeutil;
use tail::FilePos;

/// Seconds within which the same file+signature counts as one detection.
pub const DEDUP_WINDOW: i64 = 2;
/// Recent keys kept in the cursor.
const RECENT_MAX: usize = 256;
/// Upper bound for a page, whatever the query asks.
pub const MAX_LIMIT: u32 = 10_000;
/// A spool record may span at most this many lines (newlines in file names).
const MAX_RECORD_LINES: usize = 16;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Recent {
    /// fnv64(path, signature)
    k: u64,
    t: i64,
}

/// The opaque cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Cursor {
    log: Option<FilePos>,
    spool: Option<FilePos>,
    recent: Vec<Recent>,
}

impl Cursor {
    pub fn parse(text: &str) -> Result<Cursor, AlertsError> {
        serde_json::from_str(text).map_err(|e| AlertsError::BadCursor(e.to_string()))
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
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
}

/// Which sources to read.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub log_file: Option<PathBuf>,
    pub spool: Option<PathBuf>,
    /// Rotate the spool to `<spool>.1` once fully read and above this size.
    pub spool_max_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Log,
    Spool,
}

struct Candidate {
    origin: Origin,
    time: i64,
    path: String,
    signature: String,
    /// Source position once this detection is consumed.
    after: FilePos,
}

/// Result of reading one source up to the limit.
struct SourceRead {
    found: Vec<Candidate>,
    /// The saved file was rotated away and could not be found (compressed or deleted).
    gap: bool,
    /// Position after everything read (including trailing non-detection lines).
    end: Option<FilePos>,
    /// Stopped because `limit` detections were found.
    truncated: bool,
}

fn read_log(path: &Path, pos: Option<&FilePos>, limit: usize) -> Result<SourceRead, AlertsError> {
    let mut found = Vec::new();
    let mut truncated = false;
    let mut joiner = logfile::Joiner::default();
    let report = tail::read_lines(path, pos, &mut |line, after| {
        let Some(d) = joiner.feed(&String::from_utf8_lossy(line)) else {
            return true;
        };
        if found.len() >= limit {
            truncated = true;
            return false;
        }
        found.push(Candidate {
            origin: Origin::Log,
            time: d.time.unwrap_or_else(timeutil::now),
            path: d.path,
            signature: d.signature,
            after,
        });
        true
    })
    .map_err(|source| AlertsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(SourceRead {
        found,
        gap: report.gap,
        end: report.pos,
        truncated,
    })
}

fn read_spool(path: &Path, pos: Option<&FilePos>, limit: usize) -> Result<SourceRead, AlertsError> {
    let mut found = Vec::new();
    let mut truncated = false;
    let mut pending: Vec<u8> = Vec::new();
    let mut pending_lines = 0;
    // Position before the record being accumulated (a record split by newlines in a file
    // name must be re-read whole next time if the file ends in its middle).
    let mut before = pos.copied();
    let mut record_start = before;
    let report = tail::read_lines(path, pos, &mut |line, after| {
        if pending.is_empty() {
            record_start = before;
        } else {
            pending.push(b'\n');
        }
        pending.extend_from_slice(line);
        pending_lines += 1;
        match spool::parse_record(&pending) {
            spool::Parsed::Incomplete if pending_lines < MAX_RECORD_LINES => {
                before = Some(after);
                return true;
            }
            spool::Parsed::Record(r) => {
                if found.len() >= limit {
                    truncated = true;
                    return false;
                }
                found.push(Candidate {
                    origin: Origin::Spool,
                    time: r.time,
                    path: r.file,
                    signature: logfile::strip_detection_info(&r.virus).to_owned(),
                    after,
                });
            }
            spool::Parsed::Incomplete | spool::Parsed::Invalid => {}
        }
        pending.clear();
        pending_lines = 0;
        before = Some(after);
        true
    })
    .map_err(|source| AlertsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let end = if pending.is_empty() || truncated {
        report.pos
    } else {
        record_start
    };
    Ok(SourceRead {
        found,
        gap: report.gap,
        end,
        truncated,
    })
}

fn detection_id(origin: Origin, time: i64, path: &str, signature: &str) -> String {
    let tag = match origin {
        Origin::Log => "log",
        Origin::Spool => "event",
    };
    format!(
        "clamav-{tag}-{:016x}",
        crate::fnv64(&[
            tag.as_bytes(),
            &time.to_le_bytes(),
            path.as_bytes(),
            signature.as_bytes()
        ])
    )
}

/// A page, plus what the caller should warn about.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    pub page: AlertsPage,
    /// Sources whose saved file had been rotated away unread (e.g. already compressed):
    /// detections logged there in between were not seen.
    pub gaps: Vec<PathBuf>,
}

/// Read the next page of detections.
pub fn fetch(
    sources: &Sources,
    query: &AlertsQuery,
    default_limit: u32,
) -> Result<AlertsPage, AlertsError> {
    fetch_with_gaps(sources, query, default_limit).map(|f| f.page)
}

/// [`fetch`], also reporting rotation gaps.
pub fn fetch_with_gaps(
    sources: &Sources,
    query: &AlertsQuery,
    default_limit: u32,
) -> Result<Fetched, AlertsError> {
    let mut cursor = match &query.cursor {
        Some(text) => Cursor::parse(text)?,
        None => Cursor::default(),
    };
    let since = if query.cursor.is_none() {
        query.since
    } else {
        None
    };
    let limit = query.limit.unwrap_or(default_limit).clamp(1, MAX_LIMIT) as usize;

    let log = match &sources.log_file {
        Some(p) => Some(read_log(p, cursor.log.as_ref(), limit)?),
        None => None,
    };
    let spool_read = match &sources.spool {
        Some(p) => Some(read_spool(p, cursor.spool.as_ref(), limit)?),
        None => None,
    };

    // Merge oldest first (stable: log before spool on ties, so the log copy wins).
    let mut gaps = Vec::new();
    if let (Some(r), Some(p)) = (&log, &sources.log_file)
        && r.gap
    {
        gaps.push(p.clone());
    }
    if let (Some(r), Some(p)) = (&spool_read, &sources.spool)
        && r.gap
    {
        gaps.push(p.clone());
    }
    let mut all: Vec<Candidate> = Vec::new();
    let mut more = false;
    for read in [&log, &spool_read].into_iter().flatten() {
        more |= read.truncated;
    }
    let (log_found, log_end) = log.map_or((Vec::new(), None), |r| (r.found, r.end));
    let (spool_found, spool_end) = spool_read.map_or((Vec::new(), None), |r| (r.found, r.end));
    let (log_total, spool_total) = (log_found.len(), spool_found.len());
    all.extend(log_found);
    all.extend(spool_found);
    all.sort_by_key(|c| c.time);

    let mut detections = Vec::new();
    let mut taken = [0usize; 2];
    let mut last_after: [Option<FilePos>; 2] = [None, None];
    for c in all {
        if detections.len() >= limit {
            more = true;
            break;
        }
        let slot = c.origin as usize;
        taken[slot] += 1;
        last_after[slot] = Some(c.after);
        let key = crate::fnv64(&[c.path.as_bytes(), c.signature.as_bytes()]);
        let duplicate = cursor
            .recent
            .iter()
            .any(|r| r.k == key && (r.t - c.time).abs() <= DEDUP_WINDOW);
        cursor.recent.push(Recent { k: key, t: c.time });
        if duplicate || since.is_some_and(|s| c.time < s) {
            continue;
        }
        detections.push(Detection {
            id: detection_id(c.origin, c.time, &c.path, &c.signature),
            threat_name: c.signature,
            file_path: c.path,
            action: DetectionAction::None,
            detection_time: c.time,
            module_name: Some("clamd".into()),
            info: Some(
                match c.origin {
                    Origin::Log => "clamd log",
                    Origin::Spool => "clamd VirusEvent",
                }
                .into(),
            ),
        });
    }
    // Advance each source: to its end if all its detections went out, else past the last
    // one that did.
    let advance = |slot: usize, total: usize, end: Option<FilePos>, old: Option<FilePos>| {
        if taken[slot] == total {
            end.or(old)
        } else {
            last_after[slot].or(old)
        }
    };
    cursor.log = advance(Origin::Log as usize, log_total, log_end, cursor.log);
    cursor.spool = advance(Origin::Spool as usize, spool_total, spool_end, cursor.spool);
    more |= taken[0] < log_total || taken[1] < spool_total;

    // Keep recent keys bounded: only what can still match.
    if let Some(newest) = cursor.recent.iter().map(|r| r.t).max() {
        cursor.recent.retain(|r| r.t >= newest - 10 * DEDUP_WINDOW);
    }
    let excess = cursor.recent.len().saturating_sub(RECENT_MAX);
    cursor.recent.drain(..excess);

    if let (Some(spool), false) = (&sources.spool, more) {
        rotate_spool_if_big(spool, cursor.spool.as_ref(), sources.spool_max_bytes);
    }
    Ok(Fetched {
        page: AlertsPage {
            detections,
            next_cursor: Some(cursor.encode()),
            more,
        },
        gaps,
    })
}

/// Rename a fully consumed, oversized spool to `<spool>.1`; the hook creates a new one.
/// The cursor still names the old inode, so lines appended in between are read from
/// `<spool>.1` next time.
fn rotate_spool_if_big(spool: &PathBuf, pos: Option<&FilePos>, max: u64) {
    use std::os::unix::fs::MetadataExt;
    let (Some(pos), Ok(meta)) = (pos, std::fs::symlink_metadata(spool)) else {
        return;
    };
    if max == 0
        || !meta.is_file()
        || (meta.dev(), meta.ino()) != (pos.dev, pos.ino)
        || meta.len() != pos.offset
        || meta.len() <= max
    {
        return;
    }
    let mut rotated = spool.clone().into_os_string();
    rotated.push(".1");
    let _ = std::fs::rename(spool, rotated);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::Write;

    fn append(path: &std::path::Path, text: &str) {
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }

    fn page(sources: &Sources, cursor: Option<String>, limit: Option<u32>) -> AlertsPage {
        fetch(
            sources,
            &AlertsQuery {
                cursor,
                limit,
                since: None,
            },
            100,
        )
        .unwrap()
    }

    const T1: &str = "Wed Nov 25 18:45:11 2026";
    const T2: &str = "Wed Nov 25 18:46:11 2026";

    #[test]
    fn log_and_spool_merge_dedup_and_page() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("clamd.log");
        let spool = dir.path().join("events");
        let t1 = timeutil::parse_ctime_local(T1).unwrap();
        append(
            &log,
            &format!(
                "{T1} -> /a/x.com: Sig.A(44d8:68) FOUND\n{T1} -> /a/x.com: Sig.A FOUND\n\
                 {T1} -> /a/ok: OK\n{T2} -> /b/y.com: Sig.B FOUND\n"
            ),
        );
        // The VirusEvent copy of the first detection, one second later.
        append(&spool, &format!("A1 {} 5:Sig.A 8:/a/x.com\n", t1 + 1));
        let sources = Sources {
            log_file: Some(log.clone()),
            spool: Some(spool.clone()),
            spool_max_bytes: 0,
        };
        let p = page(&sources, None, Some(1));
        assert_eq!(p.detections.len(), 1);
        assert_eq!(p.detections[0].file_path, "/a/x.com");
        assert_eq!(p.detections[0].threat_name, "Sig.A");
        assert_eq!(p.detections[0].detection_time, t1);
        assert!(p.more);
        let p2 = page(&sources, p.next_cursor, Some(10));
        let paths: Vec<_> = p2.detections.iter().map(|d| d.file_path.as_str()).collect();
        assert_eq!(
            paths,
            ["/b/y.com"],
            "duplicates folded across the page boundary"
        );
        assert!(!p2.more);
        let p3 = page(&sources, p2.next_cursor.clone(), None);
        assert!(p3.detections.is_empty());
        // New events after the cursor.
        append(&spool, &format!("A1 {} 5:Sig.C 8:/c/z.com\n", t1 + 500));
        let p4 = page(&sources, p3.next_cursor, None);
        assert_eq!(p4.detections.len(), 1);
        assert_eq!(p4.detections[0].info.as_deref(), Some("clamd VirusEvent"));
    }

    #[test]
    fn since_filters_only_without_cursor_and_bad_cursor_fails() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("clamd.log");
        append(
            &log,
            &format!("{T1} -> /old: S FOUND\n{T2} -> /new: S FOUND\n"),
        );
        let sources = Sources {
            log_file: Some(log),
            ..Default::default()
        };
        let since = timeutil::parse_ctime_local(T2).unwrap();
        let p = fetch(
            &sources,
            &AlertsQuery {
                since: Some(since),
                ..Default::default()
            },
            100,
        )
        .unwrap();
        let paths: Vec<_> = p.detections.iter().map(|d| d.file_path.as_str()).collect();
        assert_eq!(paths, ["/new"]);
        let err = fetch(
            &sources,
            &AlertsQuery {
                cursor: Some("not json".into()),
                ..Default::default()
            },
            100,
        )
        .unwrap_err();
        assert!(matches!(err, AlertsError::BadCursor(_)));
    }

    #[test]
    fn split_spool_record_is_read_whole_later() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("events");
        let sources = Sources {
            spool: Some(spool.clone()),
            ..Default::default()
        };
        append(&spool, "A1 5 3:Sig 12:/tmp/a\n");
        let p = page(&sources, None, None);
        assert!(p.detections.is_empty());
        append(&spool, "b.txt\n");
        let p = page(&sources, p.next_cursor, None);
        assert_eq!(p.detections.len(), 1);
        assert_eq!(p.detections[0].file_path, "/tmp/a\nb.txt");
    }

    #[test]
    fn compressed_rotation_is_reported_as_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("clamd.log");
        append(&log, &format!("{T1} -> /a: S FOUND\n"));
        let sources = Sources {
            log_file: Some(log.clone()),
            ..Default::default()
        };
        let first = fetch_with_gaps(&sources, &AlertsQuery::default(), 100).unwrap();
        assert!(first.gaps.is_empty());
        fs::rename(&log, dir.path().join("clamd.log.1.gz")).unwrap();
        append(&log, &format!("{T2} -> /b: S FOUND\n"));
        let next = fetch_with_gaps(
            &sources,
            &AlertsQuery {
                cursor: first.page.next_cursor,
                ..Default::default()
            },
            100,
        )
        .unwrap();
        assert_eq!(next.gaps, [log]);
        assert_eq!(next.page.detections[0].file_path, "/b");
    }

    #[test]
    fn big_spool_is_rotated_and_nothing_lost() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("events");
        let sources = Sources {
            spool: Some(spool.clone()),
            spool_max_bytes: 10,
            ..Default::default()
        };
        append(&spool, "A1 100 3:Sig 2:/a\n");
        let p = page(&sources, None, None);
        assert_eq!(p.detections.len(), 1);
        assert!(!spool.exists(), "rotated away");
        // The hook appends to the rotated file (race) and creates a new spool.
        append(&dir.path().join("events.1"), "A1 200 3:Sig 2:/b\n");
        append(&spool, "A1 300 3:Sig 2:/c\n");
        let p = page(&sources, p.next_cursor, None);
        let paths: Vec<_> = p.detections.iter().map(|d| d.file_path.as_str()).collect();
        // The rotated file was just written: its new line comes now, the new spool next.
        assert_eq!(paths, ["/b"]);
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        fs::File::options()
            .write(true)
            .open(dir.path().join("events.1"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let p = page(&sources, p.next_cursor, None);
        let paths: Vec<_> = p.detections.iter().map(|d| d.file_path.as_str()).collect();
        assert_eq!(paths, ["/c"]);
    }
}
