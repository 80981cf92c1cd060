//! Test plugin: a valid shared library that exports no abi_stable root module.

#[unsafe(no_mangle)]
pub extern "C" fn not_a_plugin() -> i32 {
    42
}
