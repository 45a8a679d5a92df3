//! The one HTTP client factory every step uses.
//!
//! It sets timeouts, a versioned user agent, proxies from the environment (`HTTPS_PROXY`,
//! `NO_PROXY`, …), the system roots plus an optional extra CA bundle, and optional certificate
//! pinning; and it retries connect errors, 429 and 5xx with exponential backoff and full jitter,
//! honouring `Retry-After`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::{RequestBuilder, Response, StatusCode};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// Transport security for one endpoint. Verification is always on; these only widen or narrow
/// what is trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSpec {
    /// Extra PEM CA bundle trusted for this endpoint.
    pub ca_bundle: Option<PathBuf>,
    /// SHA-256 fingerprints of certificates to accept (pinning), hex with or without colons.
    pub pin_sha256: Vec<String>,
}

pub const USER_AGENT: &str = concat!("imagepipe/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot read the CA bundle {path}: {reason}")]
    CaBundle { path: PathBuf, reason: String },
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("{method} {url}: {}", explain(url, source))]
    Transport {
        method: String,
        url: String,
        source: reqwest::Error,
    },
    #[error("cannot send this request twice (its body is a stream): {0}")]
    NotRetryable(String),
}

/// How failed requests are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `attempt` (1-based). A server's `Retry-After` wins, capped at
    /// ten times the backoff ceiling so a hostile value cannot park the step for days.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(self.max_delay * 10);
        }
        let ceiling = self
            .base_delay
            .saturating_mul(
                1u32.checked_shl(attempt.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .min(self.max_delay);
        // Full jitter: clients that failed together do not retry together.
        ceiling.mul_f64(fastrand::f64())
    }
}

/// Whether a status is worth retrying.
pub fn retryable_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// Parses `Retry-After`: delta-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses a certificate fingerprint of `len` bytes written as hex, with or without colons.
pub fn parse_fingerprint(s: &str, len: usize) -> Option<Vec<u8>> {
    let compact: String = s.chars().filter(|c| *c != ':').collect();
    let bytes = hex::decode(compact).ok()?;
    (bytes.len() == len).then_some(bytes)
}

/// Settings for one client.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
    pub tls: TlsSpec,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            // Uploads of many GiB stream for a long time; the timeout only guards a dead peer.
            timeout: Duration::from_secs(6 * 3600),
            connect_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            tls: TlsSpec::default(),
        }
    }
}

/// A configured client with the shared retry behaviour.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    retry: RetryPolicy,
}

impl HttpClient {
    pub fn new(options: &HttpOptions) -> Result<Self, HttpError> {
        let tls = tls_config(&options.tls)?;
        let inner = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(options.timeout)
            .connect_timeout(options.connect_timeout)
            .use_preconfigured_tls(tls)
            .build()
            .map_err(HttpError::Client)?;
        Ok(Self {
            inner,
            retry: options.retry,
        })
    }

    /// The underlying client, for requests that manage their own retries (streamed uploads).
    pub fn client(&self) -> &reqwest::Client {
        &self.inner
    }

    /// Sends a request built by `build`, retrying connect errors, timeouts, 429 and 5xx. The
    /// last response is returned whatever its status, so callers read error bodies themselves.
    pub async fn send(
        &self,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, HttpError> {
        let mut attempt = 0;
        loop {
            let request = build(&self.inner).build().map_err(HttpError::Client)?;
            let (method, url) = (request.method().to_string(), request.url().to_string());
            let result = self.inner.execute(request).await;
            attempt += 1;
            let retry_after = match &result {
                Ok(resp) if retryable_status(resp.status()) => Some(
                    resp.headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, SystemTime::now())),
                ),
                Ok(_) => None,
                Err(e) if e.is_connect() || e.is_timeout() || e.is_request() => Some(None),
                Err(_) => None,
            };
            match (retry_after, attempt <= self.retry.retries) {
                (Some(ra), true) => tokio::time::sleep(self.retry.delay(attempt, ra)).await,
                _ => {
                    return result.map_err(|source| HttpError::Transport {
                        method,
                        url,
                        source,
                    });
                }
            }
        }
    }
}

/// The SHA-1 thumbprint of the certificate the server of `url` presents, in vSphere's form
/// (upper-case hex pairs joined by colons): what vCenter needs to trust a PULL source. The
/// connection is verified as every client of this factory verifies it, so a thumbprint is only
/// ever handed on for a server this step trusts itself.
pub async fn sha1_thumbprint(url: &str, spec: &TlsSpec) -> Result<String, HttpError> {
    use sha1::Digest as _;
    let transport = |message: String| HttpError::Tls(format!("{url}: {message}"));
    let parsed = reqwest::Url::parse(url).map_err(|e| transport(e.to_string()))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| transport("no host".into()))?
        .to_string();
    let port = parsed.port_or_known_default().unwrap_or(443);
    let mut config = tls_config(spec)?;
    config.alpn_protocols.clear();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from(host.clone())
        .map_err(|e| transport(e.to_string()))?;
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| transport(e.to_string()))?;
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| transport(explain(url, &e)))?;
    let cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(|| transport("the server sent no certificate".into()))?;
    Ok(sha1::Sha1::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":"))
}

fn tls_config(spec: &TlsSpec) -> Result<rustls::ClientConfig, HttpError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    // Missing or unreadable system roots are not fatal: a CA bundle or a pin may be all a
    // site needs.
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let bundles = spec
        .ca_bundle
        .iter()
        .cloned()
        .chain(crate::env::var(crate::env::CA_BUNDLE).map(PathBuf::from));
    let mut exact = Vec::new();
    for path in bundles {
        for cert in read_pem_certs(&path)? {
            roots.add(cert.clone()).map_err(|e| HttpError::CaBundle {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            exact.push(cert);
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError::Tls(e.to_string()))?;
    let mut config = if spec.pin_sha256.is_empty() {
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| HttpError::Tls(e.to_string()))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(TrustVerifier {
                webpki,
                exact,
                provider,
            }))
            .with_no_client_auth()
    } else {
        let pins = spec
            .pin_sha256
            .iter()
            .filter_map(|p| parse_fingerprint(p, 32))
            .collect();
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedVerifier { pins, provider }))
            .with_no_client_auth()
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, HttpError> {
    let err = |reason: String| HttpError::CaBundle {
        path: path.to_path_buf(),
        reason,
    };
    let data = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut data.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("it holds no PEM certificate".into()));
    }
    Ok(certs)
}

/// A server certificate this process refused, for the error message: what `pin_sha256` would
/// name, and whom it says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedCertificate {
    /// Upper-case hex pairs joined by colons, as `pin_sha256` takes it.
    pub sha256: String,
    pub subject: String,
    pub issuer: String,
}

/// The certificates refused per server name, so that an error about a connection can say
/// what the server presented.
static REFUSED: std::sync::Mutex<Vec<(String, RefusedCertificate)>> =
    std::sync::Mutex::new(Vec::new());

fn remember_refused(server: &ServerName<'_>, cert: &CertificateDer<'_>) {
    let sha256 = Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let (subject, issuer) = match x509_parser::parse_x509_certificate(cert.as_ref()) {
        Ok((_, c)) => (c.subject().to_string(), c.issuer().to_string()),
        Err(_) => ("(not readable)".into(), "(not readable)".into()),
    };
    let host = server.to_str().into_owned();
    let mut refused = REFUSED.lock().unwrap_or_else(|p| p.into_inner());
    refused.retain(|(h, _)| h != &host);
    refused.push((
        host,
        RefusedCertificate {
            sha256,
            subject,
            issuer,
        },
    ));
}

/// The certificate `host` presented when it was last refused.
pub fn refused_certificate(host: &str) -> Option<RefusedCertificate> {
    REFUSED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .find(|(h, _)| h == host)
        .map(|(_, c)| c.clone())
}

/// Whether an error (or what caused it) is a TLS certificate that was not trusted.
fn certificate_error(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(rustls::Error::InvalidCertificate(reason)) = c.downcast_ref::<rustls::Error>() {
            return Some(format!("{reason:?}"));
        }
        if let Some(rustls::Error::General(reason)) = c.downcast_ref::<rustls::Error>() {
            return Some(reason.clone());
        }
        if let Some(inner) = c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(format!("{inner}"));
        }
        // Some layers keep the TLS error only as text (an `io::Error`'s source skips the
        // error it wraps).
        if let Some(at) = c.to_string().find("invalid peer certificate: ") {
            return Some(c.to_string()[at + "invalid peer certificate: ".len()..].to_string());
        }
        cause = c.source();
    }
    None
}

/// A transport error as a person reads it: a refused certificate says which certificate the
/// server presented and how to trust it.
pub fn explain(url: &str, e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    let Some(reason) = certificate_error(e) else {
        return text;
    };
    let host = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    match refused_certificate(&host) {
        Some(c) => format!(
            "the TLS certificate of {host} is not trusted ({reason}); it is `{}`, issued by `{}`, \
             with SHA-256 fingerprint {}: trust the CA that issued it with `ca_bundle` in \
             imagepipe.toml (or {} for every client), or trust exactly this certificate with \
             `pin_sha256 = [\"{}\"]`",
            c.subject,
            c.issuer,
            c.sha256,
            crate::env::CA_BUNDLE,
            c.sha256
        ),
        None => format!(
            "the TLS certificate of {host} is not trusted ({reason}): trust its CA with \
             `ca_bundle` in imagepipe.toml (or {}), or pin it with `pin_sha256`",
            crate::env::CA_BUNDLE
        ),
    }
}

/// The system's roots and the CA bundles, as webpki checks them; and, beside them, each
/// certificate of a bundle trusted as it is. A self-signed server certificate made as
/// `openssl req -x509` makes one is marked as a CA, which webpki refuses as a server's own
/// ("CaUsedAsEndEntity"); given as a bundle, it is what the user told us to trust, and it is
/// accepted when it is exactly the server's certificate, names the server, and is in date.
#[derive(Debug)]
struct TrustVerifier {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    exact: Vec<CertificateDer<'static>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for TrustVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let refused =
            match self
                .webpki
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
        if self.exact.iter().any(|c| c.as_ref() == end_entity.as_ref())
            && names_server(end_entity, server_name)
            && in_date(end_entity, now)
        {
            return Ok(ServerCertVerified::assertion());
        }
        remember_refused(server_name, end_entity);
        Err(refused)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Whether the certificate names the server (its subject alternative names, as webpki reads
/// them).
fn names_server(cert: &CertificateDer<'_>, server: &ServerName<'_>) -> bool {
    webpki::EndEntityCert::try_from(cert)
        .is_ok_and(|ee| ee.verify_is_valid_for_subject_name(server).is_ok())
}

/// Whether `now` is within the certificate's validity.
fn in_date(cert: &CertificateDer<'_>, now: UnixTime) -> bool {
    let Ok((_, c)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return false;
    };
    let now = now.as_secs() as i64;
    c.validity().not_before.timestamp() <= now && now <= c.validity().not_after.timestamp()
}

/// Accepts exactly the certificates whose SHA-256 fingerprint is pinned, and nothing else. This
/// is what vSphere and appliance users mean by a thumbprint: the certificate is often
/// self-signed, so the pin replaces the chain check, while the handshake signature is still
/// verified against the pinned certificate's key.
#[derive(Debug)]
struct PinnedVerifier {
    pins: Vec<Vec<u8>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fingerprint = Sha256::digest(end_entity.as_ref());
        if self
            .pins
            .iter()
            .any(|p| p.as_slice() == fingerprint.as_slice())
        {
            Ok(ServerCertVerified::assertion())
        } else {
            remember_refused(server_name, end_entity);
            Err(rustls::Error::General(format!(
                "the server certificate (sha256 {}) matches no pinned fingerprint",
                hex::encode(fingerprint)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The `rel="next"` target of a `Link` header (RFC 8288), as a path with query: GitHub's
/// pages and OCI registries' tag lists are followed by it.
pub fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| {
                let url = url.trim().trim_start_matches('<').trim_end_matches('>');
                // Clients join a path to their base URL (octocrab keeps a GHES `/api/v3` path
                // that is already there); keep path and query only.
                match url.find("://") {
                    Some(i) => url[i + 3..]
                        .find('/')
                        .map_or("/".to_string(), |j| url[i + 3 + j..].to_string()),
                    None => url.to_string(),
                }
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers() {
        let l = r#"<https://api.github.com/repositories/1/pulls/2/reviews?per_page=100&page=2>; rel="next", <https://api.github.com/repositories/1/pulls/2/reviews?per_page=100&page=5>; rel="last""#;
        assert_eq!(
            next_link(l).as_deref(),
            Some("/repositories/1/pulls/2/reviews?per_page=100&page=2")
        );
        let ghes =
            r#"<https://ghe.example/api/v3/repositories/9/commits/x/pulls?page=2>; rel="next""#;
        assert_eq!(
            next_link(ghes).as_deref(),
            Some("/api/v3/repositories/9/commits/x/pulls?page=2")
        );
        assert_eq!(next_link(r#"<https://x/a?page=1>; rel="prev""#), None);
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(120));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(120))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(5));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let p = RetryPolicy {
            retries: 10,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(8),
        };
        for attempt in 1..=10 {
            let ceiling = Duration::from_secs(1 << (attempt - 1).min(3));
            for _ in 0..50 {
                assert!(p.delay(attempt, None) <= ceiling);
            }
        }
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(86_400))),
            Duration::from_secs(80)
        );
        assert!(p.delay(40, None) <= Duration::from_secs(8));
    }

    #[test]
    fn fingerprints() {
        let colon = "AB:".repeat(31) + "AB";
        assert_eq!(parse_fingerprint(&colon, 32), Some(vec![0xab; 32]));
        assert_eq!(
            parse_fingerprint(&"ab".repeat(32), 32),
            Some(vec![0xab; 32])
        );
        assert_eq!(parse_fingerprint("abcd", 32), None);
        assert_eq!(parse_fingerprint(&"zz".repeat(32), 32), None);
    }

    #[test]
    fn statuses() {
        assert!(retryable_status(StatusCode::TOO_MANY_REQUESTS));
        assert!(retryable_status(StatusCode::BAD_GATEWAY));
        assert!(!retryable_status(StatusCode::NOT_FOUND));
        assert!(!retryable_status(StatusCode::UNAUTHORIZED));
    }
}
