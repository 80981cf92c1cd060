//! The transport against loopback rustls servers with certificates made by rcgen: default
//! verification, `ca_cert_file`, `ca_cert_dir`, `no_ssl_check`, mutual TLS, bad files.

mod transport_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use agent_core::transport::{Endpoint, GlpiClient, HttpOptions, TlsProblem, TransportError};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig, crypto};
use transport_support::{Server, fast_opts, json};

/// A test CA able to issue server and client certificates.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, as DER (for the server) and PEM (for the agent's files).
struct Leaf {
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
    cert_pem: String,
    key_pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA cert"),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Leaf {
        let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params.distinguished_name.push(DnType::CommonName, "leaf");
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &*self.issuer).expect("sign");
        Leaf {
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

fn provider() -> Arc<crypto::CryptoProvider> {
    Arc::new(crypto::ring::default_provider())
}

fn server_key(leaf: &Leaf) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_der.clone()))
}

/// A TLS acceptor presenting `leaf`; with `client_ca`, client certificates from that CA are
/// required.
fn acceptor(leaf: &Leaf, client_ca: Option<&Ca>) -> TlsAcceptor {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions");
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add(ca.der()).expect("client CA");
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(vec![leaf.cert_der.clone()], server_key(leaf))
        .expect("server config");
    TlsAcceptor::from(Arc::new(config))
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).expect("write");
    p
}

async fn https_server(leaf: &Leaf, client_ca: Option<&Ca>) -> Server {
    Server::start_tls(
        vec![json(200, ""), json(200, "")],
        acceptor(leaf, client_ca),
    )
    .await
}

#[tokio::test]
async fn default_verification_fails_with_a_clear_tls_message() {
    let ca = Ca::new("Private Test CA");
    let leaf = ca.issue(&["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    let server = https_server(&leaf, None).await;
    let c = GlpiClient::new(&server.base(), &fast_opts()).expect("client");
    let e = c
        .post(Endpoint::States, b"{}")
        .await
        .expect_err("unknown CA");
    match &e {
        TransportError::Tls { problem, .. } => assert_eq!(*problem, TlsProblem::ServerCertificate),
        other => panic!("expected Tls, got {other:?}"),
    }
    let url = format!("{}/api/states/", server.base());
    let d = e.to_string();
    assert!(
        d.starts_with(&format!("TLS certificate verification failed for {url}: ")),
        "{d}"
    );
    assert!(
        d.ends_with("; set ca_cert_file or (unsafe) no_ssl_check"),
        "{d}"
    );
    assert!(
        d.to_lowercase().contains("unknown") || d.contains("UnknownIssuer"),
        "says why: {d}"
    );
    assert!(!d.contains('\n'));
    assert!(!e.request_may_have_reached_server());
    assert!(!e.is_retryable());
    assert_eq!(server.connections(), 1, "TLS failures are not retried");
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn ca_cert_file_makes_it_succeed() {
    let ca = Ca::new("Private Test CA");
    let leaf = ca.issue(&["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    let server = https_server(&leaf, None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // A bundle with a comment line and an unrelated CA first: all certificates are read.
    let other = Ca::new("Other CA");
    let bundle = format!("# bundle\n{}{}", other.pem(), ca.pem());
    let opts = HttpOptions {
        ca_cert_file: Some(write(dir.path(), "ca.pem", &bundle)),
        ..fast_opts()
    };
    let c = GlpiClient::new(&server.base(), &opts).expect("client");
    let reply = c.post(Endpoint::States, b"{}").await.expect("verified");
    assert_eq!(reply.status, 200);
    assert_eq!(server.requests().len(), 1);
    assert_eq!(
        server.requests()[0].target,
        "/glpi/plugins/armadito/api/states/"
    );
}

#[tokio::test]
async fn ca_cert_file_with_the_wrong_ca_still_fails() {
    let ca = Ca::new("Private Test CA");
    let leaf = ca.issue(&["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    let server = https_server(&leaf, None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = HttpOptions {
        ca_cert_file: Some(write(dir.path(), "other.pem", &Ca::new("Other CA").pem())),
        ..fast_opts()
    };
    let e = GlpiClient::new(&server.base(), &opts)
        .expect("client")
        .post(Endpoint::States, b"{}")
        .await
        .expect_err("wrong CA");
    assert!(
        matches!(
            e,
            TransportError::Tls {
                problem: TlsProblem::ServerCertificate,
                ..
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn certificate_for_another_name_fails_and_says_so() {
    let ca = Ca::new("Private Test CA");
    let leaf = ca.issue(&["glpi.example.org"], ExtendedKeyUsagePurpose::ServerAuth);
    let server = https_server(&leaf, None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = HttpOptions {
        ca_cert_file: Some(write(dir.path(), "ca.pem", &ca.pem())),
        ..fast_opts()
    };
    let e = GlpiClient::new(&server.base(), &opts)
        .expect("client")
        .post(Endpoint::States, b"{}")
        .await
        .expect_err("name mismatch");
    let d = e.to_string();
    assert!(
        d.starts_with("TLS certificate verification failed for https://127.0.0.1:"),
        "{d}"
    );
    assert!(
        d.contains("glpi.example.org") || d.to_lowercase().contains("name"),
        "{d}"
    );
}

#[tokio::test]
async fn ca_cert_dir_makes_it_succeed() {
    let ca = Ca::new("Private Test CA");
    let leaf = ca.issue(&["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    let server = https_server(&leaf, None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "README", "CA certificates of the company\n");
    write(dir.path(), "00-other.pem", &Ca::new("Other CA").pem());
    write(dir.path(), "company-ca.crt", &ca.pem());
    std::fs::write(dir.path().join("binary.der"), ca.der().as_ref()).expect("write");
    let opts = HttpOptions {
        ca_cert_dir: Some(dir.path().to_owned()),
        ..fast_opts()
    };
    let c = GlpiClient::new(&server.base(), &opts).expect("client");
    c.post(Endpoint::States, b"{}").await.expect("verified");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn no_ssl_check_succeeds() {
    let ca = Ca::new("Private Test CA");
    let leaf = ca.issue(&["somewhere.else"], ExtendedKeyUsagePurpose::ServerAuth);
    let server = https_server(&leaf, None).await;
    let opts = HttpOptions {
        no_ssl_check: true,
        ..fast_opts()
    };
    let c = GlpiClient::new(&server.base(), &opts).expect("client");
    c.post(Endpoint::States, b"{}").await.expect("unverified");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn mutual_tls_requires_the_client_certificate() {
    let ca = Ca::new("Private Test CA");
    let leaf = ca.issue(&["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    let agent = ca.issue(&["agent.example.org"], ExtendedKeyUsagePurpose::ClientAuth);
    let server = https_server(&leaf, Some(&ca)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = write(dir.path(), "ca.pem", &ca.pem());

    // Without a client certificate: refused, and the message points at client_cert.
    let opts = HttpOptions {
        ca_cert_file: Some(ca_file.clone()),
        ..fast_opts()
    };
    let e = GlpiClient::new(&server.base(), &opts)
        .expect("client")
        .post(Endpoint::States, b"{}")
        .await
        .expect_err("no client cert");
    assert!(
        matches!(
            e,
            TransportError::Tls {
                problem: TlsProblem::Handshake,
                ..
            }
        ),
        "{e:?}"
    );
    let d = e.to_string();
    assert!(
        d.contains("client_cert") && d.contains(&server.base()),
        "{d}"
    );
    assert!(
        server.requests().is_empty(),
        "the server never saw a request"
    );

    // With it: accepted.
    let opts = HttpOptions {
        ca_cert_file: Some(ca_file.clone()),
        client_cert: Some(write(dir.path(), "agent.pem", &agent.cert_pem)),
        client_key: Some(write(dir.path(), "agent.key", &agent.key_pem)),
        ..fast_opts()
    };
    let c = GlpiClient::new(&server.base(), &opts).expect("client");
    c.post(Endpoint::States, b"{}").await.expect("mutual TLS");
    assert_eq!(server.requests().len(), 1);

    // Combined cert+key in one file, named by both options.
    let both = write(
        dir.path(),
        "agent-both.pem",
        &format!("{}{}", agent.cert_pem, agent.key_pem),
    );
    let opts = HttpOptions {
        ca_cert_file: Some(ca_file.clone()),
        client_cert: Some(both.clone()),
        client_key: Some(both),
        ..fast_opts()
    };
    GlpiClient::new(&server.base(), &opts)
        .expect("client")
        .post(Endpoint::States, b"{}")
        .await
        .expect("mutual TLS with a combined file");
    assert_eq!(server.requests().len(), 2);

    // A client certificate from another CA: refused.
    let stranger = Ca::new("Other CA").issue(&["agent"], ExtendedKeyUsagePurpose::ClientAuth);
    let opts = HttpOptions {
        ca_cert_file: Some(ca_file),
        client_cert: Some(write(dir.path(), "stranger.pem", &stranger.cert_pem)),
        client_key: Some(write(dir.path(), "stranger.key", &stranger.key_pem)),
        ..fast_opts()
    };
    let e = GlpiClient::new(&server.base(), &opts)
        .expect("client")
        .post(Endpoint::States, b"{}")
        .await
        .expect_err("unknown client CA");
    assert!(matches!(e, TransportError::Tls { .. }), "{e:?}");
}

#[test]
fn bad_certificate_and_key_files_fail_at_build_naming_the_file() {
    let ca = Ca::new("Private Test CA");
    let agent = ca.issue(&["agent"], ExtendedKeyUsagePurpose::ClientAuth);
    let other = ca.issue(&["other"], ExtendedKeyUsagePurpose::ClientAuth);
    let dir = tempfile::tempdir().expect("tempdir");
    let base = "https://glpi.example.org/glpi/plugins/armadito";
    let build = |opts: HttpOptions| GlpiClient::new(base, &opts).expect_err("must fail");

    let e = build(HttpOptions {
        ca_cert_file: Some(dir.path().join("absent.pem")),
        ..fast_opts()
    });
    assert!(e.is_config_error());
    let d = e.to_string();
    assert!(
        d.starts_with("[http] ca_cert_file ") && d.contains("absent.pem: cannot read"),
        "{d}"
    );

    let e = build(HttpOptions {
        ca_cert_file: Some(write(dir.path(), "key-not-cert.pem", &agent.key_pem)),
        ..fast_opts()
    });
    assert!(e.to_string().contains("no PEM certificate"), "{e}");

    let e = build(HttpOptions {
        client_cert: Some(write(dir.path(), "agent.pem", &agent.cert_pem)),
        client_key: Some(write(dir.path(), "agent-cert-as-key.pem", &agent.cert_pem)),
        ..fast_opts()
    });
    let d = e.to_string();
    assert!(
        d.starts_with("[http] client_key ") && d.contains("no PEM private key"),
        "{d}"
    );

    // Well-formed PEM, but not a certificate inside.
    let e = build(HttpOptions {
        ca_cert_file: Some(write(
            dir.path(),
            "not-der.pem",
            "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQgZ2FyYmFnZQ==\n-----END CERTIFICATE-----\n",
        )),
        ..fast_opts()
    });
    let d = e.to_string();
    assert!(
        d.starts_with("[http] ca_cert_file ") && d.contains("not-der.pem"),
        "{d}"
    );

    let e = build(HttpOptions {
        client_cert: Some(dir.path().join("agent.pem")),
        client_key: Some(write(
            dir.path(),
            "encrypted.key",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )),
        ..fast_opts()
    });
    let d = e.to_string();
    assert!(
        d.contains("encrypted.key") && d.contains("encrypted, which is not supported"),
        "{d}"
    );

    let e = build(HttpOptions {
        client_cert: Some(dir.path().join("agent.pem")),
        client_key: Some(write(dir.path(), "other.key", &other.key_pem)),
        ..fast_opts()
    });
    let d = e.to_string();
    assert!(
        d.starts_with("[http] client_key ") && d.contains("other.key"),
        "mismatched key: {d}"
    );
}

#[tokio::test]
async fn https_url_on_a_plain_http_port_is_a_tls_handshake_error() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // What Apache does with a TLS ClientHello on its port 80: a plain-HTTP 400.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = tcp.read(&mut buf).await;
            let _ = tcp
                .write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
        }
    });
    let base = format!("https://{addr}/glpi/plugins/armadito");
    let e = GlpiClient::new(&base, &fast_opts())
        .expect("client")
        .post(Endpoint::States, b"{}")
        .await
        .expect_err("not TLS");
    assert!(
        matches!(
            e,
            TransportError::Tls {
                problem: TlsProblem::Handshake,
                ..
            }
        ),
        "{e:?}"
    );
    let d = e.to_string();
    assert!(d.contains("speaks HTTPS") && d.contains(&base), "{d}");
}
