//! Entry points for the fuzz harness (`fuzz/`): the plugin-host protocol is crate-private, so
//! these run exactly what the agent and the host do with the bytes they receive. Not an API.
//!
//! Invariant: nothing here panics; what the peer sent is either decoded or an error string.

use std::io::{BufReader, Cursor};

use armadito_plugin_api::model::{
    AlertsPage, BackendState, ConfigApplyReport, ConfigEntry, ScanProgress, ScanResult,
};
use serde_json::Value;

use super::protocol::{Message, Request};
use super::{call, decode, decode_value};

/// What the agent does with a host's stdout, line by line (at most `max_line` bytes each, as
/// the reader bounds them): each line decoded as a message, a hello's protocol checked, a
/// result decoded as every model type a call can return, a progress event as `ScanProgress`.
/// Returns, per line, the message re-encoded or the error.
pub fn host_output(bytes: &[u8], max_line: usize) -> Vec<Result<String, String>> {
    let mut reader = BufReader::new(Cursor::new(bytes));
    let mut buf = Vec::new();
    let mut out = Vec::new();
    loop {
        match super::process::read_line_bounded(&mut reader, max_line, &mut buf) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                out.push(Err(e.to_string()));
                break;
            }
        }
        let msg: Message = match serde_json::from_slice(&buf) {
            Ok(m) => m,
            Err(e) => {
                out.push(Err(e.to_string()));
                continue;
            }
        };
        match &msg {
            Message::Hello(h) => {
                if let Some(p) = &h.protocol {
                    let _ = p.check();
                }
            }
            Message::Progress { event, .. } => {
                let _ = serde_json::from_value::<ScanProgress>(event.clone());
            }
            Message::Result { value, .. } => decode_all(value),
            _ => {}
        }
        out.push(serde_json::to_string(&msg).map_err(|e| e.to_string()));
    }
    out
}

fn decode_all(v: &Value) {
    let _ = decode_value::<BackendState>("fuzz", call::STATE, v.clone());
    let _ = decode_value::<ScanResult>("fuzz", call::SCAN, v.clone());
    let _ = decode_value::<AlertsPage>("fuzz", call::ALERTS, v.clone());
    let _ = decode_value::<Vec<ConfigEntry>>("fuzz", call::CONFIG_GET, v.clone());
    let _ = decode_value::<ConfigApplyReport>("fuzz", call::CONFIG_SET, v.clone());
    // The in-process path decodes from the plugin's JSON text.
    let text = v.to_string();
    let _ = decode::<BackendState>("fuzz", call::STATE, &text);
    let _ = decode::<ScanResult>("fuzz", call::SCAN, &text);
}

/// What the host does with one request line: the request re-encoded, or the error.
pub fn host_request(line: &str) -> Result<String, String> {
    let r: Request = serde_json::from_str(line).map_err(|e| e.to_string())?;
    serde_json::to_string(&r).map_err(|e| e.to_string())
}

/// A plugin file's `.armmeta` section content: the metadata's name, or the error.
pub fn metadata_section(bytes: &[u8]) -> Result<String, String> {
    super::metadata::decode(bytes).map(|m| m.metadata.name.to_string())
}
