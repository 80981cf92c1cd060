//! Logging setup: `tracing` to stderr (default) or to a size-rotated file, as text or JSON,
//! optionally to journald.
//!
//! Nothing secret is logged anywhere in the agent: the enrollment key and passwords live in
//! types whose `Debug` hides them, and request bodies of `POST api/agents` are never logged.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use parking_lot::Mutex;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

use crate::config::{LogConfig, LogFormat};

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("invalid log level {0:?}: use error, warn, info, debug, trace or a tracing filter")]
    Level(String),
    #[error("cannot open log file {path}: {source}")]
    File { path: PathBuf, source: io::Error },
}

/// Installs the global subscriber. Call once, early.
pub fn init(cfg: &LogConfig) -> Result<(), LogError> {
    let filter = EnvFilter::try_new(&cfg.level).map_err(|_| LogError::Level(cfg.level.clone()))?;
    let writer = match &cfg.file {
        Some(path) => Writer::File(RotatingFile::open(path, cfg.max_size, cfg.keep)?),
        None => Writer::Stderr,
    };
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_target(false);
    let fmt = match cfg.format {
        LogFormat::Text => fmt
            .with_ansi(cfg.file.is_none() && io::IsTerminal::is_terminal(&io::stderr()))
            .boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
    };
    let journald = if cfg.journald {
        match tracing_journald::layer() {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("warning: journald is not available ({e}); logging without it");
                None
            }
        }
    } else {
        None
    };
    // A second init (tests running in one process) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(journald)
        .try_init();
    Ok(())
}

#[derive(Clone)]
enum Writer {
    Stderr,
    File(RotatingFile),
}

impl<'a> MakeWriter<'a> for Writer {
    type Writer = Box<dyn Write + 'a>;
    fn make_writer(&'a self) -> Self::Writer {
        match self {
            Writer::Stderr => Box::new(io::stderr()),
            Writer::File(f) => Box::new(f.clone()),
        }
    }
}

/// A log file rotated by size: `agent.log` → `agent.log.1` → … → `agent.log.<keep>` (dropped).
/// Rotation happens before a write that would cross `max_size`, so records are never split.
/// `file-rotate` does the renaming and pruning; the size policy stays here because its own
/// byte limits either split a record or let the file grow past the limit.
#[derive(Clone)]
pub struct RotatingFile {
    inner: Arc<Mutex<RotState>>,
}

struct RotState {
    file: FileRotate<AppendCount>,
    size: u64,
    max_size: u64,
}

impl RotatingFile {
    pub fn open(path: &Path, max_size: u64, keep: u32) -> Result<Self, LogError> {
        let err = |source| LogError::File {
            path: path.into(),
            source,
        };
        // Create and open it here first: `FileRotate` panics on a folder it cannot create and
        // drops records silently when it cannot open the file.
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        let size = open_options()
            .open(path)
            .map_err(err)?
            .metadata()
            .map_err(err)?
            .len();
        // An absolute path: `FileRotate` needs a parent folder, even for `agent.log`.
        let path = std::path::absolute(path).map_err(err)?;
        let file = FileRotate::new(
            path,
            AppendCount::new(keep as usize),
            ContentLimit::None,
            Compression::None,
            Some(open_options()),
        );
        Ok(Self {
            inner: Arc::new(Mutex::new(RotState {
                file,
                size,
                max_size,
            })),
        })
    }
}

/// Append-only and private (0600): scan paths and server URLs are nobody else's business.
fn open_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.read(true).create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut st = self.inner.lock();
        if st.size > 0 && st.size + buf.len() as u64 > st.max_size {
            st.file.rotate()?;
            st.size = 0;
        }
        st.file.write_all(buf)?;
        st.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.lock().file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_n_files() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("agent.log");
        let mut f = RotatingFile::open(&path, 100, 2).unwrap();
        for i in 0..10 {
            f.write_all(format!("{i:02} {}\n", "x".repeat(46)).as_bytes())
                .unwrap();
        }
        // 50-byte records, 100-byte files: 2 per file; current + .1 + .2 kept, older dropped
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
        assert!(
            std::fs::read_to_string(tmp.path().join("agent.log.1"))
                .unwrap()
                .starts_with("06")
        );
        assert!(
            std::fs::read_to_string(tmp.path().join("agent.log.2"))
                .unwrap()
                .starts_with("04")
        );
        assert!(!tmp.path().join("agent.log.3").exists());
    }

    #[cfg(unix)]
    #[test]
    fn log_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("logs/agent.log");
        let mut f = RotatingFile::open(&path, 10, 1).unwrap();
        f.write_all(b"first record\n").unwrap();
        f.write_all(b"second record\n").unwrap();
        for p in [path.clone(), tmp.path().join("logs/agent.log.1")] {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
    }

    /// A restart appends to the existing file and counts its size toward the limit.
    #[test]
    fn reopening_appends_and_counts_the_existing_size() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("agent.log");
        RotatingFile::open(&path, 100, 1)
            .unwrap()
            .write_all(&[b'a'; 60])
            .unwrap();
        let mut f = RotatingFile::open(&path, 100, 1).unwrap();
        f.write_all(&[b'b'; 30]).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 90);
        f.write_all(&[b'c'; 30]).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), vec![b'c'; 30]);
        assert_eq!(
            std::fs::metadata(tmp.path().join("agent.log.1"))
                .unwrap()
                .len(),
            90
        );
    }

    /// `keep = 0`: rotation starts the file afresh and keeps no old file.
    #[test]
    fn keep_zero_keeps_only_the_current_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("agent.log");
        let mut f = RotatingFile::open(&path, 10, 0).unwrap();
        f.write_all(b"0123456789").unwrap();
        f.write_all(b"abc").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abc");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn unopenable_file_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let blocker = tmp.path().join("file");
        std::fs::write(&blocker, b"").unwrap();
        let err = RotatingFile::open(&blocker.join("agent.log"), 10, 1)
            .err()
            .unwrap();
        assert!(matches!(err, LogError::File { .. }), "{err}");
    }
}
