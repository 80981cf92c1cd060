//! The enrolled session: what every task talking to the server as an enrolled agent needs
//! (store, client, identity) and the outbox delivery it shares with the job engine.

use armadito_plugin_api::model::Detection;

use super::delivery;
use super::{AgentError, Context};
use crate::store::Store;
use crate::transport::GlpiClient;
use crate::wire::{AntivirusInfo, Envelope, MachineUuid, TaskName, UnixTime, WireAlert};

/// Runs a blocking backend call off the async runtime.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AgentError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AgentError::Task(format!("backend call stopped: {e}")))
}

/// The answer to a GET of a server-defined configuration ([`Enrolled::server_defined`]).
#[derive(Debug)]
pub enum ServerDefined<T> {
    Defined(T),
    /// The plugin's 400: there is nothing to apply.
    Nothing,
    /// The server failed (5xx, unreachable, timeout) or answered something other than the
    /// plugin's reply: whether it defines anything is unknown. The task carries on with what
    /// it has, reports, and ends [`AgentError::Unavailable`] so that a daemon backs off
    /// instead of asking again every period.
    Unreadable(String),
}

impl<T> ServerDefined<T> {
    /// The run's end after a read that failed: `Unavailable`, with `what` the task did instead.
    pub fn unreadable_error(&self, what: &str) -> Option<AgentError> {
        match self {
            ServerDefined::Unreadable(why) => Some(AgentError::Unavailable(format!(
                "the server-defined configuration could not be read ({why}); {what}"
            ))),
            _ => None,
        }
    }
}

/// What every task talking to the server as an enrolled agent needs.
pub struct Enrolled {
    pub store: Store,
    pub client: GlpiClient,
    pub agent_id: i64,
    pub uuid: MachineUuid,
    pub antivirus: AntivirusInfo,
    /// This run's delivery deadline and failure count, shared by all its flushes.
    pub delivery: delivery::RunBudget,
}

impl Enrolled {
    /// Fails with "not enrolled" before any network traffic when there is no agent id.
    pub fn open(ctx: &Context) -> Result<Self, AgentError> {
        let store = ctx.open_store()?;
        let agent_id = store.enrollment()?.ok_or(AgentError::NotEnrolled)?.agent_id;
        let uuid = ctx.uuid(&store)?;
        let client = ctx.client()?;
        Ok(Self {
            store,
            client,
            agent_id,
            uuid,
            antivirus: ctx.antivirus(),
            delivery: delivery::RunBudget::new(&ctx.config.outbox),
        })
    }

    /// The exact body of a POST for `task` with payload `obj`.
    pub fn body<T: serde::Serialize>(&self, task: TaskName, obj: T) -> Result<Vec<u8>, AgentError> {
        Ok(Envelope::new(
            self.agent_id,
            self.uuid.clone(),
            task,
            self.antivirus.clone(),
            obj,
        )
        .to_body()?)
    }

    /// The POST api/alerts message for `detections`, `None` when there are none (an empty
    /// `alerts` array makes PHP print a notice into the reply). A detection time the server
    /// would reject is replaced by `fallback_time`; `module`/`info` fill what the backend left empty.
    pub fn alerts_message(
        &self,
        detections: &[armadito_plugin_api::model::Detection],
        fallback_time: crate::wire::UnixTime,
        module: &str,
        info: &str,
        job_id: Option<i64>,
    ) -> Result<Option<crate::store::NewMessage>, AgentError> {
        if detections.is_empty() {
            return Ok(None);
        }
        let alerts = detections
            .iter()
            .map(|d| wire_alert(d, fallback_time, module, info))
            .collect();
        Ok(Some(crate::store::NewMessage {
            endpoint: crate::transport::Endpoint::Alerts.name(),
            kind: crate::store::MessageKind::Alerts,
            supersede_key: None,
            job_id,
            body: self.body(
                TaskName::Alerts,
                crate::wire::AlertsReport { alerts, job_id },
            )?,
        }))
    }

    /// Queues `messages` (moving `cursor` with them when given) and delivers the outbox now.
    /// Fails, with the messages kept for the next run, when they could not be delivered.
    pub async fn send(
        &mut self,
        ctx: &Context,
        messages: &[crate::store::NewMessage],
        cursor: Option<(&str, &str)>,
    ) -> Result<(), AgentError> {
        match cursor {
            Some((name, value)) => self.store.enqueue_with_cursor(messages, name, value)?,
            None => self.store.enqueue_messages(messages)?,
        }
        let report = self.flush_outbox(ctx).await?;
        // A run whose delivery stopped earlier (deadline, failures in a row) sends nothing
        // more, but what it left behind is still a failure of this run.
        match report.last_error.as_ref().or(report.halted.as_ref()) {
            Some(e) if report.pending > 0 => Err(report.kept_error(format!(
                "{} message(s) kept for the next run: {e}",
                report.pending
            ))),
            _ => self.not_sent_yet(messages),
        }
    }

    /// A new State/AVConfig/scheduler report took the place of one that waits for the backoff
    /// of an earlier failure (store/outbox.rs invariants), so this flush did not send it: the
    /// run failed, as if it had been tried.
    fn not_sent_yet(&self, messages: &[crate::store::NewMessage]) -> Result<(), AgentError> {
        messages
            .iter()
            .filter_map(|m| m.supersede_key.as_deref())
            .try_for_each(|key| self.report_waiting(key))
    }

    /// Fails when the pending report of `supersede_key` waits for the outbox backoff of an
    /// earlier failure. `Unavailable`, so a daemon backs off too.
    pub fn report_waiting(&self, supersede_key: &str) -> Result<(), AgentError> {
        let now = UnixTime::now().secs();
        match self.store.backing_off(supersede_key, now)? {
            Some((next_try, last_error)) => Err(AgentError::Unavailable(format!(
                "the {supersede_key} report is kept for the next run: it could not be delivered ({}) and waits for the outbox backoff (next try in {} s)",
                last_error.as_deref().unwrap_or("no error recorded"),
                next_try - now
            ))),
            None => Ok(()),
        }
    }

    /// GET api/avconfigs or api/schedulers: what the server defines for this agent, read by
    /// `parse`. The shipped plugin answers 400 to both: nothing is defined.
    pub async fn server_defined<T>(
        &self,
        endpoint: crate::transport::Endpoint,
        parse: impl FnOnce(&crate::transport::Reply) -> Result<T, String>,
    ) -> ServerDefined<T> {
        match self.client.get_config(endpoint, self.agent_id).await {
            Ok(reply) => match parse(&reply) {
                Ok(t) => ServerDefined::Defined(t),
                Err(e) => ServerDefined::Unreadable(e),
            },
            Err(e) if e.status() == Some(400) => ServerDefined::Nothing,
            Err(e) => ServerDefined::Unreadable(e.to_string()),
        }
    }

    /// Delivers what is pending; reports (does not fail on) delivery problems.
    pub async fn flush_outbox(
        &mut self,
        ctx: &Context,
    ) -> Result<delivery::FlushReport, AgentError> {
        let report = delivery::flush(
            &mut self.store,
            &self.client,
            &ctx.config.outbox,
            &mut self.delivery,
        )
        .await?;
        if report.delivered + report.failed > 0 {
            tracing::info!(
                delivered = report.delivered,
                failed = report.failed,
                pending = report.pending,
                "outbox flushed"
            );
        }
        Ok(report)
    }
}

/// A detection as the server stores it; a detection time the server would reject (not 10
/// digits) is replaced by `fallback_time`.
fn wire_alert(d: &Detection, fallback_time: UnixTime, module: &str, info: &str) -> WireAlert {
    let action = serde_json::to_value(d.action)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    WireAlert {
        name: d.threat_name.clone(),
        filepath: d.file_path.clone(),
        action,
        detection_time: UnixTime::new(d.detection_time).unwrap_or(fallback_time),
        module_name: d.module_name.clone().unwrap_or_else(|| module.to_string()),
        info: d.info.clone().unwrap_or_else(|| info.to_string()),
    }
}
