//! The `plugin-host` child: loads one plugin through the same loader as in-process mode and
//! serves it over stdin/stdout ([`super::protocol`]).
//!
//! Invariants:
//! * The protocol owns the original stdout; fd 1 is redirected to stderr first (Unix), so a
//!   plugin that prints cannot corrupt the protocol stream.
//! * Every message is written whole, under one lock, followed by `\n`.
//! * Requests run concurrently (on pooled threads), so `cancel` and `state` are served while a
//!   scan runs. End of stdin ends the process, even if a plugin call is stuck.
//! * This process is disposable: a crash here is reported to the agent as a failed call.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RErr, ROk, RResult, RStr, RString};
use armadito_plugin_api::ffi::{BackendBox, HostServices, ProgressSinkFfi, ProgressSinkFfi_TO};
use armadito_plugin_api::model::{ErrorKind, PluginError};
use armadito_plugin_api::plugin::decode_error;
use serde_json::Value;

use super::loader::{self, LoadError, LoadedModule};
use super::pool::Pool;
use super::protocol::{EXIT_REFUSED, Hello, Message, ProtocolInfo, Request, method};
use super::security;

type Out = Mutex<Box<dyn Write + Send>>;

/// The protocol writer (the original stdout).
static OUT: OnceLock<Out> = OnceLock::new();

fn send(msg: &Message) {
    let Some(out) = OUT.get() else { return };
    let Ok(mut line) = serde_json::to_string(msg) else {
        return;
    };
    line.push('\n');
    let mut w = out.lock();
    // A broken pipe means the agent is gone; nothing useful to do with the error.
    let _ = w.write_all(line.as_bytes()).and_then(|_| w.flush());
}

/// Take the real stdout for the protocol and point fd 1 at stderr.
fn protocol_output() -> Box<dyn Write + Send> {
    #[cfg(unix)]
    {
        use std::os::fd::FromRawFd;
        // SAFETY: dup/dup2 on the process's own standard descriptors; the duplicated fd is
        // owned by the File from here on.
        unsafe {
            let fd = libc::dup(1);
            if fd >= 0 {
                libc::dup2(2, 1);
                return Box::new(std::fs::File::from_raw_fd(fd));
            }
        }
    }
    Box::new(std::io::stdout())
}

/// Plugin log lines travel to the agent as `log` messages.
extern "C" fn log_to_parent(level: u8, target: RStr<'_>, message: RStr<'_>) {
    let _ = std::panic::catch_unwind(|| {
        send(&Message::Log {
            level,
            target: target.as_str().to_owned(),
            message: message.as_str().to_owned(),
        })
    });
}

/// Sink for one request: progress goes to the agent, cancel comes from a `cancel` request.
struct ChildSink {
    id: u64,
    cancel: Arc<AtomicBool>,
}

impl ProgressSinkFfi for ChildSink {
    fn progress(&self, event_json: RStr<'_>) -> bool {
        let _ = std::panic::catch_unwind(|| {
            if let Ok(event) = serde_json::from_str::<Value>(event_json.as_str()) {
                send(&Message::Progress { id: self.id, event });
            }
        });
        !self.cancel.load(Ordering::SeqCst)
    }

    fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }
}

/// Entry point of `armadito-agent plugin-host --plugin <file>`: serve until stdin closes.
///
/// Exit codes: 0 after stdin closed, 3 when the plugin was refused (after a `refused`
/// message), 2 on an I/O failure.
pub fn plugin_host_main(plugin: &Path) -> ExitCode {
    let _ = OUT.set(Mutex::new(protocol_output()));

    let loaded = match load(plugin) {
        Ok(loaded) => loaded,
        Err(e) => {
            send(&Message::Refused {
                error: e.to_string(),
            });
            return ExitCode::from(EXIT_REFUSED);
        }
    };
    send(&Message::Hello(Hello {
        protocol: Some(ProtocolInfo::ours()),
        metadata: loaded.metadata.clone(),
        pid: std::process::id(),
    }));

    let instance: Arc<OnceLock<Arc<BackendBox>>> = Arc::new(OnceLock::new());
    let in_flight: Arc<Mutex<HashMap<u64, Arc<AtomicBool>>>> = Arc::default();
    let pool = Pool::new("plugin-call");

    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else {
            return ExitCode::from(2);
        };
        if line.trim().is_empty() {
            continue;
        }
        let request: Request = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                send(&Message::Log {
                    level: armadito_plugin_api::ffi::level::ERROR,
                    target: "plugin-host".into(),
                    message: format!("ignoring a malformed request: {e}"),
                });
                continue;
            }
        };
        match request.method.as_str() {
            method::INIT => {
                let answer = init(&loaded, &instance, &request.params);
                reply(request.id, answer);
            }
            method::CANCEL => {
                let target = request.params.get("id").and_then(Value::as_u64);
                if let Some(flag) = target.and_then(|t| in_flight.lock().get(&t).cloned()) {
                    flag.store(true, Ordering::SeqCst);
                }
                reply(request.id, Ok(Value::Null));
            }
            _ => {
                let Some(backend) = instance.get().cloned() else {
                    reply(
                        request.id,
                        Err(PluginError::internal("plugin-host: init was not called")),
                    );
                    continue;
                };
                let flag = Arc::new(AtomicBool::new(false));
                in_flight.lock().insert(request.id, flag.clone());
                let in_flight = in_flight.clone();
                let spawned = pool.execute(move || {
                    let id = request.id;
                    let answer = dispatch(&backend, request, flag);
                    in_flight.lock().remove(&id);
                    reply(id, answer);
                });
                if let Err(e) = spawned {
                    send(&Message::Log {
                        level: armadito_plugin_api::ffi::level::ERROR,
                        target: "plugin-host".into(),
                        message: format!("cannot start a thread: {e}"),
                    });
                }
            }
        }
    }
    ExitCode::SUCCESS
}

fn load(plugin: &Path) -> Result<LoadedModule, LoadError> {
    let path = std::fs::canonicalize(plugin)
        .map_err(|e| LoadError::Other(format!("{}: {e}", plugin.display())))?;
    security::check_trusted(&path).map_err(|e| LoadError::Other(e.to_string()))?;
    loader::load_module(&path)
}

fn init(
    loaded: &LoadedModule,
    slot: &OnceLock<Arc<BackendBox>>,
    settings: &Value,
) -> Result<Value, PluginError> {
    if slot.get().is_some() {
        return Err(PluginError::invalid("plugin-host: already initialized"));
    }
    let settings = if settings.is_null() {
        "{}".to_owned()
    } else {
        settings.to_string()
    };
    let services = HostServices {
        log: log_to_parent,
        call: loader::no_host_call,
    };
    match loader::instantiate(loaded, services, &settings) {
        Ok(instance) => {
            let _ = slot.set(Arc::new(instance));
            Ok(Value::Null)
        }
        Err(LoadError::Start(err)) => Err(err),
        Err(other) => Err(PluginError::internal(other.to_string())),
    }
}

fn reply(id: u64, answer: Result<Value, PluginError>) {
    send(&match answer {
        Ok(value) => Message::Result { id, value },
        Err(error) => Message::Error { id, error },
    });
}

/// Run one backend call; the plugin's answer is validated as JSON here.
fn dispatch(
    backend: &BackendBox,
    request: Request,
    cancel: Arc<AtomicBool>,
) -> Result<Value, PluginError> {
    let sink = ChildSink {
        id: request.id,
        cancel,
    };
    let params = request.params.to_string();
    let answer: RResult<RString, RString> = match request.method.as_str() {
        "state" => backend.state(),
        "scan" => backend.scan(
            RStr::from_str(&params),
            ProgressSinkFfi_TO::from_ptr(&sink, TD_Opaque),
        ),
        "alerts" => backend.alerts(RStr::from_str(&params)),
        "config_get" => backend.config_get(),
        "config_set" => backend.config_set(RStr::from_str(&params)),
        "invoke" => {
            let name = request
                .params
                .get("method")
                .and_then(Value::as_str)
                .unwrap_or("");
            let args = request
                .params
                .get("args")
                .cloned()
                .unwrap_or(Value::Null)
                .to_string();
            backend.invoke(
                RStr::from_str(name),
                RStr::from_str(&args),
                ProgressSinkFfi_TO::from_ptr(&sink, TD_Opaque),
            )
        }
        other => {
            return Err(PluginError::new(
                ErrorKind::NotSupported,
                format!("plugin-host: unknown method {other:?}"),
            ));
        }
    };
    match answer {
        ROk(json) => serde_json::from_str(&json)
            .map_err(|e| PluginError::internal(format!("the plugin answered invalid JSON: {e}"))),
        RErr(err) => Err(decode_error(&err)),
    }
}
