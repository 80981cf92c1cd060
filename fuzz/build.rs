//! The five backend crates each export the same two symbols (`export_plugin!`: the plugin's
//! metadata and abi_stable's library header), which is right for their `.so` files but
//! clashes when one program links all five as libraries, as this harness does. Nothing here
//! loads a plugin through those symbols (the parsers are called directly), so the first
//! definition is as good as any: allow the duplicates, for this package's programs only.
fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" {
        println!("cargo:rustc-link-arg=-Wl,--allow-multiple-definition");
    }
}
