//! The VirusEvent spool: a hook clamd runs on every detection (on-demand and on-access)
//! appends one record to a file the agent reads with a cursor (push-style alerts).
//!
//! Record format, one per line: `A1 <unix time> <n>:<virus name> <m>:<file name>` where
//! `n`/`m` are byte lengths. Lengths make the record unambiguous whatever the names
//! contain (spaces, `:`, even newlines in file names).
//!
//! Invariants:
//! * The hook is a fixed script written by the plugin; the only values baked into it are
//!   the spool path, restricted to a safe character set, so neither clamd's `sh -c` nor
//!   the script can be steered by a configuration value.
//! * The spool directory belongs to clamd's user (the hook runs as that user and must
//!   create the spool after a rotation); the agent opens spool files with O_NOFOLLOW.
//! * A record that does not parse is skipped, never fatal.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// One spool record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolRecord {
    pub time: i64,
    pub virus: String,
    pub file: String,
}

/// Parse `<len>:<bytes>` at the start of `s`; returns the value and the rest.
fn take_counted(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = s.iter().position(|&b| b == b':')?;
    let len: usize = std::str::from_utf8(&s[..colon]).ok()?.parse().ok()?;
    let value = s.get(colon + 1..colon + 1 + len)?;
    Some((value, &s[colon + 1 + len..]))
}

/// Parse one record. Newlines inside a file name split the record across lines: callers
/// pass the bytes accumulated so far and get `Incomplete` until the record is whole.
pub fn parse_record(line: &[u8]) -> Parsed {
    let Some(rest) = line.strip_prefix(b"A1 ") else {
        return Parsed::Invalid;
    };
    let Some(space) = rest.iter().position(|&b| b == b' ') else {
        return Parsed::Invalid;
    };
    let Some(time) = std::str::from_utf8(&rest[..space])
        .ok()
        .and_then(|t| t.parse::<i64>().ok())
    else {
        return Parsed::Invalid;
    };
    let rest = &rest[space + 1..];
    let Some((virus, rest)) = take_counted(rest) else {
        return if rest.contains(&b':') {
            Parsed::Incomplete
        } else {
            Parsed::Invalid
        };
    };
    let Some(rest) = rest.strip_prefix(b" ") else {
        return Parsed::Invalid;
    };
    match take_counted(rest) {
        Some((file, [])) => Parsed::Record(SpoolRecord {
            time,
            virus: String::from_utf8_lossy(virus).into_owned(),
            file: String::from_utf8_lossy(file).into_owned(),
        }),
        Some(_) => Parsed::Invalid,
        None => Parsed::Incomplete,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Record(SpoolRecord),
    /// The record continues on the next line (a newline in the file name).
    Incomplete,
    Invalid,
}

/// Characters allowed in paths baked into the hook and into `VirusEvent`.
pub fn safe_path(p: &Path) -> bool {
    let s = p.to_string_lossy();
    p.is_absolute()
        && !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-' | b'+'))
}

/// The hook runs as clamd's user and only root may change it; the spool must be reachable by
/// clamd's user. Refused: a hook inside the spool folder (clamd's user owns that folder and
/// could swap the hook), a hook folder others can write, and a spool or hook below a folder
/// clamd's user cannot traverse (such as the agent's 0700 state folder), which would make
/// every event fail silently.
fn check_layout(hook: &Path, spool: &Path, owner: Option<(u32, u32)>) -> Result<(), HookError> {
    use std::os::unix::fs::MetadataExt;
    let spool_dir = spool.parent().unwrap_or(Path::new("/"));
    let hook_dir = hook.parent().unwrap_or(Path::new("/"));
    if hook_dir.starts_with(spool_dir) {
        return Err(HookError::Layout(format!(
            "the hook {} is inside the spool folder {}, which clamd's user can write: put the spool in a subfolder",
            hook.display(),
            spool_dir.display()
        )));
    }
    // Existing folders on the way: traversable by clamd's user (others, or owned by it),
    // when clamd runs as another user.
    let clamd_uid = owner.map(|(u, _)| u);
    for target in [hook_dir, spool_dir] {
        for dir in target.ancestors().filter(|_| clamd_uid.is_some()) {
            let Ok(meta) = fs::metadata(dir) else {
                continue; // created later, 0755
            };
            let reachable = meta.mode() & 0o001 != 0 || Some(meta.uid()) == clamd_uid;
            if !reachable {
                return Err(HookError::Layout(format!(
                    "{} (mode {:04o}) cannot be traversed by clamd's user, so clamd could not reach {}",
                    dir.display(),
                    meta.mode() & 0o7777,
                    target.display()
                )));
            }
        }
    }
    // The hook's folder and every folder above it: only root (or the agent's user) can
    // change them (a root-owned sticky folder such as /tmp is fine).
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    for dir in hook_dir.ancestors() {
        let Ok(meta) = fs::metadata(dir) else {
            continue;
        };
        if meta.uid() == 0 && meta.mode() & 0o1000 != 0 {
            continue;
        }
        if meta.mode() & 0o022 != 0 || (meta.uid() != 0 && meta.uid() != euid) {
            return Err(HookError::Layout(format!(
                "{} (uid {}, mode {:04o}) can be changed by another user, who could then replace the hook {}",
                dir.display(),
                meta.uid(),
                meta.mode() & 0o7777,
                hook.display()
            )));
        }
    }
    Ok(())
}

/// The hook script (POSIX sh). `LC_ALL=C` makes `${#v}` count bytes.
pub fn hook_script(spool: &Path) -> String {
    format!(
        "#!/bin/sh\n\
         # Installed by armadito-agent (ClamAV backend). clamd runs it on each detection\n\
         # (VirusEvent); it appends one record to the spool the agent reads:\n\
         #   A1 <unix time> <bytes>:<virus name> <bytes>:<file name>\n\
         LC_ALL=C\n\
         export LC_ALL\n\
         v=${{CLAM_VIRUSEVENT_VIRUSNAME-}}\n\
         f=${{CLAM_VIRUSEVENT_FILENAME-}}\n\
         printf 'A1 %s %s:%s %s:%s\\n' \"$(date +%s)\" \"${{#v}}\" \"$v\" \"${{#f}}\" \"$f\" >> '{}'\n",
        spool.display()
    )
}

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error(
        "unsafe path for the VirusEvent hook or spool: {0} (allowed: absolute, [A-Za-z0-9/._+-])"
    )]
    UnsafePath(String),
    #[error(
        "clamd.conf already runs VirusEvent {0:?}; not replaced (invoke with {{\"force\": true}} to replace it)"
    )]
    Taken(String),
    #[error("unsafe VirusEvent layout: {0}")]
    Layout(String),
    #[error("cannot set up {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// `uid`/`gid` of a user from `/etc/passwd`-formatted text.
pub fn lookup_user(passwd: &str, name: &str) -> Option<(u32, u32)> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

/// Write the hook script and prepare the spool so that `owner` (clamd's user) can append.
pub fn install(hook: &Path, spool: &Path, owner: Option<(u32, u32)>) -> Result<(), HookError> {
    for p in [hook, spool] {
        if !safe_path(p) {
            return Err(HookError::UnsafePath(p.display().to_string()));
        }
    }
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| HookError::Io { path, source }
    };
    check_layout(hook, spool, owner)?;
    // Hook directory: readable and traversable by clamd's user.
    if let Some(dir) = hook.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(io(dir))?;
    }
    let spool_dir = spool.parent().unwrap_or(Path::new("/"));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(spool_dir)
        .map_err(io(spool_dir))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(spool_dir, Some(uid), Some(gid)).map_err(io(spool_dir))?;
    }
    // The spool itself, created now so the agent finds it even before the first event.
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW)
        .open(spool)
        .map_err(io(spool))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(&file, Some(uid), Some(gid)).map_err(io(spool))?;
    }
    // The hook: written beside, then renamed into place.
    let tmp = hook.with_extension("tmp-armadito");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(hook_script(spool).as_bytes())
        .map_err(io(&tmp))?;
    f.set_permissions(fs::Permissions::from_mode(0o755))
        .map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, hook).map_err(io(hook))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn records_parse_whatever_the_names_contain() {
        let r = parse_record(b"A1 1700000000 9:Eicar-Sig 14:/tmp/a b:c.com");
        assert_eq!(
            r,
            Parsed::Record(SpoolRecord {
                time: 1_700_000_000,
                virus: "Eicar-Sig".into(),
                file: "/tmp/a b:c.com".into()
            })
        );
        assert_eq!(parse_record(b"A1 1 3:Sig 9:/tmp/a"), Parsed::Incomplete);
        match parse_record(b"A1 1 3:Sig 12:/tmp/a\nb.txt") {
            Parsed::Record(r) => assert_eq!(r.file, "/tmp/a\nb.txt"),
            other => panic!("{other:?}"),
        }
        assert_eq!(parse_record(b"garbage"), Parsed::Invalid);
        assert_eq!(parse_record(b"A1 x 3:Sig 1:/"), Parsed::Invalid);
        assert_eq!(parse_record(b"A1 1 3:Sig 1:/extra"), Parsed::Invalid);
    }

    /// Found by the fuzzer (clamav_spool): lengths count raw bytes; bytes that are not UTF-8
    /// become U+FFFD (3 bytes each) in the record, so the decoded text can be longer than
    /// the input. One byte never gives more than one character.
    #[test]
    fn names_that_are_not_utf8_are_counted_in_bytes_and_decoded_lossily() {
        let input = b"A1 4 9:iV\x14\xad\xad\xad\xad\xad\xad 0:";
        match parse_record(input) {
            Parsed::Record(r) => {
                assert_eq!(
                    r.virus,
                    "iV\u{14}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}"
                );
                assert_eq!(r.file, "");
                assert!(r.virus.len() > input.len() - 10);
                assert!(r.virus.chars().count() + r.file.chars().count() <= input.len());
            }
            other => panic!("{other:?}"),
        }
    }

    /// Issue 12 item 13: a hook or spool clamd's user cannot reach (the agent's 0700 state
    /// folder, the old default) or a hook it could replace is refused.
    #[test]
    fn unreachable_or_replaceable_layouts_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("state");
        fs::create_dir(&private).unwrap();
        fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
        let clamav = Some((65534, 65534));
        let e = install(
            &private.join("clamav/virusevent-hook.sh"),
            &private.join("clamav/spool/events"),
            clamav,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("cannot be traversed by clamd's user"), "{e}");
        let open = dir.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
        let e = install(&open.join("hook.sh"), &open.join("events"), clamav)
            .unwrap_err()
            .to_string();
        assert!(e.contains("inside the spool folder"), "{e}");
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
        let e = install(&open.join("hook.sh"), &open.join("spool/events"), clamav)
            .unwrap_err()
            .to_string();
        assert!(e.contains("can be changed by another user"), "{e}");
        fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
        install(&open.join("hook.sh"), &open.join("spool/events"), clamav).unwrap();
    }

    #[test]
    fn hook_script_writes_parseable_records() {
        let dir = tempfile::tempdir().unwrap();
        // tempdir names are safe; make sure anyway.
        let hook = dir.path().join("hook.sh");
        let spool = dir.path().join("spool/events");
        assert!(safe_path(&hook) && safe_path(&spool), "{}", hook.display());
        install(&hook, &spool, None).unwrap();
        let nasty = "/tmp/x y/'$(touch pwned)'/é.com";
        let status = Command::new(&hook)
            .env("CLAM_VIRUSEVENT_VIRUSNAME", "Test.EICAR")
            .env("CLAM_VIRUSEVENT_FILENAME", nasty)
            .current_dir(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        assert!(!dir.path().join("pwned").exists());
        let text = fs::read(&spool).unwrap();
        let line = text.strip_suffix(b"\n").unwrap();
        match parse_record(line) {
            Parsed::Record(r) => {
                assert_eq!(r.virus, "Test.EICAR");
                assert_eq!(r.file, nasty);
                assert!((r.time - crate::timeutil::now()).abs() < 60);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unsafe_paths_are_refused() {
        assert!(!safe_path(Path::new("/tmp/a b")));
        assert!(!safe_path(Path::new("/tmp/a;rm")));
        assert!(!safe_path(Path::new("relative")));
        assert!(matches!(
            install(Path::new("/tmp/x'y"), Path::new("/tmp/s"), None),
            Err(HookError::UnsafePath(_))
        ));
    }

    #[test]
    fn passwd_lookup() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\nclamav:x:102:105::/var/lib/clamav:/bin/false\n";
        assert_eq!(lookup_user(passwd, "clamav"), Some((102, 105)));
        assert_eq!(lookup_user(passwd, "nobody"), None);
    }
}
