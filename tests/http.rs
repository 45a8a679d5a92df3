//! The shared HTTP client factory against real local servers: retries and backoff over plain
//! HTTP, and TLS verification, custom CA bundles and pinning against a TLS server.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use imagepipe::config::TlsSpec;
use imagepipe::http::{HttpClient, HttpError, HttpOptions, RetryPolicy, USER_AGENT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn fast_options() -> HttpOptions {
    HttpOptions {
        retry: RetryPolicy {
            retries: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        },
        ..HttpOptions::default()
    }
}

/// Serves `router` on a loopback port.
async fn serve(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// A server that answers the first `failures` requests with `status` (and `Retry-After`
/// when given), then 200; it counts requests.
async fn flaky(
    failures: usize,
    status: StatusCode,
    retry_after: Option<&'static str>,
) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let router = Router::new().route(
        "/",
        get(move |headers: HeaderMap| {
            let h = h.clone();
            async move {
                let n = h.fetch_add(1, Ordering::SeqCst);
                let ua = headers
                    .get("user-agent")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let mut resp = axum::response::Response::builder();
                if n < failures {
                    resp = resp.status(status);
                    if let Some(ra) = retry_after {
                        resp = resp.header("retry-after", ra);
                    }
                    resp.body(axum::body::Body::from(
                        "{\"errors\":[{\"status\":503,\"message\":\"busy\"}]}",
                    ))
                    .unwrap()
                } else {
                    resp.status(200).body(axum::body::Body::from(ua)).unwrap()
                }
            }
        }),
    );
    (serve(router).await, hits)
}

#[tokio::test]
async fn retries_5xx_then_succeeds_with_the_user_agent() {
    let (url, hits) = flaky(2, StatusCode::SERVICE_UNAVAILABLE, None).await;
    let client = HttpClient::new(&fast_options()).unwrap();
    let resp = client.send(|c| c.get(&url)).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), USER_AGENT);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn honours_retry_after_on_429() {
    let (url, hits) = flaky(1, StatusCode::TOO_MANY_REQUESTS, Some("1")).await;
    let client = HttpClient::new(&fast_options()).unwrap();
    let resp = client.send(|c| c.get(&url)).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn gives_up_after_the_retries_and_returns_the_last_answer() {
    let (url, hits) = flaky(100, StatusCode::BAD_GATEWAY, None).await;
    let client = HttpClient::new(&fast_options()).unwrap();
    let resp = client.send(|c| c.get(&url)).await.unwrap();
    assert_eq!(resp.status(), 502);
    assert!(
        resp.text().await.unwrap().contains("busy"),
        "the error body reaches the caller"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        4,
        "one attempt and three retries"
    );
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    for status in [
        StatusCode::NOT_FOUND,
        StatusCode::UNAUTHORIZED,
        StatusCode::CONFLICT,
    ] {
        let (url, hits) = flaky(100, status, None).await;
        let client = HttpClient::new(&fast_options()).unwrap();
        let resp = client.send(|c| c.get(&url)).await.unwrap();
        assert_eq!(resp.status(), status);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }
}

#[tokio::test]
async fn connection_refused_is_retried_then_reported() {
    // Bind and drop, so the port is very likely closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = HttpClient::new(&fast_options()).unwrap();
    let err = client
        .send(|c| c.get(format!("http://127.0.0.1:{port}/x")))
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::Transport { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("GET http://127.0.0.1:{port}/x: ")),
        "{err}"
    );
}

/// A one-certificate TLS server for `names`, answering every request with 200 "ok".
async fn tls_server(names: &[&str]) -> (String, rcgen::CertifiedKey<rcgen::KeyPair>) {
    let cert =
        rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    let chain = vec![cert.cert.der().clone()];
    let key = rustls_pki_key(&cert);
    let url = serve_tls(chain, key).await;
    (url, cert)
}

/// A TLS server with a certificate made as most people make one, with the real tool:
/// `openssl req -x509`, which marks it as a CA. Returns the URL and the certificate's PEM.
async fn openssl_server(dir: &std::path::Path) -> (String, String) {
    let status = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        ])
        .args(["-subj", "/CN=localhost/O=imagepipe test"])
        .args(["-addext", "subjectAltName=DNS:localhost"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let pem = std::fs::read_to_string(dir.join("cert.pem")).unwrap();
    let chain: Vec<_> = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key =
        rustls_pemfile::private_key(&mut std::fs::read(dir.join("key.pem")).unwrap().as_slice())
            .unwrap()
            .unwrap();
    (serve_tls(chain, key).await, pem)
}

async fn serve_tls(
    chain: Vec<tokio_rustls::rustls::pki_types::CertificateDer<'static>>,
    key: tokio_rustls::rustls::pki_types::PrivateKeyDer<'static>,
) -> String {
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    format!("https://localhost:{port}/")
}

fn rustls_pki_key(
    cert: &rcgen::CertifiedKey<rcgen::KeyPair>,
) -> tokio_rustls::rustls::pki_types::PrivateKeyDer<'static> {
    tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into())
}

fn tls_options(tls: TlsSpec) -> HttpOptions {
    HttpOptions {
        tls,
        retry: RetryPolicy {
            retries: 0,
            ..RetryPolicy::default()
        },
        ..HttpOptions::default()
    }
}

#[tokio::test]
async fn tls_is_verified_by_default() {
    let (url, _) = tls_server(&["localhost"]).await;
    let client = HttpClient::new(&tls_options(TlsSpec::default())).unwrap();
    let err = client.send(|c| c.get(&url)).await.unwrap_err();
    let chain = format!("{:?}", err);
    assert!(
        chain.contains("UnknownIssuer") || chain.contains("invalid peer certificate"),
        "{chain}"
    );
}

#[tokio::test]
async fn a_ca_bundle_makes_a_private_ca_trusted() {
    let (url, cert) = tls_server(&["localhost"]).await;
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("ca.pem");
    std::fs::write(&bundle, cert.cert.pem()).unwrap();
    let client = HttpClient::new(&tls_options(TlsSpec {
        ca_bundle: Some(bundle),
        pin_sha256: vec![],
    }))
    .unwrap();
    let resp = client.send(|c| c.get(&url)).await.unwrap();
    assert_eq!(resp.text().await.unwrap(), "ok");

    // A bundle that is not PEM is a clear error, not an empty trust store.
    std::fs::write(dir.path().join("bad.pem"), "not a certificate").unwrap();
    let err = HttpClient::new(&tls_options(TlsSpec {
        ca_bundle: Some(dir.path().join("bad.pem")),
        pin_sha256: vec![],
    }))
    .unwrap_err();
    assert!(
        err.to_string().contains("holds no PEM certificate"),
        "{err}"
    );
}

#[tokio::test]
async fn pinning_accepts_exactly_the_pinned_certificate() {
    // The certificate names another host: only the pin can make it acceptable.
    let (url, cert) = tls_server(&["vcenter.example"]).await;
    let pin = imagepipe::hash::Sha256Hex::digest(cert.cert.der()).to_string();
    let colon_pin = pin
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap().to_uppercase())
        .collect::<Vec<_>>()
        .join(":");
    let client = HttpClient::new(&tls_options(TlsSpec {
        ca_bundle: None,
        pin_sha256: vec![colon_pin],
    }))
    .unwrap();
    assert_eq!(
        client
            .send(|c| c.get(&url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );

    let wrong = "00".repeat(32);
    let client = HttpClient::new(&tls_options(TlsSpec {
        ca_bundle: None,
        pin_sha256: vec![wrong],
    }))
    .unwrap();
    let err = format!("{:?}", client.send(|c| c.get(&url)).await.unwrap_err());
    assert!(err.contains("matches no pinned fingerprint"), "{err}");
    assert!(
        err.contains(&pin),
        "the error shows the certificate's real fingerprint: {err}"
    );
}

#[tokio::test]
async fn the_vsphere_thumbprint_of_a_trusted_server() {
    use sha1::Digest as _;
    let (url, cert) = tls_server(&["localhost"]).await;
    let want: Vec<String> = sha1::Sha1::digest(cert.cert.der())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("ca.pem");
    std::fs::write(&bundle, cert.cert.pem()).unwrap();
    let trusted = TlsSpec {
        ca_bundle: Some(bundle),
        pin_sha256: vec![],
    };
    let got = imagepipe::http::sha1_thumbprint(&url, &trusted)
        .await
        .unwrap();
    assert_eq!(got, want.join(":"));
    // Never for a server this step does not trust itself.
    let err = imagepipe::http::sha1_thumbprint(&url, &TlsSpec::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&url), "{err}");
}

#[tokio::test]
async fn a_self_signed_certificate_made_with_openssl_is_trusted_as_a_ca_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let (url, pem) = openssl_server(dir.path()).await;
    let bundle = dir.path().join("cert.pem");
    let client = HttpClient::new(&tls_options(TlsSpec {
        ca_bundle: Some(bundle),
        pin_sha256: vec![],
    }))
    .unwrap();
    let resp = client.send(|c| c.get(&url)).await.unwrap();
    assert_eq!(resp.text().await.unwrap(), "ok");

    // Untrusted, the error says what the server presented and both ways to trust it.
    let client = HttpClient::new(&tls_options(TlsSpec::default())).unwrap();
    let err = client.send(|c| c.get(&url)).await.unwrap_err().to_string();
    let der = rustls_pemfile::certs(&mut pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    let fingerprint: Vec<String> = <sha2::Sha256 as sha2::Digest>::digest(der.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let fingerprint = fingerprint.join(":");
    for want in [
        "the TLS certificate of localhost is not trusted",
        "CN=localhost",
        "ca_bundle",
        "IMAGEPIPE_CA_BUNDLE",
        &format!("pin_sha256 = [\"{fingerprint}\"]"),
    ] {
        assert!(err.contains(want), "`{want}` in: {err}");
    }
}
