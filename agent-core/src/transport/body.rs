//! Reading the server's bodies without trusting them.
//!
//! The plugin writes error bodies as `'{"error" : "' . $msg . '"}'` without escaping (so they
//! are often invalid JSON), PHP echoes notices as HTML before the JSON even in a 200, and proxies
//! or Apache answer with HTML pages (server-api.md §1.5, Addendum 1/5). The old agent died on any
//! non-JSON body (reference-agent.md §12.9).
//!
//! Invariants: nothing here fails; every function returns something a human can read on one
//! line, at most [`MESSAGE_MAX_CHARS`] characters.

use std::sync::LazyLock;

use regex::Regex;

/// Longest message extracted from a body, in characters.
pub const MESSAGE_MAX_CHARS: usize = 200;

/// Longest raw body excerpt kept in an error, in characters.
pub const EXCERPT_MAX_CHARS: usize = 512;

/// The body from its first `{`, or `None` if there is none.
///
/// The server may echo PHP-notice HTML *before* the JSON of a successful reply (e.g. enrollment
/// without `agent_version`); parse the JSON from here.
pub fn json_object_start(body: &str) -> Option<&str> {
    body.find('{').map(|i| &body[i..])
}

/// A one-line human message out of any error body:
/// 1. the `"error"` value of the plugin's `{"error" : "…"}` (or the legacy `"message"`), valid
///    JSON or not;
/// 2. else the text of the body with HTML tags stripped and whitespace collapsed;
/// 3. else `"empty body"`.
pub fn server_message(body: &str) -> String {
    if let Some(msg) = error_field(body) {
        let msg = one_line(&msg, MESSAGE_MAX_CHARS);
        return if msg.is_empty() {
            "empty error message".to_owned()
        } else {
            msg
        };
    }
    let text = one_line(&html_to_text(body), MESSAGE_MAX_CHARS);
    if text.is_empty() {
        "empty body".to_owned()
    } else {
        text
    }
}

/// The first [`EXCERPT_MAX_CHARS`] characters of `body`, as is (for debugging, not for display).
pub fn excerpt(body: &str) -> String {
    truncate_chars(body, EXCERPT_MAX_CHARS)
}

/// The `"error"` value, from strict JSON when the body parses, else by a forgiving scan: from
/// after `"error"\s*:\s*"` to the last `"` before the final `}`.
fn error_field(body: &str) -> Option<String> {
    if let Some(obj) = json_object_start(body)
        && let Ok(serde_json::Value::Object(map)) =
            serde_json::from_str::<serde_json::Value>(obj.trim_end())
    {
        for key in ["error", "message"] {
            if let Some(serde_json::Value::String(s)) = map.get(key) {
                return Some(s.clone());
            }
        }
    }
    static ERROR_KEY: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r#""error"\s*:\s*""#).expect("constant pattern"));
    let start = ERROR_KEY.find(body)?.end();
    let rest = &body[start..];
    let inner = match rest.rfind('}') {
        Some(close) => {
            let before_close = &rest[..close];
            // The last `"` before the final `}` closes the value.
            &before_close[..before_close.rfind('"').unwrap_or(before_close.len())]
        }
        // Truncated body: take what there is, minus a closing quote.
        None => rest.trim_end().strip_suffix('"').unwrap_or(rest),
    };
    Some(inner.to_owned())
}

/// Text content of an HTML (or plain-text) body: scripts, styles and comments dropped, tags
/// replaced by spaces, the common entities decoded.
fn html_to_text(body: &str) -> String {
    static NOISE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?is)<script\b.*?</script\s*>|<style\b.*?</style\s*>|<!--.*?-->")
            .expect("constant pattern")
    });
    static TAG: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"<[a-zA-Z!/?][^>]*>").expect("constant pattern"));
    let without_noise = NOISE.replace_all(body, " ");
    let without_tags = TAG.replace_all(&without_noise, " ");
    without_tags
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#039;", "'")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Whitespace (newlines included) collapsed to single spaces, trimmed, at most `max` characters
/// (an ellipsis marks a cut).
fn one_line(s: &str, max: usize) -> String {
    let collapsed = s.split_whitespace().collect::<Vec<_>>().join(" ");
    truncate_chars(&collapsed, max)
}

fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_json_error() {
        assert_eq!(
            server_message(r#"{"error" : "Enrollment key not found in database"}"#),
            "Enrollment key not found in database"
        );
        assert_eq!(
            server_message(r#"{"error":"a \"quoted\" word"}"#),
            r#"a "quoted" word"#
        );
    }

    #[test]
    fn invalid_json_error_from_unescaped_php() {
        assert_eq!(
            server_message(r#"{"error" : "Invalid UUID : "abc""}"#),
            r#"Invalid UUID : "abc""#
        );
        assert_eq!(
            server_message(r#"{"error" : "Date is not a valid unix timestamp : 12""}"#),
            r#"Date is not a valid unix timestamp : 12""#
        );
        assert_eq!(
            server_message("{\"error\" : \"executeQuery NewAlert failed. Duplicate\nentry \\x\"}"),
            r"executeQuery NewAlert failed. Duplicate entry \x"
        );
    }

    #[test]
    fn legacy_message_field() {
        assert_eq!(
            server_message(r#"{"code": 1, "message": "Invalid request sent to plugin index."}"#),
            "Invalid request sent to plugin index."
        );
    }

    #[test]
    fn php_notice_before_json() {
        let body = r#"<div style="position:float-left; background-color:red; z-index:10000"><span class="b">PHP Notice: </span>Undefined variable: alert in /x.php at line 3</div>{"error" : "Invalid int : "x""}"#;
        assert_eq!(server_message(body), r#"Invalid int : "x""#);
        assert_eq!(
            json_object_start(body),
            Some(r#"{"error" : "Invalid int : "x""}"#)
        );
    }

    #[test]
    fn truncated_json_error() {
        assert_eq!(server_message(r#"{"error" : "cut here"#), "cut here");
        assert_eq!(server_message(r#"{"error" : "cut here""#), "cut here");
    }

    #[test]
    fn html_pages() {
        let apache = "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>500 Internal Server Error</title>\n<style>body{color:red}</style></head><body>\n<h1>Internal Server Error</h1>\n<p>The server encountered an internal error &amp; could not complete your request.</p>\n<!-- comment --><script>alert(1)</script></body></html>\n";
        assert_eq!(
            server_message(apache),
            "500 Internal Server Error Internal Server Error The server encountered an internal error & could not complete your request."
        );
        let fatal = "<br />\n<b>Fatal error</b>:  Uncaught Error: Call to a member function getId() on null in /var/www/glpi/plugins/armadito/inc/job.class.php:120";
        assert_eq!(
            server_message(fatal),
            "Fatal error : Uncaught Error: Call to a member function getId() on null in /var/www/glpi/plugins/armadito/inc/job.class.php:120"
        );
    }

    #[test]
    fn lone_angle_brackets_are_text() {
        assert_eq!(server_message("a < b and c > d"), "a < b and c > d");
    }

    #[test]
    fn empty_bodies() {
        assert_eq!(server_message(""), "empty body");
        assert_eq!(server_message(" \r\n "), "empty body");
        assert_eq!(server_message("<html><body></body></html>"), "empty body");
        assert_eq!(server_message(r#"{"error" : ""}"#), "empty error message");
    }

    #[test]
    fn long_bodies_are_cut_to_one_short_line() {
        let long = format!("<p>{}</p>", "word\n".repeat(500));
        let m = server_message(&long);
        assert_eq!(m.chars().count(), MESSAGE_MAX_CHARS);
        assert!(m.ends_with('…') && !m.contains('\n'), "{m}");
        let multibyte = "é".repeat(1000);
        assert_eq!(
            server_message(&multibyte).chars().count(),
            MESSAGE_MAX_CHARS
        );
        assert_eq!(excerpt(&multibyte).chars().count(), EXCERPT_MAX_CHARS);
    }

    #[test]
    fn json_object_start_cases() {
        assert_eq!(json_object_start(r#"{"a":1}"#), Some(r#"{"a":1}"#));
        assert_eq!(json_object_start("  \n{}"), Some("{}"));
        assert_eq!(json_object_start("<b>x</b>"), None);
        assert_eq!(json_object_start(""), None);
    }
}
