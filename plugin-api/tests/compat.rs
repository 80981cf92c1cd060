//! Compatibility of the model within interface 1: payloads of plugins and agents built before
//! the optional fields `ScanResult::{skipped, interrupted}` and `ConfigApplyReport::changes`
//! still parse, and payloads that do not use them are byte-for-byte what they were.

use armadito_plugin_api::serde_json::{self, json};
use armadito_plugin_api::{
    ConfigApplyReport, ConfigChange, ConfigRejection, Detection, DetectionAction,
    INTERFACE_VERSION, ScanResult,
};

/// A `ScanResult` as a plugin built against interface 1.0 (before the new fields) sent it.
const SCAN_RESULT_V1: &str = r#"{"scanned":50,"malware":24,"suspicious":0,"cleaned":0,"errors":0,"start_time":1488207680,"end_time":1488207696,"duration_secs":16.0,"cancelled":false,"detections":[{"id":"1","threat_name":"Pdf.Exploit.Dropped-94","file_path":"/home/u/x","action":"none","detection_time":1488207696,"module_name":"clamav","info":null}]}"#;

/// A `ConfigApplyReport` as interface 1.0 sent it.
const APPLY_REPORT_V1: &str = r#"{"applied":["MaxThreads"],"unchanged":[],"rejected":[{"attr":"User","reason":"not changeable remotely"}],"restart_required":false,"restarted":true}"#;

#[test]
fn old_payloads_parse_with_the_new_fields_at_their_defaults() {
    let r: ScanResult = serde_json::from_str(SCAN_RESULT_V1).unwrap();
    assert_eq!((r.scanned, r.malware), (50, 24));
    assert_eq!(r.skipped, 0);
    assert_eq!(r.interrupted, None);
    let a: ConfigApplyReport = serde_json::from_str(APPLY_REPORT_V1).unwrap();
    assert!(a.changes.is_empty());
    assert_eq!(a.rejected[0].reason, "not changeable remotely");
}

#[test]
fn payloads_without_the_new_fields_serialize_exactly_as_before() {
    // snapshot: what an interface 1.0 peer produced for the same values
    let r = ScanResult {
        scanned: 50,
        malware: 24,
        start_time: 1488207680,
        end_time: 1488207696,
        duration_secs: 16.0,
        detections: vec![Detection {
            id: "1".into(),
            threat_name: "Pdf.Exploit.Dropped-94".into(),
            file_path: "/home/u/x".into(),
            action: DetectionAction::None,
            detection_time: 1488207696,
            module_name: Some("clamav".into()),
            info: None,
        }],
        ..ScanResult::default()
    };
    assert_eq!(serde_json::to_string(&r).unwrap(), SCAN_RESULT_V1);
    let a = ConfigApplyReport {
        applied: vec!["MaxThreads".into()],
        rejected: vec![ConfigRejection {
            attr: "User".into(),
            reason: "not changeable remotely".into(),
        }],
        restarted: true,
        ..ConfigApplyReport::default()
    };
    assert_eq!(serde_json::to_string(&a).unwrap(), APPLY_REPORT_V1);
}

#[test]
fn new_fields_round_trip_and_an_old_reader_ignores_them() {
    let r = ScanResult {
        scanned: 10,
        skipped: 3,
        interrupted: Some("the daemon closed the connection".into()),
        ..ScanResult::default()
    };
    let text = serde_json::to_string(&r).unwrap();
    assert!(text.contains(r#""skipped":3"#), "{text}");
    assert!(
        text.contains(r#""interrupted":"the daemon closed the connection""#),
        "{text}"
    );
    assert_eq!(serde_json::from_str::<ScanResult>(&text).unwrap(), r);

    let a = ConfigApplyReport {
        applied: vec!["on-demand:max-size".into()],
        changes: vec![ConfigChange {
            attr: "on-demand:max-size".into(),
            old: Some(json!("10485760")),
            new: json!("20971520"),
        }],
        ..ConfigApplyReport::default()
    };
    let v = serde_json::to_value(&a).unwrap();
    assert_eq!(
        v["changes"],
        json!([{"attr": "on-demand:max-size", "old": "10485760", "new": "20971520"}])
    );
    assert_eq!(
        serde_json::from_value::<ConfigApplyReport>(v.clone()).unwrap(),
        a
    );

    // an interface 1.0 reader: the same struct shape without the new fields, unknown keys ignored
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct OldReport {
        applied: Vec<String>,
        restarted: bool,
    }
    let old: OldReport = serde_json::from_value(v).unwrap();
    assert_eq!(old.applied, ["on-demand:max-size"]);
}

#[test]
fn the_interface_version_stays_1_0_0() {
    // abi_stable compares the root module's version: a plugin whose minor is below the
    // agent's is refused, so adding optional fields must not bump it (built plugins would be).
    assert_eq!(INTERFACE_VERSION, "1.0.0");
}
