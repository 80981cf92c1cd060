//! A deliberately tiny blocking HTTP/1.1 client for tests that must see
//! exact bytes: no redirect following, no header normalisation, no retries,
//! and a dropped connection surfaces as an error instead of being hidden.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// A raw answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    pub status: u16,
    /// Header names lowercased, in wire order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Sends one request on a fresh connection (`Connection: close`).
/// `headers` are sent as given; `Host`, `Content-Length` and `Connection`
/// are added.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<RawResponse> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    s.flush()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse(&raw)
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

fn parse(raw: &[u8]) -> io::Result<RawResponse> {
    if raw.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed without a response",
        ));
    }
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("non-UTF-8 headers"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("no status line"))?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| bad("bad chunk"))?;
        let size_text = std::str::from_utf8(&b[..eol]).map_err(|_| bad("bad chunk size"))?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| bad("bad chunk size"))?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            return Err(bad("truncated chunk"));
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

impl super::Double {
    /// `POST <base>/api/<endpoint>/` with `Content-Type: application/json`.
    pub fn post_json(&self, endpoint: &str, body: &str) -> RawResponse {
        let path = format!("/glpi/plugins/armadito/api/{endpoint}/");
        request(
            self.addr(),
            "POST",
            &path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// Any request to a path (absolute, e.g. `/glpi/plugins/armadito/api/jobs/?agent_id=1`).
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<RawResponse> {
        request(self.addr(), method, path, headers, body)
    }

    /// `GET <base>/api/jobs/?agent_id=N`.
    pub fn get_jobs(&self, agent_id: i64) -> RawResponse {
        let path = format!("/glpi/plugins/armadito/api/jobs/?agent_id={agent_id}");
        request(self.addr(), "GET", &path, &[], b"").unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }
}

/// A request body with the complete envelope a well-behaved agent sends
/// (§1.4): no strict-mode violation comes from the envelope itself.
pub fn envelope(agent_id: i64, uuid: &str, task: &str, obj: Value) -> String {
    serde_json::json!({
        "agent_id": agent_id,
        "agent_version": "0.10.1",
        "uuid": uuid,
        "task": {
            "name": task,
            "antivirus": {
                "name": "Armadito",
                "version": "0.10.2",
                "os_info": {"name": "linux", "libpath": "Linux"},
                "program_path": "/usr/bin/"
            },
            "obj": obj
        }
    })
    .to_string()
}

/// An enrollment body (`task.obj.key`) with the complete envelope.
pub fn enroll_body(key: &str, uuid: &str) -> String {
    envelope(0, uuid, "Enrollment", serde_json::json!({ "key": key }))
}
