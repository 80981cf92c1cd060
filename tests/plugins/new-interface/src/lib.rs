//! Test plugin: built against interface 2.0 (a newer major).
//!
//! It does not use armadito-plugin-api: like a plugin compiled against another copy of the
//! interface crate, it declares its own root module with the same abi_stable NAME.

#![allow(non_local_definitions, non_camel_case_types)]

use abi_stable::{
    StableAbi, declare_root_module_statics, export_root_module,
    library::RootModule,
    prefix_type::PrefixTypeTrait,
    sabi_types::VersionStrings,
    std_types::{RStr, RString},
};

#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModule_Ref)))]
#[sabi(missing_field(panic))]
pub struct PluginModule {
    pub interface_version: RStr<'static>,
    pub name: RStr<'static>,
    pub version: RStr<'static>,
    #[sabi(last_prefix_field)]
    pub hello: extern "C" fn() -> RString,
}

impl RootModule for PluginModule_Ref {
    declare_root_module_statics! {PluginModule_Ref}
    const BASE_NAME: &'static str = "armadito_backend";
    const NAME: &'static str = "armadito_backend";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new("2.0.0");
}

extern "C" fn hello() -> RString {
    RString::from("hello")
}

#[export_root_module]
fn root_module() -> PluginModule_Ref {
    PluginModule {
        interface_version: RStr::from_str("2.0.0"),
        name: RStr::from_str("new-interface"),
        version: RStr::from_str("9.9.9"),
        hello,
    }
    .leak_into_prefix()
}
