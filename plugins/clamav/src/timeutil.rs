//! Time helpers for the text clamd prints.
//!
//! Invariants:
//! * clamd formats times with `ctime()`, i.e. in the host's *local* time zone and without a
//!   zone marker, so converting them needs the host's zone rules (`TZ` or /etc/localtime, read
//!   by `chrono` as the C library reads them). Both sides run on the same host.
//! * Calendar arithmetic is `chrono`'s; this module only reads the text.
//! * Parsers return `None` on anything unexpected; they never panic on input.

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{Local, NaiveDate, NaiveDateTime, TimeZone};

/// Current unix time in seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Current unix time with sub-second precision.
pub fn now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Broken-down civil time as printed by clamd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i32,
    /// 1..=12
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

/// Parse a `ctime()` string: `Wed Nov 25 18:46:29 2026` (the day may be space-padded,
/// `Nov  5`). Returns the fields and how many bytes of `text` were consumed, so callers can
/// parse a ctime prefix of a log line.
pub fn parse_ctime_prefix(text: &str) -> Option<(Civil, usize)> {
    // "Www Mmm dd hh:mm:ss yyyy": five whitespace-separated fields.
    let mut fields = Vec::with_capacity(5);
    let mut rest = text;
    let mut consumed = 0;
    for _ in 0..5 {
        let trimmed = rest.trim_start_matches(' ');
        consumed += rest.len() - trimmed.len();
        let end = trimmed.find([' ', '\t']).unwrap_or(trimmed.len());
        if end == 0 {
            return None;
        }
        fields.push(&trimmed[..end]);
        consumed += end;
        rest = &trimmed[end..];
    }
    let [weekday, month, day, clock, year] = fields[..] else {
        return None;
    };
    if weekday.len() != 3 || !weekday.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let month = MONTHS.iter().position(|m| *m == month)? as u32 + 1;
    let day: u32 = day.parse().ok()?;
    let mut hms = clock.split(':');
    let hour: u32 = hms.next()?.parse().ok()?;
    let minute: u32 = hms.next()?.parse().ok()?;
    let second: u32 = hms.next()?.parse().ok()?;
    if hms.next().is_some() {
        return None;
    }
    let year: i32 = year.parse().ok()?;
    // 4-digit years only: `year - 1900` for mktime and the day arithmetic stay in range
    // whatever a hostile log line says.
    if !(1900..=9999).contains(&year) {
        return None;
    }
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some((
        Civil {
            year,
            month,
            day,
            hour,
            minute,
            second,
        },
        consumed,
    ))
}

/// Parse a whole `ctime()` string (surrounding whitespace allowed) as local time.
pub fn parse_ctime_local(text: &str) -> Option<i64> {
    let text = text.trim();
    let (civil, used) = parse_ctime_prefix(text)?;
    if used != text.len() {
        return None;
    }
    local_to_unix(civil)
}

impl Civil {
    /// The same fields as a `chrono` date-time; `None` for a date that does not exist
    /// (`Feb 30`). A leap second (`:60`) counts as the second before it.
    fn to_naive(self) -> Option<NaiveDateTime> {
        NaiveDate::from_ymd_opt(self.year, self.month, self.day)?.and_hms_opt(
            self.hour,
            self.minute,
            self.second.min(59),
        )
    }
}

/// Interpret civil time in the host's local zone (what clamd's `ctime()` used). A time
/// repeated by a DST change is the earlier instant; a time the change skipped is `None`.
pub fn local_to_unix(c: Civil) -> Option<i64> {
    let t = Local.from_local_datetime(&c.to_naive()?).earliest()?;
    Some(t.timestamp())
}

/// Interpret civil time as UTC.
pub fn utc_to_unix(c: Civil) -> Option<i64> {
    Some(c.to_naive()?.and_utc().timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctime_fields() {
        let (c, used) = parse_ctime_prefix("Wed Nov 25 18:46:29 2026 -> x").unwrap();
        assert_eq!(used, 24);
        assert_eq!(
            c,
            Civil {
                year: 2026,
                month: 11,
                day: 25,
                hour: 18,
                minute: 46,
                second: 29
            }
        );
        assert_eq!(utc_to_unix(c), Some(1_795_632_389));
        let (c, _) = parse_ctime_prefix("Thu Nov  5 01:02:03 2026").unwrap();
        assert_eq!((c.day, c.hour), (5, 1));
    }

    /// Issue 12 item 14: hostile years neither panic nor overflow.
    #[test]
    fn extreme_years_are_refused_without_panicking() {
        for y in ["-2147483648", "2147483647", "0", "99999", "-1"] {
            let line = format!("Wed Nov 25 18:46:29 {y}");
            assert_eq!(parse_ctime_local(&line), None, "{line}");
            assert!(
                crate::alerts::logfile::parse_line(&format!("{line} -> /a: X FOUND"))
                    .is_some_and(|d| d.time.is_none())
            );
        }
        let c = Civil {
            year: i32::MIN,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
        };
        assert_eq!(local_to_unix(c), None);
        assert_eq!(utc_to_unix(c), None);
    }

    #[test]
    fn ctime_rejects_garbage() {
        assert!(parse_ctime_prefix("").is_none());
        assert!(parse_ctime_prefix("/tmp/x: Eicar FOUND").is_none());
        assert!(parse_ctime_prefix("Wed Foo 25 18:46:29 2026").is_none());
        assert!(parse_ctime_prefix("Wed Nov 25 18:46 2026").is_none());
        assert!(parse_ctime_local("Wed Nov 25 18:46:29 2026 trailing").is_none());
    }

    /// The C library's `mktime`, what this module used before `chrono`.
    fn libc_mktime(c: Civil) -> i64 {
        // SAFETY: a zeroed `tm` is valid (tm_zone is a nullable pointer); mktime only
        // normalises the struct we own.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        tm.tm_year = c.year - 1900;
        tm.tm_mon = c.month as i32 - 1;
        tm.tm_mday = c.day as i32;
        tm.tm_hour = c.hour as i32;
        tm.tm_min = c.minute as i32;
        tm.tm_sec = c.second as i32;
        tm.tm_isdst = -1;
        unsafe { libc::mktime(&mut tm) as i64 }
    }

    /// Local time agrees with the C library under whatever `TZ` the tests run (e.g.
    /// `TZ=Europe/Paris cargo test`), summer and winter, either side of the DST changes.
    #[test]
    fn local_time_matches_libc_mktime() {
        for text in [
            "Wed Nov 25 18:46:29 2026",
            "Sun Mar 29 01:59:59 2026",
            "Sun Mar 29 03:00:00 2026",
            "Sun Jul 12 12:00:00 2026",
            "Sun Oct 25 00:59:59 2026",
            "Sun Oct 25 03:00:00 2026",
            "Thu Jan  1 00:00:00 2037",
        ] {
            let civil = parse_ctime_prefix(text).unwrap().0;
            assert_eq!(parse_ctime_local(text), Some(libc_mktime(civil)), "{text}");
        }
    }

    #[test]
    fn utc_dates() {
        let c = |year, month, day| Civil {
            year,
            month,
            day,
            hour: 0,
            minute: 0,
            second: 0,
        };
        assert_eq!(utc_to_unix(c(1970, 1, 1)), Some(0));
        assert_eq!(utc_to_unix(c(2000, 3, 1)), Some(11_017 * 86_400));
        assert_eq!(utc_to_unix(c(2024, 2, 29)), Some(1_709_164_800));
        // dates that do not exist
        assert_eq!(utc_to_unix(c(2023, 2, 29)), None);
        assert_eq!(local_to_unix(c(2026, 4, 31)), None);
    }
}
