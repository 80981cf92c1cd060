//! The built cdylib, loaded the way the agent loads plugins (abi_stable header, layout
//! check, root module), driven through the frozen vtable against a real clamd.

mod support;

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use abi_stable::library::lib_header_from_path;
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RErr, ROk, RResult, RStr, RString};
use armadito_plugin_api::ffi::{
    HostServices, PluginModule_Ref, ProgressSinkFfi, ProgressSinkFfi_TO,
};
use armadito_plugin_api::model::{
    BackendState, ConfigEntry, PluginMetadata, ScanProgress, ScanResult, ServiceStatus,
};
use serde_json::json;
use support::{Clamd, Tree, eicar};

static LOGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

extern "C" fn log(level: u8, target: RStr<'_>, message: RStr<'_>) {
    if let Ok(mut logs) = LOGS.lock() {
        logs.push(format!("{level} {target}: {message}"));
    }
}

extern "C" fn call(_: RStr<'_>, _: RStr<'_>) -> RResult<RString, RString> {
    RErr(r#"{"kind":"not-supported","message":"no host services"}"#.into())
}

struct Sink {
    events: AtomicUsize,
}

impl ProgressSinkFfi for Sink {
    fn progress(&self, event_json: RStr<'_>) -> bool {
        let event: ScanProgress = serde_json::from_str(event_json.as_str()).expect("progress JSON");
        assert!(event.files_total_estimate.is_some());
        self.events.fetch_add(1, Ordering::Relaxed);
        true
    }
    fn is_cancelled(&self) -> bool {
        false
    }
}

/// The cdylib cargo built next to this test binary.
fn library() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let deps = exe.parent().expect("deps dir");
    let name = format!(
        "{}armadito_backend_clamav{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    [deps.join(&name), deps.join("..").join(&name)]
        .into_iter()
        .find(|p| p.exists())
        .expect("the cdylib is built with the tests")
}

fn ok(r: RResult<RString, RString>) -> String {
    match r {
        ROk(s) => s.into_string(),
        RErr(e) => panic!("plugin error: {e}"),
    }
}

#[test]
fn loads_through_abi_stable_and_serves_every_call() {
    let clamd = Clamd::start();
    let header = lib_header_from_path(&library()).expect("library header");
    let module = header
        .init_root_module::<PluginModule_Ref>()
        .expect("layout and version check");
    assert_eq!(module.name().as_str(), "clamav");
    let meta: PluginMetadata = serde_json::from_str(&ok((module.metadata())())).unwrap();
    assert_eq!(meta.name, "clamav");
    assert!(meta.capabilities.scan_progress && meta.capabilities.alerts);

    // Bad settings refuse the plugin with a readable error.
    let services = HostServices { log, call };
    let refused = (module.new())(services, RStr::from_str(r#"{"sokcet":"/x"}"#));
    match refused {
        RErr(e) => assert!(e.as_str().contains("sokcet"), "{e}"),
        ROk(_) => panic!("typo accepted"),
    }

    let settings = clamd.settings().to_string();
    let backend = match (module.new())(services, RStr::from_str(&settings)) {
        ROk(b) => b,
        RErr(e) => panic!("new: {e}"),
    };
    let state: BackendState = serde_json::from_str(&ok(backend.state())).unwrap();
    assert_eq!(state.service_status, ServiceStatus::Running);

    let tree = Tree::new();
    tree.file("a.txt", b"clean");
    tree.file("b.com", &eicar());
    let sink = Sink {
        events: AtomicUsize::new(0),
    };
    let request = json!({"paths": [tree.path()], "per_file_results": true}).to_string();
    let result: ScanResult = serde_json::from_str(&ok(backend.scan(
        RStr::from_str(&request),
        ProgressSinkFfi_TO::from_ptr(&sink, TD_Opaque),
    )))
    .unwrap();
    assert_eq!(
        (result.scanned, result.malware, result.files.len()),
        (2, 1, 2)
    );
    assert!(sink.events.load(Ordering::Relaxed) >= 1);

    let entries: Vec<ConfigEntry> = serde_json::from_str(&ok(backend.config_get())).unwrap();
    assert!(entries.iter().any(|e| e.attr == "StreamMaxLength"));
    let page = ok(backend.alerts(RStr::from_str("{}")));
    assert!(page.contains("next_cursor"), "{page}");

    // invoke: RELOAD through the extension point.
    let reloaded = ok(backend.invoke(
        RStr::from_str("reload"),
        RStr::from_str("{}"),
        ProgressSinkFfi_TO::from_ptr(&sink, TD_Opaque),
    ));
    assert_eq!(reloaded, r#"{"reloading":true}"#);

    // Errors cross the boundary as PluginError JSON with their kind.
    match backend.alerts(RStr::from_str(r#"{"cursor":"garbage"}"#)) {
        RErr(e) => assert!(e.as_str().contains("invalid-argument"), "{e}"),
        ROk(p) => panic!("bad cursor accepted: {p}"),
    }
    drop(backend);
}
