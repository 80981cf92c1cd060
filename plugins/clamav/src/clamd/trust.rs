//! Whether a unix socket is clamd's, before the root agent hands it paths, descriptors or file
//! contents (FILDES/INSTREAM fallbacks).
//!
//! Invariant: a socket is trusted only when it belongs to root or to clamd.conf's `User`. Any
//! local user can create a socket where clamd's should be (clamd down, `LocalSocket` in a
//! shared folder such as `/tmp`); such a socket belongs to that user and is refused. TCP has no
//! owner to check: it is used only when configured (settings `tcp` or clamd.conf `TCPSocket`).

use std::ffi::CString;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// `Ok` when `path` is a socket owned by root or by `clamd_user` (a login name).
pub fn check_socket(path: &Path, clamd_user: Option<&str>) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.file_type().is_socket() {
        return Err("not a socket".into());
    }
    let owner = meta.uid();
    if owner == 0 {
        return Ok(());
    }
    let allowed = clamd_user.and_then(uid_of);
    if allowed == Some(owner) {
        return Ok(());
    }
    Err(format!(
        "owned by uid {owner}, neither root nor clamd's User ({}): not known to be clamd, refused",
        clamd_user.unwrap_or("not set in clamd.conf")
    ))
}

/// The uid of a login name, from the passwd database.
pub fn uid_of(name: &str) -> Option<u32> {
    let cname = CString::new(name).ok()?;
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` outlives `pwd`'s string fields, which
    // are not read.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then_some(pwd.pw_uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_known_and_junk_is_not() {
        assert_eq!(uid_of("root"), Some(0));
        assert_eq!(uid_of("no-such-user-xyz"), None);
        assert_eq!(uid_of("a\0b"), None);
    }

    #[test]
    fn a_regular_file_is_not_a_socket() {
        let f = tempfile::NamedTempFile::new().unwrap();
        assert_eq!(check_socket(f.path(), None), Err("not a socket".into()));
    }
}
