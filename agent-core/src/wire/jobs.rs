//! `GET api/jobs/?agent_id=N` reply parsing (server-api.md §3.2).
//!
//! The server marks the jobs `downloaded` before it answers, so whatever it sent is the only copy.
//! Parsing therefore never drops a job: each element of `jobs` becomes either a [`Job`] or a
//! [`MalformedJob`] (kept so the agent can report the failure to the server), and one bad job never
//! spoils its neighbours. Only a reply that is not a `{ "jobs": [...] }` object at all is an error.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::payloads::{excerpt, int_like, json_object};
use super::types::WireError;

/// `job_priority`: `"0"` low … `"3"` urgent. Runjobs runs higher first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobPriority(u8);

impl JobPriority {
    pub const LOW: JobPriority = JobPriority(0);
    pub const URGENT: JobPriority = JobPriority(3);

    pub fn new(p: i64) -> Option<Self> {
        (0..=3).contains(&p).then_some(Self(p as u8))
    }

    pub fn value(self) -> u8 {
        self.0
    }

    pub fn label(self) -> &'static str {
        ["low", "medium", "high", "urgent"][usize::from(self.0.min(3))]
    }
}

/// A well-formed job. `obj` stays as the server sent it: its meaning depends on `job_type`, and
/// it is checked when the job runs (an unknown type or a bad path then fails that job, with a
/// message the server shows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub job_id: i64,
    pub job_type: String,
    pub priority: JobPriority,
    pub obj: serde_json::Value,
}

/// A job we could not understand. With a `job_id` it is reported failed with `reason`; without one
/// it cannot be reported and is only logged and kept for inspection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MalformedJob {
    pub job_id: Option<i64>,
    pub reason: String,
    /// The element as received (truncated to 64 KiB), for `armadito-agent queue`.
    pub raw: String,
}

pub type ParsedJob = Result<Job, MalformedJob>;

/// The whole reply.
#[derive(Debug, Clone, PartialEq)]
pub struct JobsReply {
    pub jobs: Vec<ParsedJob>,
}

const MAX_RAW: usize = 64 * 1024;

pub fn parse_jobs_reply(body: &str) -> Result<JobsReply, WireError> {
    let v = json_object(body)?;
    let list = match v.get("jobs") {
        Some(serde_json::Value::Array(a)) => a,
        Some(other) => {
            return Err(WireError::Reply(format!(
                "`jobs` is not an array but {}",
                excerpt(&other.to_string())
            )));
        }
        None => return Err(WireError::Reply(format!("no `jobs` in {}", excerpt(body)))),
    };
    Ok(JobsReply {
        jobs: list.iter().map(parse_job).collect(),
    })
}

fn parse_job(v: &serde_json::Value) -> ParsedJob {
    let job_id = v.get("job_id").and_then(int_like).filter(|id| *id > 0);
    let bad = |reason: String| {
        let mut raw = v.to_string();
        if raw.len() > MAX_RAW {
            let mut end = MAX_RAW;
            while !raw.is_char_boundary(end) {
                end -= 1;
            }
            raw.truncate(end);
        }
        MalformedJob {
            job_id,
            reason,
            raw,
        }
    };
    if !v.is_object() {
        return Err(bad("job is not a JSON object".into()));
    }
    let Some(job_id) = job_id else {
        return Err(bad("job has no valid job_id".into()));
    };
    let Some(job_type) = v
        .get("job_type")
        .and_then(|t| t.as_str())
        .map(str::to_string)
    else {
        return Err(bad("job has no job_type".into()));
    };
    let priority = match v.get("job_priority") {
        None => JobPriority::LOW,
        Some(p) => match int_like(p).and_then(JobPriority::new) {
            Some(p) => p,
            None => {
                return Err(bad(format!(
                    "invalid job_priority {p}: expected \"0\" to \"3\""
                )));
            }
        },
    };
    let obj = v.get("obj").cloned().unwrap_or(serde_json::Value::Null);
    Ok(Job {
        job_id,
        job_type,
        priority,
        obj,
    })
}

/// The parameters of a `Scan` job, decoded (`scan_path`/`scan_options` are base64 on the wire).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanJobParams {
    pub scanconfig_id: i64,
    pub scan_name: String,
    pub scan_path: String,
    pub scan_options: String,
}

impl ScanJobParams {
    /// Error strings are sent to the server as the job's failure message.
    pub fn from_obj(obj: &serde_json::Value) -> Result<Self, String> {
        let field = |name: &str| obj.get(name).and_then(|v| v.as_str());
        let decode = |name: &str| -> Result<String, String> {
            let raw = field(name).unwrap_or("");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(raw.trim())
                .map_err(|e| format!("{name} is not valid base64 ({e})"))?;
            String::from_utf8(bytes).map_err(|_| format!("{name} is not valid UTF-8 once decoded"))
        };
        if !obj.is_object() {
            return Err("scan job has no obj".into());
        }
        if field("scan_path").is_none() {
            return Err("scan job has no scan_path".into());
        }
        Ok(Self {
            scanconfig_id: obj.get("scanconfig_id").and_then(int_like).unwrap_or(0),
            scan_name: field("scan_name").unwrap_or("").to_string(),
            scan_path: decode("scan_path")?,
            scan_options: decode("scan_options")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real bytes of server-api.md §13.4.
    const FIXTURE: &str = r#"{ "jobs": [{"job_id": 1,
                  "job_type": "Scan",
                  "job_priority": "0",
                  "obj": {
                  "scanconfig_id": 1,
                  "scan_name": "linux home scan",
                  "scan_path": "L2hvbWU=",
                  "scan_options": ""
               }
                 },{"job_id": 2,
                  "job_type": "Scan",
                  "job_priority": "1",
                  "obj": {
                  "scanconfig_id": 1,
                  "scan_name": "linux home scan",
                  "scan_path": "L2hvbWU=",
                  "scan_options": ""
               }
                 }]}"#;

    #[test]
    fn parses_the_real_reply() {
        let r = parse_jobs_reply(FIXTURE).unwrap();
        assert_eq!(r.jobs.len(), 2);
        let j = r.jobs[1].as_ref().unwrap();
        assert_eq!(
            (j.job_id, j.job_type.as_str(), j.priority.value()),
            (2, "Scan", 1)
        );
        let p = ScanJobParams::from_obj(&j.obj).unwrap();
        assert_eq!(p.scan_path, "/home");
        assert_eq!(p.scan_options, "");
        assert_eq!(p.scan_name, "linux home scan");
        assert_eq!(parse_jobs_reply(r#"{ "jobs": []}"#).unwrap().jobs, vec![]);
    }

    #[test]
    fn html_notice_before_json_is_tolerated() {
        let body = format!("<div style=\"x\"><span>PHP Notice: </span>oops</div>{FIXTURE}");
        assert_eq!(parse_jobs_reply(&body).unwrap().jobs.len(), 2);
    }

    #[test]
    fn bad_replies_are_errors() {
        for body in [
            "",
            "<html>502 Bad Gateway</html>",
            "{\"jobs\": 3}",
            "{}",
            "{\"jobs\": [}",
        ] {
            assert!(parse_jobs_reply(body).is_err(), "{body:?}");
        }
    }

    #[test]
    fn bad_jobs_are_kept_with_a_reason_and_good_ones_survive() {
        let body = r#"{"jobs": [
            {"job_type": "Scan", "job_priority": "1", "obj": {}},
            {"job_id": 7, "job_type": "Scan", "job_priority": "9", "obj": {}},
            {"job_id": 8, "job_type": "Scan", "job_priority": "high", "obj": {}},
            {"job_id": 9, "job_priority": "1"},
            42,
            {"job_id": "10", "job_type": "Wipe", "job_priority": 3, "obj": {"x": 1}},
            {"job_id": 11, "job_type": "Scan", "job_priority": "2", "obj": {"scan_path": "%%%"}}
        ]}"#;
        let r = parse_jobs_reply(body).unwrap();
        let reasons: Vec<_> = r
            .jobs
            .iter()
            .map(|j| j.as_ref().err().map(|m| (m.job_id, m.reason.clone())))
            .collect();
        assert_eq!(reasons[0], Some((None, "job has no valid job_id".into())));
        assert_eq!(reasons[1].as_ref().unwrap().0, Some(7));
        assert!(reasons[1].as_ref().unwrap().1.contains("job_priority"));
        assert!(reasons[2].as_ref().unwrap().1.contains("job_priority"));
        assert_eq!(reasons[3], Some((Some(9), "job has no job_type".into())));
        assert_eq!(reasons[4], Some((None, "job is not a JSON object".into())));
        // unknown type: well-formed, fails when run
        let wipe = r.jobs[5].as_ref().unwrap();
        assert_eq!(
            (wipe.job_id, wipe.job_type.as_str(), wipe.priority),
            (10, "Wipe", JobPriority::URGENT)
        );
        let bad64 = r.jobs[6].as_ref().unwrap();
        let err = ScanJobParams::from_obj(&bad64.obj).unwrap_err();
        assert!(err.starts_with("scan_path is not valid base64"), "{err}");
    }

    #[test]
    fn huge_raw_job_is_truncated() {
        let big = "A".repeat(200_000);
        let body = format!(r#"{{"jobs": [{{"job_type": "Scan", "obj": {{"pad": "{big}"}}}}]}}"#);
        let r = parse_jobs_reply(&body).unwrap();
        let m = r.jobs[0].as_ref().unwrap_err();
        assert!(m.raw.len() <= MAX_RAW);
    }
}
