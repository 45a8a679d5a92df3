//! A GitHub REST API test server: the endpoints imagepipe uses, answering as GitHub documents
//! them, with GitHub's less kind behaviours as options and faults.
//!
//! - List pull requests associated with a commit, which GitHub fills in a little after a
//!   merge (`lag`; rust-lang/rust#140703, release-drafter#322):
//!   <https://docs.github.com/en/rest/commits/commits#list-pull-requests-associated-with-a-commit>
//! - List reviews for a pull request (chronological, paginated, `per_page` at most 100); a
//!   dismissal changes the review's own state to `DISMISSED` ("Dismiss a review for a pull
//!   request" returns the same id with that state):
//!   <https://docs.github.com/en/rest/pulls/reviews>
//! - Get repository permissions for a user (`admin`, `write`, `read`, `none`; on a public
//!   repository everyone reads; 404 for an unknown user):
//!   <https://docs.github.com/en/rest/collaborators/collaborators#get-repository-permissions-for-a-user>
//! - Get rules for a branch (Metadata: read; an array of rules):
//!   <https://docs.github.com/en/rest/repos/rules#get-rules-for-a-branch>
//! - Get branch protection (Administration: read, which a workflow token never has: 403
//!   "Resource not accessible by integration"; 404 "Branch not protected"):
//!   <https://docs.github.com/en/rest/branches/branch-protection#get-branch-protection>
//! - Pagination: `Link` headers name `/repositories/{id}/…` paths, with `per_page`, and a GHES
//!   server serves everything under `/api/v3`:
//!   <https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api>
//! - A renamed repository answers its old name with 301 (GET) or 307 (other methods) to
//!   `/repositories/{id}/…` ("Best practices for using the REST API", Follow redirects).
//! - Create a tag object (201; 422 when the object does not exist), Get a tag, Create a
//!   reference (201; 422 "Reference already exists"), Get a reference (404 when absent), Delete
//!   a reference (204; 422 "Reference does not exist"): <https://docs.github.com/en/rest/git>
//! - 401 "Bad credentials"; 403 "Resource not accessible by integration" with
//!   `X-Accepted-GitHub-Permissions` when the token lacks a permission ("Troubleshooting the
//!   REST API").
//! - Rate limits: 403 or 429 with `x-ratelimit-remaining: 0` and `x-ratelimit-reset`; secondary
//!   limits with or without `retry-after`; a bare 429:
//!   <https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api#exceeding-the-rate-limit>

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::Response;
use serde_json::{Value, json};

/// A token with `contents: write`, `pull-requests: read` and metadata: what a workflow's
/// `GITHUB_TOKEN` with those permissions may do.
pub const TOKEN: &str = "ghp_test_token_0123456789";
/// A token with read permissions only (`contents: read`, `pull-requests: read`).
pub const READ_TOKEN: &str = "ghp_read_only_token_97531";
/// An administrator's token, which may also read branch protection.
pub const ADMIN_TOKEN: &str = "ghp_admin_token_86420";
const DOCS: &str = "https://docs.github.com/rest";

/// A fault answered instead of the next request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Secondary rate limit: 403 with `retry-after`.
    RetryAfter(u64),
    /// Secondary rate limit: 403 with its message and no `retry-after`.
    Secondary,
    /// Primary rate limit: 403 with `x-ratelimit-remaining: 0`, reset in N seconds.
    Exhausted(u64),
    /// 429 with no headers at all.
    BareTooMany,
    Status(u16),
}

#[derive(Debug, Default)]
pub struct Repo {
    pub owner: String,
    pub name: String,
    /// The repository's id, as `/repositories/{id}` paths name it.
    pub id: u64,
    /// Served under `/api/v3`, as GitHub Enterprise Server is.
    pub ghes: bool,
    /// An old name of the repository, answered with redirects.
    pub renamed_from: Option<String>,
    /// Commits that exist in the repository (tag objects must name one).
    pub commits: HashSet<String>,
    /// Pull requests by the commit they contain.
    pub pulls_by_commit: HashMap<String, Vec<Value>>,
    /// Empty answers a commit's association gives before its pull requests show.
    pub lag: HashMap<String, u32>,
    pub reviews: HashMap<u64, Vec<Value>>,
    /// Access by login; anyone else has `read` (a public repository) or `none` (`private`).
    pub permissions: HashMap<String, String>,
    pub private: bool,
    /// Active ruleset rules for every branch.
    pub rules: Vec<Value>,
    /// Classic protection of the default branch.
    pub protection: Option<Value>,
    /// `refs/tags/x` → (object type, sha).
    pub refs: HashMap<String, (String, String)>,
    /// Tag objects by sha.
    pub tag_objects: HashMap<String, Value>,
    pub faults: VecDeque<Fault>,
    /// Deleting a ref is refused (a token that lost its permission, a protected tag).
    pub refuse_deletes: bool,
    /// `METHOD path?query` of every request, in order.
    pub log: Vec<String>,
    /// When each write (POST, DELETE) arrived.
    pub writes: Vec<std::time::Instant>,
    next_sha: u64,
}

impl Repo {
    /// Dismisses a review, as GitHub does: the same review changes its state.
    pub fn dismiss(&mut self, pull: u64, review_id: u64) {
        for r in self.reviews.get_mut(&pull).into_iter().flatten() {
            if r["id"] == review_id {
                r["state"] = json!("DISMISSED");
            }
        }
    }
}

pub type Shared = Arc<Mutex<Repo>>;

/// Starts the server on a loopback port in its own thread; returns its base URL.
pub fn start(owner: &str, name: &str) -> (String, Shared) {
    start_with(owner, name, false)
}

/// A GitHub Enterprise Server: the API under `/api/v3`; returns that URL.
pub fn start_ghes(owner: &str, name: &str) -> (String, Shared) {
    start_with(owner, name, true)
}

fn start_with(owner: &str, name: &str, ghes: bool) -> (String, Shared) {
    let state: Shared = Arc::new(Mutex::new(Repo {
        owner: owner.into(),
        name: name.into(),
        id: 4242,
        ghes,
        ..Repo::default()
    }));
    let app = Router::new().fallback(handle).with_state(state.clone());
    let addr = crate::server::serve(app);
    let url = if ghes {
        format!("http://{addr}/api/v3")
    } else {
        format!("http://{addr}")
    };
    (url, state)
}

fn answer(status: u16, body: Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8")
        .header("x-ratelimit-remaining", "4999")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn error(status: u16, message: &str) -> Response {
    answer(
        status,
        json!({ "message": message, "documentation_url": DOCS, "status": status.to_string() }),
    )
}

fn forbidden(needs: &str) -> Response {
    Response::builder()
        .status(403)
        .header("content-type", "application/json; charset=utf-8")
        .header("x-ratelimit-remaining", "4999")
        .header("x-accepted-github-permissions", needs)
        .body(Body::from(
            json!({"message": "Resource not accessible by integration", "documentation_url": DOCS, "status": "403"}).to_string(),
        ))
        .unwrap()
}

fn fault(f: Fault) -> Response {
    let secondary = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID.";
    let body = |m: &str| Body::from(json!({"message": m, "documentation_url": DOCS}).to_string());
    let b = Response::builder().header("content-type", "application/json; charset=utf-8");
    match f {
        Fault::RetryAfter(secs) => b
            .status(403)
            .header("retry-after", secs.to_string())
            .body(body(secondary))
            .unwrap(),
        Fault::Secondary => b.status(403).body(body(secondary)).unwrap(),
        Fault::Exhausted(secs) => {
            let reset = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
                + secs;
            b.status(403)
                .header("x-ratelimit-limit", "5000")
                .header("x-ratelimit-remaining", "0")
                .header("x-ratelimit-reset", reset.to_string())
                .body(body("API rate limit exceeded for user ID 1."))
                .unwrap()
        }
        Fault::BareTooMany => Response::builder().status(429).body(Body::empty()).unwrap(),
        Fault::Status(code) => error(code, "Server Error"),
    }
}

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Writer,
    Reader,
    Admin,
}

async fn handle(State(state): State<Shared>, req: Request) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let (auth, host) = {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        (header("authorization"), header("host"))
    };
    let body = to_bytes(req.into_body(), 1 << 20).await.unwrap_or_default();
    let mut s = state.lock().unwrap();
    s.log.push(format!("{method} {uri}"));
    if method != Method::GET {
        s.writes.push(std::time::Instant::now());
    }
    let mut path = uri.path().to_string();
    if s.ghes {
        match path.strip_prefix("/api/v3") {
            Some(rest) => path = rest.to_string(),
            None => return error(404, "Not Found"),
        }
    }
    let caller = match auth.strip_prefix("Bearer ").or(auth.strip_prefix("token ")) {
        Some(TOKEN) => Caller::Writer,
        Some(READ_TOKEN) => Caller::Reader,
        Some(ADMIN_TOKEN) => Caller::Admin,
        _ => return error(401, "Bad credentials"),
    };
    if let Some(f) = s.faults.pop_front() {
        return fault(f);
    }
    // The repository, named `/repos/{owner}/{name}/…` or `/repositories/{id}/…`.
    let prefix = if s.ghes { "/api/v3" } else { "" };
    let rest = if let Some(r) = path.strip_prefix(&format!("/repositories/{}/", s.id)) {
        r.to_string()
    } else if let Some(r) = path.strip_prefix(&format!("/repos/{}/{}/", s.owner, s.name)) {
        r.to_string()
    } else if let Some(old) = &s.renamed_from
        && let Some(r) = path.strip_prefix(&format!("/repos/{}/{old}/", s.owner))
    {
        let code = if method == Method::GET { 301 } else { 307 };
        let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        return Response::builder()
            .status(code)
            .header(
                "location",
                format!("http://{host}{prefix}/repositories/{}/{r}{query}", s.id),
            )
            .header("content-type", "application/json; charset=utf-8")
            .body(Body::from(
                json!({"message": "Moved Permanently", "url": format!("{prefix}/repositories/{}/{r}", s.id), "documentation_url": DOCS}).to_string(),
            ))
            .unwrap();
    } else {
        return error(404, "Not Found");
    };
    let query: HashMap<String, String> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let base = format!("http://api.github.test{prefix}/repositories/{}/", s.id);
    let parts: Vec<&str> = rest.split('/').collect();
    match (method.clone(), parts.as_slice()) {
        (Method::GET, ["commits", sha, "pulls"]) => {
            if let Some(left) = s.lag.get_mut(*sha)
                && *left > 0
            {
                *left -= 1;
                return page(&format!("{base}{rest}"), &[], &query);
            }
            let pulls = s.pulls_by_commit.get(*sha).cloned().unwrap_or_default();
            page(&format!("{base}{rest}"), &pulls, &query)
        }
        (Method::GET, ["pulls", number, "reviews"]) => {
            let Ok(number) = number.parse::<u64>() else {
                return error(404, "Not Found");
            };
            if !s
                .pulls_by_commit
                .values()
                .flatten()
                .any(|p| p["number"] == number)
            {
                return error(404, "Not Found");
            }
            let reviews = s.reviews.get(&number).cloned().unwrap_or_default();
            page(&format!("{base}{rest}"), &reviews, &query)
        }
        (Method::GET, ["collaborators", login, "permission"]) => {
            let permission = match s.permissions.get(*login) {
                Some(p) => p.clone(),
                None if s.private => "none".into(),
                None => "read".into(),
            };
            let role = match permission.as_str() {
                "write" => "write",
                "admin" => "admin",
                "read" => "read",
                _ => "none",
            };
            answer(
                200,
                json!({"permission": permission, "role_name": role,
                       "user": {"login": login, "id": 7, "type": "User",
                                "permissions": {"admin": permission == "admin", "maintain": false,
                                                "push": permission == "admin" || permission == "write",
                                                "triage": false, "pull": permission != "none"},
                                "role_name": role}}),
            )
        }
        (Method::GET, ["rules", "branches", ..]) => {
            let rules = s.rules.clone();
            page(&format!("{base}{rest}"), &rules, &query)
        }
        (Method::GET, ["branches", _branch, "protection"]) => {
            if caller != Caller::Admin {
                return forbidden("administration=read");
            }
            match &s.protection {
                Some(p) => answer(200, p.clone()),
                None => error(404, "Branch not protected"),
            }
        }
        (Method::POST, ["git", "tags"]) => {
            if caller == Caller::Reader {
                return forbidden("contents=write");
            }
            let Ok(body) = serde_json::from_slice::<Value>(&body) else {
                return error(400, "Problems parsing JSON");
            };
            let (Some(tag), Some(message), Some(object), Some("commit")) = (
                body["tag"].as_str(),
                body["message"].as_str(),
                body["object"].as_str(),
                body["type"].as_str(),
            ) else {
                return error(422, "Invalid request.");
            };
            if !s.commits.contains(object) && !s.pulls_by_commit.contains_key(object) {
                return error(422, "Object does not exist");
            }
            s.next_sha += 1;
            let sha = format!("{:040x}", 0xa000_0000u64 + s.next_sha);
            let obj = json!({
                "node_id": "MDM6VGFn", "tag": tag, "sha": sha, "url": format!("{base}git/tags/{sha}"),
                "message": message,
                "tagger": {"name": "imagepipe", "email": "imagepipe@localhost", "date": "2026-11-22T10:00:00Z"},
                "object": {"type": "commit", "sha": object, "url": format!("{base}git/commits/{object}")},
                "verification": {"verified": false, "reason": "unsigned", "signature": null, "payload": null}
            });
            s.tag_objects.insert(sha, obj.clone());
            answer(201, obj)
        }
        (Method::GET, ["git", "tags", sha]) => match s.tag_objects.get(*sha) {
            Some(t) => answer(200, t.clone()),
            None => error(404, "Not Found"),
        },
        (Method::POST, ["git", "refs"]) => {
            if caller == Caller::Reader {
                return forbidden("contents=write");
            }
            let Ok(body) = serde_json::from_slice::<Value>(&body) else {
                return error(400, "Problems parsing JSON");
            };
            let (Some(name), Some(sha)) = (body["ref"].as_str(), body["sha"].as_str()) else {
                return error(422, "Invalid request.");
            };
            if !name.starts_with("refs/") || name.matches('/').count() < 2 {
                return error(
                    422,
                    "Reference name must start with 'refs/' and have at least two slashes.",
                );
            }
            if s.refs.contains_key(name) {
                return error(422, "Reference already exists");
            }
            let kind = if s.tag_objects.contains_key(sha) {
                "tag"
            } else if s.commits.contains(sha) || s.pulls_by_commit.contains_key(sha) {
                "commit"
            } else {
                return error(422, "Object does not exist");
            };
            s.refs
                .insert(name.to_string(), (kind.to_string(), sha.to_string()));
            answer(
                201,
                json!({"ref": name, "node_id": "MDM6UmVm", "url": format!("{base}git/{name}"), "object": {"type": kind, "sha": sha, "url": ""}}),
            )
        }
        (Method::GET, ["git", "ref", ..]) => {
            let full = format!("refs/{}", parts[2..].join("/"));
            match s.refs.get(&full) {
                Some((kind, sha)) => answer(
                    200,
                    json!({"ref": full, "node_id": "MDM6UmVm", "url": "", "object": {"type": kind, "sha": sha, "url": ""}}),
                ),
                None => error(404, "Not Found"),
            }
        }
        (Method::DELETE, ["git", "refs", ..]) => {
            if caller == Caller::Reader || s.refuse_deletes {
                return forbidden("contents=write");
            }
            match s.refs.remove(&format!("refs/{}", parts[2..].join("/"))) {
                Some(_) => Response::builder().status(204).body(Body::empty()).unwrap(),
                None => error(422, "Reference does not exist"),
            }
        }
        _ => error(404, "Not Found"),
    }
}

/// One page of a list and its `Link` header, in GitHub's `/repositories/{id}` form.
fn page(url: &str, items: &[Value], query: &HashMap<String, String>) -> Response {
    let per_page: usize = query
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page: usize = query
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let start = (page - 1) * per_page;
    let chunk: Vec<Value> = items.iter().skip(start).take(per_page).cloned().collect();
    let mut resp = Response::builder()
        .status(200)
        .header("content-type", "application/json; charset=utf-8")
        .header("x-ratelimit-remaining", "4999");
    let last = items.len().div_ceil(per_page).max(1);
    if page < last {
        resp = resp.header(
            "link",
            format!(
                r#"<{url}?per_page={per_page}&page={}>; rel="next", <{url}?per_page={per_page}&page={last}>; rel="last""#,
                page + 1
            ),
        );
    }
    resp.body(Body::from(Value::Array(chunk).to_string()))
        .unwrap()
}

/// A pull request as GitHub returns it (the fields that matter, plus some that do not).
pub fn pull(
    number: u64,
    author: &str,
    merged: bool,
    base: &str,
    merge_sha: &str,
    head_sha: &str,
) -> Value {
    json!({
        "url": format!("https://api.github.test/repos/acme/images/pulls/{number}"),
        "id": 1000 + number, "node_id": "PR_kw", "number": number, "state": if merged { "closed" } else { "open" },
        "locked": false, "title": format!("change {number}"), "user": {"login": author, "id": 1, "type": "User"},
        "body": null, "labels": [], "created_at": "2026-11-20T09:00:00Z", "updated_at": "2026-11-20T10:00:00Z",
        "closed_at": if merged { json!("2026-11-20T10:00:00Z") } else { Value::Null },
        "merged_at": if merged { json!("2026-11-20T10:00:00Z") } else { Value::Null },
        "merge_commit_sha": merge_sha, "draft": false,
        "head": {"label": "acme:feature", "ref": "feature", "sha": head_sha, "user": {"login": author}},
        "base": {"label": format!("acme:{base}"), "ref": base, "sha": "0000000000000000000000000000000000000000"},
        "author_association": "MEMBER", "auto_merge": null, "active_lock_reason": null,
        "html_url": format!("https://github.test/acme/images/pull/{number}")
    })
}

/// A review as GitHub returns it. `author_association` is what GitHub says, which is not
/// what counts: a read-only collaborator is `COLLABORATOR` too.
pub fn review(id: u64, user: &str, state: &str, commit: &str) -> Value {
    json!({
        "id": id, "node_id": "PRR_kw", "user": {"login": user, "id": id, "type": "User"}, "body": "",
        "state": state, "html_url": "", "pull_request_url": "", "author_association": "COLLABORATOR",
        "submitted_at": "2026-11-20T09:30:00Z", "commit_id": commit
    })
}

/// A ruleset's pull-request rule, as "Get rules for a branch" lists it.
pub fn pull_request_rule(required: u32, dismiss_stale: bool, last_push: bool) -> Value {
    json!({
        "type": "pull_request", "ruleset_source_type": "Repository", "ruleset_source": "acme/images",
        "ruleset_id": 42,
        "parameters": {"required_approving_review_count": required,
                       "dismiss_stale_reviews_on_push": dismiss_stale,
                       "require_code_owner_review": false,
                       "require_last_push_approval": last_push,
                       "required_review_thread_resolution": false,
                       "allowed_merge_methods": ["merge", "squash", "rebase"]}
    })
}
