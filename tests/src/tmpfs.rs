//! A real small filesystem for full-disk tests: a tmpfs with a size limit on a temp dir.
//!
//! CI runs as root and can mount one; elsewhere the skip must be asked for
//! (`ARMADITO_SKIP_TMPFS=1`), so a machine that cannot mount never passes silently.

use std::path::Path;
use std::process::Command;

/// A mounted tmpfs, unmounted when dropped.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "32m"); `None` when it cannot and the skip was asked
    /// for (`what` names the case skipped); panics when it cannot and the skip was not asked.
    pub fn mount_or_skip(size: &str, what: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("mount point");
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .is_ok_and(|st| st.success());
        if mounted {
            return Some(Tmpfs { dir });
        }
        assert_eq!(
            std::env::var("ARMADITO_SKIP_TMPFS").as_deref(),
            Ok("1"),
            "cannot mount a tmpfs (needs root): run as root, or set ARMADITO_SKIP_TMPFS=1 to skip \
             {what}"
        );
        eprintln!("tmpfs not mountable: {what} skipped (ARMADITO_SKIP_TMPFS=1)");
        None
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}
