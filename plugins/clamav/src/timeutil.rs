//! Time helpers for the text clamd prints.
//!
//! Invariants:
//! * clamd formats times with `ctime()`, i.e. in the host's *local* time zone and without a
//!   zone marker, so converting them needs the C library's view of local time (`mktime`).
//!   Both sides run on the same host, which makes that conversion exact.
//! * Parsers return `None` on anything unexpected; they never panic on input.

use std::time::{SystemTime, UNIX_EPOCH};

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

/// Interpret civil time in the host's local zone (what clamd's `ctime()` used).
pub fn local_to_unix(c: Civil) -> Option<i64> {
    // SAFETY: `tm` is a plain C struct; zero is a valid value for every field (tm_zone is a
    // nullable pointer). `mktime` only reads and normalises the struct we own.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = c.year.checked_sub(1900)?;
    tm.tm_mon = c.month as i32 - 1;
    tm.tm_mday = c.day as i32;
    tm.tm_hour = c.hour as i32;
    tm.tm_min = c.minute as i32;
    tm.tm_sec = c.second as i32;
    tm.tm_isdst = -1;
    // SAFETY: see above; mktime is thread-safe as long as nobody mutates TZ concurrently.
    let t = unsafe { libc::mktime(&mut tm) };
    if t == -1 { None } else { Some(t as i64) }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Interpret civil time as UTC.
pub fn utc_to_unix(c: Civil) -> i64 {
    days_from_civil(c.year, c.month, c.day) * 86_400
        + c.hour as i64 * 3600
        + c.minute as i64 * 60
        + c.second as i64
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
        assert_eq!(utc_to_unix(c), 1_795_632_389);
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
        let _ = utc_to_unix(c);
        let _ = days_from_civil(i32::MIN, 1, 1);
    }

    #[test]
    fn ctime_rejects_garbage() {
        assert!(parse_ctime_prefix("").is_none());
        assert!(parse_ctime_prefix("/tmp/x: Eicar FOUND").is_none());
        assert!(parse_ctime_prefix("Wed Foo 25 18:46:29 2026").is_none());
        assert!(parse_ctime_prefix("Wed Nov 25 18:46 2026").is_none());
        assert!(parse_ctime_local("Wed Nov 25 18:46:29 2026 trailing").is_none());
    }

    #[test]
    fn local_time_matches_libc_localtime() {
        // Round trip through the C library: whatever the zone, localtime(mktime(x)) == x.
        let t = parse_ctime_local("Wed Nov 25 18:46:29 2026").unwrap();
        let utc = utc_to_unix(parse_ctime_prefix("Wed Nov 25 18:46:29 2026").unwrap().0);
        assert!(
            (t - utc).abs() <= 14 * 3600,
            "offset beyond any real zone: {}",
            t - utc
        );
    }

    #[test]
    fn epoch_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }
}
