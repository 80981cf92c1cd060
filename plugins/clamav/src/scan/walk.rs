//! Agent-side tree walk: clamd's own directory scans report only infected files, so the
//! agent walks the tree itself to get per-file results and progress (§B.6).
//!
//! Invariants:
//! * Symbolic links are not followed unless asked. A link that stays inside the scanned
//!   tree is skipped silently (its target is scanned where it lives); one that leads out of
//!   the tree, or is broken, is reported as `Ignored` so the gap is visible.
//! * When links are followed, every directory is entered at most once (by device+inode),
//!   so link loops terminate; files are sent to clamd by their resolved path because clamd
//!   does not follow links itself by default.
//! * Only regular files are scanned. FIFOs, sockets and devices are reported `Ignored`
//!   (opening a FIFO would block, reading a device may never end).
//! * An unreadable directory or entry is one `Error` result; the walk goes on.
//! * No `stat` per file unless a size limit needs it: the directory entry type is enough.
//! * A directory is entered only if it is still the one seen when it was listed: it is opened
//!   with `O_NOFOLLOW` and its device+inode compared, then read through that descriptor, so
//!   swapping a folder for a symlink mid-walk leads nowhere. With `allowed_roots` (the
//!   agent's `[scan] allowed_paths`, resolved), every root, directory and followed link must
//!   resolve inside them.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use armadito_plugin_api::model::FileStatus;

/// One file to hand to clamd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The path as the user sees it (through links), reported in results.
    pub display: PathBuf,
    /// The path sent to clamd (resolved when reached through a followed link).
    pub target: PathBuf,
}

/// A final result produced without clamd (skipped or unreadable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub path: PathBuf,
    pub status: FileStatus,
    pub threat: Option<String>,
    pub message: Option<String>,
}

impl Outcome {
    pub fn ignored(path: impl Into<PathBuf>, why: impl Into<String>) -> Outcome {
        Outcome {
            path: path.into(),
            status: FileStatus::Ignored,
            threat: None,
            message: Some(why.into()),
        }
    }

    pub fn error(path: impl Into<PathBuf>, why: impl Into<String>) -> Outcome {
        Outcome {
            path: path.into(),
            status: FileStatus::Error,
            threat: None,
            message: Some(why.into()),
        }
    }
}

/// What the walk produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalkEvent {
    File(Job),
    Done(Outcome),
}

#[derive(Debug, Clone, Default)]
pub struct WalkOptions {
    pub recursive: bool,
    pub follow_symlinks: bool,
    pub max_file_size: Option<u64>,
    /// Resolved folders the walk must stay in (empty: no limit).
    pub allowed_roots: Vec<PathBuf>,
}

/// Human text for an I/O error, without Rust's "(os error N)" suffix.
pub fn io_text(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// Walk `roots` and feed `emit` until done, `stop` is set, or `emit` returns false.
pub fn walk(
    roots: &[PathBuf],
    opts: &WalkOptions,
    stop: &AtomicBool,
    emit: &mut dyn FnMut(WalkEvent) -> bool,
) {
    let mut walker = Walker {
        opts: opts.clone(),
        stop,
        emit,
        bounds: Vec::new(),
        visited: HashSet::new(),
        halted: false,
    };
    // Roots are resolved first (a root given through a link is what the user asked for), and
    // all of them bound the tree for the "link leads outside" test.
    let mut resolved = Vec::new();
    for root in roots {
        match fs::canonicalize(root) {
            Ok(real) => {
                walker.bounds.push(real.clone());
                resolved.push((root.clone(), real));
            }
            Err(e) => {
                if !walker.send(WalkEvent::Done(Outcome::error(root, io_text(&e)))) {
                    return;
                }
            }
        }
    }
    for (root, real) in resolved {
        if walker.halted || stop.load(Ordering::Relaxed) {
            return;
        }
        if !walker.allowed(&real) {
            let why = format!("resolves to {}, outside the allowed paths", real.display());
            if !walker.send(WalkEvent::Done(Outcome::error(&root, why))) {
                return;
            }
            continue;
        }
        walker.root(&root, &real);
    }
}

struct Walker<'a> {
    opts: WalkOptions,
    stop: &'a AtomicBool,
    emit: &'a mut dyn FnMut(WalkEvent) -> bool,
    /// Resolved roots.
    bounds: Vec<PathBuf>,
    /// (dev, ino) of directories entered, when following links.
    visited: HashSet<(u64, u64)>,
    halted: bool,
}

impl Walker<'_> {
    fn send(&mut self, event: WalkEvent) -> bool {
        if self.halted || self.stop.load(Ordering::Relaxed) || !(self.emit)(event) {
            self.halted = true;
        }
        !self.halted
    }

    fn inside(&self, real: &Path) -> bool {
        self.bounds.iter().any(|b| real.starts_with(b))
    }

    fn allowed(&self, real: &Path) -> bool {
        self.opts.allowed_roots.is_empty()
            || self.opts.allowed_roots.iter().any(|b| real.starts_with(b))
    }

    /// Open `dir` for listing if it is still the directory `expect` (dev, ino) seen when it was
    /// listed, and inside the allowed roots. The descriptor is what gets read.
    fn open_dir(&self, dir: &Path, expect: Option<(u64, u64)>) -> Result<fs::ReadDir, String> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(dir)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) | Some(libc::ENOTDIR) => {
                    "replaced by a symbolic link or a file during the scan, not entered".to_string()
                }
                _ => format!("cannot read directory: {}", io_text(&e)),
            })?;
        let meta = f.metadata().map_err(|e| io_text(&e))?;
        if expect.is_some_and(|id| id != (meta.dev(), meta.ino())) {
            return Err("replaced during the scan, not entered".into());
        }
        let via = PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&f)
        ));
        if !self.opts.allowed_roots.is_empty() {
            let real = fs::read_link(&via).map_err(|e| io_text(&e))?;
            if !self.allowed(&real) {
                return Err(format!(
                    "resolves to {}, outside the allowed paths, not entered",
                    real.display()
                ));
            }
        }
        // Listing through the descriptor (Linux /proc; `f` is still open) reads exactly the
        // directory checked; without /proc, by path.
        fs::read_dir(&via)
            .or_else(|_| fs::read_dir(dir))
            .map_err(|e| format!("cannot read directory: {}", io_text(&e)))
    }

    fn root(&mut self, shown: &Path, real: &Path) {
        let meta = match fs::metadata(real) {
            Ok(m) => m,
            Err(e) => {
                self.send(WalkEvent::Done(Outcome::error(shown, io_text(&e))));
                return;
            }
        };
        if meta.is_dir() {
            // Walk under the name the user gave, send resolved paths only where needed.
            self.dir_tree(shown.to_path_buf(), &meta);
        } else {
            self.file(shown.to_path_buf(), real.to_path_buf(), Some(&meta));
        }
    }

    /// Depth-first walk below `top` with an explicit stack (no recursion depth limit).
    fn dir_tree(&mut self, top: PathBuf, top_meta: &fs::Metadata) {
        if self.opts.follow_symlinks {
            self.visited.insert((top_meta.dev(), top_meta.ino()));
        }
        let mut stack = vec![(top, Some((top_meta.dev(), top_meta.ino())))];
        while let Some((dir, expect)) = stack.pop() {
            if self.halted || self.stop.load(Ordering::Relaxed) {
                return;
            }
            let entries = match self.open_dir(&dir, expect) {
                Ok(e) => e,
                Err(why) => {
                    if !self.send(WalkEvent::Done(Outcome::error(&dir, why))) {
                        return;
                    }
                    continue;
                }
            };
            for entry in entries {
                if self.halted {
                    return;
                }
                let entry = match entry {
                    Ok(e) => e,
                    Err(e) => {
                        let why = format!("cannot read directory: {}", io_text(&e));
                        self.send(WalkEvent::Done(Outcome::error(&dir, why)));
                        break;
                    }
                };
                let path = dir.join(entry.file_name());
                let ft = match entry.file_type() {
                    Ok(ft) => ft,
                    Err(e) => {
                        self.send(WalkEvent::Done(Outcome::error(&path, io_text(&e))));
                        continue;
                    }
                };
                if ft.is_dir() {
                    if self.opts.recursive {
                        // lstat: the identity checked again when the directory is entered.
                        let id = match fs::symlink_metadata(&path) {
                            Ok(m) if m.is_dir() => (m.dev(), m.ino()),
                            Ok(_) => {
                                let why = "replaced during the scan, not entered";
                                self.send(WalkEvent::Done(Outcome::error(&path, why)));
                                continue;
                            }
                            Err(e) => {
                                self.send(WalkEvent::Done(Outcome::error(&path, io_text(&e))));
                                continue;
                            }
                        };
                        if self.opts.follow_symlinks && !self.visited.insert(id) {
                            continue;
                        }
                        stack.push((path, Some(id)));
                    }
                } else if ft.is_file() {
                    self.file(path.clone(), path, None);
                } else if ft.is_symlink() {
                    if let Some(dir) = self.symlink(&path)
                        && self.opts.recursive
                    {
                        stack.push(dir);
                    }
                } else {
                    self.special(&path, &ft);
                }
            }
        }
    }

    fn file(&mut self, display: PathBuf, target: PathBuf, meta: Option<&fs::Metadata>) {
        if let Some(limit) = self.opts.max_file_size {
            let size = match meta {
                Some(m) => m.len(),
                None => match fs::metadata(&target) {
                    Ok(m) => m.len(),
                    Err(e) => {
                        self.send(WalkEvent::Done(Outcome::error(&display, io_text(&e))));
                        return;
                    }
                },
            };
            if size > limit {
                let why = format!("{size} bytes, above the scan's max_file_size ({limit})");
                self.send(WalkEvent::Done(Outcome::ignored(display, why)));
                return;
            }
        }
        self.send(WalkEvent::File(Job { display, target }));
    }

    fn special(&mut self, path: &Path, ft: &fs::FileType) {
        let kind = if ft.is_fifo() {
            "fifo"
        } else if ft.is_socket() {
            "socket"
        } else if ft.is_block_device() {
            "block device"
        } else if ft.is_char_device() {
            "character device"
        } else {
            "unknown file type"
        };
        self.send(WalkEvent::Done(Outcome::ignored(
            path,
            format!("special file ({kind}), not scanned"),
        )));
    }

    /// Handle a link; returns a directory (and its identity) to descend into (only when
    /// following links).
    fn symlink(&mut self, link: &Path) -> Option<(PathBuf, Option<(u64, u64)>)> {
        let real = match fs::canonicalize(link) {
            Ok(r) => r,
            Err(e) => {
                self.send(WalkEvent::Done(Outcome::ignored(
                    link,
                    format!("broken symbolic link ({})", io_text(&e)),
                )));
                return None;
            }
        };
        if self.opts.follow_symlinks && !self.allowed(&real) {
            self.send(WalkEvent::Done(Outcome::ignored(
                link,
                format!(
                    "symbolic link to {} outside the allowed paths, not followed",
                    real.display()
                ),
            )));
            return None;
        }
        if !self.opts.follow_symlinks {
            if !self.inside(&real) {
                self.send(WalkEvent::Done(Outcome::ignored(
                    link,
                    format!(
                        "symbolic link to {} outside the scanned tree, not followed",
                        real.display()
                    ),
                )));
            }
            return None;
        }
        let meta = match fs::metadata(&real) {
            Ok(m) => m,
            Err(e) => {
                self.send(WalkEvent::Done(Outcome::error(link, io_text(&e))));
                return None;
            }
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            let id = (meta.dev(), meta.ino());
            return self.visited.insert(id).then_some((real, Some(id)));
        }
        if ft.is_file() {
            self.file(link.to_path_buf(), real, Some(&meta));
        } else {
            self.special(link, &ft);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn collect(roots: &[PathBuf], opts: WalkOptions) -> Vec<WalkEvent> {
        let stop = AtomicBool::new(false);
        let mut out = Vec::new();
        walk(roots, &opts, &stop, &mut |e| {
            out.push(e);
            true
        });
        out.sort_by_key(key);
        out
    }

    fn key(e: &WalkEvent) -> PathBuf {
        match e {
            WalkEvent::File(j) => j.display.clone(),
            WalkEvent::Done(o) => o.path.clone(),
        }
    }

    fn files(events: &[WalkEvent]) -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match e {
                WalkEvent::File(j) => Some(j.display.file_name()?.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn symlinks_inside_are_silent_outside_are_reported() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), b"x").unwrap();
        let tree = tempfile::tempdir().unwrap();
        let t = tree.path();
        fs::create_dir(t.join("sub")).unwrap();
        fs::write(t.join("a.txt"), b"a").unwrap();
        fs::write(t.join("sub/b.txt"), b"b").unwrap();
        symlink(t.join("a.txt"), t.join("link-in")).unwrap();
        symlink(outside.path().join("secret"), t.join("link-out")).unwrap();
        symlink(outside.path(), t.join("dir-out")).unwrap();
        symlink(t.join("missing"), t.join("broken")).unwrap();
        symlink(t, t.join("sub/loop")).unwrap();

        let events = collect(
            &[t.to_path_buf()],
            WalkOptions {
                recursive: true,
                ..Default::default()
            },
        );
        assert_eq!(files(&events), vec!["a.txt", "b.txt"]);
        let ignored: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                WalkEvent::Done(o) if o.status == FileStatus::Ignored => {
                    Some(o.path.file_name().unwrap().to_string_lossy().into_owned())
                }
                _ => None,
            })
            .collect();
        assert_eq!(ignored, vec!["broken", "dir-out", "link-out"]);

        // Following: the outside file is scanned by its real path, the loop ends.
        let events = collect(
            &[t.to_path_buf()],
            WalkOptions {
                recursive: true,
                follow_symlinks: true,
                ..Default::default()
            },
        );
        let mut names = files(&events);
        names.sort();
        assert_eq!(
            names,
            vec!["a.txt", "b.txt", "link-in", "link-out", "secret"]
        );
        let link_out = events
            .iter()
            .find_map(|e| match e {
                WalkEvent::File(j) if j.display.ends_with("link-out") => Some(j.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            link_out.target,
            fs::canonicalize(outside.path().join("secret")).unwrap()
        );
    }

    #[test]
    fn special_files_missing_roots_and_size_limit() {
        let tree = tempfile::tempdir().unwrap();
        let t = tree.path();
        fs::write(t.join("small"), b"1234").unwrap();
        fs::write(t.join("big"), vec![0u8; 100]).unwrap();
        let fifo = std::ffi::CString::new(t.join("fifo").to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        let events = collect(
            &[t.to_path_buf(), t.join("nope")],
            WalkOptions {
                recursive: true,
                max_file_size: Some(50),
                ..Default::default()
            },
        );
        assert_eq!(files(&events), vec!["small"]);
        let by_name = |n: &str| {
            events
                .iter()
                .find_map(|e| match e {
                    WalkEvent::Done(o) if o.path.ends_with(n) => Some(o.clone()),
                    _ => None,
                })
                .unwrap()
        };
        assert_eq!(by_name("big").status, FileStatus::Ignored);
        assert_eq!(by_name("fifo").status, FileStatus::Ignored);
        assert!(by_name("fifo").message.unwrap().contains("fifo"));
        let nope = by_name("nope");
        assert_eq!(nope.status, FileStatus::Error);
        assert_eq!(nope.message.as_deref(), Some("No such file or directory"));
    }

    #[test]
    fn non_recursive_stays_at_top() {
        let tree = tempfile::tempdir().unwrap();
        let t = tree.path();
        fs::create_dir(t.join("sub")).unwrap();
        fs::write(t.join("top"), b"1").unwrap();
        fs::write(t.join("sub/deep"), b"1").unwrap();
        let events = collect(&[t.to_path_buf()], WalkOptions::default());
        assert_eq!(files(&events), vec!["top"]);
    }

    #[test]
    fn stop_flag_halts() {
        let tree = tempfile::tempdir().unwrap();
        for i in 0..50 {
            fs::write(tree.path().join(i.to_string()), b"1").unwrap();
        }
        let stop = AtomicBool::new(false);
        let mut n = 0;
        walk(
            &[tree.path().to_path_buf()],
            &WalkOptions::default(),
            &stop,
            &mut |_| {
                n += 1;
                if n == 5 {
                    stop.store(true, Ordering::Relaxed);
                }
                true
            },
        );
        assert_eq!(n, 5);
    }

    /// Issue 12 item 4: a folder swapped for a symlink after it was listed is not entered.
    #[test]
    fn a_folder_swapped_for_a_symlink_mid_walk_is_not_entered() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("first.txt"), b"x").unwrap();
        fs::write(root.join("sub/inner.txt"), b"x").unwrap();
        let stop = AtomicBool::new(false);
        let mut out = Vec::new();
        let mut swapped = false;
        let opts = WalkOptions {
            recursive: true,
            ..Default::default()
        };
        walk(std::slice::from_ref(&root), &opts, &stop, &mut |e| {
            if !swapped {
                // `sub` was listed with `first.txt` and is entered after it: swap it now.
                fs::rename(root.join("sub"), dir.path().join("moved")).unwrap();
                symlink("/etc", root.join("sub")).unwrap();
                swapped = true;
            }
            out.push(e);
            true
        });
        let leaked: Vec<_> = out
            .iter()
            .filter_map(|e| match e {
                WalkEvent::File(j) if j.target.starts_with(root.join("sub")) => Some(j),
                _ => None,
            })
            .collect();
        assert!(
            leaked.is_empty(),
            "walked into /etc: {} files, e.g. {:?}",
            leaked.len(),
            leaked.first()
        );
        assert!(
            out.iter().any(|e| matches!(e, WalkEvent::Done(o)
                if o.path == root.join("sub") && o.status == FileStatus::Error
                    && o.message.as_deref().unwrap_or("").contains("not entered"))),
            "{out:?}"
        );
    }

    /// Issue 12 item 4: `--follow-symlinks` does not follow a link out of the allowed roots.
    #[test]
    fn followed_links_stay_inside_the_allowed_roots() {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        fs::write(root.join("a.txt"), b"x").unwrap();
        symlink("/etc", root.join("etc")).unwrap();
        symlink("/etc/hostname", root.join("host")).unwrap();
        let events = collect(
            std::slice::from_ref(&root),
            WalkOptions {
                recursive: true,
                follow_symlinks: true,
                allowed_roots: vec![root.clone()],
                ..Default::default()
            },
        );
        for e in &events {
            if let WalkEvent::File(j) = e {
                assert!(j.target.starts_with(&root), "followed out: {j:?}");
            }
        }
        let ignored = events
            .iter()
            .filter(|e| {
                matches!(e, WalkEvent::Done(o) if o.status == FileStatus::Ignored
                && o.message.as_deref().unwrap_or("").contains("outside the allowed paths"))
            })
            .count();
        assert_eq!(ignored, 2, "{events:?}");
        // a root outside them is refused
        let events = collect(
            &[PathBuf::from("/etc")],
            WalkOptions {
                allowed_roots: vec![root.clone()],
                ..Default::default()
            },
        );
        assert!(matches!(&events[..], [WalkEvent::Done(o)] if o.status == FileStatus::Error));
    }
}
