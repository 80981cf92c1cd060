//! Kaspersky dates: `YYYY-MM-DD hh:mm:ss` in local time without a zone (scan reports, KESL
//! events and database dates), and a few other orders seen from `kescli` ([R]).

use chrono::{Local, NaiveDateTime, TimeZone};

pub fn parse(text: &str) -> Option<NaiveDateTime> {
    let text = text.trim();
    const FORMATS: &[&str] = &[
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%d.%m.%Y %H:%M:%S",
        "%m/%d/%Y %H:%M:%S",
        "%m/%d/%Y %I:%M:%S %p",
    ];
    FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
}

/// Unix seconds of a local civil time (DST gaps: the earliest instant).
pub fn local_unix(t: NaiveDateTime) -> Option<i64> {
    Local
        .from_local_datetime(&t)
        .earliest()
        .map(|d| d.timestamp())
}

/// A local time as KESL's `-E --query` reads it.
pub fn kesl_query_date(unix: i64) -> String {
    Local
        .timestamp_opt(unix, 0)
        .earliest()
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "1970-01-01 00:00:00".into())
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_round_trip() {
        let t = parse("2019-06-28 09:50:17").unwrap();
        assert_eq!(t.to_string(), "2019-06-28 09:50:17");
        assert_eq!(
            parse("6/28/2019 9:50:17 AM").unwrap().to_string(),
            "2019-06-28 09:50:17"
        );
        assert_eq!(
            parse("28.06.2019 09:50:17").unwrap().to_string(),
            "2019-06-28 09:50:17"
        );
        assert_eq!(parse("yesterday"), None);
        let unix = local_unix(t).unwrap();
        assert_eq!(kesl_query_date(unix), "2019-06-28 09:50:17");
    }
}
