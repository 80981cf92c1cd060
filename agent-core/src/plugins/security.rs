//! File-level trust: ownership/permission checks, content hashing, the private cache.
//!
//! Invariants:
//! * The agent runs privileged; a plugin folder or file that someone else can write is a
//!   privilege escalation. On Unix, the folder, every folder above it, and every plugin file
//!   must be owned by root or by the agent's effective user, and must not be writable by group
//!   or others (a root-owned sticky folder such as `/tmp` is accepted as an ancestor: nobody
//!   else can rename what is in it). These checks run before any byte of the plugin is mapped.
//!   On Windows, the owner and the DACL of the folder and files are checked the same way
//!   (`security_windows`); ancestors are not checked there yet.
//! * A plugin file is opened once with `O_NOFOLLOW` (a symlink is refused); the checks run on
//!   that descriptor (`fstat`), and the bytes hashed and copied to the cache are read from it,
//!   so no path lookup can be swapped between the check and the read.
//! * The hash names exactly the code that is loaded: a cache copy is used only if its own
//!   bytes hash to the original's hash (checked on every use, and right after writing it).
//!   Files are streamed (64 KiB at a time): a plugin of megabytes costs no megabyte buffer.
//! * Cache files are written to a temporary name then renamed: a loaded copy is never
//!   overwritten in place (that segfaults the process that mapped it).

use std::fs;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Why a path is not trusted, or a cache operation failed. The message says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{path}: writable by group or others (mode {mode:04o}); run `chmod go-w {path}`")]
    Writable { path: String, mode: u32 },
    #[error(
        "{path}: owned by uid {uid}, expected root or the agent's user (uid {euid}); \
         run `chown root {path}`"
    )]
    Owner { path: String, uid: u32, euid: u32 },
    #[error("{path}: owned by {sid}, expected SYSTEM, Administrators or the agent's user")]
    AclOwner { path: String, sid: String },
    #[error("{path}: {sid} may write to it (access mask {mask:#x}); remove that permission")]
    AclWritable {
        path: String,
        sid: String,
        mask: u32,
    },
    #[error("{path}: no DACL (everyone has full access)")]
    NoDacl { path: String },
    #[error("{path}: not a regular file")]
    NotAFile { path: String },
    #[error("{path}: a symbolic link; plugin files are never followed, copy the file instead")]
    Symlink { path: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrustError + '_ {
    move |source| TrustError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Check ownership and write permissions of the plugins folder or of one plugin file
/// (following symlinks: what matters is what gets loaded).
pub fn check_trusted(path: &Path) -> Result<(), TrustError> {
    let meta = fs::metadata(path).map_err(io_err(path))?;
    check_meta(path, &meta)
}

/// [`check_trusted`] on `dir` and on every folder above it (resolved): whoever can write a
/// parent can swap the whole folder.
pub fn check_trusted_dir(dir: &Path) -> Result<(), TrustError> {
    check_trusted(dir)?;
    check_ancestors(dir)
}

#[cfg(unix)]
fn check_ancestors(path: &Path) -> Result<(), TrustError> {
    use std::os::unix::fs::MetadataExt;
    let real = fs::canonicalize(path).map_err(io_err(path))?;
    for ancestor in real.ancestors().skip(1) {
        let meta = fs::metadata(ancestor).map_err(io_err(ancestor))?;
        // A root-owned sticky folder (/tmp): others may create entries, not replace ours.
        let sticky_root = meta.uid() == 0 && meta.mode() & 0o1000 != 0;
        if sticky_root {
            continue;
        }
        check_meta(ancestor, &meta)?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_ancestors(_path: &Path) -> Result<(), TrustError> {
    Ok(())
}

/// Open a plugin file without following a symlink and check the open descriptor (owner,
/// mode, regular file). Read it from this descriptor only: the path may change meanwhile.
fn open_trusted_file(path: &Path) -> Result<fs::File, TrustError> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK: a FIFO planted in place of the file does not hang the open.
        options.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(|e| {
        #[cfg(unix)]
        if e.raw_os_error() == Some(libc::ELOOP) {
            return TrustError::Symlink {
                path: path.display().to_string(),
            };
        }
        io_err(path)(e)
    })?;
    let meta = file.metadata().map_err(io_err(path))?;
    if !meta.is_file() {
        return Err(TrustError::NotAFile {
            path: path.display().to_string(),
        });
    }
    check_meta(path, &meta)?;
    Ok(file)
}

#[cfg(unix)]
fn check_meta(path: &Path, meta: &fs::Metadata) -> Result<(), TrustError> {
    use std::os::unix::fs::MetadataExt;
    let shown = path.display().to_string();
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(TrustError::Writable { path: shown, mode });
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != 0 && meta.uid() != euid {
        return Err(TrustError::Owner {
            path: shown,
            uid: meta.uid(),
            euid,
        });
    }
    Ok(())
}

#[cfg(windows)]
fn check_meta(path: &Path, _meta: &fs::Metadata) -> Result<(), TrustError> {
    super::security_windows::check(path)
}

#[cfg(not(any(unix, windows)))]
fn check_meta(_path: &Path, _meta: &fs::Metadata) -> Result<(), TrustError> {
    Ok(())
}

/// Create the cache folder (0700), or tighten an existing one we own; refuse one owned by
/// someone else.
pub fn prepare_cache_dir(dir: &Path) -> Result<PathBuf, TrustError> {
    if !dir.exists() {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(dir).map_err(io_err(dir))?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let meta = fs::metadata(dir).map_err(io_err(dir))?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        if meta.uid() != euid {
            return Err(TrustError::Owner {
                path: dir.display().to_string(),
                uid: meta.uid(),
                euid,
            });
        }
        if meta.mode() & 0o077 != 0 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))?;
        }
    }
    fs::canonicalize(dir).map_err(io_err(dir))
}

/// A plugin file read once, hashed and copied into the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedCopy {
    /// Full lowercase hex SHA-256 of the content.
    pub hash: String,
    /// Absolute path of the private copy (the only path ever loaded).
    pub path: PathBuf,
}

/// SHA-256 (lowercase hex) of what `reader` yields; a copy of it goes to `sink` if given.
fn sha256_stream(
    mut reader: impl Read,
    mut sink: Option<&mut fs::File>,
) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        if let Some(out) = sink.as_deref_mut() {
            out.write_all(&buf[..n])?;
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Hash `original` and make sure `<cache>/<stem>-<hash16>.<ext>` holds those bytes.
/// `cache_dir` must come from [`prepare_cache_dir`] (absolute, private).
pub fn copy_to_cache(original: &Path, cache_dir: &Path) -> Result<CachedCopy, TrustError> {
    let mut source = open_trusted_file(original)?;
    let hash = sha256_stream(&mut source, None).map_err(io_err(original))?;
    let stem = original
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into());
    let ext = original
        .extension()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let path = cache_dir.join(format!("{stem}-{}.{ext}", &hash[..16]));

    // Reuse an existing copy only if it still holds exactly these bytes.
    if let Ok(existing) = fs::File::open(&path)
        && sha256_stream(existing, None).is_ok_and(|h| h == hash)
    {
        return Ok(CachedCopy { hash, path });
    }

    let mut write = || -> std::io::Result<()> {
        // A fresh random name next to the target, removed by tempfile if anything fails.
        let prefix = format!(".{stem}-{}.", &hash[..16]);
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(fs::Permissions::from_mode(0o500));
        }
        let mut file = builder.tempfile_in(cache_dir)?;
        // No fsync: a copy damaged by a power loss fails the hash check above and is rewritten.
        // The same descriptor, read again from the start: what was checked is what is copied.
        source.seek(std::io::SeekFrom::Start(0))?;
        let copied = sha256_stream(&mut source, Some(file.as_file_mut()))?;
        if copied != hash {
            return Err(std::io::Error::other(
                "the file changed while it was being copied; try again",
            ));
        }
        file.persist(&path)?;
        Ok(())
    };
    write().map_err(|e| TrustError::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    Ok(CachedCopy { hash, path })
}

/// Is this a plugin file name for this OS (`.so`, `.dylib`, `.dll`)?
pub fn has_library_extension(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case(std::env::consts::DLL_EXTENSION))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writable_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.so");
        fs::write(&f, b"x").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o664)).unwrap();
        let err = check_trusted(&f).unwrap_err().to_string();
        assert!(
            err.contains("writable by group or others (mode 0664)"),
            "{err}"
        );
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        check_trusted(&f).unwrap();
    }

    /// Issue 12 item 7: a symlinked plugin file is not followed, even to a trusted file.
    #[test]
    fn a_symlinked_plugin_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = prepare_cache_dir(&dir.path().join("cache")).unwrap();
        let link = dir.path().join("libx.so");
        std::os::unix::fs::symlink("/usr/bin/true", &link).unwrap();
        let err = copy_to_cache(&link, &cache).unwrap_err().to_string();
        assert!(err.contains("a symbolic link"), "{err}");
        assert_eq!(fs::read_dir(&cache).unwrap().count(), 0);
    }

    /// Issue 12 item 7: a folder below one that another user can write is refused.
    #[test]
    fn a_plugins_folder_under_a_foreign_parent_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let parent = dir.path().join("parent");
        let plugins = parent.join("plugins");
        fs::create_dir_all(&plugins).unwrap();
        check_trusted_dir(&plugins).unwrap();
        std::os::unix::fs::chown(&parent, Some(65534), Some(65534)).unwrap();
        let err = check_trusted_dir(&plugins).unwrap_err().to_string();
        assert!(err.contains("owned by uid 65534"), "{err}");
        std::os::unix::fs::chown(&parent, Some(0), Some(0)).unwrap();
        fs::set_permissions(&parent, fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_trusted_dir(&plugins).unwrap_err().to_string();
        assert!(
            err.contains("writable by group or others (mode 0777)"),
            "{err}"
        );
    }

    #[test]
    fn cache_copy_is_content_addressed_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let cache = prepare_cache_dir(&dir.path().join("cache")).unwrap();
        assert_eq!(
            fs::metadata(&cache).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let f = dir.path().join("libx.so");
        fs::write(&f, b"one").unwrap();
        let a = copy_to_cache(&f, &cache).unwrap();
        assert!(a.path.is_absolute());
        assert_eq!(fs::read(&a.path).unwrap(), b"one");
        // SHA-256 of "one", as `sha256sum` prints it
        assert_eq!(
            a.hash,
            "7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed"
        );
        // same content: same copy; new content: new path, old copy untouched.
        assert_eq!(copy_to_cache(&f, &cache).unwrap(), a);
        fs::write(&f, b"two").unwrap();
        let b = copy_to_cache(&f, &cache).unwrap();
        assert_ne!(a.path, b.path);
        assert_eq!(fs::read(&a.path).unwrap(), b"one");
    }
}
