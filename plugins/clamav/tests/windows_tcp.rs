//! The Windows transport (TCP + INSTREAM only) against a real clamd on its loopback TCP port:
//! the same code the Windows build runs, exercised here on Linux.

#![cfg(unix)]

mod support;

use std::time::Duration;

use armadito_backend_clamav::windows_tcp::{TcpClamd, TcpError};
use armadito_plugin_api::model::{FileStatus, ScanRequest, ServiceStatus};
use support::{Clamd, ClamdOptions, Tree, eicar};

fn client(clamd: &Clamd, stream_max: Option<u64>) -> TcpClamd {
    let t = Duration::from_secs(10);
    TcpClamd::new(&clamd.tcp(), t, t, stream_max).unwrap()
}

#[test]
fn state_and_instream_scan_over_tcp() {
    let clamd = Clamd::start();
    let c = client(&clamd, None);
    let s = c.state();
    assert_eq!(s.service_status, ServiceStatus::Running, "{s:?}");
    assert!(!s.product_version.is_empty());

    let tree = Tree::new();
    tree.file("clean.txt", b"hello");
    tree.file("sub/eicar.com", &eicar());
    tree.file("sub/deeper/clean2.txt", b"world");
    let r = c
        .scan(
            &ScanRequest {
                paths: vec![tree.path().to_string_lossy().into_owned()],
                per_file_results: true,
                ..Default::default()
            },
            &|_| true,
        )
        .unwrap();
    assert_eq!((r.scanned, r.malware, r.errors), (3, 1, 0), "{r:?}");
    assert!(r.detections[0].file_path.ends_with("sub/eicar.com"));
    assert!(r.detections[0].threat_name.to_lowercase().contains("eicar"));
    assert_eq!(
        r.files
            .iter()
            .filter(|f| f.status == FileStatus::Clean)
            .count(),
        2
    );
}

#[test]
fn a_file_above_the_stream_limit_is_an_error_not_clean() {
    let clamd = Clamd::start_with(ClamdOptions::default());
    let c = client(&clamd, Some(1000));
    let tree = Tree::new();
    let mut big = vec![b'x'; 5000];
    big.extend(eicar());
    tree.file("big.bin", &big);
    let r = c
        .scan(
            &ScanRequest {
                paths: vec![tree.path().to_string_lossy().into_owned()],
                ..Default::default()
            },
            &|_| true,
        )
        .unwrap();
    assert_eq!((r.scanned, r.malware, r.errors), (1, 0, 1), "{r:?}");
}

#[test]
fn clamd_down_is_a_clear_error() {
    let mut clamd = Clamd::start();
    let c = client(&clamd, None);
    clamd.kill();
    assert_eq!(c.state().service_status, ServiceStatus::Stopped);
    let tree = Tree::new();
    tree.file("a.txt", b"a");
    let err = c
        .scan(
            &ScanRequest {
                paths: vec![tree.path().to_string_lossy().into_owned()],
                ..Default::default()
            },
            &|_| true,
        )
        .unwrap_err();
    assert!(matches!(err, TcpError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("clamd not reachable"), "{err}");
}
