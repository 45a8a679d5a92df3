//! The GitHub REST API, through octocrab: the review gate ([`gate`]) and tag creation.
//!
//! Requests go through octocrab's raw calls so that GitHub's documented rules are followed
//! exactly ("Rate limits for the REST API", "Best practices for using the REST API"):
//!
//! - a rate limit (403 or 429) waits `Retry-After` seconds when it is sent, else until
//!   `x-ratelimit-reset` when `x-ratelimit-remaining` is 0, else (a secondary limit, or a bare
//!   429) at least a minute, doubling on each repeat; a 403 that is none of these is a missing
//!   permission, never retried, and named with `X-Accepted-GitHub-Permissions`;
//! - writes are paced at least a second apart;
//! - redirects (a renamed or transferred repository: 301, 302, 307, 308) are followed, on the
//!   same host only, keeping the method;
//! - pages are followed by their `Link` header, which names `/repositories/{id}/…` paths.
//!
//! Response bodies are read into small structs that take only the fields the gate needs, so
//! additions to GitHub's payloads never break them.

pub mod gate;
mod transport;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;
use octocrab::Octocrab;
use serde::Deserialize;
use serde::de::DeserializeOwned;

pub use crate::git::tags::TagObject;
use crate::http::{RetryPolicy, TlsSpec};
use crate::secret::Secret;

pub const DEFAULT_API_URL: &str = "https://api.github.com";

#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    #[error("GitHub API URL `{0}` is not valid")]
    BadUrl(String),
    #[error("{0}")]
    Setting(String),
    #[error("`{0}` is not a GitHub repository (owner/name)")]
    BadRepository(String),
    #[error(
        "cannot tell the GitHub repository: pass --repository OWNER/NAME or set tag.github_repository"
    )]
    NoRepository,
    #[error("cannot set up the GitHub client: {0}")]
    Client(String),
    #[error("{method} {path}: {message}")]
    Transport {
        method: Method,
        path: String,
        message: String,
    },
    #[error(
        "{method} {path}: 401 {message}; check the token in GITHUB_TOKEN or IMAGEPIPE_GITHUB_TOKEN"
    )]
    Unauthorized {
        method: Method,
        path: String,
        message: String,
    },
    #[error(
        "{method} {path}: {status} {message}; check the repository name and that the token may read it"
    )]
    NotFound {
        method: Method,
        path: String,
        status: u16,
        message: String,
    },
    #[error(
        "{method} {path}: 403 {message}; the token lacks a permission{needs} (see \"GitHub \
         token permissions\" in docs/tagging.md)"
    )]
    Forbidden {
        method: Method,
        path: String,
        message: String,
        /// ` (GitHub names: contents=write)` when GitHub says which.
        needs: String,
    },
    #[error("{method} {path}: {message}")]
    Redirect {
        method: Method,
        path: String,
        message: String,
    },
    #[error("{method} {path}: still rate limited after {retries} retries: {message}")]
    RateLimited {
        method: Method,
        path: String,
        retries: u32,
        message: String,
    },
    #[error("{method} {path}: {status} {message}")]
    Api {
        method: Method,
        path: String,
        status: u16,
        message: String,
    },
    #[error("{method} {path}: unexpected answer: {message}")]
    Decode {
        method: Method,
        path: String,
        message: String,
    },
}

/// A pull request, as far as the gate cares.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct PullRequest {
    pub number: u64,
    pub user: Option<User>,
    pub merged_at: Option<String>,
    pub merge_commit_sha: Option<String>,
    pub base: BranchRef,
    pub head: HeadRef,
    #[serde(default)]
    pub html_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct User {
    pub login: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct BranchRef {
    #[serde(rename = "ref")]
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct HeadRef {
    pub sha: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Review {
    pub user: Option<User>,
    pub state: String,
    pub commit_id: Option<String>,
    #[serde(default)]
    pub submitted_at: Option<String>,
}

/// A user's access to the repository, as "Get repository permissions for a user" gives it:
/// `admin`, `write` (the maintain role too), `read` (triage too) or `none`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Permission {
    pub permission: String,
    #[serde(default)]
    pub role_name: Option<String>,
}

impl Permission {
    /// Whether GitHub counts this user's review toward required reviews ("About protected
    /// branches": "approved by the required number of reviewers with write permissions").
    pub fn can_write(&self) -> bool {
        matches!(self.permission.as_str(), "admin" | "write")
    }
}

#[derive(Debug, Clone, Deserialize)]
struct GitObject {
    sha: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Clone, Deserialize)]
struct RefAnswer {
    object: GitObject,
}

#[derive(Debug, Clone, Deserialize)]
struct TagAnswer {
    sha: String,
    #[serde(default)]
    object: Option<GitObject>,
    #[serde(default)]
    message: String,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    message: Option<String>,
}

/// What creating a tag through the API did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefOutcome {
    Created,
    /// The tag already exists on the same commit.
    Exists,
    /// The tag exists on another commit.
    Conflict {
        commit: String,
    },
}

/// A client for one repository.
#[derive(Debug, Clone)]
pub struct GitHub {
    client: Octocrab,
    /// The API's host, for telling a redirect on the same host from one elsewhere.
    authority: String,
    owner: String,
    repo: String,
    retry: RetryPolicy,
    /// The least wait on a rate limit GitHub gives no time for ("wait for at least one minute
    /// before retrying"); it doubles on each repeat.
    rate_limit_wait: Duration,
    /// When the last write was sent: GitHub asks for a second between writes.
    last_write: std::sync::Arc<tokio::sync::Mutex<Option<tokio::time::Instant>>>,
}

/// How long GitHub asks to wait between writes ("Best practices for using the REST API": "If
/// you are making a large number of POST, PATCH, PUT, or DELETE requests, wait at least one
/// second between each request").
const WRITE_PACE: Duration = Duration::from_secs(1);

/// Redirects followed for one request.
const MAX_REDIRECTS: u32 = 5;

impl GitHub {
    /// A client for `repository` at `api_url`, sending through `http` (the shared factory's
    /// client, so its CA bundle, pins and proxy settings apply).
    pub fn new(
        api_url: &str,
        token: &Secret,
        repository: &str,
        retry: RetryPolicy,
        http: crate::http::HttpClient,
    ) -> Result<Self, GitHubError> {
        let (owner, repo) = repository
            .split_once('/')
            .filter(|(o, r)| !o.is_empty() && !r.is_empty() && !r.contains('/'))
            .ok_or_else(|| GitHubError::BadRepository(repository.to_string()))?;
        let base: http::Uri = api_url
            .parse()
            .map_err(|_| GitHubError::BadUrl(api_url.to_string()))?;
        let authority = base
            .authority()
            .map(|a| a.to_string())
            .filter(|_| matches!(base.scheme_str(), Some("http" | "https")))
            .ok_or_else(|| GitHubError::BadUrl(api_url.to_string()))?;
        // No redirect layer (it would turn a redirected POST into a GET) and no retry layer:
        // `call` follows GitHub's rules for both.
        let client = octocrab::OctocrabBuilder::new_empty()
            .with_service(transport::Transport {
                client: http,
                base,
                token: token.clone(),
            })
            .with_auth(octocrab::AuthState::None)
            .build()
            .map_err(|e| GitHubError::Client(e.to_string()))?;
        Ok(Self {
            client,
            authority,
            owner: owner.to_string(),
            repo: repo.to_string(),
            retry,
            rate_limit_wait: Duration::from_secs(60),
            last_write: Default::default(),
        })
    }

    /// Sets the least wait on a rate limit that names no time (default: a minute).
    pub fn with_rate_limit_wait(mut self, wait: Duration) -> Self {
        self.rate_limit_wait = wait;
        self
    }

    fn path(&self, rest: &str) -> String {
        format!("/repos/{}/{}/{rest}", self.owner, self.repo)
    }

    /// One request, following redirects on the same host; returns the answer whatever its
    /// status.
    async fn send_once(
        &self,
        method: &Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), GitHubError> {
        let transport = |message: String| GitHubError::Transport {
            method: method.clone(),
            path: path.to_string(),
            message,
        };
        let mut target = path.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let writes = *method != Method::GET;
            let mut last_write = if writes {
                let mut last = self.last_write.lock().await;
                if let Some(at) = *last {
                    tokio::time::sleep_until(at + WRITE_PACE).await;
                }
                *last = Some(tokio::time::Instant::now());
                Some(last)
            } else {
                None
            };
            let result = match *method {
                Method::GET => self.client._get(target.as_str()).await,
                Method::POST => self.client._post(target.as_str(), body).await,
                Method::DELETE => self.client._delete(target.as_str(), body).await,
                Method::PATCH => self.client._patch(target.as_str(), body).await,
                _ => unreachable!("only the methods above are used"),
            };
            if let Some(last) = last_write.as_mut() {
                **last = Some(tokio::time::Instant::now());
            }
            drop(last_write);
            let response = result.map_err(|e| transport(e.to_string()))?;
            let (parts, body) = response.into_parts();
            let bytes = body
                .collect()
                .await
                .map_err(|e| transport(e.to_string()))?
                .to_bytes()
                .to_vec();
            let redirect = matches!(parts.status.as_u16(), 301 | 302 | 307 | 308);
            let location = parts
                .headers
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok());
            match (redirect, location) {
                (true, Some(location)) => target = self.same_host(method, path, location)?,
                _ => return Ok((parts.status, parts.headers, bytes)),
            }
        }
        Err(GitHubError::Redirect {
            method: method.clone(),
            path: path.to_string(),
            message: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }

    /// A redirect's target as a path on the API's host. A redirect elsewhere is refused: the
    /// token must not follow it ("Best practices": follow redirects; credentials stay home).
    fn same_host(
        &self,
        method: &Method,
        path: &str,
        location: &str,
    ) -> Result<String, GitHubError> {
        let Some(rest) = location.split_once("://").map(|(_, r)| r) else {
            return Ok(location.to_string());
        };
        let (host, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if !host.eq_ignore_ascii_case(&self.authority) {
            return Err(GitHubError::Redirect {
                method: method.clone(),
                path: path.to_string(),
                message: format!(
                    "GitHub redirects to {location}, on another host than {}; set GITHUB_API_URL \
                     to the API that serves the repository",
                    self.authority
                ),
            });
        }
        Ok(if tail.is_empty() {
            "/".into()
        } else {
            tail.into()
        })
    }

    /// One call with retries; returns status, headers and body, whatever the status.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), GitHubError> {
        let mut attempt = 0;
        let mut limited = 0;
        loop {
            attempt += 1;
            let (status, headers, bytes) = match self.send_once(&method, path, body).await {
                Ok(answer) => answer,
                Err(GitHubError::Transport { .. }) if attempt <= self.retry.retries => {
                    tokio::time::sleep(self.retry.delay(attempt, None)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let message = message_of(&bytes);
            match retry_wait(status, &headers, &message, SystemTime::now()) {
                Retry::No => return Ok((status, headers, bytes)),
                Retry::RateLimit(wait) => {
                    limited += 1;
                    if limited > self.retry.retries {
                        return Err(GitHubError::RateLimited {
                            method,
                            path: path.to_string(),
                            retries: self.retry.retries,
                            message,
                        });
                    }
                    // A limit that names no time: a minute, then twice as long each time.
                    let wait =
                        wait.unwrap_or(self.rate_limit_wait * 2u32.saturating_pow(limited - 1));
                    tokio::time::sleep(wait).await;
                }
                Retry::Server(wait) if attempt <= self.retry.retries => {
                    tokio::time::sleep(wait.unwrap_or_else(|| self.retry.delay(attempt, None)))
                        .await;
                }
                Retry::Server(_) => return Ok((status, headers, bytes)),
            }
        }
    }

    /// A call whose success is 2xx; other statuses become errors with GitHub's message.
    async fn call_ok(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(HeaderMap, Vec<u8>), GitHubError> {
        let (status, headers, bytes) = self.call(method.clone(), path, body).await?;
        if status.is_success() {
            return Ok((headers, bytes));
        }
        Err(failure(method, path, status, &headers, &bytes))
    }

    fn decode<T: DeserializeOwned>(
        method: Method,
        path: &str,
        bytes: &[u8],
    ) -> Result<T, GitHubError> {
        serde_json::from_slice(bytes).map_err(|e| GitHubError::Decode {
            method,
            path: path.to_string(),
            message: e.to_string(),
        })
    }

    /// Every page of a list endpoint, following `Link: <…>; rel="next"`.
    async fn list<T: DeserializeOwned>(&self, first: String) -> Result<Vec<T>, GitHubError> {
        let mut out = Vec::new();
        let mut next = Some(first);
        // A hostile or broken server could link pages in a circle.
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            if pages > 1000 {
                return Err(GitHubError::Decode {
                    method: Method::GET,
                    path,
                    message: "more than 1000 pages".into(),
                });
            }
            let (headers, bytes) = self.call_ok(Method::GET, &path, None).await?;
            let mut page: Vec<T> = Self::decode(Method::GET, &path, &bytes)?;
            out.append(&mut page);
            next = headers
                .get(http::header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(crate::http::next_link);
        }
        Ok(out)
    }

    /// Pull requests that contain a commit.
    pub async fn pulls_for_commit(&self, sha: &str) -> Result<Vec<PullRequest>, GitHubError> {
        self.list(self.path(&format!("commits/{sha}/pulls?per_page=100")))
            .await
    }

    /// A pull request's reviews, oldest first.
    pub async fn reviews(&self, number: u64) -> Result<Vec<Review>, GitHubError> {
        self.list(self.path(&format!("pulls/{number}/reviews?per_page=100")))
            .await
    }

    /// Creates an annotated tag (a tag object, then its ref), or finds it already there.
    pub async fn create_tag(
        &self,
        tag: &str,
        message: &str,
        commit: &str,
    ) -> Result<RefOutcome, GitHubError> {
        // Look first: a tag object created for a tag that exists would be left dangling.
        if let Some(existing) = self.tag_commit(tag).await? {
            return Ok(if existing == commit {
                RefOutcome::Exists
            } else {
                RefOutcome::Conflict { commit: existing }
            });
        }
        let path = self.path("git/tags");
        let body = serde_json::json!({ "tag": tag, "message": message, "object": commit, "type": "commit" });
        let (_, bytes) = self.call_ok(Method::POST, &path, Some(&body)).await?;
        let object: TagAnswer = Self::decode(Method::POST, &path, &bytes)?;
        let path = self.path("git/refs");
        let body = serde_json::json!({ "ref": format!("refs/tags/{tag}"), "sha": object.sha });
        let (status, headers, bytes) = self.call(Method::POST, &path, Some(&body)).await?;
        if status.is_success() {
            return Ok(RefOutcome::Created);
        }
        // 422 "Reference already exists": another run won the race.
        if status == StatusCode::UNPROCESSABLE_ENTITY
            && let Some(existing) = self.tag_commit(tag).await?
        {
            return Ok(if existing == commit {
                RefOutcome::Exists
            } else {
                RefOutcome::Conflict { commit: existing }
            });
        }
        Err(failure(Method::POST, &path, status, &headers, &bytes))
    }

    /// The commit a tag points at, following an annotated tag's object; `None` when absent.
    pub async fn tag_commit(&self, tag: &str) -> Result<Option<String>, GitHubError> {
        Ok(match self.read_tag(tag).await? {
            TagObject::Annotated { commit, .. } | TagObject::Lightweight { commit } => Some(commit),
            TagObject::Missing => None,
        })
    }

    /// A tag as the repository on GitHub holds it: an annotated tag's commit and message, a
    /// lightweight tag's commit, or nothing.
    pub async fn read_tag(&self, tag: &str) -> Result<TagObject, GitHubError> {
        let path = self.path(&format!("git/ref/tags/{tag}"));
        let (status, headers, bytes) = self.call(Method::GET, &path, None).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(TagObject::Missing);
        }
        if !status.is_success() {
            return Err(failure(Method::GET, &path, status, &headers, &bytes));
        }
        let answer: RefAnswer = Self::decode(Method::GET, &path, &bytes)?;
        if answer.object.kind != "tag" {
            return Ok(TagObject::Lightweight {
                commit: answer.object.sha,
            });
        }
        let path = self.path(&format!("git/tags/{}", answer.object.sha));
        let (_, bytes) = self.call_ok(Method::GET, &path, None).await?;
        let tag: TagAnswer = Self::decode(Method::GET, &path, &bytes)?;
        Ok(TagObject::Annotated {
            commit: tag.object.map_or(tag.sha, |o| o.sha),
            message: tag.message,
        })
    }

    /// Deletes a tag ref (used only to undo tags this run created).
    pub async fn delete_tag(&self, tag: &str) -> Result<(), GitHubError> {
        self.call_ok(
            Method::DELETE,
            &self.path(&format!("git/refs/tags/{tag}")),
            None,
        )
        .await
        .map(|_| ())
    }

    /// A user's access to the repository ("Get repository permissions for a user", Metadata:
    /// read); `none` for a user GitHub does not know.
    pub async fn permission(&self, login: &str) -> Result<Permission, GitHubError> {
        let path = self.path(&format!("collaborators/{login}/permission"));
        let (status, headers, bytes) = self.call(Method::GET, &path, None).await?;
        match status {
            s if s.is_success() => Self::decode(Method::GET, &path, &bytes),
            StatusCode::NOT_FOUND => Ok(Permission {
                permission: "none".into(),
                role_name: None,
            }),
            s => Err(failure(Method::GET, &path, s, &headers, &bytes)),
        }
    }

    /// The active ruleset rules for a branch ("Get rules for a branch", Metadata: read, which
    /// every token has): their `type` and `parameters`.
    pub async fn branch_rules(&self, branch: &str) -> Result<Vec<BranchRule>, GitHubError> {
        let path = self.path(&format!("rules/branches/{branch}?per_page=100"));
        // A GitHub Enterprise Server before rulesets has no such endpoint.
        match self.list(path).await {
            Err(GitHubError::NotFound { .. }) => Ok(Vec::new()),
            other => other,
        }
    }

    /// A branch's classic protection ("Get branch protection"): `Ok(None)` when the branch is
    /// not protected; `Err(Forbidden)` when the token may not read it (it needs Administration:
    /// read, which a workflow's `GITHUB_TOKEN` can never have).
    pub async fn classic_protection(
        &self,
        branch: &str,
    ) -> Result<Option<ClassicProtection>, GitHubError> {
        let path = self.path(&format!("branches/{branch}/protection"));
        let (status, headers, bytes) = self.call(Method::GET, &path, None).await?;
        match status {
            s if s.is_success() => Self::decode(Method::GET, &path, &bytes).map(Some),
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(failure(Method::GET, &path, s, &headers, &bytes)),
        }
    }
}

/// One rule of "Get rules for a branch".
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct BranchRule {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub parameters: Option<serde_json::Value>,
}

/// The part of "Get branch protection" the gate reads.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct ClassicProtection {
    #[serde(default)]
    pub required_pull_request_reviews: Option<ClassicReviews>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct ClassicReviews {
    #[serde(default)]
    pub dismiss_stale_reviews: bool,
    #[serde(default)]
    pub required_approving_review_count: u32,
    #[serde(default)]
    pub require_last_push_approval: bool,
}

fn message_of(bytes: &[u8]) -> String {
    serde_json::from_slice::<ErrorBody>(bytes)
        .ok()
        .and_then(|b| b.message)
        .map(|m| crate::secret::scrub(&m).into_owned())
        .unwrap_or_else(|| crate::secret::scrub_and_cut(&String::from_utf8_lossy(bytes), 300))
}

/// The error for an answer that is not a success.
fn failure(
    method: Method,
    path: &str,
    status: StatusCode,
    headers: &HeaderMap,
    bytes: &[u8],
) -> GitHubError {
    let message = message_of(bytes);
    let path = path.to_string();
    match status {
        StatusCode::UNAUTHORIZED => GitHubError::Unauthorized {
            method,
            path,
            message,
        },
        // "Troubleshooting the REST API": "Resource not accessible by integration" means the
        // token lacks a permission, which `X-Accepted-GitHub-Permissions` names.
        StatusCode::FORBIDDEN => GitHubError::Forbidden {
            method,
            path,
            message,
            needs: headers
                .get("x-accepted-github-permissions")
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .map(|v| format!(" (GitHub names: {v})"))
                .unwrap_or_default(),
        },
        // GitHub answers 404 rather than 403 for a private repository the token may not see.
        StatusCode::NOT_FOUND => GitHubError::NotFound {
            method,
            path,
            status: 404,
            message,
        },
        s => GitHubError::Api {
            method,
            path,
            status: s.as_u16(),
            message,
        },
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// Whether and how long to wait before asking again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    No,
    /// A rate limit: the wait GitHub named, or `None` for "at least a minute".
    RateLimit(Option<Duration>),
    /// A server error: the wait it named, or `None` for the client's own backoff.
    Server(Option<Duration>),
}

/// GitHub's rules for an answer ("Rate limits for the REST API", "Exceeding the rate
/// limit"), as Octokit's throttling plugin applies them: a 403 or 429 with `retry-after` waits
/// that long; with `x-ratelimit-remaining: 0`, until `x-ratelimit-reset`; a secondary limit
/// (its message says so) or a bare 429, at least a minute. Any other 403 is a permission.
pub fn retry_wait(
    status: StatusCode,
    headers: &HeaderMap,
    message: &str,
    now: SystemTime,
) -> Retry {
    if status == StatusCode::FORBIDDEN || status == StatusCode::TOO_MANY_REQUESTS {
        if let Some(secs) = header_u64(headers, "retry-after") {
            return Retry::RateLimit(Some(Duration::from_secs(secs)));
        }
        if header_u64(headers, "x-ratelimit-remaining") == Some(0)
            && let Some(reset) = header_u64(headers, "x-ratelimit-reset")
        {
            let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
            return Retry::RateLimit(Some(Duration::from_secs(reset.saturating_sub(now) + 1)));
        }
        let secondary = message
            .to_ascii_lowercase()
            .contains("secondary rate limit");
        if secondary || status == StatusCode::TOO_MANY_REQUESTS {
            return Retry::RateLimit(None);
        }
        return Retry::No;
    }
    if status.is_server_error() {
        return Retry::Server(header_u64(headers, "retry-after").map(Duration::from_secs));
    }
    Retry::No
}

/// A client for `repository` at `GITHUB_API_URL` (GitHub Enterprise Server:
/// `https://HOST/api/v3`) or github.com, trusting what `tls` and `IMAGEPIPE_CA_BUNDLE` say.
pub fn connect(repository: &str, token: &Secret, tls: &TlsSpec) -> Result<GitHub, GitHubError> {
    let api_url =
        crate::env::var(crate::env::GITHUB_API_URL).unwrap_or_else(|| DEFAULT_API_URL.to_string());
    let http = crate::http::HttpClient::new(&crate::http::HttpOptions {
        timeout: Duration::from_secs(120),
        tls: tls.clone(),
        ..crate::http::HttpOptions::default()
    })
    .map_err(|e| GitHubError::Client(e.to_string()))?;
    let mut gh = GitHub::new(&api_url, token, repository, RetryPolicy::default(), http)?;
    if let Some(wait) = crate::env::var(crate::env::GITHUB_RATE_LIMIT_WAIT)
        .and_then(|v| humantime::parse_duration(&v).ok())
    {
        gh = gh.with_rate_limit_wait(wait);
    }
    Ok(gh)
}

/// The token for the GitHub API: `IMAGEPIPE_GITHUB_TOKEN`, else `GITHUB_TOKEN`; registered
/// as a secret when read.
pub fn token() -> Option<Secret> {
    let value = crate::env::var(crate::env::IMAGEPIPE_GITHUB_TOKEN)
        .or_else(|| crate::env::var(crate::env::GITHUB_TOKEN))?;
    Some(Secret::new(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_waits_follow_githubs_rules() {
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        let with = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, v.parse().unwrap());
            }
            h
        };
        let secondary = "You have exceeded a secondary rate limit. Please wait a few minutes.";
        assert_eq!(
            retry_wait(
                StatusCode::FORBIDDEN,
                &with(&[("retry-after", "7")]),
                secondary,
                now
            ),
            Retry::RateLimit(Some(Duration::from_secs(7)))
        );
        assert_eq!(
            retry_wait(
                StatusCode::FORBIDDEN,
                &with(&[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "1030")
                ]),
                "API rate limit exceeded",
                now
            ),
            Retry::RateLimit(Some(Duration::from_secs(31)))
        );
        // A secondary limit without `retry-after`, and a bare 429: at least a minute.
        assert_eq!(
            retry_wait(StatusCode::FORBIDDEN, &HeaderMap::new(), secondary, now),
            Retry::RateLimit(None)
        );
        assert_eq!(
            retry_wait(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), "", now),
            Retry::RateLimit(None)
        );
        // A permission 403 is not retried.
        assert_eq!(
            retry_wait(
                StatusCode::FORBIDDEN,
                &with(&[("x-ratelimit-remaining", "4000")]),
                "Resource not accessible by integration",
                now
            ),
            Retry::No
        );
        assert_eq!(
            retry_wait(StatusCode::BAD_GATEWAY, &HeaderMap::new(), "", now),
            Retry::Server(None)
        );
        assert_eq!(
            retry_wait(StatusCode::NOT_FOUND, &HeaderMap::new(), "", now),
            Retry::No
        );
    }
}
