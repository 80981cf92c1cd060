//! A string that never prints.
//!
//! Invariant: the clear text of a [`Secret`] leaves it only through [`Secret::expose`]. `Debug`
//! prints `***` and there is deliberately no `Display`, so neither `{:?}` of a whole options
//! struct nor an accidental `{}` in a log line can leak a password (the old agent took passwords
//! on argv and dumped its config in debug logs, reference-agent.md §12.3).

use std::fmt;

use serde::Deserialize;

/// A secret string (HTTP password, …). Deserializes from a plain TOML/JSON string.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a clear-text secret.
    pub fn new(clear: impl Into<String>) -> Self {
        Self(clear.into())
    }

    /// The clear text. Call it only where the value is actually needed (building an
    /// `Authorization` header), never to log or format.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(clear: String) -> Self {
        Self(clear)
    }
}

impl From<&str> for Secret {
    fn from(clear: &str) -> Self {
        Self(clear.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(***)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn deserializes_from_a_plain_string() {
        #[derive(Deserialize)]
        struct T {
            p: Secret,
        }
        let t: T = toml::from_str("p = \"s3cr3t\"").expect("valid toml");
        assert_eq!(t.p.expose(), "s3cr3t");
    }
}
