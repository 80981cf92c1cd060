//! Loading one plugin library into the current process (the agent in in-process mode, the
//! `plugin-host` child in process mode: same code, same checks).
//!
//! Invariants:
//! * Only absolute paths of cache copies are loaded (a bare name would make dlopen search the
//!   system library path; the original file may be overwritten by an updater).
//! * Order of checks: abi_stable header (dlopen + abi_stable's own version) → our semver check
//!   of the interface version (no plugin code has run yet except library initializers) →
//!   abi_stable's version + layout check (`init_root_module`) → `metadata()` (guarded).
//! * We use `lib_header_from_path` + `init_root_module`, never `RootModule::load_from_*`,
//!   which caches one module per interface type and process (a second plugin would silently
//!   get the first one back).
//! * Loaded libraries are never unloaded (abi_stable leaks them by design).

use std::path::Path;

use abi_stable::library::{LibraryError, lib_header_from_path};
use abi_stable::std_types::{RErr, ROk, RResult, RStr, RString};
use armadito_plugin_api::INTERFACE_VERSION;
use armadito_plugin_api::ffi::{BackendBox, HostServices, PluginModule_Ref, level};
use armadito_plugin_api::model::{PluginError, PluginMetadata};
use armadito_plugin_api::plugin::{decode_error, encode_error};

/// Why a library was refused. Messages are short (one line) and say what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("not a loadable library: {0}")]
    NotALibrary(String),
    #[error(
        "not an Armadito plugin: no plugin root module (build it with armadito-plugin-api's \
         export_plugin!)"
    )]
    NoRootModule,
    #[error("built with an incompatible abi_stable version: {0}")]
    AbiHeader(String),
    #[error(
        "built for plugin interface {found}, this agent supports {supported} (interface \
         {INTERFACE_VERSION}); rebuild the plugin against armadito-plugin-api {supported}"
    )]
    InterfaceVersion { found: String, supported: String },
    #[error("binary interface mismatch (abi_stable layout check): {0}")]
    Layout(String),
    #[error("root module initialization failed: {0}")]
    Init(String),
    #[error("bad metadata: {0}")]
    Metadata(String),
    #[error("failed to start: {0}")]
    Start(PluginError),
    #[error("{0}")]
    Other(String),
}

/// A library that passed every check; `module` stays valid for the life of the process.
#[derive(Clone)]
pub(crate) struct LoadedModule {
    pub module: PluginModule_Ref,
    pub metadata: PluginMetadata,
}

/// The interface versions this agent accepts: same major (minor bumps only add optional JSON
/// fields or `invoke` methods; the vtable is frozen).
pub(crate) fn supported_interface() -> semver::VersionReq {
    let ours = semver::Version::parse(INTERFACE_VERSION).unwrap_or(semver::Version::new(1, 0, 0));
    let text = if ours.major == 0 {
        format!("^0.{}", ours.minor)
    } else {
        format!("^{}", ours.major)
    };
    semver::VersionReq::parse(&text).unwrap_or(semver::VersionReq::STAR)
}

/// Load and verify the library at `path` (must be absolute).
pub(crate) fn load_module(path: &Path) -> Result<LoadedModule, LoadError> {
    if !path.is_absolute() {
        return Err(LoadError::Other(format!(
            "refusing a relative library path {}",
            path.display()
        )));
    }
    let header = lib_header_from_path(path).map_err(|e| map_library_error(e, path))?;

    // Our semver check, before abi_stable calls the plugin's root module constructor.
    let declared = header.version_strings().version.as_str().to_owned();
    let supported = supported_interface();
    let found = semver::Version::parse(&declared).map_err(|_| LoadError::InterfaceVersion {
        found: format!("{declared:?} (not semver)"),
        supported: supported.to_string(),
    })?;
    if !supported.matches(&found) {
        return Err(LoadError::InterfaceVersion {
            found: found.to_string(),
            supported: supported.to_string(),
        });
    }

    let module = header
        .init_root_module::<PluginModule_Ref>()
        .map_err(|e| map_library_error(e, path))?;

    let metadata = match (module.metadata())() {
        ROk(json) => serde_json::from_str::<PluginMetadata>(&json)
            .map_err(|e| LoadError::Metadata(e.to_string()))?,
        RErr(err) => return Err(LoadError::Metadata(decode_error(&err).to_string())),
    };
    let name = module.name().as_str();
    if name.is_empty() || metadata.name != name {
        return Err(LoadError::Metadata(format!(
            "declared name {name:?} differs from metadata name {:?}",
            metadata.name
        )));
    }
    if !is_valid_name(name) {
        return Err(LoadError::Metadata(format!(
            "invalid backend name {name:?} (use letters, digits, '-', '_')"
        )));
    }
    if semver::Version::parse(module.version().as_str()).is_err() {
        return Err(LoadError::Metadata(format!(
            "plugin version {:?} is not semver",
            module.version().as_str()
        )));
    }
    Ok(LoadedModule { module, metadata })
}

/// The checks `load_module` makes on what a plugin declares, applied to metadata read from
/// its file (no plugin code ran): interface version, name, version.
pub(crate) fn check_declared(m: &PluginMetadata) -> Result<(), LoadError> {
    let supported = supported_interface();
    let found =
        semver::Version::parse(&m.interface_version).map_err(|_| LoadError::InterfaceVersion {
            found: format!("{:?} (not semver)", m.interface_version),
            supported: supported.to_string(),
        })?;
    if !supported.matches(&found) {
        return Err(LoadError::InterfaceVersion {
            found: found.to_string(),
            supported: supported.to_string(),
        });
    }
    if m.name.is_empty() || !is_valid_name(&m.name) {
        return Err(LoadError::Metadata(format!(
            "invalid backend name {:?} (use letters, digits, '-', '_')",
            m.name
        )));
    }
    if semver::Version::parse(&m.version).is_err() {
        return Err(LoadError::Metadata(format!(
            "plugin version {:?} is not semver",
            m.version
        )));
    }
    Ok(())
}

fn is_valid_name(name: &str) -> bool {
    name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// Construct a backend instance (the plugin's `new`).
pub(crate) fn instantiate(
    loaded: &LoadedModule,
    services: HostServices,
    settings_json: &str,
) -> Result<BackendBox, LoadError> {
    match (loaded.module.new())(services, RStr::from_str(settings_json)) {
        ROk(instance) => Ok(instance),
        RErr(err) => Err(LoadError::Start(decode_error(&err))),
    }
}

/// Host services for plugins loaded into the agent: logs go to the agent's `tracing`.
pub(crate) fn in_process_services() -> HostServices {
    HostServices {
        log: log_to_tracing,
        call: no_host_call,
    }
}

/// Forward a plugin log line to tracing. Never unwinds (it is called from plugin code).
pub(crate) extern "C" fn log_to_tracing(lvl: u8, target: RStr<'_>, message: RStr<'_>) {
    let _ = std::panic::catch_unwind(|| emit_log(lvl, target.as_str(), message.as_str()));
}

/// Emit one plugin log line on the agent's tracing (target `plugin`, field `backend`).
pub(crate) fn emit_log(lvl: u8, backend: &str, message: &str) {
    match lvl {
        level::ERROR => tracing::error!(target: "plugin", backend, "{message}"),
        level::WARN => tracing::warn!(target: "plugin", backend, "{message}"),
        level::DEBUG => tracing::debug!(target: "plugin", backend, "{message}"),
        level::TRACE => tracing::trace!(target: "plugin", backend, "{message}"),
        _ => tracing::info!(target: "plugin", backend, "{message}"),
    }
}

/// `HostServices::call`: no host services exist in interface 1.0.
pub(crate) extern "C" fn no_host_call(
    method: RStr<'_>,
    _args: RStr<'_>,
) -> RResult<RString, RString> {
    let err = std::panic::catch_unwind(|| {
        encode_error(&PluginError::not_supported(format_args!(
            "host method {:?}",
            method.as_str()
        )))
    });
    RErr(err.unwrap_or_else(|_| RString::from("{\"kind\":\"internal\",\"message\":\"host\"}")))
}

/// Turn abi_stable's errors into short messages. Its layout report is ~900 lines; the useful
/// part is at the end.
fn map_library_error(err: LibraryError, path: &Path) -> LoadError {
    match err {
        LibraryError::OpenError { err, .. } => {
            LoadError::NotALibrary(strip_path(&err.to_string(), path))
        }
        LibraryError::GetSymbolError { .. } => LoadError::NoRootModule,
        LibraryError::InvalidAbiHeader(found) => {
            LoadError::AbiHeader(format!("library abi_stable header {found:?}"))
        }
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => LoadError::InterfaceVersion {
            found: actual_version.to_string(),
            supported: format!("^{}", expected_version.major),
        },
        LibraryError::ParseVersionError(e) => LoadError::InterfaceVersion {
            found: format!("unparsable ({e})"),
            supported: supported_interface().to_string(),
        },
        LibraryError::AbiInstability(report) => {
            LoadError::Layout(summarize_layout_error(&report.to_string()))
        }
        LibraryError::RootModule { err, .. } => LoadError::Init(tail(&err.to_string(), 4)),
        other => LoadError::Other(tail(&other.to_string(), 4)),
    }
}

/// The last `n` non-empty lines of a long report, joined on one line.
pub(crate) fn tail(report: &str, n: usize) -> String {
    let lines: Vec<&str> = report
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// abi_stable's layout report ends with `Error:<what>`, `Expected:`, <value>, `Found:`,
/// <value>; keep that as `<what>: expected <value>, found <value>`.
pub(crate) fn summarize_layout_error(report: &str) -> String {
    let lines: Vec<&str> = report
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let Some(start) = lines.iter().rposition(|l| l.starts_with("Error:")) else {
        return tail(report, 4);
    };
    let what = lines[start].trim_start_matches("Error:").trim();
    let rest = &lines[start + 1..];
    let expected_at = rest.iter().position(|l| *l == "Expected:");
    let found_at = rest.iter().position(|l| *l == "Found:");
    match (expected_at, found_at) {
        (Some(e), Some(f)) if e < f => {
            let cut = |parts: &[&str]| {
                let joined = parts.join(" ");
                if joined.chars().count() > 160 {
                    format!("{}…", joined.chars().take(160).collect::<String>())
                } else {
                    joined
                }
            };
            format!(
                "{what}: expected {}, found {}",
                cut(&rest[e + 1..f]),
                cut(&rest[f + 1..])
            )
        }
        _ => tail(&lines[start..].join("\n"), 4),
    }
}

/// dlerror messages repeat the (long, cache) path; keep the reason only.
fn strip_path(message: &str, path: &Path) -> String {
    let shown = path.display().to_string();
    let cleaned = message
        .replace(&format!("{shown}: "), "")
        .replace(&shown, "<file>");
    tail(&cleaned, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_requirement_is_same_major() {
        let req = supported_interface();
        assert!(req.matches(&semver::Version::parse(INTERFACE_VERSION).unwrap()));
        assert!(req.matches(&semver::Version::new(1, 7, 0)));
        assert!(!req.matches(&semver::Version::new(2, 0, 0)));
        assert!(!req.matches(&semver::Version::new(0, 9, 0)));
    }

    #[test]
    fn layout_report_is_summarized() {
        let report = "--- Type Layout ---\n type:PluginModule\n many lines\nError:mismatched type\nExpected:\n  u32\nFound:\n  ProgressSink_TO<'lt>\n";
        assert_eq!(
            summarize_layout_error(report),
            "mismatched type: expected u32, found ProgressSink_TO<'lt>"
        );
        assert_eq!(summarize_layout_error("a\nb"), "a | b");
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\n\n b\nc\nd\n", 2), "c | d");
        assert_eq!(tail("x", 5), "x");
    }
}
