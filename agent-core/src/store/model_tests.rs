//! Model-based tests of the job queue and the outbox: random sequences of operations run
//! against the real store (SQLite in a temp dir) and against a plain in-memory model; after
//! every step the two must agree. A `Crash` step drops the store and reopens it (what a
//! SIGKILL between two steps leaves, since every step is one transaction).
//!
//! What the model states: jobs move queued → running → finished → reported and never back
//! (except running → queued by recovery after a crash); the next job is the highest priority,
//! then the oldest, then the lowest id; a known job id is never queued twice; the outbox is
//! FIFO; a superseding message takes the place of the pending one with its key; delivering a
//! job status marks its job reported; a failed delivery keeps the message where it was;
//! messages sent in one coalesced POST are deleted together or all kept.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::jobs::{JobState, UnknownText};
use super::outbox::{MessageKind, NewMessage};
use super::{Store, StoredJob};
use crate::wire::{Job, JobPriority, ParsedJob};

#[derive(Debug, Clone)]
enum Op {
    /// A GET jobs reply with these (id, priority) pairs.
    Enqueue(Vec<(i64, u8)>),
    /// Runjobs takes the next job.
    StartNext,
    /// The running job `n` (modulo how many run) finishes, queuing its status, a result and a
    /// progress message (superseding the job's previous progress).
    Finish(usize),
    /// A State message (superseding the pending one).
    State(u8),
    /// The oldest message is delivered (2xx).
    Deliver,
    /// The oldest message fails.
    Fail,
    /// An alert message (coalesced with others when delivered).
    Alert(u8),
    /// The `n` oldest messages went in one POST (coalesced) that was acknowledged.
    DeliverMany(usize),
    /// The `n` oldest messages went in one POST that failed: all stay, each with one attempt more.
    FailMany(usize),
    /// The agent dies and starts again; interrupted jobs go back to the queue.
    Crash { requeue: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => prop::collection::vec((1i64..12, 0u8..4), 1..4).prop_map(Op::Enqueue),
        3 => Just(Op::StartNext),
        3 => (0usize..4).prop_map(Op::Finish),
        1 => (0u8..255).prop_map(Op::State),
        3 => Just(Op::Deliver),
        1 => Just(Op::Fail),
        2 => (0u8..255).prop_map(Op::Alert),
        2 => (1usize..5).prop_map(Op::DeliverMany),
        1 => (1usize..5).prop_map(Op::FailMany),
        1 => any::<bool>().prop_map(|requeue| Op::Crash { requeue }),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct ModelJob {
    state: JobState,
    priority: u8,
    attempts: u32,
}

#[derive(Debug, Clone, PartialEq)]
struct ModelMsg {
    kind: MessageKind,
    job_id: Option<i64>,
    key: Option<String>,
    body: Vec<u8>,
    attempts: u32,
}

#[derive(Default)]
struct Model {
    jobs: BTreeMap<i64, ModelJob>,
    outbox: Vec<ModelMsg>,
}

fn job(job_id: i64, priority: u8) -> ParsedJob {
    Ok(Job {
        job_id,
        job_type: "Scan".into(),
        priority: JobPriority::new(i64::from(priority)).unwrap(),
        obj: serde_json::json!({"scan_path": "/tmp"}),
    })
}

fn message(
    kind: MessageKind,
    job_id: Option<i64>,
    key: Option<String>,
    body: String,
) -> NewMessage {
    NewMessage {
        endpoint: "jobs",
        kind,
        supersede_key: key,
        job_id,
        body: body.into_bytes(),
    }
}

impl Model {
    fn enqueue(&mut self, msgs: &[NewMessage]) {
        for m in msgs {
            let new = ModelMsg {
                kind: m.kind,
                job_id: m.job_id,
                key: m.supersede_key.clone(),
                body: m.body.clone(),
                attempts: 0,
            };
            match m
                .supersede_key
                .as_ref()
                .and_then(|k| self.outbox.iter().position(|o| o.key.as_ref() == Some(k)))
            {
                // The retry schedule stays with a message of the same kind (see outbox.rs
                // invariants).
                Some(at) => {
                    let old = &self.outbox[at];
                    self.outbox[at] = ModelMsg {
                        attempts: if old.kind == new.kind {
                            old.attempts
                        } else {
                            0
                        },
                        ..new
                    }
                }
                None => self.outbox.push(new),
            }
        }
    }

    fn running(&self) -> Vec<i64> {
        self.jobs
            .iter()
            .filter(|(_, j)| j.state == JobState::Running)
            .map(|(id, _)| *id)
            .collect()
    }
}

/// The store and the model agree on every job and every pending message, in order.
fn check(store: &Store, model: &Model) {
    let jobs: BTreeMap<i64, ModelJob> = store
        .jobs()
        .unwrap()
        .into_iter()
        .map(|j| {
            (
                j.job_id,
                ModelJob {
                    state: j.state,
                    priority: j.priority,
                    attempts: j.attempts,
                },
            )
        })
        .collect();
    assert_eq!(jobs, model.jobs, "jobs");
    let outbox: Vec<(MessageKind, Option<i64>, Vec<u8>, u32)> = store
        .outbox()
        .unwrap()
        .into_iter()
        .map(|m| (m.kind, m.job_id, m.body, m.attempts))
        .collect();
    let expected: Vec<(MessageKind, Option<i64>, Vec<u8>, u32)> = model
        .outbox
        .iter()
        .map(|m| (m.kind, m.job_id, m.body.clone(), m.attempts))
        .collect();
    assert_eq!(outbox, expected, "outbox");
}

/// The job the queue must hand out next: highest priority, oldest arrival, lowest id.
fn expected_next(store: &Store, model: &Model) -> Option<i64> {
    let stored: BTreeMap<i64, StoredJob> = store
        .jobs()
        .unwrap()
        .into_iter()
        .map(|j| (j.job_id, j))
        .collect();
    model
        .jobs
        .iter()
        .filter(|(_, j)| j.state == JobState::Queued)
        .map(|(id, j)| (std::cmp::Reverse(j.priority), stored[id].received_at, *id))
        .min()
        .map(|(_, _, id)| id)
}

fn run(ops: Vec<Op>) {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(tmp.path()).unwrap();
    let mut model = Model::default();
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Enqueue(pairs) => {
                let reply: Vec<ParsedJob> = pairs.iter().map(|(id, p)| job(*id, *p)).collect();
                let report = store.enqueue_jobs(&reply).unwrap();
                let mut added = Vec::new();
                for (id, p) in pairs {
                    if model.jobs.contains_key(&id) {
                        continue;
                    }
                    model.jobs.insert(
                        id,
                        ModelJob {
                            state: JobState::Queued,
                            priority: p,
                            attempts: 0,
                        },
                    );
                    added.push(id);
                }
                assert_eq!(
                    report.added, added,
                    "step {step}: known ids are not queued again"
                );
            }
            Op::StartNext => {
                let want = expected_next(&store, &model);
                let next = store.next_queued_job().unwrap().map(|j| j.job_id);
                assert_eq!(next, want, "step {step}: queue order");
                if let Some(id) = next {
                    assert!(store.start_job(id).unwrap());
                    assert!(
                        !store.start_job(id).unwrap(),
                        "a running job is not started twice"
                    );
                    let j = model.jobs.get_mut(&id).unwrap();
                    j.state = JobState::Running;
                    j.attempts += 1;
                }
            }
            Op::Finish(n) => {
                let running = model.running();
                if running.is_empty() {
                    continue;
                }
                let id = running[n % running.len()];
                let msgs = [
                    message(
                        MessageKind::ScanProgress,
                        Some(id),
                        Some(format!("progress-{id}")),
                        format!("progress {id} step {step}"),
                    ),
                    message(
                        MessageKind::ScanResult,
                        Some(id),
                        None,
                        format!("result {id}"),
                    ),
                    message(
                        MessageKind::JobStatus,
                        Some(id),
                        None,
                        format!("status {id}"),
                    ),
                ];
                store.finish_job(id, 0, None, &msgs).unwrap();
                model.jobs.get_mut(&id).unwrap().state = JobState::Finished;
                model.enqueue(&msgs);
            }
            Op::State(v) => {
                let msgs = [message(
                    MessageKind::State,
                    None,
                    Some("state".into()),
                    format!("state {v} step {step}"),
                )];
                store.enqueue_messages(&msgs).unwrap();
                model.enqueue(&msgs);
            }
            Op::Deliver => {
                let Some(oldest) = store.due_messages(i64::MAX, 1).unwrap().into_iter().next()
                else {
                    assert!(model.outbox.is_empty(), "step {step}");
                    continue;
                };
                store.message_delivered(&oldest).unwrap();
                let m = model.outbox.remove(0);
                if let (MessageKind::JobStatus, Some(id)) = (m.kind, m.job_id) {
                    let j = model.jobs.get_mut(&id).unwrap();
                    if j.state == JobState::Finished {
                        j.state = JobState::Reported;
                    }
                }
            }
            Op::Fail => {
                let Some(oldest) = store.due_messages(i64::MAX, 1).unwrap().into_iter().next()
                else {
                    continue;
                };
                // Due again at once: it keeps its place at the head.
                store.message_failed(oldest.id, "HTTP 500", 0).unwrap();
                model.outbox[0].attempts += 1;
            }
            Op::Alert(v) => {
                let msgs = [message(
                    MessageKind::Alerts,
                    None,
                    None,
                    format!("alert {v} step {step}"),
                )];
                store.enqueue_messages(&msgs).unwrap();
                model.enqueue(&msgs);
            }
            Op::DeliverMany(n) => {
                let oldest = store.due_messages(i64::MAX, n).unwrap();
                assert_eq!(oldest.len(), n.min(model.outbox.len()), "step {step}");
                store.messages_delivered(&oldest).unwrap();
                for m in model.outbox.drain(..oldest.len()) {
                    if let (MessageKind::JobStatus, Some(id)) = (m.kind, m.job_id) {
                        let j = model.jobs.get_mut(&id).unwrap();
                        if j.state == JobState::Finished {
                            j.state = JobState::Reported;
                        }
                    }
                }
            }
            Op::FailMany(n) => {
                let ids: Vec<i64> = store
                    .due_messages(i64::MAX, n)
                    .unwrap()
                    .iter()
                    .map(|m| m.id)
                    .collect();
                // Due again at once: they keep their places at the head, in order.
                store.messages_failed(&ids, "HTTP 500", 0).unwrap();
                for m in model.outbox.iter_mut().take(ids.len()) {
                    m.attempts += 1;
                }
            }
            Op::Crash { requeue } => {
                drop(store);
                store = Store::open(tmp.path()).unwrap();
                let interrupted: Vec<i64> = store
                    .interrupted_jobs()
                    .unwrap()
                    .iter()
                    .map(|j| j.job_id)
                    .collect();
                assert_eq!(
                    interrupted,
                    model.running(),
                    "step {step}: interrupted jobs"
                );
                if requeue {
                    for id in interrupted {
                        store.requeue_job(id, "agent stopped").unwrap();
                        model.jobs.get_mut(&id).unwrap().state = JobState::Queued;
                    }
                }
            }
        }
        check(&store, &model);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_queue_and_the_outbox_follow_the_model(ops in prop::collection::vec(op(), 1..60)) {
        run(ops);
    }
}

#[test]
fn stored_enum_texts_round_trip_and_unknown_text_is_an_error() {
    for s in [
        JobState::Queued,
        JobState::Running,
        JobState::Finished,
        JobState::Reported,
    ] {
        assert_eq!(JobState::parse(s.as_str()), Ok(s));
    }
    for k in [
        MessageKind::JobStatus,
        MessageKind::ScanProgress,
        MessageKind::ScanResult,
        MessageKind::Alerts,
        MessageKind::State,
        MessageKind::AvConfig,
        MessageKind::Scheduler,
    ] {
        assert_eq!(MessageKind::parse(k.as_str()), Ok(k));
    }
    assert_eq!(
        JobState::parse("paused"),
        Err(UnknownText::new("job state", "paused"))
    );
    assert!(JobState::parse("").is_err());
    assert!(MessageKind::parse("telemetry").is_err());
    assert!(MessageKind::parse("Scheduler").is_err());
    // The exact texts already in state stores: a rename here would orphan their rows.
    assert_eq!(
        [
            JobState::Queued,
            JobState::Running,
            JobState::Finished,
            JobState::Reported
        ]
        .map(JobState::as_str),
        ["queued", "running", "finished", "reported"]
    );
    assert_eq!(
        [
            MessageKind::JobStatus,
            MessageKind::ScanProgress,
            MessageKind::ScanResult,
            MessageKind::Alerts,
            MessageKind::State,
            MessageKind::AvConfig,
            MessageKind::Scheduler,
        ]
        .map(MessageKind::as_str),
        [
            "job_status",
            "scan_progress",
            "scan_result",
            "alerts",
            "state",
            "avconfig",
            "scheduler"
        ]
    );
}

#[test]
fn a_row_with_an_unknown_state_fails_loudly() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(tmp.path()).unwrap();
    store.enqueue_jobs(&[job(5, 1)]).unwrap();
    // As a newer agent (or a hand edit) could leave it: past the schema's CHECK.
    store
        .conn()
        .pragma_update(None, "ignore_check_constraints", true)
        .unwrap();
    store
        .conn()
        .execute("UPDATE jobs SET state = 'paused' WHERE job_id = 5", [])
        .unwrap();
    let err = store.jobs().unwrap_err().to_string();
    assert!(err.contains("unknown job state \"paused\""), "{err}");
    assert!(
        store.next_queued_job().unwrap().is_none(),
        "never run as queued"
    );
}
