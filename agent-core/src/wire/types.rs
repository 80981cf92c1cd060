//! Value types whose format the server validates. Each one can only hold a value the server accepts.

use std::fmt;

use serde::{Serialize, Serializer};

/// Why a value cannot go on the wire. Messages are meant for a human reading the agent's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error(
        "invalid machine UUID {0:?}: expected 8-4-4-4-12 uppercase letters/digits, e.g. 4C4C4544-0033-4A10-8051-B4C04F4E4B32"
    )]
    Uuid(String),
    #[error("machine UUID {0} is a placeholder (all zeros or all F), not a real machine identity")]
    PlaceholderUuid(String),
    #[error(
        "invalid enrollment key format: expected 5 groups of 5 letters/digits separated by '-', e.g. AAAAF-111AF-DZ78F-EE78F-DDD1F"
    )]
    Key,
    #[error("timestamp {0} is not a 10-digit unix time (the server rejects it)")]
    Timestamp(i64),
    #[error("cannot encode the request body: {0}")]
    Encode(String),
    #[error("the server's reply is not what the protocol says: {0}")]
    Reply(String),
}

fn is_upper_alnum(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

fn groups_match(s: &str, lens: &[usize]) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == lens.len()
        && parts
            .iter()
            .zip(lens)
            .all(|(p, &n)| p.len() == n && is_upper_alnum(p))
}

/// The machine identity the server keys agents by (SMBIOS UUID, upper-cased).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MachineUuid(String);

impl MachineUuid {
    /// Accepts any case and surrounding whitespace (SMBIOS and `dmidecode` differ), stores uppercase.
    /// Rejects the all-zero and all-F placeholders that firmware uses when it has no UUID.
    pub fn parse(raw: &str) -> Result<Self, WireError> {
        let up = raw.trim().to_ascii_uppercase();
        if !groups_match(&up, &[8, 4, 4, 4, 12]) {
            return Err(WireError::Uuid(raw.trim().to_string()));
        }
        let hex: String = up.chars().filter(|c| *c != '-').collect();
        if hex.chars().all(|c| c == '0') || hex.chars().all(|c| c == 'F') {
            return Err(WireError::PlaceholderUuid(up));
        }
        Ok(Self(up))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MachineUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for MachineUuid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// An enrollment key. It is a shared secret: its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrollmentKey(String);

impl EnrollmentKey {
    /// Trims, then validates. Returns whether the input had to be upper-cased, so the caller can
    /// warn (the server only accepts uppercase, the old agent sent lowercase keys as they were).
    pub fn parse(raw: &str) -> Result<(Self, bool), WireError> {
        let trimmed = raw.trim();
        let up = trimmed.to_ascii_uppercase();
        if !groups_match(&up, &[5, 5, 5, 5, 5]) {
            return Err(WireError::Key);
        }
        let changed = up != trimmed;
        Ok((Self(up), changed))
    }

    /// The key itself, for the request body only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for EnrollmentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EnrollmentKey(***)")
    }
}

impl Serialize for EnrollmentKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Unix seconds where the server runs `formatDate`: exactly ten digits (2001-09-09 .. 2286-11-20).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct UnixTime(i64);

impl UnixTime {
    pub const MIN: i64 = 1_000_000_000;
    pub const MAX: i64 = 9_999_999_999;

    pub fn new(secs: i64) -> Result<Self, WireError> {
        if (Self::MIN..=Self::MAX).contains(&secs) {
            Ok(Self(secs))
        } else {
            Err(WireError::Timestamp(secs))
        }
    }

    /// The current time (the system clock is always past 2001 on a machine that can talk TLS).
    pub fn now() -> Self {
        Self(now_secs().clamp(Self::MIN, Self::MAX))
    }

    pub fn secs(self) -> i64 {
        self.0
    }

    /// `@<secs>`: the `strtotime()` form the server converts correctly (scan `start_time`).
    pub fn strtotime_form(self) -> String {
        format!("@{}", self.0)
    }

    /// `YYYY-MM-DD HH:MM:SS` in UTC: the MySQL DATETIME literal the server stores raw (scan `end_time`).
    pub fn mysql_datetime_utc(self) -> String {
        match chrono::DateTime::from_timestamp(self.0, 0) {
            Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
            // Unreachable: ten-digit seconds (2001..2286) are well inside chrono's range.
            None => String::new(),
        }
    }
}

/// Seconds since the epoch from the system clock; 0 if the clock is before 1970.
pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A scan duration, sent as `PT<h>H<m>M<s>S` with integer fields (PHP `DateInterval` rejects
/// fractions: the old agent's `PT0H1.5M30S` made the server answer 500).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScanDuration(pub u64);

impl fmt::Display for ScanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        write!(f, "PT{}H{}M{}S", s / 3600, (s % 3600) / 60, s % 60)
    }
}

impl Serialize for ScanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_is_uppercased_trimmed_and_checked() {
        let u = MachineUuid::parse(" 4c4c4544-0033-4a10-8051-b4c04f4e4b32\n").unwrap();
        assert_eq!(u.as_str(), "4C4C4544-0033-4A10-8051-B4C04F4E4B32");
        assert!(matches!(
            MachineUuid::parse("4C4C4544-0033-4A10-8051"),
            Err(WireError::Uuid(_))
        ));
        assert!(matches!(
            MachineUuid::parse("4C4C4544_0033-4A10-8051-B4C04F4E4B32"),
            Err(WireError::Uuid(_))
        ));
        assert!(matches!(
            MachineUuid::parse("00000000-0000-0000-0000-000000000000"),
            Err(WireError::PlaceholderUuid(_))
        ));
        assert!(matches!(
            MachineUuid::parse("ffffffff-ffff-ffff-ffff-ffffffffffff"),
            Err(WireError::PlaceholderUuid(_))
        ));
    }

    #[test]
    fn key_is_trimmed_uppercased_and_hidden() {
        let (k, changed) = EnrollmentKey::parse(" 0RV2V-2RYTX-NX4OW-7LARZ-KZQAJ\n").unwrap();
        assert_eq!(k.expose(), "0RV2V-2RYTX-NX4OW-7LARZ-KZQAJ");
        assert!(!changed);
        let (k, changed) = EnrollmentKey::parse("0rv2v-2rytx-nx4ow-7larz-kzqaj").unwrap();
        assert_eq!(k.expose(), "0RV2V-2RYTX-NX4OW-7LARZ-KZQAJ");
        assert!(changed);
        assert_eq!(format!("{k:?}"), "EnrollmentKey(***)");
        for bad in [
            "",
            "AAAAA-BBBBB-CCCCC-DDDDD",
            "AAAAA-BBBBB-CCCCC-DDDDD-EEEE!",
            "AAAAA BBBBB CCCCC DDDDD EEEEE",
            "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE\nAAAAA-BBBBB-CCCCC-DDDDD-EEEEE",
        ] {
            assert_eq!(EnrollmentKey::parse(bad), Err(WireError::Key), "{bad:?}");
        }
    }

    #[test]
    fn timestamps_must_have_ten_digits() {
        assert!(UnixTime::new(1_483_605_762).is_ok());
        assert_eq!(UnixTime::new(0), Err(WireError::Timestamp(0)));
        assert_eq!(
            UnixTime::new(999_999_999),
            Err(WireError::Timestamp(999_999_999))
        );
        assert_eq!(
            UnixTime::new(10_000_000_000),
            Err(WireError::Timestamp(10_000_000_000))
        );
        assert_eq!(UnixTime::now().secs().to_string().len(), 10);
    }

    #[test]
    fn datetime_forms_match_php() {
        let t = UnixTime::new(1_483_605_762).unwrap();
        assert_eq!(t.mysql_datetime_utc(), "2017-01-05 08:42:42");
        assert_eq!(t.strtotime_form(), "@1483605762");
        assert_eq!(
            UnixTime::new(1_479_467_793).unwrap().mysql_datetime_utc(),
            "2016-11-18 11:16:33"
        );
        // the ends of the ten-digit range
        assert_eq!(
            UnixTime::new(UnixTime::MIN).unwrap().mysql_datetime_utc(),
            "2001-09-09 01:46:40"
        );
        assert_eq!(
            UnixTime::new(UnixTime::MAX).unwrap().mysql_datetime_utc(),
            "2286-11-20 17:46:39"
        );
        // a leap day
        assert_eq!(
            UnixTime::new(1_709_164_800).unwrap().mysql_datetime_utc(),
            "2024-02-29 00:00:00"
        );
    }

    #[test]
    fn durations_have_integer_fields() {
        assert_eq!(ScanDuration(0).to_string(), "PT0H0M0S");
        assert_eq!(ScanDuration(90).to_string(), "PT0H1M30S");
        assert_eq!(ScanDuration(3725).to_string(), "PT1H2M5S");
        assert_eq!(ScanDuration(100 * 3600).to_string(), "PT100H0M0S");
    }
}
