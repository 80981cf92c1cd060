//! ClamAV backend: clamd replies (NUL-framed stream, verdicts, VERSION, STATS), clamd's log
//! lines and the VirusEvent spool, the alerts cursor, clamd.conf, the database header.

use std::io::Cursor as IoCursor;

use armadito_backend_clamav::alerts::Cursor;
use armadito_backend_clamav::alerts::logfile::{Joiner, parse_line};
use armadito_backend_clamav::alerts::spool::{Parsed, SpoolRecord, parse_record};
use armadito_backend_clamav::clamd::conn::ReplyReader;
use armadito_backend_clamav::clamd::reply::{
    parse_scan_reply, parse_stats, parse_verdict, parse_version, split_session_id,
};
use armadito_backend_clamav::config::conf::{ClamdConf, parse_bool, parse_size};
use armadito_backend_clamav::state::parse_db_header;
use armadito_backend_clamav::timeutil::{parse_ctime_local, parse_ctime_prefix};
use armadito_backend_clamav::windows_tcp;

use super::{Target, seeds, text};
use crate::make;

pub fn targets() -> Vec<Target> {
    vec![
        Target {
            name: "clamd_reply",
            about: "clamd's NUL-framed replies: scan verdicts (IDSESSION ids), VERSION, STATS, INSTREAM (TCP) replies, a database header",
            seeds: || {
                seeds(&[
                    "/tmp/eicar.com: Eicar-Signature FOUND\0/tmp/clean: OK\0",
                    "1: /home/a: OK\x002: /home/b b: Win.Test.EICAR_HDB-1 FOUND\x003: /x: lstat() failed: No such file or directory. ERROR\0",
                    "ClamAV 1.0.7/27100/Mon Nov 27 09:25:53 2023\0",
                    "POOLS: 1\n\nSTATE: VALID PRIMARY\nTHREADS: live 1  idle 0 max 12 idle-timeout 30\nQUEUE: 0 items\n\tSTATS 0.000021 \n\nMEMSTATS: heap N/A mmap N/A used N/A free N/A releasable N/A pools 1 pools_used 1306.837M pools_total 1306.882M\nEND\0",
                    "INSTREAM size limit exceeded. ERROR\0",
                    "stream: OK\0",
                    "fd[12]: Eicar-Signature FOUND\n",
                    "UNKNOWN COMMAND\n",
                    "ClamAV-VDB:27 Nov 2023 09-25 +0000:27100:2034712:90:X:X:raynman:1701077153                                                                                                   ",
                ])
            },
            dict: &[
                "\0",
                ": ",
                " FOUND",
                ": OK",
                " ERROR",
                ": Excluded",
                "fd[",
                "ClamAV ",
                "/",
                "STATE: ",
                "THREADS: ",
                "QUEUE: ",
                "END",
                "ClamAV-VDB:",
                "stream",
            ],
            generate: None,
            run: run_reply,
        },
        Target {
            name: "clamd_log",
            about: "clamd's log lines (detections, names split by newlines, ctime stamps)",
            seeds: || {
                seeds(&[
                    "Fri Dec  4 21:21:04 2026 -> Self checking disabled.\nFri Dec  4 21:21:09 2026 -> /tmp/t/evil\nFri Dec  4 21:00:00 2026 -> /home/ceo/report.docx: Test.EICAR(44d8:68) FOUND\nFri Dec  4 21:21:10 2026 -> /srv/real.com: Eicar-Signature FOUND\n",
                    "Wed Nov 25 18:45:11 2026 -> /tmp/clamtest/files/eicar.com: Test.EICAR-NDB.UNOFFICIAL(44d88612fea8a8f36de82e1278abb02f:68) FOUND\n/a: b/x.com: Eicar-Signature FOUND\nWed Nov 25 19:57:11 2026 -> WARNING: File path check failure on: /x\n",
                ])
            },
            dict: &[
                " -> ",
                " FOUND",
                ": OK",
                ": ",
                "Mon ",
                "Feb 29 ",
                "Dec 31 23:59:60 ",
                "1969",
                "2038",
                "(44d8:68)",
                "\n",
            ],
            generate: Some(|u| {
                make::lines(
                    u,
                    &[
                        "Fri Dec  4 21:21:04 2026",
                        "->",
                        "/tmp/x:",
                        "Eicar",
                        "FOUND",
                        "OK",
                        "ERROR",
                    ],
                    &[" ", ": ", " -> "],
                )
            }),
            run: run_log,
        },
        Target {
            name: "clamav_spool",
            about: "VirusEvent spool records (length-prefixed) and the alerts cursor",
            seeds: || {
                seeds(&[
                    "A1 1700000000 15:Eicar-Signature 13:/tmp/eicar.com\n",
                    "A1 1700000000 4:Test 11:/tmp/a\nb.com\n",
                    r#"{"log":{"path":"/var/log/clamav/clamav.log","ino":12,"offset":300,"head":"abc"},"recent":[{"k":1,"t":1700000000}]}"#,
                ])
            },
            dict: &[
                "A1 ",
                ":",
                " ",
                "\n",
                "{",
                "}",
                "\"log\"",
                "\"spool\"",
                "\"recent\"",
                "\"offset\"",
            ],
            generate: Some(|u| {
                let time = make::int(u)?;
                let virus: String = u.arbitrary()?;
                let file: String = u.arbitrary()?;
                Ok(format!("A1 {time} {}:{virus} {}:{file}", virus.len(), file.len()).into_bytes())
            }),
            run: run_spool,
        },
        Target {
            name: "clamd_conf",
            about: "clamd.conf: parsing, lossless rewrite, typed values, editing",
            seeds: || {
                seeds(&[
                    "# comment\nLocalSocket /run/clamav/clamd.ctl\nFixStaleSocket true\nUser clamav\nMaxFileSize 25M\nMaxScanSize 100M\nScanArchive yes\nMaxThreads 12\nOnAccessIncludePath /home\nOnAccessIncludePath /srv\nLogFile \"/var/log/clamav/clamav.log\"\nVirusEvent /usr/lib/armadito-agent/hook %v\n",
                    "Example\n\tTCPSocket 3310\nTCPAddr 127.0.0.1\nStreamMaxLength 1g\nReadTimeout 180\nSelfCheck\n",
                ])
            },
            dict: &[
                "MaxFileSize ",
                "MaxScanSize ",
                "ScanArchive ",
                "MaxThreads ",
                "OnAccessIncludePath ",
                "LocalSocket ",
                "TCPSocket ",
                "User ",
                "yes",
                "no",
                "true",
                "false",
                "\"",
                "#",
                "\t",
                "K",
                "M",
                "G",
                "4294967295",
            ],
            generate: None,
            run: run_conf,
        },
    ]
}

fn run_reply(d: &[u8]) {
    let replies = ReplyReader::new(IoCursor::new(d))
        .read_all()
        .expect("reading from memory cannot fail");
    let total: usize = replies.iter().map(Vec::len).sum();
    assert!(total <= d.len(), "replies longer than the stream");
    for r in &replies {
        assert!(!r.contains(&0), "a reply keeps its terminator");
        let t = text(r);
        let _ = parse_scan_reply(&t, None);
        let _ = parse_scan_reply(&t, Some("/tmp/x"));
        let _ = parse_verdict(&t);
        if let Some((_, rest)) = split_session_id(&t) {
            assert!(t.ends_with(rest));
        }
        let _ = parse_version(&t);
        let _ = parse_stats(&t);
        let _ = windows_tcp::parse_reply(&t);
        let _ = windows_tcp::parse_version(&t);
    }
    let _ = parse_db_header(d);
}

fn run_log(d: &[u8]) {
    let t = text(d);
    let mut j = Joiner::default();
    for line in t.split('\n') {
        if let Some(det) = parse_line(line) {
            assert!(!det.path.is_empty() || !det.signature.is_empty());
            assert!(!det.signature.contains(' '), "{:?}", det.signature);
        }
        let _ = j.feed(line);
        if let Some((_, used)) = parse_ctime_prefix(line) {
            assert!(used <= line.len() && line.is_char_boundary(used));
        }
        let _ = parse_ctime_local(line);
    }
}

fn run_spool(d: &[u8]) {
    for line in d.split(|b| *b == b'\n') {
        if let Parsed::Record(r) = parse_record(line) {
            // Round trip: the record written back in the hook's format parses the same.
            let again = format!(
                "A1 {} {}:{} {}:{}",
                r.time,
                r.virus.len(),
                r.virus,
                r.file.len(),
                r.file
            );
            assert_eq!(parse_record(again.as_bytes()), Parsed::Record(r.clone()));
        }
    }
    // A whole input as one record (file names may hold newlines). Lossy decoding makes a
    // byte that is not UTF-8 three bytes long, but never more than one character.
    if let Parsed::Record(SpoolRecord { virus, file, .. }) = parse_record(d) {
        assert!(virus.chars().count() + file.chars().count() <= d.len());
    }
    if let Ok(c) = Cursor::parse(&text(d)) {
        let again = Cursor::parse(&c.encode()).expect("our cursor re-parses");
        assert_eq!(again, c);
    }
}

fn run_conf(d: &[u8]) {
    let t = text(d);
    let conf = ClamdConf::parse(&t);
    // Rewriting keeps every byte (comments, order, spacing).
    assert_eq!(conf.to_text(), t, "clamd.conf rewrite is not lossless");
    let entries = conf.entries();
    for (name, _) in &entries {
        let _ = (
            conf.get_bool(name),
            conf.get_size(name),
            conf.get_number(name),
        );
        // Setting an option to its own values and reading the file back gives them again.
        let values: Vec<String> = conf.get_all(name).iter().map(|v| v.to_string()).collect();
        if values.iter().any(|v| v.contains(['\n', '\r'])) {
            continue;
        }
        let mut edited = conf.clone();
        edited.set(name, &values);
        let back = ClamdConf::parse(&edited.to_text());
        assert_eq!(
            back.get_all(name),
            values,
            "set({name:?}) does not read back"
        );
    }
    for word in t.split_whitespace().take(50) {
        let _ = (parse_bool(word), parse_size(word));
    }
}
