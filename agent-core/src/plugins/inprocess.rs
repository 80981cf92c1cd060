//! A backend loaded into the agent's own process.
//!
//! Invariants:
//! * Each call runs on a pooled thread ([`super::pool`]); the caller waits with a deadline. That is
//!   the only way to time out a call we cannot interrupt: on timeout the thread is abandoned
//!   (it keeps running inside the plugin; the cancel flag is raised) and the caller gets
//!   `BackendError::Timeout`. Process isolation is the real answer to hangs.
//! * Progress events are moved to the caller's thread through a channel, so the caller's
//!   callback never runs on a plugin thread, and the sink given to the plugin never panics.
//! * Panics inside the plugin are caught by the plugin-side guard and arrive as
//!   `PluginError { kind: Panicked }`. Segfaults kill the agent: that is why process
//!   isolation is the default.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RErr, ROk, RResult, RStr, RString};
use armadito_plugin_api::ffi::{BackendBox, ProgressSinkFfi, ProgressSinkFfi_TO, ProgressSinkRef};
use armadito_plugin_api::model::{
    AlertsPage, AlertsQuery, BackendState, ConfigApplyReport, ConfigEntry, PluginMetadata,
    ScanProgress, ScanRequest, ScanResult,
};
use armadito_plugin_api::plugin::decode_error;
use serde_json::Value;

use super::pool::Pool;
use super::{Backend, BackendError, CancelToken, PluginsConfig, call, decode, timeout_for};

/// How often a waiting caller looks at its cancel token.
const POLL: Duration = Duration::from_millis(50);

enum Msg {
    Progress(String),
    Done(RResult<RString, RString>),
}

/// The sink handed to the plugin: forwards events to the waiting caller.
struct HostSink {
    tx: mpsc::Sender<Msg>,
    cancel: Arc<AtomicBool>,
}

impl ProgressSinkFfi for HostSink {
    fn progress(&self, event_json: RStr<'_>) -> bool {
        let _ = catch_unwind(AssertUnwindSafe(|| {
            let _ = self.tx.send(Msg::Progress(event_json.as_str().to_owned()));
        }));
        !self.cancel.load(Ordering::SeqCst)
    }

    fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }
}

pub(crate) struct InProcessBackend {
    metadata: PluginMetadata,
    instance: Arc<BackendBox>,
    cfg: PluginsConfig,
    /// Threads the calls run on (reused; a hung call keeps its thread).
    pool: Pool,
}

impl InProcessBackend {
    pub(crate) fn new(metadata: PluginMetadata, instance: BackendBox, cfg: PluginsConfig) -> Self {
        Self {
            pool: Pool::new(format!("plugin-{}", metadata.name)),
            metadata,
            instance: Arc::new(instance),
            cfg,
        }
    }

    fn name(&self) -> &str {
        &self.metadata.name
    }

    /// Run `f` against the instance on a worker thread; deliver progress to `on_event`.
    fn run(
        &self,
        call: &'static str,
        on_event: &mut dyn FnMut(String),
        cancel: Option<&CancelToken>,
        f: impl FnOnce(&BackendBox, ProgressSinkRef<'_>) -> RResult<RString, RString> + Send + 'static,
    ) -> Result<String, BackendError> {
        let timeout = timeout_for(&self.cfg, call);
        let (tx, rx) = mpsc::channel();
        let flag = Arc::new(AtomicBool::new(false));
        let sink = HostSink {
            tx: tx.clone(),
            cancel: flag.clone(),
        };
        let instance = self.instance.clone();
        let spawned = self.pool.execute(move || {
            let answer = f(&instance, ProgressSinkFfi_TO::from_ptr(&sink, TD_Opaque));
            let _ = tx.send(Msg::Done(answer));
        });
        if let Err(e) = spawned {
            return Err(BackendError::Unavailable {
                backend: self.name().to_owned(),
                reason: format!("cannot start a thread: {e}"),
            });
        }

        let deadline = Instant::now() + timeout;
        loop {
            if cancel.is_some_and(CancelToken::is_cancelled) {
                flag.store(true, Ordering::SeqCst);
            }
            let now = Instant::now();
            if now >= deadline {
                flag.store(true, Ordering::SeqCst);
                tracing::error!(
                    backend = self.name(),
                    "{call} timed out after {timeout:?}; its thread is abandoned inside the \
                     plugin (use process isolation to recover from hangs)"
                );
                return Err(BackendError::Timeout {
                    backend: self.name().to_owned(),
                    call,
                    after: timeout,
                });
            }
            match rx.recv_timeout(POLL.min(deadline - now)) {
                Ok(Msg::Progress(json)) => on_event(json),
                Ok(Msg::Done(ROk(json))) => return Ok(json.into_string()),
                Ok(Msg::Done(RErr(err))) => {
                    return Err(BackendError::Plugin {
                        backend: self.name().to_owned(),
                        call,
                        error: decode_error(&err),
                    });
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(BackendError::Crashed {
                        backend: self.name().to_owned(),
                        call,
                        detail: "the call's thread ended without an answer".into(),
                    });
                }
            }
        }
    }

    fn simple(
        &self,
        call: &'static str,
        f: impl FnOnce(&BackendBox) -> RResult<RString, RString> + Send + 'static,
    ) -> Result<String, BackendError> {
        self.run(call, &mut |_| {}, None, move |b, _| f(b))
    }
}

impl Backend for InProcessBackend {
    fn metadata(&self) -> &PluginMetadata {
        &self.metadata
    }

    fn state(&self) -> Result<BackendState, BackendError> {
        let json = self.simple(call::STATE, |b| b.state())?;
        decode(self.name(), call::STATE, &json)
    }

    fn scan(
        &self,
        request: &ScanRequest,
        on_progress: &mut dyn FnMut(ScanProgress),
        cancel: &CancelToken,
    ) -> Result<ScanResult, BackendError> {
        let request = serde_json::to_string(request).unwrap_or_else(|_| "{}".into());
        let name = self.name().to_owned();
        let mut on_event = |json: String| match serde_json::from_str::<ScanProgress>(&json) {
            Ok(p) => on_progress(p),
            Err(e) => tracing::debug!(backend = name, "ignoring a bad progress event: {e}"),
        };
        let json = self.run(call::SCAN, &mut on_event, Some(cancel), move |b, sink| {
            b.scan(RStr::from_str(&request), sink)
        })?;
        decode(self.name(), call::SCAN, &json)
    }

    fn alerts(&self, query: &AlertsQuery) -> Result<AlertsPage, BackendError> {
        let query = serde_json::to_string(query).unwrap_or_else(|_| "{}".into());
        let json = self.simple(call::ALERTS, move |b| b.alerts(RStr::from_str(&query)))?;
        decode(self.name(), call::ALERTS, &json)
    }

    fn config_get(&self) -> Result<Vec<ConfigEntry>, BackendError> {
        let json = self.simple(call::CONFIG_GET, |b| b.config_get())?;
        decode(self.name(), call::CONFIG_GET, &json)
    }

    fn config_set(&self, entries: &[ConfigEntry]) -> Result<ConfigApplyReport, BackendError> {
        let entries = serde_json::to_string(entries).unwrap_or_else(|_| "[]".into());
        let json = self.simple(call::CONFIG_SET, move |b| {
            b.config_set(RStr::from_str(&entries))
        })?;
        decode(self.name(), call::CONFIG_SET, &json)
    }

    fn invoke(
        &self,
        method: &str,
        args: &Value,
        on_progress: &mut dyn FnMut(Value),
        cancel: &CancelToken,
    ) -> Result<Value, BackendError> {
        let method = method.to_owned();
        let args = args.to_string();
        let mut on_event = |json: String| {
            if let Ok(v) = serde_json::from_str::<Value>(&json) {
                on_progress(v)
            }
        };
        let json = self.run(call::INVOKE, &mut on_event, Some(cancel), move |b, sink| {
            b.invoke(RStr::from_str(&method), RStr::from_str(&args), sink)
        })?;
        decode(self.name(), call::INVOKE, &json)
    }
}
