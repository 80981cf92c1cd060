//! Fills an agent's outbox the way the agent itself does (same store API, same body bytes as
//! `Enrolled::alerts_message`), for the coalescing tests and `bench outbox`.

use std::path::Path;

use agent_core::store::{MessageKind, NewMessage, Store};
use agent_core::wire::{
    AlertsReport, AntivirusInfo, Envelope, MachineUuid, TaskName, UnixTime, WireAlert,
};

/// The detection time every queued alert carries (10 digits, as the server requires).
pub const DETECTION_TIME: i64 = 1_700_000_000;

/// The body of a one-alert POST api/alerts for alert number `i` (unique name and path, so the
/// server's checksum de-duplication keeps every one).
pub fn one_alert_body(agent_id: i64, uuid: &str, i: usize) -> Vec<u8> {
    let uuid = MachineUuid::parse(uuid).expect("a valid machine UUID");
    let alert = WireAlert {
        name: format!("Eicar-Test-Signature-{i}"),
        filepath: format!("/srv/share/infected-{i}.com"),
        action: "none".into(),
        detection_time: UnixTime::new(DETECTION_TIME).expect("10-digit time"),
        module_name: "testav".into(),
        info: "real-time".into(),
    };
    Envelope::new(
        agent_id,
        uuid,
        TaskName::Alerts,
        AntivirusInfo::new("testav", "1.0.0"),
        AlertsReport {
            alerts: vec![alert],
            job_id: None,
        },
    )
    .to_body()
    .expect("an alerts body encodes")
}

/// Queues `bodies` as alert messages in the store under `state_dir`, in one transaction.
pub fn queue_alert_bodies(state_dir: &Path, bodies: Vec<Vec<u8>>) {
    let mut store = Store::open(state_dir).expect("the agent's store opens");
    let messages: Vec<NewMessage> = bodies
        .into_iter()
        .map(|body| NewMessage {
            endpoint: "alerts",
            kind: MessageKind::Alerts,
            supersede_key: None,
            job_id: None,
            body,
        })
        .collect();
    store.enqueue_messages(&messages).expect("messages queued");
}

/// Messages pending in the store under `state_dir`.
pub fn outbox_len(state_dir: &Path) -> usize {
    Store::open(state_dir)
        .expect("the agent's store opens")
        .outbox_len()
        .expect("outbox readable")
}
