//! Dates the way the plugin produces them: PHP `date()`, `strtotime()`,
//! `DateTime::diff()` and MySQL's lax DATETIME coercion, all in the server
//! time zone, which the double fixes to UTC (§1.8).
//!
//! Hand-written (no chrono) because only a handful of formats matter and
//! they must fail exactly where PHP/MySQL fail.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Inverse of [`days_from_civil`].
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tm {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub min: u32,
    pub sec: u32,
}

pub fn to_tm(ts: i64) -> Tm {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    Tm {
        year,
        month,
        day,
        hour: (secs / 3600) as u32,
        min: (secs % 3600 / 60) as u32,
        sec: (secs % 60) as u32,
    }
}

/// `date("Y-m-d H:i:s", ts)` in UTC.
pub fn fmt_datetime(ts: i64) -> String {
    let t = to_tm(ts);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year, t.month, t.day, t.hour, t.min, t.sec
    )
}

/// The zero date MySQL stores for unusable DATETIME input under `sql_mode=''`.
pub const ZERO_DATETIME: &str = "0000-00-00 00:00:00";

pub fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

pub fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Small cursor over ASCII input.
struct Cur<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cur<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn digits(&mut self, min: usize, max: usize) -> Option<u32> {
        let start = self.i;
        while self.i < self.b.len() && self.i - start < max && self.b[self.i].is_ascii_digit() {
            self.i += 1;
        }
        if self.i - start < min {
            self.i = start;
            return None;
        }
        std::str::from_utf8(&self.b[start..self.i])
            .ok()?
            .parse()
            .ok()
    }
    fn done(&self) -> bool {
        self.i >= self.b.len()
    }
}

/// The subset of PHP `strtotime()` an agent can reasonably send for a scan's
/// `start_time`: `@<unix>`, `now`, and ISO-8601/MySQL date-times with an
/// optional `Z`/`UTC`/`GMT`/`±hh[:mm]` zone. Anything else yields `None`
/// (PHP's `false`), which the plugin then turns into the epoch. PHP knows
/// many more relative formats; an agent has no business sending them.
pub fn strtotime(s: &str, now: i64) -> Option<i64> {
    let s = s.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\n' || c == '\r');
    if let Some(rest) = s.strip_prefix('@') {
        let (neg, digits) = match rest.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, rest),
        };
        if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let n: i64 = digits.parse().ok()?;
        return Some(if neg { -n } else { n });
    }
    if s.eq_ignore_ascii_case("now") {
        return Some(now);
    }
    let mut c = Cur {
        b: s.as_bytes(),
        i: 0,
    };
    let year = c.digits(4, 4)? as i64;
    if !c.eat(b'-') {
        return None;
    }
    let month = c.digits(1, 2)?;
    if !c.eat(b'-') {
        return None;
    }
    let day = c.digits(1, 2)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let (mut h, mut mi, mut se) = (0u32, 0u32, 0u32);
    if !c.done() {
        if !(c.eat(b'T') || c.eat(b't') || c.eat(b' ')) {
            return None;
        }
        h = c.digits(1, 2)?;
        if !c.eat(b':') {
            return None;
        }
        mi = c.digits(2, 2)?;
        if c.eat(b':') {
            se = c.digits(2, 2)?;
            if c.eat(b'.') || c.eat(b',') {
                c.digits(1, 9)?;
            }
        }
        if h > 24 || mi > 59 || se > 60 {
            return None;
        }
    }
    let mut offset: i64 = 0;
    while c.eat(b' ') {}
    if !c.done() {
        let rest = std::str::from_utf8(&c.b[c.i..]).ok()?;
        if rest.eq_ignore_ascii_case("z")
            || rest.eq_ignore_ascii_case("utc")
            || rest.eq_ignore_ascii_case("gmt")
        {
            offset = 0;
        } else {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            c.i += 1;
            let oh = c.digits(2, 2)? as i64;
            c.eat(b':');
            let om = if c.done() { 0 } else { c.digits(2, 2)? as i64 };
            if !c.done() {
                return None;
            }
            offset = sign * (oh * 3600 + om * 60);
        }
    }
    // PHP lets day-of-month overflow roll over (2017-02-30 → 2017-03-02).
    let days = days_from_civil(year, month, 1) + day as i64 - 1;
    Some(days * 86_400 + h as i64 * 3600 + mi as i64 * 60 + se as i64 - offset)
}

/// What MySQL (empty `sql_mode`, as GLPI 9.3 forces) stores when a string is
/// written into a DATETIME column: delimited `Y-M-D[ T]h:m:s` with any
/// trailing garbage truncated (`…Z` is accepted this way), 14/12/8/6-digit
/// numeric forms, and the zero date for anything else.
pub fn mysql_datetime(s: &str) -> String {
    let s = s.trim_start();
    let b = s.as_bytes();
    if !b.is_empty() && b.iter().all(|c| c.is_ascii_digit()) {
        let n = |r: std::ops::Range<usize>| s[r].parse::<u32>().unwrap_or(0);
        let (y, rest, has_time) = match b.len() {
            14 => (n(0..4) as i64, 4, true),
            12 => (two_digit_year(n(0..2)), 2, true),
            8 => (n(0..4) as i64, 4, false),
            6 => (two_digit_year(n(0..2)), 2, false),
            _ => return ZERO_DATETIME.into(),
        };
        let mo = n(rest..rest + 2);
        let d = n(rest + 2..rest + 4);
        let (h, mi, se) = if has_time {
            (
                n(rest + 4..rest + 6),
                n(rest + 6..rest + 8),
                n(rest + 8..rest + 10),
            )
        } else {
            (0, 0, 0)
        };
        return checked(y, mo, d, h, mi, se);
    }
    let mut c = Cur { b, i: 0 };
    let start = c.i;
    let Some(yv) = c.digits(1, 4) else {
        return ZERO_DATETIME.into();
    };
    let y = if c.i - start <= 2 {
        two_digit_year(yv)
    } else {
        yv as i64
    };
    let punct = |c: &mut Cur| match c.peek() {
        Some(p) if p.is_ascii_punctuation() => {
            c.i += 1;
            true
        }
        _ => false,
    };
    if !punct(&mut c) {
        return ZERO_DATETIME.into();
    }
    let Some(mo) = c.digits(1, 2) else {
        return ZERO_DATETIME.into();
    };
    if !punct(&mut c) {
        return ZERO_DATETIME.into();
    }
    let Some(d) = c.digits(1, 2) else {
        return ZERO_DATETIME.into();
    };
    let (mut h, mut mi, mut se) = (0, 0, 0);
    if (c.eat(b'T') || c.eat(b' '))
        && let Some(hv) = c.digits(1, 2)
    {
        h = hv;
        if punct(&mut c)
            && let Some(m) = c.digits(1, 2)
        {
            mi = m;
            if punct(&mut c) {
                se = c.digits(1, 2).unwrap_or(0);
            }
        }
    }
    checked(y, mo, d, h, mi, se)
}

fn two_digit_year(v: u32) -> i64 {
    if v < 70 {
        2000 + v as i64
    } else {
        1900 + v as i64
    }
}

fn checked(y: i64, mo: u32, d: u32, h: u32, mi: u32, se: u32) -> String {
    // Without NO_ZERO_IN_DATE, zero month/day parts are kept as written.
    let month_ok = mo <= 12;
    let day_ok = mo == 0 && d <= 31 || d <= days_in_month(y, mo);
    if !month_ok || !day_ok || h > 23 || mi > 59 || se > 59 || y > 9999 {
        return ZERO_DATETIME.into();
    }
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{se:02}")
}

/// `DateTime::diff()` formatted with `'%dd %Hh %Im %Ss'`: the *day of month*
/// component only (years and months are dropped), absolute value.
pub fn diff_format(a: i64, b: i64) -> String {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let (l, h) = (to_tm(lo), to_tm(hi));
    let mut sec = h.sec as i64 - l.sec as i64;
    let mut min = h.min as i64 - l.min as i64;
    let mut hour = h.hour as i64 - l.hour as i64;
    let mut day = h.day as i64 - l.day as i64;
    if sec < 0 {
        sec += 60;
        min -= 1;
    }
    if min < 0 {
        min += 60;
        hour -= 1;
    }
    if hour < 0 {
        hour += 24;
        day -= 1;
    }
    if day < 0 {
        // Borrow the length of the month preceding the later date's month.
        let (py, pm) = if h.month == 1 {
            (h.year - 1, 12)
        } else {
            (h.year, h.month - 1)
        };
        day += days_in_month(py, pm) as i64;
    }
    format_interval(day, hour, min, sec)
}

/// `DateInterval::format('%dd %Hh %Im %Ss')`.
pub fn format_interval(d: i64, h: i64, m: i64, s: i64) -> String {
    format!("{d}d {h:02}h {m:02}m {s:02}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_unix_seconds_in_utc() {
        assert_eq!(fmt_datetime(0), "1970-01-01 00:00:00");
        assert_eq!(fmt_datetime(1483605762), "2017-01-05 08:42:42");
        assert_eq!(fmt_datetime(1479467793), "2016-11-18 11:16:33");
        assert_eq!(fmt_datetime(1409556600), "2014-09-01 07:30:00");
        assert_eq!(fmt_datetime(-1), "1969-12-31 23:59:59");
    }

    #[test]
    fn strtotime_subset() {
        assert_eq!(strtotime("@1483605762", 0), Some(1483605762));
        assert_eq!(strtotime("2017-01-05T08:42:42Z", 0), Some(1483605762));
        assert_eq!(strtotime("2017-01-05 08:42:42", 0), Some(1483605762));
        assert_eq!(strtotime("2017-01-05T09:42:42+01:00", 0), Some(1483605762));
        assert_eq!(strtotime("1970-01-01T00:00:00Z", 0), Some(0));
        assert_eq!(strtotime("2017-01-05", 0), Some(1483574400));
        assert_eq!(strtotime("1483605762", 0), None);
        assert_eq!(strtotime("garbage", 0), None);
    }

    #[test]
    fn mysql_coercion_is_lax() {
        assert_eq!(
            mysql_datetime("2017-01-05T08:42:42Z"),
            "2017-01-05 08:42:42"
        );
        assert_eq!(mysql_datetime("2017-01-05 08:42:42"), "2017-01-05 08:42:42");
        assert_eq!(mysql_datetime("2017-01-05"), "2017-01-05 00:00:00");
        assert_eq!(mysql_datetime("20170105084242"), "2017-01-05 08:42:42");
        assert_eq!(mysql_datetime("1483605762"), ZERO_DATETIME);
        assert_eq!(mysql_datetime("2017-02-30 00:00:00"), ZERO_DATETIME);
        assert_eq!(mysql_datetime("nonsense"), ZERO_DATETIME);
    }

    #[test]
    fn diff_keeps_days_only() {
        assert_eq!(diff_format(0, 0), "0d 00h 00m 00s");
        assert_eq!(diff_format(10, 3), "0d 00h 00m 07s");
        assert_eq!(diff_format(0, 86_400 * 3 + 3661), "3d 01h 01m 01s");
    }
}
