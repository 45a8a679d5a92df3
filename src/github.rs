//! The GitHub REST API, through octocrab: the review gate and tag creation.
//!
//! Requests go through octocrab's raw calls so that rate limits can be honoured exactly as
//! GitHub documents them
//! (<https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api#exceeding-the-rate-limit>):
//! wait `Retry-After` seconds when it is sent, else until `x-ratelimit-reset` when
//! `x-ratelimit-remaining` is 0. Response bodies are read into small structs that take only the
//! fields the gate needs, so additions to GitHub's payloads never break them.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;
use octocrab::Octocrab;
use serde::Deserialize;
use serde::de::DeserializeOwned;

pub use crate::git::tags::TagObject;
use crate::http::RetryPolicy;
use crate::secret::Secret;

pub const DEFAULT_API_URL: &str = "https://api.github.com";

#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    #[error("GitHub API URL `{0}` is not valid")]
    BadUrl(String),
    #[error("`{0}` is not a GitHub repository (owner/name)")]
    BadRepository(String),
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
    owner: String,
    repo: String,
    retry: RetryPolicy,
}

impl GitHub {
    pub fn new(
        api_url: &str,
        token: &Secret,
        repository: &str,
        retry: RetryPolicy,
    ) -> Result<Self, GitHubError> {
        let (owner, repo) = repository
            .split_once('/')
            .filter(|(o, r)| !o.is_empty() && !r.is_empty() && !r.contains('/'))
            .ok_or_else(|| GitHubError::BadRepository(repository.to_string()))?;
        // octocrab's default client installs no crypto provider of its own when one is set.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Octocrab::builder()
            .base_uri(api_url)
            .map_err(|_| GitHubError::BadUrl(api_url.to_string()))?
            .personal_token(token.expose().to_string())
            .add_header(
                http::header::USER_AGENT,
                crate::http::USER_AGENT.to_string(),
            )
            .add_header(
                http::header::ACCEPT,
                "application/vnd.github+json".to_string(),
            )
            .add_header(
                http::HeaderName::from_static("x-github-api-version"),
                "2022-11-28".to_string(),
            )
            .build()
            .map_err(|e| GitHubError::Client(e.to_string()))?;
        Ok(Self {
            client,
            owner: owner.to_string(),
            repo: repo.to_string(),
            retry,
        })
    }

    fn path(&self, rest: &str) -> String {
        format!("/repos/{}/{}/{rest}", self.owner, self.repo)
    }

    /// One call with retries; returns status, headers and body, whatever the status.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), GitHubError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match method {
                Method::GET => self.client._get(path).await,
                Method::POST => self.client._post(path, body).await,
                Method::DELETE => self.client._delete(path, body).await,
                Method::PATCH => self.client._patch(path, body).await,
                _ => unreachable!("only the methods above are used"),
            };
            let transport = |message: String| GitHubError::Transport {
                method: method.clone(),
                path: path.to_string(),
                message,
            };
            let response = match result {
                Ok(r) => r,
                Err(e) if attempt <= self.retry.retries => {
                    let _ = e;
                    tokio::time::sleep(self.retry.delay(attempt, None)).await;
                    continue;
                }
                Err(e) => return Err(transport(e.to_string())),
            };
            let (parts, body) = response.into_parts();
            let bytes = body
                .collect()
                .await
                .map_err(|e| transport(e.to_string()))?
                .to_bytes()
                .to_vec();
            let wait = retry_wait(parts.status, &parts.headers, SystemTime::now());
            match wait {
                Some(wait) if attempt <= self.retry.retries => {
                    tokio::time::sleep(wait.unwrap_or_else(|| self.retry.delay(attempt, None)))
                        .await;
                }
                Some(_) if is_rate_limited(parts.status, &parts.headers) => {
                    return Err(GitHubError::RateLimited {
                        method,
                        path: path.to_string(),
                        retries: self.retry.retries,
                        message: message_of(&bytes),
                    });
                }
                _ => return Ok((parts.status, parts.headers, bytes)),
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
        let message = message_of(&bytes);
        let path = path.to_string();
        Err(match status {
            StatusCode::UNAUTHORIZED => GitHubError::Unauthorized {
                method,
                path,
                message,
            },
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
        })
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
                .and_then(next_link);
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
        let (status, _, bytes) = self.call(Method::POST, &path, Some(&body)).await?;
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
        Err(GitHubError::Api {
            method: Method::POST,
            path,
            status: status.as_u16(),
            message: message_of(&bytes),
        })
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
        let (status, _, bytes) = self.call(Method::GET, &path, None).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(TagObject::Missing);
        }
        if !status.is_success() {
            let message = message_of(&bytes);
            return Err(match status {
                StatusCode::UNAUTHORIZED => GitHubError::Unauthorized {
                    method: Method::GET,
                    path,
                    message,
                },
                s => GitHubError::Api {
                    method: Method::GET,
                    path,
                    status: s.as_u16(),
                    message,
                },
            });
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
}

fn message_of(bytes: &[u8]) -> String {
    serde_json::from_slice::<ErrorBody>(bytes)
        .ok()
        .and_then(|b| b.message)
        .map(|m| crate::secret::scrub(&m).into_owned())
        .unwrap_or_else(|| crate::secret::scrub_and_cut(&String::from_utf8_lossy(bytes), 300))
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn is_rate_limited(status: StatusCode, headers: &HeaderMap) -> bool {
    (status == StatusCode::FORBIDDEN || status == StatusCode::TOO_MANY_REQUESTS)
        && (headers.contains_key(http::header::RETRY_AFTER)
            || header_u64(headers, "x-ratelimit-remaining") == Some(0))
}

/// Whether to retry, and how long GitHub asked us to wait (`Some(None)`: our own backoff).
pub fn retry_wait(
    status: StatusCode,
    headers: &HeaderMap,
    now: SystemTime,
) -> Option<Option<Duration>> {
    if is_rate_limited(status, headers) {
        if let Some(secs) = header_u64(headers, "retry-after") {
            return Some(Some(Duration::from_secs(secs)));
        }
        let reset = header_u64(headers, "x-ratelimit-reset")?;
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        return Some(Some(Duration::from_secs(reset.saturating_sub(now) + 1)));
    }
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        return Some(header_u64(headers, "retry-after").map(Duration::from_secs));
    }
    None
}

/// The `rel="next"` target of a `Link` header, as a path with query.
pub fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| {
                let url = url.trim().trim_start_matches('<').trim_end_matches('>');
                // octocrab joins relative paths to its base URI; keep path and query only.
                match url.find("://") {
                    Some(i) => url[i + 3..]
                        .find('/')
                        .map_or("/".to_string(), |j| url[i + 3 + j..].to_string()),
                    None => url.to_string(),
                }
            })
    })
}

/// The review gate for one commit: the pull request that merged it into `branch`, and its
/// reviews. `Refused` is the gate's answer; errors are failures to ask.
pub async fn review_gate(
    gh: &GitHub,
    sha: &str,
    branch: &str,
    required: u32,
) -> Result<Gate, GitHubError> {
    let pulls = gh.pulls_for_commit(sha).await?;
    let pull = match merged_pull(sha, branch, &pulls) {
        Ok(p) => p,
        Err(reason) => return Ok(Gate::Refused(reason)),
    };
    let reviews = gh.reviews(pull.number).await?;
    Ok(judge_reviews(pull, &reviews, required))
}

/// The repository the steps talk to: the flag, `tag.github_repository`, `GITHUB_REPOSITORY`,
/// then the URL of the git remote.
pub fn repository(
    explicit: Option<&str>,
    config: &crate::config::Config,
    remote: &str,
) -> Option<String> {
    explicit
        .map(str::to_string)
        .or_else(|| config.tag.github_repository.clone())
        .or_else(|| crate::env::var(crate::env::GITHUB_REPOSITORY))
        .or_else(|| crate::git::tags::github_repository(&config.dir, remote))
}

/// A client for `repository` at `GITHUB_API_URL` (GitHub Enterprise) or github.com.
pub fn connect(repository: &str, token: &Secret) -> Result<GitHub, GitHubError> {
    let api_url =
        crate::env::var(crate::env::GITHUB_API_URL).unwrap_or_else(|| DEFAULT_API_URL.to_string());
    GitHub::new(&api_url, token, repository, RetryPolicy::default())
}

/// The token for the GitHub API: `IMAGEPIPE_GITHUB_TOKEN`, else `GITHUB_TOKEN`; registered
/// as a secret when read.
pub fn token() -> Option<Secret> {
    let value = crate::env::var(crate::env::IMAGEPIPE_GITHUB_TOKEN)
        .or_else(|| crate::env::var(crate::env::GITHUB_TOKEN))?;
    Some(Secret::new(value))
}

/// The gate's verdict on one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Passed { pull: u64, approvers: Vec<String> },
    Refused(String),
}

/// Picks the pull request through which `sha` reached `branch`: merged, into that branch, and
/// whose merge commit is `sha` (true for merge commits, squash merges and the tip of a rebase
/// merge alike).
pub fn merged_pull<'a>(
    sha: &str,
    branch: &str,
    pulls: &'a [PullRequest],
) -> Result<&'a PullRequest, String> {
    if let Some(p) = pulls.iter().find(|p| {
        p.merged_at.is_some() && p.base.name == branch && p.merge_commit_sha.as_deref() == Some(sha)
    }) {
        return Ok(p);
    }
    if pulls.is_empty() {
        return Err(format!(
            "commit {sha} is in no pull request: build code reaches {branch} only through a reviewed pull request"
        ));
    }
    let reasons: Vec<String> = pulls
        .iter()
        .map(|p| {
            if p.merged_at.is_none() {
                format!("#{} is not merged", p.number)
            } else if p.base.name != branch {
                format!(
                    "#{} was merged into `{}`, not `{branch}`",
                    p.number, p.base.name
                )
            } else {
                format!(
                    "#{} was merged as {}, not as this commit",
                    p.number,
                    p.merge_commit_sha.as_deref().unwrap_or("nothing")
                )
            }
        })
        .collect();
    Err(format!(
        "commit {sha} did not reach `{branch}` through a merged pull request ({})",
        reasons.join("; ")
    ))
}

/// Judges a pull request's reviews: each reviewer's latest decisive review counts; approvals
/// must be by someone other than the author and on the pull request's head commit; a standing
/// change request refuses.
pub fn judge_reviews(pull: &PullRequest, reviews: &[Review], required: u32) -> Gate {
    let author = pull.user.as_ref().map(|u| u.login.as_str());
    let mut latest: BTreeMap<&str, &Review> = BTreeMap::new();
    for r in reviews {
        // Comments and pending reviews neither approve nor withdraw anything.
        if !matches!(
            r.state.as_str(),
            "APPROVED" | "CHANGES_REQUESTED" | "DISMISSED"
        ) {
            continue;
        }
        if let Some(u) = &r.user {
            latest.insert(u.login.as_str(), r);
        }
    }
    let mut approvers = Vec::new();
    let mut stale = Vec::new();
    let mut requested = Vec::new();
    let mut own = false;
    for (login, r) in &latest {
        match r.state.as_str() {
            "APPROVED" if Some(*login) == author => own = true,
            "APPROVED" if r.commit_id.as_deref() == Some(pull.head.sha.as_str()) => {
                approvers.push(login.to_string())
            }
            "APPROVED" => stale.push(login.to_string()),
            "CHANGES_REQUESTED" => requested.push(login.to_string()),
            _ => {}
        }
    }
    if !requested.is_empty() {
        return Gate::Refused(format!(
            "pull request #{} has changes requested by {}",
            pull.number,
            requested.join(", ")
        ));
    }
    if approvers.len() < required as usize {
        let mut why = format!(
            "pull request #{} has {} approving review(s) on its head commit, {required} required",
            pull.number,
            approvers.len()
        );
        if !stale.is_empty() {
            why.push_str(&format!(
                "; stale approvals (on an older commit) by {}",
                stale.join(", ")
            ));
        }
        if own {
            why.push_str("; the author's own approval does not count");
        }
        return Gate::Refused(why);
    }
    Gate::Passed {
        pull: pull.number,
        approvers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pull(number: u64, merged: bool, base: &str, merge_sha: &str) -> PullRequest {
        PullRequest {
            number,
            user: Some(User {
                login: "author".into(),
            }),
            merged_at: merged.then(|| "2026-11-20T10:00:00Z".into()),
            merge_commit_sha: Some(merge_sha.into()),
            base: BranchRef { name: base.into() },
            head: HeadRef { sha: "head".into() },
            html_url: None,
        }
    }

    fn review(user: &str, state: &str, commit: &str) -> Review {
        Review {
            user: Some(User { login: user.into() }),
            state: state.into(),
            commit_id: Some(commit.into()),
            submitted_at: None,
        }
    }

    #[test]
    fn pull_selection() {
        let pulls = [
            pull(1, false, "main", "abc"),
            pull(2, true, "develop", "abc"),
            pull(3, true, "main", "abc"),
        ];
        assert_eq!(merged_pull("abc", "main", &pulls).unwrap().number, 3);
        let err = merged_pull("abc", "main", &pulls[..2]).unwrap_err();
        assert!(
            err.contains("#1 is not merged; #2 was merged into `develop`, not `main`"),
            "{err}"
        );
        assert!(
            merged_pull("abc", "main", &[])
                .unwrap_err()
                .contains("is in no pull request")
        );
    }

    #[test]
    fn review_rules() {
        let p = pull(7, true, "main", "abc");
        let ok = [review("alice", "APPROVED", "head")];
        assert_eq!(
            judge_reviews(&p, &ok, 1),
            Gate::Passed {
                pull: 7,
                approvers: vec!["alice".into()]
            }
        );
        // Self-approval, stale approval, later change request, comments after approval.
        assert!(
            matches!(judge_reviews(&p, &[review("author", "APPROVED", "head")], 1), Gate::Refused(r) if r.contains("author's own approval"))
        );
        assert!(
            matches!(judge_reviews(&p, &[review("alice", "APPROVED", "old")], 1), Gate::Refused(r) if r.contains("stale approvals (on an older commit) by alice"))
        );
        let changed = [
            review("alice", "APPROVED", "head"),
            review("bob", "APPROVED", "head"),
            review("bob", "CHANGES_REQUESTED", "head"),
        ];
        assert!(
            matches!(judge_reviews(&p, &changed, 1), Gate::Refused(r) if r.contains("changes requested by bob"))
        );
        let resolved = [
            review("bob", "CHANGES_REQUESTED", "old"),
            review("bob", "APPROVED", "head"),
            review("bob", "COMMENTED", "head"),
        ];
        assert_eq!(
            judge_reviews(&p, &resolved, 1),
            Gate::Passed {
                pull: 7,
                approvers: vec!["bob".into()]
            }
        );
        assert!(
            matches!(judge_reviews(&p, &ok, 2), Gate::Refused(r) if r.contains("1 approving review(s) on its head commit, 2 required"))
        );
        let dismissed = [
            review("alice", "APPROVED", "head"),
            review("alice", "DISMISSED", "head"),
        ];
        assert!(matches!(judge_reviews(&p, &dismissed, 1), Gate::Refused(_)));
    }

    #[test]
    fn link_headers() {
        let l = r#"<https://api.github.com/repositories/1/pulls/2/reviews?per_page=100&page=2>; rel="next", <https://api.github.com/repositories/1/pulls/2/reviews?per_page=100&page=5>; rel="last""#;
        assert_eq!(
            next_link(l).as_deref(),
            Some("/repositories/1/pulls/2/reviews?per_page=100&page=2")
        );
        assert_eq!(next_link(r#"<https://x/a?page=1>; rel="prev""#), None);
    }

    #[test]
    fn rate_limit_waits() {
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        let mut h = HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(
            retry_wait(StatusCode::FORBIDDEN, &h, now),
            Some(Some(Duration::from_secs(7)))
        );
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", "0".parse().unwrap());
        h.insert("x-ratelimit-reset", "1030".parse().unwrap());
        assert_eq!(
            retry_wait(StatusCode::FORBIDDEN, &h, now),
            Some(Some(Duration::from_secs(31)))
        );
        // A plain 403 (no permission) is not retried.
        assert_eq!(
            retry_wait(StatusCode::FORBIDDEN, &HeaderMap::new(), now),
            None
        );
        assert_eq!(
            retry_wait(StatusCode::BAD_GATEWAY, &HeaderMap::new(), now),
            Some(None)
        );
        assert_eq!(
            retry_wait(StatusCode::NOT_FOUND, &HeaderMap::new(), now),
            None
        );
    }
}
