//! Armadito backend: daemon JSON-RPC frames and events (Gen 3 and Gen 1), CLI output,
//! `armadito-info` status, REST replies, journal lines, armadito.conf, /proc/net/tcp.

use armadito_backend_armadito::alerts::line::{parse_line, parse_message, split_line};
use armadito_backend_armadito::config::{TUNABLE, check, conf};
use armadito_backend_armadito::peer::parse_proc_net_tcp;
use armadito_backend_armadito::transport::rest::parse_response;
use armadito_backend_armadito::wire::event::{Verdict, action, parse_gen1, parse_gen3};
use armadito_backend_armadito::wire::framing::{
    Deframer, Frame, TERMINATOR, classify, split_cli_output,
};
use armadito_backend_armadito::wire::info::{parse_info, parse_info_gen1, update_status};
use serde_json::Value;

use super::{Target, seeds, text};
use crate::make;

const EVENT_KEYS: &[&str] = &[
    "jsonrpc",
    "id",
    "method",
    "params",
    "result",
    "error",
    "code",
    "message",
    "a6o_event",
    "type",
    "u",
    "timestamp",
    "ev_detection",
    "ev_on_demand_completed",
    "ev_on_demand_progress",
    "scan_action",
    "context",
    "module_name",
    "path",
    "scan_status",
    "module_report",
    "scan_id",
    "progress",
    "total_malware_count",
    "total_scanned_count",
    "event_type",
    "detection_time",
    "antivirus_version",
    "global_status",
    "global_update_ts",
    "module_infos",
    "mod_status",
    "mod_update_ts",
    "base_infos",
    "base_update_ts",
    "signature_count",
    "name",
    "version",
];

const EVENT_WORDS: &[&str] = &[
    "2.0",
    "notify_event",
    "EVENT_DETECTION",
    "EVENT_ON_DEMAND_COMPLETED",
    "EVENT_ON_DEMAND_PROGRESS",
    "CONTEXT_ON_DEMAND",
    "CONTEXT_REAL_TIME",
    "A6O_FILE_MALWARE",
    "A6O_FILE_SUSPICIOUS",
    "A6O_FILE_CLEAN",
    "A6O_ACTION_NONE",
    "A6O_ACTION_QUARANTINE",
    "A6O_UPDATE_OK",
    "A6O_UPDATE_LATE",
    "DetectionEvent",
    "OnDemandProgressEvent",
    "OnDemandCompletedEvent",
    "StatusEvent",
    "1970-01-01T00:00:00Z",
    "2026-12-04T20:36:53+01:00",
    "malware",
    "alert+quarantine",
];

pub fn targets() -> Vec<Target> {
    vec![
        Target {
            name: "armadito_events",
            about: "daemon frames (\\r\\n\\r\\n-terminated JSON-RPC), Gen 3 and Gen 1 events, status (armadito-info), CLI output, REST replies",
            seeds: || {
                seeds(&[
                    "{\"jsonrpc\":\"2.0\",\"method\":\"notify_event\",\"params\":{\"a6o_event\":{\"timestamp\":1488207696,\"type\":\"EVENT_DETECTION\",\"u\":{\"ev_detection\":{\"scan_action\":\"A6O_ACTION_NONE\",\"context\":\"CONTEXT_ON_DEMAND\",\"module_name\":\"clamav\",\"path\":\"/home/x/35d2\",\"scan_status\":\"A6O_FILE_MALWARE\",\"module_report\":\"Pdf.Exploit.Dropped-94\"}}}}}\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"antivirus_version\":\"0.12.8\",\"global_status\":\"A6O_UPDATE_OK\",\"global_update_ts\":1488207696,\"module_infos\":[{\"name\":\"clamav\",\"mod_status\":\"A6O_UPDATE_LATE\",\"mod_update_ts\":1488200000,\"base_infos\":[{\"name\":\"daily.cld\",\"base_update_ts\":0,\"version\":\"22000\",\"signature_count\":1234,\"full_path\":\"/var/lib/clamav/daily.cld\"}]}]}}\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-32601,\"message\":\"no such method\"}}\r\n\r\n",
                    "{\"timestamp\":1488207696,\"type\":\"EVENT_ON_DEMAND_COMPLETED\",\"u\":{\"ev_on_demand_completed\":{\"total_malware_count\":24,\"total_suspicious_count\":0,\"total_scanned_count\":50}}}\n\n{\"event_type\":\"OnDemandProgressEvent\",\"progress\":42,\"scanned_count\":10,\"malware_count\":1}\n\n{\"event_type\":\"DetectionEvent\",\"detection_time\":\"1970-01-01T00:00:00Z\",\"context\":\"on-demand\",\"path\":\"/home/u/eicar.com\",\"scan_status\":\"malware\",\"scan_action\":\"alert+quarantine\",\"module_name\":\"clamav\",\"module_report\":\"Eicar-Test-Signature\"}\n\n",
                    "{\"event_type\":\"StatusEvent\",\"global_status\":\"critical\",\"global_update_timestamp\":1475000000,\"modules\":[{\"name\":\"clamav\",\"mod_status\":\"up-to-date\",\"mod_update_timestamp\":1475000000,\"bases\":[{\"name\":\"daily.cld\",\"base_update_ts\":1475000000,\"version\":\"22000\",\"signature_count\":1234,\"full_path\":\"/x\"}]}]}",
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"token\":\"12345\"}",
                    "HTTP/1.0 404 Not Found\r\n\r\nnull",
                ])
            },
            dict: &[
                "\r\n\r\n",
                "\n\n",
                "HTTP/1.1 ",
                "Content-Length: ",
                "\"jsonrpc\":\"2.0\"",
                "\"a6o_event\"",
                "\"u\"",
                "\"type\"",
                "\"EVENT_DETECTION\"",
                "\"event_type\"",
                "\"timestamp\"",
            ],
            generate: Some(|u| {
                let mut out = Vec::new();
                for _ in 0..u.int_in_range(1..=4u8)? {
                    let v = make::json(u, EVENT_KEYS, EVENT_WORDS, 4)?;
                    out.extend_from_slice(v.to_string().as_bytes());
                    out.extend_from_slice(TERMINATOR);
                }
                Ok(out)
            }),
            run: run_events,
        },
        Target {
            name: "armadito_journal",
            about: "armadito-journal syslog lines (BSD and RFC 3339 stamps, detection messages)",
            seeds: || {
                seeds(&[
                    "Mar  9 14:48:45 uhuru-ThinkPad-L540 armadito-journal[30027]: type=\"detection\", context=\"real-time\", scan_id=0, path=\"/home/uhuru/malwares/x\", scan_status=\"malware\", scan_action=\"none\", module_name=\"clamav\", module_report=\"Unix.Malware.Agent-1577465\"\n",
                    "2026-12-04T20:36:53.123456+01:00 host armadito-journal[1]: type=\"detection\", context=\"on-demand\", scan_id=42, path=\"/tmp/a\", b\", scan_status=\"x.pdf\", scan_status=\"suspicious\", scan_action=\"alert+quarantine\", module_name=\"moduleH1\", module_report=\"Heur.PDF\", future_field=\"1\"\n",
                    "Mar  9 14:48:45 h armadito-journal[1]: type=\"on_demand_completed\", scan_id=1, cancelled=0, total_malware_count=1\n",
                ])
            },
            dict: &[
                " armadito-journal[1]: ",
                "type=\"detection\", ",
                "context=\"",
                "path=\"",
                "scan_status=\"malware\"",
                "scan_action=\"",
                "module_name=\"",
                "module_report=\"",
                "\", ",
                "Feb 29 ",
                "Dec 31 23:59:59",
                "+14:00",
                "-12:00",
                "Z",
                "9999-12-31T23:59:59",
            ],
            generate: None,
            run: |d| {
                for line in text(d).lines() {
                    for now in [0, 1_500_000_000, i64::MAX / 2, -1] {
                        let _ = parse_line(line, now);
                        if let Some((t, msg)) = split_line(line, now) {
                            assert!(line.ends_with(msg));
                            let _ = parse_message(t, msg);
                        }
                    }
                }
            },
        },
        Target {
            name: "armadito_conf",
            about: "armadito.conf: entries, and the in-place edit the server's AV configuration makes (config::check, conf::set)",
            seeds: || {
                seeds(&[
                    "# Armadito AV configuration\n[on-demand]\nwhite-list-dir = \"/boot\"; \"/dev\"   \nmax-size = 10485760\n\n[on-access-linux]\nenable = 0\nsome_key = ignored\n",
                    "[modules]\n[clamav]\nenable=1\n[  spaced  ]  \n  key-1   =   v  \n",
                ])
            },
            dict: &[
                "[",
                "]",
                " = ",
                "=",
                "\n",
                ";",
                "\"",
                "#",
                "on-demand",
                "on-access-linux",
                "enable",
                "max-size",
            ],
            generate: None,
            run: run_conf,
        },
        Target {
            name: "proc_net_tcp",
            about: "/proc/net/tcp{,6} lines (peer check of the REST transport)",
            seeds: || {
                seeds(&[
                    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 0100007F:D2B4 01 00000000:00000000 00:00000000 00000000   998        0 12345 1 0000000000000000 20 4 30 10 -1\n   1: 00000000000000000000000001000000:1F90 0000000000000000FFFF00000100007F:A000 01 00000000:00000000 00:00000000 00000000     0        0 1 1\n",
                ])
            },
            dict: &[":", " ", "0100007F", "FFFF", "0A", "01", "\n"],
            generate: None,
            run: |d| {
                let _ = parse_proc_net_tcp(&text(d));
            },
        },
    ]
}

fn run_events(d: &[u8]) {
    let mut de = Deframer::default();
    // Fed in two pieces: the split must not matter.
    let cut = d.len() / 3;
    de.push(&d[..cut]);
    let mut frames = Vec::new();
    while let Some(f) = de.next_frame() {
        frames.push(f);
    }
    de.push(&d[cut..]);
    while let Some(f) = de.next_frame() {
        frames.push(f);
    }
    assert!(de.pending() <= d.len());
    frames.extend(split_cli_output(&text(d)));
    for f in frames {
        let Frame::Json(v) = f else { continue };
        one_value(&v);
        let _ = classify(v);
    }
    if let Ok((_, v)) = parse_response(d) {
        one_value(&v);
    }
}

fn one_value(v: &Value) {
    let _ = parse_gen3(v);
    let _ = parse_gen1(v);
    if let Some(ev) = v.pointer("/params/a6o_event") {
        let _ = parse_gen3(ev);
    }
    if let Ok(info) = parse_info(v) {
        let _ = (info.modules(), info.base_details());
    }
    let info = parse_info_gen1(v);
    let _ = (info.modules(), info.base_details());
    if let Some(s) = v.as_str() {
        let _ = (Verdict::parse(s), action(s), update_status(s));
    }
}

fn run_conf(d: &[u8]) {
    let t = text(d);
    let entries = conf::parse(&t);
    // Every tunable attribute the server may send, with the input's values: a value that
    // passes the check is the one read back after the edit.
    let mut values: Vec<Value> = entries
        .iter()
        .map(|e| Value::String(e.value.clone()))
        .collect();
    values.extend([
        Value::Bool(true),
        Value::from(1),
        Value::from("\"/tmp\"; \"/x\""),
    ]);
    for (attr, _) in TUNABLE {
        for v in values.iter().take(4) {
            let Ok(ok) = check(attr, v) else { continue };
            let Some((section, key)) = attr.rsplit_once(':') else {
                continue;
            };
            let edited = conf::set(&t, section, key, &ok);
            let back = conf::parse(&edited);
            let found = back
                .iter()
                .rev()
                .find(|e| e.section == section && e.key == key)
                .map(|e| e.value.as_str());
            assert_eq!(found, Some(ok.as_str()), "{attr} = {ok:?} not read back");
            // The other entries are all still there.
            assert!(back.len() >= entries.len(), "an edit lost entries");
        }
    }
    for e in entries.iter().take(5) {
        let edited = conf::set(&t, &e.section, &e.key, "1");
        let back = conf::parse(&edited);
        let found = back
            .iter()
            .rev()
            .find(|x| x.section == e.section && x.key == e.key);
        assert_eq!(found.map(|x| x.value.as_str()), Some("1"), "{}", e.attr());
    }
}
