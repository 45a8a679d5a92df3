//! A TLS front for a plain-HTTP test server: it terminates TLS with a self-signed certificate
//! for `localhost` and passes the bytes through to the backend, so any test server can be
//! reached over https (a site's store that vCenter PULLs from with a thumbprint).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_rustls::rustls;

#[derive(Debug)]
pub struct TlsProxy {
    /// `https://localhost:PORT`
    pub url: String,
    /// The certificate the proxy presents, as PEM (a `ca_bundle` trusts exactly it).
    pub cert_pem: String,
    /// The SHA-1 of its DER, in vSphere's form (upper-case hex pairs joined by colons).
    pub sha1_thumbprint: String,
}

/// Starts a proxy to `backend` (an `http://127.0.0.1:PORT[/…]` URL: its address) on a thread of
/// its own, presenting a self-signed certificate.
pub fn start(backend: &str) -> TlsProxy {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    serve(backend, der, key, cert.cert.pem())
}

/// Like [`start`], with a certificate issued by a private CA; `cert_pem` is the CA's
/// certificate (what an enterprise hands out as its CA bundle).
pub fn start_with_private_ca(backend: &str) -> TlsProxy {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "imagepipe test private CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    serve(backend, leaf.der().clone(), key, ca_cert.pem())
}

fn serve(
    backend: &str,
    der: rustls::pki_types::CertificateDer<'static>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
    cert_pem: String,
) -> TlsProxy {
    let backend: SocketAddr = backend
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![der.clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that refuses the certificate ends the handshake: nothing to pass.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
    });
    use sha1::Digest as _;
    TlsProxy {
        url: format!("https://localhost:{port}"),
        cert_pem,
        sha1_thumbprint: sha1::Sha1::digest(der.as_ref())
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":"),
    }
}
