//! What both front-ends share for scans: the observer, path checks, file counting.

use std::path::Path;

use armadito_plugin_api::ScanProgress;

use crate::error::DefenderError;

/// Progress sink and cancel flag of a running scan.
pub trait Observer {
    /// Returns false once the agent asked to cancel.
    fn report(&self, progress: &ScanProgress) -> bool;
    fn cancelled(&self) -> bool;
}

/// An observer that never cancels (tests, local use).
pub struct Detached;

impl Observer for Detached {
    fn report(&self, _: &ScanProgress) -> bool {
        true
    }
    fn cancelled(&self) -> bool {
        false
    }
}

/// A scan path goes to the tool as one argv element; still refuse what no real path has and
/// what a Windows command line cannot carry unambiguously (`"`, control characters).
pub fn check_path(path: &str) -> Result<(), DefenderError> {
    if path.is_empty() || path.chars().any(|c| c.is_control() || c == '"') {
        return Err(DefenderError::Invalid(format!(
            "scan path {path:?} contains characters a Defender command line cannot carry"
        )));
    }
    Ok(())
}

/// Regular files under `path` (the path itself if it is a file), symlinks not followed. The
/// Defender tools do not print how many files they looked at; this is what they were asked to.
pub fn count_files(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_file() {
        return 1;
    }
    if !meta.is_dir() {
        return 0;
    }
    let mut count = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(t) if t.is_file() => count += 1,
                _ => {}
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_counts() {
        assert!(check_path("/tmp/a b").is_ok());
        assert!(check_path("C:\\x\" -Scan").is_err());
        assert!(check_path("/tmp/a\nb").is_err());
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("s")).unwrap();
        std::fs::write(dir.path().join("a"), "x").unwrap();
        std::fs::write(dir.path().join("s/b"), "x").unwrap();
        assert_eq!(count_files(dir.path()), 2);
        assert_eq!(count_files(&dir.path().join("a")), 1);
        assert_eq!(count_files(&dir.path().join("none")), 0);
    }
}
