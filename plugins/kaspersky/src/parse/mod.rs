//! Parsers for what the Kaspersky tools print. No I/O: each takes text, returns typed values,
//! and is unit-tested on the verbatim samples of `eset-kaspersky.md` §2.3 (F-K1…F-K5) — on
//! Linux too, which is how the Windows path is tested.
//!
//! Invariants:
//! * Never panic, never unwrap input; unknown lines are skipped.
//! * Both spellings of renamed labels are read (`Anti-virus databases loaded` →
//!   `Application databases loaded`, KESL 12.3).
//! * Dates come back civil (naive, local time as the products print them); [`crate::dates`]
//!   converts.

pub mod avp;
pub mod kescli;
pub mod kesl;

/// `Key<sep>value` lines → pairs, keys trimmed (`Name:     value`, `EventId=2544`).
pub fn pairs(text: &str, sep: char) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once(sep))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// The first value among `keys` (case-insensitive).
pub fn get<'a>(pairs: &'a [(String, String)], keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|k| {
        pairs
            .iter()
            .find(|(pk, _)| pk.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    })
}
