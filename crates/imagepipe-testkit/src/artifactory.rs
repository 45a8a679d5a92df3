//! An Artifactory REST test server for one generic repository, answering as JFrog documents it
//! and, where the documentation is silent, as Artifactory's own code and JFrog's own client
//! (jfrog-client-go, "JCG") show it. Each behaviour names its source; `docs/compatibility.md`
//! lists them with the versions they were checked against.
//!
//! Configurable, because real repositories differ: the checksum policy, anonymous read, "hide
//! existence of unauthorized resources", whether the deploying token may delete (overwrite) and
//! annotate, whether multipart upload is offered, and the server version.
//!
//! Tokens: [`TOKEN`] a non-admin deployer (read, deploy, annotate, delete unless switched off),
//! [`ADMIN_TOKEN`] an administrator, [`READ_TOKEN`] read only, [`OUTSIDER_TOKEN`] a valid user
//! with no permission on the repository. Anything else is 401 "Bad credentials".

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
pub const ADMIN_TOKEN: &str = "art-admin-token-9876543210";
pub const READ_TOKEN: &str = "art-reader-token-1357924680";
pub const OUTSIDER_TOKEN: &str = "art-outsider-token-2468013579";

/// A fault answered instead of the next body upload (a PUT with a body).
#[derive(Debug, Clone)]
pub enum Fault {
    /// Read part of the body, then drop the connection.
    Drop,
    Status(u16),
    /// 429 with `Retry-After`.
    TooMany(u64),
    /// Keep the body with its first byte changed: a proxy or disk that damaged it on the way.
    Corrupt,
}

/// A fault of a multipart upload's completion, answered by the next `status` polls.
#[derive(Debug, Clone)]
pub enum MultipartFault {
    /// `RETRYABLE_ERROR` once: JCG calls `complete` again (`pollCompletionStatus`).
    Retryable,
    /// `NON_RETRYABLE_ERROR`: the upload failed.
    NonRetryable,
    /// HTTP 503 for this many polls; JCG takes a 503 on `status` for `RETRYABLE_ERROR`
    /// ("Artifactory is unavailable.").
    Unavailable(u32),
}

/// A local repository's checksum policy. JFrog KB "What are Client Checksum, Server Checksum,
/// and Checksum Policy in local repositories?".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ChecksumPolicy {
    /// "Verify against client checksums": a deploy whose checksum headers do not match is
    /// refused with 409 (the default for local repositories).
    #[default]
    Client,
    /// "Trust server generated checksums": the client's checksums are not verified; the
    /// deploy succeeds with 201 and keeps the bytes that arrived.
    Server,
}

#[derive(Debug, Clone)]
pub struct Item {
    pub bytes: Vec<u8>,
    pub sha256: String,
    pub sha1: String,
    pub md5: String,
    /// Artifactory properties are multi-valued.
    pub properties: BTreeMap<String, Vec<String>>,
}

impl Item {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self {
            sha256: hex(&sha2::Sha256::digest(&bytes)),
            sha1: hex(&sha1::Sha1::digest(&bytes)),
            md5: hex(&md5_stub(&bytes)),
            properties: BTreeMap::new(),
            bytes,
        }
    }

    /// The property's value when it has exactly one.
    pub fn prop(&self, key: &str) -> Option<&str> {
        match self.properties.get(key).map(Vec::as_slice) {
            Some([one]) => Some(one.as_str()),
            _ => None,
        }
    }
}

#[derive(Debug, Default)]
pub struct Upload {
    pub path: String,
    pub parts: BTreeMap<u64, Vec<u8>>,
    /// `PARTS`, `QUEUED`, `PROCESSING`, `FINISHED`, `RETRYABLE_ERROR`, `NON_RETRYABLE_ERROR`,
    /// `ABORTED`.
    pub status: String,
    /// The sha1 `complete` was given.
    pub sha1: String,
    /// Status polls left before the assembly finishes.
    pub polls_left: u32,
    pub checksum_token: Option<String>,
    pub completes: u32,
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
    /// Anonymous users may read (a repository vCenter PULLs from). Wrong credentials are still
    /// 401: `ArtifactoryBasicAuthenticationEntryPoint`, "Bad credentials".
    pub anonymous_read: bool,
    /// "Hide Existence of Unauthorized Resources": 404 instead of 403 for an authenticated user
    /// without permission (JFrog doc of that title).
    pub hide_unauthorized: bool,
    pub checksum_policy: ChecksumPolicy,
    /// The deploying token lacks Delete/Overwrite: a deploy onto an existing path is 403.
    pub deployer_cannot_delete: bool,
    /// The deploying token lacks Annotate: properties sent on deploy are silently dropped,
    /// Set/Update Item Properties are 403.
    pub deployer_cannot_annotate: bool,
    /// `GET /api/system/version`; default 7.84.6.
    pub version: String,
    /// Whether `/api/v1/uploads/config` offers multipart upload.
    pub multipart: bool,
    pub multipart_faults: VecDeque<MultipartFault>,
    /// Status polls a multipart assembly answers QUEUED/PROCESSING before it finishes.
    pub assembly_polls: u32,
    /// Status reads a triggered replication answers `incomplete` before it is done.
    pub replication_polls: u32,
    /// Downloads of a whole OVA (no `Range`) lose their connection: a PULL source failing.
    pub reset_full_gets: bool,
    /// Every answer waits this long first (a far-away site).
    pub delay: std::time::Duration,
    /// Push replication targets, with the status `GET /api/replication/<repo>` reports.
    pub targets: Vec<Target>,
    /// A triggered replication: the path it copies, status reads left before it is done, and
    /// the most files it may copy (a non-admin's run is capped).
    pub replicating: Option<(String, u32, usize)>,
    /// `artifactory.search.userQueryLimit` (default 1000): the most files a non-admin's
    /// replication run copies ("Pull/Push Replication", Security).
    pub user_query_limit: Option<usize>,
    /// `aql.search.query.max.limit`: the most results one AQL answer carries (trimmed beyond,
    /// with a notification); none by default, as on a self-managed Artifactory.
    pub aql_hard_limit: Option<usize>,
    pub repo: String,
    pub uploads: BTreeMap<String, Upload>,
    pub items: BTreeMap<String, Item>,
    pub faults: VecDeque<Fault>,
    /// A file another publisher deploys just before this path's next deploy is handled: a race
    /// lost between a client's look (File Info) and its deploy.
    pub sneak: Option<(String, Item)>,
    /// Paths whose deploys are refused with 409 (a repository policy).
    pub refuse: Vec<String>,
    /// Paths whose Delete Item fails with 500 (a storage fault), every time, until removed.
    pub fail_deletes: Vec<String>,
    /// Properties of folders (Set Item Properties on a folder), by folder path.
    pub folder_properties: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// `METHOD path` of every request, in order.
    pub log: Vec<String>,
    /// Body bytes received by deploys and parts.
    pub received: u64,
    /// Build-info documents received (`PUT /api/build`).
    pub builds: Vec<Value>,
    next: u64,
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

/// Who a request is.
#[derive(Debug, Clone, Copy)]
struct User {
    name: &'static str,
    admin: bool,
    read: bool,
    deploy: bool,
    delete: bool,
    annotate: bool,
}

const ANONYMOUS: User = User {
    name: "anonymous",
    admin: false,
    read: false,
    deploy: false,
    delete: false,
    annotate: false,
};

fn answer(status: u16, body: Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn empty(status: u16) -> Response {
    Response::builder()
        .status(status)
        .body(Body::empty())
        .unwrap()
}

/// `{"errors":[{"status":N,"message":"…"}]}`, as `HttpUtils.sendErrorResponse` writes it.
fn error(status: u16, message: &str) -> Response {
    answer(
        status,
        json!({ "errors": [{ "status": status, "message": message }] }),
    )
}

/// The REST resources that answer errors as plain text (AQL, Update Item Properties,
/// `AuthorizationRestException`).
fn text(status: u16, message: &str) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Body::from(message.to_string()))
        .unwrap()
}

/// 401 with the challenge `ArtifactoryBasicAuthenticationEntryPoint` sends.
fn unauthenticated() -> Response {
    Response::builder()
        .status(401)
        .header("www-authenticate", "Basic realm=\"Artifactory Realm\"")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({ "errors": [{ "status": 401, "message": "Bad credentials" }] }).to_string(),
        ))
        .unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn file_info(repo: &str, path: &str, item: &Item, original: Option<&Value>) -> Value {
    let sums = json!({ "sha1": item.sha1, "md5": item.md5, "sha256": item.sha256 });
    json!({
        "repo": repo, "path": format!("/{path}"), "created": "2026-11-22T10:00:00.000Z", "createdBy": "deployer",
        "lastModified": "2026-11-22T10:00:00.000Z", "modifiedBy": "deployer", "lastUpdated": "2026-11-22T10:00:00.000Z",
        "downloadUri": format!("http://art.test/artifactory/{repo}/{path}"), "mimeType": "application/octet-stream",
        "size": item.bytes.len().to_string(),
        "checksums": sums,
        "originalChecksums": original.cloned().unwrap_or(sums.clone()),
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

/// Percent-decoding; with `plus`, `+` is a space as well (`URLDecoder.decode`).
fn decode(s: &str, plus: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if plus && b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `PropertyNameValidator`: a key starts with a letter and holds no whitespace or
/// `)(}{][*+^$\/~`!@#%&<>;=,±§`.
fn valid_key(k: &str) -> bool {
    k.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && !k
            .chars()
            .any(|c| c.is_whitespace() || ")(}{][*+^$\\/~`!@#%&<>;=,±§".contains(c))
}

/// Matrix parameters. Artifactory 6.x (`ArtifactoryRequestBase.processMatrixParams`, 6.20
/// source) cuts the raw URI at the first `;`, splits the parameters on raw `;` and each at its
/// first `=`, and URL-decodes only the value (`+` is a space). Artifactory 7.x decodes the
/// parameters first and splits after, so an encoded `;` (`%3B`) in a value splits it, and
/// what follows is read as a key: 400 "Property key: … is invalid" (found against 7.x by the
/// audit of issue 15; no 7.x source is public).
fn matrix(params: &str, decode_first: bool) -> Result<BTreeMap<String, Vec<String>>, String> {
    let decoded;
    let params = if decode_first {
        decoded = decode(params, true);
        decoded.as_str()
    } else {
        params
    };
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for kv in params.split(';').filter(|p| !p.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        if !valid_key(k) {
            return Err(format!(
                "Property key: {k} is invalid due to Name must start with a letter and cannot contain whitespace or special characters"
            ));
        }
        let v = if decode_first {
            v.to_string()
        } else {
            decode(v, true)
        };
        out.entry(k.to_string()).or_default().push(v);
    }
    Ok(out)
}

/// Set Item Properties' list, as `KeyValueList` parses it (6.20 source): entries split on
/// unescaped `|` or `;`, trimmed, blank ones dropped; key and value on an unescaped `=` (an
/// entry with more than one is silently dropped); values on an unescaped `,`. Only `\,` `\=`
/// `\|` `\;` are unescaped: a backslash before anything else is kept.
fn key_value_list(list: &str) -> BTreeMap<String, Vec<String>> {
    fn split(s: &str, seps: &[char]) -> Vec<String> {
        let mut out = vec![String::new()];
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\\'
                && let Some(&n) = chars.peek()
                && seps.contains(&n)
            {
                out.last_mut().unwrap().push('\\');
                out.last_mut().unwrap().push(n);
                chars.next();
            } else if seps.contains(&c) {
                out.push(String::new());
            } else {
                out.last_mut().unwrap().push(c);
            }
        }
        out
    }
    let unescape = |s: &str| {
        s.replace("\\,", ",")
            .replace("\\=", "=")
            .replace("\\|", "|")
            .replace("\\;", ";")
    };
    let mut out = BTreeMap::new();
    for entry in split(list, &['|', ';']) {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let parts = split(entry, &['=']);
        match parts.as_slice() {
            [k] => {
                out.insert(unescape(k), vec![String::new()]);
            }
            [k, v] => {
                let values = split(v, &[',']).iter().map(|v| unescape(v)).collect();
                out.insert(unescape(k), values);
            }
            _ => {}
        }
    }
    out
}

/// Artifactory also returns an MD5; imagepipe never reads it, so any stable value serves.
fn md5_stub(bytes: &[u8]) -> [u8; 16] {
    let d = sha2::Sha256::digest(bytes);
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Whether a user may do `what` on the repository; the answer when not: 401 for anonymous, 403,
/// or 404 when unauthorized resources are hidden.
fn deny(s: &Server, user: &User, may: bool, what: &str, path: &str) -> Option<Response> {
    if may {
        return None;
    }
    if user.name == "anonymous" {
        return Some(unauthenticated());
    }
    if s.hide_unauthorized {
        return Some(error(404, "Resource not found"));
    }
    Some(error(
        403,
        &format!(
            "Request for '{}:{path}' is forbidden for user: '{}'; it needs {what} permission",
            s.repo, user.name
        ),
    ))
}

async fn handle(State(state): State<Shared>, req: Request) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let raw_path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    // Read the headers up front: the request's body is not Sync, so nothing may borrow the
    // request across an await.
    let (range, auth, checksum_deploy, want_sha256, want_sha1, deploy_token, host) = {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        (
            header("range"),
            header("authorization"),
            header("x-checksum-deploy").as_deref() == Some("true"),
            header("x-checksum-sha256").or_else(|| header("x-checksum").filter(|c| c.len() == 64)),
            header("x-checksum-sha1"),
            header("x-checksum-deploy-token"),
            header("host").unwrap_or_default(),
        )
    };
    let delay = {
        let mut s = state.lock().unwrap();
        s.log.push(format!("{method} {raw_path}"));
        s.delay
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let Some(rest) = raw_path.strip_prefix("/artifactory/") else {
        return error(404, "Not Found");
    };
    let rest = rest.to_string();

    // A part of a multipart upload goes to the object store through a pre-signed URL: no
    // Artifactory credentials (JCG `uploadPartsConcurrently`).
    if let Some(part) = rest.strip_prefix("objectstore/") {
        return put_part(&state, part, &query, req).await;
    }
    // The per-session multipart calls are authorised by the session token.
    if let Some(op) = rest.strip_prefix("api/v1/uploads/")
        && !matches!(op, "create" | "config")
    {
        return multipart(&state, &method, op, &query, auth.as_deref(), &host);
    }

    // Who is asking.
    let (user, anonymous_read) = {
        let s = state.lock().unwrap();
        let deployer = User {
            name: "ci-deployer",
            admin: false,
            read: true,
            deploy: true,
            delete: !s.deployer_cannot_delete,
            annotate: !s.deployer_cannot_annotate,
        };
        let user = match auth.as_deref() {
            None => ANONYMOUS,
            Some(a) if a == format!("Bearer {TOKEN}") => deployer,
            Some(a) if a == format!("Bearer {ADMIN_TOKEN}") => User {
                name: "admin",
                admin: true,
                read: true,
                deploy: true,
                delete: true,
                annotate: true,
            },
            Some(a) if a == format!("Bearer {READ_TOKEN}") => User {
                name: "reader",
                read: true,
                ..ANONYMOUS
            },
            Some(a) if a == format!("Bearer {OUTSIDER_TOKEN}") => User {
                name: "outsider",
                ..ANONYMOUS
            },
            // Wrong credentials are refused even where anonymous read is on.
            Some(_) => return unauthenticated(),
        };
        (user, s.anonymous_read)
    };
    let user = if user.name == "anonymous" && anonymous_read {
        User {
            read: true,
            ..ANONYMOUS
        }
    } else {
        user
    };
    let repo = state.lock().unwrap().repo.clone();

    match (method.clone(), rest.as_str()) {
        (Method::GET, "api/system/version") => {
            let version = state.lock().unwrap().version.clone();
            let version = if version.is_empty() {
                "7.84.6".to_string()
            } else {
                version
            };
            return answer(200, json!({ "version": version, "revision": "78406900" }));
        }
        // `GET /api/v1/uploads/config` must answer 200 (JCG `IsSupported`).
        (Method::GET, "api/v1/uploads/config") => {
            if user.name == "anonymous" {
                return unauthenticated();
            }
            let supported = state.lock().unwrap().multipart;
            return answer(200, json!({ "supported": supported }));
        }
        (Method::POST, "api/v1/uploads/create") => {
            let mut s = state.lock().unwrap();
            if let Some(r) = deny(&s, &user, user.deploy, "deploy", "") {
                return r;
            }
            let q: BTreeMap<String, String> = query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), decode(v, true)))
                .collect();
            s.next += 1;
            let token = format!("mpu-{}", s.next);
            s.uploads.insert(
                token.clone(),
                Upload {
                    path: q.get("repoPath").cloned().unwrap_or_default(),
                    status: "PARTS".into(),
                    ..Upload::default()
                },
            );
            return answer(200, json!({ "token": token }));
        }
        // Build Upload: <https://jfrog.com/help/r/jfrog-rest-apis/build-upload> (204).
        (Method::PUT, "api/build") => {
            {
                let s = state.lock().unwrap();
                if let Some(r) = deny(&s, &user, user.deploy, "deploy", "") {
                    return r;
                }
            }
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
            return empty(204);
        }
        // AQL: <https://jfrog.com/help/r/jfrog-rest-apis/artifactory-query-language>. Anonymous
        // users are refused, and a non-admin's `include` must name repo, path and name (JFrog
        // doc "Users Without Admin Privileges"; `AqlQueryValidator.assertMinimalResultFields`,
        // answered as plain text by `AqlResource`).
        (Method::POST, "api/search/aql") => {
            if user.name == "anonymous" {
                return text(
                    403,
                    "Only non-anonymous users are allowed to access AQL queries",
                );
            }
            let body = to_bytes(req.into_body(), 1 << 20).await.unwrap();
            return aql(&state, &user, &String::from_utf8_lossy(&body));
        }
        _ => {}
    }

    if let Some(rest) = rest.strip_prefix("api/replication/") {
        return replication(&state, &user, &method, rest, &repo);
    }
    if let Some(target) = rest.strip_prefix("api/metadata/") {
        let Some(path) = target.strip_prefix(&format!("{repo}/")) else {
            return text(404, "Repository not found");
        };
        let path = decode(path, false);
        let body = to_bytes(req.into_body(), 1 << 20).await.unwrap();
        return patch_metadata(&state, &user, &method, &path, &body);
    }
    if let Some(target) = rest.strip_prefix("api/storage/") {
        let Some(path) = target
            .strip_prefix(&format!("{repo}/"))
            .or_else(|| (target == repo).then_some(""))
        else {
            return error(404, "Not Found");
        };
        let path = decode(path, false);
        return storage(
            &state,
            &user,
            &method,
            path.trim_end_matches('/'),
            &query,
            &repo,
        );
    }

    // Repository paths: `<repo>/<path>[;k=v…]`. The matrix parameters start at the first raw
    // `;`; the path is decoded after the cut.
    let Some(target) = rest.strip_prefix(&format!("{repo}/")) else {
        return error(404, "Repository not found");
    };
    let (raw_item, params) = target.split_once(';').unwrap_or((target, ""));
    let item_path = decode(raw_item, false);
    let seven = {
        let s = state.lock().unwrap();
        s.version.is_empty() || !s.version.starts_with("6.")
    };
    let properties = match matrix(params, seven) {
        Ok(p) => p,
        Err(message) => return error(400, &message),
    };

    match method {
        // Ranges (`Range.java`, `ResponseWithRangeSupportHelper`, 6.20 source): an end past the
        // file is clamped; a start past it, or an end before the start, is 416.
        Method::GET | Method::HEAD => {
            let reset = state.lock().unwrap().reset_full_gets;
            if method == Method::GET && range.is_none() && reset && item_path.ends_with(".ova") {
                std::panic::resume_unwind(Box::new("connection reset by the test server"));
            }
            let s = state.lock().unwrap();
            if let Some(r) = deny(&s, &user, user.read, "read", &item_path) {
                return r;
            }
            let Some(item) = s.items.get(&item_path) else {
                return error(404, "Could not locate artifact");
            };
            let len = item.bytes.len() as u64;
            // HEAD answers the download's headers (`RequestResponseHelper.sendHeadResponse`).
            let headers = |b: axum::http::response::Builder| {
                b.header("x-checksum-sha1", &item.sha1)
                    .header("x-checksum-sha256", &item.sha256)
                    .header("x-checksum-md5", &item.md5)
                    .header("etag", &item.sha1)
                    .header("accept-ranges", "bytes")
                    .header("content-type", "application/octet-stream")
            };
            let body = |bytes: Vec<u8>| {
                if method == Method::HEAD {
                    Body::empty()
                } else {
                    Body::from(bytes)
                }
            };
            match range.as_deref().and_then(|r| r.strip_prefix("bytes=")) {
                None => headers(Response::builder().status(200))
                    .header("content-length", len)
                    .body(body(item.bytes.clone()))
                    .unwrap(),
                Some(spec) => {
                    let parsed = spec.split_once('-').and_then(|(a, b)| {
                        let a: u64 = a.parse().ok()?;
                        let b: u64 = if b.is_empty() {
                            len.saturating_sub(1)
                        } else {
                            b.parse::<u64>().ok()?.min(len.saturating_sub(1))
                        };
                        (a < len && a <= b).then_some((a, b))
                    });
                    match parsed {
                        Some((a, b)) => headers(Response::builder().status(206))
                            .header("content-range", format!("bytes {a}-{b}/{len}"))
                            .body(body(item.bytes[a as usize..=b as usize].to_vec()))
                            .unwrap(),
                        None => Response::builder()
                            .status(416)
                            .header("content-range", format!("bytes */{len}"))
                            .body(Body::empty())
                            .unwrap(),
                    }
                }
            }
        }
        Method::PUT => {
            deploy(
                &state,
                &user,
                &item_path,
                properties,
                Deploy {
                    checksum_deploy,
                    want_sha256,
                    want_sha1,
                    deploy_token,
                },
                req,
            )
            .await
        }
        // Delete Item: a folder goes with everything in it; 204, or 404 when nothing is there.
        // <https://jfrog.com/help/r/jfrog-rest-apis/delete-item>
        Method::DELETE => {
            let mut s = state.lock().unwrap();
            if let Some(r) = deny(&s, &user, user.delete, "delete", &item_path) {
                return r;
            }
            if s.fail_deletes
                .iter()
                .any(|p| p.trim_end_matches('/') == item_path.trim_end_matches('/'))
            {
                return error(500, "Injected failure");
            }
            let folder = format!("{}/", item_path.trim_end_matches('/'));
            let before = s.items.len();
            let gone = item_path.trim_end_matches('/').to_string();
            s.folder_properties
                .retain(|p, _| *p != gone && !p.starts_with(&folder));
            s.items
                .retain(|p, _| *p != item_path && !p.starts_with(&folder));
            if s.items.len() == before {
                return error(404, "Could not locate artifact");
            }
            empty(204)
        }
        _ => error(405, "Method Not Allowed"),
    }
}

/// What a deploy request says of itself.
struct Deploy {
    checksum_deploy: bool,
    want_sha256: Option<String>,
    want_sha1: Option<String>,
    deploy_token: Option<String>,
}

/// Deploy Artifact, Deploy Artifact by Checksum, and the checksum deploy that finishes a
/// multipart upload.
async fn deploy(
    state: &Shared,
    user: &User,
    path: &str,
    mut properties: BTreeMap<String, Vec<String>>,
    d: Deploy,
    req: Request,
) -> Response {
    let repo = state.lock().unwrap().repo.clone();
    {
        let mut s = state.lock().unwrap();
        if s.sneak.as_ref().is_some_and(|(p, _)| p == path)
            && let Some((p, item)) = s.sneak.take()
        {
            s.items.insert(p, item);
        }
        if let Some(r) = deny(&s, user, user.deploy, "deploy", path) {
            return r;
        }
        if s.refuse.iter().any(|r| path.ends_with(r.as_str())) {
            return error(409, "Deploy rejected by the repository's policy");
        }
        // Deploying onto an existing path replaces it, which takes Delete/Overwrite.
        if s.items.contains_key(path) && !user.delete {
            return error(
                403,
                &format!(
                    "Not enough permissions to delete/overwrite artifact '{repo}:{path}' (user '{}' needs DELETE permission).",
                    user.name
                ),
            );
        }
    }
    // Without Annotate the properties are dropped, and the deploy still succeeds
    // (`UploadServiceUtils.populateAndValidateItemPropertiesFromRequest`).
    if !user.annotate {
        properties.clear();
    }
    if d.checksum_deploy {
        let mut s = state.lock().unwrap();
        // The token of a finished multipart upload of this path (JCG `doChecksumDeploy` after
        // `completeAndPollForStatus`).
        if let Some(token) = &d.deploy_token {
            let Some(upload) = s
                .uploads
                .values()
                .find(|u| u.checksum_token.as_deref() == Some(token.as_str()))
            else {
                return error(404, "Checksum deploy failed. Invalid checksum deploy token");
            };
            if upload.path != path {
                return error(404, "Checksum deploy failed. The token is for another path");
            }
            let bytes: Vec<u8> = upload.parts.values().flatten().copied().collect();
            let mut item = Item::new(bytes);
            item.properties = properties;
            let info = file_info(&repo, path, &item, None);
            s.items.insert(path.to_string(), item);
            return answer(201, info);
        }
        let Some(sha) = d.want_sha256 else {
            return error(400, "Checksum values not provided");
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
        let info = file_info(&repo, path, &item, None);
        s.items.insert(path.to_string(), item);
        return answer(201, info);
    }
    let fault = state.lock().unwrap().faults.pop_front();
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
    if matches!(fault, Some(Fault::Corrupt))
        && let Some(b) = bytes.first_mut()
    {
        *b ^= 0xff;
    }
    let mut item = Item::new(bytes);
    item.properties = properties;
    let original = json!({
        "sha1": d.want_sha1.clone().unwrap_or_else(|| item.sha1.clone()),
        "md5": item.md5,
        "sha256": d.want_sha256.clone().unwrap_or_else(|| item.sha256.clone()),
    });
    let mismatch = d.want_sha256.as_ref().is_some_and(|w| *w != item.sha256)
        || d.want_sha1.as_ref().is_some_and(|w| *w != item.sha1);
    let mut s = state.lock().unwrap();
    // `LocalRepoChecksumPolicy.verify` fails only under the client policy; the message is the
    // one `DbStoringRepoMixin.verifyChecksum` gives (newer servers hide its details).
    if mismatch && s.checksum_policy == ChecksumPolicy::Client {
        return error(
            409,
            &format!(
                "Checksum policy 'LocalRepoChecksumPolicy: CLIENT' rejected the artifact '{repo}:{path}'. rest of the message is hidden since it reveals checksum details."
            ),
        );
    }
    s.received += item.bytes.len() as u64;
    let info = file_info(&repo, path, &item, Some(&original));
    s.items.insert(path.to_string(), item);
    answer(201, info)
}

/// File Info, Folder Info, Item Properties, Set Item Properties and Delete Item Properties.
fn storage(
    state: &Shared,
    user: &User,
    method: &Method,
    path: &str,
    query: &str,
    repo: &str,
) -> Response {
    let mut s = state.lock().unwrap();
    if let Some(r) = deny(&s, user, user.read, "read", path) {
        return r;
    }
    let folder_prefix = format!("{path}/");
    let is_folder = !path.is_empty() && s.items.keys().any(|p| p.starts_with(&folder_prefix));
    // `recursive` defaults to 1: a folder's properties go onto everything under it too.
    let recursive = !query.split('&').any(|kv| kv == "recursive=0");
    // Set Item Properties: <https://jfrog.com/help/r/jfrog-rest-apis/set-item-properties>, 204;
    // on a file or a folder ("item"), which takes Annotate.
    if *method == Method::PUT {
        let Some(list) = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("properties="))
        else {
            return error(400, "properties are required");
        };
        if let Some(r) = deny(&s, user, user.annotate, "annotate", path) {
            return r;
        }
        let list = key_value_list(&decode(list, false));
        if let Some(item) = s.items.get_mut(path) {
            item.properties.extend(list);
            return empty(204);
        }
        if !is_folder {
            return error(404, "Unable to find item");
        }
        if recursive {
            for (_, item) in s
                .items
                .iter_mut()
                .filter(|(p, _)| p.starts_with(&folder_prefix))
            {
                item.properties.extend(list.clone());
            }
        }
        s.folder_properties
            .entry(path.to_string())
            .or_default()
            .extend(list);
        return empty(204);
    }
    // Delete Item Properties: `?properties=p1[,p2]`, 204; needs Annotate.
    // <https://jfrog.com/help/r/jfrog-rest-apis/delete-item-properties>
    if *method == Method::DELETE {
        let Some(list) = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("properties="))
        else {
            return error(400, "properties are required");
        };
        if let Some(r) = deny(&s, user, user.annotate, "annotate", path) {
            return r;
        }
        let keys: Vec<String> = decode(list, false).split(',').map(str::to_string).collect();
        if let Some(item) = s.items.get_mut(path) {
            item.properties.retain(|k, _| !keys.contains(k));
            return empty(204);
        }
        if !is_folder {
            return error(404, "Unable to find item");
        }
        if recursive {
            for (_, item) in s
                .items
                .iter_mut()
                .filter(|(p, _)| p.starts_with(&folder_prefix))
            {
                item.properties.retain(|k, _| !keys.contains(k));
            }
        }
        if let Some(props) = s.folder_properties.get_mut(path) {
            props.retain(|k, _| !keys.contains(k));
        }
        return empty(204);
    }
    if *method != Method::GET {
        return error(405, "Method Not Allowed");
    }
    // Item Properties of a folder.
    if is_folder && query.starts_with("properties") {
        return match s.folder_properties.get(path).filter(|p| !p.is_empty()) {
            Some(props) => answer(200, json!({ "properties": props, "uri": "" })),
            None => error(404, "No properties could be found."),
        };
    }
    if let Some(item) = s.items.get(path) {
        // Item Properties: an item without any is 404 "No properties could be found."
        // (<https://jfrog.com/help/r/jfrog-rest-apis/item-properties>).
        if query.starts_with("properties") {
            if item.properties.is_empty() {
                return error(404, "No properties could be found.");
            }
            return answer(200, json!({ "properties": item.properties, "uri": "" }));
        }
        return answer(200, file_info(repo, path, item, None));
    }
    // Folder Info: a folder is every path that has files under it; the repository root too.
    let folder = if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    };
    let mut children: BTreeMap<String, bool> = BTreeMap::new();
    for p in s.items.keys().filter(|p| p.starts_with(&folder)) {
        let rest = &p[folder.len()..];
        match rest.split_once('/') {
            Some((dir, _)) => children.insert(dir.to_string(), true),
            None => children.insert(rest.to_string(), false),
        };
    }
    if children.is_empty() && !path.is_empty() {
        return error(404, "Unable to find item");
    }
    let children: Vec<Value> = children
        .into_iter()
        .map(|(name, folder)| json!({ "uri": format!("/{name}"), "folder": folder }))
        .collect();
    answer(
        200,
        json!({ "repo": repo, "path": format!("/{path}"), "created": "2026-11-22T10:00:00.000Z", "children": children }),
    )
}

/// Update Item Properties: `PATCH /api/metadata/<repo>/<path>` with `{"props": {…}}`, 204;
/// needs Annotate; errors in plain text (`ArtifactMetadataResource.patchMetadata`).
fn patch_metadata(
    state: &Shared,
    user: &User,
    method: &Method,
    path: &str,
    body: &[u8],
) -> Response {
    if *method != Method::PATCH {
        return text(405, "Method Not Allowed");
    }
    let mut s = state.lock().unwrap();
    if user.name == "anonymous" {
        return unauthenticated();
    }
    if !user.annotate {
        return text(
            403,
            &format!(
                "Request for '{}:{path}' is forbidden for user: '{}', You must have annotate permission on this path",
                s.repo, user.name
            ),
        );
    }
    let Ok(doc) = serde_json::from_slice::<Value>(body) else {
        return text(400, "props or stats fields required");
    };
    let Some(props) = doc["props"].as_object() else {
        return text(400, "props or stats fields required");
    };
    let Some(item) = s.items.get_mut(path) else {
        return text(400, &format!("Failed to set properties on {path}"));
    };
    for (k, v) in props {
        match v {
            Value::Null => {
                item.properties.remove(k);
            }
            Value::String(one) => {
                item.properties.insert(k.clone(), vec![one.clone()]);
            }
            Value::Array(many) if many.iter().all(Value::is_string) => {
                item.properties.insert(
                    k.clone(),
                    many.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect(),
                );
            }
            _ => {
                return text(
                    400,
                    &format!("Value:{v} is not valid, please use string or array of string"),
                );
            }
        }
    }
    empty(204)
}

fn aql(state: &Shared, user: &User, query: &str) -> Response {
    let s = state.lock().unwrap();
    let Some((find, include)) = query
        .strip_prefix("items.find(")
        .and_then(|t| t.split_once(").include("))
    else {
        return text(400, "Failed to parse query");
    };
    // `.include(…)` may be followed by `.sort({…})`, `.offset(n)` and `.limit(n)` (AQL Syntax:
    // <https://jfrog.com/help/r/jfrog-artifactory-documentation/aql-syntax>).
    let mut modifiers = include.trim_end().trim_end_matches(')').split(").");
    let include = modifiers.next().unwrap_or("");
    let (mut sort, mut offset, mut limit) = (None, 0usize, None);
    for m in modifiers {
        if let Some(v) = m.strip_prefix("sort(") {
            let Ok(v) = serde_json::from_str::<Value>(v) else {
                return text(400, "Failed to parse query");
            };
            sort = Some(v);
        } else if let Some(Ok(n)) = m.strip_prefix("offset(").map(str::parse) {
            offset = n;
        } else if let Some(Ok(n)) = m.strip_prefix("limit(").map(str::parse::<usize>) {
            limit = Some(n);
        } else {
            return text(400, "Failed to parse query");
        }
    }
    let fields: Vec<String> = include
        .split(',')
        .map(|f| f.trim().trim_matches('"').to_string())
        .collect();
    if !user.admin
        && !["repo", "path", "name"]
            .iter()
            .all(|f| fields.iter().any(|x| x == f))
    {
        return text(
            400,
            "For permissions reasons AQL demands the following fields: repo, path and name.",
        );
    }
    let Ok(criteria) = serde_json::from_str::<Value>(find) else {
        return text(400, "Failed to parse query");
    };
    // Sort, limit and offset "only work" when the include names fields of the primary domain
    // alone (<https://jfrog.com/help/r/jfrog-artifactory-documentation/display-limits-and-pagination>):
    // refused here, so that no client relies on them with properties.
    let with_properties = fields.iter().any(|f| f == "property.*");
    if with_properties && (sort.is_some() || offset > 0 || limit.is_some()) {
        return text(
            400,
            "sort, offset and limit work only with fields of the primary domain",
        );
    }
    // Items a user may not read are left out of the results.
    let readable = user.read;
    let mut results: Vec<Value> = s
        .items
        .keys()
        .filter(|_| readable)
        .filter_map(|p| {
            let (dir, name) = p.rsplit_once('/').unwrap_or(("", p));
            let ok = criteria["repo"].as_str().is_none_or(|r| r == s.repo)
                && criteria["name"].as_str().is_none_or(|n| n == name)
                && criteria["path"]["$match"]
                    .as_str()
                    .is_none_or(|m| glob(m, dir));
            ok.then(|| {
                let mut r = json!({ "repo": s.repo, "path": dir, "name": name, "type": "file" });
                // `.include("property.*")`: each item's properties as key/value pairs, one pair
                // per value.
                if with_properties {
                    let props: Vec<Value> = s.items[p]
                        .properties
                        .iter()
                        .flat_map(|(k, vs)| vs.iter().map(move |v| json!({ "key": k, "value": v })))
                        .collect();
                    r["properties"] = json!(props);
                }
                r
            })
        })
        .collect();
    // Items are kept in path order; `{"$asc": ["path", …]}` is that order, and it is the only
    // sort imagepipe asks for.
    if let Some(sort) = &sort
        && sort["$asc"].get(0).and_then(Value::as_str) != Some("path")
    {
        return text(400, "Failed to parse query");
    }
    let total = results.len();
    let mut results: Vec<Value> = results.drain(..).skip(offset).collect();
    if let Some(l) = limit {
        results.truncate(l);
    }
    // The search hard limit (`aql.search.query.max.limit`, 500,000 on SaaS): more results are
    // trimmed, with a notification
    // (<https://docs.jfrog.com/artifactory/docs/aql-performance>).
    let mut range =
        json!({ "start_pos": offset, "end_pos": offset + results.len(), "total": total });
    if let Some(hard) = s.aql_hard_limit
        && results.len() > hard
    {
        results.truncate(hard);
        range["end_pos"] = json!(offset + hard);
        range["notification"] =
            json!("AQL query reached the search hard limit, results are trimmed.");
    }
    if let Some(l) = limit {
        range["limit"] = json!(l);
    }
    answer(200, json!({ "results": results, "range": range }))
}

/// Scheduled Replication Status and Pull/Push Replication (`POST /api/replication/execute/…`),
/// which "schedules immediate content replication": the copy runs in the background, the status
/// says `incomplete` while it does, then `ok` with a new `lastCompleted`.
fn replication(state: &Shared, user: &User, method: &Method, rest: &str, repo: &str) -> Response {
    let mut s = state.lock().unwrap();
    if user.name == "anonymous" {
        return unauthenticated();
    }
    if *method == Method::GET && rest == repo {
        if let Some(r) = deny(&s, user, user.read, "read", "") {
            return r;
        }
        if let Some((prefix, left, cap)) = s.replicating.clone() {
            if left == 0 {
                let items: Vec<(String, Item)> = s
                    .items
                    .iter()
                    .filter(|(p, _)| p.starts_with(&prefix))
                    .take(cap)
                    .map(|(p, i)| (p.clone(), i.clone()))
                    .collect();
                let done = now();
                for t in &mut s.targets {
                    let mut peer = t.peer.lock().unwrap();
                    for (p, i) in &items {
                        peer.items.insert(p.clone(), i.clone());
                    }
                    t.status = "ok".into();
                    t.last_completed = Some(done.clone());
                }
                s.replicating = None;
            } else {
                s.replicating = Some((prefix, left - 1, cap));
                for t in &mut s.targets {
                    t.status = "incomplete".into();
                }
            }
        }
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
    if *method == Method::POST
        && let Some(prefix) = rest
            .strip_prefix("execute/")
            .and_then(|r| r.strip_prefix(&format!("{repo}/")))
    {
        if let Some(r) = deny(&s, user, user.read, "read", prefix) {
            return r;
        }
        if s.targets.is_empty() {
            return empty(404);
        }
        // `@RolesAllowed({ADMIN, USER})` (6.20 `ReplicationResource`): any signed-in user, but a
        // non-admin's run is capped.
        let polls = s.replication_polls.max(1);
        let cap = if user.admin {
            usize::MAX
        } else {
            s.user_query_limit.unwrap_or(1000)
        };
        s.replicating = Some((decode(prefix, false), polls, cap));
        return empty(200);
    }
    error(404, "Not Found")
}

/// The session-token calls of a multipart upload: <https://jfrog.com/help/r/jfrog-rest-apis/multipart-upload>
/// and JCG `multipartupload.go`: `urlPart` (200 `{url}`), `complete` (202), `status` (200, a
/// POST), `abort` (204).
fn multipart(
    state: &Shared,
    method: &Method,
    op: &str,
    query: &str,
    auth: Option<&str>,
    host: &str,
) -> Response {
    let token = auth.and_then(|a| a.strip_prefix("Bearer ")).unwrap_or("");
    let mut s = state.lock().unwrap();
    if !s.uploads.contains_key(token) || *method != Method::POST {
        return unauthenticated();
    }
    match op {
        "urlPart" => {
            let n = query.strip_prefix("partNumber=").unwrap_or("0");
            answer(
                200,
                json!({ "url": format!("http://{host}/artifactory/objectstore/{token}/{n}?signature=sig-{token}") }),
            )
        }
        "complete" => {
            let polls = s.assembly_polls;
            let upload = s.uploads.get_mut(token).unwrap();
            upload.sha1 = query.strip_prefix("sha1=").unwrap_or("").to_string();
            upload.status = "QUEUED".into();
            upload.polls_left = polls;
            upload.completes += 1;
            empty(202)
        }
        "status" => {
            let fault = match s.multipart_faults.front_mut() {
                Some(MultipartFault::Unavailable(n)) => {
                    *n -= 1;
                    let last = *n == 0;
                    if last {
                        s.multipart_faults.pop_front();
                    }
                    return error(503, "Service Unavailable");
                }
                Some(_) => s.multipart_faults.pop_front(),
                None => None,
            };
            let upload = s.uploads.get_mut(token).unwrap();
            match fault {
                Some(MultipartFault::Retryable) if upload.status != "FINISHED" => {
                    upload.status = "RETRYABLE_ERROR".into();
                }
                Some(MultipartFault::NonRetryable) => {
                    upload.status = "NON_RETRYABLE_ERROR".into();
                }
                _ if matches!(upload.status.as_str(), "QUEUED" | "PROCESSING") => {
                    if upload.polls_left > 0 {
                        upload.polls_left -= 1;
                        upload.status = "PROCESSING".into();
                    } else {
                        let bytes: Vec<u8> = upload.parts.values().flatten().copied().collect();
                        if hex(&sha1::Sha1::digest(&bytes)) == upload.sha1 {
                            upload.status = "FINISHED".into();
                            upload.checksum_token = Some(format!("cst-{token}"));
                        } else {
                            upload.status = "NON_RETRYABLE_ERROR".into();
                        }
                    }
                }
                _ => {}
            }
            let error = (upload.status == "NON_RETRYABLE_ERROR")
                .then_some("sha1 of the assembled file differs");
            answer(
                200,
                json!({ "status": upload.status, "progress": 100, "error": error,
                        "checksumToken": upload.checksum_token }),
            )
        }
        "abort" => {
            s.uploads.get_mut(token).unwrap().status = "ABORTED".into();
            empty(204)
        }
        _ => error(404, "Not Found"),
    }
}

/// A part PUT to its pre-signed URL: 200.
async fn put_part(state: &Shared, part: &str, query: &str, req: Request) -> Response {
    let (token, number) = part.split_once('/').unwrap_or((part, "0"));
    if query != format!("signature=sig-{token}") {
        return text(403, "SignatureDoesNotMatch");
    }
    let fault = state.lock().unwrap().faults.pop_front();
    let body = to_bytes(req.into_body(), 1 << 30).await.unwrap();
    if let Some(Fault::Status(code)) = fault {
        return error(code, "Injected failure");
    }
    let mut s = state.lock().unwrap();
    s.received += body.len() as u64;
    let Some(upload) = s.uploads.get_mut(token) else {
        return text(404, "NoSuchUpload");
    };
    upload
        .parts
        .insert(number.parse().unwrap_or(0), body.to_vec());
    empty(200)
}

#[cfg(test)]
mod tests {
    // A bench built with `--all-targets` compiles this module but drops its tests.
    #[allow(unused_imports)]
    use super::*;

    #[test]
    fn property_lists_parse_as_artifactory_parses_them() {
        let l = key_value_list(r"a=1;b=x\,y,z; c=\; ;d=4\5;e=f=g;h");
        assert_eq!(l["a"], ["1"]);
        assert_eq!(l["b"], ["x,y", "z"]);
        assert_eq!(l["c"], [";"]);
        assert_eq!(l["d"], [r"4\5"]);
        assert!(!l.contains_key("e"), "an unescaped `=` in a value drops it");
        assert_eq!(l["h"], [""]);
        let m = matrix("a=1%2B2;b=1+2;c=%3B%2C;k=v1;k=v2", false).unwrap();
        assert_eq!(m["a"], ["1+2"]);
        assert_eq!(m["b"], ["1 2"]);
        assert_eq!(m["c"], [";,"]);
        assert_eq!(m["k"], ["v1", "v2"]);
        assert!(matrix("a%2Eb=1", false).is_err(), "keys are not decoded");
        let m = matrix("a=1%2C2;b=x%2Fy", true).unwrap();
        assert_eq!((m["a"][0].as_str(), m["b"][0].as_str()), ("1,2", "x/y"));
        assert!(
            matrix("c=x%3B%20y", true).is_err(),
            "7.x splits a value at an encoded `;`"
        );
    }
}
