//! The plugin author's side: one trait ([`Plugin`]), the [`Host`] handle, the [`Progress`]
//! reporter, and the adapter that turns a `Plugin` into the frozen FFI vtable.
//!
//! Invariants:
//! * Every entry point the host can reach (`metadata`, `new`, each backend method, and the
//!   instance's drop) runs inside [`guard`]: a panic becomes a `PluginError` of kind
//!   `panicked` instead of crossing the boundary (which would `exit(1)` the whole agent).
//! * Payload (de)serialization happens here, once, so plugin authors only see typed values.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

use abi_stable::{
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    std_types::{RErr, ROk, RResult, RStr, RString},
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::ffi::{
    BackendBox, BackendFfi, BackendFfi_TO, HostServices, PluginModule, PluginModule_Ref,
    ProgressSinkFfi, ProgressSinkRef, level,
};
use crate::model::{
    AlertsPage, AlertsQuery, BackendState, Capabilities, ConfigApplyReport, ConfigEntry, ErrorKind,
    PluginError, PluginMetadata, ScanProgress, ScanRequest, ScanResult,
};
use crate::static_meta::StaticCapabilities;

/// What a plugin author implements. All methods but `new` have a default that answers
/// `not-supported`, so a backend implements only what its product can do (and says so in
/// [`Plugin::capabilities`]).
///
/// Methods may block (the host calls them from a blocking thread, one call at a time per
/// method is *not* guaranteed: make the type internally synchronized). They must not keep the
/// `Progress` beyond the call.
pub trait Plugin: Send + Sync + Sized + 'static {
    /// Backend name, e.g. `"clamav"`: the plugin's identity for the agent and GLPI.
    const NAME: &'static str;
    /// Plugin version (semver), e.g. `env!("CARGO_PKG_VERSION")`.
    const VERSION: &'static str;
    /// One line for humans.
    const DESCRIPTION: &'static str = "";

    /// What this backend supports, as a constant: [`crate::export_plugin!`] then writes it into
    /// the library's static metadata, so the agent can list the plugin without running it.
    /// When set, [`Plugin::capabilities`] defaults to it.
    const CAPABILITIES: Option<StaticCapabilities> = None;

    /// What this backend supports.
    fn capabilities() -> Capabilities {
        Self::CAPABILITIES
            .map(|c| c.to_capabilities())
            .unwrap_or_default()
    }

    /// Build the backend. `settings` is the `[backends.<NAME>]` table of the agent
    /// configuration (`{}` when absent). An error here refuses the plugin with its message.
    fn new(host: Host, settings: Value) -> Result<Self, PluginError>;

    fn state(&self) -> Result<BackendState, PluginError> {
        Err(PluginError::not_supported("state"))
    }

    /// Scan `request.paths`. Report progress through `progress` and stop early (returning a
    /// result with `cancelled: true`) when it answers `false` or `progress.is_cancelled()`.
    fn scan(
        &self,
        request: ScanRequest,
        progress: &Progress<'_>,
    ) -> Result<ScanResult, PluginError> {
        let _ = (request, progress);
        Err(PluginError::not_supported("scan"))
    }

    fn alerts(&self, query: AlertsQuery) -> Result<AlertsPage, PluginError> {
        let _ = query;
        Err(PluginError::not_supported("alerts"))
    }

    fn config_get(&self) -> Result<Vec<ConfigEntry>, PluginError> {
        Err(PluginError::not_supported("config_get"))
    }

    fn config_set(&self, entries: Vec<ConfigEntry>) -> Result<ConfigApplyReport, PluginError> {
        let _ = entries;
        Err(PluginError::not_supported("config_set"))
    }

    /// Extension point: methods listed in `Capabilities::invoke_methods`.
    fn invoke(
        &self,
        method: &str,
        args: Value,
        progress: &Progress<'_>,
    ) -> Result<Value, PluginError> {
        let _ = (args, progress);
        Err(PluginError::not_supported(format_args!(
            "method {method:?}"
        )))
    }
}

// ---------------------------------------------------------------------------------------------
// Host handle and logging
// ---------------------------------------------------------------------------------------------

/// Log severity for [`Host::log`] / [`log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    fn as_u8(self) -> u8 {
        match self {
            Level::Error => level::ERROR,
            Level::Warn => level::WARN,
            Level::Info => level::INFO,
            Level::Debug => level::DEBUG,
            Level::Trace => level::TRACE,
        }
    }
}

/// The plugin's handle on the host: logging, and `call` for host services added later.
/// Cheap to clone, usable from any thread.
#[derive(Clone, Copy)]
pub struct Host {
    services: HostServices,
    plugin_name: &'static str,
}

impl Host {
    /// Log through the host (the plugin's own `tracing`/`log` output goes nowhere).
    pub fn log(&self, level: Level, message: impl AsRef<str>) {
        (self.services.log)(
            level.as_u8(),
            RStr::from_str(self.plugin_name),
            RStr::from_str(message.as_ref()),
        );
    }
    pub fn error(&self, message: impl AsRef<str>) {
        self.log(Level::Error, message)
    }
    pub fn warn(&self, message: impl AsRef<str>) {
        self.log(Level::Warn, message)
    }
    pub fn info(&self, message: impl AsRef<str>) {
        self.log(Level::Info, message)
    }
    pub fn debug(&self, message: impl AsRef<str>) {
        self.log(Level::Debug, message)
    }

    /// Call a host service by name. No services exist in interface 1.0 (every method answers
    /// `not-supported`); this is the extension point for later ones.
    pub fn call(&self, method: &str, args: &Value) -> Result<Value, PluginError> {
        let args = serde_json::to_string(args)?;
        match (self.services.call)(RStr::from_str(method), RStr::from_str(&args)) {
            ROk(json) => Ok(serde_json::from_str(&json)?),
            RErr(err) => Err(decode_error(&err)),
        }
    }

    /// A host that drops every log line: for plugin unit tests that run without an agent.
    pub fn detached(plugin_name: &'static str) -> Host {
        extern "C" fn no_log(_: u8, _: RStr<'_>, _: RStr<'_>) {}
        extern "C" fn no_call(method: RStr<'_>, _: RStr<'_>) -> RResult<RString, RString> {
            RErr(encode_error(&PluginError::not_supported(format_args!(
                "host method {:?}",
                method.as_str()
            ))))
        }
        Host {
            services: HostServices {
                log: no_log,
                call: no_call,
            },
            plugin_name,
        }
    }
}

static GLOBAL_HOST: OnceLock<Host> = OnceLock::new();

/// Log through the host from anywhere in the plugin (after `new` was called; dropped before).
/// Each plugin library has its own copy of this global.
pub fn log(level: Level, message: impl AsRef<str>) {
    if let Some(host) = GLOBAL_HOST.get() {
        host.log(level, message);
    }
}

// ---------------------------------------------------------------------------------------------
// Progress
// ---------------------------------------------------------------------------------------------

/// Progress reporter handed to `scan` and `invoke`. `Sync`: share `&Progress` with worker
/// threads inside `std::thread::scope`.
pub struct Progress<'a> {
    sink: Option<&'a (dyn Sink + Sync + 'a)>,
}

/// Object-safe view of the FFI sink, so `Progress` needs one lifetime only.
trait Sink {
    fn progress(&self, event_json: &str) -> bool;
    fn is_cancelled(&self) -> bool;
}

impl Sink for ProgressSinkRef<'_> {
    fn progress(&self, event_json: &str) -> bool {
        ProgressSinkFfi::progress(self, RStr::from_str(event_json))
    }
    fn is_cancelled(&self) -> bool {
        ProgressSinkFfi::is_cancelled(self)
    }
}

impl<'a> Progress<'a> {
    fn new(sink: &'a ProgressSinkRef<'_>) -> Self {
        Progress { sink: Some(sink) }
    }

    /// A reporter that discards events and is never cancelled (plugin unit tests).
    pub fn detached() -> Progress<'static> {
        Progress { sink: None }
    }

    /// Send a scan progress event. Returns `false` when the host asks to cancel.
    pub fn report(&self, event: &ScanProgress) -> bool {
        self.report_json(event)
    }

    /// Send any serializable event (for `invoke` methods). Returns `false` on cancel.
    pub fn report_json<T: Serialize + ?Sized>(&self, event: &T) -> bool {
        let Some(sink) = self.sink else { return true };
        match serde_json::to_string(event) {
            Ok(json) => sink.progress(&json),
            Err(_) => !sink.is_cancelled(),
        }
    }

    /// True once the host asked to cancel.
    pub fn is_cancelled(&self) -> bool {
        self.sink.is_some_and(|s| s.is_cancelled())
    }
}

// ---------------------------------------------------------------------------------------------
// Guard and JSON helpers (shared with the host side)
// ---------------------------------------------------------------------------------------------

/// Encode a `PluginError` for an `RErr`.
pub fn encode_error(err: &PluginError) -> RString {
    serde_json::to_string(err)
        .unwrap_or_else(|_| format!("{{\"kind\":\"internal\",\"message\":{:?}}}", err.message))
        .into()
}

/// Decode the `RErr` payload of a plugin call. Text that is not a `PluginError` JSON (an
/// older or foreign plugin) becomes an `internal` error carrying the text.
pub fn decode_error(payload: &str) -> PluginError {
    serde_json::from_str::<PluginError>(payload)
        .ok()
        .filter(|e| !e.message.is_empty())
        .unwrap_or_else(|| PluginError::internal(payload))
}

/// Human text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Run one plugin entry point: a panic becomes a `panicked` error, the `Ok` value becomes JSON.
pub fn guard<T: Serialize>(
    what: &str,
    f: impl FnOnce() -> Result<T, PluginError>,
) -> RResult<RString, RString> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => match serde_json::to_string(&value) {
            Ok(json) => ROk(json.into()),
            Err(e) => RErr(encode_error(&PluginError::internal(format!(
                "cannot encode the {what} result: {e}"
            )))),
        },
        Ok(Err(err)) => RErr(encode_error(&err)),
        Err(payload) => RErr(encode_error(&PluginError::new(
            ErrorKind::Panicked,
            format!("plugin panicked in {what}: {}", panic_message(&*payload)),
        ))),
    }
}

fn parse<T: DeserializeOwned>(what: &str, json: RStr<'_>) -> Result<T, PluginError> {
    serde_json::from_str(json.as_str())
        .map_err(|e| PluginError::invalid(format!("bad {what} payload: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Adapter: Plugin -> BackendFfi
// ---------------------------------------------------------------------------------------------

/// Wraps a `Plugin` as the FFI trait object. `Option` so `Drop` can run the plugin's
/// destructor under `catch_unwind`.
#[doc(hidden)]
pub struct Adapter<P: Plugin> {
    inner: Option<P>,
}

impl<P: Plugin> Adapter<P> {
    fn plugin(&self) -> Result<&P, PluginError> {
        self.inner
            .as_ref()
            .ok_or_else(|| PluginError::internal("backend instance already dropped"))
    }
}

impl<P: Plugin> Drop for Adapter<P> {
    fn drop(&mut self) {
        if let Some(plugin) = self.inner.take() {
            let _ = catch_unwind(AssertUnwindSafe(move || drop(plugin)));
        }
    }
}

impl<P: Plugin> BackendFfi for Adapter<P> {
    fn state(&self) -> RResult<RString, RString> {
        guard("state", || self.plugin()?.state())
    }

    fn scan(
        &self,
        request_json: RStr<'_>,
        progress: ProgressSinkRef<'_>,
    ) -> RResult<RString, RString> {
        guard("scan", || {
            let request: ScanRequest = parse("scan request", request_json)?;
            self.plugin()?.scan(request, &Progress::new(&progress))
        })
    }

    fn alerts(&self, query_json: RStr<'_>) -> RResult<RString, RString> {
        guard("alerts", || {
            let query: AlertsQuery = parse("alerts query", query_json)?;
            self.plugin()?.alerts(query)
        })
    }

    fn config_get(&self) -> RResult<RString, RString> {
        guard("config_get", || self.plugin()?.config_get())
    }

    fn config_set(&self, entries_json: RStr<'_>) -> RResult<RString, RString> {
        guard("config_set", || {
            let entries: Vec<ConfigEntry> = parse("config entries", entries_json)?;
            self.plugin()?.config_set(entries)
        })
    }

    fn invoke(
        &self,
        method: RStr<'_>,
        args_json: RStr<'_>,
        progress: ProgressSinkRef<'_>,
    ) -> RResult<RString, RString> {
        guard("invoke", || {
            let args: Value = parse("invoke arguments", args_json)?;
            self.plugin()?
                .invoke(method.as_str(), args, &Progress::new(&progress))
        })
    }
}

/// Metadata of plugin type `P` (also usable by plugin unit tests).
pub fn metadata_of<P: Plugin>() -> PluginMetadata {
    PluginMetadata {
        name: P::NAME.to_owned(),
        version: P::VERSION.to_owned(),
        interface_version: crate::INTERFACE_VERSION.to_owned(),
        description: P::DESCRIPTION.to_owned(),
        capabilities: P::capabilities(),
    }
}

extern "C" fn metadata_fn<P: Plugin>() -> RResult<RString, RString> {
    guard("metadata", || Ok(metadata_of::<P>()))
}

extern "C" fn new_fn<P: Plugin>(
    services: HostServices,
    settings_json: RStr<'_>,
) -> RResult<BackendBox, RString> {
    let built = catch_unwind(AssertUnwindSafe(|| {
        let settings: Value = if settings_json.as_str().trim().is_empty() {
            Value::Object(Default::default())
        } else {
            parse("settings", settings_json)?
        };
        let host = Host {
            services,
            plugin_name: P::NAME,
        };
        let _ = GLOBAL_HOST.set(host);
        P::new(host, settings)
    }));
    match built {
        Ok(Ok(plugin)) => ROk(BackendFfi_TO::from_value(
            Adapter {
                inner: Some(plugin),
            },
            TD_Opaque,
        )),
        Ok(Err(err)) => RErr(encode_error(&err)),
        Err(payload) => RErr(encode_error(&PluginError::new(
            ErrorKind::Panicked,
            format!("plugin panicked in new: {}", panic_message(&*payload)),
        ))),
    }
}

/// Build the root module for plugin type `P`. Called once per process by the code that
/// [`crate::export_plugin!`] generates.
#[doc(hidden)]
pub fn root_module<P: Plugin>() -> PluginModule_Ref {
    PluginModule {
        interface_version: RStr::from_str(crate::INTERFACE_VERSION),
        name: RStr::from_str(P::NAME),
        version: RStr::from_str(P::VERSION),
        metadata: metadata_fn::<P>,
        new: new_fn::<P>,
    }
    .leak_into_prefix()
}
