//! Coalescing queued POST api/alerts bodies into one POST (issue 13: after an outage, 5,000
//! one-alert messages must not cost 5,000 requests; the GLPI side pays ~14 ms per request).
//!
//! Invariants:
//! - The server applies the envelope (claimed `agent_id`, `uuid`) and the top-level
//!   `task.obj.job_id` to every alert of a POST (server-api.md §3.6), so only bodies whose
//!   everything-but-`alerts` is the same, byte for byte, are merged.
//! - Every alert keeps its stored bytes, in message order; the merged body is the one the agent
//!   would have built for all those alerts at once (same fields, same order).
//! - A body that does not have exactly the shape the agent writes (unknown or missing field,
//!   an empty or absent `alerts` array) is never merged: it is sent alone, as stored.
//!
//! What the real plugin does with many alerts in one POST (server-api.md §3.6): a loop over
//! the array with the agent check, the checksum lookup and the INSERT per alert, no
//! transaction. So one invalid alert (e.g. a `detection_time` that is not 10 digits) fails
//! the whole POST with a 500 after inserting the alerts before it; re-sending is harmless
//! (checksum de-duplication), which is why the delivery splits a failed coalesced POST in
//! halves. `agents.last_alert` takes the time of the array's last alert: message order keeps
//! it the newest queued. No size limit but PHP's `post_max_size` (8 MiB) and the web
//! server's (nginx `client_max_body_size`, 1 MiB by default): see [`MAX_COALESCED_BYTES`].

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::types::WireError;

/// Alerts per coalesced POST by default: the old agent's page size, far below PHP's limits.
pub const DEFAULT_ALERTS_PER_POST: usize = 100;

/// Largest coalesced body: half of nginx's default `client_max_body_size` (1 MiB), the
/// smallest common limit in front of GLPI (PHP's `post_max_size` is 8 MiB). A single stored
/// message above it is still sent alone, as before.
pub const MAX_COALESCED_BYTES: usize = 512 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvelopeIn<'a> {
    #[serde(borrow)]
    agent_id: &'a RawValue,
    #[serde(borrow)]
    agent_version: &'a RawValue,
    #[serde(borrow)]
    uuid: &'a RawValue,
    #[serde(borrow)]
    task: TaskIn<'a>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskIn<'a> {
    #[serde(borrow)]
    name: &'a RawValue,
    #[serde(borrow)]
    antivirus: &'a RawValue,
    #[serde(borrow)]
    obj: ObjIn<'a>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjIn<'a> {
    #[serde(borrow)]
    alerts: Vec<&'a RawValue>,
    #[serde(borrow, default)]
    job_id: Option<&'a RawValue>,
}

/// The wire shape, fields in [`super::Envelope`]'s order.
#[derive(Serialize)]
struct EnvelopeOut<'a> {
    agent_id: &'a RawValue,
    agent_version: &'a RawValue,
    uuid: &'a RawValue,
    task: TaskOut<'a>,
}

#[derive(Serialize)]
struct TaskOut<'a> {
    name: &'a RawValue,
    antivirus: &'a RawValue,
    obj: ObjOut<'a>,
}

#[derive(Serialize)]
struct ObjOut<'a> {
    alerts: Vec<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    job_id: Option<&'a RawValue>,
}

/// A stored POST api/alerts body, read without copying.
pub struct AlertsBody<'a> {
    inner: EnvelopeIn<'a>,
}

impl<'a> AlertsBody<'a> {
    /// `None` when `body` is not exactly the agent's alerts shape with at least one alert:
    /// such a body is only ever sent alone.
    pub fn parse(body: &'a [u8]) -> Option<Self> {
        let inner: EnvelopeIn<'a> = serde_json::from_slice(body).ok()?;
        // `job_id: null` reads as absent, as for PHP's `isset()`: the server links no scan either way.
        if inner.task.obj.alerts.is_empty() {
            return None;
        }
        Some(Self { inner })
    }

    pub fn alerts(&self) -> usize {
        self.inner.task.obj.alerts.len()
    }

    /// What must be equal for two bodies to share one POST: everything but `alerts`.
    pub fn envelope_key(&self) -> String {
        let e = &self.inner;
        [
            e.agent_id.get(),
            e.agent_version.get(),
            e.uuid.get(),
            e.task.name.get(),
            e.task.antivirus.get(),
            e.task.obj.job_id.map_or("", |j| j.get()),
        ]
        .join("\u{0}")
    }
}

/// One body carrying the alerts of all `parts`, in order. Fails when `parts` is empty (an
/// empty `alerts` array must never be sent) or when their envelopes differ.
pub fn merge_alerts(parts: &[AlertsBody<'_>]) -> Result<Vec<u8>, WireError> {
    let first = parts
        .first()
        .ok_or_else(|| WireError::Encode("no alerts to merge".into()))?;
    let key = first.envelope_key();
    if parts.iter().any(|p| p.envelope_key() != key) {
        return Err(WireError::Encode(
            "alerts with different envelopes or job ids cannot share one POST".into(),
        ));
    }
    let e = &first.inner;
    let out = EnvelopeOut {
        agent_id: e.agent_id,
        agent_version: e.agent_version,
        uuid: e.uuid,
        task: TaskOut {
            name: e.task.name,
            antivirus: e.task.antivirus,
            obj: ObjOut {
                alerts: parts
                    .iter()
                    .flat_map(|p| p.inner.task.obj.alerts.iter().copied())
                    .collect(),
                job_id: e.task.obj.job_id,
            },
        },
    };
    serde_json::to_vec(&out).map_err(|e| WireError::Encode(e.to_string()))
}
