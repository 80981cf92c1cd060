//! Message framing: the daemon's `\r\n\r\n`-terminated JSON-RPC frames, the CLI's JSON objects
//! separated by blank lines, and JSON-RPC 2.0 message shapes.
//!
//! Invariants: no I/O. Compact JSON cannot contain a raw CR or LF (strings escape them), so
//! splitting on the terminator never cuts a message. A frame that is not JSON is reported as
//! such, and the next frames are unaffected. Buffers are bounded.

use serde_json::{Value, json};

pub const TERMINATOR: &[u8] = b"\r\n\r\n";
/// A frame longer than this without a terminator is garbage, not a message.
pub const MAX_FRAME: usize = 4 * 1024 * 1024;

/// Accumulates bytes read from the socket and hands out complete frames.
#[derive(Debug, Default)]
pub struct Deframer {
    buf: Vec<u8>,
    /// `buf[..searched]` holds no terminator start: a big frame arriving in small reads is
    /// not searched again from its beginning.
    searched: usize,
}

/// One frame's content.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Json(Value),
    /// Not JSON: the text (cut) and the parse error.
    Invalid(String),
}

impl Deframer {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, if any. An over-long unterminated buffer is dropped and
    /// reported as one invalid frame.
    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            match find(&self.buf[self.searched..], TERMINATOR).map(|i| i + self.searched) {
                Some(end) => {
                    self.searched = 0;
                    let raw: Vec<u8> = self.buf.drain(..end + TERMINATOR.len()).collect();
                    let body = &raw[..end];
                    if body.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    return Some(parse(body));
                }
                None if self.buf.len() > MAX_FRAME => {
                    self.buf.clear();
                    self.searched = 0;
                    return Some(Frame::Invalid(format!(
                        "more than {MAX_FRAME} bytes without a frame terminator"
                    )));
                }
                None => {
                    self.searched = self.buf.len().saturating_sub(TERMINATOR.len() - 1);
                    return None;
                }
            }
        }
    }

    /// Bytes received after the last complete frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse(body: &[u8]) -> Frame {
    match serde_json::from_slice(body) {
        Ok(v) => Frame::Json(v),
        Err(e) => {
            let text = String::from_utf8_lossy(body);
            let cut: String = text.chars().take(80).collect();
            Frame::Invalid(format!("{e} in {cut:?}"))
        }
    }
}

/// `armadito-scan --json` / `armadito-info --json` output: pretty-printed objects separated
/// by a blank line. Returns each chunk parsed (or why it is not JSON).
pub fn split_cli_output(text: &str) -> Vec<Frame> {
    let normalized = text.replace("\r\n", "\n");
    normalized
        .split("\n\n")
        .filter(|c| !c.trim().is_empty())
        .map(|c| parse(c.as_bytes()))
        .collect()
}

/// A JSON-RPC 2.0 request (with `id`) or notification (without), compact and framed.
pub fn request(method: &str, params: Option<Value>, id: Option<u64>) -> Vec<u8> {
    let mut m = json!({"jsonrpc": "2.0", "method": method});
    if let Some(p) = params {
        m["params"] = p;
    }
    if let Some(id) = id {
        m["id"] = json!(id);
    }
    let mut bytes = m.to_string().into_bytes();
    bytes.extend_from_slice(TERMINATOR);
    bytes
}

/// What a received JSON-RPC message is.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Result {
        id: Option<u64>,
        result: Value,
    },
    Error {
        id: Option<u64>,
        code: i64,
        message: String,
    },
    /// A notification (`notify_event` carries an `a6o_event` in `params`).
    Notification {
        method: String,
        params: Value,
    },
    Unknown(Value),
}

pub fn classify(v: Value) -> Incoming {
    let id = v.get("id").and_then(Value::as_u64);
    if let Some(e) = v.get("error") {
        return Incoming::Error {
            id,
            code: e.get("code").and_then(Value::as_i64).unwrap_or(0),
            message: e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        };
    }
    if let Some(method) = v.get("method").and_then(Value::as_str) {
        return Incoming::Notification {
            method: method.to_string(),
            params: v.get("params").cloned().unwrap_or(Value::Null),
        };
    }
    if v.get("result").is_some() || v.get("id").is_some() {
        let result = v.get("result").cloned().unwrap_or(Value::Null);
        return Incoming::Result { id, result };
    }
    Incoming::Unknown(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_across_reads_and_invalid_frames_do_not_stop_the_stream() {
        let mut d = Deframer::default();
        d.push(b"{\"a\":1}\r\n\r\n{\"b\"");
        assert_eq!(d.next_frame(), Some(Frame::Json(json!({"a": 1}))));
        assert_eq!(d.next_frame(), None);
        d.push(b":2}\r\n");
        assert_eq!(d.next_frame(), None);
        d.push(b"\r\nnot json\r\n\r\n{\"c\":3}\r\n\r\n");
        assert_eq!(d.next_frame(), Some(Frame::Json(json!({"b": 2}))));
        assert!(matches!(d.next_frame(), Some(Frame::Invalid(_))));
        assert_eq!(d.next_frame(), Some(Frame::Json(json!({"c": 3}))));
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn unterminated_garbage_is_bounded() {
        let mut d = Deframer::default();
        d.push(&vec![b'x'; MAX_FRAME + 1]);
        assert!(matches!(d.next_frame(), Some(Frame::Invalid(m)) if m.contains("terminator")));
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn requests_are_compact_and_framed() {
        let r = request("status", None, Some(1));
        assert_eq!(
            r,
            b"{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"status\"}\r\n\r\n".to_vec()
        );
        let n = request("scan", Some(json!({"root_path": "/p"})), None);
        assert!(!String::from_utf8(n).unwrap().contains("\"id\""));
    }

    #[test]
    fn classify_messages() {
        assert_eq!(
            classify(json!({"jsonrpc":"2.0","result":{"x":1},"id":1})),
            Incoming::Result {
                id: Some(1),
                result: json!({"x":1})
            }
        );
        assert!(matches!(
            classify(
                json!({"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":2})
            ),
            Incoming::Error { code: -32601, .. }
        ));
        assert!(matches!(
            classify(json!({"jsonrpc":"2.0","method":"notify_event","params":{}})),
            Incoming::Notification { .. }
        ));
    }

    #[test]
    fn cli_output_chunks() {
        let out = "{\n    \"a\": 1\n}\n\n{ broken\n\n{\n    \"b\": 2\n}\n\n";
        let f = split_cli_output(out);
        assert_eq!(f.len(), 3);
        assert_eq!(f[0], Frame::Json(json!({"a": 1})));
        assert!(matches!(f[1], Frame::Invalid(_)));
        assert_eq!(f[2], Frame::Json(json!({"b": 2})));
    }
}
