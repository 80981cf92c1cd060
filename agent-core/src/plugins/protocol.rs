//! The JSON-lines protocol between the agent and a `plugin-host` child.
//!
//! One JSON object per line. Parent → child: [`Request`]. Child → parent: [`Message`].
//!
//! ```text
//! child:  {"hello":{"metadata":{...},"pid":123}}      (or {"refused":{"error":"..."}} then exit 3)
//! parent: {"id":1,"method":"init","params":{...settings...}}
//! child:  {"result":{"id":1,"value":null}}
//! parent: {"id":2,"method":"scan","params":{...ScanRequest...}}
//! child:  {"progress":{"id":2,"event":{...ScanProgress...}}}     (0..n)
//! child:  {"log":{"level":3,"target":"clamav","message":"..."}}  (any time)
//! parent: {"id":3,"method":"cancel","params":{"id":2}}
//! child:  {"result":{"id":2,"value":{...ScanResult...}}}   or {"error":{"id":2,"error":{kind,message}}}
//! ```
//!
//! Invariants: requests are answered exactly once (result or error), in any order; the
//! child serves requests concurrently; closing the child's stdin makes it exit.

use armadito_plugin_api::model::{PluginError, PluginMetadata};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub(crate) mod method {
    pub const INIT: &str = "init";
    pub const CANCEL: &str = "cancel";
}

/// Exit code of a child whose plugin was refused (the reason was sent as `refused`).
pub(crate) const EXIT_REFUSED: u8 = 3;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Request {
    pub id: u64,
    pub method: String,
    #[serde(default)]
    pub params: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Hello {
    pub metadata: PluginMetadata,
    pub pid: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Message {
    Hello(Hello),
    Refused {
        error: String,
    },
    Log {
        level: u8,
        target: String,
        message: String,
    },
    Progress {
        id: u64,
        event: Value,
    },
    Result {
        id: u64,
        value: Value,
    },
    Error {
        id: u64,
        error: PluginError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_shapes() {
        let m = Message::Result {
            id: 2,
            value: Value::Null,
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"result":{"id":2,"value":null}}"#
        );
        let r: Request = serde_json::from_str(r#"{"id":1,"method":"state"}"#).unwrap();
        assert_eq!(r.params, Value::Null);
    }
}
