//! Turning a stream of daemon/CLI events into progress reports and a `ScanResult`.
//!
//! Invariants:
//! * No I/O: transports feed [`ScanState::on_event`] and act on its answer, so the whole
//!   policy (filtering by scan id, counting, the end marker) is tested on fixtures.
//! * Times are the agent's: the daemon's own times are placeholders (A.2).
//! * Events of another scan (another `scan_id`), unknown types and invalid frames never end
//!   or fail a scan; only the completion event ends it successfully.

use armadito_plugin_api::{Detection, FileResult, FileStatus, ScanProgress, ScanResult};

use crate::wire::event::{CompletedEv, DetectionEv, Event, Verdict, action};

/// What the transport should do after an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Continue,
    /// Report this progress to the agent (it may answer "cancel").
    Progress(ScanProgress),
    /// The completion event arrived: the scan is over.
    Done,
}

pub struct ScanState {
    scan_id: Option<i64>,
    per_file: bool,
    started: f64,
    result: ScanResult,
    completed: Option<CompletedEv>,
    /// Figures of the last progress event (the daemon's running totals).
    last: ScanProgress,
    /// Detections not yet handed to the agent in a progress event.
    fresh: Vec<Detection>,
    pub skipped_events: u64,
}

impl ScanState {
    /// `scan_id`: events carrying another id are ignored (Gen 3 daemons multiplex scans).
    pub fn new(scan_id: Option<i64>, per_file: bool, started: f64) -> Self {
        ScanState {
            scan_id,
            per_file,
            started,
            result: ScanResult::default(),
            completed: None,
            last: ScanProgress::default(),
            fresh: Vec::new(),
            skipped_events: 0,
        }
    }

    fn ours(&self, id: Option<i64>) -> bool {
        match (self.scan_id, id) {
            (Some(want), Some(got)) => want == got,
            _ => true,
        }
    }

    pub fn on_event(&mut self, ev: Event, now: i64) -> Step {
        match ev {
            Event::Detection(d) if self.ours(d.scan_id) && d.context != "real-time" => {
                self.on_detection(d, now)
            }
            Event::Progress(p) if self.ours(p.scan_id) => {
                self.last.files_scanned = p.scanned.max(self.last.files_scanned);
                self.last.malware = p.malware.max(self.result.malware);
                self.last.suspicious = p.suspicious.max(self.result.suspicious);
                self.last.percent = u8::try_from(p.progress).ok().map(|p| p.min(99));
                if !p.path.is_empty() {
                    self.last.current_path = Some(p.path);
                }
                Step::Progress(self.progress())
            }
            Event::Completed(c) if self.ours(c.scan_id) => {
                self.completed = Some(c);
                Step::Done
            }
            _ => {
                self.skipped_events += 1;
                Step::Continue
            }
        }
    }

    fn on_detection(&mut self, d: DetectionEv, now: i64) -> Step {
        let status = match d.verdict {
            Verdict::Malware => FileStatus::Malware,
            Verdict::Suspicious => FileStatus::Suspicious,
            Verdict::Clean => FileStatus::Clean,
            Verdict::Ignored => FileStatus::Ignored,
            Verdict::Error => FileStatus::Error,
            Verdict::Other => FileStatus::Unknown,
        };
        match status {
            FileStatus::Malware => self.result.malware += 1,
            FileStatus::Suspicious => self.result.suspicious += 1,
            FileStatus::Ignored => self.result.skipped += 1,
            FileStatus::Error => self.result.errors += 1,
            _ => {}
        }
        let threat = d.module_report.clone().unwrap_or_default();
        if self.per_file {
            self.result.files.push(FileResult {
                path: d.path.clone(),
                status,
                threat_name: (!threat.is_empty()).then(|| threat.clone()),
                message: None,
            });
        }
        if !matches!(status, FileStatus::Malware | FileStatus::Suspicious) {
            return Step::Continue;
        }
        let time = if d.timestamp > 0 { d.timestamp } else { now };
        let det = Detection {
            id: format!(
                "{:016x}",
                crate::fnv64(&[d.path.as_bytes(), threat.as_bytes(), &time.to_le_bytes()])
            ),
            threat_name: threat,
            file_path: d.path.clone(),
            action: action(&d.action),
            detection_time: time,
            module_name: d.module_name,
            info: Some(d.context).filter(|c| !c.is_empty()),
        };
        self.result.detections.push(det.clone());
        self.fresh.push(det);
        self.last.malware = self.last.malware.max(self.result.malware);
        self.last.suspicious = self.last.suspicious.max(self.result.suspicious);
        self.last.current_path = Some(d.path);
        Step::Progress(self.progress())
    }

    fn progress(&mut self) -> ScanProgress {
        ScanProgress {
            new_detections: std::mem::take(&mut self.fresh),
            errors: self.result.errors,
            ..self.last.clone()
        }
    }

    pub fn is_done(&self) -> bool {
        self.completed.is_some()
    }

    /// The result: the completion event's totals when it came, else what was seen.
    pub fn finish(mut self, ended: f64) -> ScanResult {
        let r = &mut self.result;
        r.start_time = self.started as i64;
        r.end_time = ended as i64;
        r.duration_secs = (ended - self.started).max(0.0);
        match &self.completed {
            Some(c) => {
                r.scanned = c.scanned.unwrap_or(self.last.files_scanned);
                r.malware = c.malware.unwrap_or(r.malware).max(r.malware);
                r.suspicious = c.suspicious.unwrap_or(r.suspicious).max(r.suspicious);
                r.cancelled = c.cancelled;
            }
            None => {
                r.scanned = self.last.files_scanned;
                r.malware = r.malware.max(self.last.malware);
                r.suspicious = r.suspicious.max(self.last.suspicious);
            }
        }
        self.result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::event::parse_gen3;
    use serde_json::json;

    fn det(id: i64, path: &str, status: &str) -> Event {
        parse_gen3(
            &json!({"timestamp":1700000000,"type":"EVENT_DETECTION","u":{"ev_detection":{
            "scan_id":id,"context":"CONTEXT_ON_DEMAND","path":path,"scan_status":status,
            "scan_action":"A6O_ACTION_NONE","module_name":"clamav","module_report":"Eicar-Test-Signature"}}}),
        )
    }
    fn prog(id: i64, p: i64, scanned: u64) -> Event {
        parse_gen3(
            &json!({"timestamp":1,"type":"EVENT_ON_DEMAND_PROGRESS","u":{"ev_on_demand_progress":{
            "scan_id":id,"progress":p,"path":"/x","malware_count":0,"suspicious_count":0,"scanned_count":scanned}}}),
        )
    }
    fn done(id: i64, scanned: u64, malware: u64) -> Event {
        parse_gen3(
            &json!({"timestamp":1,"type":"EVENT_ON_DEMAND_COMPLETED","u":{"ev_on_demand_completed":{
            "scan_id":id,"cancelled":0,"total_malware_count":malware,"total_suspicious_count":0,
            "total_scanned_count":scanned,"duration":1000}}}),
        )
    }

    #[test]
    fn interleaved_scans_progress_and_unknown_events() {
        let mut s = ScanState::new(Some(7), false, 100.0);
        let mut reported = Vec::new();
        for ev in [
            prog(7, 10, 5),
            det(8, "/other/scan", "A6O_FILE_MALWARE"), // another scan's detection
            det(7, "/t/eicar", "A6O_FILE_MALWARE"),
            prog(8, 90, 999), // another scan's progress
            Event::Other("EVENT_QUARANTINE".into()),
            det(7, "/t/odd.bin", "A6O_FILE_UNKNOWN_TYPE"),
            prog(7, 100, 12),
        ] {
            if let Step::Progress(p) = s.on_event(ev, 200) {
                reported.push(p);
            }
        }
        assert!(!s.is_done());
        assert_eq!(
            s.on_event(done(8, 1, 1), 200),
            Step::Continue,
            "not our completion"
        );
        assert_eq!(s.on_event(done(7, 12, 1), 200), Step::Done);
        assert_eq!(s.skipped_events, 4);
        assert_eq!(reported.len(), 3);
        assert_eq!(reported[0].percent, Some(10));
        assert_eq!(reported[1].new_detections.len(), 1);
        assert!(reported[2].new_detections.is_empty());
        assert_eq!(reported[2].percent, Some(99), "100 only at the end");
        let r = s.finish(116.5);
        assert_eq!((r.scanned, r.malware, r.skipped), (12, 1, 1));
        assert_eq!(r.detections[0].file_path, "/t/eicar");
        assert_eq!(r.detections[0].detection_time, 1700000000);
        assert_eq!(r.duration_secs, 16.5);
        assert_eq!((r.start_time, r.end_time), (100, 116));
    }

    #[test]
    fn reference_fixture_counts_come_from_the_completion_event() {
        // reference-agent.md §7.1: 1 detection printed, totals 50 scanned / 24 malware
        let mut s = ScanState::new(None, true, 1488207680.0);
        let Event::Detection(_) = det(0, "/home/x", "A6O_FILE_MALWARE") else {
            panic!()
        };
        s.on_event(
            parse_gen3(&json!({"timestamp":1488207696,"type":"EVENT_DETECTION","u":{"ev_detection":{"scan_action":"A6O_ACTION_NONE",
            "context":"CONTEXT_ON_DEMAND","module_name":"clamav","path":"/home/uhuru/35d2","scan_status":"A6O_FILE_MALWARE",
            "module_report":"Pdf.Exploit.Dropped-94"}}})),
            0,
        );
        s.on_event(
            parse_gen3(&json!({"timestamp":1488207696,"type":"EVENT_ON_DEMAND_COMPLETED","u":{"ev_on_demand_completed":
            {"total_malware_count":24,"total_suspicious_count":0,"total_scanned_count":50}}})),
            0,
        );
        let r = s.finish(1488207696.0);
        assert_eq!((r.scanned, r.malware, r.suspicious), (50, 24, 0));
        assert_eq!(r.duration_secs, 16.0);
        assert_eq!(r.files.len(), 1);
        assert_eq!(r.detections[0].threat_name, "Pdf.Exploit.Dropped-94");
        assert_eq!(r.detections[0].module_name.as_deref(), Some("clamav"));
    }

    #[test]
    fn without_completion_the_result_is_what_was_seen() {
        let mut s = ScanState::new(Some(1), false, 0.0);
        s.on_event(prog(1, 40, 20), 0);
        s.on_event(det(1, "/a", "A6O_FILE_MALWARE"), 0);
        let r = s.finish(1.0);
        assert_eq!((r.scanned, r.malware), (20, 1));
    }
}
