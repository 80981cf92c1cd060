//! Loading the CA, client-certificate and key files named by `[http]`.
//!
//! Invariant: every failure names the option, the file and the reason, and suggests the fix
//! when there is an obvious one (DER instead of PEM, encrypted key). The old agent's SSL options
//! silently did nothing (reference-agent.md §12.2); these never fail silently.

use std::fs;
use std::path::{Path, PathBuf};

use reqwest::{Certificate, Identity};

use super::error::TransportError;

/// CA certificates read from one file.
#[derive(Clone)]
pub(crate) struct CaFile {
    pub option: &'static str,
    pub path: PathBuf,
    pub certs: Vec<Certificate>,
}

/// One `-----BEGIN <label>-----` … `-----END <label>-----` block.
struct PemBlock<'a> {
    label: &'a str,
    text: &'a str,
}

const KEY_LABELS: [&str; 3] = ["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"];

fn file_error(option: &'static str, path: &Path, reason: impl Into<String>) -> TransportError {
    TransportError::CertFile {
        option,
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// The PEM blocks of `text`, in order. Text outside blocks (comments, `openssl x509 -text`
/// output) is ignored.
fn pem_blocks(text: &str) -> Result<Vec<PemBlock<'_>>, String> {
    const BEGIN: &str = "-----BEGIN ";
    let mut blocks = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(b) = rest.find(BEGIN) {
        let start = offset + b;
        let after_begin = &text[start + BEGIN.len()..];
        let label_len = after_begin
            .find("-----")
            .ok_or_else(|| "malformed PEM header line".to_owned())?;
        let label = &after_begin[..label_len];
        let end_marker = format!("-----END {label}-----");
        let body_start = start + BEGIN.len() + label_len + 5;
        let end_rel = text[body_start..]
            .find(&end_marker)
            .ok_or_else(|| format!("PEM block {label:?} has no {end_marker} line"))?;
        let end = body_start + end_rel + end_marker.len();
        blocks.push(PemBlock {
            label,
            text: &text[start..end],
        });
        offset = end;
        rest = &text[end..];
    }
    Ok(blocks)
}

fn read_text(option: &'static str, path: &Path) -> Result<String, TransportError> {
    let bytes =
        fs::read(path).map_err(|e| file_error(option, path, format!("cannot read: {e}")))?;
    String::from_utf8(bytes).map_err(|_| {
        file_error(
            option,
            path,
            "not a PEM file (binary content); convert a DER certificate with `openssl x509 -inform der -in FILE -out FILE.pem`",
        )
    })
}

/// Parses the `CERTIFICATE` blocks of `text`; `Ok(empty)` when there is none.
fn parse_certs(text: &str) -> Result<Vec<Certificate>, String> {
    let blocks = pem_blocks(text)?;
    let pem: String = blocks
        .iter()
        .filter(|b| b.label == "CERTIFICATE")
        .map(|b| format!("{}\n", b.text))
        .collect();
    if pem.is_empty() {
        return Ok(Vec::new());
    }
    let expected = blocks.iter().filter(|b| b.label == "CERTIFICATE").count();
    let certs = Certificate::from_pem_bundle(pem.as_bytes())
        .map_err(|e| format!("invalid PEM certificate: {}", super::error::cause_chain(&e)))?;
    if certs.len() != expected {
        return Err("invalid PEM certificate (bad base64)".to_owned());
    }
    Ok(certs)
}

const NO_CERT: &str = "no PEM certificate (-----BEGIN CERTIFICATE-----) in this file; convert a DER certificate with `openssl x509 -inform der -in FILE -out FILE.pem`";

/// `ca_cert_file`: every certificate of a PEM file (at least one).
pub(crate) fn load_ca_file(path: &Path) -> Result<CaFile, TransportError> {
    const OPTION: &str = "ca_cert_file";
    let text = read_text(OPTION, path)?;
    let certs = parse_certs(&text).map_err(|r| file_error(OPTION, path, r))?;
    if certs.is_empty() {
        return Err(file_error(OPTION, path, NO_CERT));
    }
    Ok(CaFile {
        option: OPTION,
        path: path.to_owned(),
        certs,
    })
}

/// `ca_cert_dir`: the certificates of every regular file (symlinks followed, not recursive)
/// that holds a PEM `CERTIFICATE` block; other files (READMEs, CRLs, binary files) are skipped.
/// At least one certificate overall.
pub(crate) fn load_ca_dir(dir: &Path) -> Result<Vec<CaFile>, TransportError> {
    const OPTION: &str = "ca_cert_dir";
    let entries = fs::read_dir(dir)
        .map_err(|e| file_error(OPTION, dir, format!("cannot read directory: {e}")))?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| file_error(OPTION, dir, format!("cannot read directory: {e}")))?;
        paths.push(entry.path());
    }
    paths.sort();
    let mut files = Vec::new();
    for path in paths {
        // `fs::metadata` follows symlinks (OpenSSL hash links); a dangling one is skipped.
        match fs::metadata(&path) {
            Ok(m) if m.is_file() => {}
            _ => {
                tracing::debug!(file = %path.display(), "ca_cert_dir: skipping non-file");
                continue;
            }
        }
        let bytes =
            fs::read(&path).map_err(|e| file_error(OPTION, &path, format!("cannot read: {e}")))?;
        let Ok(text) = String::from_utf8(bytes) else {
            tracing::debug!(file = %path.display(), "ca_cert_dir: skipping binary file");
            continue;
        };
        let certs = parse_certs(&text).map_err(|r| file_error(OPTION, &path, r))?;
        if certs.is_empty() {
            tracing::debug!(file = %path.display(), "ca_cert_dir: no certificate, skipped");
            continue;
        }
        files.push(CaFile {
            option: OPTION,
            path,
            certs,
        });
    }
    if files.is_empty() {
        return Err(file_error(
            OPTION,
            dir,
            "no file with a PEM certificate (-----BEGIN CERTIFICATE-----) in this directory",
        ));
    }
    Ok(files)
}

/// `client_cert` + `client_key`: the certificate chain and the (unencrypted) private key.
/// Other PEM blocks (e.g. `EC PARAMETERS` from `openssl ecparam -genkey`) are ignored; the two
/// options may name the same combined file.
pub(crate) fn load_identity(cert_path: &Path, key_path: &Path) -> Result<Identity, TransportError> {
    let cert_text = read_text("client_cert", cert_path)?;
    let cert_blocks =
        pem_blocks(&cert_text).map_err(|r| file_error("client_cert", cert_path, r))?;
    let certs_pem: String = cert_blocks
        .iter()
        .filter(|b| b.label == "CERTIFICATE")
        .map(|b| format!("{}\n", b.text))
        .collect();
    if certs_pem.is_empty() {
        return Err(file_error("client_cert", cert_path, NO_CERT));
    }
    parse_certs(&certs_pem).map_err(|r| file_error("client_cert", cert_path, r))?;

    let key_text = read_text("client_key", key_path)?;
    let key_blocks = pem_blocks(&key_text).map_err(|r| file_error("client_key", key_path, r))?;
    if key_blocks
        .iter()
        .any(|b| b.label == "ENCRYPTED PRIVATE KEY")
        || key_text.contains("Proc-Type: 4,ENCRYPTED")
    {
        return Err(file_error(
            "client_key",
            key_path,
            "the private key is encrypted, which is not supported; decrypt it with `openssl pkey -in KEY -out KEY.plain` and protect the file with permissions",
        ));
    }
    let keys: Vec<&PemBlock<'_>> = key_blocks
        .iter()
        .filter(|b| KEY_LABELS.contains(&b.label))
        .collect();
    let key = match keys.as_slice() {
        [k] => k.text,
        [] => {
            return Err(file_error(
                "client_key",
                key_path,
                "no PEM private key (-----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY) in this file",
            ));
        }
        _ => {
            return Err(file_error(
                "client_key",
                key_path,
                "several private keys in this file; keep only the one matching client_cert",
            ));
        }
    };
    let combined = format!("{certs_pem}{key}\n");
    Identity::from_pem(combined.as_bytes()).map_err(|e| {
        file_error(
            "client_key",
            key_path,
            format!("invalid private key: {}", super::error::cause_chain(&e)),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_block_scanner() {
        let text = "junk\n-----BEGIN EC PARAMETERS-----\nBggq\n-----END EC PARAMETERS-----\n-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
        let blocks = pem_blocks(text).expect("well formed");
        let labels: Vec<&str> = blocks.iter().map(|b| b.label).collect();
        assert_eq!(labels, ["EC PARAMETERS", "EC PRIVATE KEY"]);
        assert!(blocks[1].text.starts_with("-----BEGIN EC PRIVATE KEY-----"));
        assert!(blocks[1].text.ends_with("-----END EC PRIVATE KEY-----"));
        assert!(pem_blocks("-----BEGIN CERTIFICATE-----\nAAAA\n").is_err());
        assert!(pem_blocks("no pem here").expect("ok").is_empty());
    }

    fn err<T>(r: Result<T, TransportError>, what: &str) -> String {
        match r {
            Ok(_) => panic!("{what}: expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn bad_files_are_named_with_a_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing.pem");
        let e = err(load_ca_file(&missing), "missing");
        assert!(
            e.starts_with("[http] ca_cert_file ") && e.contains("missing.pem: cannot read"),
            "{e}"
        );

        let der = dir.path().join("ca.der");
        fs::write(&der, [0x30u8, 0x82, 0xff, 0xfe, 0x00]).expect("write");
        let e = err(load_ca_file(&der), "der");
        assert!(e.contains("openssl x509 -inform der"), "{e}");

        let garbage = dir.path().join("garbage.pem");
        fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let e = err(load_ca_file(&garbage), "garbage");
        assert!(
            e.contains("garbage.pem") && e.contains("invalid PEM certificate"),
            "{e}"
        );

        let empty_dir = dir.path().join("empty");
        fs::create_dir(&empty_dir).expect("mkdir");
        fs::write(empty_dir.join("README"), "nothing").expect("write");
        let e = err(load_ca_dir(&empty_dir), "empty");
        assert!(
            e.contains("ca_cert_dir") && e.contains("no file with a PEM certificate"),
            "{e}"
        );

        let enc = dir.path().join("enc.key");
        fs::write(
            &enc,
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .expect("write");
        let e = err(load_identity(&garbage, &enc), "bad cert first");
        assert!(e.contains("client_cert"), "{e}");
    }
}
