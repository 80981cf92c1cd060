//! Incremental, rotation-aware reading of an append-only text file (clamd's LogFile, the
//! VirusEvent spool) from a saved position.
//!
//! Invariants:
//! * A position names a file by device+inode *and* a hash of its first bytes, so a reused
//!   inode or a truncated-and-rewritten file is not mistaken for the one we read.
//! * Only complete lines (ending in `\n`) of the live file are consumed: a line being
//!   written is read next time. A rotated file that has been quiet for [`QUIET`] is read to
//!   its end, trailing partial line included (nobody will finish it).
//! * Rotation by rename (`create`: the saved inode now lives under another name in the same
//!   directory) and by copy+truncate (the saved head now starts a sibling copy) are both
//!   followed: the rest of the old file is read before the new one starts at 0.
//! * Compressed siblings (`.gz`, …) are not read; if the old file is already compressed,
//!   the new file is read from the start and the gap is reported to the caller.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// Bytes hashed to fingerprint a file.
const HEAD: u64 = 256;
/// A rotated file untouched for this long is considered finished.
pub const QUIET: Duration = Duration::from_secs(10);
/// Longest line handed to the callback; longer ones are cut (still consumed whole).
const MAX_LINE: usize = 64 * 1024;

/// Where reading stopped in one file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePos {
    pub dev: u64,
    pub ino: u64,
    pub offset: u64,
    pub head_len: u64,
    pub head: u64,
}

/// What a read did besides calling back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadReport {
    /// Position after the last consumed line; `None` if the file does not exist (yet).
    pub pos: Option<FilePos>,
    /// The callback asked to stop before the end.
    pub stopped: bool,
    /// The saved file was rotated away and not found (e.g. already compressed): lines
    /// may have been missed.
    pub gap: bool,
}

fn open_nofollow(path: &Path) -> io::Result<File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
}

fn head_of(file: &mut File, len: u64) -> io::Result<(u64, u64)> {
    let n = len.min(HEAD);
    let mut buf = vec![0u8; n as usize];
    file.seek(SeekFrom::Start(0))?;
    file.read_exact(&mut buf)?;
    Ok((n, crate::fnv64(&[&buf])))
}

/// Does `file` (with metadata `meta`) start with the head recorded in `pos`?
fn same_head(file: &mut File, meta: &fs::Metadata, pos: &FilePos) -> bool {
    if meta.len() < pos.head_len {
        return false;
    }
    let mut buf = vec![0u8; pos.head_len as usize];
    file.seek(SeekFrom::Start(0)).is_ok()
        && file.read_exact(&mut buf).is_ok()
        && crate::fnv64(&[&buf]) == pos.head
}

/// Rotated siblings of `path`: `<name>.<anything>` in the same directory, uncompressed.
fn siblings(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with(&prefix)
                    && ![".gz", ".bz2", ".xz", ".zst", ".Z", ".lz4"]
                        .iter()
                        .any(|ext| n.ends_with(ext))
            })
        })
        .collect();
    found.sort();
    found
}

/// Find the file `pos` was in, under a rotated name.
fn find_rotated(path: &Path, pos: &FilePos) -> Option<(PathBuf, File, fs::Metadata)> {
    let candidates = siblings(path);
    // Renamed (same inode) first, then a copy (same head, long enough).
    for by_inode in [true, false] {
        for candidate in &candidates {
            let Ok(meta) = fs::symlink_metadata(candidate) else {
                continue;
            };
            if !meta.is_file() || (by_inode && (meta.dev(), meta.ino()) != (pos.dev, pos.ino)) {
                continue;
            }
            if !by_inode && meta.len() < pos.offset {
                continue;
            }
            let Ok(mut file) = open_nofollow(candidate) else {
                continue;
            };
            if same_head(&mut file, &meta, pos) {
                return Some((candidate.clone(), file, meta));
            }
        }
    }
    None
}

/// Read lines of `file` from `offset`; `whole` = also take a trailing unterminated line.
/// Calls `f(line, pos_after)`; stops when `f` returns false (that line is not consumed).
fn read_from(
    mut file: File,
    meta: &fs::Metadata,
    offset: u64,
    whole: bool,
    f: &mut dyn FnMut(&[u8], FilePos) -> bool,
) -> io::Result<(FilePos, bool)> {
    let (head_len, head) = head_of(&mut file, meta.len())?;
    let mut pos = FilePos {
        dev: meta.dev(),
        ino: meta.ino(),
        offset,
        head_len,
        head,
    };
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = read_line_bounded(&mut reader, &mut line)?;
        if n == 0 {
            return Ok((pos, false));
        }
        let complete = line.last() == Some(&b'\n');
        if !complete && !whole {
            return Ok((pos, false));
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let after = FilePos {
            offset: pos.offset + n as u64,
            ..pos
        };
        if !f(text, after) {
            return Ok((pos, true));
        }
        pos = after;
    }
}

/// Like `read_until(b'\n')` but keeps at most MAX_LINE bytes; returns bytes consumed.
fn read_line_bounded(reader: &mut impl BufRead, out: &mut Vec<u8>) -> io::Result<usize> {
    let mut consumed = 0;
    loop {
        let buf = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(consumed);
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        let room = MAX_LINE.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if done && out.last() != Some(&b'\n') {
            out.push(b'\n'); // cut line: keep it terminated
        }
        let n = chunk.len();
        reader.consume(n);
        consumed += n;
        if done {
            return Ok(consumed);
        }
    }
}

fn quiet(meta: &fs::Metadata) -> bool {
    meta.modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .is_some_and(|age| age >= QUIET)
}

/// Read the lines of `path` after `pos` (or from the start), following rotation.
pub fn read_lines(
    path: &Path,
    pos: Option<&FilePos>,
    f: &mut dyn FnMut(&[u8], FilePos) -> bool,
) -> io::Result<ReadReport> {
    let current = match open_nofollow(path) {
        Ok(file) => {
            let meta = file.metadata()?;
            meta.is_file().then_some((file, meta))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let mut report = ReadReport::default();
    let mut start = 0;
    if let Some(pos) = pos {
        let still_current = match &current {
            Some((file, meta)) if (meta.dev(), meta.ino()) == (pos.dev, pos.ino) => {
                let mut f2 = file.try_clone()?;
                same_head(&mut f2, meta, pos) && meta.len() >= pos.offset
            }
            _ => false,
        };
        if still_current {
            start = pos.offset;
        } else if let Some((_, file, meta)) = find_rotated(path, pos) {
            let done = quiet(&meta);
            let (after, stopped) = read_from(file, &meta, pos.offset, done, f)?;
            if stopped || !done {
                // Not done with the old file: stay on it (clamd may still append to it
                // until it reopens its log).
                report.pos = Some(after);
                report.stopped = stopped;
                return Ok(report);
            }
        } else {
            report.gap = true;
        }
    }
    match current {
        None => {
            report.pos = pos.copied().filter(|_| !report.gap);
            Ok(report)
        }
        Some((file, meta)) => {
            let (after, stopped) = read_from(file, &meta, start, false, f)?;
            report.pos = Some(after);
            report.stopped = stopped;
            Ok(report)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(path: &Path, pos: Option<&FilePos>) -> (Vec<String>, ReadReport) {
        let mut lines = Vec::new();
        let r = read_lines(path, pos, &mut |l, _| {
            lines.push(String::from_utf8_lossy(l).into_owned());
            true
        })
        .unwrap();
        (lines, r)
    }

    fn append(path: &Path, text: &str) {
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }

    fn age(path: &Path) {
        let old = SystemTime::now() - Duration::from_secs(60);
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }

    #[test]
    fn partial_lines_wait_and_nothing_is_read_twice() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("clamd.log");
        assert_eq!(read_all(&log, None).0.len(), 0, "missing file is empty");
        append(&log, "one\ntwo\nthr");
        let (lines, r) = read_all(&log, None);
        assert_eq!(lines, ["one", "two"]);
        append(&log, "ee\nfour\n");
        let (lines, r) = read_all(&log, r.pos.as_ref());
        assert_eq!(lines, ["three", "four"]);
        let (lines, _) = read_all(&log, r.pos.as_ref());
        assert!(lines.is_empty());
    }

    #[test]
    fn stop_leaves_the_line_for_next_time() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("l");
        append(&log, "a\nb\nc\n");
        let mut seen = Vec::new();
        let r = read_lines(&log, None, &mut |l, _| {
            if seen.len() == 2 {
                return false;
            }
            seen.push(l.to_vec());
            true
        })
        .unwrap();
        assert!(r.stopped);
        assert_eq!(read_all(&log, r.pos.as_ref()).0, ["c"]);
    }

    #[test]
    fn rename_rotation_reads_the_rest_then_the_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("clamav.log");
        append(&log, "old-1\n");
        let (_, r) = read_all(&log, None);
        append(&log, "old-2\nold-partial");
        fs::rename(&log, dir.path().join("clamav.log.1")).unwrap();
        append(&log, "new-1\n");
        // The rotated file was written just now: read its complete lines, stay on it.
        let (lines, r) = read_all(&log, r.pos.as_ref());
        assert_eq!(lines, ["old-2"]);
        // Once quiet, its tail is taken and reading moves to the new file.
        age(&dir.path().join("clamav.log.1"));
        let (lines, r) = read_all(&log, r.pos.as_ref());
        assert_eq!(lines, ["old-partial", "new-1"]);
        append(&log, "new-2\n");
        assert_eq!(read_all(&log, r.pos.as_ref()).0, ["new-2"]);
    }

    #[test]
    fn copytruncate_rotation_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("c.log");
        append(&log, "line-1\n");
        let (_, r) = read_all(&log, None);
        append(&log, "line-2\n");
        fs::copy(&log, dir.path().join("c.log.1")).unwrap();
        age(&dir.path().join("c.log.1"));
        File::options()
            .write(true)
            .open(&log)
            .unwrap()
            .set_len(0)
            .unwrap();
        append(&log, "after\n");
        let (lines, _) = read_all(&log, r.pos.as_ref());
        assert_eq!(lines, ["line-2", "after"]);
    }

    #[test]
    fn lost_rotation_is_a_gap_and_restarts_at_zero() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x.log");
        append(&log, "old\n");
        let (_, r) = read_all(&log, None);
        fs::rename(&log, dir.path().join("x.log.1.gz")).unwrap();
        append(&log, "fresh\n");
        let (lines, r) = read_all(&log, r.pos.as_ref());
        assert_eq!(lines, ["fresh"]);
        assert!(r.gap);
    }
}
