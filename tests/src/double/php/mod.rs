//! The slice of PHP 7 semantics the plugin depends on without saying so.
//!
//! The plugin is PHP 7 code that leans on loose comparisons (`!=`, `==`),
//! implicit string/number conversions and `json_decode()` into `stdClass`.
//! Those rules decide which requests pass validation, so the double models
//! them explicitly instead of using Rust's stricter notions. Only the
//! conversions the plugin actually performs are modelled.

pub mod time;

use serde_json::Value;

/// Where the plugin lives on the emulated host; used in notice/fatal texts.
pub const PLUGIN_DIR: &str = "/var/www/html/glpi/plugins/armadito";

/// Severity label of an echoed PHP diagnostic (`Toolbox::userErrorHandlerDebug`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeLevel {
    Notice,
    Warning,
}

/// One PHP notice or warning that the GLPI debug error handler echoes into
/// the response body *before* the plugin's own output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub level: NoticeLevel,
    pub message: String,
    /// File relative to the plugin directory, e.g. `inc/agent.class.php`.
    pub file: &'static str,
    /// Line numbers are plausible, not the real ones (the exact HEAD source
    /// is not part of the contract); clients must not depend on them.
    pub line: u32,
}

impl Notice {
    pub fn e_notice(message: impl Into<String>, file: &'static str, line: u32) -> Notice {
        Notice {
            level: NoticeLevel::Notice,
            message: message.into(),
            file,
            line,
        }
    }

    pub fn e_warning(message: impl Into<String>, file: &'static str, line: u32) -> Notice {
        Notice {
            level: NoticeLevel::Warning,
            message: message.into(),
            file,
            line,
        }
    }

    /// HTML exactly as GLPI 9.3's debug handler prints it (§1.5).
    pub fn to_html(&self) -> String {
        let label = match self.level {
            NoticeLevel::Notice => "PHP Notice",
            NoticeLevel::Warning => "PHP Warning",
        };
        format!(
            "<div style=\"position:float-left; background-color:red; z-index:10000\"><span class=\"b\">{label}: </span>{} in {PLUGIN_DIR}/{} at line {}</div>",
            self.message, self.file, self.line
        )
    }
}

/// How a request ends when it does not end well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A PHP `Exception` caught by `index.php` and turned into
    /// `writeHttpErrorResponse($msg, $status)`.
    Exception { status: u16, message: String },
    /// An uncaught PHP `Error` (TypeError, call on null…): with
    /// `display_errors=On` PHP prints it as HTML and answers **200** (Addendum 1).
    Fatal {
        message: String,
        file: &'static str,
        line: u32,
    },
}

impl Failure {
    /// The usual case: any exception ends in HTTP 500.
    pub fn exc(message: impl Into<String>) -> Failure {
        Failure::Exception {
            status: 500,
            message: message.into(),
        }
    }

    pub fn fatal(message: impl Into<String>, file: &'static str, line: u32) -> Failure {
        Failure::Fatal {
            message: message.into(),
            file,
            line,
        }
    }
}

/// Per-request scratch state: echoed notices and strict-mode findings.
#[derive(Debug)]
pub struct Ctx {
    pub notices: Vec<Notice>,
    pub violations: Vec<String>,
    pub strict: bool,
    /// Unix seconds used for `time()` / `NOW()`.
    pub now: i64,
}

impl Ctx {
    pub fn new(strict: bool, now: i64) -> Ctx {
        Ctx {
            notices: Vec::new(),
            violations: Vec::new(),
            strict,
            now,
        }
    }

    pub fn notice(&mut self, n: Notice) {
        self.notices.push(n);
    }

    /// Records something the real server accepts only by accident.
    pub fn violation(&mut self, msg: impl Into<String>) {
        if self.strict {
            self.violations.push(msg.into());
        }
    }

    pub fn notices_html(&self) -> String {
        self.notices.iter().map(Notice::to_html).collect()
    }
}

/// PHP's `(string)` of a decoded JSON value, as used by `sprintf('%s')`,
/// string concatenation and `bind_param('s')`.
///
/// Arrays become `"Array"` with a notice; objects cannot be converted and
/// raise an uncaught `Error` (fatal).
pub fn to_php_string(
    ctx: &mut Ctx,
    v: &Value,
    file: &'static str,
    line: u32,
) -> Result<String, Failure> {
    match v {
        Value::Array(_) => {
            ctx.notice(Notice::e_notice("Array to string conversion", file, line));
            Ok("Array".to_string())
        }
        Value::Object(_) => Err(Failure::fatal(
            "Object of class stdClass could not be converted to string",
            file,
            line,
        )),
        other => Ok(scalar_to_string(other).unwrap_or_default()),
    }
}

/// String form of a scalar (`None` for arrays and objects).
pub fn scalar_to_string(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some(String::new()),
        Value::Bool(true) => Some("1".into()),
        Value::Bool(false) => Some(String::new()),
        Value::Number(n) => Some(match n.as_i64() {
            Some(i) => i.to_string(),
            None => float_to_string(n.as_f64().unwrap_or(0.0)),
        }),
        Value::String(s) => Some(s.clone()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// PHP 7 float to string conversion (`precision = 14`, `%.14G` plus PHP's
/// habit of writing `1.0E+25`).
pub fn float_to_string(f: f64) -> String {
    if f.is_nan() {
        return "NAN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "INF".into() } else { "-INF".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // 14 significant digits.
    let sci = format!("{:.13e}", f); // d.ddddddddddddde[-]x
    let (mant, exp) = match sci.split_once('e') {
        Some((m, e)) => (m.to_string(), e.parse::<i32>().unwrap_or(0)),
        None => (sci.clone(), 0),
    };
    let negative = mant.starts_with('-');
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let sign = if negative { "-" } else { "" };
    if !(-4..14).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { "0" } else { rest };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}.{rest}E{esign}{}", exp.abs())
    } else if exp >= 0 {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            format!("{sign}{}{}", digits, "0".repeat(int_len - digits.len()))
        } else {
            format!("{sign}{}.{}", &digits[..int_len], &digits[int_len..])
        }
    } else {
        format!("{sign}0.{}{}", "0".repeat((-exp - 1) as usize), digits)
    }
}

/// Result of scanning a string for a leading number the way PHP 7 does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NumPrefix {
    /// The value (integer-valued when `is_int`).
    pub value: f64,
    pub int_value: Option<i64>,
    /// Whole string (after leading whitespace) is the number.
    pub whole: bool,
    /// At least one digit was found.
    pub found: bool,
}

/// PHP 7's `_is_numeric_string_ex` with `allow_errors`: leading whitespace,
/// sign, digits, fraction, exponent. Trailing whitespace is **not** allowed
/// for a "numeric string" in PHP 7.
pub fn numeric_prefix(s: &str) -> NumPrefix {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let start = i;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut is_int = true;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        let mut j = i + 1;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        frac_digits = j - i - 1;
        if int_digits + frac_digits > 0 {
            is_int = false;
            i = j;
        }
    }
    if int_digits + frac_digits == 0 {
        return NumPrefix {
            value: 0.0,
            int_value: Some(0),
            whole: false,
            found: false,
        };
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        let exp_start = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > exp_start {
            is_int = false;
            i = j;
        }
    }
    let text = &s[start..i];
    let value: f64 = text.parse().unwrap_or(0.0);
    let int_value = if is_int {
        text.parse::<i64>().ok()
    } else {
        None
    };
    NumPrefix {
        value,
        int_value,
        whole: i == b.len(),
        found: true,
    }
}

/// PHP 7 `is_numeric()` on a string.
pub fn is_numeric_str(s: &str) -> bool {
    let p = numeric_prefix(s);
    p.found && p.whole
}

/// `zend_dval_to_lval`: out-of-range doubles become 0 on PHP 7 / 64 bit.
fn dval_to_lval(d: f64) -> i64 {
    // i64::MAX as f64 rounds up to 2^63, which is already out of range.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if !d.is_finite() || !(-LIMIT..LIMIT).contains(&d) {
        0
    } else {
        d.trunc() as i64
    }
}

/// PHP 7.1+ `(int)` cast, as applied by `bind_param('i')`. `None` = SQL NULL.
pub fn intval(v: &Value) -> Option<i64> {
    match v {
        Value::Null => None,
        Value::Bool(b) => Some(*b as i64),
        Value::Number(n) => Some(
            n.as_i64()
                .unwrap_or_else(|| dval_to_lval(n.as_f64().unwrap_or(0.0))),
        ),
        Value::String(s) => Some(str_to_long(s)),
        Value::Array(a) => Some(!a.is_empty() as i64),
        Value::Object(_) => Some(1),
    }
}

/// `(int)"…"` in PHP ≥ 7.1 (leading numeric prefix, exponent honoured).
pub fn str_to_long(s: &str) -> i64 {
    let p = numeric_prefix(s);
    match p.int_value {
        Some(i) => i,
        None => dval_to_lval(p.value),
    }
}

/// PHP truthiness.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().map(|f| f != 0.0).unwrap_or(false),
        Value::String(s) => !(s.is_empty() || s == "0"),
        Value::Array(a) => !a.is_empty(),
        Value::Object(_) => true,
    }
}

/// A PHP value as far as loose comparison is concerned.
#[derive(Debug, Clone, PartialEq)]
pub enum Pv<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    Array(usize),
    Object,
}

impl<'a> Pv<'a> {
    pub fn of(v: &'a Value) -> Pv<'a> {
        match v {
            Value::Null => Pv::Null,
            Value::Bool(b) => Pv::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Pv::Int(i),
                None => Pv::Float(n.as_f64().unwrap_or(0.0)),
            },
            Value::String(s) => Pv::Str(s),
            Value::Array(a) => Pv::Array(a.len()),
            Value::Object(_) => Pv::Object,
        }
    }

    fn to_bool(&self) -> bool {
        match self {
            Pv::Null => false,
            Pv::Bool(b) => *b,
            Pv::Int(i) => *i != 0,
            Pv::Float(f) => *f != 0.0,
            Pv::Str(s) => !(s.is_empty() || *s == "0"),
            Pv::Array(n) => *n > 0,
            Pv::Object => true,
        }
    }

    fn num(&self) -> Option<f64> {
        match self {
            Pv::Int(i) => Some(*i as f64),
            Pv::Float(f) => Some(*f),
            _ => None,
        }
    }
}

/// PHP 7 `==`. Implements the cases the plugin can hit: scalars of every
/// kind, with arrays/objects only ever equal to their own kind or to bools.
pub fn loose_eq(a: &Pv, b: &Pv) -> bool {
    use Pv::*;
    match (a, b) {
        (Null, Null) => true,
        (Bool(_), _) | (_, Bool(_)) => a.to_bool() == b.to_bool(),
        (Null, Str(s)) | (Str(s), Null) => s.is_empty(),
        (Null, _) | (_, Null) => a.to_bool() == b.to_bool(),
        (Int(x), Int(y)) => x == y,
        (Int(_) | Float(_), Int(_) | Float(_)) => a.num() == b.num(),
        (Str(x), Str(y)) => {
            if is_numeric_str(x) && is_numeric_str(y) {
                let (px, py) = (numeric_prefix(x), numeric_prefix(y));
                match (px.int_value, py.int_value) {
                    (Some(i), Some(j)) => i == j,
                    _ => px.value == py.value,
                }
            } else {
                x == y
            }
        }
        (Int(_) | Float(_), Str(s)) | (Str(s), Int(_) | Float(_)) => {
            let n = if matches!(a, Str(_)) { b } else { a };
            // PHP 7: a non-numeric string is converted to a number anyway.
            let p = numeric_prefix(s);
            match (n, p.int_value) {
                (Int(i), Some(j)) => *i == j,
                _ => n.num() == Some(p.value),
            }
        }
        (Array(x), Array(y)) => *x == 0 && *y == 0,
        (Object, Object) => true,
        _ => false,
    }
}

/// Result of `json_decode()` mapped to PHP's `json_last_error_msg()` texts.
pub fn json_decode(body: &[u8]) -> Result<Value, &'static str> {
    let text = std::str::from_utf8(body)
        .map_err(|_| "Malformed UTF-8 characters, possibly incorrectly encoded")?;
    let v: Value = serde_json::from_str(text).map_err(|e| {
        let m = e.to_string();
        if m.contains("control character") {
            "Control character error, possibly incorrectly encoded"
        } else if m.contains("surrogate")
            || m.contains("unicode code point")
            || m.contains("end of hex escape")
        {
            "Single unpaired UTF-16 surrogate in unicode escape"
        } else if m.contains("recursion limit") {
            "Maximum stack depth exceeded"
        } else {
            "Syntax error"
        }
    })?;
    if has_invalid_property_name(&v) {
        return Err("The decoded property name is invalid");
    }
    Ok(v)
}

/// PHP refuses object keys starting with NUL when decoding to `stdClass`.
fn has_invalid_property_name(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| k.starts_with('\0') || has_invalid_property_name(v)),
        Value::Array(a) => a.iter().any(has_invalid_property_name),
        _ => false,
    }
}

/// `utf8_unicode_ci` equality as MySQL applies it to lookups (Addendum 7):
/// case-insensitive, trailing spaces ignored. Accent folding is not modelled.
pub fn ci_eq(a: &str, b: &str) -> bool {
    let a = a.trim_end_matches(' ');
    let b = b.trim_end_matches(' ');
    a == b || a.to_lowercase() == b.to_lowercase()
}

/// Truncation of a `varchar(n)`/`text` column under GLPI's empty `sql_mode`
/// (characters for varchar, bytes for TEXT).
pub fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((idx, _)) => s[..idx].to_string(),
        None => s.to_string(),
    }
}

pub fn truncate_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_print_like_php() {
        assert_eq!(float_to_string(2.5), "2.5");
        assert_eq!(float_to_string(2.0), "2");
        assert_eq!(float_to_string(1e20), "1.0E+20");
        assert_eq!(float_to_string(0.1 + 0.2), "0.3");
        assert_eq!(float_to_string(-1.5e-7), "-1.5E-7");
        assert_eq!(float_to_string(1483605762.0), "1483605762");
        assert_eq!(float_to_string(0.0001), "0.0001");
    }

    #[test]
    fn loose_equality_follows_php7() {
        let e = |a: Value, b: Value| loose_eq(&Pv::of(&a), &Pv::of(&b));
        assert!(e(json!(0), json!("enabled")));
        assert!(e(json!(1), json!("1")));
        assert!(e(json!("1"), json!("01")));
        assert!(!e(json!("abc"), json!("ABC")));
        assert!(e(json!(null), json!("")));
        assert!(!e(json!(null), json!("0")));
        assert!(e(json!(false), json!("0")));
        assert!(e(json!(true), json!("enabled")));
        assert!(e(json!(false), json!([])));
        assert!(!e(json!(false), json!([1])));
        assert!(e(json!(2), json!(2.0)));
        assert!(e(json!(2), json!(" 2")));
        assert!(!e(json!(1), json!([1])));
    }

    #[test]
    fn intval_casts_like_php71() {
        assert_eq!(intval(&json!("12abc")), Some(12));
        assert_eq!(intval(&json!("abc")), Some(0));
        assert_eq!(intval(&json!("1e3")), Some(1000));
        assert_eq!(intval(&json!(1.9)), Some(1));
        assert_eq!(intval(&json!(null)), None);
        assert_eq!(intval(&json!(true)), Some(1));
    }

    #[test]
    fn json_errors_use_php_messages() {
        assert_eq!(json_decode(b"{").unwrap_err(), "Syntax error");
        assert_eq!(
            json_decode(b"{\"a\":\"\xff\"}").unwrap_err(),
            "Malformed UTF-8 characters, possibly incorrectly encoded"
        );
        assert_eq!(
            json_decode(b"{\"a\":\"\x01\"}").unwrap_err(),
            "Control character error, possibly incorrectly encoded"
        );
        assert_eq!(
            json_decode(b"{\"a\":\"\\ud800\"}").unwrap_err(),
            "Single unpaired UTF-16 surrogate in unicode escape"
        );
        assert!(json_decode(b" {\"a\": 1} ").is_ok());
    }

    #[test]
    fn collation_ignores_case_and_trailing_spaces() {
        assert!(ci_eq("ABC", "abc  "));
        assert!(!ci_eq("ABC", "ABC\n"));
    }
}
