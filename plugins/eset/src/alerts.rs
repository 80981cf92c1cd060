//! Detection history with a cursor of our own: `lslog` has no "since" option (doc §1.3) and
//! syslog is a plain file, so the cursor says what was already returned.
//!
//! Invariants:
//! * Nothing is returned twice for an unchanged history: the lslog cursor is
//!   [`armadito_cli_exec::cursor`] (time + fingerprints); the syslog cursor is (file
//!   identity, byte offset after the last complete line read).
//! * Pages are oldest first; `more` is set when the limit cut a page.
//! * A cursor this backend did not write is an error, not a reason to resend everything.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use armadito_plugin_api::{AlertsPage, AlertsQuery, Detection};
use serde::{Deserialize, Serialize};

use armadito_cli_exec::cursor;

use crate::backend::{BackendError, Warn, action, info_text};
use crate::dates;
use crate::parse::{lslog, syslog};

fn parse_cursor<T: for<'de> Deserialize<'de>>(c: &str) -> Result<T, BackendError> {
    serde_json::from_str(c).map_err(|_| BackendError::Cursor(c.to_string()))
}

pub fn from_lslog(
    csv: &str,
    query: &AlertsQuery,
    limit: usize,
    warn: Warn,
) -> Result<AlertsPage, BackendError> {
    let parsed = lslog::parse(csv);
    if parsed.skipped > 0 {
        warn(format!(
            "{} lslog rows could not be read (unknown date or columns)",
            parsed.skipped
        ));
    }
    let records = parsed
        .rows
        .into_iter()
        .filter_map(|r| dates::local_unix(r.time).map(|t| (t, r.fingerprint, r)))
        .collect();
    let page = cursor::page(records, query.cursor.as_deref(), query.since, limit)
        .map_err(|e| BackendError::Cursor(e.0))?;
    Ok(AlertsPage {
        detections: page
            .records
            .into_iter()
            .map(|(t, r)| Detection {
                id: format!("{:016x}", r.fingerprint),
                threat_name: r.threat,
                file_path: r.path,
                action: action(&r.action),
                detection_time: t,
                module_name: Some(r.scanner).filter(|s| !s.is_empty()),
                info: info_text(&r.action, &r.info),
            })
            .collect(),
        next_cursor: page.next_cursor,
        more: page.more,
    })
}

#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
struct FileCursor {
    /// inode (0 where the OS has none).
    ino: u64,
    off: u64,
}

fn inode(meta: &std::fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        meta.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        0
    }
}

/// Legacy ESETS: `esets_daemon` detection lines appended to syslog since the cursor.
pub fn from_syslog(
    path: &Path,
    query: &AlertsQuery,
    limit: usize,
    warn: Warn,
) -> Result<AlertsPage, BackendError> {
    let io = |e: std::io::Error| BackendError::Io(format!("{}: {e}", path.display()));
    let mut file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    let ino = inode(&meta);
    let mut start = 0;
    if let Some(c) = &query.cursor {
        let c: FileCursor = parse_cursor(c)?;
        if c.ino == ino && c.off <= meta.len() {
            start = c.off;
        } else {
            warn(format!(
                "{} was rotated or truncated: reading it from the start",
                path.display()
            ));
        }
    }
    file.seek(SeekFrom::Start(start)).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(meta.len().saturating_sub(start))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    let now = chrono::Local::now().naive_local();
    let since = if query.cursor.is_none() {
        query.since
    } else {
        None
    };
    let mut detections = Vec::new();
    let mut off = start;
    let mut more = false;
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        if !line.ends_with(b"\n") {
            break; // a line still being written: read it next time
        }
        if detections.len() == limit {
            more = true;
            break;
        }
        off += line.len() as u64;
        let text = String::from_utf8_lossy(line);
        let Some(e) = syslog::event(text.trim_end(), now) else {
            continue;
        };
        let Some(t) = dates::local_unix(e.time) else {
            continue;
        };
        if since.is_some_and(|s| t < s) {
            continue;
        }
        detections.push(Detection {
            id: format!("{ino}:{off}"),
            threat_name: e.threat,
            file_path: e.path,
            action: action(&e.action),
            detection_time: t,
            module_name: Some(format!("esets_daemon {}", e.agent).trim().to_string()),
            info: info_text(&e.action, &e.info),
        });
    }
    Ok(AlertsPage {
        detections,
        next_cursor: serde_json::to_string(&FileCursor { ino, off }).ok(),
        more,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROWS: &str = "09/13/2025 10:11:12,Real-time file system protection,file,/home/u/a.com,Eicar test file,cleaned by deleting,root,\n09/13/2025 10:11:12,Real-time file system protection,file,/home/u/b.com,Eicar test file,cleaned by deleting,root,\n09/13/2025 10:15:00,On-demand scanner,file,/srv/c.exe,Win32/Agent trojan,retained,root,\n";

    fn no_warn(_: String) {}

    fn page(csv: &str, cursor: Option<String>, limit: usize) -> AlertsPage {
        from_lslog(
            csv,
            &AlertsQuery {
                cursor,
                ..AlertsQuery::default()
            },
            limit,
            &no_warn,
        )
        .unwrap()
    }

    #[test]
    fn lslog_pages_never_repeat_and_rows_of_one_second_are_kept_apart() {
        let p1 = page(ROWS, None, 1);
        assert_eq!(p1.detections.len(), 1);
        assert!(p1.more);
        let p2 = page(ROWS, p1.next_cursor.clone(), 10);
        assert_eq!(p2.detections.len(), 2, "the second row of the same second");
        assert_ne!(p1.detections[0].file_path, p2.detections[0].file_path);
        let p3 = page(ROWS, p2.next_cursor.clone(), 10);
        assert!(p3.detections.is_empty());
        assert_eq!(p3.next_cursor, p2.next_cursor);
        // a new row appears: only it is returned
        let grown = format!(
            "{ROWS}09/14/2025 08:00:00,Real-time file system protection,file,/tmp/d,Eicar test file,retained,root,\n"
        );
        let p4 = page(&grown, p2.next_cursor, 10);
        assert_eq!(p4.detections.len(), 1);
        assert_eq!(p4.detections[0].file_path, "/tmp/d");
        assert_eq!(
            p4.detections[0].module_name.as_deref(),
            Some("Real-time file system protection")
        );
    }

    #[test]
    fn foreign_cursors_are_refused() {
        let e = from_lslog(
            ROWS,
            &AlertsQuery {
                cursor: Some("{bad".into()),
                ..Default::default()
            },
            10,
            &no_warn,
        )
        .unwrap_err();
        assert!(matches!(e, BackendError::Cursor(_)));
    }

    #[test]
    fn syslog_cursor_reads_only_new_complete_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("syslog");
        let line = "Nov 23 14:22:33 h esets_daemon[6974]: summ[1b3e0300]: vdb=31502, agent=pac, name=\"/home/x.rtf\", virus=\"Win32/Exploit trojan\", action=\"cleaned by deleting\", info=\"\", avstatus=\"clean (deleted)\", hop=\"discarded\"\n";
        std::fs::write(&log, format!("Nov 23 14:00:00 h sshd[1]: hello\n{line}")).unwrap();
        let q = |cursor| AlertsQuery {
            cursor,
            ..Default::default()
        };
        let p1 = from_syslog(&log, &q(None), 10, &no_warn).unwrap();
        assert_eq!(p1.detections.len(), 1);
        assert_eq!(p1.detections[0].file_path, "/home/x.rtf");
        let p2 = from_syslog(&log, &q(p1.next_cursor.clone()), 10, &no_warn).unwrap();
        assert!(p2.detections.is_empty());
        // a half-written line waits; once complete it is read once
        let half = &line[..40];
        std::fs::write(
            &log,
            format!("Nov 23 14:00:00 h sshd[1]: hello\n{line}{half}"),
        )
        .unwrap();
        let p3 = from_syslog(&log, &q(p2.next_cursor.clone()), 10, &no_warn).unwrap();
        assert!(p3.detections.is_empty());
        std::fs::write(
            &log,
            format!("Nov 23 14:00:00 h sshd[1]: hello\n{line}{line}"),
        )
        .unwrap();
        let p4 = from_syslog(&log, &q(p3.next_cursor), 10, &no_warn).unwrap();
        assert_eq!(p4.detections.len(), 1);
    }
}
