//! An Artifactory REST test server for generic repositories, answering as JFrog documents:
//!
//! - Deploy Artifact: `PUT /artifactory/<repo>/<path>[;k=v…]`, 201 with `checksums`; an
//!   `X-Checksum-Sha256` that does not match the body is rejected with 409:
//!   <https://jfrog.com/help/r/jfrog-rest-apis/deploy-artifact>
//! - Deploy Artifact by Checksum: the same PUT with `X-Checksum-Deploy: true` and no body; 201
//!   when the content is stored, 404 when it is not:
//!   <https://jfrog.com/help/r/jfrog-rest-apis/deploy-artifact-by-checksum>
//! - File Info: `GET /artifactory/api/storage/<repo>/<path>`, 404 when absent:
//!   <https://jfrog.com/help/r/jfrog-rest-apis/file-info>
//! - Item Properties: `GET /artifactory/api/storage/<repo>/<path>?properties`:
//!   <https://jfrog.com/help/r/jfrog-rest-apis/item-properties>
//! - AQL (`items.find({...}).include(...)`, the `repo`, `path` with `$match` and `name`
//!   criteria): <https://jfrog.com/help/r/jfrog-rest-apis/artifactory-query-language>
//! - Scheduled Replication Status: `GET /artifactory/api/replication/<repo>` →
//!   `{status, lastCompleted, targets:[{url, repoKey, status, lastCompleted}], repositories}`:
//!   <https://jfrog.com/help/r/jfrog-rest-apis/scheduled-replication-status>
//! - Push replication on demand: `POST /artifactory/api/replication/execute/<repo>/<path>` runs
//!   the configured push replication of that path (here: copies it into the peer servers):
//!   <https://jfrog.com/help/r/jfrog-rest-apis/pull/push-replication-deprecated>
//! - Delete Item: `DELETE /artifactory/<repo>/<path>` (folders recursively), 204:
//!   <https://jfrog.com/help/r/jfrog-rest-apis/delete-item>
//! - Ranged downloads: `Range: bytes=a-b` → 206 with `Content-Range`, 416 when unsatisfiable.
//! - Errors: `{"errors":[{"status":N,"message":"…"}]}`; 401 for bad credentials:
//!   <https://jfrog.com/help/r/jfrog-rest-apis/error-responses>

#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::Response;
use serde_json::{Value, json};
use sha2::Digest;

pub const TOKEN: &str = "art-access-token-0123456789";

/// A fault answered instead of the next body upload (a PUT with a body).
#[derive(Debug, Clone)]
pub enum Fault {
    /// Read part of the body, then drop the connection.
    Drop,
    Status(u16),
    /// 429 with `Retry-After`.
    TooMany(u64),
}

#[derive(Debug, Clone)]
pub struct Item {
    pub bytes: Vec<u8>,
    pub sha256: String,
    pub sha1: String,
    pub md5: String,
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
pub struct Upload {
    pub path: String,
    pub parts: BTreeMap<u64, Vec<u8>>,
    pub status: String,
}

/// A push-replication target: another test server.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub repo_key: String,
    pub status: String,
    pub last_completed: Option<String>,
    pub peer: Shared,
}

#[derive(Debug, Default)]
pub struct Server {
    /// Downloads need no credentials (a repository with anonymous read, as vCenter PULLs).
    pub anonymous_read: bool,
    /// Downloads of a whole OVA (no `Range`) lose their connection: a PULL source failing.
    pub reset_full_gets: bool,
    /// Every answer waits this long first (a far-away site).
    pub delay: std::time::Duration,
    /// Push replication targets, with the status `GET /api/replication/<repo>` reports.
    pub targets: Vec<Target>,
    pub repo: String,
    /// Whether `/api/v1/uploads/config` offers multipart upload.
    pub multipart: bool,
    pub uploads: BTreeMap<String, Upload>,
    pub items: BTreeMap<String, Item>,
    pub faults: VecDeque<Fault>,
    /// Paths whose deploys are refused with 409 (a repository policy).
    pub refuse: Vec<String>,
    /// `METHOD path` of every request, in order.
    pub log: Vec<String>,
    /// Body bytes received by deploys.
    pub received: u64,
    /// Build-info documents received (`PUT /api/build`).
    pub builds: Vec<Value>,
}

pub type Shared = Arc<Mutex<Server>>;

pub fn start(repo: &str) -> (String, Shared) {
    let state: Shared = Arc::new(Mutex::new(Server {
        repo: repo.into(),
        ..Server::default()
    }));
    let app = Router::new().fallback(handle).with_state(state.clone());
    let url = format!("http://{}/artifactory", crate::server::serve(app));
    (url, state)
}

fn answer(status: u16, body: Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn error(status: u16, message: &str) -> Response {
    answer(
        status,
        json!({ "errors": [{ "status": status, "message": message }] }),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn file_info(repo: &str, path: &str, item: &Item) -> Value {
    json!({
        "repo": repo, "path": format!("/{path}"), "created": "2026-11-22T10:00:00.000Z", "createdBy": "deployer",
        "lastModified": "2026-11-22T10:00:00.000Z", "modifiedBy": "deployer", "lastUpdated": "2026-11-22T10:00:00.000Z",
        "downloadUri": format!("http://art.test/artifactory/{repo}/{path}"), "mimeType": "application/octet-stream",
        "size": item.bytes.len().to_string(),
        "checksums": { "sha1": item.sha1, "md5": item.md5, "sha256": item.sha256 },
        "originalChecksums": { "sha1": item.sha1, "md5": item.md5, "sha256": item.sha256 },
        "uri": format!("http://art.test/artifactory/api/storage/{repo}/{path}")
    })
}

fn glob(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((pre, post)) => {
            s.len() >= pre.len() + post.len() && s.starts_with(pre) && s.ends_with(post)
        }
    }
}

async fn handle(State(state): State<Shared>, req: Request) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    // Read the headers up front: the request's body is not Sync, so nothing may borrow the
    // request across an await.
    let range = req
        .headers()
        .get("range")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let ranged = range.is_some();
    let (auth, checksum_deploy, want_sha256) = {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        (
            header("authorization").unwrap_or_default(),
            header("x-checksum-deploy").as_deref() == Some("true"),
            header("x-checksum-sha256"),
        )
    };
    let delay = {
        let mut s = state.lock().unwrap();
        s.log.push(format!("{method} {path}"));
        s.delay
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    // Multipart upload: the session token is the credential of the per-session calls, and a
    // part URL carries it in its query.
    // <https://jfrog.com/help/r/jfrog-rest-apis/multipart-upload> (Artifactory 7.82.2+)
    if let Some(op) = path.strip_prefix("/artifactory/api/v1/uploads/")
        && !matches!(op, "create" | "config")
    {
        return multipart(&state, &method, op, &query, &auth, req).await;
    }
    let (anonymous, reset) = {
        let s = state.lock().unwrap();
        (s.anonymous_read, s.reset_full_gets)
    };
    if method == Method::GET
        && !ranged
        && reset
        && path.ends_with(".ova")
        && !path.starts_with("/artifactory/api/")
    {
        std::panic::resume_unwind(Box::new("connection reset by the test server"));
    }
    if auth != format!("Bearer {TOKEN}") && !(anonymous && method == Method::GET) {
        return error(401, "Bad credentials");
    }
    if let Some(op) = path.strip_prefix("/artifactory/api/v1/uploads/") {
        let mut s = state.lock().unwrap();
        if op == "config" {
            return answer(200, json!({ "supported": s.multipart }));
        }
        let q: BTreeMap<String, String> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), decode(v)))
            .collect();
        let token = format!("mpu-{}", s.uploads.len() + 1);
        s.uploads.insert(
            token.clone(),
            Upload {
                path: q.get("repoPath").cloned().unwrap_or_default(),
                parts: BTreeMap::new(),
                status: "PARTS".into(),
            },
        );
        return answer(200, json!({ "token": token }));
    }
    if method == Method::PUT
        && let Some(storage) = path.strip_prefix(&format!(
            "/artifactory/api/storage/{}/",
            state.lock().unwrap().repo
        ))
        && let Some(list) = query.strip_prefix("properties=")
    {
        let list = decode(list.split('&').next().unwrap_or(""));
        let mut s = state.lock().unwrap();
        let Some(item) = s.items.get_mut(storage) else {
            return error(404, "Unable to find item");
        };
        for kv in split_unescaped(&list, ';') {
            let parts = split_unescaped(&kv, '=');
            if parts.len() == 2 {
                item.properties.insert(parts[0].clone(), parts[1].clone());
            }
        }
        return Response::builder().status(204).body(Body::empty()).unwrap();
    }
    let repo = state.lock().unwrap().repo.clone();
    let Some(rest) = path.strip_prefix("/artifactory/") else {
        return error(404, "Not Found");
    };

    // Build Upload: <https://jfrog.com/help/r/jfrog-rest-apis/build-upload> (204 No Content).
    if method == Method::PUT && rest == "api/build" {
        let body = to_bytes(req.into_body(), 1 << 20).await.unwrap();
        let Ok(doc) = serde_json::from_slice::<Value>(&body) else {
            return error(400, "Invalid build info");
        };
        if doc["name"].as_str().is_none()
            || doc["number"].as_str().is_none()
            || doc["started"].as_str().is_none()
        {
            return error(400, "Build name, number and started are required");
        }
        state.lock().unwrap().builds.push(doc);
        return Response::builder().status(204).body(Body::empty()).unwrap();
    }
    if let Some(rest) = rest.strip_prefix("api/replication/") {
        let mut s = state.lock().unwrap();
        if method == Method::GET && rest == repo {
            let targets: Vec<Value> = s
                .targets
                .iter()
                .map(|t| json!({ "url": t.url, "repoKey": t.repo_key, "status": t.status, "lastCompleted": t.last_completed }))
                .collect();
            let overall = s.targets.first().map_or("never_run", |t| t.status.as_str());
            return answer(
                200,
                json!({ "status": overall, "lastCompleted": s.targets.first().and_then(|t| t.last_completed.clone()), "targets": targets, "repositories": {} }),
            );
        }
        if method == Method::POST
            && let Some(prefix) = rest
                .strip_prefix("execute/")
                .and_then(|r| r.strip_prefix(&format!("{repo}/")))
        {
            let prefix = decode(prefix);
            let items: Vec<(String, Item)> = s
                .items
                .iter()
                .filter(|(p, _)| p.starts_with(&prefix))
                .map(|(p, i)| (p.clone(), i.clone()))
                .collect();
            for t in &mut s.targets {
                let mut peer = t.peer.lock().unwrap();
                for (p, i) in &items {
                    peer.items.insert(p.clone(), i.clone());
                }
                t.status = "ok".into();
                t.last_completed = Some("2026-11-22T10:05:00.000Z".into());
            }
            return Response::builder().status(200).body(Body::empty()).unwrap();
        }
        return error(404, "Not Found");
    }
    if method == Method::POST && rest == "api/search/aql" {
        let body = to_bytes(req.into_body(), 1 << 20).await.unwrap();
        let text = String::from_utf8_lossy(&body);
        let Some(args) = text
            .strip_prefix("items.find(")
            .and_then(|t| t.split(").include").next())
        else {
            return error(400, "Failed to parse query");
        };
        let Ok(criteria) = serde_json::from_str::<Value>(args) else {
            return error(400, "Failed to parse query");
        };
        let s = state.lock().unwrap();
        let results: Vec<Value> = s
            .items
            .keys()
            .filter_map(|p| {
                let (dir, name) = p.rsplit_once('/').unwrap_or(("", p));
                let ok = criteria["repo"].as_str().is_none_or(|r| r == repo)
                    && criteria["name"].as_str().is_none_or(|n| n == name)
                    && criteria["path"]["$match"]
                        .as_str()
                        .is_none_or(|m| glob(m, dir));
                ok.then(|| json!({ "repo": repo, "path": dir, "name": name, "type": "file" }))
            })
            .collect();
        let n = results.len();
        return answer(
            200,
            json!({ "results": results, "range": { "start_pos": 0, "end_pos": n, "total": n } }),
        );
    }

    if method == Method::GET
        && let Some(storage) = rest.strip_prefix("api/storage/")
    {
        let Some(item_path) = storage.strip_prefix(&format!("{repo}/")) else {
            return error(404, "Not Found");
        };
        let s = state.lock().unwrap();
        let Some(item) = s.items.get(item_path) else {
            return error(404, "Unable to find item");
        };
        if query.starts_with("properties") {
            let props: BTreeMap<&String, Vec<&String>> =
                item.properties.iter().map(|(k, v)| (k, vec![v])).collect();
            return answer(200, json!({ "properties": props, "uri": "" }));
        }
        return answer(200, file_info(&repo, item_path, item));
    }

    let Some(target) = rest.strip_prefix(&format!("{repo}/")) else {
        return error(404, "Repository not found");
    };
    let mut segments = target.split(';');
    let item_path = segments.next().unwrap_or("").to_string();
    let properties: BTreeMap<String, String> = segments
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect();

    match method {
        // Ranges as RFC 9110 has them: 206 with Content-Range, 416 when unsatisfiable.
        Method::GET => match state.lock().unwrap().items.get(&item_path) {
            Some(item) => match range.as_deref().and_then(|r| r.strip_prefix("bytes=")) {
                None => Response::builder()
                    .status(200)
                    .body(Body::from(item.bytes.clone()))
                    .unwrap(),
                Some(spec) => {
                    let len = item.bytes.len() as u64;
                    let parsed = spec.split_once('-').and_then(|(a, b)| {
                        let a: u64 = a.parse().ok()?;
                        let b: u64 = if b.is_empty() {
                            len - 1
                        } else {
                            b.parse().ok()?
                        };
                        (a <= b && b < len).then_some((a, b))
                    });
                    match parsed {
                        Some((a, b)) => Response::builder()
                            .status(206)
                            .header("content-range", format!("bytes {a}-{b}/{len}"))
                            .body(Body::from(item.bytes[a as usize..=b as usize].to_vec()))
                            .unwrap(),
                        None => Response::builder()
                            .status(416)
                            .header("content-range", format!("bytes */{len}"))
                            .body(Body::empty())
                            .unwrap(),
                    }
                }
            },
            None => error(404, "Not Found"),
        },
        Method::PUT if checksum_deploy => {
            let mut s = state.lock().unwrap();
            let Some(sha) = want_sha256 else {
                return error(400, "Missing checksum header");
            };
            let Some(existing) = s.items.values().find(|i| i.sha256 == sha).cloned() else {
                return error(
                    404,
                    &format!("Checksum deploy failed. No existing file with SHA-256: {sha}"),
                );
            };
            let item = Item {
                properties,
                ..existing
            };
            let info = file_info(&repo, &item_path, &item);
            s.items.insert(item_path, item);
            answer(201, info)
        }
        Method::PUT => {
            let fault = {
                let mut s = state.lock().unwrap();
                if s.refuse.iter().any(|r| item_path.ends_with(r.as_str())) {
                    return error(409, "Deploy rejected by the repository's policy");
                }
                s.faults.pop_front()
            };
            let mut body = req.into_body().into_data_stream();
            let mut bytes = Vec::new();
            use futures_util::StreamExt as _;
            while let Some(chunk) = body.next().await {
                let Ok(chunk) = chunk else {
                    return error(400, "broken body");
                };
                bytes.extend_from_slice(&chunk);
                if matches!(fault, Some(Fault::Drop)) && bytes.len() >= 1024 {
                    // Abort the connection mid-upload: the client sees it reset.
                    std::panic::resume_unwind(Box::new("connection dropped by the test server"));
                }
            }
            match fault {
                Some(Fault::Status(code)) => return error(code, "Injected failure"),
                Some(Fault::TooMany(secs)) => {
                    return Response::builder()
                        .status(429)
                        .header("retry-after", secs.to_string())
                        .header("content-type", "application/json")
                        .body(Body::from(
                            json!({"errors": [{"status": 429, "message": "Too Many Requests"}]})
                                .to_string(),
                        ))
                        .unwrap();
                }
                _ => {}
            }
            let sha256 = hex(&sha2::Sha256::digest(&bytes));
            if let Some(want) = want_sha256
                && want != sha256
            {
                return error(
                    409,
                    &format!(
                        "Checksum error: received sha256 '{want}' but actually was '{sha256}'"
                    ),
                );
            }
            let item = Item {
                sha1: hex(&sha1::Sha1::digest(&bytes)),
                md5: hex(&md5_stub(&bytes)),
                sha256,
                properties,
                bytes,
            };
            let mut s = state.lock().unwrap();
            s.received += item.bytes.len() as u64;
            let info = file_info(&repo, &item_path, &item);
            s.items.insert(item_path, item);
            answer(201, info)
        }
        // Delete Item: a folder goes with everything in it; 204, or 404 when nothing is there.
        // <https://jfrog.com/help/r/jfrog-rest-apis/delete-item>
        Method::DELETE => {
            let mut s = state.lock().unwrap();
            let folder = format!("{}/", item_path.trim_end_matches('/'));
            let before = s.items.len();
            s.items
                .retain(|p, _| *p != item_path && !p.starts_with(&folder));
            if s.items.len() == before {
                return error(404, "Could not locate artifact");
            }
            Response::builder().status(204).body(Body::empty()).unwrap()
        }
        _ => error(405, "Method Not Allowed"),
    }
}

/// Splits on `sep` unless escaped with a backslash, and removes the escapes.
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    out.last_mut().unwrap().push(n);
                }
            }
            c if c == sep => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out
}

async fn multipart(
    state: &Shared,
    method: &Method,
    op: &str,
    query: &str,
    auth: &str,
    req: Request,
) -> Response {
    let host = req
        .headers()
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if let Some(rest) = op.strip_prefix("part/") {
        let (token, number) = rest.split_once('/').unwrap_or(("", "0"));
        if query != format!("token={token}") {
            return error(401, "Bad credentials");
        }
        let fault = state.lock().unwrap().faults.pop_front();
        let body = to_bytes(req.into_body(), 1 << 30).await.unwrap();
        if let Some(Fault::Status(code)) = fault {
            return error(code, "Injected failure");
        }
        let mut s = state.lock().unwrap();
        let Some(upload) = s.uploads.get_mut(token) else {
            return error(404, "No such upload");
        };
        upload
            .parts
            .insert(number.parse().unwrap_or(0), body.to_vec());
        return Response::builder().status(200).body(Body::empty()).unwrap();
    }
    let token = auth.strip_prefix("Bearer ").unwrap_or("").to_string();
    let mut s = state.lock().unwrap();
    if !s.uploads.contains_key(&token) || *method != Method::POST {
        return error(401, "Bad credentials");
    }
    match op {
        "urlPart" => {
            let n = query.strip_prefix("partNumber=").unwrap_or("0");
            answer(
                200,
                json!({ "url": format!("http://{host}/artifactory/api/v1/uploads/part/{token}/{n}?token={token}") }),
            )
        }
        "complete" => {
            let want = query.strip_prefix("sha1=").unwrap_or("").to_string();
            let upload = s.uploads.get_mut(&token).unwrap();
            let bytes: Vec<u8> = upload.parts.values().flatten().copied().collect();
            let sha1 = hex(&sha1::Sha1::digest(&bytes));
            if sha1 != want {
                upload.status = "NON_RETRYABLE_ERROR".into();
                return Response::builder().status(202).body(Body::empty()).unwrap();
            }
            upload.status = "FINISHED".into();
            let path = upload.path.clone();
            let item = Item {
                sha256: hex(&sha2::Sha256::digest(&bytes)),
                md5: hex(&md5_stub(&bytes)),
                sha1,
                properties: BTreeMap::new(),
                bytes,
            };
            s.received += item.bytes.len() as u64;
            s.items.insert(path, item);
            Response::builder().status(202).body(Body::empty()).unwrap()
        }
        "status" => {
            let status = s.uploads[&token].status.clone();
            let error = (status == "NON_RETRYABLE_ERROR").then_some("sha1 mismatch");
            answer(
                200,
                json!({ "status": status, "progress": 100, "error": error }),
            )
        }
        "abort" => {
            s.uploads.get_mut(&token).unwrap().status = "ABORTED".into();
            Response::builder().status(204).body(Body::empty()).unwrap()
        }
        _ => error(404, "Not Found"),
    }
}

/// Artifactory also returns an MD5; imagepipe never reads it, so any stable value serves.
fn md5_stub(bytes: &[u8]) -> [u8; 16] {
    let d = sha2::Sha256::digest(bytes);
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
