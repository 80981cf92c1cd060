//! Plugin trust on Windows: the ACL counterpart of the Unix owner/mode checks in `security`.
//!
//! Invariants:
//! * The plugins folder and every plugin file must be owned by SYSTEM, Administrators,
//!   TrustedInstaller or the agent's own user, and no other principal may hold a write-type
//!   right (write/append data, write EA or attributes, delete, delete child, WRITE_DAC,
//!   WRITE_OWNER, GENERIC_WRITE/ALL) through an allow ACE that applies to the object itself.
//! * A missing DACL grants everyone full access: refused.
//! * The decision ([`judge`]) is plain data and tested on every OS; only the reading of the
//!   security descriptor ([`check`]) is Windows code.

/// Write-type access rights (winnt.h / FILE_ACCESS_RIGHTS).
pub const WRITE_RIGHTS: u32 = 0x0000_0002 // FILE_WRITE_DATA / FILE_ADD_FILE
    | 0x0000_0004 // FILE_APPEND_DATA / FILE_ADD_SUBDIRECTORY
    | 0x0000_0010 // FILE_WRITE_EA
    | 0x0000_0040 // FILE_DELETE_CHILD
    | 0x0000_0100 // FILE_WRITE_ATTRIBUTES
    | 0x0001_0000 // DELETE
    | 0x0004_0000 // WRITE_DAC
    | 0x0008_0000 // WRITE_OWNER
    | 0x1000_0000 // GENERIC_ALL
    | 0x4000_0000; // GENERIC_WRITE

pub const SYSTEM: &str = "S-1-5-18";
pub const ADMINISTRATORS: &str = "S-1-5-32-544";
pub const TRUSTED_INSTALLER: &str =
    "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464";

/// One ACE of a DACL, reduced to what the decision needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ace {
    /// An access-allowed ACE (deny ACEs only take rights away).
    pub allow: bool,
    /// INHERIT_ONLY: applies to children created later, not to this object.
    pub inherit_only: bool,
    pub mask: u32,
    /// The principal as a string SID (`S-1-5-18`).
    pub sid: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclProblem {
    Owner(String),
    NoDacl,
    Writable { sid: String, mask: u32 },
}

fn trusted(sid: &str, agent_user: Option<&str>) -> bool {
    [SYSTEM, ADMINISTRATORS, TRUSTED_INSTALLER].contains(&sid) || agent_user == Some(sid)
}

/// The trust decision for one path.
pub fn judge(
    owner: &str,
    dacl: Option<&[Ace]>,
    agent_user: Option<&str>,
) -> Result<(), AclProblem> {
    if !trusted(owner, agent_user) {
        return Err(AclProblem::Owner(owner.to_string()));
    }
    let dacl = dacl.ok_or(AclProblem::NoDacl)?;
    for ace in dacl {
        if ace.allow
            && !ace.inherit_only
            && ace.mask & WRITE_RIGHTS != 0
            && !trusted(&ace.sid, agent_user)
        {
            return Err(AclProblem::Writable {
                sid: ace.sid.clone(),
                mask: ace.mask,
            });
        }
    }
    Ok(())
}

#[cfg(windows)]
pub use ffi::check;

#[cfg(windows)]
mod ffi {
    use std::os::windows::ffi::OsStrExt;
    use std::path::Path;
    use std::ptr::null_mut;

    use windows_sys::Win32::Foundation::{CloseHandle, HANDLE, LocalFree};
    use windows_sys::Win32::Security::Authorization::{
        ConvertSidToStringSidW, GetNamedSecurityInfoW, SE_FILE_OBJECT,
    };
    use windows_sys::Win32::Security::{
        ACCESS_ALLOWED_ACE, ACE_HEADER, ACL, ACL_SIZE_INFORMATION, AclSizeInformation,
        DACL_SECURITY_INFORMATION, GetAce, GetAclInformation, GetTokenInformation,
        INHERIT_ONLY_ACE, OWNER_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, PSID, TOKEN_QUERY,
        TOKEN_USER, TokenUser,
    };
    use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

    use super::{Ace, AclProblem, judge};
    use crate::plugins::security::TrustError;

    /// ACCESS_ALLOWED_ACE_TYPE and ACCESS_ALLOWED_CALLBACK_ACE_TYPE share the layout
    /// header, mask, SID.
    const ALLOWED_TYPES: [u8; 2] = [0, 9];

    /// `S-1-…` of a SID. SAFETY: `sid` is a valid SID pointer.
    unsafe fn sid_string(sid: PSID) -> Option<String> {
        let mut wide: *mut u16 = null_mut();
        // SAFETY: valid SID in, a LocalAlloc'ed string out that we free below.
        if unsafe { ConvertSidToStringSidW(sid, &mut wide) } == 0 || wide.is_null() {
            return None;
        }
        let mut len = 0;
        // SAFETY: the string is NUL-terminated.
        while unsafe { *wide.add(len) } != 0 {
            len += 1;
        }
        // SAFETY: `len` u16 values were just read.
        let s = String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(wide, len) });
        // SAFETY: allocated by ConvertSidToStringSidW.
        unsafe { LocalFree(wide.cast()) };
        Some(s)
    }

    /// The string SID of the user the agent runs as.
    fn agent_user() -> Option<String> {
        let mut token: HANDLE = null_mut();
        // SAFETY: pseudo-handle of the current process; token closed below.
        if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
            return None;
        }
        let mut buf = vec![0u64; 128]; // 1 KiB, 8-aligned: room for TOKEN_USER and its SID
        let mut needed = 0u32;
        // SAFETY: buffer of the stated size; the token is open.
        let ok = unsafe {
            GetTokenInformation(
                token,
                TokenUser,
                buf.as_mut_ptr().cast(),
                (buf.len() * 8) as u32,
                &mut needed,
            )
        };
        // SAFETY: opened above.
        unsafe { CloseHandle(token) };
        if ok == 0 {
            return None;
        }
        // SAFETY: GetTokenInformation filled a TOKEN_USER at the start of the buffer.
        let user = unsafe { &*(buf.as_ptr() as *const TOKEN_USER) };
        // SAFETY: the SID lives in `buf`, still alive.
        unsafe { sid_string(user.User.Sid) }
    }

    /// Reads the owner and DACL of `path` and judges them.
    pub fn check(path: &Path) -> Result<(), TrustError> {
        let shown = path.display().to_string();
        let wide: Vec<u16> = path.as_os_str().encode_wide().chain(Some(0)).collect();
        let mut owner: PSID = null_mut();
        let mut dacl: *mut ACL = null_mut();
        let mut sd: PSECURITY_DESCRIPTOR = null_mut();
        // SAFETY: NUL-terminated path; out-pointers valid; `sd` freed with LocalFree.
        let rc = unsafe {
            GetNamedSecurityInfoW(
                wide.as_ptr(),
                SE_FILE_OBJECT,
                OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION,
                &mut owner,
                null_mut(),
                &mut dacl,
                null_mut(),
                &mut sd,
            )
        };
        if rc != 0 {
            return Err(TrustError::Io {
                path: shown,
                source: std::io::Error::from_raw_os_error(rc as i32),
            });
        }
        // SAFETY: owner and dacl point into `sd`, alive until LocalFree below.
        let result = unsafe { judge_descriptor(owner, dacl) };
        // SAFETY: allocated by GetNamedSecurityInfoW.
        unsafe { LocalFree(sd) };
        result.map_err(|p| match p {
            AclProblem::Owner(sid) => TrustError::AclOwner { path: shown, sid },
            AclProblem::NoDacl => TrustError::NoDacl { path: shown },
            AclProblem::Writable { sid, mask } => TrustError::AclWritable {
                path: shown,
                sid,
                mask,
            },
        })
    }

    /// SAFETY: `owner` and `dacl` (may be null) come from one live security descriptor.
    unsafe fn judge_descriptor(owner: PSID, dacl: *mut ACL) -> Result<(), AclProblem> {
        let owner = if owner.is_null() {
            String::from("(none)")
        } else {
            // SAFETY: per the function contract.
            unsafe { sid_string(owner) }.unwrap_or_else(|| "(unreadable)".into())
        };
        if dacl.is_null() {
            return judge(&owner, None, agent_user().as_deref());
        }
        let mut info = ACL_SIZE_INFORMATION {
            AceCount: 0,
            AclBytesInUse: 0,
            AclBytesFree: 0,
        };
        // SAFETY: `dacl` is valid; `info` has the size announced.
        let ok = unsafe {
            GetAclInformation(
                dacl,
                (&mut info as *mut ACL_SIZE_INFORMATION).cast(),
                std::mem::size_of::<ACL_SIZE_INFORMATION>() as u32,
                AclSizeInformation,
            )
        };
        if ok == 0 {
            return Err(AclProblem::NoDacl);
        }
        let mut aces = Vec::new();
        for i in 0..info.AceCount {
            let mut ace: *mut core::ffi::c_void = null_mut();
            // SAFETY: index below AceCount.
            if unsafe { GetAce(dacl, i, &mut ace) } == 0 || ace.is_null() {
                continue;
            }
            // SAFETY: every ACE starts with an ACE_HEADER.
            let header = unsafe { *(ace as *const ACE_HEADER) };
            if !ALLOWED_TYPES.contains(&header.AceType) {
                // deny ACEs only remove rights; other types do not apply to files
                continue;
            }
            let allowed = ace as *const ACCESS_ALLOWED_ACE;
            // SAFETY: allowed ACE layout: header, mask, SID at SidStart.
            let (mask, sid) = unsafe {
                (
                    (*allowed).Mask,
                    sid_string(std::ptr::addr_of!((*allowed).SidStart) as PSID),
                )
            };
            aces.push(Ace {
                allow: true,
                inherit_only: u32::from(header.AceFlags) & INHERIT_ONLY_ACE != 0,
                mask,
                sid: sid.unwrap_or_else(|| "(unreadable)".into()),
            });
        }
        judge(&owner, Some(&aces), agent_user().as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ace(sid: &str, mask: u32) -> Ace {
        Ace {
            allow: true,
            inherit_only: false,
            mask,
            sid: sid.into(),
        }
    }

    const USERS: &str = "S-1-5-32-545";
    const READ_EXECUTE: u32 = 0x0012_00a9;

    #[test]
    fn program_files_like_acls_are_trusted() {
        let dacl = [
            ace(SYSTEM, 0x001f_01ff),
            ace(ADMINISTRATORS, 0x001f_01ff),
            ace(TRUSTED_INSTALLER, 0x001f_01ff),
            ace(USERS, READ_EXECUTE),
            Ace {
                inherit_only: true,
                ..ace("S-1-3-0", 0x1000_0000) // CREATOR OWNER, for children only
            },
        ];
        assert_eq!(judge(ADMINISTRATORS, Some(&dacl), None), Ok(()));
        assert_eq!(
            judge(
                "S-1-5-21-1-2-3-1000",
                Some(&dacl),
                Some("S-1-5-21-1-2-3-1000")
            ),
            Ok(())
        );
    }

    #[test]
    fn other_owners_writers_and_missing_dacls_are_refused() {
        let user = "S-1-5-21-1-2-3-1001";
        assert_eq!(
            judge(user, Some(&[]), None),
            Err(AclProblem::Owner(user.into()))
        );
        assert_eq!(judge(SYSTEM, None, None), Err(AclProblem::NoDacl));
        for right in [
            0x2,
            0x4,
            0x40,
            0x1_0000,
            0x4_0000,
            0x8_0000,
            0x1000_0000,
            0x4000_0000,
        ] {
            let dacl = [ace(SYSTEM, 0x001f_01ff), ace(USERS, READ_EXECUTE | right)];
            assert_eq!(
                judge(SYSTEM, Some(&dacl), None),
                Err(AclProblem::Writable {
                    sid: USERS.into(),
                    mask: READ_EXECUTE | right
                }),
                "{right:#x}"
            );
        }
        let deny = Ace {
            allow: false,
            ..ace("S-1-1-0", 0x4000_0000)
        };
        assert_eq!(
            judge(SYSTEM, Some(&[deny]), None),
            Ok(()),
            "deny ACEs take rights away"
        );
    }
}
