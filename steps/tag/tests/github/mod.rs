//! A GitHub REST API test server: the endpoints imagepipe-tag uses, answering as GitHub
//! documents them, with faults to inject.
//!
//! - List pull requests associated with a commit:
//!   <https://docs.github.com/en/rest/commits/commits#list-pull-requests-associated-with-a-commit>
//! - List reviews for a pull request (chronological, paginated, `per_page` at most 100):
//!   <https://docs.github.com/en/rest/pulls/reviews#list-reviews-for-a-pull-request>
//! - Pagination with the `Link` header (`rel="next"`):
//!   <https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api>
//! - Create a tag object (201): <https://docs.github.com/en/rest/git/tags#create-a-tag-object>
//! - Get a tag: <https://docs.github.com/en/rest/git/tags#get-a-tag>
//! - Create a reference (201; 422 "Reference already exists"):
//!   <https://docs.github.com/en/rest/git/refs#create-a-reference>
//! - Get a reference (404 when absent): <https://docs.github.com/en/rest/git/refs#get-a-reference>
//! - Delete a reference (204; 422 "Reference does not exist"):
//!   <https://docs.github.com/en/rest/git/refs#delete-a-reference>
//! - 401 "Bad credentials":
//!   <https://docs.github.com/en/rest/authentication/authenticating-to-the-rest-api>
//! - Rate limits: 403 or 429 with `x-ratelimit-remaining: 0` and `x-ratelimit-reset`, or with
//!   `retry-after` for secondary limits:
//!   <https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api#exceeding-the-rate-limit>

#![allow(dead_code, unreachable_pub)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::routing::{delete, get, post};
use serde_json::{Value, json};

pub const TOKEN: &str = "ghp_test_token_0123456789";
const DOCS: &str = "https://docs.github.com/rest";

/// A fault answered instead of the next matching request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Secondary rate limit: 403 with `retry-after`.
    RetryAfter(u64),
    /// Primary rate limit: 403 with `x-ratelimit-remaining: 0`, reset in N seconds.
    Exhausted(u64),
    Status(u16),
}

#[derive(Debug, Default)]
pub struct Repo {
    pub owner: String,
    pub name: String,
    /// Pull requests by the commit they contain.
    pub pulls_by_commit: HashMap<String, Vec<Value>>,
    pub reviews: HashMap<u64, Vec<Value>>,
    /// `refs/tags/x` → (object type, sha).
    pub refs: HashMap<String, (String, String)>,
    /// Tag objects by sha.
    pub tag_objects: HashMap<String, Value>,
    pub faults: VecDeque<Fault>,
    /// `METHOD path?query` of every request, in order.
    pub log: Vec<String>,
    next_sha: u64,
}

pub type Shared = Arc<Mutex<Repo>>;

/// Starts the server on a loopback port in its own thread; returns its base URL.
pub fn start(owner: &str, name: &str) -> (String, Shared) {
    let state: Shared = Arc::new(Mutex::new(Repo {
        owner: owner.into(),
        name: name.into(),
        ..Repo::default()
    }));
    let app = Router::new()
        .route(
            "/repos/{owner}/{repo}/commits/{sha}/pulls",
            get(pulls_for_commit),
        )
        .route("/repos/{owner}/{repo}/pulls/{number}/reviews", get(reviews))
        .route("/repos/{owner}/{repo}/git/tags", post(create_tag))
        .route("/repos/{owner}/{repo}/git/tags/{sha}", get(get_tag))
        .route("/repos/{owner}/{repo}/git/refs", post(create_ref))
        .route("/repos/{owner}/{repo}/git/ref/{*name}", get(get_ref))
        .route("/repos/{owner}/{repo}/git/refs/{*name}", delete(delete_ref))
        .with_state(state.clone());
    let url = format!("http://{}", crate::server::serve(app));
    (url, state)
}

fn answer(status: u16, body: Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn error(status: u16, message: &str) -> Response {
    answer(
        status,
        json!({ "message": message, "documentation_url": DOCS, "status": status.to_string() }),
    )
}

/// Authentication, the repository, logging and faults, common to every route.
fn gate(
    state: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    owner: &str,
    repo: &str,
) -> Option<Response> {
    let mut s = state.lock().unwrap();
    s.log.push(format!("{method} {uri}"));
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {TOKEN}") && auth != format!("token {TOKEN}") {
        return Some(error(401, "Bad credentials"));
    }
    if owner != s.owner || repo != s.name {
        return Some(error(404, "Not Found"));
    }
    match s.faults.pop_front()? {
        Fault::RetryAfter(secs) => Some(
            Response::builder()
                .status(403)
                .header("retry-after", secs.to_string())
                .header("content-type", "application/json; charset=utf-8")
                .body(Body::from(json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.", "documentation_url": DOCS}).to_string()))
                .unwrap(),
        ),
        Fault::Exhausted(secs) => {
            let reset = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + secs;
            Some(
                Response::builder()
                    .status(403)
                    .header("x-ratelimit-limit", "5000")
                    .header("x-ratelimit-remaining", "0")
                    .header("x-ratelimit-reset", reset.to_string())
                    .header("content-type", "application/json; charset=utf-8")
                    .body(Body::from(json!({"message": "API rate limit exceeded for user ID 1.", "documentation_url": DOCS}).to_string()))
                    .unwrap(),
            )
        }
        Fault::Status(code) => Some(error(code, "Server Error")),
    }
}

/// One page of a list and its `Link` header.
fn page(uri: &Uri, items: &[Value], query: &HashMap<String, String>) -> Response {
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
        .header("content-type", "application/json; charset=utf-8");
    let last = items.len().div_ceil(per_page).max(1);
    if page < last {
        let base = format!("http://api.github.test{}", uri.path());
        resp = resp.header(
            "link",
            format!(r#"<{base}?per_page={per_page}&page={}>; rel="next", <{base}?per_page={per_page}&page={last}>; rel="last""#, page + 1),
        );
    }
    resp.body(Body::from(Value::Array(chunk).to_string()))
        .unwrap()
}

async fn pulls_for_commit(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = gate(&state, &method, &uri, &headers, &owner, &repo) {
        return r;
    }
    let pulls = state
        .lock()
        .unwrap()
        .pulls_by_commit
        .get(&sha)
        .cloned()
        .unwrap_or_default();
    page(&uri, &pulls, &q)
}

async fn reviews(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = gate(&state, &method, &uri, &headers, &owner, &repo) {
        return r;
    }
    let s = state.lock().unwrap();
    if !s
        .pulls_by_commit
        .values()
        .flatten()
        .any(|p| p["number"] == number)
    {
        return error(404, "Not Found");
    }
    let reviews = s.reviews.get(&number).cloned().unwrap_or_default();
    page(&uri, &reviews, &q)
}

async fn create_tag(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path((owner, repo)): Path<(String, String)>,
    body: String,
) -> Response {
    if let Some(r) = gate(&state, &method, &uri, &headers, &owner, &repo) {
        return r;
    }
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
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
    let mut s = state.lock().unwrap();
    s.next_sha += 1;
    let sha = format!("{:040x}", 0xa000_0000u64 + s.next_sha);
    let obj = json!({
        "node_id": "MDM6VGFn", "tag": tag, "sha": sha, "url": format!("/repos/{owner}/{repo}/git/tags/{sha}"),
        "message": message,
        "tagger": {"name": "imagepipe", "email": "imagepipe@localhost", "date": "2026-11-22T10:00:00Z"},
        "object": {"type": "commit", "sha": object, "url": format!("/repos/{owner}/{repo}/git/commits/{object}")},
        "verification": {"verified": false, "reason": "unsigned", "signature": null, "payload": null}
    });
    s.tag_objects.insert(sha, obj.clone());
    answer(201, obj)
}

async fn get_tag(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path((owner, repo, sha)): Path<(String, String, String)>,
) -> Response {
    if let Some(r) = gate(&state, &method, &uri, &headers, &owner, &repo) {
        return r;
    }
    match state.lock().unwrap().tag_objects.get(&sha) {
        Some(t) => answer(200, t.clone()),
        None => error(404, "Not Found"),
    }
}

async fn create_ref(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path((owner, repo)): Path<(String, String)>,
    body: String,
) -> Response {
    if let Some(r) = gate(&state, &method, &uri, &headers, &owner, &repo) {
        return r;
    }
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
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
    let mut s = state.lock().unwrap();
    if s.refs.contains_key(name) {
        return error(422, "Reference already exists");
    }
    let kind = if s.tag_objects.contains_key(sha) {
        "tag"
    } else {
        "commit"
    };
    s.refs
        .insert(name.to_string(), (kind.to_string(), sha.to_string()));
    answer(
        201,
        json!({"ref": name, "node_id": "MDM6UmVm", "url": format!("/repos/{owner}/{repo}/git/{name}"), "object": {"type": kind, "sha": sha, "url": ""}}),
    )
}

async fn get_ref(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path((owner, repo, name)): Path<(String, String, String)>,
) -> Response {
    if let Some(r) = gate(&state, &method, &uri, &headers, &owner, &repo) {
        return r;
    }
    let full = format!("refs/{name}");
    match state.lock().unwrap().refs.get(&full) {
        Some((kind, sha)) => answer(
            200,
            json!({"ref": full, "node_id": "MDM6UmVm", "url": "", "object": {"type": kind, "sha": sha, "url": ""}}),
        ),
        None => error(404, "Not Found"),
    }
}

async fn delete_ref(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path((owner, repo, name)): Path<(String, String, String)>,
) -> Response {
    if let Some(r) = gate(&state, &method, &uri, &headers, &owner, &repo) {
        return r;
    }
    match state.lock().unwrap().refs.remove(&format!("refs/{name}")) {
        Some(_) => Response::builder().status(204).body(Body::empty()).unwrap(),
        None => error(422, "Reference does not exist"),
    }
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

/// A review as GitHub returns it.
pub fn review(id: u64, user: &str, state: &str, commit: &str) -> Value {
    json!({
        "id": id, "node_id": "PRR_kw", "user": {"login": user, "id": id, "type": "User"}, "body": "",
        "state": state, "html_url": "", "pull_request_url": "", "author_association": "MEMBER",
        "submitted_at": "2026-11-20T09:30:00Z", "commit_id": commit
    })
}
