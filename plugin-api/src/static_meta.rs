//! Static metadata: the plugin's identity written into the library file at compile time, so
//! the agent reads it (name, version, interface, description, capabilities) with an object
//! file parser instead of loading the library and running plugin code.
//!
//! Layout (built by [`crate::export_plugin!`], read by the agent): an exported static byte
//! array, `ARMADITO_PLUGIN_METADATA`, placed in the section [`SECTION`], holding [`MAGIC`],
//! then the JSON of `PluginMetadata` (capabilities omitted when the plugin does not declare
//! [`crate::Plugin::CAPABILITIES`]), then one NUL byte.
//!
//! Invariants:
//! * Everything here is `const`: the bytes exist before any code of the plugin runs.
//! * The static is exported (`no_mangle`), so the linker keeps it in a `cdylib`.
//! * Plugins built before this existed have no such section; the agent then falls back to
//!   loading the library to ask it (a probe).

use crate::model::Capabilities;
use crate::plugin::Plugin;

/// Start of the metadata bytes (versioned: a new layout gets a new magic).
pub const MAGIC: &[u8] = b"ARMADITO-PLUGIN-METADATA/1\n";

/// Section holding the metadata. PE images keep at most 8 bytes of a section name.
pub const SECTION: &str = if cfg!(target_vendor = "apple") {
    "__DATA,__armmeta"
} else {
    ".armmeta"
};

/// [`Capabilities`] as a constant (`&'static` lists instead of `Vec`s).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StaticCapabilities {
    pub state: bool,
    pub scan: bool,
    pub scan_progress: bool,
    pub scan_cancel: bool,
    pub scan_per_file: bool,
    pub alerts: bool,
    pub config_get: bool,
    pub config_set: bool,
    pub invoke_methods: &'static [&'static str],
    pub platforms: &'static [&'static str],
}

impl StaticCapabilities {
    /// All `false`, empty lists (`Default` is not `const`).
    pub const NONE: StaticCapabilities = StaticCapabilities {
        state: false,
        scan: false,
        scan_progress: false,
        scan_cancel: false,
        scan_per_file: false,
        alerts: false,
        config_get: false,
        config_set: false,
        invoke_methods: &[],
        platforms: &[],
    };

    pub fn to_capabilities(&self) -> Capabilities {
        Capabilities {
            state: self.state,
            scan: self.scan,
            scan_progress: self.scan_progress,
            scan_cancel: self.scan_cancel,
            scan_per_file: self.scan_per_file,
            alerts: self.alerts,
            config_get: self.config_get,
            config_set: self.config_set,
            invoke_methods: self.invoke_methods.iter().map(|s| s.to_string()).collect(),
            platforms: self.platforms.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// A fixed-size byte buffer written in `const` context; with `N = 0` it only counts.
#[doc(hidden)]
pub struct Writer<const N: usize> {
    pub buf: [u8; N],
    pub len: usize,
}

impl<const N: usize> Writer<N> {
    const fn byte(&mut self, b: u8) {
        if self.len < N {
            self.buf[self.len] = b;
        }
        self.len += 1;
    }

    const fn raw(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() {
            self.byte(bytes[i]);
            i += 1;
        }
    }

    /// A JSON string: `"`, `\` and control characters escaped (UTF-8 passes through).
    const fn string(&mut self, s: &str) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let bytes = s.as_bytes();
        self.byte(b'"');
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'"' || b == b'\\' {
                self.byte(b'\\');
                self.byte(b);
            } else if b < 0x20 {
                self.raw(b"\\u00");
                self.byte(HEX[(b >> 4) as usize]);
                self.byte(HEX[(b & 0xf) as usize]);
            } else {
                self.byte(b);
            }
            i += 1;
        }
        self.byte(b'"');
    }

    const fn key(&mut self, key: &str, first: bool) {
        if !first {
            self.byte(b',');
        }
        self.string(key);
        self.byte(b':');
    }

    const fn boolean(&mut self, key: &str, v: bool) {
        self.key(key, false);
        self.raw(if v { b"true" } else { b"false" });
    }

    const fn list(&mut self, key: &str, items: &[&str]) {
        self.key(key, false);
        self.byte(b'[');
        let mut i = 0;
        while i < items.len() {
            if i > 0 {
                self.byte(b',');
            }
            self.string(items[i]);
            i += 1;
        }
        self.byte(b']');
    }
}

/// The metadata bytes of plugin `P`; `N` must be [`len::<P>()`](len).
#[doc(hidden)]
pub const fn bytes<P: Plugin, const N: usize>() -> [u8; N] {
    encode::<P, N>().buf
}

/// Length of the metadata bytes of plugin `P`.
#[doc(hidden)]
pub const fn len<P: Plugin>() -> usize {
    encode::<P, 0>().len
}

const fn encode<P: Plugin, const N: usize>() -> Writer<N> {
    let mut w = Writer {
        buf: [0; N],
        len: 0,
    };
    w.raw(MAGIC);
    w.byte(b'{');
    w.key("name", true);
    w.string(P::NAME);
    w.key("version", false);
    w.string(P::VERSION);
    w.key("interface_version", false);
    w.string(crate::INTERFACE_VERSION);
    w.key("description", false);
    w.string(P::DESCRIPTION);
    if let Some(c) = P::CAPABILITIES {
        w.key("capabilities", false);
        w.byte(b'{');
        w.key("state", true);
        w.raw(if c.state { b"true" } else { b"false" });
        w.boolean("scan", c.scan);
        w.boolean("scan_progress", c.scan_progress);
        w.boolean("scan_cancel", c.scan_cancel);
        w.boolean("scan_per_file", c.scan_per_file);
        w.boolean("alerts", c.alerts);
        w.boolean("config_get", c.config_get);
        w.boolean("config_set", c.config_set);
        w.list("invoke_methods", c.invoke_methods);
        w.list("platforms", c.platforms);
        w.byte(b'}');
    }
    w.byte(b'}');
    w.byte(0);
    w
}

/// The JSON part of metadata bytes (after [`MAGIC`], before the NUL), if `data` holds any.
/// `data` may be a whole section: the bytes are searched for the magic.
pub fn find_json(data: &[u8]) -> Option<&[u8]> {
    let start = data.windows(MAGIC.len()).position(|w| w == MAGIC)? + MAGIC.len();
    let rest = &data[start..];
    let end = rest.iter().position(|b| *b == 0)?;
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PluginError, PluginMetadata};
    use crate::plugin::{Host, metadata_of};
    use serde_json::Value;

    struct Declared;
    impl Plugin for Declared {
        const NAME: &'static str = "decl\"ared";
        const VERSION: &'static str = "1.2.3";
        const DESCRIPTION: &'static str = "line\nwith \\ and é";
        const CAPABILITIES: Option<StaticCapabilities> = Some(StaticCapabilities {
            scan: true,
            alerts: true,
            invoke_methods: &["reload", "x"],
            platforms: &["linux"],
            ..StaticCapabilities::NONE
        });
        fn new(_: Host, _: Value) -> Result<Self, PluginError> {
            Ok(Declared)
        }
    }

    struct Undeclared;
    impl Plugin for Undeclared {
        const NAME: &'static str = "undeclared";
        const VERSION: &'static str = "0.1.0";
        fn new(_: Host, _: Value) -> Result<Self, PluginError> {
            Ok(Undeclared)
        }
    }

    static DECLARED: [u8; len::<Declared>()] = bytes::<Declared, { len::<Declared>() }>();

    #[test]
    fn static_bytes_decode_to_the_runtime_metadata() {
        let json = find_json(&DECLARED).expect("magic and NUL");
        let decoded: PluginMetadata = serde_json::from_slice(json).unwrap();
        assert_eq!(decoded, metadata_of::<Declared>());
        assert_eq!(decoded.capabilities.invoke_methods, ["reload", "x"]);
        assert!(decoded.capabilities.scan && !decoded.capabilities.state);
    }

    #[test]
    fn undeclared_capabilities_are_left_out() {
        let raw: [u8; len::<Undeclared>()] = bytes::<Undeclared, { len::<Undeclared>() }>();
        let v: Value = serde_json::from_slice(find_json(&raw).unwrap()).unwrap();
        assert!(v.get("capabilities").is_none(), "{v}");
        assert_eq!(v["name"], "undeclared");
        assert_eq!(v["interface_version"], crate::INTERFACE_VERSION);
    }

    #[test]
    fn find_json_needs_magic_and_terminator() {
        let mut data = b"junk".to_vec();
        data.extend_from_slice(MAGIC);
        data.extend_from_slice(b"{}\0pad");
        assert_eq!(find_json(&data), Some(&b"{}"[..]));
        assert_eq!(find_json(b"no magic here"), None);
        let mut open = MAGIC.to_vec();
        open.extend_from_slice(b"{}");
        assert_eq!(find_json(&open), None, "no NUL: truncated");
    }
}
