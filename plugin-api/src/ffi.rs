//! The frozen v1 binary interface between the agent and a backend plugin.
//!
//! Invariants (read before touching anything here):
//! * **Frozen.** Every type in this module is layout-checked by abi_stable when a plugin is
//!   loaded. A host whose vtable has *more* fields than a plugin's rejects that plugin, so
//!   adding a method here would make every already-built plugin unloadable. Do not add, remove,
//!   reorder or retype anything. New features travel as JSON: new optional model fields, new
//!   `invoke` methods (plugin side) and new `HostServices::call` methods (host side).
//! * A breaking change means a new interface major version ([`crate::INTERFACE_VERSION`]) and
//!   a rebuild of every plugin; the host refuses other majors before calling into the plugin.
//! * Payloads are JSON strings of the types in [`crate::model`]. Errors are the JSON of
//!   [`crate::model::PluginError`] inside `RErr`.
//! * No panic may cross this boundary in either direction (abi_stable turns it into
//!   `exit(1)`): plugin entry points are wrapped by [`crate::plugin`], host callbacks must
//!   catch their own panics.

#![allow(non_local_definitions, non_camel_case_types)]

use abi_stable::{
    StableAbi, declare_root_module_statics,
    library::RootModule,
    sabi_trait,
    sabi_types::{RRef, VersionStrings},
    std_types::{RBox, RResult, RStr, RString},
};

/// `RootModule::NAME` of the plugin root module (also abi_stable's name in its error messages).
pub const ROOT_MODULE_NAME: &str = "armadito_backend";

/// Log levels carried by [`HostServices::log`] (a plain `u8` so new levels never break the
/// layout; unknown values are logged as info).
pub mod level {
    pub const ERROR: u8 = 1;
    pub const WARN: u8 = 2;
    pub const INFO: u8 = 3;
    pub const DEBUG: u8 = 4;
    pub const TRACE: u8 = 5;
}

/// Services the host gives a plugin at construction time.
///
/// Plugins have their own copy of `tracing` (and of every other crate), so their logs are
/// lost unless they go through `log`. `call` is the host-side extension point for services
/// added later (it answers `not-supported` to unknown methods). Both functions must be
/// callable from any thread, at any time, and never panic or unwind.
#[repr(C)]
#[derive(StableAbi, Copy, Clone)]
pub struct HostServices {
    /// `log(level, target, message)`; `target` starts with the plugin name.
    pub log: extern "C" fn(level: u8, target: RStr<'_>, message: RStr<'_>),
    /// `call(method, args_json) -> result_json | PluginError json`.
    pub call: extern "C" fn(method: RStr<'_>, args_json: RStr<'_>) -> RResult<RString, RString>,
}

/// Where a long call (scan, some invoke methods) reports progress.
///
/// `Send + Sync` with `&self` methods so a plugin may report from several worker threads
/// (e.g. parallel clamd connections inside `std::thread::scope`).
#[sabi_trait]
pub trait ProgressSinkFfi: Send + Sync {
    /// Report one event (JSON of `ScanProgress` for scans). Returns `false` when the host
    /// asks the plugin to stop: the plugin should return soon with a cancelled result.
    fn progress(&self, event_json: RStr<'_>) -> bool;

    /// True once cancellation has been requested (cheap; poll it between files).
    #[sabi(last_prefix_field)]
    fn is_cancelled(&self) -> bool;
}

/// The progress sink as it crosses the boundary: borrowed for the duration of one call only.
pub type ProgressSinkRef<'a> = ProgressSinkFfi_TO<'a, RRef<'a, ()>>;

/// One live backend instance. Every method returns the JSON of a model type, or the JSON of a
/// `PluginError` in `RErr`.
#[sabi_trait]
pub trait BackendFfi: Send + Sync {
    /// `BackendState`.
    fn state(&self) -> RResult<RString, RString>;

    /// `ScanRequest` in, `ScanProgress` events through `progress`, `ScanResult` out.
    fn scan(
        &self,
        request_json: RStr<'_>,
        progress: ProgressSinkRef<'_>,
    ) -> RResult<RString, RString>;

    /// `AlertsQuery` in, `AlertsPage` out.
    fn alerts(&self, query_json: RStr<'_>) -> RResult<RString, RString>;

    /// `Vec<ConfigEntry>` out.
    fn config_get(&self) -> RResult<RString, RString>;

    /// `Vec<ConfigEntry>` in, `ConfigApplyReport` out.
    fn config_set(&self, entries_json: RStr<'_>) -> RResult<RString, RString>;

    /// Everything that comes later: `method` names listed in `Capabilities::invoke_methods`,
    /// arbitrary JSON in and out.
    #[sabi(last_prefix_field)]
    fn invoke(
        &self,
        method: RStr<'_>,
        args_json: RStr<'_>,
        progress: ProgressSinkRef<'_>,
    ) -> RResult<RString, RString>;
}

/// An owned backend instance as returned by [`PluginModule::new`].
pub type BackendBox = BackendFfi_TO<'static, RBox<()>>;

/// The root module every plugin exports (through [`crate::export_plugin!`]).
///
/// `interface_version`, `name` and `version` are plain data: the host reads them without
/// running plugin code, to refuse or deduplicate plugins before `new`.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModule_Ref)))]
#[sabi(missing_field(panic))]
pub struct PluginModule {
    /// The [`crate::INTERFACE_VERSION`] the plugin was built with.
    pub interface_version: RStr<'static>,
    /// Backend name: the plugin's identity.
    pub name: RStr<'static>,
    /// Plugin version (semver).
    pub version: RStr<'static>,
    /// JSON of `PluginMetadata` (name, versions, description, capabilities).
    pub metadata: extern "C" fn() -> RResult<RString, RString>,
    /// Construct the backend. `settings_json` is the `[backends.<name>]` table of the agent
    /// configuration, as JSON (`{}` when absent).
    #[sabi(last_prefix_field)]
    pub new:
        extern "C" fn(host: HostServices, settings_json: RStr<'_>) -> RResult<BackendBox, RString>,
}

impl RootModule for PluginModule_Ref {
    declare_root_module_statics! {PluginModule_Ref}
    const BASE_NAME: &'static str = ROOT_MODULE_NAME;
    const NAME: &'static str = ROOT_MODULE_NAME;
    const VERSION_STRINGS: VersionStrings = VersionStrings::new(crate::INTERFACE_VERSION);
}
