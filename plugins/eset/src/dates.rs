//! Civil dates as the ESET tools print them, and their conversion to unix time.
//!
//! Invariants:
//! * ESET prints local time without a zone; the agent runs on the same host, so the host's
//!   zone (chrono `Local`) converts them exactly (DST gaps resolve to the earliest instant).
//! * Localized month names (English, French, German) are accepted in syslog stamps because
//!   syslog follows the system locale, not ours; numeric dates follow the order the product
//!   documents (US `MM/DD/YYYY` for `lslog`, German `DD.MM.YYYY`, ISO).

use chrono::{Datelike, Local, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};

/// Unix seconds of a local civil time.
pub fn local_unix(t: NaiveDateTime) -> Option<i64> {
    Local
        .from_local_datetime(&t)
        .earliest()
        .map(|d| d.timestamp())
}

/// Current unix time.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `2025-09-09 10:11:12`, `09/09/2025 10:11:12` (US), `09.09.2025 10:11:12` (DE),
/// `04/02/25 20:24:12` (two-digit year, US order). Seconds are optional.
pub fn parse_numeric(text: &str) -> Option<NaiveDateTime> {
    let text = text.trim();
    const FORMATS: &[&str] = &[
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%m/%d/%Y %H:%M:%S",
        "%m/%d/%Y %H:%M",
        "%d.%m.%Y %H:%M:%S",
        "%d.%m.%Y %H:%M",
        "%m/%d/%y %H:%M:%S",
    ];
    FORMATS
        .iter()
        .filter_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        // `%Y` also reads `25` as the year 25: a two-digit year must go to `%y`
        .find(|t| t.year() >= 1970)
}

/// Month number of an abbreviated or full month name in English, French or German.
pub fn month(name: &str) -> Option<u32> {
    let n = name.trim_end_matches('.').to_lowercase();
    const NAMES: &[(&[&str], u32)] = &[
        (&["jan", "january", "janv", "janvier", "januar", "jän"], 1),
        (
            &["feb", "february", "févr", "fevr", "février", "februar"],
            2,
        ),
        (&["mar", "march", "mars", "mär", "märz", "maerz"], 3),
        (&["apr", "april", "avr", "avril"], 4),
        (&["may", "mai"], 5),
        (&["jun", "june", "juin", "juni"], 6),
        (&["jul", "july", "juil", "juillet", "juli"], 7),
        (&["aug", "august", "août", "aout"], 8),
        (&["sep", "sept", "september", "septembre"], 9),
        (&["oct", "october", "octobre", "okt", "oktober"], 10),
        (&["nov", "november", "novembre"], 11),
        (
            &[
                "dec",
                "december",
                "déc",
                "decembre",
                "décembre",
                "dez",
                "dezember",
            ],
            12,
        ),
    ];
    NAMES
        .iter()
        .find(|(names, _)| names.contains(&n.as_str()))
        .map(|(_, m)| *m)
}

fn hms(text: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(text, "%H:%M:%S").ok()
}

/// Syslog's `Nov 23 14:22:33` has no year: the most recent such date not in the future
/// (a log read in January still holds December lines).
pub fn parse_syslog_stamp(text: &str, now: NaiveDateTime) -> Option<NaiveDateTime> {
    let mut words = text.split_whitespace();
    let mon = month(words.next()?)?;
    let day: u32 = words.next()?.parse().ok()?;
    let time = hms(words.next()?)?;
    let this_year = NaiveDate::from_ymd_opt(now.year(), mon, day).map(|d| d.and_time(time));
    match this_year {
        Some(t) if t <= now + chrono::Duration::days(1) => Some(t),
        _ => NaiveDate::from_ymd_opt(now.year() - 1, mon, day).map(|d| d.and_time(time)),
    }
}

/// `20250909` (module dates of `upd --list-modules`).
pub fn parse_ymd(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text.trim(), "%Y%m%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(y: i32, m: u32, d: u32, h: u32, mi: u32, s: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, mi, s)
            .unwrap()
    }

    #[test]
    fn numeric_dates_in_the_documented_orders() {
        assert_eq!(
            parse_numeric("09/13/2025 10:11:12"),
            Some(dt(2025, 9, 13, 10, 11, 12))
        );
        assert_eq!(
            parse_numeric("13.09.2025 10:11:12"),
            Some(dt(2025, 9, 13, 10, 11, 12))
        );
        assert_eq!(
            parse_numeric("2025-09-13 10:11:12"),
            Some(dt(2025, 9, 13, 10, 11, 12))
        );
        // F-E6: `04/02/25 20:24:12` is ambiguous; read in the US order ESET uses elsewhere
        assert_eq!(
            parse_numeric("04/02/25 20:24:12"),
            Some(dt(2025, 4, 2, 20, 24, 12))
        );
        assert_eq!(parse_numeric("13/13/2025 10:11:12"), None);
        assert_eq!(parse_numeric(""), None);
    }

    #[test]
    fn localized_month_names() {
        assert_eq!(month("nov."), Some(11));
        assert_eq!(month("Dez"), Some(12));
        assert_eq!(month("févr."), Some(2));
        assert_eq!(month("mer."), None);
    }

    #[test]
    fn syslog_dates_take_the_latest_past_year() {
        let now = dt(2026, 1, 5, 12, 0, 0);
        assert_eq!(
            parse_syslog_stamp("Nov 23 14:22:33", now),
            Some(dt(2025, 11, 23, 14, 22, 33))
        );
        assert_eq!(
            parse_syslog_stamp("Jan  4 14:22:33", now),
            Some(dt(2026, 1, 4, 14, 22, 33))
        );
        assert_eq!(parse_syslog_stamp("Foo 4 14:22:33", now), None);
    }

    #[test]
    fn local_conversion_round_trips() {
        let t = dt(2025, 6, 1, 12, 0, 0);
        let unix = local_unix(t).unwrap();
        let back = Local.timestamp_opt(unix, 0).unwrap().naive_local();
        assert_eq!(back, t);
    }
}
