//! The JSON-lines protocol between the agent and a `plugin-host` child.
//!
//! One JSON object per line. Parent → child: [`Request`]. Child → parent: [`Message`].
//!
//! ```text
//! child:  {"hello":{"protocol":{"name":"armadito-plugin-host","version":"1.0.0"},"metadata":{...},"pid":123}}
//!         (or {"refused":{"error":"..."}} then exit 3)
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
//! The hello names the protocol and its version ([`ProtocolInfo`], after nushell's plugin
//! handshake): the agent refuses a host of another protocol or major version before sending
//! anything (a host executable from another agent build, or not a plugin host at all).

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

/// Name of this protocol in the hello.
pub(crate) const PROTOCOL_NAME: &str = "armadito-plugin-host";
/// Its version (semver): a major bump breaks compatibility, a minor one only adds optional
/// fields or methods.
pub(crate) const PROTOCOL_VERSION: &str = "1.0.0";

/// What protocol a plugin host speaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProtocolInfo {
    pub name: String,
    pub version: String,
}

impl ProtocolInfo {
    pub fn ours() -> ProtocolInfo {
        ProtocolInfo {
            name: PROTOCOL_NAME.to_owned(),
            version: PROTOCOL_VERSION.to_owned(),
        }
    }

    /// `Ok` when a host speaking `self` can serve this agent: same name, same major version.
    pub fn check(&self) -> Result<(), String> {
        if self.name != PROTOCOL_NAME {
            return Err(format!(
                "the plugin host speaks {:?}, not {PROTOCOL_NAME:?}",
                self.name
            ));
        }
        let major = |v: &str| semver::Version::parse(v).map(|v| v.major).ok();
        match (major(&self.version), major(PROTOCOL_VERSION)) {
            (Some(theirs), Some(ours)) if theirs == ours => Ok(()),
            _ => Err(format!(
                "the plugin host speaks protocol version {:?}, this agent {PROTOCOL_VERSION} \
                 (use the plugin host of the same agent build)",
                self.version
            )),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Hello {
    /// Absent from hosts older than the handshake: such a host is refused.
    #[serde(default)]
    pub protocol: Option<ProtocolInfo>,
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

    #[test]
    fn protocol_versions_are_checked() {
        assert_eq!(ProtocolInfo::ours().check(), Ok(()));
        let minor = ProtocolInfo {
            version: "1.7.0".into(),
            ..ProtocolInfo::ours()
        };
        assert_eq!(minor.check(), Ok(()));
        for (name, version, needle) in [
            (PROTOCOL_NAME, "2.0.0", "protocol version \"2.0.0\""),
            (PROTOCOL_NAME, "one", "protocol version \"one\""),
            ("nu-plugin", "1.0.0", "speaks \"nu-plugin\""),
        ] {
            let info = ProtocolInfo {
                name: name.into(),
                version: version.into(),
            };
            let err = info.check().unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
        let old: Hello = serde_json::from_str(r#"{"metadata":{},"pid":1}"#).unwrap();
        assert!(old.protocol.is_none());
    }
}
