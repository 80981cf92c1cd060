//! Logging setup: `tracing` to stderr (default) or to a size-rotated file, as text or JSON,
//! optionally to journald.
//!
//! Nothing secret is logged anywhere in the agent: the enrollment key and passwords live in
//! types whose `Debug` hides them, and request bodies of `POST api/agents` are never logged.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
#[derive(Clone)]
pub struct RotatingFile {
    inner: Arc<Mutex<RotState>>,
}

struct RotState {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    keep: u32,
}

impl RotatingFile {
    pub fn open(path: &Path, max_size: u64, keep: u32) -> Result<Self, LogError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| LogError::File {
                path: path.into(),
                source,
            })?;
        }
        let file = open_append(path).map_err(|source| LogError::File {
            path: path.into(),
            source,
        })?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Self {
            inner: Arc::new(Mutex::new(RotState {
                path: path.into(),
                file,
                size,
                max_size,
                keep,
            })),
        })
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o640);
    o.open(path)
}

impl RotState {
    fn rotate(&mut self) -> io::Result<()> {
        let name = |i: u32| PathBuf::from(format!("{}.{i}", self.path.display()));
        if self.keep == 0 {
            self.file = OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&self.path)?;
        } else {
            let _ = std::fs::remove_file(name(self.keep));
            for i in (1..self.keep).rev() {
                let _ = std::fs::rename(name(i), name(i + 1));
            }
            std::fs::rename(&self.path, name(1))?;
            self.file = open_append(&self.path)?;
        }
        self.size = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut st = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if st.size > 0 && st.size + buf.len() as u64 > st.max_size {
            st.rotate()?;
        }
        st.file.write_all(buf)?;
        st.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .file
            .flush()
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
}
