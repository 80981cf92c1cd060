//! ESET backend: `odscan`/`esets_scan` output, `upd`/`lic` output, `lslog` CSV (with the alerts
//! cursor paging over it), esets_daemon syslog lines, the settings XML and `esets.cfg`.

use armadito_backend_eset::alerts::from_lslog;
use armadito_backend_eset::dates::{parse_numeric, parse_syslog_stamp, parse_ymd};
use armadito_backend_eset::parse::{config, lslog, odscan, product, syslog};
use armadito_plugin_api::model::AlertsQuery;
use chrono::NaiveDate;

use super::{Target, assert_pages_make_the_whole, text};

macro_rules! fake {
    ($path:literal) => {
        include_bytes!(concat!("../../../tests/fakes/eset/", $path)).to_vec()
    };
}

pub fn targets() -> Vec<Target> {
    vec![
        Target {
            name: "eset_scan",
            about: "odscan / esets_scan output, scan info JSON, ods details; upd, lic and esets_scan --version output",
            seeds: || {
                vec![
                    fake!("eea/out/odscan.default"),
                    fake!("eea/out/odscan.infected"),
                    fake!("eea/out/odscan.partial"),
                    fake!("eea/out/odscan.error"),
                    fake!("eea/out/odscan.summary"),
                    fake!("eea/out/lslog-details.default"),
                    fake!("eea/out/lslog-details.infected"),
                    fake!("eea/out/lslog-details.partial"),
                    fake!("eea/out/upd-version.default"),
                    fake!("eea/out/upd-modules.default"),
                    fake!("eea/out/lic.default"),
                    fake!("esets/out/esets_scan.default"),
                    fake!("esets/out/esets_scan-version.default"),
                    fake!("esets/data/data.txt"),
                    fake!("system/out/systemctl.default"),
                    fake!("system/out/systemctl.stopped"),
                ]
            },
            dict: &[
                "name=\"",
                "\", threat=\"",
                "\", result=\"",
                "\", action=\"",
                "\", info=\"",
                "\"",
                "Scanned files: ",
                "Detections: ",
                "Cleaned: ",
                "\"log_name\"",
                "EM002",
                "\t",
                "Expiration date: ",
                "ActiveState=",
            ],
            generate: None,
            run: |d| {
                let t = text(d);
                for line in t.lines() {
                    if let Some(h) = odscan::hit(line) {
                        assert!(line.len() >= h.path.len());
                    }
                    let _ = parse_numeric(line);
                    let _ = parse_ymd(line);
                }
                let _ = odscan::summary(&t);
                let _ = odscan::scan_log_name(&t);
                let _ = odscan::ods_details(&t);
                let _ = product::version(&t);
                let _ = product::last_version_field(&t);
                let _ = product::modules(&t);
                let _ = product::license(&t);
                let _ = product::service_active(&t);
                let _ = product::legacy_data(&t);
                let _ = product::product_name(t.trim());
            },
        },
        Target {
            name: "eset_alerts",
            about: "lslog detections CSV through the alerts cursor; esets_daemon syslog lines",
            seeds: || {
                vec![
                    fake!("eea/out/lslog-detections.default"),
                    fake!("eea/out/lslog-detections.grown"),
                    fake!("esets/data/syslog"),
                ]
            },
            dict: &[
                ",",
                "\"",
                "\"\"",
                "\n",
                "09/13/2025 10:11:12",
                "12/31/9999 23:59:59",
                "Real-time file system protection",
                "cleaned by deleting",
                " esets_daemon[6974]: summ[1b3e0300]: ",
                "vdb=",
                "name=\"",
                "virus=\"",
                "action=\"",
                "Nov 23 14:22:33 ",
            ],
            generate: None,
            run: |d| {
                let t = text(d);
                let _ = lslog::parse(&t);
                check_paging(&t);
                let now = NaiveDate::from_ymd_opt(2025, 12, 4)
                    .and_then(|d| d.and_hms_opt(12, 0, 0))
                    .expect("a valid date");
                for line in t.lines() {
                    let _ = syslog::event(line, now);
                    let _ = parse_syslog_stamp(line, now);
                }
            },
        },
        Target {
            name: "eset_config",
            about: "the ESET settings XML (F-E7) and esets.cfg INI",
            seeds: || {
                vec![
                    fake!("esets/data/esets.cfg"),
                    br#"<?xml version="1.0"?>
<ESET>
 <PRODUCT NAME="efs_unix">
  <ITEM NAME="Settings">
   <ITEM NAME="Plugins">
    <ITEM NAME="Icap">
     <ITEM NAME="EnableSocks">
      <NODE NAME="Enable" TYPE="number" VALUE="1" />
      <ITEM NAME="InetSocks" DELETE="1">
       <ITEM NAME="1">
        <NODE NAME="IpAddressOrHostname" TYPE="string" VALUE="0.0.0.0" />
        <NODE NAME="Port" TYPE="number" VALUE="540" />
       </ITEM>
      </ITEM>
     </ITEM>
    </ITEM>
   </ITEM>
  </ITEM>
 </PRODUCT>
</ESET>"#
                        .to_vec(),
                ]
            },
            dict: &[
                "<ITEM NAME=\"",
                "<NODE NAME=\"",
                "\" TYPE=\"number\" VALUE=\"",
                "\" TYPE=\"string\" VALUE=\"",
                "\" />",
                "</ITEM>",
                "&amp;",
                "&#0;",
                "<!DOCTYPE x [<!ENTITY a \"aaaa\">]>",
                "[global]",
                " = ",
                "\"yes\"",
                "ffffffffffffffffff",
            ],
            generate: None,
            run: |d| {
                let t = text(d);
                let _ = config::xml(&t);
                let _ = config::ini(&t);
            },
        },
    ]
}

/// Paging through the lslog detections two at a time gives what one big page gives.
fn check_paging(csv: &str) {
    let warn = |_: String| {};
    let Ok(whole) = from_lslog(csv, &AlertsQuery::default(), usize::MAX >> 1, &warn) else {
        return;
    };
    // Paging re-reads the whole history per page: keep it quadratic in something small.
    if whole.detections.len() > 40 {
        return;
    }
    let query = AlertsQuery::default();
    assert_pages_make_the_whole(&whole, whole.detections.len() + 1, query, |q| {
        from_lslog(csv, q, 2, &warn).expect("our own cursor is accepted")
    });
}
