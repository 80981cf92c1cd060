//! The plugin's shared validation primitives (§1.6), reproduced with their
//! PHP quirks because they decide which agent requests succeed.

use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

use super::php::time::{fmt_datetime, format_interval};
use super::php::{
    Ctx, Failure, Notice, Pv, float_to_string, loose_eq, scalar_to_string, to_php_string,
};

const TOOLBOX: &str = "inc/toolbox.class.php";

/// Outcome of `validateInt`: `Some(n)` or PHP's `false` (which behaves as 0
/// in SQL and as `""` in string concatenation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhpInt(pub Option<i64>);

impl PhpInt {
    /// Value as MySQL sees it (`false` → 0).
    pub fn sql(self) -> i64 {
        self.0.unwrap_or(0)
    }
    /// Value in a PHP string concatenation (`false` → empty).
    pub fn concat(self) -> String {
        self.0.map(|i| i.to_string()).unwrap_or_default()
    }
}

/// `filter_var($v, FILTER_VALIDATE_INT)`: trims whitespace, optional sign,
/// no leading zeros, must fit in 64 bits.
pub fn filter_validate_int(v: &Value) -> Option<i64> {
    let s = scalar_to_string(v)?;
    let t = s.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n' | '\x0b'));
    if t.is_empty() {
        return None;
    }
    if t == "0" {
        return Some(0);
    }
    let (neg, body) = match t.as_bytes()[0] {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    if body == "0" {
        return Some(0);
    }
    let first = body.bytes().next()?;
    if !(b'1'..=b'9').contains(&first) || !body.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let text = if neg {
        format!("-{body}")
    } else {
        body.to_string()
    };
    text.parse::<i64>().ok()
}

/// `validateInt`: `filter_var` then the loose `$ret != $var` check, so falsy
/// inputs (missing, `null`, `false`, `""`, `[]`) pass and yield `false`.
pub fn validate_int(ctx: &mut Ctx, v: &Value) -> Result<PhpInt, Failure> {
    let r = filter_validate_int(v);
    let same = match r {
        Some(i) => loose_eq(&Pv::Int(i), &Pv::of(v)),
        None => loose_eq(&Pv::Bool(false), &Pv::of(v)),
    };
    if !same {
        let shown = to_php_string(ctx, v, TOOLBOX, 61)?;
        return Err(Failure::exc(format!("Invalid int : \"{shown}\"")));
    }
    Ok(PhpInt(r))
}

fn uuid_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^[A-Z0-9]{8}-[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{12}$")
            .expect("static regex")
    })
}

fn key_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}$")
            .expect("static regex")
    })
}

/// PCRE semantics of a pattern ending in `$` (no `D` modifier): `$` also
/// matches right before one final `\n`.
fn pcre_match(re: &Regex, s: &str) -> bool {
    re.is_match(s.strip_suffix('\n').unwrap_or(s))
}

/// `filter_var(FILTER_VALIDATE_REGEXP)` + loose `!=`: returns the matched
/// string, or `None` (PHP `false`) for falsy inputs that slip through.
fn validate_regexp(
    ctx: &mut Ctx,
    v: &Value,
    re: &Regex,
    what: &str,
) -> Result<Option<String>, Failure> {
    let r = scalar_to_string(v).filter(|s| pcre_match(re, s));
    let same = match &r {
        Some(s) => loose_eq(&Pv::Str(s), &Pv::of(v)),
        None => loose_eq(&Pv::Bool(false), &Pv::of(v)),
    };
    if !same {
        let shown = to_php_string(ctx, v, TOOLBOX, 84)?;
        return Err(Failure::exc(format!("Invalid {what} : \"{shown}\"")));
    }
    Ok(r)
}

/// `validateUUID` (uppercase only; falsy passes as `false` ⇒ `''`).
pub fn validate_uuid(ctx: &mut Ctx, v: &Value) -> Result<Option<String>, Failure> {
    validate_regexp(ctx, v, uuid_re(), "UUID")
}

/// `validateKey` (uppercase only; falsy passes as `false` ⇒ `''`).
pub fn validate_key(ctx: &mut Ctx, v: &Value) -> Result<Option<String>, Failure> {
    validate_regexp(ctx, v, key_re(), "Key format")
}

/// True when `s` is what a well-behaved agent sends as UUID.
pub fn is_strict_uuid(s: &str) -> bool {
    uuid_re().is_match(s)
}

/// `formatDate`: only exactly ten ASCII digits (int or string, PCRE `$`
/// tolerating one trailing `\n`) are accepted, then `date('Y-m-d H:i:s')`.
pub fn format_date(ctx: &mut Ctx, v: &Value) -> Result<String, Failure> {
    let s = match v {
        Value::Array(_) | Value::Object(_) => None,
        other => scalar_to_string(other),
    };
    if let Some(s) = s {
        let core = s.strip_suffix('\n').unwrap_or(&s);
        if core.len() == 10 && core.bytes().all(|c| c.is_ascii_digit()) {
            if core.len() != s.len() {
                ctx.notice(Notice::e_notice(
                    "A non well formed numeric value encountered",
                    TOOLBOX,
                    121,
                ));
            }
            let ts: i64 = core.parse().unwrap_or(0);
            return Ok(fmt_datetime(ts));
        }
    } else {
        ctx.notice(Notice::e_warning(
            format!(
                "preg_match() expects parameter 2 to be string, {} given",
                php_type(v)
            ),
            TOOLBOX,
            118,
        ));
    }
    let shown = to_php_string(ctx, v, TOOLBOX, 124)?;
    Err(Failure::exc(format!(
        "Date is not a valid unix timestamp : {shown}\""
    )))
}

/// PHP's name of a value's type, as used in zpp messages.
pub fn php_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() => "integer",
        Value::Number(_) => "float",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `formatDuration`: `HH:MM:SS` (two digits each) is rewritten to
/// `PT<h>H<m>M<s>S`; the result goes through `new DateInterval()` and is
/// formatted `'%dd %Hh %Im %Ss'` (years/months dropped, no normalisation).
pub fn format_duration(v: &Value) -> Result<String, Failure> {
    let s = match v {
        Value::Array(_) | Value::Object(_) => {
            return Err(Failure::exc(format!(
                "DateInterval::__construct() expects parameter 1 to be string, {} given",
                php_type(v)
            )));
        }
        other => scalar_to_string(other).unwrap_or_default(),
    };
    let spec = match hhmmss(&s) {
        Some((h, m, sec)) => format!("PT{h}H{m}M{sec}S"),
        None => s.clone(),
    };
    match parse_date_interval(&spec) {
        Some(iv) => Ok(format_interval(iv.d, iv.h, iv.i, iv.s)),
        None => Err(Failure::exc(format!(
            "DateInterval::__construct(): Unknown or bad format ({spec})"
        ))),
    }
}

/// `/^(\d{2}):(\d{2}):(\d{2})$/` with PCRE's trailing-newline `$`.
fn hhmmss(s: &str) -> Option<(&str, &str, &str)> {
    let t = s.strip_suffix('\n').unwrap_or(s);
    let b = t.as_bytes();
    if b.len() == 8
        && b[2] == b':'
        && b[5] == b':'
        && [0, 1, 3, 4, 6, 7].iter().all(|&i| b[i].is_ascii_digit())
    {
        Some((&t[0..2], &t[3..5], &t[6..8]))
    } else {
        None
    }
}

/// Fields of a parsed `DateInterval`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Interval {
    pub y: i64,
    pub m: i64,
    pub d: i64,
    pub h: i64,
    pub i: i64,
    pub s: i64,
}

/// timelib's ISO-8601 interval scanner (`parse_iso_intervals.re`) restricted
/// to what `new DateInterval()` accepts: a period `P[nY][nM][nW][nD][T[nH][nM][nS]]`
/// (integers of at most 12 digits) or the combined `PYYYY-MM-DDTHH:MM:SS`
/// form. Spaces, tabs, dots, commas, NUL and newlines between tokens are
/// skipped like timelib does; anything else is "Unknown or bad format".
pub fn parse_date_interval(spec: &str) -> Option<Interval> {
    let b = spec.as_bytes();
    let mut i = 0;
    let mut result: Option<Interval> = None;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' | b'.' | b',' | b'\n' | 0 => i += 1,
            b'P' => {
                if let Some((iv, len)) = combined(&b[i..]) {
                    result = Some(iv);
                    i += len;
                    continue;
                }
                let len = period_token_len(&b[i..]);
                let iv = period_action(&b[i..i + len])?;
                result = Some(iv);
                i += len;
            }
            _ => return None,
        }
    }
    result
}

/// Length of the longest prefix matching the re2c `period` rule.
fn period_token_len(b: &[u8]) -> usize {
    let mut i = 1; // 'P'
    let num_then = |i: usize, unit: u8| -> Option<usize> {
        let mut j = i;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > i && j < b.len() && b[j] == unit {
            Some(j + 1)
        } else {
            None
        }
    };
    for unit in [b'Y', b'M', b'W', b'D'] {
        if let Some(j) = num_then(i, unit) {
            i = j;
        }
    }
    if i < b.len() && b[i] == b'T' {
        let mut j = i + 1;
        for unit in [b'H', b'M', b'S'] {
            if let Some(k) = num_then(j, unit) {
                j = k;
            }
        }
        i = j;
    }
    i
}

/// The `period` action: walks the token, failing on a bare `P`/`T`,
/// numbers longer than 12 digits and unknown designators.
fn period_action(tok: &[u8]) -> Option<Interval> {
    let mut iv = Interval::default();
    let mut p = 1;
    let mut in_time = false;
    loop {
        if p < tok.len() && tok[p] == b'T' {
            in_time = true;
            p += 1;
        }
        if p >= tok.len() {
            return None; // "Missing expected time part"
        }
        let start = p;
        while p < tok.len() && p - start < 12 && tok[p].is_ascii_digit() {
            p += 1;
        }
        let nr: i64 = std::str::from_utf8(&tok[start..p])
            .ok()?
            .parse()
            .unwrap_or(0);
        match tok.get(p) {
            Some(b'Y') => iv.y = nr,
            Some(b'W') => iv.d += nr * 7,
            Some(b'D') => iv.d += nr,
            Some(b'H') => iv.h = nr,
            Some(b'S') => iv.s = nr,
            Some(b'M') if in_time => iv.i = nr,
            Some(b'M') => iv.m = nr,
            _ => return None, // "Undefined period specifier"
        }
        p += 1;
        if p >= tok.len() {
            return Some(iv);
        }
    }
}

/// `PYYYY-MM-DDTHH:MM:SS`.
fn combined(b: &[u8]) -> Option<(Interval, usize)> {
    if b.len() < 20 {
        return None;
    }
    let shape = b"PDDDD-DD-DDTDD:DD:DD";
    for (k, &c) in shape.iter().enumerate() {
        let ok = if c == b'D' {
            b[k].is_ascii_digit()
        } else {
            b[k] == c
        };
        if !ok {
            return None;
        }
    }
    let n = |r: std::ops::Range<usize>| -> i64 {
        std::str::from_utf8(&b[r])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    let iv = Interval {
        y: n(1..5),
        m: n(6..8),
        d: n(9..11),
        h: n(12..14),
        i: n(15..17),
        s: n(18..20),
    };
    if iv.m > 12 || iv.d > 31 || iv.h > 24 || iv.i > 59 || iv.s > 59 {
        return None;
    }
    Some((iv, 20))
}

/// Kinds used by `setValueOrDefault`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Duration,
    Date,
    Timestamp,
    Str,
    Integer,
    Array,
}

/// `setValueOrDefault($obj, $label, $type)`: absent/`null` ⇒ the type's
/// default; an array given for a non-array type ⇒ its first element (the
/// Perl agent's `["131"]` counts).
pub fn set_value_or_default(ctx: &mut Ctx, obj: &Value, label: &str, kind: Kind) -> Value {
    match obj.get(label) {
        Some(v) if !v.is_null() => match v {
            Value::Array(a) if kind != Kind::Array => match a.first() {
                Some(first) => first.clone(),
                None => {
                    ctx.notice(Notice::e_notice(
                        "Undefined offset: 0",
                        "inc/commondbtm.class.php",
                        52,
                    ));
                    Value::Null
                }
            },
            other => other.clone(),
        },
        _ => match kind {
            Kind::Duration => Value::String("0:00:00".into()),
            Kind::Date => Value::String("1970-01-01T00:00:00Z".into()),
            Kind::Timestamp => Value::from(0),
            Kind::Str => Value::String("non-available".into()),
            Kind::Integer => Value::from(-1),
            Kind::Array => Value::Array(Vec::new()),
        },
    }
}

/// Strict-mode helper: is `s` an integer-only ISO-8601 duration or
/// `HH:MM:SS`, i.e. something an agent sends on purpose?
pub fn is_clean_duration(s: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r"^(P(0+Y)?(0+M)?(\d+W)?(\d+D)?(T(\d+H)?(\d+M)?(\d+S)?)?|\d{2}:\d{2}:\d{2})$")
            .expect("static regex")
    });
    re.is_match(s)
        && s != "P"
        && !s.ends_with('T')
        && parse_date_interval(
            &hhmmss(s)
                .map(|(h, m, x)| format!("PT{h}H{m}M{x}S"))
                .unwrap_or_else(|| s.to_string()),
        )
        .is_some()
}

/// Display helper for messages about floats in strict findings.
pub fn show(v: &Value) -> String {
    match v {
        Value::Number(n) if !n.is_i64() => float_to_string(n.as_f64().unwrap_or(0.0)),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> Ctx {
        Ctx::new(true, 0)
    }

    fn vi(v: Value) -> Result<Option<i64>, String> {
        validate_int(&mut ctx(), &v)
            .map(|p| p.0)
            .map_err(|e| match e {
                Failure::Exception { message, .. } => message,
                Failure::Fatal { message, .. } => format!("FATAL {message}"),
            })
    }

    #[test]
    fn validate_int_matches_filter_var_and_loose_compare() {
        assert_eq!(vi(json!(2)), Ok(Some(2)));
        assert_eq!(vi(json!("2")), Ok(Some(2)));
        assert_eq!(vi(json!(" 2")), Ok(Some(2)));
        assert_eq!(vi(json!("+2")), Ok(Some(2)));
        assert_eq!(vi(json!("-2")), Ok(Some(-2)));
        assert_eq!(vi(json!(2.0)), Ok(Some(2)));
        assert_eq!(vi(json!(true)), Ok(Some(1)));
        assert_eq!(vi(json!("0")), Ok(Some(0)));
        // falsy quirk
        assert_eq!(vi(json!(null)), Ok(None));
        assert_eq!(vi(json!(false)), Ok(None));
        assert_eq!(vi(json!("")), Ok(None));
        assert_eq!(vi(json!([])), Ok(None));
        // rejects
        assert_eq!(vi(json!("02")), Err("Invalid int : \"02\"".into()));
        assert_eq!(vi(json!("2.5")), Err("Invalid int : \"2.5\"".into()));
        assert_eq!(vi(json!(2.5)), Err("Invalid int : \"2.5\"".into()));
        assert_eq!(vi(json!("abc")), Err("Invalid int : \"abc\"".into()));
        assert_eq!(vi(json!([1])), Err("Invalid int : \"Array\"".into()));
        assert_eq!(
            vi(json!("99999999999999999999")),
            Err("Invalid int : \"99999999999999999999\"".into())
        );
        assert!(vi(json!({"a": 1})).unwrap_err().starts_with("FATAL"));
    }

    #[test]
    fn uuid_and_key_are_uppercase_with_pcre_dollar() {
        let mut c = ctx();
        let u = "4C4C4544-0033-4A10-8051-FFFFFFFFFFFF";
        assert_eq!(validate_uuid(&mut c, &json!(u)), Ok(Some(u.to_string())));
        assert_eq!(
            validate_uuid(&mut c, &json!(format!("{u}\n"))),
            Ok(Some(format!("{u}\n")))
        );
        assert_eq!(
            validate_uuid(&mut c, &json!(u.to_lowercase())),
            Err(Failure::exc(format!(
                "Invalid UUID : \"{}\"",
                u.to_lowercase()
            )))
        );
        assert_eq!(validate_uuid(&mut c, &json!(null)), Ok(None));
        assert_eq!(validate_uuid(&mut c, &json!("0")), Ok(None));
        assert!(validate_uuid(&mut c, &json!(format!("{u}\n\n"))).is_err());
        let k = "0RV2V-2RYTX-NX4OW-7LARZ-KZQAJ";
        assert_eq!(validate_key(&mut c, &json!(k)), Ok(Some(k.to_string())));
        assert_eq!(
            validate_key(&mut c, &json!("0rv2v-2RYTX-NX4OW-7LARZ-KZQAJ")),
            Err(Failure::exc(
                "Invalid Key format : \"0rv2v-2RYTX-NX4OW-7LARZ-KZQAJ\""
            ))
        );
        assert_eq!(validate_key(&mut c, &json!("")), Ok(None));
    }

    #[test]
    fn format_date_wants_ten_digits() {
        let mut c = ctx();
        assert_eq!(
            format_date(&mut c, &json!(1483605762)),
            Ok("2017-01-05 08:42:42".into())
        );
        assert_eq!(
            format_date(&mut c, &json!("1483605762")),
            Ok("2017-01-05 08:42:42".into())
        );
        assert_eq!(
            format_date(&mut c, &json!(1483605762.0)),
            Ok("2017-01-05 08:42:42".into())
        );
        assert_eq!(
            format_date(&mut c, &json!(0)),
            Err(Failure::exc("Date is not a valid unix timestamp : 0\""))
        );
        assert_eq!(
            format_date(&mut c, &json!(14836057620_i64)),
            Err(Failure::exc(
                "Date is not a valid unix timestamp : 14836057620\""
            ))
        );
        assert_eq!(
            format_date(&mut c, &json!("2017-01-05")),
            Err(Failure::exc(
                "Date is not a valid unix timestamp : 2017-01-05\""
            ))
        );
    }

    #[test]
    fn format_duration_accepts_hhmmss_and_integer_iso() {
        let ok = |s: &str| format_duration(&json!(s));
        assert_eq!(ok("00:00:01"), Ok("0d 00h 00m 01s".into()));
        assert_eq!(ok("PT5S"), Ok("0d 00h 00m 05s".into()));
        assert_eq!(ok("PT0H1M5S"), Ok("0d 00h 01m 05s".into()));
        assert_eq!(ok("P0Y0M0DT00H00M01S"), Ok("0d 00h 00m 01s".into()));
        assert_eq!(ok("PT90S"), Ok("0d 00h 00m 90s".into()));
        assert_eq!(ok("P1Y2M3DT4H"), Ok("3d 04h 00m 00s".into()));
        assert_eq!(ok("P1W"), Ok("7d 00h 00m 00s".into()));
        assert_eq!(ok("P0000-00-01T02:03:04"), Ok("1d 02h 03m 04s".into()));
        for bad in [
            "PT0H1.5M30S",
            "0:00:00",
            "P",
            "PT",
            "pt5s",
            "5",
            "",
            "P1S",
            "PT1D",
            "T5S",
        ] {
            assert_eq!(
                ok(bad),
                Err(Failure::exc(format!(
                    "DateInterval::__construct(): Unknown or bad format ({bad})"
                ))),
                "{bad}"
            );
        }
        assert!(matches!(
            format_duration(&json!(["PT5S"])),
            Err(Failure::Exception { status: 500, .. })
        ));
    }

    #[test]
    fn set_value_or_default_unwraps_and_defaults() {
        let mut c = ctx();
        let o = json!({"a": ["131"], "b": null, "c": 5, "d": []});
        assert_eq!(
            set_value_or_default(&mut c, &o, "a", Kind::Integer),
            json!("131")
        );
        assert_eq!(
            set_value_or_default(&mut c, &o, "a", Kind::Array),
            json!(["131"])
        );
        assert_eq!(
            set_value_or_default(&mut c, &o, "b", Kind::Integer),
            json!(-1)
        );
        assert_eq!(
            set_value_or_default(&mut c, &o, "x", Kind::Str),
            json!("non-available")
        );
        assert_eq!(
            set_value_or_default(&mut c, &o, "x", Kind::Duration),
            json!("0:00:00")
        );
        assert_eq!(
            set_value_or_default(&mut c, &o, "x", Kind::Date),
            json!("1970-01-01T00:00:00Z")
        );
        assert_eq!(
            set_value_or_default(&mut c, &o, "x", Kind::Timestamp),
            json!(0)
        );
        assert_eq!(
            set_value_or_default(&mut c, &o, "c", Kind::Integer),
            json!(5)
        );
        assert_eq!(
            set_value_or_default(&mut c, &o, "d", Kind::Integer),
            json!(null)
        );
        assert_eq!(c.notices.len(), 1);
    }

    #[test]
    fn clean_durations() {
        assert!(is_clean_duration("PT5S"));
        assert!(is_clean_duration("00:00:05"));
        assert!(is_clean_duration("P1DT2H"));
        assert!(!is_clean_duration("P1Y"));
        assert!(!is_clean_duration("P2M"));
        assert!(is_clean_duration("P0Y0M0DT00H00M01S"));
        assert!(!is_clean_duration("PT5S "));
        assert!(!is_clean_duration("PT"));
    }
}
