//! The machine identity the server keys agents by.
//!
//! Order: `uuid` in the config (an admin's explicit choice) > the hardware UUID (SMBIOS via
//! `/sys/class/dmi/id/product_uuid`, then `dmidecode -s system-uuid`; WMI on Windows) > a UUID
//! generated once and kept in the store. The one in use is recorded in the store, so
//! `status` can show it and a change (new motherboard, cloned VM) is noticed and logged.
//! Placeholder UUIDs (all 0 / all F, common on cheap boards and some VMs) are never used.

use std::process::Command;

use crate::store::{Store, StoreError};
use crate::wire::{MachineUuid, WireError};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("invalid `uuid` in the configuration: {0}")]
    Config(WireError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a UUID came from (stored as lowercase text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum UuidSource {
    Config,
    Smbios,
    Dmidecode,
    Wmi,
    Generated,
}

impl UuidSource {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Resolves the UUID to send, recording it in the store.
pub fn machine_uuid(configured: Option<&str>, store: &Store) -> Result<MachineUuid, IdentityError> {
    let hardware = if configured.is_some() {
        None
    } else {
        hardware_uuid()
    };
    resolve(configured, hardware, store)
}

/// [`machine_uuid`] with the hardware lookup already done (tests give any answer).
fn resolve(
    configured: Option<&str>,
    hardware: Option<(MachineUuid, UuidSource)>,
    store: &Store,
) -> Result<MachineUuid, IdentityError> {
    let (uuid, source) = match configured {
        Some(raw) => (
            MachineUuid::parse(raw).map_err(IdentityError::Config)?,
            UuidSource::Config,
        ),
        None => match hardware {
            Some(found) => found,
            None => match store
                .stored_uuid()?
                .and_then(|s| MachineUuid::parse(&s.uuid).ok())
            {
                Some(kept) => return Ok(kept),
                None => (generate(), UuidSource::Generated),
            },
        },
    };
    let stored = store.stored_uuid()?;
    match stored {
        Some(s) if s.uuid == uuid.as_str() => {}
        Some(s) if source != UuidSource::Generated => {
            tracing::warn!(old = %s.uuid, new = %uuid, source = source.as_str(),
                "machine UUID changed (new hardware, cloned machine or config): the server will see a new agent; re-enroll");
            store.save_uuid(uuid.as_str(), source.as_str())?;
        }
        _ => store.save_uuid(uuid.as_str(), source.as_str())?,
    }
    Ok(uuid)
}

fn generate() -> MachineUuid {
    let raw = uuid::Uuid::new_v4().hyphenated().to_string();
    // Our own value: a v4 UUID is 8-4-4-4-12 hex with a version nibble of 4, never a placeholder.
    MachineUuid::parse(&raw).expect("a freshly generated v4 UUID is well-formed")
}

/// The hardware UUID, if the platform exposes a real one to this process.
pub fn hardware_uuid() -> Option<(MachineUuid, UuidSource)> {
    #[cfg(target_os = "linux")]
    {
        if let Ok(raw) = std::fs::read_to_string("/sys/class/dmi/id/product_uuid")
            && let Ok(u) = MachineUuid::parse(&raw)
        {
            return Some((u, UuidSource::Smbios));
        }
    }
    #[cfg(unix)]
    {
        // By absolute path: never looked up in PATH.
        if let Some(u) = ["/usr/sbin/dmidecode", "/sbin/dmidecode"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .and_then(|p| run_for_uuid(p, &["-s", "system-uuid"]))
        {
            return Some((u, UuidSource::Dmidecode));
        }
    }
    #[cfg(windows)]
    {
        let script = "(Get-CimInstance -ClassName Win32_ComputerSystemProduct).UUID";
        if let Some(u) = run_for_uuid(
            "powershell.exe",
            &["-NoProfile", "-NonInteractive", "-Command", script],
        ) {
            return Some((u, UuidSource::Wmi));
        }
    }
    None
}

/// Runs a fixed argv (never a shell) and reads a UUID from the first line that holds one.
#[allow(dead_code)]
fn run_for_uuid(program: &str, args: &[&str]) -> Option<MachineUuid> {
    let out = Command::new(program)
        .args(args)
        .env_clear()
        .envs(
            ["SystemRoot", "PATH"]
                .iter()
                .filter_map(|k| std::env::var_os(k).map(|v| (*k, v))),
        )
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find_map(|l| MachineUuid::parse(l).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored spelling of each source (the `identity.source` column).
    #[test]
    fn uuid_sources_are_stored_lowercase() {
        use UuidSource::*;
        let names: Vec<&str> = [Config, Smbios, Dmidecode, Wmi, Generated]
            .into_iter()
            .map(UuidSource::as_str)
            .collect();
        assert_eq!(names, ["config", "smbios", "dmidecode", "wmi", "generated"]);
    }

    #[test]
    fn configured_uuid_wins_and_is_recorded() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let u = machine_uuid(Some("4c4c4544-0033-4a10-8051-b4c04f4e4b32"), &store).unwrap();
        assert_eq!(u.as_str(), "4C4C4544-0033-4A10-8051-B4C04F4E4B32");
        let s = store.stored_uuid().unwrap().unwrap();
        assert_eq!(
            (s.uuid.as_str(), s.source.as_str()),
            ("4C4C4544-0033-4A10-8051-B4C04F4E4B32", "config")
        );
        assert!(matches!(
            machine_uuid(Some("00000000-0000-0000-0000-000000000000"), &store),
            Err(IdentityError::Config(_))
        ));
    }

    #[test]
    fn generated_uuid_is_stable_when_no_hardware_uuid() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let a = resolve(None, None, &store).unwrap();
        let b = resolve(None, None, &store).unwrap();
        assert_eq!(a, b);
        assert_eq!(store.stored_uuid().unwrap().unwrap().source, "generated");

        // A hardware UUID showing up later (or a new board) replaces it, and is recorded.
        let hw = MachineUuid::parse("4C4C4544-0033-4A10-8051-B4C04F4E4B32").unwrap();
        let c = resolve(None, Some((hw.clone(), UuidSource::Smbios)), &store).unwrap();
        assert_eq!(c, hw);
        assert_ne!(c, a);
        let s = store.stored_uuid().unwrap().unwrap();
        assert_eq!(
            (s.uuid.as_str(), s.source.as_str()),
            (hw.as_str(), "smbios")
        );
        // And the configured one wins over both.
        let d = resolve(
            Some("11111111-2222-4333-8444-555555555555"),
            Some((hw, UuidSource::Smbios)),
            &store,
        )
        .unwrap();
        assert_eq!(d.as_str(), "11111111-2222-4333-8444-555555555555");
    }
}
