//! A vCenter 7.0U2+ content library test server speaking the `/api` generation as Broadcom
//! documents it, for what govmomi's simulator does not have: the `/api` paths, a real
//! validation step, and faults.
//!
//! - Sessions: `POST /api/session` (basic auth) → `"<id>"`; `DELETE /api/session`; every other
//!   call needs `vmware-api-session-id`, else 401 `UNAUTHENTICATED`:
//!   <https://developer.broadcom.com/xapis/vsphere-automation-api/latest/api/session/post/>
//! - Libraries and items: `POST /api/content/library?action=find`,
//!   `POST /api/content/library/item?action=find`, `POST/GET/PATCH/DELETE
//!   /api/content/library/item[/<id>]`, `GET /api/content/library/item/<id>/file`:
//!   <https://developer.broadcom.com/xapis/vsphere-automation-api/latest/content/>
//! - Update sessions: `POST /api/content/library/item/update-session`,
//!   `…/update-session/<id>/file?action=add|validate`, `…/update-session/<id>?action=complete|fail|keep-alive`,
//!   `GET …/update-session/<id>` (`state` ACTIVE, DONE, ERROR):
//!   <https://developer.broadcom.com/xapis/vsphere-automation-api/latest/content/api/content/library/item/update-session/>
//! - Errors: `{"error_type": "NOT_FOUND", "messages": [{"id", "default_message", "args"}]}`.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::Response;
use serde_json::{Value, json};
use sha2::Digest as _;

pub const USER: &str = "administrator@vsphere.local";
pub const PASSWORD: &str = "vc-password-0123";
pub const LIBRARY: &str = "images";

#[derive(Debug, Default, Clone)]
pub struct Item {
    pub name: String,
    pub description: String,
    /// File name → bytes.
    pub files: BTreeMap<String, Vec<u8>>,
    pub content_version: u32,
}

#[derive(Debug, Default, Clone)]
pub struct UpdateSession {
    pub item: String,
    pub state: String,
    pub error: Option<String>,
    pub files: BTreeMap<String, SessionFile>,
}

/// A file of an update session.
#[derive(Debug, Default, Clone)]
pub struct SessionFile {
    /// As declared when added (0: not given, as for PULL).
    pub size: u64,
    /// From `checksum_info`, when SHA256.
    pub sha256: Option<String>,
    pub bytes: Option<Vec<u8>>,
    /// `WAITING_FOR_TRANSFER`, `TRANSFERRING`, `READY` or `ERROR`.
    pub status: String,
    pub error: Option<String>,
}

#[derive(Debug, Default)]
pub struct Server {
    pub base: String,
    pub sessions: Vec<String>,
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
    pub upload_delay: std::time::Duration,
    pub log: Vec<String>,
    next: u32,
}

pub type Shared = Arc<Mutex<Server>>;

pub fn start() -> (String, Shared) {
    let state: Shared = Arc::default();
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

fn id(s: &mut Server, prefix: &str) -> String {
    s.next += 1;
    format!("{prefix}-{}", s.next)
}

async fn handle(State(state): State<Shared>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    // Read the headers up front: the request's body is not Sync, so nothing may borrow the
    // request across an await.
    let (auth, sid) = {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        (header("authorization"), header("vmware-api-session-id"))
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
        let sid = id(&mut s, "session");
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
        }
        if !authorised {
            return error(401, "UNAUTHENTICATED", "Authentication required.");
        }
        let body = to_bytes(req.into_body(), 1 << 30)
            .await
            .unwrap_or_default()
            .to_vec();
        let delay = state.lock().unwrap().upload_delay;
        tokio::time::sleep(delay).await;
        let mut s = state.lock().unwrap();
        let Some(file) = s
            .updates
            .get_mut(&usid)
            .and_then(|u| u.files.get_mut(&name))
        else {
            return error(404, "NOT_FOUND", "No such file in the update session");
        };
        file.bytes = Some(body);
        file.status = "READY".into();
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
    let mut s = state.lock().unwrap();
    let action = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("action="))
        .unwrap_or("")
        .to_string();
    let parts: Vec<&str> = path
        .trim_start_matches("/api/content/")
        .split('/')
        .collect();
    match (method.clone(), parts.as_slice(), action.as_str()) {
        (Method::POST, ["library"], "find") => {
            let found = body["name"] == LIBRARY;
            answer(200, json!(if found { vec!["lib-1"] } else { vec![] }))
        }
        (Method::POST, ["library", "item"], "find") => {
            let name = body["name"].as_str().unwrap_or("");
            let ids: Vec<&String> = s
                .items
                .iter()
                .filter(|(_, i)| i.name == name)
                .map(|(k, _)| k)
                .collect();
            answer(200, json!(ids))
        }
        (Method::GET, ["library", "item"], "") => {
            answer(200, json!(s.items.keys().collect::<Vec<_>>()))
        }
        (Method::POST, ["library", "item"], "") => {
            if body["library_id"] != "lib-1" || body["type"] != "ovf" {
                return error(400, "INVALID_ARGUMENT", "library_id or type is wrong");
            }
            let item = id(&mut s, "item");
            s.items.insert(
                item.clone(),
                Item {
                    name: body["name"].as_str().unwrap_or("").into(),
                    description: body["description"].as_str().unwrap_or("").into(),
                    ..Item::default()
                },
            );
            answer(201, json!(item))
        }
        (Method::GET, ["library", "item", item], "") => match s.items.get(*item) {
            Some(i) => answer(
                200,
                json!({ "id": item, "library_id": "lib-1", "name": i.name, "description": i.description, "type": "ovf",
                        "size": i.files.values().map(Vec::len).sum::<usize>(), "content_version": i.content_version.to_string() }),
            ),
            None => error(404, "NOT_FOUND", "Library item not found"),
        },
        (Method::PATCH, ["library", "item", item], "") => match s.items.get_mut(*item) {
            Some(i) => {
                if let Some(d) = body["description"].as_str() {
                    i.description = d.into();
                }
                empty(204)
            }
            None => error(404, "NOT_FOUND", "Library item not found"),
        },
        (Method::DELETE, ["library", "item", item], "") => {
            s.items.remove(*item);
            empty(204)
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
        (Method::POST, ["library", "item", "update-session"], "") => {
            let item = body["library_item_id"].as_str().unwrap_or("").to_string();
            if !s.items.contains_key(&item) {
                return error(404, "NOT_FOUND", "Library item not found");
            }
            let u = id(&mut s, "update");
            s.updates.insert(
                u.clone(),
                UpdateSession {
                    item,
                    state: "ACTIVE".into(),
                    ..UpdateSession::default()
                },
            );
            answer(201, json!(u))
        }
        (Method::GET, ["library", "item", "update-session", u], "") => match s.updates.get(*u) {
            Some(up) => answer(
                200,
                json!({ "id": u, "library_item_id": up.item, "state": up.state,
                        "error_message": up.error.as_ref().map(|m| json!({ "id": "x", "default_message": m, "args": [] })) }),
            ),
            None => error(404, "NOT_FOUND", "Update session not found"),
        },
        (Method::POST, ["library", "item", "update-session", u, "file"], "add") => {
            let base = s.base.clone();
            let Some(up) = s.updates.get_mut(*u) else {
                return error(404, "NOT_FOUND", "Update session not found");
            };
            let name = body["name"].as_str().unwrap_or("").to_string();
            let sha = (body["checksum_info"]["algorithm"] == "SHA256").then(|| {
                body["checksum_info"]["checksum"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            });
            let file = SessionFile {
                size: body["size"].as_u64().unwrap_or(0),
                sha256: sha,
                status: "WAITING_FOR_TRANSFER".into(),
                ..SessionFile::default()
            };
            up.files.insert(name.clone(), file);
            match body["source_type"].as_str() {
                Some("PUSH") => answer(
                    200,
                    json!({ "name": name, "source_type": "PUSH", "status": "WAITING_FOR_TRANSFER",
                            "upload_endpoint": { "uri": format!("{base}/upload/{u}/{name}") } }),
                ),
                Some("PULL") => {
                    // vCenter fetches the source itself, in the background.
                    let source = body["source_endpoint"]["uri"].as_str().unwrap_or("").to_string();
                    let (state, u, n) = (state.clone(), u.to_string(), name.clone());
                    tokio::spawn(async move {
                        let fetched = match reqwest::get(&source).await {
                            Ok(r) if r.status().is_success() => r.bytes().await.map(|b| b.to_vec()).map_err(|e| e.to_string()),
                            Ok(r) => Err(format!("GET {source}: {}", r.status())),
                            Err(e) => Err(format!("GET {source}: {e}")),
                        };
                        let mut s = state.lock().unwrap();
                        if let Some(up) = s.updates.get_mut(&u)
                            && let Some(f) = up.files.get_mut(&n)
                        {
                            match fetched {
                                Ok(bytes) => {
                                    f.bytes = Some(bytes);
                                    f.status = "READY".into();
                                }
                                Err(e) => {
                                    f.status = "ERROR".into();
                                    f.error = Some(e.clone());
                                    up.error = Some(e);
                                }
                            }
                        }
                    });
                    answer(200, json!({ "name": name, "source_type": "PULL", "status": "WAITING_FOR_TRANSFER" }))
                }
                _ => error(400, "INVALID_ARGUMENT", "source_type must be PUSH or PULL"),
            }
        }
        (Method::GET, ["library", "item", "update-session", u, "file"], "") => match s.updates.get(*u) {
            Some(up) => answer(
                200,
                json!(up.files.iter().map(|(n, f)| json!({
                    "name": n, "status": f.status, "size": f.size,
                    "bytes_transferred": f.bytes.as_ref().map_or(0, Vec::len),
                    "error_message": f.error.as_ref().map(|m| json!({ "id": "x", "default_message": m, "args": [] })),
                })).collect::<Vec<_>>()),
            ),
            None => error(404, "NOT_FOUND", "Update session not found"),
        },
        (Method::POST, ["library", "item", "update-session", u, "file"], "validate") => {
            let invalid = s.invalid.clone();
            let Some(up) = s.updates.get(*u) else {
                return error(404, "NOT_FOUND", "Update session not found");
            };
            let missing: Vec<&String> = up
                .files
                .iter()
                .filter(|(_, f)| f.bytes.is_none())
                .map(|(n, _)| n)
                .collect();
            let mut bad: Vec<Value> = up
                .files
                .iter()
                .filter_map(|(n, f)| {
                    let b = f.bytes.as_ref()?;
                    let digest: String = sha2::Sha256::digest(b)
                        .iter()
                        .map(|x| format!("{x:02x}"))
                        .collect();
                    let wrong_size = f.size != 0 && b.len() as u64 != f.size;
                    (wrong_size || f.sha256.as_ref().is_some_and(|s| *s != digest)).then(|| {
                        json!({ "name": n, "error_message": { "id": "x", "default_message": "checksum or size mismatch", "args": [] } })
                    })
                })
                .collect();
            if let Some((n, m)) = invalid {
                bad.push(json!({ "name": n, "error_message": { "id": "x", "default_message": m, "args": [] } }));
            }
            answer(
                200,
                json!({ "has_errors": !missing.is_empty() || !bad.is_empty(), "missing_files": missing, "invalid_files": bad }),
            )
        }
        (Method::POST, ["library", "item", "update-session", u], a) => {
            let Some(up) = s.updates.get_mut(*u) else {
                return error(404, "NOT_FOUND", "Update session not found");
            };
            match a {
                "keep-alive" => {}
                "fail" => {
                    up.state = "ERROR".into();
                    up.error = body["client_error_message"].as_str().map(String::from);
                }
                "complete" => {
                    if up.state != "ACTIVE" {
                        return error(
                            400,
                            "NOT_ALLOWED_IN_CURRENT_STATE",
                            "The session is not active",
                        );
                    }
                    up.state = "DONE".into();
                    let (item, files) = (up.item.clone(), up.files.clone());
                    if let Some(i) = s.items.get_mut(&item) {
                        i.files = files
                            .into_iter()
                            .filter_map(|(n, f)| Some((n, f.bytes?)))
                            .collect();
                        i.content_version += 1;
                    }
                }
                _ => return error(400, "INVALID_ARGUMENT", "Unknown action"),
            }
            empty(204)
        }
        _ => error(404, "NOT_FOUND", &format!("No handler for {method} {path}")),
    }
}

/// Basic auth's base64, kept here so the server needs no extra crate.
mod base64_engine {
    pub fn encode(s: &str) -> String {
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
