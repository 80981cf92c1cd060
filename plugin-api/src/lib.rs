//! Armadito backend plugin interface.
//!
//! A backend (ClamAV, Armadito AV, Windows Defender, ...) is a `cdylib` that implements
//! [`Plugin`] and calls [`export_plugin!`] once. The agent loads it at run time, checks the
//! interface version and the binary layout (abi_stable), and talks to it through a small,
//! frozen vtable ([`ffi`]) whose payloads are JSON strings of the typed [`model`].
//! See README.md for a complete example.
//!
//! Invariants:
//! * [`ffi`] never changes within an interface major version (see its module docs).
//! * [`model`] only gains optional fields within a major version.
//! * No panic crosses the boundary: every generated entry point is guarded.

pub mod ffi;
pub mod model;
pub mod plugin;
pub mod static_meta;

pub use model::*;
pub use plugin::{Host, Level, Plugin, Progress, log, metadata_of};
/// Re-exported so plugins can build settings and `invoke` values without a direct dependency.
pub use serde_json;
pub use static_meta::StaticCapabilities;

/// Version of the plugin interface: the frozen [`ffi`] vtable plus the [`model`].
///
/// The host accepts plugins with the same major version, any minor (minor bumps only add
/// optional model fields or `invoke` methods). It is independent of the crate version.
pub const INTERFACE_VERSION: &str = "1.0.0";

#[doc(hidden)]
pub mod __private {
    pub use abi_stable;
}

/// Export `$plugin` (a type implementing [`Plugin`]) as this library's root module, and write
/// its metadata into the file ([`static_meta`]) so the agent can list it without loading it.
///
/// Use it exactly once, in a crate with `crate-type = ["cdylib"]` (or `["cdylib", "rlib"]`).
/// It expands to what abi_stable's `#[export_root_module]` generates, with paths through this
/// crate, so the plugin crate does not need a direct `abi_stable` dependency.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        /// The plugin's metadata, readable from the file without loading it (see
        /// `armadito_plugin_api::static_meta`). Exported so the linker keeps it.
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        #[used]
        #[cfg_attr(not(target_vendor = "apple"), unsafe(link_section = ".armmeta"))]
        #[cfg_attr(target_vendor = "apple", unsafe(link_section = "__DATA,__armmeta"))]
        pub static ARMADITO_PLUGIN_METADATA: [u8; $crate::static_meta::len::<$plugin>()] =
            $crate::static_meta::bytes::<$plugin, { $crate::static_meta::len::<$plugin>() }>();

        #[doc(hidden)]
        fn __armadito_plugin_root_module() -> $crate::ffi::PluginModule_Ref {
            $crate::plugin::root_module::<$plugin>()
        }

        /// abi_stable's library header (the symbol the agent looks up).
        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        #[unsafe(no_mangle)]
        pub static _1as_0lib_1header_0root_bmodule_bloader:
            $crate::__private::abi_stable::library::LibHeader = {
            extern "C" fn __erased_root_module()
            -> $crate::__private::abi_stable::library::RootModuleResult {
                $crate::__private::abi_stable::library::__call_root_module_loader(
                    __armadito_plugin_root_module,
                )
            }
            // SAFETY: the constructor returns a `PluginModule_Ref` erased by abi_stable's own
            // helper, exactly as `#[export_root_module]` does.
            unsafe {
                $crate::__private::abi_stable::library::LibHeader::from_constructor::<
                    $crate::ffi::PluginModule_Ref,
                >(
                    __erased_root_module,
                    $crate::__private::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn exported_symbol_name_matches_abi_stable() {
        // export_plugin! hard-codes the symbol; abi_stable looks this name up.
        assert_eq!(
            abi_stable::library::ROOT_MODULE_LOADER_NAME,
            "_1as_0lib_1header_0root_bmodule_bloader"
        );
    }

    #[test]
    fn readme_example_is_the_tested_example_plugin() {
        let readme = include_str!("../README.md");
        let example = include_str!("../../tests/plugins/example/src/lib.rs");
        assert!(
            readme.contains(example),
            "README.md must embed tests/plugins/example/src/lib.rs"
        );
    }

    #[test]
    fn interface_version_is_semver() {
        let v = super::INTERFACE_VERSION;
        let parts: Vec<u32> = v.split('.').map(|p| p.parse().unwrap()).collect();
        assert_eq!(parts.len(), 3);
    }
}
