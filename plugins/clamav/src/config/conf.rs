//! clamd.conf as a list of lines: read, query with clamd's semantics, edit in place.
//!
//! Invariants:
//! * Round trip: `parse(text).to_text() == text` for any input; edits touch only the lines
//!   of the options they change, so comments, blank lines and ordering survive a rewrite.
//! * Query semantics follow clamd (verified with clamconf 1.4): options are case-sensitive;
//!   for a non-repeatable option the *first* occurrence wins; a double-quoted argument has
//!   its quotes removed; leading whitespace before the option name is allowed.
//! * Normalisation never fails: a value that does not parse as its declared kind is
//!   reported as the raw string rather than dropped.

use serde_json::Value;

use super::schema::{self, Kind};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    /// Comment, blank, or anything that is not `Option [Argument]`.
    Other(String),
    Option {
        name: String,
        /// Argument with quotes removed; empty when the line is only a name.
        value: String,
        raw: String,
    },
}

/// A parsed clamd.conf.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClamdConf {
    lines: Vec<Line>,
    /// Whether the text ended with a newline (kept on rewrite).
    trailing_newline: bool,
}

/// Parse `"..."` quoting the way clamd does: only a fully quoted argument is unquoted.
fn unquote(arg: &str) -> &str {
    if arg.len() >= 2 && arg.starts_with('"') && arg.ends_with('"') {
        &arg[1..arg.len() - 1]
    } else {
        arg
    }
}

fn parse_line(raw: &str) -> Line {
    let trimmed = raw.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Line::Other(raw.to_owned());
    }
    let (name, arg) = match trimmed.find([' ', '\t']) {
        Some(i) => (&trimmed[..i], trimmed[i..].trim()),
        None => (trimmed.trim_end(), ""),
    };
    if !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Line::Other(raw.to_owned());
    }
    Line::Option {
        name: name.to_owned(),
        value: unquote(arg).to_owned(),
        raw: raw.to_owned(),
    }
}

/// `yes/true/1` → true, `no/false/0` → false (clamd's MATCH_BOOL, case-insensitive).
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" => Some(true),
        "no" | "false" | "0" => Some(false),
        _ => None,
    }
}

/// Bytes from `123`, `10K`, `25M`, `1G` (any case; powers of 1024).
pub fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim();
    let (digits, mult) = match v.chars().last()? {
        'k' | 'K' => (&v[..v.len() - 1], 1024),
        'm' | 'M' => (&v[..v.len() - 1], 1024 * 1024),
        'g' | 'G' => (&v[..v.len() - 1], 1024 * 1024 * 1024),
        _ => (v, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

fn parse_number(v: &str) -> Option<u64> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// JSON form of one raw value according to the option's kind.
pub fn normalise(name: &str, raw: &str) -> Value {
    let kind = schema::lookup(name).map(|(k, _)| k);
    match kind {
        Some(Kind::Bool) => parse_bool(raw).map_or_else(|| raw.into(), Value::Bool),
        Some(Kind::Size) => parse_size(raw).map_or_else(|| raw.into(), Value::from),
        Some(Kind::Number) => parse_number(raw).map_or_else(|| raw.into(), Value::from),
        Some(Kind::Str) | None => raw.into(),
    }
}

impl ClamdConf {
    pub fn parse(text: &str) -> ClamdConf {
        let trailing_newline = text.ends_with('\n');
        let body = text.strip_suffix('\n').unwrap_or(text);
        let lines = if text.is_empty() {
            Vec::new()
        } else {
            body.split('\n').map(parse_line).collect()
        };
        ClamdConf {
            lines,
            trailing_newline,
        }
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (i, line) in self.lines.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            match line {
                Line::Other(raw) | Line::Option { raw, .. } => out.push_str(raw),
            }
        }
        if self.trailing_newline && !self.lines.is_empty() {
            out.push('\n');
        }
        out
    }

    fn options(&self) -> impl Iterator<Item = (&str, &str)> {
        self.lines.iter().filter_map(|l| match l {
            Line::Option { name, value, .. } => Some((name.as_str(), value.as_str())),
            Line::Other(_) => None,
        })
    }

    /// Effective value of a non-repeatable option (first occurrence, as clamd does).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.options().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Every value of an option, in file order.
    pub fn get_all(&self, name: &str) -> Vec<&str> {
        self.options()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .collect()
    }

    pub fn get_bool(&self, name: &str) -> Option<bool> {
        self.get(name).and_then(parse_bool)
    }

    pub fn get_size(&self, name: &str) -> Option<u64> {
        self.get(name).and_then(parse_size)
    }

    pub fn get_number(&self, name: &str) -> Option<u64> {
        self.get(name).and_then(parse_number)
    }

    /// Every option once, in order of first appearance, normalised: bools as JSON bools,
    /// sizes in bytes, numbers as numbers, repeatable options (or repeated unknown ones) as
    /// arrays.
    pub fn entries(&self) -> Vec<(String, Value)> {
        let mut order: Vec<&str> = Vec::new();
        for (name, _) in self.options() {
            if !order.contains(&name) {
                order.push(name);
            }
        }
        order
            .into_iter()
            .map(|name| {
                let values = self.get_all(name);
                let repeatable = schema::lookup(name).is_some_and(|(_, multi)| multi);
                let value = if repeatable || (values.len() > 1 && schema::lookup(name).is_none()) {
                    Value::Array(values.iter().map(|v| normalise(name, v)).collect())
                } else {
                    normalise(name, values.first().copied().unwrap_or_default())
                };
                (name.to_owned(), value)
            })
            .collect()
    }

    /// Replace every occurrence of `name` by one line per value: the new lines take the
    /// place of the first occurrence (later ones are removed); an option not present yet is
    /// appended. An empty `values` removes the option. Values must be single-line.
    pub fn set(&mut self, name: &str, values: &[String]) {
        let new_lines: Vec<Line> = values
            .iter()
            .map(|v| {
                let arg = if v.starts_with(char::is_whitespace)
                    || v.ends_with(char::is_whitespace)
                    || (v.starts_with('"') && v.ends_with('"') && v.len() >= 2)
                {
                    format!("\"{v}\"")
                } else {
                    v.clone()
                };
                let raw = if arg.is_empty() {
                    name.to_owned()
                } else {
                    format!("{name} {arg}")
                };
                Line::Option {
                    name: name.to_owned(),
                    value: v.clone(),
                    raw,
                }
            })
            .collect();
        let is_it = |l: &Line| matches!(l, Line::Option { name: n, .. } if n == name);
        match self.lines.iter().position(is_it) {
            Some(first) => {
                let mut rest = self.lines.split_off(first);
                rest.retain(|l| !is_it(l));
                self.lines.extend(new_lines);
                self.lines.extend(rest);
            }
            None => {
                if self.lines.is_empty() {
                    self.trailing_newline = true;
                }
                self.lines.extend(new_lines);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SAMPLE: &str = "\
# Automatically generated
LocalSocket /run/clamav/clamd.ctl
LogTime yes
LogTime no
  MaxThreads 12
StreamMaxLength 25M
TCPAddr 127.0.0.1

# on-access
OnAccessIncludePath /home
OnAccessIncludePath /srv
LogFile \"/var/log/clam av.log\"
SelfCheck 3600
Bytecode
UnknownFutureOption 1
";

    #[test]
    fn round_trip_is_exact() {
        for text in [SAMPLE, "", "NoNewline yes", "\n\n# only comments\n"] {
            assert_eq!(ClamdConf::parse(text).to_text(), text);
        }
    }

    #[test]
    fn queries_follow_clamd() {
        let c = ClamdConf::parse(SAMPLE);
        assert_eq!(c.get_bool("LogTime"), Some(true), "first occurrence wins");
        assert_eq!(c.get_number("MaxThreads"), Some(12));
        assert_eq!(c.get_size("StreamMaxLength"), Some(25 * 1024 * 1024));
        assert_eq!(c.get("LogFile"), Some("/var/log/clam av.log"));
        assert_eq!(c.get_all("OnAccessIncludePath"), vec!["/home", "/srv"]);
        assert_eq!(c.get("logtime"), None, "case-sensitive");
    }

    #[test]
    fn entries_are_normalised() {
        let c = ClamdConf::parse(SAMPLE);
        let e: std::collections::BTreeMap<_, _> = c.entries().into_iter().collect();
        assert_eq!(e["LogTime"], json!(true));
        assert_eq!(e["MaxThreads"], json!(12));
        assert_eq!(e["StreamMaxLength"], json!(26_214_400));
        assert_eq!(e["TCPAddr"], json!(["127.0.0.1"]));
        assert_eq!(e["OnAccessIncludePath"], json!(["/home", "/srv"]));
        assert_eq!(e["SelfCheck"], json!(3600));
        assert_eq!(e["Bytecode"], json!(""), "a bare name is kept, not dropped");
        assert_eq!(e["UnknownFutureOption"], json!("1"));
        assert_eq!(c.entries()[0].0, "LocalSocket", "file order");
    }

    #[test]
    fn sizes_and_bools() {
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("10k"), Some(10_240));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("M"), None);
        assert_eq!(parse_size("1.5M"), None);
        assert_eq!(parse_size("99999999999999999999G"), None);
        assert_eq!(parse_bool("TRUE"), Some(true));
        assert_eq!(parse_bool("maybe"), None);
        assert_eq!(normalise("LogTime", "maybe"), json!("maybe"));
    }

    #[test]
    fn set_edits_in_place_and_keeps_comments() {
        let mut c = ClamdConf::parse(SAMPLE);
        c.set("LogTime", &["no".into()]);
        c.set("OnAccessIncludePath", &["/data".into()]);
        c.set("MaxQueue", &["200".into()]);
        c.set("SelfCheck", &[]);
        c.set("LogFile", &["/var/log/a b.log".into()]);
        let text = c.to_text();
        assert_eq!(
            text,
            "\
# Automatically generated
LocalSocket /run/clamav/clamd.ctl
LogTime no
  MaxThreads 12
StreamMaxLength 25M
TCPAddr 127.0.0.1

# on-access
OnAccessIncludePath /data
LogFile /var/log/a b.log
Bytecode
UnknownFutureOption 1
MaxQueue 200
"
        );
        let again = ClamdConf::parse(&text);
        assert_eq!(again.get("LogFile"), Some("/var/log/a b.log"));
        assert_eq!(again.get_all("OnAccessIncludePath"), vec!["/data"]);
        // Leading spaces must be quoted to survive clamd's trimming.
        let mut c = ClamdConf::default();
        c.set("LogFacility", &[" x".into()]);
        assert_eq!(c.to_text(), "LogFacility \" x\"\n");
        assert_eq!(
            ClamdConf::parse(&c.to_text()).get("LogFacility"),
            Some(" x")
        );
    }
}
