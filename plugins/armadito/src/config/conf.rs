//! `armadito.conf` (INI-like, backends.md A.6): parsing into `section:key` entries as the old
//! agent reported them, and editing one value in place.
//!
//! Invariants:
//! * No I/O. Parsing follows the old agent's regexes (section `^\s*\[(.*?)\]\s*$`, key
//!   `^\s*([a-zA-Z0-9\-]+)\s*=\s*(.*)$`) so attributes are the ones GLPI already stores; the
//!   value is the raw text (quotes and `;` lists kept), trailing blanks trimmed.
//! * Editing keeps every other line byte for byte (comments, order, blank lines).

use regex::Regex;
use std::sync::OnceLock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub section: String,
    pub key: String,
    pub value: String,
    /// 0-based line number.
    pub line: usize,
}

impl Entry {
    pub fn attr(&self) -> String {
        format!("{}:{}", self.section, self.key)
    }
}

fn section_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| Regex::new(r"^\s*\[(.*?)\]\s*$").expect("static regex"))
}

fn key_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| Regex::new(r"^\s*([a-zA-Z0-9\-]+)\s*=\s*(.*?)\s*$").expect("static regex"))
}

pub fn parse(text: &str) -> Vec<Entry> {
    let mut section = String::new();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if let Some(c) = section_re().captures(line) {
            section = c[1].to_string();
        } else if let Some(c) = key_re().captures(line) {
            out.push(Entry {
                section: section.clone(),
                key: c[1].to_string(),
                value: c[2].to_string(),
                line: n,
            });
        }
    }
    out
}

/// `text` with `section:key` set to `value`: the existing line is replaced, or a line is
/// added at the end of the section, or the section is appended.
pub fn set(text: &str, section: &str, key: &str, value: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let new_line = format!("{key} = {value}");
    if let Some(e) = parse(text)
        .into_iter()
        .rev()
        .find(|e| e.section == section && e.key == key)
    {
        lines[e.line] = new_line;
    } else {
        let mut current = String::new();
        let mut end_of_section = None;
        for (n, line) in lines.iter().enumerate() {
            if let Some(c) = section_re().captures(line) {
                current = c[1].to_string();
            }
            if current == section && !line.trim().is_empty() {
                end_of_section = Some(n);
            }
        }
        match end_of_section {
            Some(n) => lines.insert(n + 1, new_line),
            None => {
                if lines.last().is_some_and(|l| !l.trim().is_empty()) {
                    lines.push(String::new());
                }
                lines.push(format!("[{section}]"));
                lines.push(new_line);
            }
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = "# Armadito AV configuration\n[on-demand]\nwhite-list-dir = \"/boot\"; \"/dev\"   \nmax-size = 10485760\n\n[on-access-linux]\nenable = 0\nsome_key = ignored\n";

    #[test]
    fn entries_as_the_old_agent_reported_them() {
        let e = parse(CONF);
        let got: Vec<(String, String)> = e.iter().map(|e| (e.attr(), e.value.clone())).collect();
        assert_eq!(
            got,
            [
                (
                    "on-demand:white-list-dir".to_string(),
                    "\"/boot\"; \"/dev\"".to_string()
                ),
                ("on-demand:max-size".into(), "10485760".into()),
                ("on-access-linux:enable".into(), "0".into()),
            ]
        );
    }

    #[test]
    fn set_keeps_everything_else() {
        let t = set(CONF, "on-demand", "max-size", "20971520");
        assert_eq!(
            t,
            CONF.replace("max-size = 10485760", "max-size = 20971520")
        );
        let t = set(CONF, "on-access-linux", "max-size", "5");
        assert!(
            t.ends_with("enable = 0\nsome_key = ignored\nmax-size = 5\n"),
            "{t}"
        );
        let t = set(CONF, "quarantine", "enable", "1");
        assert!(
            t.ends_with("some_key = ignored\n\n[quarantine]\nenable = 1\n"),
            "{t}"
        );
        assert_eq!(parse(&t).last().unwrap().attr(), "quarantine:enable");
    }
}
