//! octocrab's transport: the shared HTTP factory's client ([`crate::http::HttpClient`]), so
//! GitHub gets the same trust as every other endpoint (`IMAGEPIPE_CA_BUNDLE`, a CA bundle of its
//! own, certificate pins, proxies from the environment) and the same explanations when a
//! certificate is refused.
//!
//! octocrab hands over requests with only a path; the base URL is joined here as octocrab's own
//! `BaseUriLayer` joins it (a GitHub Enterprise Server's `/api/v3` is kept, and not doubled for
//! paths that already carry it). Each request is sent once: [`super::GitHub`] decides about
//! retries by GitHub's rules. Bodies are small JSON documents, read whole.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};

use crate::http::HttpClient;
use crate::secret::Secret;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The service octocrab is built on.
#[derive(Clone)]
pub(super) struct Transport {
    pub client: HttpClient,
    pub base: http::Uri,
    pub token: Secret,
}

impl Transport {
    /// The absolute URL of a request octocrab made.
    fn url(&self, uri: &http::Uri) -> String {
        if uri.scheme().is_some() {
            return uri.to_string();
        }
        let base = self.base.to_string();
        let base_path = self.base.path().trim_end_matches('/');
        let pq = uri.path_and_query().map_or("/", |p| p.as_str());
        let origin = base.trim_end_matches('/').trim_end_matches(base_path);
        if !base_path.is_empty() && pq.starts_with(base_path) {
            format!("{origin}{pq}")
        } else {
            format!("{origin}{base_path}{pq}")
        }
    }

    pub(super) async fn call(
        self,
        request: Request<octocrab::OctoBody>,
    ) -> Result<Response<Full<Bytes>>, BoxError> {
        let (parts, body) = request.into_parts();
        let body = body.collect().await?.to_bytes();
        let url = self.url(&parts.uri);
        let mut builder = self
            .client
            .client()
            .request(parts.method, &url)
            .headers(parts.headers)
            .bearer_auth(self.token.expose())
            .header(http::header::ACCEPT, "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28");
        if !body.is_empty() {
            builder = builder.body(body);
        }
        let resp = builder
            .send()
            .await
            .map_err(|e| crate::http::explain(&url, &e))?;
        let mut out = Response::builder().status(resp.status());
        for (name, value) in resp.headers() {
            out = out.header(name, value);
        }
        let bytes = resp.bytes().await?;
        Ok(out.body(Full::new(bytes))?)
    }
}

impl tower::Service<Request<octocrab::OctoBody>> for Transport {
    type Response = Response<Full<Bytes>>;
    type Error = BoxError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<octocrab::OctoBody>) -> Self::Future {
        Box::pin(self.clone().call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_joined_as_octocrab_joins_them() {
        let t = |base: &str| Transport {
            client: HttpClient::new(&crate::http::HttpOptions::default()).unwrap(),
            base: base.parse().unwrap(),
            token: Secret::new("t".into()),
        };
        let uri = |s: &str| s.parse::<http::Uri>().unwrap();
        assert_eq!(
            t("https://api.github.com").url(&uri("/repos/a/b/pulls?page=2")),
            "https://api.github.com/repos/a/b/pulls?page=2"
        );
        let ghes = t("https://ghe.example/api/v3");
        assert_eq!(
            ghes.url(&uri("/repos/a/b")),
            "https://ghe.example/api/v3/repos/a/b"
        );
        assert_eq!(
            ghes.url(&uri("/api/v3/repositories/9/pulls?page=2")),
            "https://ghe.example/api/v3/repositories/9/pulls?page=2"
        );
    }
}
