//! A server that refuses every request and echoes it back in its error, as some proxies and
//! misconfigured servers do: the request line and every header, credentials included, placed
//! so that a client that cuts the message at 300 characters cuts it inside the credentials.
//! The answers go round 400, 404 and 500, as JSON error documents (Artifactory's
//! `{"errors":[…]}`) and as plain text.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;

/// Starts the server; returns its base URL (`http://127.0.0.1:PORT`).
pub fn start() -> String {
    let n = Arc::new(AtomicUsize::new(0));
    let app = Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap| {
        let n = n.clone();
        async move {
            let i = n.fetch_add(1, Ordering::SeqCst);
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            // The credentials start 10 characters before a 300-character cut.
            let lead = "echo: ".to_string() + &"x".repeat(280) + "auth ";
            let mut echo = format!("{lead}{auth} | {method} {uri}");
            for (k, v) in &headers {
                echo.push_str(&format!(" | {k}: {}", v.to_str().unwrap_or("?")));
            }
            let (status, json) = [(400, true), (404, false), (500, true)][i % 3];
            let body = if json {
                serde_json::json!({ "errors": [{ "status": status, "message": echo }] }).to_string()
            } else {
                echo
            };
            Response::builder()
                .status(status)
                .header(
                    "content-type",
                    if json {
                        "application/json"
                    } else {
                        "text/plain"
                    },
                )
                .body(Body::from(body))
                .unwrap()
        }
    });
    format!("http://{}", crate::server::serve(app))
}

/// Every form of a secret that must appear in no sink: the value, its base64 as basic
/// authentication carries it (with `user`), and every prefix of 8 or more characters.
pub fn forbidden(secret: &str, user: Option<&str>) -> Vec<String> {
    use base64::Engine as _;
    let mut out: Vec<String> = (8..=secret.len())
        .map(|n| secret[..n].to_string())
        .collect();
    if let Some(user) = user {
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"));
        out.extend((8..=b64.len()).map(|n| b64[..n].to_string()));
    }
    out
}

/// Fails naming the sink and the form when any sink holds any forbidden form. Lines GitHub
/// consumes to mask a value (`::add-mask::`) are how masking works, and are skipped.
pub fn assert_clean(sinks: &[(&str, String)], forbidden: &[String]) {
    for (name, text) in sinks {
        for line in text.lines().filter(|l| !l.starts_with("::add-mask::")) {
            for f in forbidden {
                assert!(!line.contains(f.as_str()), "{name} holds `{f}`:\n{line}");
            }
        }
    }
}
