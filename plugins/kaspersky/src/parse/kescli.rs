//! `kescli --opswat <command>` (KES for Windows). The commands are documented, their output
//! **formats are not** (eset-kaspersky.md §5): these parsers are reconstructions [R] that
//! accept the shapes public scripts rely on, and every one has a test saying so.

use chrono::NaiveDateTime;

use crate::dates;

/// `Version`: the first token that looks like a dotted version (`12.3.0.493`).
pub fn version(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || c == ':' || c == '=')
        .find(|w| {
            w.contains('.')
                && w.chars().all(|c| c.is_ascii_digit() || c == '.')
                && w.chars().next().is_some_and(|c| c.is_ascii_digit())
        })
        .map(str::to_string)
}

/// `GetDefinitionState`: the date/time of the last database update, in any of the orders
/// `crate::dates::parse` knows (a public RMM script reads `M/d/yyyy H:m:s`).
pub fn definition_date(text: &str) -> Option<NaiveDateTime> {
    text.lines().find_map(|l| {
        let l = l.trim();
        dates::parse(l).or_else(|| l.split_once(':').and_then(|(_, v)| dates::parse(v)))
    })
}

/// `GetRealTimeProtectionState`: `1` on, `0` off (doc: File Threat Protection state).
pub fn realtime(text: &str) -> Option<bool> {
    let last = text.split_whitespace().last()?;
    match last {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

/// One `GetThreats` record: `<name> <object type> <date> <time> <file path> <action>
/// <danger level>` with numeric codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Threat {
    pub name: String,
    pub object_type: u32,
    pub time: NaiveDateTime,
    pub path: String,
    pub action: u32,
    pub danger: u32,
}

/// Splits on TABs when the record has them, else on whitespace with the path taken as
/// everything between the time and the two trailing codes (paths may contain spaces).
pub fn threat(line: &str) -> Option<Threat> {
    let line = line.trim();
    let tabbed: Vec<&str> = line.split('\t').map(str::trim).collect();
    if tabbed.len() >= 5 {
        let n = tabbed.len();
        return Some(Threat {
            name: tabbed[0].to_string(),
            object_type: tabbed[1].parse().ok()?,
            time: dates::parse(tabbed[2])?,
            path: tabbed[3..n - 2].join("\t"),
            action: tabbed[n - 2].parse().ok()?,
            danger: tabbed[n - 1].parse().ok()?,
        });
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.len() < 7 {
        return None;
    }
    let n = words.len();
    let time = dates::parse(&format!("{} {}", words[2], words[3]))?;
    // re-cut the original line so spaces inside the path survive
    let after_time = line.find(words[3])? + words[3].len();
    let before_codes = line.rfind(words[n - 2])?;
    Some(Threat {
        name: words[0].to_string(),
        object_type: words[1].parse().ok()?,
        time,
        path: line.get(after_time..before_codes)?.trim().to_string(),
        action: words[n - 2].parse().ok()?,
        danger: words[n - 1].parse().ok()?,
    })
}

/// Documented `GetThreats` action codes.
pub fn action_name(code: u32) -> &'static str {
    match code {
        1 => "ok",
        2 => "infected",
        9 => "disinfected",
        11 => "deleted",
        15 => "quarantined",
        36 => "false alarm",
        38 => "terminated",
        _ => "unknown",
    }
}

/// Documented `GetThreats` object type codes.
pub fn type_name(code: u32) -> &'static str {
    match code {
        1 => "Virware",
        2 => "Trojware",
        3 => "Malware",
        4 => "Adware",
        6 => "Riskware",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_and_realtime_r() {
        // [R] shapes: no capture of kescli output exists in the sources
        assert_eq!(version("12.3.0.493\r\n").as_deref(), Some("12.3.0.493"));
        assert_eq!(
            version("Version: 11.10.0.399").as_deref(),
            Some("11.10.0.399")
        );
        assert_eq!(version("error"), None);
        assert_eq!(realtime("1\r\n"), Some(true));
        assert_eq!(realtime("0"), Some(false));
        assert_eq!(realtime("Access denied"), None);
    }

    #[test]
    fn definition_date_in_several_orders_r() {
        assert_eq!(
            definition_date("6/28/2019 9:50:17 AM\r\n")
                .unwrap()
                .to_string(),
            "2019-06-28 09:50:17"
        );
        assert_eq!(
            definition_date("2019-06-28 09:50:17").unwrap().to_string(),
            "2019-06-28 09:50:17"
        );
    }

    #[test]
    fn threats_with_spaces_in_paths_r() {
        let t =
            threat("EICAR-Test-File 1 2019-06-28 09:50:18 C:\\Users\\A B\\eicar.com 15 2").unwrap();
        assert_eq!(t.path, r"C:\Users\A B\eicar.com");
        assert_eq!((t.object_type, t.action, t.danger), (1, 15, 2));
        assert_eq!(action_name(t.action), "quarantined");
        let t =
            threat("HEUR:Trojan.Win32.Generic\t2\t2019-06-28 09:50:18\tC:\\x.exe\t11\t1").unwrap();
        assert_eq!(t.name, "HEUR:Trojan.Win32.Generic");
        assert_eq!(type_name(t.object_type), "Trojware");
        assert_eq!(threat("no threats"), None);
    }
}
