//! What the chaos tests (`e2e_chaos`, `e2e_chaos_daemon`) read after the kills: the agent's
//! store, and the double's request log, job by job.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::double::Double;

/// Asserts that the store in `state_dir` passes `PRAGMA integrity_check`.
#[track_caller]
pub fn assert_store_intact(state_dir: &Path) {
    let db = rusqlite::Connection::open(state_dir.join("state.db")).expect("open state.db");
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
}

/// The job ids the agent's store holds (every job it received and has not pruned).
pub fn stored_job_ids(state_dir: &Path) -> BTreeSet<i64> {
    let db = rusqlite::Connection::open(state_dir.join("state.db")).expect("open state.db");
    db.prepare("SELECT job_id FROM jobs")
        .expect("select jobs")
        .query_map([], |r| r.get(0))
        .expect("query jobs")
        .map(|r| r.expect("job_id"))
        .collect()
}

/// The status codes the double accepted for each job (one each when nothing ran twice
/// differently).
pub fn posted_status_codes(d: &Double) -> BTreeMap<i64, BTreeSet<i64>> {
    let mut codes: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    for r in d
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.contains("/api/jobs/") && r.status == 200)
    {
        let v: serde_json::Value = serde_json::from_str(&r.body).expect("job status JSON");
        let obj = &v["task"]["obj"];
        codes
            .entry(obj["job_id"].as_i64().expect("job status without job_id"))
            .or_default()
            .insert(obj["code"].as_i64().expect("job status without code"));
    }
    codes
}

/// For each job, the position in the double's request log of the first GET jobs reply that
/// handed it out.
pub fn handed_out_at(d: &Double) -> BTreeMap<i64, usize> {
    let job_id = regex::Regex::new(r#""job_id": (\d+)"#).expect("regex");
    let mut at_of: BTreeMap<i64, usize> = BTreeMap::new();
    for (at, r) in d.requests().iter().enumerate() {
        if r.method == "GET" && r.path.contains("/api/jobs") {
            for c in job_id.captures_iter(&r.response_body) {
                at_of
                    .entry(c[1].parse().expect("a job id in i64"))
                    .or_insert(at);
            }
        }
    }
    at_of
}
