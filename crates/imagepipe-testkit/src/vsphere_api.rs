//! A vCenter 7.0U2+ content library test server speaking the `/api` generation as vCenter
//! documents it, for what govmomi's simulator does not have: the `/api` paths, update-session
//! rules, a real validation step, PULL over https, subscribed libraries, and faults.
//!
//! Each behaviour cites its source. "Spec" is the vSphere 7.0.2 OpenAPI description generated
//! from a live vCenter (`content.json` of ansible-collections/vmware_rest_code_generator,
//! `api_specifications/7.0.2`); "Broadcom" is a page of the vSphere Automation API reference,
//! <https://developer.broadcom.com/xapis/vsphere-automation-api/latest/>, named by its title;
//! "govmomi" is vmware/govmomi's `vapi/simulator/simulator.go`, where the documents are silent.
//!
//! - Sessions: `POST /api/session` (basic auth) → 201 `"<id>"`; `DELETE /api/session`; every
//!   other call needs `vmware-api-session-id`, else 401 `UNAUTHENTICATED` (Broadcom "Create
//!   Session").
//! - Errors: `{"error_type": "NOT_FOUND", "messages": [{"id", "default_message", "args"}]}`
//!   (spec `VapiStdErrors*`: `error_type`, `messages`).
//! - What it does not model: other users (every session is the one test user's), session
//!   expiry, the VALIDATING file status (the documents list it but never say when a file is in
//!   it), MD5 checksums, and a type adapter beyond the OVF's file references.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::Response;
use serde_json::{Value, json};
pub const USER: &str = "administrator@vsphere.local";
pub const PASSWORD: &str = "vc-password-0123";
/// The local library imports go to, and its id.
pub const LIBRARY: &str = "images";
pub const LIBRARY_ID: &str = "lib-1";

#[derive(Debug, Clone)]
pub struct Library {
    pub name: String,
    /// `LOCAL` or `SUBSCRIBED` (spec `ContentLibraryModelLibraryType`).
    pub kind: String,
    /// For a subscribed library: the library it subscribes to.
    pub publisher: Option<String>,
    pub last_sync_time: Option<String>,
    /// A sync is under way ("Calling this operation on a library that is already in the
    /// process of synchronizing will have no effect": spec, subscribed-library `sync`).
    pub syncing: bool,
}

#[derive(Debug, Default, Clone)]
pub struct Item {
    pub library: String,
    pub name: String,
    pub description: String,
    /// File name → bytes.
    pub files: BTreeMap<String, Vec<u8>>,
    pub content_version: u32,
    /// For an item of a subscribed library: the published item it copies.
    pub source_id: Option<String>,
}

#[derive(Debug, Default, Clone)]
pub struct UpdateSession {
    pub item: String,
    /// `ACTIVE`, `DONE`, `ERROR` or `CANCELED` (spec `ContentLibraryItemUpdateSessionModelState`).
    pub state: String,
    pub error: Option<String>,
    pub files: BTreeMap<String, SessionFile>,
    /// `complete` was asked while PULL files were still transferring: the session becomes DONE
    /// when they are (spec, `complete`: "If the server is pulling the content, the call may
    /// return before the changes become visible").
    pub completing: bool,
}

/// A file of an update session.
#[derive(Debug, Default, Clone)]
pub struct SessionFile {
    /// `PUSH` or `PULL`.
    pub source_type: String,
    /// As declared when added (0: not given, as for PULL).
    pub size: u64,
    /// From `checksum_info`: algorithm and hex digest.
    pub checksum: Option<(String, String)>,
    pub bytes: Option<Vec<u8>>,
    /// `WAITING_FOR_TRANSFER`, `TRANSFERRING`, `READY` or `ERROR` (spec
    /// `ContentLibraryItemTransferStatus`).
    pub status: String,
    pub error: Option<String>,
}

#[derive(Debug, Default)]
pub struct Server {
    pub base: String,
    pub sessions: Vec<String>,
    pub libraries: BTreeMap<String, Library>,
    pub items: BTreeMap<String, Item>,
    pub updates: BTreeMap<String, UpdateSession>,
    pub logins: u32,
    /// The API session expires when the first upload begins (the upload answers 401).
    pub expire_on_upload: bool,
    /// `validate` reports this file invalid with this message.
    pub invalid: Option<(String, String)>,
    /// The next N calls answer 503.
    pub unavailable: u32,
    /// Each upload takes at least this long (a slow link), so keep-alive has to happen.
    pub upload_delay: Duration,
    /// Each file add takes this long (a slow vCenter), so a test can kill a step while its
    /// update session is ACTIVE.
    pub add_delay: Duration,
    /// The next N item creates are carried out and then answered 500, as when the answer is
    /// lost on the way (the client's HTTP layer retries 5xx).
    pub item_create_lost: u32,
    /// The same for update-session creates.
    pub session_create_lost: u32,
    /// `fail` answers 400 INVALID_ARGUMENT (a fault: vCenter documents 400 only for a
    /// session that is not ACTIVE).
    pub refuse_fail: bool,
    /// vSphere 9: files are added with `POST …/file?action=add` and the plain `POST …/file`
    /// answers 404 (reported by saltext-vcf's 1.0.0 changelog; not in Broadcom's reference).
    /// Off: the vSphere 7.0.2 spec, where only `POST …/file` exists.
    pub vsphere9: bool,
    /// How long a subscribed library's sync takes.
    pub sync_delay: Duration,
    /// The client token each create carried (`Client-Token` header, or the 7.0.2 spec's
    /// `client_token` query parameter), as `(path, token)`, in order.
    pub create_tokens: Vec<(String, Option<String>)>,
    /// Tokens seen: `(path, token)` → the id that create made.
    tokens: BTreeMap<(String, String), String>,
    pub log: Vec<String>,
    /// VMs deployed from items (`/api/vcenter/ovf/library-item/{id}?action=deploy`): id →
    /// (name, power state `POWERED_OFF` or `POWERED_ON`).
    pub vms: BTreeMap<String, (String, String)>,
    /// VM deletes fail (500), as on a host that has lost its datastore: a VM is left behind.
    pub fail_vm_delete: bool,
    next: u32,
}

impl Server {
    /// Adds a library subscribed to the local library `images`; returns its id.
    pub fn add_subscribed(&mut self, name: &str) -> String {
        let id = next_id(self, "sub");
        self.libraries.insert(
            id.clone(),
            Library {
                name: name.into(),
                kind: "SUBSCRIBED".into(),
                publisher: Some(LIBRARY_ID.into()),
                last_sync_time: None,
                syncing: false,
            },
        );
        id
    }

    /// The items of a library, as `(id, item)`.
    pub fn items_of(&self, library: &str) -> Vec<(&String, &Item)> {
        self.items
            .iter()
            .filter(|(_, i)| i.library == library)
            .collect()
    }

    /// Leaves an ACTIVE update session on `item`, as a killed run does; returns its id.
    pub fn leave_active_session(&mut self, item: &str) -> String {
        let u = next_id(self, "update");
        self.updates.insert(
            u.clone(),
            UpdateSession {
                item: item.into(),
                state: "ACTIVE".into(),
                ..UpdateSession::default()
            },
        );
        u
    }
}

pub type Shared = Arc<Mutex<Server>>;

pub fn start() -> (String, Shared) {
    let state: Shared = Arc::default();
    {
        let mut s = state.lock().unwrap();
        s.sync_delay = Duration::from_millis(300);
        s.libraries.insert(
            LIBRARY_ID.into(),
            Library {
                name: LIBRARY.into(),
                kind: "LOCAL".into(),
                publisher: None,
                last_sync_time: None,
                syncing: false,
            },
        );
    }
    let app = Router::new().fallback(handle).with_state(state.clone());
    let url = format!("http://{}", crate::server::serve(app));
    state.lock().unwrap().base = url.clone();
    (url, state)
}

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

fn error(status: u16, kind: &str, message: &str) -> Response {
    answer(
        status,
        json!({ "error_type": kind, "messages": [{ "id": "vapi.test", "default_message": message, "args": [] }] }),
    )
}

/// A localizable message (spec `VapiStdLocalizableMessage`).
fn message(text: &str) -> Value {
    json!({ "id": "com.vmware.vdcs.cls-main.test", "default_message": text, "args": [] })
}

fn next_id(s: &mut Server, prefix: &str) -> String {
    s.next += 1;
    format!("{prefix}-{}", s.next)
}

fn param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        kv.strip_prefix(key)
            .and_then(|v| v.strip_prefix('='))
            .map(String::from)
    })
}

/// Whether a client token is a UUID: "The token should be a universally unique identifier"
/// (Broadcom "Content Library Item UpdateSession create"); `/rest` documents
/// `invalid_argument` "if the clientToken does not conform to the UUID format" (Broadcom
/// v7.0U2 "Create Item Update Session").
fn is_uuid(t: &str) -> bool {
    t.len() == 36
        && t.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The digest of `bytes` in `algorithm` (spec `ContentLibraryItemFileChecksumAlgorithm`), as
/// lower-case hex; `None` for an algorithm this double does not compute (MD5).
fn digest(algorithm: &str, bytes: &[u8]) -> Option<String> {
    use sha1::Digest as _;
    Some(match algorithm {
        "SHA1" => hex(&sha1::Sha1::digest(bytes)),
        "SHA256" => hex(&<sha2::Sha256 as sha2::Digest>::digest(bytes)),
        "SHA512" => hex(&<sha2::Sha512 as sha2::Digest>::digest(bytes)),
        _ => return None,
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Why received bytes are not the file that was declared, in govmomi's words for a PULL
/// (`pullSource`: "checksum mismatch: file=…, alg=…, actual=…, expected=…").
fn received_wrong(name: &str, f: &SessionFile, bytes: &[u8]) -> Option<String> {
    if f.size != 0 && bytes.len() as u64 != f.size {
        return Some(format!(
            "size mismatch: file={name}, actual={}, expected={}",
            bytes.len(),
            f.size
        ));
    }
    let (alg, want) = f.checksum.as_ref()?;
    let actual = digest(alg, bytes)?;
    (!actual.eq_ignore_ascii_case(want)).then(|| {
        format!("checksum mismatch: file={name}, alg={alg}, actual={actual}, expected={want}")
    })
}

/// The file info of an update session's file (spec `ContentLibraryItemUpdatesessionFileInfo`).
fn file_info(base: &str, u: &str, name: &str, f: &SessionFile) -> Value {
    let mut info = json!({
        "name": name, "source_type": f.source_type, "status": f.status,
        "bytes_transferred": f.bytes.as_ref().map_or(0, Vec::len),
        "keep_in_storage": !name.ends_with(".mf"),
    });
    if f.status == "READY" {
        // "guaranteed to be set when the server has completely received the file"
        info["size"] = json!(f.bytes.as_ref().map_or(0, Vec::len));
    }
    if f.source_type == "PUSH" {
        info["upload_endpoint"] = json!({ "uri": format!("{base}/upload/{u}/{name}") });
    }
    if let Some((alg, sum)) = &f.checksum {
        info["checksum_info"] = json!({ "algorithm": alg, "checksum": sum });
    }
    if let Some(e) = &f.error {
        info["error_message"] = message(e);
    }
    info
}

/// Completes a session whose files are all received: the item takes its files and a new
/// content version, and the session is DONE.
fn finish(s: &mut Server, u: &str) {
    let Some(up) = s.updates.get_mut(u) else {
        return;
    };
    up.state = "DONE".into();
    up.completing = false;
    let (item, files) = (up.item.clone(), up.files.clone());
    if let Some(i) = s.items.get_mut(&item) {
        i.files = files
            .into_iter()
            .filter_map(|(n, f)| Some((n, f.bytes?)))
            .collect();
        i.content_version += 1;
    }
}

/// A create's reply: 201 and the id, unless the test made the answer get lost after the
/// server acted.
fn created(id: &str, lost: bool) -> Response {
    if lost {
        return error(
            500,
            "ERROR",
            "The create was carried out, but its answer was lost (test fault)",
        );
    }
    answer(201, json!(id))
}

async fn handle(State(state): State<Shared>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    // Read the headers up front: the request's body is not Sync, so nothing may borrow the
    // request across an await.
    let (auth, sid, token) = {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        (
            header("authorization"),
            header("vmware-api-session-id"),
            // Broadcom: the `Client-Token` header; the 7.0.2 spec: the `client_token` query.
            header("client-token").or_else(|| param(&query, "client_token")),
        )
    };
    {
        let mut s = state.lock().unwrap();
        s.log.push(format!(
            "{method} {path}{}{query}",
            if query.is_empty() { "" } else { "?" }
        ));
        if s.unavailable > 0 {
            s.unavailable -= 1;
            return error(503, "SERVICE_UNAVAILABLE", "The service is starting");
        }
    }
    if path == "/api/session" {
        let mut s = state.lock().unwrap();
        if method == Method::DELETE {
            s.sessions.retain(|x| Some(x) != sid.as_ref());
            return empty(204);
        }
        use base64_engine::encode;
        if auth != Some(format!("Basic {}", encode(&format!("{USER}:{PASSWORD}")))) {
            return error(401, "UNAUTHENTICATED", "Authentication required.");
        }
        let sid = next_id(&mut s, "session");
        s.sessions.push(sid.clone());
        s.logins += 1;
        return answer(201, json!(sid));
    }
    let authorised = sid
        .as_ref()
        .is_some_and(|x| state.lock().unwrap().sessions.contains(x));

    if let Some(rest) = path.strip_prefix("/upload/") {
        let (usid, name) = rest.split_once('/').unwrap_or((rest, ""));
        let (usid, name) = (usid.to_string(), name.to_string());
        {
            let mut s = state.lock().unwrap();
            if s.expire_on_upload {
                s.expire_on_upload = false;
                s.sessions.clear();
                return error(401, "UNAUTHENTICATED", "The session has expired.");
            }
            if !authorised {
                return error(401, "UNAUTHENTICATED", "Authentication required.");
            }
            let Some(up) = s.updates.get_mut(&usid) else {
                return error(404, "NOT_FOUND", "No such update session");
            };
            if up.state != "ACTIVE" {
                return error(
                    400,
                    "NOT_ALLOWED_IN_CURRENT_STATE",
                    &format!("The update session is {}", up.state),
                );
            }
            let Some(file) = up.files.get_mut(&name) else {
                return error(404, "NOT_FOUND", "No such file in the update session");
            };
            file.status = "TRANSFERRING".into();
        }
        let body = to_bytes(req.into_body(), 1 << 30).await;
        let delay = state.lock().unwrap().upload_delay;
        tokio::time::sleep(delay).await;
        let mut s = state.lock().unwrap();
        let Some(up) = s.updates.get_mut(&usid) else {
            return error(404, "NOT_FOUND", "No such update session");
        };
        if up.state != "ACTIVE" {
            // Cancelled meanwhile: "Any content that has been already received will be
            // scheduled for deletion" (spec, `cancel`).
            return error(400, "NOT_ALLOWED_IN_CURRENT_STATE", "The session has ended");
        }
        let Some(file) = up.files.get_mut(&name) else {
            return error(404, "NOT_FOUND", "No such file in the update session");
        };
        match body {
            Err(e) => {
                // A transfer that breaks puts the file and the session in ERROR, as in
                // govmomi issue #3319's live vCenter ("Error transferring file disk.vmdk to
                // ds:///…. Reason: IO error during transfer of …").
                let m = format!(
                    "Error transferring file {name}. Reason: IO error during transfer ({e})"
                );
                file.status = "ERROR".into();
                file.error = Some(m.clone());
                up.state = "ERROR".into();
                up.error = Some(m);
                return error(400, "INVALID_ARGUMENT", "The transfer broke");
            }
            Ok(body) => {
                // "If specified, the server will verify the checksum once the file is
                // received. If there is a mismatch, the upload will fail." (spec `AddSpec`
                // `checksum_info`); the file is in ERROR and validate/complete refuse it.
                let wrong = received_wrong(&name, file, &body);
                file.bytes = Some(body.to_vec());
                match wrong {
                    Some(m) => {
                        file.status = "ERROR".into();
                        file.error = Some(m);
                    }
                    None => file.status = "READY".into(),
                }
            }
        }
        return empty(200);
    }
    if !authorised {
        return error(401, "UNAUTHENTICATED", "Authentication required.");
    }
    let body: Value = {
        let bytes = to_bytes(req.into_body(), 1 << 20).await.unwrap_or_default();
        if bytes.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(_) => return error(400, "INVALID_ARGUMENT", "The body is not JSON"),
            }
        }
    };
    let action = param(&query, "action").unwrap_or_default();
    let parts: Vec<String> = path
        .trim_start_matches("/api/content/")
        .split('/')
        .map(String::from)
        .collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();

    // A slow vCenter: the add answers late, with nothing locked meanwhile.
    if method == Method::POST
        && matches!(
            parts.as_slice(),
            ["library", "item", "update-session", _, "file"]
        )
        && (action.is_empty() || action == "add")
    {
        let delay = state.lock().unwrap().add_delay;
        tokio::time::sleep(delay).await;
    }

    let mut s = state.lock().unwrap();
    // Creates are idempotent with a client token (Broadcom "Content Library Item create" and
    // "Content Library Item UpdateSession create": "This token can be used to guarantee
    // idempotent creation. If not specified creation is not idempotent."): a replay answers
    // with the id the first create made, whatever has happened since.
    let is_create = method == Method::POST
        && action.is_empty()
        && matches!(
            parts.as_slice(),
            ["library", "item"] | ["library", "item", "update-session"]
        );
    if is_create {
        s.create_tokens.push((path.clone(), token.clone()));
        if let Some(t) = &token {
            if !is_uuid(t) {
                return error(400, "INVALID_ARGUMENT", "The client token is not a UUID");
            }
            if let Some(id) = s.tokens.get(&(path.clone(), t.clone())) {
                return answer(201, json!(id));
            }
        }
    }
    let remember = |s: &mut Server, id: &str| {
        if let Some(t) = &token {
            s.tokens.insert((path.clone(), t.clone()), id.to_string());
        }
    };

    if let Some(rest) = path.strip_prefix("/api/vcenter/") {
        return vcenter(&mut s, &method, rest, &action, &query, &body);
    }

    match (method.clone(), parts.as_slice(), action.as_str()) {
        // Spec `ContentLibraryFindSpec`: name (case-insensitive) and type; 400 when neither.
        (Method::POST, ["library"], "find") => {
            let name = body["name"].as_str();
            let kind = body["type"].as_str();
            if name.is_none() && kind.is_none() {
                return error(400, "INVALID_ARGUMENT", "The find spec has no property");
            }
            let ids: Vec<&String> = s
                .libraries
                .iter()
                .filter(|(_, l)| name.is_none_or(|n| l.name.eq_ignore_ascii_case(n)))
                .filter(|(_, l)| kind.is_none_or(|k| l.kind == k))
                .map(|(k, _)| k)
                .collect();
            answer(200, json!(ids))
        }
        (Method::GET, ["library", id], "") if *id != "item" => match s.libraries.get(*id) {
            Some(l) => answer(
                200,
                json!({ "id": id, "name": l.name, "type": l.kind, "last_sync_time": l.last_sync_time,
                        "subscription_info": l.publisher.as_ref().map(|p| json!({ "subscription_url": format!("{}/cls/vcsp/lib/{p}/lib.json", s.base), "on_demand": true, "automatic_sync_enabled": false })) }),
            ),
            None => error(404, "NOT_FOUND", "Library not found"),
        },
        // Spec, subscribed-library `sync`: 204, 404 for an unknown library; asynchronous (the
        // items change after the call returns); "already in the process of synchronizing will
        // have no effect". A library that is not subscribed: 404, as govmomi answers.
        (Method::POST, ["subscribed-library", id], "sync") => {
            let id = id.to_string();
            let Some(l) = s.libraries.get_mut(&id) else {
                return error(404, "NOT_FOUND", "Library not found");
            };
            let Some(publisher) = l.publisher.clone() else {
                return error(404, "NOT_FOUND", "Not a subscribed library");
            };
            if l.syncing {
                return empty(204);
            }
            l.syncing = true;
            let delay = s.sync_delay;
            let shared = state.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                sync(&mut shared.lock().unwrap(), &id, &publisher);
            });
            empty(204)
        }
        // Spec `ContentLibraryItemFindSpec`: library_id, and name (case-insensitive).
        (Method::POST, ["library", "item"], "find") => {
            let name = body["name"].as_str();
            let library = body["library_id"].as_str();
            let ids: Vec<&String> = s
                .items
                .iter()
                .filter(|(_, i)| name.is_none_or(|n| i.name.eq_ignore_ascii_case(n)))
                .filter(|(_, i)| library.is_none_or(|l| i.library == l))
                .map(|(k, _)| k)
                .collect();
            answer(200, json!(ids))
        }
        // Spec: `library_id` is required.
        (Method::GET, ["library", "item"], "") => match param(&query, "library_id") {
            Some(l) if s.libraries.contains_key(&l) => answer(
                200,
                json!(s.items_of(&l).iter().map(|(k, _)| k).collect::<Vec<_>>()),
            ),
            Some(_) => error(404, "NOT_FOUND", "Library not found"),
            None => error(400, "INVALID_ARGUMENT", "library_id is required"),
        },
        // Spec 7.0.2, item `create`: 201 and the id; 404 when the library does not exist;
        // 400 ALREADY_EXISTS "if there is already a library item with same name in the
        // library"; a subscribed library: INVALID_ELEMENT_TYPE (govmomi).
        (Method::POST, ["library", "item"], "") => {
            let library = body["library_id"].as_str().unwrap_or("").to_string();
            let name = body["name"].as_str().unwrap_or("").to_string();
            let Some(l) = s.libraries.get(&library) else {
                return error(404, "NOT_FOUND", "Library not found");
            };
            if l.kind == "SUBSCRIBED" {
                return error(
                    400,
                    "INVALID_ELEMENT_TYPE",
                    "Items of a subscribed library come from its publisher",
                );
            }
            if body["type"] != "ovf" {
                return error(400, "INVALID_ARGUMENT", "type is wrong");
            }
            // govmomi compares the name exactly.
            if s.items_of(&library).iter().any(|(_, i)| i.name == name) {
                return error(
                    400,
                    "ALREADY_EXISTS",
                    &format!(
                        "A library item with name '{name}' already exists in library '{library}'."
                    ),
                );
            }
            let item = next_id(&mut s, "item");
            s.items.insert(
                item.clone(),
                Item {
                    library,
                    name,
                    description: body["description"].as_str().unwrap_or("").into(),
                    ..Item::default()
                },
            );
            remember(&mut s, &item);
            let lost = s.item_create_lost > 0;
            s.item_create_lost = s.item_create_lost.saturating_sub(1);
            created(&item, lost)
        }
        (Method::GET, ["library", "item", item], "") if *item != "update-session" => {
            match s.items.get(*item) {
                Some(i) => answer(
                    200,
                    json!({ "id": item, "library_id": i.library, "name": i.name, "description": i.description, "type": "ovf",
                        "size": i.files.values().map(Vec::len).sum::<usize>(), "content_version": i.content_version.to_string(),
                        "source_id": i.source_id, "cached": true }),
                ),
                None => error(404, "NOT_FOUND", "Library item not found"),
            }
        }
        // Spec, item `update`: 204; 404; 400 ALREADY_EXISTS for a name another item has.
        (Method::PATCH, ["library", "item", item], "") if *item != "update-session" => {
            let item = item.to_string();
            let Some(library) = s.items.get(&item).map(|i| i.library.clone()) else {
                return error(404, "NOT_FOUND", "Library item not found");
            };
            if let Some(n) = body["name"].as_str()
                && s.items_of(&library)
                    .iter()
                    .any(|(k, i)| **k != item && i.name == n)
            {
                return error(
                    400,
                    "ALREADY_EXISTS",
                    "A library item with this name already exists",
                );
            }
            let i = s.items.get_mut(&item).unwrap();
            if let Some(d) = body["description"].as_str() {
                i.description = d.into();
            }
            if let Some(n) = body["name"].as_str() {
                i.name = n.into();
            }
            empty(204)
        }
        // Spec, item `delete`: 204, or 404 "if the library item … does not exist".
        (Method::DELETE, ["library", "item", item], "") if *item != "update-session" => {
            match s.items.remove(*item) {
                Some(_) => empty(204),
                None => error(404, "NOT_FOUND", "Library item not found"),
            }
        }
        (Method::GET, ["library", "item", item, "file"], "") => match s.items.get(*item) {
            Some(i) => answer(
                200,
                json!(
                    i.files
                        .iter()
                        .map(|(n, b)| json!({ "name": n, "size": b.len(), "cached": true }))
                        .collect::<Vec<_>>()
                ),
            ),
            None => error(404, "NOT_FOUND", "Library item not found"),
        },
        // Spec, update-session `create`: 201 and the id; 404 for an unknown item; 400
        // INVALID_ELEMENT_TYPE on a subscribed library's item; 500 RESOURCE_BUSY "if there is
        // another update session on the same library item" ("Content Library Service allows
        // only one single update session to be active for a specific library item").
        (Method::POST, ["library", "item", "update-session"], "") => {
            let item = body["library_item_id"].as_str().unwrap_or("").to_string();
            let Some(i) = s.items.get(&item) else {
                return error(404, "NOT_FOUND", "Library item not found");
            };
            if s.libraries
                .get(&i.library)
                .is_some_and(|l| l.kind == "SUBSCRIBED")
            {
                return error(
                    400,
                    "INVALID_ELEMENT_TYPE",
                    "The item belongs to a subscribed library",
                );
            }
            if let Some((busy, _)) = s
                .updates
                .iter()
                .find(|(_, u)| u.item == item && u.state == "ACTIVE")
            {
                return error(
                    500,
                    "RESOURCE_BUSY",
                    &format!("Another update session ({busy}) is active on library item {item}."),
                );
            }
            let u = next_id(&mut s, "update");
            s.updates.insert(
                u.clone(),
                UpdateSession {
                    item,
                    state: "ACTIVE".into(),
                    ..UpdateSession::default()
                },
            );
            remember(&mut s, &u);
            let lost = s.session_create_lost > 0;
            s.session_create_lost = s.session_create_lost.saturating_sub(1);
            created(&u, lost)
        }
        // Spec, update-session `list`: the calling user's sessions, optionally of one item;
        // 404 "if a library item identifier is given for an item which does not exist".
        (Method::GET, ["library", "item", "update-session"], "") => {
            let item = param(&query, "library_item_id");
            if let Some(i) = &item
                && !s.items.contains_key(i)
            {
                return error(404, "NOT_FOUND", "Library item not found");
            }
            let ids: Vec<&String> = s
                .updates
                .iter()
                .filter(|(_, u)| item.as_ref().is_none_or(|i| &u.item == i))
                .map(|(k, _)| k)
                .collect();
            answer(200, json!(ids))
        }
        (Method::GET, ["library", "item", "update-session", u], "") => match s.updates.get(*u) {
            Some(up) => answer(
                200,
                json!({ "id": u, "library_item_id": up.item, "state": up.state, "client_progress": 0,
                        "error_message": up.error.as_deref().map(message) }),
            ),
            None => error(404, "NOT_FOUND", "Update session not found"),
        },
        // Spec, update-session `delete`: 204; 404; 400 "if the update session is in the ACTIVE
        // state".
        (Method::DELETE, ["library", "item", "update-session", u], "") => match s.updates.get(*u) {
            Some(up) if up.state == "ACTIVE" => error(
                400,
                "NOT_ALLOWED_IN_CURRENT_STATE",
                "The update session is ACTIVE: cancel or fail it first",
            ),
            Some(_) => {
                s.updates.remove(*u);
                empty(204)
            }
            None => error(404, "NOT_FOUND", "Update session not found"),
        },
        // Spec 7.0.2, file `add`: `POST …/update-session/{id}/file` → 201 and the file info;
        // there is no `?action=add` there. vSphere 9 (reported): `?action=add`, and the plain
        // form 404s. Adding a name again replaces that file ("If a file with the same name
        // already exists in this session, this operation will be used to update the content").
        (Method::POST, ["library", "item", "update-session", u, "file"], a @ ("" | "add")) => {
            if (a == "add") != s.vsphere9 {
                return error(
                    404,
                    "NOT_FOUND",
                    &format!(
                        "No handler for {method} {path}{}{query}",
                        if query.is_empty() { "" } else { "?" }
                    ),
                );
            }
            let (base, u) = (s.base.clone(), u.to_string());
            let Some(up) = s.updates.get_mut(&u) else {
                return error(404, "NOT_FOUND", "Update session not found");
            };
            // The session's other operations require ACTIVE (spec: cancel, fail, complete,
            // keep-alive, validate); a file added to an ended session would never be used.
            if up.state != "ACTIVE" {
                return error(
                    400,
                    "NOT_ALLOWED_IN_CURRENT_STATE",
                    &format!("The update session is {}", up.state),
                );
            }
            let name = body["name"].as_str().unwrap_or("").to_string();
            let checksum = match body["checksum_info"]["algorithm"].as_str() {
                None => None,
                Some(alg) if digest(alg, b"").is_some() => Some((
                    alg.to_string(),
                    body["checksum_info"]["checksum"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )),
                // govmomi answers an algorithm it cannot compute with invalid_argument.
                Some(alg) => {
                    return error(
                        400,
                        "INVALID_ARGUMENT",
                        &format!("Checksum algorithm {alg} is not supported here"),
                    );
                }
            };
            let source_type = body["source_type"].as_str().unwrap_or("").to_string();
            let file = SessionFile {
                source_type: source_type.clone(),
                size: body["size"].as_u64().unwrap_or(0),
                checksum,
                status: "WAITING_FOR_TRANSFER".into(),
                ..SessionFile::default()
            };
            match source_type.as_str() {
                "PUSH" => {}
                "PULL" => {
                    let Some(uri) = body["source_endpoint"]["uri"].as_str() else {
                        return error(400, "INVALID_ARGUMENT", "A PULL needs source_endpoint.uri");
                    };
                    let thumbprint = body["source_endpoint"]["ssl_certificate_thumbprint"]
                        .as_str()
                        .map(String::from);
                    // vCenter fetches the source itself, in the background.
                    tokio::spawn(pull(
                        state.clone(),
                        u.clone(),
                        name.clone(),
                        uri.to_string(),
                        thumbprint,
                    ));
                }
                _ => return error(400, "INVALID_ARGUMENT", "source_type must be PUSH or PULL"),
            }
            let mut file = file;
            if source_type == "PULL" {
                file.status = "TRANSFERRING".into();
            }
            let info = file_info(&base, &u, &name, &file);
            up.files.insert(name, file);
            answer(201, info)
        }
        (Method::GET, ["library", "item", "update-session", u, "file"], "") => {
            let base = s.base.clone();
            match s.updates.get(*u) {
                Some(up) => answer(
                    200,
                    json!(
                        up.files
                            .iter()
                            .map(|(n, f)| file_info(&base, u, n, f))
                            .collect::<Vec<_>>()
                    ),
                ),
                None => error(404, "NOT_FOUND", "Update session not found"),
            }
        }
        // Spec, file `validate`: 200 `{has_errors, missing_files, invalid_files}` (all
        // required; with errors, at least one entry); 404; 400 "if the update session is not
        // in the ACTIVE state, or if some of the files that will be uploaded by the client
        // aren't received correctly".
        (Method::POST, ["library", "item", "update-session", u, "file"], "validate") => {
            let invalid = s.invalid.clone();
            let Some(up) = s.updates.get(*u) else {
                return error(404, "NOT_FOUND", "Update session not found");
            };
            if up.state != "ACTIVE" {
                return error(
                    400,
                    "NOT_ALLOWED_IN_CURRENT_STATE",
                    &format!("The update session is {}", up.state),
                );
            }
            if let Some((n, f)) = up
                .files
                .iter()
                .find(|(_, f)| f.source_type == "PUSH" && f.status != "READY")
            {
                return error(
                    400,
                    "NOT_ALLOWED_IN_CURRENT_STATE",
                    &format!(
                        "File {n} was not received correctly ({}): {}",
                        f.status,
                        f.error.as_deref().unwrap_or("not uploaded")
                    ),
                );
            }
            // The OVF type adapter: every file the descriptor references must be added.
            let mut missing = Vec::new();
            for (n, f) in &up.files {
                if !n.ends_with(".ovf") {
                    continue;
                }
                let ovf =
                    String::from_utf8_lossy(f.bytes.as_deref().unwrap_or_default()).into_owned();
                for href in ovf
                    .split("ovf:href=\"")
                    .skip(1)
                    .filter_map(|r| r.split('"').next())
                {
                    if !up.files.contains_key(href) {
                        missing.push(href.to_string());
                    }
                }
            }
            let mut bad: Vec<Value> = up
                .files
                .iter()
                .filter(|(_, f)| f.status == "ERROR")
                .map(|(n, f)| json!({ "name": n, "error_message": message(f.error.as_deref().unwrap_or("error")) }))
                .collect();
            if let Some((n, m)) = invalid {
                bad.push(json!({ "name": n, "error_message": message(&m) }));
            }
            answer(
                200,
                json!({ "has_errors": !missing.is_empty() || !bad.is_empty(), "missing_files": missing, "invalid_files": bad }),
            )
        }
        // Spec: cancel, fail, keep-alive and complete all answer 400
        // NOT_ALLOWED_IN_CURRENT_STATE when the session is not ACTIVE.
        (Method::POST, ["library", "item", "update-session", u], a) => {
            let u = u.to_string();
            let s_refuse_fail = s.refuse_fail;
            let Some(up) = s.updates.get_mut(&u) else {
                return error(404, "NOT_FOUND", "Update session not found");
            };
            if !["keep-alive", "cancel", "fail", "complete"].contains(&a) {
                return error(400, "INVALID_ARGUMENT", "Unknown action");
            }
            if up.state != "ACTIVE" {
                return error(
                    400,
                    "NOT_ALLOWED_IN_CURRENT_STATE",
                    &format!(
                        "Operation {a} is not allowed: the update session is {}",
                        up.state
                    ),
                );
            }
            match a {
                "keep-alive" => {}
                // "Cancels the update session and sets its state to CANCELED … Any content
                // that has been already received will be scheduled for deletion."
                "cancel" => {
                    up.state = "CANCELED".into();
                    for f in up.files.values_mut() {
                        f.bytes = None;
                    }
                }
                // `client_error_message` is required (spec `…UpdateSessionFail`).
                "fail" => {
                    if s_refuse_fail {
                        return error(
                            400,
                            "INVALID_ARGUMENT",
                            "The failure was refused (test fault)",
                        );
                    }
                    let Some(m) = body["client_error_message"].as_str() else {
                        return error(400, "INVALID_ARGUMENT", "client_error_message is required");
                    };
                    up.state = "ERROR".into();
                    up.error = Some(m.into());
                }
                // 400 "if some of the files that will be uploaded by the client aren't received
                // correctly"; PULL files still on their way: DONE once they are.
                _ => {
                    if let Some((n, _)) = up
                        .files
                        .iter()
                        .find(|(_, f)| f.source_type == "PUSH" && f.status != "READY")
                    {
                        return error(
                            400,
                            "NOT_ALLOWED_IN_CURRENT_STATE",
                            &format!("File {n} was not received correctly"),
                        );
                    }
                    if up.files.values().all(|f| f.status == "READY") {
                        finish(&mut s, &u);
                    } else {
                        up.completing = true;
                    }
                }
            }
            empty(204)
        }
        _ => error(404, "NOT_FOUND", &format!("No handler for {method} {path}")),
    }
}

/// A subscribed library's sync: its items become copies of the publisher's (name,
/// description, content version and files), and items the publisher no longer has go.
fn sync(s: &mut Server, library: &str, publisher: &str) {
    let published: Vec<(String, Item)> = s
        .items_of(publisher)
        .into_iter()
        .map(|(k, i)| (k.clone(), i.clone()))
        .collect();
    s.items.retain(|_, i| {
        i.library != library
            || published
                .iter()
                .any(|(k, _)| Some(k) == i.source_id.as_ref())
    });
    for (source, item) in published {
        let copy = Item {
            library: library.into(),
            source_id: Some(source.clone()),
            ..item
        };
        match s
            .items
            .iter()
            .find(|(_, i)| i.library == library && i.source_id.as_ref() == Some(&source))
        {
            Some((k, _)) => {
                let k = k.clone();
                s.items.insert(k, copy);
            }
            None => {
                let k = next_id(s, "subitem");
                s.items.insert(k, copy);
            }
        }
    }
    if let Some(l) = s.libraries.get_mut(library) {
        l.syncing = false;
        l.last_sync_time = Some(chrono::Utc::now().to_rfc3339());
    }
}

/// vCenter fetching a PULL file. An https source with `ssl_certificate_thumbprint` is trusted
/// by that thumbprint alone ("If set, the remote endpoint's SSL certificate is only accepted
/// if it matches this thumbprint, and no other certificate validation is performed": spec
/// `ContentLibraryItemTransferEndpoint`), the SHA-1 of the certificate's DER as upper-case hex
/// pairs joined by colons (govmomi `ThumbprintSHA1`); without one, the usual roots. A failure
/// puts the file and then the session in ERROR with the file's message (govmomi
/// `pullSource`); the checksum is checked as for PUSH.
async fn pull(state: Shared, u: String, name: String, uri: String, thumbprint: Option<String>) {
    let fetched = fetch(&uri, thumbprint.as_deref()).await;
    let mut s = state.lock().unwrap();
    let Some(up) = s.updates.get_mut(&u) else {
        return;
    };
    if up.state != "ACTIVE" {
        return;
    }
    let Some(f) = up.files.get_mut(&name) else {
        return;
    };
    let fetched = fetched.and_then(|bytes| match received_wrong(&name, f, &bytes) {
        Some(m) => Err(m),
        None => Ok(bytes),
    });
    match fetched {
        Ok(bytes) => {
            f.bytes = Some(bytes);
            f.status = "READY".into();
            if up.completing && up.files.values().all(|f| f.status == "READY") {
                finish(&mut s, &u);
            }
        }
        Err(e) => {
            let m = format!("Error transferring file {name} from {uri}. Reason: {e}");
            f.status = "ERROR".into();
            f.error = Some(m.clone());
            up.state = "ERROR".into();
            up.error = Some(m);
        }
    }
}

async fn fetch(uri: &str, thumbprint: Option<&str>) -> Result<Vec<u8>, String> {
    let builder = reqwest::Client::builder();
    let client = match thumbprint {
        Some(t) if uri.starts_with("https://") => {
            let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
            let config =
                tokio_rustls::rustls::ClientConfig::builder_with_provider(provider.clone())
                    .with_safe_default_protocol_versions()
                    .map_err(|e| e.to_string())?
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(Thumbprint {
                        sha1: t.to_string(),
                        provider,
                    }))
                    .with_no_client_auth();
            builder.use_preconfigured_tls(config)
        }
        _ => builder,
    }
    .build()
    .map_err(|e| e.to_string())?;
    let chain = |e: &dyn std::error::Error| {
        let mut text = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            text.push_str(&format!(": {c}"));
            cause = c.source();
        }
        text
    };
    let resp = client.get(uri).send().await.map_err(|e| chain(&e))?;
    if !resp.status().is_success() {
        return Err(format!("HTTP GET {uri}: {}", resp.status()));
    }
    resp.bytes()
        .await
        .map(|b| b.to_vec())
        .map_err(|e| chain(&e))
}

/// Accepts exactly the certificate whose SHA-1 thumbprint was given; the handshake's signature
/// is still checked against it.
#[derive(Debug)]
struct Thumbprint {
    sha1: String,
    provider: Arc<tokio_rustls::rustls::crypto::CryptoProvider>,
}

mod verifier {
    use tokio_rustls::rustls::client::danger::{
        HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
    };
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use tokio_rustls::rustls::{self, DigitallySignedStruct, SignatureScheme};

    impl ServerCertVerifier for super::Thumbprint {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            use sha1::Digest as _;
            let actual = sha1::Sha1::digest(end_entity.as_ref())
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":");
            if actual == self.sha1 {
                Ok(ServerCertVerified::assertion())
            } else {
                Err(rustls::Error::General(format!(
                    "certificate error: the server's certificate has SHA-1 thumbprint {actual}, not the expected {}",
                    self.sha1
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
}

/// Basic auth's base64, kept here so the server needs no extra crate.
mod base64_engine {
    pub(super) fn encode(s: &str) -> String {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let b = s.as_bytes();
        let mut out = String::new();
        for chunk in b.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, &x)| acc | (u32::from(x) << (16 - 8 * i)));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

/// Resource types (DMTF CIM `ResourceType`) of the devices vCenter makes for an OVF's virtual
/// hardware: other, processor, memory, IDE/SCSI/SATA controllers, ethernet, floppy, CD/DVD,
/// disk, USB, sound, parallel SCSI HBA and the rest of the VMware OVF set.
const DEVICE_TYPES: &[u32] = &[1, 3, 4, 5, 6, 10, 14, 15, 16, 17, 20, 21, 23, 24, 35];

/// The VM calls of `/api/vcenter` the deploy check uses (vSphere Automation API: "Ovf Library
/// Item deploy", "VM Power", "VM delete/get/list"). A deploy answers 200 with an
/// `OvfLibraryItemDeploymentResult`: `succeeded`, `resource_id`, and `error.errors[]` when
/// vCenter cannot deploy the descriptor; the reason's wording here is this server's own.
fn vcenter(
    s: &mut Server,
    method: &Method,
    rest: &str,
    action: &str,
    query: &str,
    body: &Value,
) -> Response {
    let parts: Vec<&str> = rest.split('/').collect();
    match (method.clone(), parts.as_slice(), action) {
        (Method::POST, ["ovf", "library-item", item], "deploy") => {
            let Some(item) = s.items.get(*item) else {
                return error(404, "NOT_FOUND", "The library item does not exist");
            };
            let Some(name) = body["deployment_spec"]["name"].as_str() else {
                return error(400, "INVALID_ARGUMENT", "deployment_spec.name is required");
            };
            if body["target"]["resource_pool_id"].as_str().is_none() {
                return error(
                    400,
                    "INVALID_ARGUMENT",
                    "target.resource_pool_id is required",
                );
            }
            let descriptor = item
                .files
                .iter()
                .find(|(n, _)| n.ends_with(".ovf"))
                .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            let unsupported: Vec<u32> = descriptor
                .split("<rasd:ResourceType>")
                .skip(1)
                .filter_map(|t| t.split('<').next()?.trim().parse().ok())
                .filter(|t| !DEVICE_TYPES.contains(t))
                .collect();
            if let Some(t) = unsupported.first() {
                return answer(
                    200,
                    json!({
                        "succeeded": false,
                        "error": { "errors": [{
                            "category": "VALIDATION",
                            "error": { "messages": [message(&format!("unsupported virtual hardware: resource type {t}"))] },
                        }], "warnings": [], "information": [] },
                    }),
                );
            }
            let id = next_id(s, "vm");
            s.vms
                .insert(id.clone(), (name.to_string(), "POWERED_OFF".into()));
            answer(
                200,
                json!({
                    "succeeded": true,
                    "resource_id": { "type": "VirtualMachine", "id": id },
                    "error": { "errors": [], "warnings": [], "information": [] },
                }),
            )
        }
        (Method::POST, ["vm", vm, "power"], a @ ("start" | "stop")) => match s.vms.get_mut(*vm) {
            Some((_, state)) => {
                let want = if a == "start" {
                    "POWERED_ON"
                } else {
                    "POWERED_OFF"
                };
                if state == want {
                    return error(400, "ALREADY_IN_DESIRED_STATE", "The VM is already so");
                }
                *state = want.into();
                empty(204)
            }
            None => error(404, "NOT_FOUND", "The VM does not exist"),
        },
        (Method::GET, ["vm", vm, "power"], "") => match s.vms.get(*vm) {
            Some((_, state)) => answer(200, json!({ "state": state })),
            None => error(404, "NOT_FOUND", "The VM does not exist"),
        },
        (Method::GET, ["vm", vm], "") => match s.vms.get(*vm) {
            Some((name, state)) => answer(200, json!({ "name": name, "power_state": state })),
            None => error(404, "NOT_FOUND", "The VM does not exist"),
        },
        (Method::DELETE, ["vm", vm], "") => match s.vms.get(*vm) {
            Some((_, state)) if state == "POWERED_ON" => {
                error(400, "RESOURCE_BUSY", "The VM is powered on")
            }
            Some(_) if s.fail_vm_delete => error(500, "ERROR", "The datastore is not accessible"),
            Some(_) => {
                s.vms.remove(*vm);
                empty(204)
            }
            None => error(404, "NOT_FOUND", "The VM does not exist"),
        },
        (Method::GET, ["vm"], "") => {
            let names = param(query, "names");
            let list: Vec<Value> = s
                .vms
                .iter()
                .filter(|(_, (n, _))| names.as_deref().is_none_or(|w| w == n))
                .map(|(id, (n, st))| json!({ "vm": id, "name": n, "power_state": st }))
                .collect();
            answer(200, json!(list))
        }
        _ => error(404, "NOT_FOUND", "Not found"),
    }
}
