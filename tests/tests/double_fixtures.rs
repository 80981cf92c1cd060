//! Replays the real plugin's own integration suite (server-api.md §13,
//! directories 01–06) against the double over HTTP and checks the derived
//! responses and the golden final database state of §13.10.

use armadito_tests::double::{Double, DoubleConfig};

const KEY1: &str = "0RV2V-2RYTX-NX4OW-7LARZ-KZQAJ";
const KEY2: &str = "9LTKF-WTDYW-MFU83-XKYEN-P4VEO";
const BBBB: &str = "4C4C4544-0033-4A10-8051-BBBBBBBBBBBB";
const FFFF: &str = "4C4C4544-0033-4A10-8051-FFFFFFFFFFFF";
const AAAA: &str = "4C4C4544-0033-4A10-8051-AAAAAAAAAAAA";

/// §13.2 body template (`insertOrUpdateAgent`).
fn enroll_body(agent_id: i64, uuid: &str) -> String {
    format!(
        r#"{{
  "task": {{"obj": {{ "key": "0RV2V-2RYTX-NX4OW-7LARZ-KZQAJ" }},
           "name":"Enrollment",
           "antivirus": {{
                         "name":"Armadito",
                         "version":"0.10.2",
                         "os_info": {{"name":"linux","libpath":"linux"}}
                        }}
          }},
  "agent_version":"2.3.18",
  "agent_id":{agent_id},
  "uuid":"{uuid}"}}"#
    )
}

const RUNJOB_13_5: &str = r#"{"agent_id":"2","task":
                   {"obj":{"message":"runJob successful","code":0,"job_id":"1", "start_time": 0, "end_time": 0},
                   "name":"Runjobs","antivirus":{"version":"0.12.0-exp","name":"Armadito"}},"agent_version":"0.1.0_02", "uuid": "4C4C4544-0033-4A10-8051-FFFFFFFFFFFF"}"#;

fn alerts_body(agent_id: i64, uuid: &str) -> String {
    format!(
        r#"{{
          "task": {{"obj": {{ "alerts" : [{{
                 "job_id": 1,
                 "name" : "Pdf.Dropper.Agent-1507034",
                 "filepath" : "/home/malware/X",
                 "action" : "cleaned",
                 "detection_time" : 1483605762
                }},{{
                 "job_id": 1,
                 "name" : "Pdf.Dropper.Agent-1507034",
                 "filepath" : "/home/malware/X",
                 "action" : "cleaned",
                 "detection_time" : 1483605770
                }},{{
                 "job_id": 1,
                 "name" : "Win.Trojan.Elpapok-1",
                 "filepath" : "/home/malware/X",
                 "action" : "cleaned",
                 "detection_time" : 1483605777
                }}] }},
                   "name":"Alerts",
                   "antivirus": {{
                                 "name":"Armadito",
                                 "version":"0.10.2"
                                }}
                  }},
          "agent_version":"2.3.18",
          "agent_id":{agent_id},
          "uuid": "{uuid}"}}"#
    )
}

fn scan_body(job: &str, malware: i64, scanned: i64) -> String {
    format!(
        r#"{{
  "task": {{"obj": {{"suspicious_count":0,"event_type":"OnDemandCompletedEvent","progress":100,
"malware_count":{malware},"start_time":"1970-01-01T00:00:00Z","job_id":"{job}","duration":"P0Y0M0DT00H00M01S","scanned_count":{scanned}}},
           "name":"Scan",
           "antivirus": {{
                         "name":"Armadito",
                         "version":"0.10.2"
                        }}
          }},
  "agent_version":"2.3.18",
  "agent_id":2,
  "uuid":"4C4C4544-0033-4A10-8051-FFFFFFFFFFFF"}}"#
    )
}

const AVCONFIG_13_8: &str = r#"{
  "task": {"obj": [{ "attr": "on-access", "value": "enabled" },
            { "attr": "scan:archive", "value": "1" },
            { "attr": "scan:jar", "value": "0" },
            { "attr": "module:h1", "value": "disabled" },
            { "attr": "module:clamav", "value": "enabled" },
            { "attr": "module:pdf", "value": "disabled" }],
           "name":"AVConfig",
           "antivirus": {
                         "name":"Armadito",
                         "version":"0.10.2"
                        }
          },
  "agent_version":"2.3.18",
  "agent_id":2,
  "uuid": "4C4C4544-0033-4A10-8051-FFFFFFFFFFFF" }"#;

const STATE_13_9: &str = r#"{
  "task": {"obj": { "dbinfo": {"event_type":"StatusEvent",
                                "global_update_timestamp":1479467793,
                                "modules": [{"name":"clamav","mod_update_timestamp":1479467793,"mod_status":"up-to-date","bases":[{"version":"22558","signature_count":890643,"name":"daily.cld","full_path":"/home/vhamon/workspace/armadito-av/build/linux/scripts/../out/install/armadito-av/var/lib/armadito/bases/clamav/daily.cld","base_update_ts":1479467793},{"full_path":"/home/vhamon/workspace/armadito-av/build/linux/scripts/../out/install/armadito-av/var/lib/armadito/bases/clamav/main.cvd","base_update_ts":1458170226,"version":"57","name":"main.cvd","signature_count":4218790},{"name":"bytecode.cld","signature_count":54,"version":"284","base_update_ts":1477591452,"full_path":"/home/vhamon/workspace/armadito-av/build/linux/scripts/../out/install/armadito-av/var/lib/armadito/bases/clamav/bytecode.cld"}]},{"mod_status":"up-to-date","mod_update_timestamp":1409556600,"name":"moduleH1"}],
                                "global_status":"up-to-date"},
                       "avdetails": [
                                     { "attr": "onaccess:enabled", "value": 0 },
                                     { "attr": "onaccess:scan_archive", "value": 1 },
                                     { "attr": "modules:moduleX:param1", "value": "C" },
                                     { "attr": "modules:moduleY:param1", "value": "OK" }
                                    ]
                      },
           "name":"State",
           "antivirus": {
                         "name":"Armadito",
                         "version":"0.10.2"
                        }
          },
  "agent_version":"2.3.18",
  "agent_id":2,
  "uuid":"4C4C4544-0033-4A10-8051-FFFFFFFFFFFF"}"#;

/// §13.4, byte for byte.
const GET_JOBS_AGENT2: &str = "{ \"jobs\": [{\"job_id\": 1,\n                  \"job_type\": \"Scan\",\n                  \"job_priority\": \"0\",\n                  \"obj\": {\n                  \"scanconfig_id\": 1,\n                  \"scan_name\": \"linux home scan\",\n                  \"scan_path\": \"L2hvbWU=\",\n                  \"scan_options\": \"\"\n               }\n                 },{\"job_id\": 2,\n                  \"job_type\": \"Scan\",\n                  \"job_priority\": \"1\",\n                  \"obj\": {\n                  \"scanconfig_id\": 1,\n                  \"scan_name\": \"linux home scan\",\n                  \"scan_path\": \"L2hvbWU=\",\n                  \"scan_options\": \"\"\n               }\n                 }]}";

fn assert_ok_empty(d: &Double, endpoint: &str, body: &str) {
    let r = d.post_json(endpoint, body);
    assert_eq!(
        (r.status, r.text()),
        (200, String::new()),
        "POST {endpoint}"
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
}

#[test]
fn plugin_integration_suite_replays_to_the_golden_state() {
    let d = Double::start_with(DoubleConfig::default());
    // Fixed clock: 2017-01-12 12:00:00 UTC, between the keys' dates.
    d.set_now(Some(1_484_222_400));

    // 01-0: keys (far-future expiry for key 1, see §13.1).
    assert_eq!(d.create_key(KEY1, 10, 10 * 365 * 86_400), 1);
    assert_eq!(d.create_key(KEY2, 15, 2 * 365 * 86_400), 2);

    // 01-1: six enrollments + one purge.
    let expect = |agent_id: i64, uuid: &str, body: &str| {
        let r = d.post_json("agents", &enroll_body(agent_id, uuid));
        assert_eq!(r.status, 200);
        assert_eq!(
            r.text(),
            body,
            "enrollment of {uuid} with agent_id {agent_id}"
        );
    };
    expect(0, BBBB, r#"{"agent_id": 1,"scheduler_id": 1}"#);
    expect(0, FFFF, r#"{"agent_id": 2,"scheduler_id": 2}"#);
    expect(2, FFFF, r#"{"agent_id": 2,"scheduler_id": 2}"#);
    expect(0, FFFF, r#"{"agent_id": 2,"scheduler_id": 2}"#);
    d.purge_agent(1);
    let s1 = d.schedulers().into_iter().find(|s| s.id == 1).unwrap();
    assert_eq!((s1.plugin_armadito_agents_id, s1.is_used), (-1, false));
    expect(0, BBBB, r#"{"agent_id": 3,"scheduler_id": 1}"#);
    expect(0, AAAA, r#"{"agent_id": 4,"scheduler_id": 3}"#);
    assert_eq!(d.key_use_counter(KEY1), Some(4));

    // 01-2: computers + FusionInventory hook.
    d.create_computer("lw007", BBBB);
    d.create_computer("lw009", "4C4C4544-0033-4A10-8051-YYYYYYYYYYYY");

    // 01-3: scan configs (antivirus 1), one update.
    assert_eq!(d.create_scanconfig("linux home scan", "/home", "", 1), 1);
    assert_eq!(
        d.create_scanconfig("linux full scan", "/", "--no-archive", 1),
        2
    );
    assert_eq!(
        d.create_scanconfig("linux fast scan", "/tmp", "--no-archive", 1),
        3
    );
    d.update_scanconfig(3, "/tmp", "");

    // 02: two Scan jobs for agent 2.
    assert_eq!(d.create_job(2, 1, 0), 1);
    assert_eq!(d.create_job(2, 1, 1), 2);

    // 03: GET jobs.
    let r = d.get_jobs(2);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), GET_JOBS_AGENT2);
    assert_eq!(d.get_jobs(3).text(), "{ \"jobs\": []}");

    // 04: job 1 result.
    assert_ok_empty(&d, "jobs", RUNJOB_13_5);

    // 05: alerts for agents 2 and 3, then scans.
    assert_ok_empty(&d, "alerts", &alerts_body(2, FFFF));
    assert_ok_empty(&d, "alerts", &alerts_body(3, BBBB));
    assert_ok_empty(&d, "alerts", &alerts_body(2, FFFF)); // re-post: dedup
    assert_ok_empty(&d, "scans", &scan_body("1", 177, 752));
    assert_ok_empty(&d, "scans", &scan_body("2", 0, 158));

    // 06: avconfigs and states.
    assert_ok_empty(&d, "avconfigs", AVCONFIG_13_8);
    assert_ok_empty(&d, "states", STATE_13_9);

    // ---- §13.10 golden state ----
    let keys = d.keys();
    assert_eq!(
        keys.iter()
            .map(|k| (k.id, k.use_counter))
            .collect::<Vec<_>>(),
        vec![(1, 4), (2, 15)]
    );

    let avs = d.antiviruses();
    assert_eq!(avs.len(), 1);
    assert_eq!(
        (
            avs[0].id,
            avs[0].name.as_str(),
            avs[0].osname.as_str(),
            avs[0].fullname.as_str(),
            avs[0].version.as_str()
        ),
        (1, "Armadito", "linux", "Armadito+0.10.2+linux", "0.10.2")
    );

    let agents: Vec<_> = d
        .agents()
        .into_iter()
        .map(|a| {
            (
                a.id,
                a.uuid,
                a.computers_id,
                a.agent_version,
                a.plugin_armadito_antiviruses_id,
                a.plugin_armadito_schedulers_id,
                a.last_alert,
            )
        })
        .collect();
    let v = Some("2.3.18".to_string());
    let la = Some("2017-01-05 08:42:57".to_string());
    assert_eq!(
        agents,
        vec![
            (2, FFFF.to_string(), -1, v.clone(), 1, 2, la.clone()),
            (3, BBBB.to_string(), 1, v.clone(), 1, 1, la),
            (
                4,
                AAAA.to_string(),
                -1,
                v,
                1,
                3,
                Some("1970-01-01 00:00:00".to_string())
            ),
        ]
    );
    assert_eq!(
        d.agent(2).unwrap().last_contact.as_deref(),
        Some("2017-01-12 12:00:00")
    );

    let scheds: Vec<_> = d
        .schedulers()
        .into_iter()
        .map(|s| {
            (
                s.id,
                s.name,
                s.plugin_armadito_agents_id,
                s.plugin_armadito_antiviruses_id,
                s.plugin_armadito_schedulerdetails_id,
                s.is_used,
            )
        })
        .collect();
    let unknown = Some("unknown".to_string());
    assert_eq!(
        scheds,
        vec![
            (1, unknown.clone(), 3, 1, 0, true),
            (2, unknown.clone(), 2, 1, 0, true),
            (3, unknown, 4, 1, 0, true)
        ]
    );

    let sc: Vec<_> = d
        .scanconfigs()
        .into_iter()
        .map(|s| (s.id, s.scan_name, s.scan_path, s.scan_options))
        .collect();
    assert_eq!(
        sc,
        vec![
            (1, "linux home scan".into(), "/home".into(), "".into()),
            (
                2,
                "linux full scan".into(),
                "/".into(),
                "--no-archive".into()
            ),
            (3, "linux fast scan".into(), "/tmp".into(), "".into()),
        ]
    );

    let jobs = d.jobs();
    let j: Vec<_> = jobs
        .iter()
        .map(|j| {
            (
                j.id,
                j.plugin_armadito_agents_id,
                j.job_type.as_str(),
                j.job_priority.as_str(),
                j.job_status.as_str(),
            )
        })
        .collect();
    assert_eq!(
        j,
        vec![
            (1, 2, "Scan", "0 - low", "successful"),
            (2, 2, "Scan", "1 - medium", "downloaded")
        ]
    );
    assert_eq!(
        (
            jobs[0].start_time.as_str(),
            jobs[0].end_time.as_str(),
            jobs[0].duration.as_deref()
        ),
        (
            "1970-01-01 00:00:00",
            "1970-01-01 00:00:00",
            Some("0d 00h 00m 00s")
        )
    );
    assert_eq!(
        (jobs[0].job_error_code, jobs[0].job_error_msg.as_deref()),
        (None, None)
    );

    let scans: Vec<_> = d
        .scans()
        .into_iter()
        .map(|s| {
            (
                s.id,
                s.plugin_armadito_jobs_id,
                s.malware_count,
                s.suspicious_count,
                s.scanned_count,
                s.progress,
                s.duration,
                s.start_time,
                s.end_time,
            )
        })
        .collect();
    let du = Some("0d 00h 00m 01s".to_string());
    let epoch = Some("1970-01-01 00:00:00".to_string());
    assert_eq!(
        scans,
        vec![
            (
                1,
                1,
                Some(177),
                Some(0),
                Some(752),
                Some(100),
                du.clone(),
                epoch.clone(),
                epoch.clone()
            ),
            (
                2,
                2,
                Some(0),
                Some(0),
                Some(158),
                Some(100),
                du,
                epoch.clone(),
                epoch
            ),
        ]
    );

    let alerts = d.alerts();
    assert_eq!(alerts.len(), 6);
    let sums: Vec<_> = alerts
        .iter()
        .map(|a| (a.plugin_armadito_agents_id, a.checksum.as_str()))
        .collect();
    assert!(sums.contains(&(
        2,
        "b4052dad745ab0a2b23c5af479eedb2fd9e165a33e50fa2cccbf44992bc2b298"
    )));
    assert!(sums.contains(&(
        2,
        "46f4db406a7d8e8f59fdc0c18a82593a2851df839560e08d9060b3722764e0b8"
    )));
    assert!(sums.contains(&(
        2,
        "027e64580128007e3f5e2d2a8d932bf4ab886768cceb6b184f5008fecb4e1d56"
    )));
    assert!(sums.contains(&(
        3,
        "64ed32e509c40782d0f879cba4396eb59dfb5a2ce1fee861788bc7b1b3cc1c31"
    )));
    for a in &alerts {
        assert_eq!(
            (a.plugin_armadito_jobs_id, a.plugin_armadito_scans_id),
            (0, 0)
        );
        assert_eq!(
            (a.action.as_str(), a.info.as_str(), a.module_name.as_str()),
            ("cleaned", "non-available", "non-available")
        );
        assert_eq!(a.plugin_armadito_antiviruses_id, 1);
    }
    assert_eq!(
        alerts
            .iter()
            .filter(|a| a.plugin_armadito_agents_id == 3)
            .count(),
        3
    );

    // avconfigdetails: 6 base rows (ids 1–6) + marker 7.
    let det = d.avconfig_details();
    let rows: Vec<_> = det
        .iter()
        .map(|r| {
            (
                r.id,
                r.type_.as_str(),
                r.value.as_deref(),
                r.plugin_armadito_agents_id,
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (1, "on-access", Some("enabled"), 0),
            (2, "scan:archive", Some("1"), 0),
            (3, "scan:jar", Some("0"), 0),
            (4, "module:h1", Some("disabled"), 0),
            (5, "module:clamav", Some("enabled"), 0),
            (6, "module:pdf", Some("disabled"), 0),
            (7, "hasAVConfig", Some("1"), 2),
        ]
    );
    let avc = d.avconfigs();
    assert_eq!(avc.len(), 1);
    assert_eq!(
        (
            avc[0].plugin_armadito_agents_id,
            avc[0].plugin_armadito_avconfigdetails_id,
            avc[0].realtime_status.as_str()
        ),
        (2, 7, "non-available")
    );
    assert_eq!(avc[0].last_avconfig, "2017-01-12 12:00:00");
    assert_eq!(d.avconfig_effective(2).len(), 6);

    // stateavdetails: 4 base rows + marker 5; 2 modules; 1 state.
    let sd: Vec<_> = d
        .stateav_details()
        .iter()
        .map(|r| {
            (
                r.id,
                r.type_.clone(),
                r.value.clone(),
                r.plugin_armadito_agents_id,
            )
        })
        .collect();
    assert_eq!(
        sd,
        vec![
            (1, "onaccess:enabled".into(), Some("0".into()), 0),
            (2, "onaccess:scan_archive".into(), Some("1".into()), 0),
            (3, "modules:moduleX:param1".into(), Some("C".into()), 0),
            (4, "modules:moduleY:param1".into(), Some("OK".into()), 0),
            (5, "hasAVConfig".into(), Some("1".into()), 2),
        ]
    );
    let mods: Vec<_> = d
        .state_modules()
        .into_iter()
        .map(|m| {
            (
                m.id,
                m.plugin_armadito_agents_id,
                m.module_name,
                m.module_version,
                m.module_update_status,
                m.module_last_update,
            )
        })
        .collect();
    assert_eq!(
        mods,
        vec![
            (
                1,
                2,
                "clamav".into(),
                "unknown".into(),
                "up-to-date".into(),
                "2016-11-18 11:16:33".into()
            ),
            (
                2,
                2,
                "moduleH1".into(),
                "unknown".into(),
                "up-to-date".into(),
                "2014-09-01 07:30:00".into()
            ),
        ]
    );
    let states = d.states();
    assert_eq!(states.len(), 1);
    let s = &states[0];
    assert_eq!(
        (
            s.plugin_armadito_agents_id,
            s.plugin_armadito_stateavdetails_id,
            s.plugin_armadito_stateupdatedetails_id,
            s.plugin_armadito_antiviruses_id,
            s.update_status.as_str(),
            s.last_update.as_str(),
            s.service_status.as_str()
        ),
        (
            2,
            5,
            1,
            1,
            "up-to-date",
            "2016-11-18 11:16:33",
            "non-available"
        )
    );

    // Strict mode: the fixture's only accidental construct is the per-alert
    // job_id (1) silently replaced by the absent top-level job_id.
    let v = d.violations();
    assert_eq!(v.len(), 9, "{v:#?}");
    assert!(
        v.iter()
            .all(|l| l.contains("per-alert job_id 1 is overwritten")),
        "{v:#?}"
    );
}
