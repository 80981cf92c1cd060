//! Durations written for humans in agent.toml (`"5s"`, `"1h 30min"`, humantime syntax).

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Parses `"5s"`, `"2min"`, `"1h 30min"`; the error says what is expected.
pub fn parse(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!("{s:?} is not a duration ({e}); write e.g. \"30s\", \"5min\" or \"1h 30min\"")
    })
}

/// `deserialize_with` for an optional duration key: a string in humantime syntax.
pub fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    s.map(|s| parse(&s).map_err(serde::de::Error::custom))
        .transpose()
}

/// `deserialize_with` for a duration key with a default.
pub fn required<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse(&s).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse(" 1h 30min "), Ok(Duration::from_secs(5400)));
        assert!(parse("5").unwrap_err().contains("not a duration"));
        assert!(parse("soon").unwrap_err().contains("\"30s\""));
    }
}
