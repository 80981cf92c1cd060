//! The schedule as typed values: which task runs when, with how much random spreading, as which
//! user, logging where. Nothing here touches the file system.
//!
//! Everything that ends up in a cron file, a systemd unit or a `schtasks` command line is
//! validated here first, with allow-lists rather than deny-lists: a frequency is a strict
//! 5-field cron expression made of digits, `*`, `,`, `-` and `/` only; arguments are only
//! `--wait-rand N`; a user is a plain login name; a log file is an absolute path made of a
//! conservative character set outside world-writable temp folders. The server's schedule is
//! untrusted input (any holder of one enrolled UUID can write it, server-api.md §11), so an
//! entry that fails validation is rejected and reported, never written, and the local value
//! stays in force.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::wire::AttrValue;

/// The tasks the agent schedules for itself. Enrollment (once, by hand or by the installer)
/// and Scan (local, on demand) are not periodic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
pub enum ScheduledTask {
    Getjobs,
    Runjobs,
    State,
    Alerts,
    #[serde(rename = "AVConfig")]
    AvConfig,
    Scheduler,
}

impl ScheduledTask {
    pub const ALL: [ScheduledTask; 6] = [
        ScheduledTask::Getjobs,
        ScheduledTask::Runjobs,
        ScheduledTask::State,
        ScheduledTask::Alerts,
        ScheduledTask::AvConfig,
        ScheduledTask::Scheduler,
    ];

    /// The `-t` name (also used in the server's `scheduler:task:<Task>:…` attributes).
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduledTask::Getjobs => "Getjobs",
            ScheduledTask::Runjobs => "Runjobs",
            ScheduledTask::State => "State",
            ScheduledTask::Alerts => "Alerts",
            ScheduledTask::AvConfig => "AVConfig",
            ScheduledTask::Scheduler => "Scheduler",
        }
    }

    /// Exact, case-sensitive match on the `-t` name, as the old agent.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Built-in frequency and spreading. The old agent's `scheduler-cron.cfg` (reference-agent.md
    /// §2.3) ran Getjobs every minute, Runjobs every 2 minutes, State three times an hour and
    /// Alerts six times an hour, all agents of a fleet at the same second. The periods are kept;
    /// `--wait-rand` (always shorter than the period, so runs of one task never pile up)
    /// spreads a fleet's requests over the period instead of hitting the server in one burst.
    /// AVConfig (hourly) and Scheduler (every 6 hours, so a schedule defined on the server is
    /// picked up the same day) were not scheduled by the old agent. Every default maps to one
    /// `schtasks` trigger, so the same table works on Windows.
    pub fn default_entry(self) -> TaskEntry {
        let (freq, wait_rand) = match self {
            ScheduledTask::Getjobs => ("* * * * *", 30),
            ScheduledTask::Runjobs => ("*/2 * * * *", 60),
            ScheduledTask::State => ("*/20 * * * *", 600),
            ScheduledTask::Alerts => ("*/10 * * * *", 300),
            ScheduledTask::AvConfig => ("30 * * * *", 1800),
            ScheduledTask::Scheduler => ("15 */6 * * *", 3600),
        };
        TaskEntry {
            freq: CronExpr::parse(freq).expect("built-in frequencies are valid"),
            every: None,
            wait_rand: Some(wait_rand),
            enabled: true,
        }
    }
}

impl fmt::Display for ScheduledTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---- cron expressions ---------------------------------------------------------------------------

/// Longest accepted expression: generous for real schedules, bounded for hostile input.
const MAX_EXPR_LEN: usize = 200;

/// Why a frequency is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error("empty frequency")]
    Empty,
    #[error("frequency longer than {MAX_EXPR_LEN} characters")]
    TooLong,
    #[error(
        "character {0:?} is not allowed (only digits, '*', ',', '-', '/' and spaces: no names, no @macros)"
    )]
    BadChar(char),
    #[error(
        "expected 5 fields (minute hour day-of-month month day-of-week) separated by spaces, got {0}"
    )]
    FieldCount(usize),
    #[error("{field}: {reason}")]
    Field { field: &'static str, reason: String },
}

/// One of the five fields: its name and accepted range (cron(5)).
#[derive(Debug, Clone, Copy)]
struct FieldSpec {
    name: &'static str,
    low: u8,
    high: u8,
}

const FIELDS: [FieldSpec; 5] = [
    FieldSpec {
        name: "minute",
        low: 0,
        high: 59,
    },
    FieldSpec {
        name: "hour",
        low: 0,
        high: 23,
    },
    FieldSpec {
        name: "day-of-month",
        low: 1,
        high: 31,
    },
    FieldSpec {
        name: "month",
        low: 1,
        high: 12,
    },
    // 0 and 7 are both Sunday.
    FieldSpec {
        name: "day-of-week",
        low: 0,
        high: 7,
    },
];

/// A validated `m h dom mon dow` expression.
///
/// Accepted per field (the portable Vixie-cron subset): `*`, `*/S`, `N`, `A-B`, `A-B/S`, and
/// comma lists of those. Numbers are 1–2 ASCII digits within the field's range; `A <= B`;
/// `1 <= S <= span`. Rejected: names (`jan`, `mon`), `@reboot`-style macros, `N/S` (not
/// understood by Vixie cron), `?`, `L`, `W`, `#`, anything else. Because the character set is
/// closed (no letters, no `;`, no newline, no `%`), an accepted expression can be pasted into a
/// cron line, a unit file or an argv without any possibility of injection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    /// The fields as given, joined by one space.
    text: String,
    /// Bit i set = value i matches (day-of-week 7 folded into 0).
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// The day-of-month / day-of-week field starts with `*`. Cron's rule: when neither does,
    /// a day matches if EITHER field matches; otherwise both must (the `*` one matches all).
    dom_star: bool,
    dow_star: bool,
}

impl CronExpr {
    pub fn parse(s: &str) -> Result<Self, CronError> {
        if s.len() > MAX_EXPR_LEN {
            return Err(CronError::TooLong);
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_digit() || matches!(c, '*' | ',' | '-' | '/' | ' ' | '\t')))
        {
            return Err(CronError::BadChar(c));
        }
        let parts: Vec<&str> = s.split_ascii_whitespace().collect();
        if parts.is_empty() {
            return Err(CronError::Empty);
        }
        if parts.len() != 5 {
            return Err(CronError::FieldCount(parts.len()));
        }
        let mut masks = [0u64; 5];
        for (i, (part, spec)) in parts.iter().zip(FIELDS).enumerate() {
            masks[i] = parse_field(part, spec).map_err(|reason| CronError::Field {
                field: spec.name,
                reason,
            })?;
        }
        // Sunday is 0 or 7.
        if masks[4] & (1 << 7) != 0 {
            masks[4] = (masks[4] | 1) & !(1 << 7);
        }
        Ok(Self {
            text: parts.join(" "),
            minutes: masks[0],
            hours: masks[1],
            days: masks[2],
            months: masks[3],
            weekdays: masks[4],
            dom_star: parts[2].starts_with('*'),
            dow_star: parts[4].starts_with('*'),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn minutes(&self) -> u64 {
        self.minutes
    }

    pub fn hours(&self) -> u64 {
        self.hours
    }

    /// Days of the month, bits 1..=31.
    pub fn days(&self) -> u64 {
        self.days
    }

    /// Months, bits 1..=12.
    pub fn months(&self) -> u64 {
        self.months
    }

    /// Days of the week, bits 0..=6, 0 = Sunday.
    pub fn weekdays(&self) -> u64 {
        self.weekdays
    }

    /// Cron's day rule applies "either day field" (both fields are restricted, see
    /// [`CronExpr`]'s `dom_star`).
    pub fn days_or_weekdays(&self) -> bool {
        !self.dom_star && !self.dow_star
    }

    /// Whether cron would run the job at this minute (`dow` 0 = Sunday). Used by tests to
    /// check conversions against cron's own semantics.
    pub fn matches(&self, minute: u32, hour: u32, dom: u32, month: u32, dow: u32) -> bool {
        let bit = |mask: u64, v: u32| v < 64 && mask & (1 << v) != 0;
        let day_ok = if self.days_or_weekdays() {
            bit(self.days, dom) || bit(self.weekdays, dow)
        } else {
            bit(self.days, dom) && bit(self.weekdays, dow)
        };
        bit(self.minutes, minute) && bit(self.hours, hour) && bit(self.months, month) && day_ok
    }
}

impl CronExpr {
    /// The first time strictly after `after` at which cron would start the task, in `after`'s
    /// time zone (DST-aware), or `None` when the expression never fires again (`0 0 31 2 *`).
    /// Delegates to `croner`: [`CronExpr::parse`] has already refused everything outside the
    /// portable subset, so both agree on what the text means (checked by a test against
    /// [`CronExpr::matches`]).
    pub fn next_after<Tz: chrono::TimeZone>(
        &self,
        after: &chrono::DateTime<Tz>,
    ) -> Option<chrono::DateTime<Tz>> {
        let cron: croner::Cron = self.text.parse().ok()?;
        cron.find_next_occurrence(after, false).ok()
    }
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl TryFrom<String> for CronExpr {
    type Error = CronError;
    fn try_from(s: String) -> Result<Self, CronError> {
        CronExpr::parse(&s)
    }
}

impl From<CronExpr> for String {
    fn from(c: CronExpr) -> String {
        c.text
    }
}

impl<'de> Deserialize<'de> for CronExpr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CronExpr::parse(&s).map_err(|e| serde::de::Error::custom(format!("frequency {s:?}: {e}")))
    }
}

fn parse_field(part: &str, spec: FieldSpec) -> Result<u64, String> {
    let mut mask = 0u64;
    for item in part.split(',') {
        mask |= parse_item(item, spec)?;
    }
    Ok(mask)
}

fn parse_item(item: &str, spec: FieldSpec) -> Result<u64, String> {
    if item.is_empty() {
        return Err("empty list element".into());
    }
    let (range, step) = match item.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (item, None),
    };
    let (low, high, is_range) = if range == "*" {
        (spec.low, spec.high, true)
    } else if let Some((a, b)) = range.split_once('-') {
        let (a, b) = (number(a, spec)?, number(b, spec)?);
        if a > b {
            return Err(format!("range {a}-{b} is backwards"));
        }
        (a, b, true)
    } else {
        let n = number(range, spec)?;
        (n, n, false)
    };
    let step = match step {
        None => 1,
        Some(_) if !is_range => {
            return Err(format!(
                "{item:?}: a step needs '*' or a range before it (write {range}-{}/S)",
                spec.high
            ));
        }
        Some(s) => {
            let span = spec.high - spec.low + 1;
            let s = digits(s).ok_or_else(|| format!("invalid step {s:?}"))?;
            if s == 0 || s > span {
                return Err(format!("step {s} out of range 1-{span}"));
            }
            s
        }
    };
    let mut mask = 0u64;
    let mut v = low;
    while v <= high {
        mask |= 1 << v;
        v = v.saturating_add(step);
    }
    Ok(mask)
}

/// 1–2 ASCII digits.
fn digits(s: &str) -> Option<u8> {
    if s.is_empty() || s.len() > 2 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn number(s: &str, spec: FieldSpec) -> Result<u8, String> {
    let n = digits(s).ok_or_else(|| format!("invalid number {s:?}"))?;
    if n < spec.low || n > spec.high {
        return Err(format!("value {n} out of range {}-{}", spec.low, spec.high));
    }
    Ok(n)
}

/// The values set in a field mask, ascending.
pub fn values(mask: u64) -> Vec<u8> {
    (0u8..64).filter(|v| mask & (1 << v) != 0).collect()
}

/// Whether `mask` holds every value of `low..=high`.
pub fn is_full(mask: u64, low: u8, high: u8) -> bool {
    (low..=high).all(|v| mask & (1 << v) != 0)
}

/// `Some((start, step))` when the mask is exactly `start, start+step, …` up to `high`, with at
/// least two values: the "every `step` from `start`" repetition that systemd writes
/// `start/step` (and `schtasks` can express when it also lines up across the hour or day).
pub fn progression(mask: u64, high: u8) -> Option<(u8, u8)> {
    let v = values(mask);
    let (&start, &second) = (v.first()?, v.get(1)?);
    let step = second - start;
    let expected: Vec<u8> = (start..=high).step_by(step as usize).collect();
    (v == expected).then_some((start, step))
}

// ---- how often an expression fires ------------------------------------------------------------

/// Default `[schedule] max_period`: a server-defined task must run at least once a day.
pub const DEFAULT_MAX_PERIOD: u64 = 86_400;
/// The Scheduler task (which fetches the server's schedule) must run at least every 6 hours,
/// whatever `max_period` says, so a fleet can always be reconfigured the same day.
pub const SCHEDULER_MAX_PERIOD: u64 = 6 * 3600;

/// The longest accepted interval between two runs of `task` set by the server.
pub fn bound_for(task: ScheduledTask, max_period: u64) -> u64 {
    match task {
        ScheduledTask::Scheduler => max_period.min(SCHEDULER_MAX_PERIOD),
        _ => max_period,
    }
}

/// The longest time in seconds between two consecutive runs of `freq`, over the 28-year cycle
/// after which weekdays and leap years repeat (2001-2028, no skipped century leap year), or
/// `None` when it never runs (`0 0 31 2 *`).
pub fn max_gap_secs(freq: &CronExpr) -> Option<u64> {
    const CYCLE_DAYS: u64 = 10_227;
    let mut times: Vec<u64> = Vec::new();
    for h in values(freq.hours()) {
        for m in values(freq.minutes()) {
            times.push(u64::from(h) * 60 + u64::from(m));
        }
    }
    let (&first, &last) = (times.first()?, times.last()?);
    let mut gap = times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    // 2001-01-01 was a Monday (dow 1).
    let mut matching: Vec<u64> = Vec::new();
    let mut day = 0u64;
    for year in 2001u32..2029 {
        let leap = year % 4 == 0;
        for month in 1u32..=12 {
            let len = match month {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            for dom in 1..=len {
                let dow = ((day + 1) % 7) as u32;
                if freq.matches(first as u32 % 60, first as u32 / 60, dom, month, dow) {
                    matching.push(day);
                }
                day += 1;
            }
        }
    }
    debug_assert_eq!(day, CYCLE_DAYS);
    let (&d0, &dn) = (matching.first()?, matching.last()?);
    let day_gaps = matching
        .windows(2)
        .map(|w| w[1] - w[0])
        .chain(std::iter::once(d0 + CYCLE_DAYS - dn));
    for d in day_gaps {
        gap = gap.max(d * 1440 + first - last);
    }
    Some(gap * 60)
}

/// `90000` → `"25h"`, `600` → `"10min"`: for messages.
fn human_secs(s: u64) -> String {
    match s {
        s if s % 86_400 == 0 => format!("{} day(s)", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}min", s / 60),
        s => format!("{s} s"),
    }
}

// ---- arguments, user, log file ------------------------------------------------------------------

/// Largest `--wait-rand` accepted (one day): spreading beyond that is certainly a mistake.
pub const MAX_WAIT_RAND: u64 = 86_400;

/// Parses the server's `scheduler:task:<Task>:args`. Only random spreading is allowed
/// (`-wr N`, `--wait-rand N`, `--wait-rand=N`; empty = none): anything else could change what
/// the scheduled command does (another config file, another server, another state folder).
pub fn parse_args(s: &str) -> Result<Option<u64>, String> {
    let words: Vec<&str> = s.split_ascii_whitespace().collect();
    let n = match words.as_slice() {
        [] => return Ok(None),
        ["-wr" | "--wait-rand", n] => *n,
        [one] => one
            .strip_prefix("--wait-rand=")
            .ok_or_else(|| "only \"-wr N\" or \"--wait-rand N\" is allowed".to_string())?,
        _ => return Err("only \"-wr N\" or \"--wait-rand N\" is allowed".into()),
    };
    if n.is_empty() || n.len() > 6 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{n:?} is not a number of seconds"));
    }
    let secs: u64 = n.parse().map_err(|_| format!("{n:?} is not a number"))?;
    if secs > MAX_WAIT_RAND {
        return Err(format!("{secs} s is more than {MAX_WAIT_RAND} s"));
    }
    Ok((secs > 0).then_some(secs))
}

/// The arguments as the agent passes them (and reports them): `--wait-rand N` or nothing.
pub fn args_string(wait_rand: Option<u64>) -> String {
    wait_rand
        .map(|n| format!("--wait-rand {n}"))
        .unwrap_or_default()
}

/// A login name as useradd(8) accepts by default: it goes into the cron line's user column
/// and systemd's `User=`, so nothing but `[a-z_][a-z0-9_-]*` (≤ 32) is let through.
pub fn validate_user(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err("a user name is 1-32 characters among a-z, 0-9, '_' and '-', not starting with a digit or '-'".into())
    }
}

/// The file the scheduled commands append their output to.
///
/// Absolute (cron and systemd run from `/`), no `..` (the checks below must see the real
/// folder), not in a world-writable temp folder (the old agent logged to `/tmp`, where any user
/// could pre-create a symlink that root then appends to, reference-agent.md §12 item 5), and
/// made of `A-Z a-z 0-9 / \ : . _ - +` only: no space, quote, `%` or newline, which cron,
/// systemd and `schtasks` would each interpret differently.
pub fn validate_logfile(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("empty path".into());
    }
    if s.len() > 255 {
        return Err("longer than 255 characters".into());
    }
    if let Some(c) = s.chars().find(|c| {
        !(c.is_ascii_alphanumeric() || matches!(c, '/' | '\\' | ':' | '.' | '_' | '-' | '+'))
    }) {
        return Err(format!(
            "character {c:?} is not allowed (only letters, digits and / \\ : . _ - +)"
        ));
    }
    let bytes = s.as_bytes();
    let windows_abs =
        bytes.len() > 3 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' && bytes[2] == b'\\';
    if !(s.starts_with('/') || windows_abs) {
        return Err("not an absolute path".into());
    }
    if s.starts_with('/') && s.contains(['\\', ':']) {
        return Err("'\\' and ':' are only allowed in a Windows path (C:\\…)".into());
    }
    if s.split(['/', '\\']).any(|c| c == "..") {
        return Err("contains '..'".into());
    }
    if s.ends_with(['/', '\\']) {
        return Err("is a folder, not a file".into());
    }
    let lower = s.to_ascii_lowercase().replace('\\', "/");
    let parts: Vec<&str> = lower
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    // `/tmp`, `/var/tmp`, `C:\Windows\Temp`, `…\AppData\Local\Temp`: any folder named tmp or
    // temp, to stay on the safe side; plus `/dev/shm`.
    let in_temp =
        parts.starts_with(&["dev", "shm"]) || parts.iter().any(|c| *c == "temp" || *c == "tmp");
    if in_temp {
        return Err(
            "is in a temporary folder that other users can write (symlink attacks): use e.g. /var/log/armadito-agent/"
                .into(),
        );
    }
    Ok(())
}

// ---- the schedule -------------------------------------------------------------------------------

/// When and how one task runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEntry {
    pub freq: CronExpr,
    /// `every = "30s"`: a fixed interval instead of `freq`, for the daemon only (cron, systemd
    /// timers and schtasks are given `freq`; a task with `every` cannot be installed there).
    pub every: Option<std::time::Duration>,
    /// `--wait-rand N`: the task sleeps 0..N-1 s before starting.
    pub wait_rand: Option<u64>,
    /// `false`: not scheduled (and removed from the scheduler if a previous run installed it).
    pub enabled: bool,
}

/// Where the values of a schedule came from, reported as `scheduler:source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Defaults and `[schedule]` only.
    Local,
    /// At least one entry of the server's schedule was applied.
    Server,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Local => "local",
            Source::Server => "server",
        }
    }
}

/// The complete schedule to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub user: String,
    pub logfile: String,
    pub tasks: BTreeMap<ScheduledTask, TaskEntry>,
    pub source: Source,
}

/// A server entry that was not applied, and why. The value is kept short and escaped: it is
/// logged and sent back, never written anywhere else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub attr: String,
    pub value: String,
    pub reason: String,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {:?}: {}", self.attr, self.value, self.reason)
    }
}

/// Attributes the agent itself reports (or the server's EAV bookkeeping): a server that
/// echoes the stored schedule back sends them; they are not settings and are ignored.
const REPORT_ONLY_ATTRS: [&str; 4] = [
    "scheduler:mode",
    "scheduler:source",
    "scheduler:rejected",
    "hasAVConfig",
];

/// A frequency can be valid cron and still not expressible by the active mode (some cannot
/// be one `schtasks` trigger): the mode says so, and the server's entry is rejected.
pub type Capability<'a> = &'a dyn Fn(&CronExpr) -> Result<(), String>;

impl Schedule {
    /// Overlays the server's `{attr, value}` entries (old agent names, server-api.md §3.8).
    /// The server may set only each task's frequency and spread, and only values that run the
    /// task at least once per `max_period` seconds (Scheduler: at least every
    /// [`SCHEDULER_MAX_PERIOD`]), so no schedule can switch a fleet off; the user and the log
    /// file come from agent.toml only. A task disabled locally stays disabled.
    /// Returns what was rejected; a rejected entry leaves the local value in force.
    pub fn apply_server(
        &mut self,
        entries: &[AttrValue],
        supported: Capability<'_>,
        max_period: u64,
    ) -> Vec<Rejected> {
        let mut rejected = Vec::new();
        let mut applied = 0usize;
        for e in entries {
            if REPORT_ONLY_ATTRS.contains(&e.attr.as_str()) {
                continue;
            }
            let value = match &e.value {
                serde_json::Value::String(s) => s.as_str(),
                other => {
                    rejected.push(reject(
                        &e.attr,
                        &other.to_string(),
                        "the value must be a string",
                    ));
                    continue;
                }
            };
            match self.apply_one(&e.attr, value, supported, max_period) {
                Ok(()) => applied += 1,
                Err(reason) => rejected.push(reject(&e.attr, value, &reason)),
            }
        }
        if applied > 0 {
            self.source = Source::Server;
        }
        rejected
    }

    fn apply_one(
        &mut self,
        attr: &str,
        value: &str,
        supported: Capability<'_>,
        max_period: u64,
    ) -> Result<(), String> {
        // The user and the log file decide what root writes where (the scheduled command
        // appends output carrying server text to the log file): agent.toml only.
        if matches!(attr, "scheduler:user" | "scheduler:logfile") {
            return Err(
                "not changeable remotely (set [schedule] user / logfile in agent.toml)".into(),
            );
        }
        let Some(rest) = attr.strip_prefix("scheduler:task:") else {
            return Err("unknown attribute".into());
        };
        let Some((name, key)) = rest.rsplit_once(':') else {
            return Err("unknown attribute".into());
        };
        let task = ScheduledTask::from_name(name).ok_or_else(|| {
            format!(
                "unknown task {name:?} (schedulable: {})",
                ScheduledTask::ALL.map(|t| t.as_str()).join(", ")
            )
        })?;
        let entry = self
            .tasks
            .entry(task)
            .or_insert_with(|| task.default_entry());
        match key {
            "freq" => {
                let freq = CronExpr::parse(value).map_err(|e| e.to_string())?;
                let bound = bound_for(task, max_period);
                match max_gap_secs(&freq) {
                    Some(gap) if gap <= bound => {}
                    Some(gap) => {
                        return Err(format!(
                            "runs only every {} at worst; a server-defined {task} must run at least every {}",
                            human_secs(gap),
                            human_secs(bound)
                        ));
                    }
                    None => return Err("never runs".into()),
                }
                supported(&freq)?;
                entry.freq = freq;
                // The server's frequency replaces a local interval too.
                entry.every = None;
            }
            "args" => {
                let wait_rand = parse_args(value)?;
                let bound = bound_for(task, max_period);
                if wait_rand.is_some_and(|n| n >= bound) {
                    return Err(format!(
                        "a spread of {} s delays {task} beyond its maximum period ({})",
                        wait_rand.unwrap_or_default(),
                        human_secs(bound)
                    ));
                }
                entry.wait_rand = wait_rand;
            }
            _ => return Err("unknown attribute (expected …:freq or …:args)".into()),
        }
        Ok(())
    }

    /// The `confdetails` of the report: the old agent's attributes for every schedulable task
    /// (a disabled one as `disabled`, since the server never forgets an attribute, §9), then
    /// `scheduler:mode`, `scheduler:source` and `scheduler:rejected` (always sent, empty when
    /// nothing was rejected, so a fixed problem does not stay visible on the server forever).
    pub fn confdetails(&self, mode: &str, logfile: &str, rejected: &[Rejected]) -> Vec<AttrValue> {
        let mut v = vec![
            AttrValue::new("scheduler:user", self.user.clone()),
            AttrValue::new("scheduler:logfile", logfile.to_string()),
        ];
        for task in ScheduledTask::ALL {
            let (freq, args) = match self.tasks.get(&task) {
                Some(e) if e.enabled => (
                    match e.every {
                        Some(d) => format!("every {}", humantime::format_duration(d)),
                        None => e.freq.to_string(),
                    },
                    args_string(e.wait_rand),
                ),
                _ => ("disabled".to_string(), String::new()),
            };
            v.push(AttrValue::new(format!("scheduler:task:{task}:freq"), freq));
            v.push(AttrValue::new(format!("scheduler:task:{task}:args"), args));
        }
        v.push(AttrValue::new("scheduler:mode", mode.to_string()));
        v.push(AttrValue::new("scheduler:source", self.source.as_str()));
        let summary: Vec<String> = rejected.iter().map(|r| r.to_string()).collect();
        v.push(AttrValue::new("scheduler:rejected", summary.join("; ")));
        v
    }

    /// The enabled tasks, in a stable order.
    pub fn enabled(&self) -> impl Iterator<Item = (ScheduledTask, &TaskEntry)> {
        self.tasks
            .iter()
            .filter(|(_, e)| e.enabled)
            .map(|(t, e)| (*t, e))
    }
}

fn reject(attr: &str, value: &str, reason: &str) -> Rejected {
    const MAX: usize = 80;
    let value = if value.chars().count() > MAX {
        format!("{}…", value.chars().take(MAX).collect::<String>())
    } else {
        value.to_string()
    };
    Rejected {
        attr: attr.chars().take(MAX).collect(),
        value,
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> CronExpr {
        CronExpr::parse(s).unwrap_or_else(|e| panic!("{s:?} should be accepted: {e}"))
    }

    fn err(s: &str) -> String {
        match CronExpr::parse(s) {
            Ok(c) => panic!("{s:?} should be rejected, got {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn accepts_the_portable_subset() {
        for s in [
            "* * * * *",
            "*/2 * * * *",
            "00,20,40 * * * *",
            "01,12,22,31,41,51 * * * *",
            "0 3 * * 1-5",
            "5-55/10 0-23/2 1,15 1-12 0,7",
            "59 23 31 12 7",
            "  0\t3  *  *  * ",
        ] {
            ok(s);
        }
        assert_eq!(ok("  0\t3  *  *  * ").as_str(), "0 3 * * *");
        let c = ok("5-55/10 0-23/2 1,15 1-12 0,7");
        assert_eq!(
            c.minutes(),
            (0..6).map(|i| 1u64 << (5 + 10 * i)).sum::<u64>()
        );
        assert_eq!(c.hours(), (0..12).map(|i| 1u64 << (2 * i)).sum::<u64>());
        assert_eq!(c.days(), (1 << 1) | (1 << 15));
        assert_eq!(c.weekdays(), 1, "0 and 7 are both Sunday");
    }

    #[test]
    fn rejects_injection_attempts() {
        for (s, needle) in [
            ("* * * * * root rm -rf /", "'r' is not allowed"),
            ("*/5 * * * *; reboot", "';' is not allowed"),
            ("* * * * *\n* * * * * root id", "'\\n' is not allowed"),
            ("* * * * *\r", "'\\r' is not allowed"),
            ("* * * * * %", "'%' is not allowed"),
            ("* * * * * * *", "got 7"),
            ("@reboot", "'@' is not allowed"),
            ("* * * * $(id)", "'$' is not allowed"),
            ("* * * * `id`", "'`' is not allowed"),
            ("* * * jan mon", "'j' is not allowed"),
            ("* * * * ?", "'?' is not allowed"),
            ("* * * * 1#2", "'#' is not allowed"),
            ("* * * * *\u{a0}", "'\\u{a0}' is not allowed"),
        ] {
            let e = err(s);
            assert!(e.contains(needle), "{s:?}: {e}");
        }
    }

    #[test]
    fn rejects_out_of_range_and_malformed_fields() {
        for (s, needle) in [
            ("", "empty"),
            ("   ", "empty"),
            ("* * * *", "got 4"),
            ("60 * * * *", "minute: value 60 out of range 0-59"),
            ("* 24 * * *", "hour: value 24"),
            ("* * 0 * *", "day-of-month: value 0 out of range 1-31"),
            ("* * * 13 *", "month: value 13"),
            ("* * * * 8", "day-of-week: value 8"),
            ("*/0 * * * *", "step 0 out of range"),
            ("*/61 * * * *", "step 61 out of range 1-60"),
            ("5/15 * * * *", "a step needs"),
            ("10-5 * * * *", "backwards"),
            ("1,,2 * * * *", "empty list element"),
            ("1- * * * *", "invalid number"),
            ("-1 * * * *", "invalid number"),
            ("001 * * * *", "invalid number"),
            ("*/ * * * *", "invalid step"),
            ("*/2/2 * * * *", "invalid step"),
            ("** * * * *", "invalid number"),
        ] {
            let e = err(s);
            assert!(e.contains(needle), "{s:?}: {e}");
        }
        assert!(err(&"1,".repeat(150)).contains("longer than"));
    }

    /// croner's next fire time is, minute by minute, the first minute our own cron semantics
    /// ([`CronExpr::matches`]) accept: the two readings of an expression never disagree.
    #[test]
    fn next_after_agrees_with_cron_semantics() {
        use chrono::{Datelike, TimeZone, Timelike, Utc};
        for expr in [
            "* * * * *",
            "*/20 * * * *",
            "30 * * * *",
            "15 */6 * * *",
            "0 9 1,15 * 1",
            "0 0 13 * 5",
            "5 4 * * 0",
            "0 12 * 2 7",
            "10-20/5 1 * * 1-5",
        ] {
            let c = ok(expr);
            let mut t = Utc.with_ymd_and_hms(2026, 2, 27, 23, 58, 30).unwrap();
            for _ in 0..5 {
                let next = c
                    .next_after(&t)
                    .unwrap_or_else(|| panic!("{expr} never fires"));
                assert!(next > t && next.second() == 0, "{expr}: {t} -> {next}");
                let mut m = t.with_second(0).unwrap() + chrono::Duration::minutes(1);
                let first = loop {
                    let dow = m.weekday().num_days_from_sunday();
                    if c.matches(m.minute(), m.hour(), m.day(), m.month(), dow) {
                        break m;
                    }
                    m += chrono::Duration::minutes(1);
                };
                assert_eq!(next, first, "{expr} after {t}");
                t = next;
            }
        }
        assert_eq!(ok("0 0 31 2 *").next_after(&Utc::now()), None);
    }

    #[test]
    fn day_rule_follows_cron() {
        // both restricted: either matches (1st of the month OR a Monday)
        let c = ok("0 0 1 * 1");
        assert!(c.days_or_weekdays());
        assert!(c.matches(0, 0, 1, 5, 3));
        assert!(c.matches(0, 0, 9, 5, 1));
        assert!(!c.matches(0, 0, 9, 5, 3));
        // a field starting with '*' makes it AND, even when the step restricts it
        let c = ok("0 0 1 * */2");
        assert!(!c.days_or_weekdays());
        assert!(c.matches(0, 0, 1, 5, 2));
        assert!(!c.matches(0, 0, 1, 5, 3));
        assert!(!c.matches(0, 0, 2, 5, 2));
    }

    #[test]
    fn progressions() {
        assert_eq!(progression(ok("* * * * *").minutes(), 59), Some((0, 1)));
        assert_eq!(progression(ok("*/20 * * * *").minutes(), 59), Some((0, 20)));
        assert_eq!(
            progression(ok("5-59/15 * * * *").minutes(), 59),
            Some((5, 15))
        );
        assert_eq!(
            progression(ok("0,20,40 * * * *").minutes(), 59),
            Some((0, 20))
        );
        // stops before the end of the hour: not a repetition
        assert_eq!(progression(ok("5-40/15 * * * *").minutes(), 59), None);
        assert_eq!(progression(ok("1,12,22 * * * *").minutes(), 59), None);
        assert_eq!(progression(ok("30 * * * *").minutes(), 59), None);
        assert_eq!(
            progression(ok("7-59/5 * * * *").minutes(), 59),
            Some((7, 5))
        );
        assert!(is_full(ok("* * * * *").hours(), 0, 23));
        assert!(!is_full(ok("* 1-23 * * *").hours(), 0, 23));
        assert_eq!(values(ok("0 1,5,9 * * *").hours()), vec![1, 5, 9]);
    }

    #[test]
    fn args_allow_list() {
        assert_eq!(parse_args(""), Ok(None));
        assert_eq!(parse_args("  "), Ok(None));
        assert_eq!(parse_args("-wr 5"), Ok(Some(5)));
        assert_eq!(parse_args("--wait-rand 60"), Ok(Some(60)));
        assert_eq!(parse_args("--wait-rand=60"), Ok(Some(60)));
        assert_eq!(parse_args("-wr 0"), Ok(None));
        for bad in [
            "-wr 5; reboot",
            "-wr 5 -s http://evil",
            "-c /tmp/evil.toml",
            "--state-dir /tmp",
            "-wr",
            "-wr -5",
            "-wr 5s",
            "-wr 86401",
            "-wr 99999999999999999999",
            "-t Enrollment",
            "$(id)",
        ] {
            assert!(parse_args(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(args_string(Some(5)), "--wait-rand 5");
        assert_eq!(args_string(None), "");
    }

    #[test]
    fn users_and_logfiles() {
        for good in ["root", "armadito", "_svc", "av-agent1"] {
            validate_user(good).unwrap();
        }
        for bad in [
            "",
            "Root",
            "1x",
            "-x",
            "root\n* * * * * root id",
            "a b",
            "a;b",
            &"a".repeat(33),
        ] {
            assert!(validate_user(bad).is_err(), "{bad:?}");
        }
        for good in [
            "/var/log/armadito-agent/agent.log",
            "/var/log/armadito.log",
            r"C:\ProgramData\Armadito-Agent\logs\agent.log",
        ] {
            validate_logfile(good).unwrap();
        }
        for (bad, needle) in [
            ("", "empty"),
            ("agent.log", "absolute"),
            ("/tmp/armadito-agent.log", "temporary"),
            ("/var/tmp/a.log", "temporary"),
            ("/dev/shm/a.log", "temporary"),
            ("//tmp/a.log", "temporary"),
            ("/./tmp/a.log", "temporary"),
            ("/var/log/../../tmp/a.log", "'..'"),
            (r"C:\Windows\Temp\a.log", "temporary"),
            ("/var/log/a b.log", "' '"),
            ("/var/log/a%d.log", "'%'"),
            ("/var/log/a.log\n* * * * * root id", "'\\n'"),
            ("/var/log/a'.log", "'\\''"),
            ("/var/log/", "folder"),
            ("/var/log/a\\b.log", "Windows path"),
        ] {
            let e = validate_logfile(bad).unwrap_err();
            assert!(e.contains(needle), "{bad:?}: {e}");
        }
    }

    fn local() -> Schedule {
        Schedule {
            user: "root".into(),
            logfile: "/var/log/armadito-agent/agent.log".into(),
            tasks: ScheduledTask::ALL
                .into_iter()
                .map(|t| (t, t.default_entry()))
                .collect(),
            source: Source::Local,
        }
    }

    fn any(_: &CronExpr) -> Result<(), String> {
        Ok(())
    }

    #[test]
    fn server_entries_are_applied_or_rejected_one_by_one() {
        let mut s = local();
        let entries = vec![
            AttrValue::new("scheduler:task:Getjobs:freq", "*/5 * * * *"),
            AttrValue::new("scheduler:task:Runjobs:args", "-wr 5"),
            AttrValue::new("scheduler:task:State:freq", "* * * * * root rm -rf /"),
            AttrValue::new("scheduler:task:Alerts:args", "-wr 5; reboot"),
            AttrValue::new("scheduler:logfile", "/tmp/armadito-agent.log"),
            AttrValue::new("scheduler:user", "root\n* * * * * root id"),
            AttrValue::new("scheduler:task:Enrollment:freq", "* * * * *"),
            AttrValue::new("scheduler:task:Getjobs:cmd", "id"),
            AttrValue::new("scheduler:foo", "x"),
            AttrValue::new("scheduler:task:AVConfig:freq", 5),
            // what the agent itself reported: ignored, not rejected
            AttrValue::new("scheduler:source", "local"),
            AttrValue::new("scheduler:rejected", ""),
        ];
        let rejected = s.apply_server(&entries, &any, DEFAULT_MAX_PERIOD);
        assert_eq!(s.source, Source::Server);
        assert_eq!(
            s.tasks[&ScheduledTask::Getjobs].freq.as_str(),
            "*/5 * * * *"
        );
        assert_eq!(s.tasks[&ScheduledTask::Runjobs].wait_rand, Some(5));
        let defaults = local();
        for t in [
            ScheduledTask::State,
            ScheduledTask::Alerts,
            ScheduledTask::AvConfig,
        ] {
            assert_eq!(s.tasks[&t], defaults.tasks[&t], "{t} keeps its local value");
        }
        assert_eq!(s.logfile, defaults.logfile);
        assert_eq!(s.user, "root");
        let attrs: Vec<&str> = rejected.iter().map(|r| r.attr.as_str()).collect();
        assert_eq!(
            attrs,
            [
                "scheduler:task:State:freq",
                "scheduler:task:Alerts:args",
                "scheduler:logfile",
                "scheduler:user",
                "scheduler:task:Enrollment:freq",
                "scheduler:task:Getjobs:cmd",
                "scheduler:foo",
                "scheduler:task:AVConfig:freq",
            ]
        );
        // the report echoes the rejected values escaped, on one line
        let line = rejected[3].to_string();
        assert_eq!(
            line,
            "scheduler:user = \"root\\n* * * * * root id\": not changeable remotely (set [schedule] user / logfile in agent.toml)"
        );
    }

    #[test]
    fn server_values_the_mode_cannot_express_are_rejected() {
        let mut s = local();
        let only_every_minute = |c: &CronExpr| {
            if c.as_str() == "* * * * *" {
                Ok(())
            } else {
                Err("not expressible".to_string())
            }
        };
        let rejected = s.apply_server(
            &[AttrValue::new("scheduler:task:Getjobs:freq", "0 3 * * *")],
            &only_every_minute,
            DEFAULT_MAX_PERIOD,
        );
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].reason, "not expressible");
        assert_eq!(s.source, Source::Local);
    }

    #[test]
    fn a_locally_disabled_task_stays_disabled() {
        let mut s = local();
        s.tasks.get_mut(&ScheduledTask::AvConfig).unwrap().enabled = false;
        let rejected = s.apply_server(
            &[AttrValue::new(
                "scheduler:task:AVConfig:freq",
                "*/5 * * * *",
            )],
            &any,
            DEFAULT_MAX_PERIOD,
        );
        assert!(rejected.is_empty());
        assert!(!s.tasks[&ScheduledTask::AvConfig].enabled);
        assert_eq!(s.enabled().count(), 5);
    }

    #[test]
    fn report_lists_every_task_and_always_the_rejections() {
        let mut s = local();
        s.tasks.get_mut(&ScheduledTask::Scheduler).unwrap().enabled = false;
        let d = s.confdetails("cron", "/var/log/armadito-agent/agent.log", &[]);
        let pairs: Vec<(String, String)> = d
            .iter()
            .map(|a| (a.attr.clone(), a.value.as_str().unwrap().to_string()))
            .collect();
        let get = |k: &str| pairs.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
        assert_eq!(pairs[0], ("scheduler:user".into(), "root".into()));
        assert_eq!(pairs[1].0, "scheduler:logfile");
        assert_eq!(get("scheduler:task:Getjobs:freq"), Some("* * * * *"));
        assert_eq!(get("scheduler:task:Getjobs:args"), Some("--wait-rand 30"));
        assert_eq!(get("scheduler:task:AVConfig:freq"), Some("30 * * * *"));
        assert_eq!(get("scheduler:task:Scheduler:freq"), Some("disabled"));
        assert_eq!(get("scheduler:task:Scheduler:args"), Some(""));
        assert_eq!(get("scheduler:mode"), Some("cron"));
        assert_eq!(get("scheduler:source"), Some("local"));
        assert_eq!(get("scheduler:rejected"), Some(""));
        assert_eq!(pairs.len(), 2 + 12 + 3);
    }

    #[test]
    fn gaps_follow_the_calendar() {
        let gap = |s: &str| max_gap_secs(&ok(s));
        assert_eq!(gap("* * * * *"), Some(60));
        assert_eq!(gap("*/20 * * * *"), Some(1200));
        assert_eq!(gap("15 */6 * * *"), Some(6 * 3600));
        assert_eq!(gap("0 3 * * *"), Some(86_400));
        assert_eq!(gap("0 22,2 * * *"), Some(20 * 3600));
        assert_eq!(gap("0 0 * * 1-5"), Some(3 * 86_400), "Friday to Monday");
        assert_eq!(gap("0 0 1 * *"), Some(31 * 86_400));
        assert_eq!(gap("0 0 29 2 *"), Some(1461 * 86_400), "leap days only");
        assert_eq!(gap("0 0 31 2 *"), None);
        assert_eq!(gap("0 0 30 2 *"), None);
        // either-day rule: the 31st OR a Monday
        assert_eq!(gap("0 0 31 * 1"), Some(7 * 86_400));
    }

    #[test]
    fn server_cannot_switch_a_task_off_or_move_its_output() {
        let mut s = local();
        let rejected = s.apply_server(
            &[
                AttrValue::new("scheduler:logfile", "/root/.bashrc"),
                AttrValue::new("scheduler:logfile", "/etc/profile.d/x.sh"),
                AttrValue::new("scheduler:user", "nobody"),
                AttrValue::new("scheduler:task:Getjobs:freq", "0 0 31 2 *"),
                AttrValue::new("scheduler:task:State:freq", "0 0 1 * *"),
                AttrValue::new("scheduler:task:Scheduler:freq", "0 0 * * *"),
                AttrValue::new("scheduler:task:Runjobs:args", "-wr 86400"),
                AttrValue::new("scheduler:task:Scheduler:args", "-wr 21600"),
                // within bounds: applied
                AttrValue::new("scheduler:task:Alerts:freq", "0 3 * * *"),
                AttrValue::new("scheduler:task:AVConfig:freq", "0 */6 * * *"),
                AttrValue::new("scheduler:task:Scheduler:freq", "0 */3 * * *"),
            ],
            &any,
            DEFAULT_MAX_PERIOD,
        );
        let reasons: Vec<String> = rejected.iter().map(|r| r.to_string()).collect();
        assert_eq!(rejected.len(), 8, "{reasons:#?}");
        assert!(
            reasons[0].contains("not changeable remotely"),
            "{reasons:?}"
        );
        assert!(reasons[3].contains("never runs"), "{reasons:?}");
        assert!(
            reasons[5].contains("Scheduler must run at least every 6h"),
            "{reasons:?}"
        );
        let defaults = local();
        assert_eq!((s.user.as_str(), &s.logfile), ("root", &defaults.logfile));
        for t in [
            ScheduledTask::Getjobs,
            ScheduledTask::State,
            ScheduledTask::Runjobs,
        ] {
            assert_eq!(s.tasks[&t], defaults.tasks[&t], "{t}");
        }
        assert_eq!(s.tasks[&ScheduledTask::Alerts].freq.as_str(), "0 3 * * *");
        assert_eq!(
            s.tasks[&ScheduledTask::Scheduler].freq.as_str(),
            "0 */3 * * *"
        );
        // a smaller configured bound refuses a daily run
        let mut s = local();
        let rejected = s.apply_server(
            &[AttrValue::new("scheduler:task:Alerts:freq", "0 3 * * *")],
            &any,
            3600,
        );
        assert!(
            rejected[0].reason.contains("at least every 1h"),
            "{rejected:?}"
        );
    }

    #[test]
    fn defaults_spread_less_than_their_period() {
        for t in ScheduledTask::ALL {
            let e = t.default_entry();
            let minutes = e.freq.minutes().count_ones() as u64;
            let hours = e.freq.hours().count_ones() as u64;
            let period = 86_400 / (minutes * hours);
            assert!(e.wait_rand.unwrap() < period, "{t}: {e:?}");
        }
    }
}
