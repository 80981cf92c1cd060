//! Legacy ESETS 4.x detections in syslog (`esets_daemon` lines, reference-agent §7.2):
//! `Nov 23 14:22:33 host esets_daemon[6974]: summ[1b3e0300]: vdb=31502, agent=pac,
//! name="…", virus="…", action="…", info="…", avstatus="…", hop="…"`.

use chrono::NaiveDateTime;

use crate::dates::parse_syslog_stamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub time: NaiveDateTime,
    pub agent: String,
    pub path: String,
    pub threat: String,
    pub action: String,
    pub info: String,
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<(&'a str, &'a str)> {
    let from = s.find(start)? + start.len();
    let len = s[from..].find(end)?;
    Some((&s[from..from + len], &s[from + len + end.len()..]))
}

/// One syslog line; `None` for other programs, other message kinds and `not scanned`
/// entries (the old agent's exclusion).
pub fn event(line: &str, now: NaiveDateTime) -> Option<Event> {
    let stamp = line.get(..15)?;
    let time = parse_syslog_stamp(stamp, now)?;
    let msg = &line[15..];
    let prog = msg
        .find(" esets_daemon[")
        .or_else(|| msg.find(" esets_daemon:"))?;
    let msg = &msg[prog..];
    if msg.contains(", avstatus=\"not scanned\"") {
        return None;
    }
    let agent = between(msg, "agent=", ",").map(|(a, _)| a.trim().to_string());
    let (path, rest) = between(msg, "name=\"", "\", virus=\"")?;
    let (threat, rest) = between(rest, "", "\", action=\"")?;
    let (action, rest) = between(rest, "", "\", info=\"")?;
    let info = rest
        .rfind("\", avstatus=\"")
        .map(|i| &rest[..i])
        .unwrap_or_else(|| rest.trim_end().trim_end_matches('"'));
    Some(Event {
        time,
        agent: agent.unwrap_or_default(),
        path: path.to_string(),
        threat: threat.to_string(),
        action: action.to_string(),
        info: info.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    /// Verbatim from the old agent's source comment (reference-agent §7.2).
    const LINE: &str = "Nov 23 14:22:33 n5trusty32a esets_daemon[6974]: summ[1b3e0300]: vdb=31502, agent=pac, name=\"/home/malwares/…/CVE-2012-0158_E94F9B67A66FFAF62FB5CE87B677DC5C.rtf\", virus=\"Win32/Exploit.CVE-2012-0158.AJ trojan\", action=\"cleaned by deleting\", info=\"Event occurred on a new file created by the application: /usr/bin/scp (EEBC3C511B955D5AE2A52A5CE66EC472398AB6B9).\", avstatus=\"clean (deleted)\", hop=\"discarded\"";

    fn now() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2016, 12, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
    }

    #[test]
    fn old_agent_sample() {
        let e = event(LINE, now()).unwrap();
        assert_eq!(e.time.to_string(), "2016-11-23 14:22:33");
        assert!(
            e.path
                .ends_with("CVE-2012-0158_E94F9B67A66FFAF62FB5CE87B677DC5C.rtf")
        );
        assert_eq!(e.threat, "Win32/Exploit.CVE-2012-0158.AJ trojan");
        assert_eq!(e.action, "cleaned by deleting");
        assert_eq!(e.agent, "pac");
        assert!(
            e.info
                .ends_with("(EEBC3C511B955D5AE2A52A5CE66EC472398AB6B9).")
        );
    }

    #[test]
    fn other_lines_are_ignored() {
        assert_eq!(event(&LINE.replace("esets_daemon", "sshd"), now()), None);
        assert_eq!(
            event(
                &LINE.replace("avstatus=\"clean (deleted)\"", "avstatus=\"not scanned\""),
                now()
            ),
            None
        );
        assert_eq!(event("short", now()), None);
        assert_eq!(
            event("Nov 23 14:22:33 h esets_daemon[1]: started", now()),
            None
        );
    }
}
