//! A vCenter content library, through either generation of the vSphere Automation REST API:
//! `/rest/com/vmware/...` (6.5, 6.7: bodies wrapped in `create_spec` and friends, replies in
//! `{"value": …}`) or `/api/...` (7.0U2 and later: plain bodies and replies).
//! <https://developer.broadcom.com/xapis/vsphere-automation-api/latest/content/>
//!
//! An import is one update session on the item: add the descriptor and every disk (with the
//! OVA manifest's checksum), transfer them (PUSH through this process, or PULL by vCenter from
//! the site's store), validate, complete, and wait for the session to finish. Any failure fails
//! the session and removes an item this import created, so nothing half-imported remains.
//!
//! Creates (the item, the update session) carry a client token, so that a create the server
//! carried out before its answer was lost (a 5xx the HTTP layer retries) is not made twice. An
//! update session an earlier run left ACTIVE (a killed import) blocks the item, since vCenter
//! allows one per item: it is cancelled and deleted, and the step warns about it.

use std::sync::Mutex;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{ImportRequest, Imported, Layout, LibraryError};
use crate::http::HttpClient;
use crate::ova::Package;
use crate::record::{DeployCheck, DeployResult};
use crate::secret::Secret;
use crate::store::ArtifactReader;

const SESSION_HEADER: &str = "vmware-api-session-id";

/// The `/api` header of a create's idempotency token. Broadcom's current reference documents the
/// header ("Content Library Item UpdateSession create", "Content Library Item create": `Client-Token`,
/// a UUID); the 7.0.2 OpenAPI spec had a `client_token` query parameter instead. Only the header
/// is sent: a server that does not know it ignores it, while an unexpected query parameter might
/// be refused.
const CLIENT_TOKEN_HEADER: &str = "Client-Token";

/// How an `/api` server takes "add a file to an update session".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AddForm {
    /// Not known yet: try the documented form first.
    Unknown,
    /// `POST …/update-session/{id}/file`: the vSphere 7.0.2 spec and Broadcom's 8.0U2 reference.
    Plain,
    /// `POST …/update-session/{id}/file?action=add`: reported for vSphere 9, where the plain
    /// form answers 404 (saltext-vcf 1.0.0 changelog; not in Broadcom's reference).
    Action,
}

/// Which REST generation to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Generation {
    /// `/api` when the server has it, else `/rest`.
    #[default]
    Auto,
    /// vCenter 6.5 and 6.7.
    Rest,
    /// vCenter 7.0U2 and later.
    Api,
}

/// How the bytes reach vCenter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transfer {
    /// Through this process, from the site's store.
    Push,
    /// vCenter fetches the OVA from this URL (the site's store), trusting a certificate with
    /// this SHA-1 thumbprint when given.
    Pull {
        url: String,
        thumbprint: Option<String>,
    },
}

#[derive(Debug)]
pub struct VSphere {
    client: HttpClient,
    base: String,
    library_name: String,
    username: String,
    password: Secret,
    generation: Mutex<Generation>,
    session: Mutex<Option<Secret>>,
    add_form: Mutex<AddForm>,
    /// How often an update session is kept alive during a transfer.
    pub keep_alive: Duration,
    /// How long to wait for a session or a PULL to finish.
    pub deadline: Duration,
}

/// What the update-session file list says about one file.
#[derive(Debug, Default)]
struct FileStatus {
    name: String,
    status: String,
    error: Option<String>,
}

impl VSphere {
    pub fn new(
        client: HttpClient,
        url: &str,
        library_name: &str,
        username: String,
        password: Secret,
        generation: Generation,
    ) -> Self {
        Self {
            client,
            base: url.trim_end_matches('/').to_string(),
            library_name: library_name.to_string(),
            username,
            password,
            generation: Mutex::new(generation),
            session: Mutex::new(None),
            add_form: Mutex::new(AddForm::Unknown),
            keep_alive: Duration::from_secs(60),
            deadline: Duration::from_secs(3600),
        }
    }

    fn name(&self) -> String {
        format!("{} library `{}`", self.base, self.library_name)
    }

    fn generation(&self) -> Generation {
        *self.generation.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn failed(&self, message: impl Into<String>) -> LibraryError {
        LibraryError::Failed {
            library: self.name(),
            message: message.into(),
        }
    }

    /// Logs in, finding out the generation first when asked to.
    pub async fn login(&self) -> Result<(), LibraryError> {
        let candidates = match self.generation() {
            Generation::Auto => vec![Generation::Api, Generation::Rest],
            g => vec![g],
        };
        for g in candidates {
            let url = match g {
                Generation::Rest => format!("{}/rest/com/vmware/cis/session", self.base),
                _ => format!("{}/api/session", self.base),
            };
            let resp = self
                .client
                .send(|c| {
                    c.post(&url)
                        .basic_auth(&self.username, Some(self.password.expose()))
                })
                .await
                .map_err(|source| LibraryError::Http {
                    library: self.name(),
                    source,
                })?;
            if resp.status() == StatusCode::NOT_FOUND && self.generation() == Generation::Auto {
                continue;
            }
            let value = self.reply("POST", &url, resp, g).await?;
            let sid = value
                .as_str()
                .ok_or_else(|| self.failed(format!("POST {url}: the reply holds no session id")))?;
            *self.session.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(Secret::new(sid.to_string()));
            *self.generation.lock().unwrap_or_else(|p| p.into_inner()) = g;
            return Ok(());
        }
        Err(self.failed(
            "neither /api/session nor /rest/com/vmware/cis/session exists: is this a vCenter?",
        ))
    }

    /// Ends the API session; errors are ignored, the session expires anyway.
    pub async fn logout(&self) {
        let path = match self.generation() {
            Generation::Rest => "/rest/com/vmware/cis/session",
            _ => "/api/session",
        };
        let _ = self.call(Method::DELETE, path, None).await;
    }

    fn session_id(&self) -> Option<String> {
        self.session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|s| s.expose().to_string())
    }

    /// Turns a reply into its value: errors carry vSphere's message, `/rest` replies are
    /// unwrapped from `{"value": …}`, and an empty body is `null`.
    async fn reply(
        &self,
        method: &str,
        url: &str,
        resp: reqwest::Response,
        generation: Generation,
    ) -> Result<Value, LibraryError> {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(LibraryError::Unauthorized {
                library: self.name(),
                method: method.into(),
                url: url.into(),
                status: status.as_u16(),
                message: String::new(),
            });
        }
        let body: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|e| {
                self.failed(format!(
                    "{method} {url}: {status}: the reply is not JSON ({e})"
                ))
            })?
        };
        if !status.is_success() {
            // /rest: {"type": …, "value": {"messages": […]}}; /api: {"error_type": …, "messages": […]}.
            let messages = body
                .get("value")
                .and_then(|v| v.get("messages"))
                .or_else(|| body.get("messages"));
            let message = messages
                .and_then(Value::as_array)
                .map(|m| {
                    m.iter()
                        .filter_map(|m| m.get("default_message").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .filter(|m| !m.is_empty())
                .or_else(|| {
                    body.get("error_type")
                        .or_else(|| body.get("type"))
                        .and_then(Value::as_str)
                        .map(String::from)
                })
                .map_or_else(
                    || crate::secret::scrub_and_cut(&text, 300),
                    |m| crate::secret::scrub(&m).into_owned(),
                );
            return Err(LibraryError::Remote {
                library: self.name(),
                method: method.into(),
                url: url.into(),
                status: status.as_u16(),
                message,
                error_type: error_type(&body),
            });
        }
        Ok(match (generation, body) {
            (Generation::Rest, Value::Object(mut o)) if o.contains_key("value") => {
                o.remove("value").unwrap_or(Value::Null)
            }
            (_, body) => body,
        })
    }

    /// One API call; a 401 (the session expired) logs in again and repeats it once.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, LibraryError> {
        self.request(method, path, body, None).await
    }

    /// A create (`POST`) that the server makes idempotent with a client token: one fresh UUID per
    /// logical create, made here and not in the request builder, so the HTTP layer's retries of
    /// a 5xx and the repeat after a 401 all send the same token and a create the server already
    /// carried out is answered with the same id instead of being made again. `/api` takes the
    /// token as the `Client-Token` header; `/rest` as `client_token` beside `create_spec` in the
    /// body (*Library_Item_UpdateSession_Create_RequestBody*, *Library_Item_Create_RequestBody*).
    async fn create(&self, path: &str, body: Value) -> Result<Value, LibraryError> {
        let token = uuid::Uuid::new_v4().to_string();
        match self.generation() {
            Generation::Rest => {
                let mut body = body;
                if let Value::Object(o) = &mut body {
                    o.insert("client_token".into(), Value::String(token));
                }
                self.request(Method::POST, path, Some(body), None).await
            }
            _ => {
                self.request(Method::POST, path, Some(body), Some(&token))
                    .await
            }
        }
    }

    /// [`Self::call`], with the `/api` client token header when given.
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        client_token: Option<&str>,
    ) -> Result<Value, LibraryError> {
        let url = format!("{}{path}", self.base);
        for attempt in 0..2 {
            let sid = self.session_id().unwrap_or_default();
            let resp = self
                .client
                .send(|c| {
                    let mut rb = c.request(method.clone(), &url).header(SESSION_HEADER, &sid);
                    if let Some(token) = client_token {
                        rb = rb.header(CLIENT_TOKEN_HEADER, token);
                    }
                    match &body {
                        Some(b) => rb.json(b),
                        None => rb,
                    }
                })
                .await
                .map_err(|source| LibraryError::Http {
                    library: self.name(),
                    source,
                })?;
            match self
                .reply(method.as_str(), &url, resp, self.generation())
                .await
            {
                Err(LibraryError::Unauthorized { status: 401, .. }) if attempt == 0 => {
                    self.login().await?;
                }
                other => return other,
            }
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// A path in the current generation: `rest` under `/rest/com/vmware`, `api` under `/api`.
    fn path(&self, rest: &str, api: &str) -> String {
        match self.generation() {
            Generation::Rest => format!("/rest/com/vmware{rest}"),
            _ => format!("/api{api}"),
        }
    }

    /// A request body: wrapped in `key` for `/rest`, plain for `/api`.
    fn body(&self, key: &str, value: Value) -> Value {
        match self.generation() {
            Generation::Rest => json!({ key: value }),
            _ => value,
        }
    }

    fn ids(&self, value: Value, what: &str) -> Result<Vec<String>, LibraryError> {
        // govmomi's simulator answers an empty find with null.
        if value.is_null() {
            return Ok(Vec::new());
        }
        serde_json::from_value(value)
            .map_err(|e| self.failed(format!("{what}: expected a list of ids ({e})")))
    }

    /// Ids of the libraries (`kind` = `library`) or items (`library/item`) a find spec matches.
    async fn find(&self, kind: &str, spec: Value) -> Result<Vec<String>, LibraryError> {
        let path = self.path(
            &format!("/content/{kind}?~action=find"),
            &format!("/content/{kind}?action=find"),
        );
        let found = self
            .call(Method::POST, &path, Some(self.body("spec", spec)))
            .await?;
        self.ids(found, &format!("{kind} find"))
    }

    async fn library_id(&self) -> Result<String, LibraryError> {
        let ids = self
            .find("library", json!({ "name": self.library_name }))
            .await?;
        match ids.as_slice() {
            [id] => Ok(id.clone()),
            [] => Err(self.failed(
                "no content library has this name; create it (a local library) or fix `library` in imagepipe.toml",
            )),
            _ => Err(self.failed("several content libraries have this name; rename one")),
        }
    }

    async fn find_item(&self, library: &str, name: &str) -> Result<Option<String>, LibraryError> {
        let ids = self
            .find(
                "library/item",
                json!({ "library_id": library, "name": name }),
            )
            .await?;
        Ok(ids.into_iter().next())
    }

    async fn item(&self, id: &str) -> Result<Value, LibraryError> {
        let path = self.path(
            &format!("/content/library/item/id:{id}"),
            &format!("/content/library/item/{id}"),
        );
        self.call(Method::GET, &path, None).await
    }

    async fn item_files(&self, id: &str) -> Result<Vec<(String, u64)>, LibraryError> {
        let path = self.path(
            &format!("/content/library/item/file?library_item_id={id}"),
            &format!("/content/library/item/{id}/file"),
        );
        let files = self.call(Method::GET, &path, None).await?;
        Ok(files
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| {
                let name = f.get("name")?.as_str()?.to_string();
                let size = f
                    .get("size")
                    .and_then(|s| s.as_u64().or_else(|| s.as_str()?.parse().ok()));
                Some((name, size.unwrap_or(0)))
            })
            .collect())
    }

    async fn delete_item(&self, id: &str) -> Result<(), LibraryError> {
        let path = self.path(
            &format!("/content/library/item/id:{id}"),
            &format!("/content/library/item/{id}"),
        );
        self.call(Method::DELETE, &path, None).await.map(|_| ())
    }

    fn session_path(&self, sid: &str, action: &str) -> String {
        self.path(
            &format!("/content/library/item/update-session/id:{sid}?~action={action}"),
            &format!("/content/library/item/update-session/{sid}?action={action}"),
        )
    }

    fn session_file_path(&self, sid: &str, action: &str) -> String {
        self.path(
            &format!("/content/library/item/updatesession/file/id:{sid}?~action={action}"),
            &format!("/content/library/item/update-session/{sid}/file?action={action}"),
        )
    }

    fn session_url(&self, sid: &str) -> String {
        self.path(
            &format!("/content/library/item/update-session/id:{sid}"),
            &format!("/content/library/item/update-session/{sid}"),
        )
    }

    async fn session_state(&self, sid: &str) -> Result<(String, Option<String>), LibraryError> {
        let v = self.call(Method::GET, &self.session_url(sid), None).await?;
        let state = v
            .get("state")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        Ok((state, error_message(&v)))
    }

    async fn session_files(&self, sid: &str) -> Result<Vec<FileStatus>, LibraryError> {
        let path = self.path(
            &format!("/content/library/item/updatesession/file?update_session_id={sid}"),
            &format!("/content/library/item/update-session/{sid}/file"),
        );
        let files = self.call(Method::GET, &path, None).await?;
        Ok(files
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| FileStatus {
                name: f.get("name").and_then(Value::as_str).unwrap_or("").into(),
                status: f.get("status").and_then(Value::as_str).unwrap_or("").into(),
                error: error_message(f),
            })
            .collect())
    }

    /// Imports the package as the request's item.
    pub async fn import(
        &self,
        request: &ImportRequest,
        reader: &dyn ArtifactReader,
        package: &Package,
        transfer: &Transfer,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Imported, LibraryError> {
        if self.session_id().is_none() {
            self.login().await?;
        }
        let library = self.library_id().await?;
        let existing = self.find_item(&library, &request.item_name).await?;

        // The same record already imported, with every file at its size: nothing to do.
        if let Some(id) = &existing {
            let item = self.item(id).await?;
            let described = item
                .get("description")
                .and_then(Value::as_str)
                .is_some_and(|d| d.contains(&request.record_sha256.to_string()));
            let files = self.item_files(id).await?;
            let complete = match transfer {
                Transfer::Push => package
                    .parts()
                    .all(|m| files.contains(&(m.name.clone(), m.size))),
                Transfer::Pull { .. } => !files.is_empty() && files.iter().all(|(_, s)| *s > 0),
            };
            if described && complete {
                return Ok(Imported {
                    deploy: None,
                    library: self.library_name.clone(),
                    item: request.item_name.clone(),
                    item_id: id.clone(),
                    item_version: content_version(&item),
                    changed: false,
                    removed: Vec::new(),
                    synced: Vec::new(),
                    manifest: package.manifest.is_some(),
                    warnings: Vec::new(),
                });
            }
        }

        let (item_id, created) = match existing {
            Some(id) => (id, false),
            None => {
                let spec = json!({
                    "library_id": library,
                    "name": request.item_name,
                    "description": request.description,
                    "type": "ovf",
                });
                let path = self.path("/content/library/item", "/content/library/item");
                let id = self.create(&path, self.body("create_spec", spec)).await?;
                let id = id
                    .as_str()
                    .ok_or_else(|| self.failed("creating the item returned no id"))?
                    .to_string();
                (id, true)
            }
        };

        let mut warnings = Vec::new();
        let outcome = match self.open_session(&item_id, &mut warnings).await {
            Ok(sid) => {
                let r = self
                    .transfer(&sid, reader, package, transfer, progress)
                    .await;
                if let Err(e) = &r {
                    self.abandon(&sid, &e.to_string()).await;
                }
                r
            }
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            if created {
                let _ = self.delete_item(&item_id).await;
            }
            return Err(e);
        }

        // The item carries the version it now holds.
        let update = json!({ "description": request.description });
        let path = self.path(
            &format!("/content/library/item/id:{item_id}"),
            &format!("/content/library/item/{item_id}"),
        );
        self.call(Method::PATCH, &path, Some(self.body("update_spec", update)))
            .await?;
        let item = self.item(&item_id).await?;
        let removed = match request.layout {
            Layout::ItemPerVersion => self.retain(&library, request).await?,
            Layout::ItemPerImage => Vec::new(),
        };
        Ok(Imported {
            deploy: None,
            library: self.library_name.clone(),
            item: request.item_name.clone(),
            item_id,
            item_version: content_version(&item),
            changed: true,
            removed,
            synced: Vec::new(),
            manifest: package.manifest.is_some(),
            warnings,
        })
    }

    /// Creates the import's update session on the item. vCenter allows one ACTIVE update
    /// session per item and answers another create with RESOURCE_BUSY (`/api` 500, `/rest` 400;
    /// "Content Library Item UpdateSession create"). One that an earlier run left (a killed
    /// import) is cancelled and deleted, the caller warned, and the create made again, once.
    async fn open_session(
        &self,
        item_id: &str,
        warnings: &mut Vec<String>,
    ) -> Result<String, LibraryError> {
        let path = self.path(
            "/content/library/item/update-session",
            "/content/library/item/update-session",
        );
        let spec = || self.body("create_spec", json!({ "library_item_id": item_id }));
        let created = match self.create(&path, spec()).await {
            Err(busy) if is_busy(&busy) => {
                let cleared = self.clear_sessions(item_id).await?;
                if cleared.is_empty() {
                    // The list holds only this user's sessions: another user's import is busy.
                    return Err(self.failed(format!(
                        "item `{item_id}` has an active update session that this user cannot \
                         see or cancel (another user importing?): {busy}"
                    )));
                }
                warnings.push(format!(
                    "cancelled update session{} {} that an earlier run (killed, or still \
                     running) left active on item `{item_id}`",
                    if cleared.len() == 1 { "" } else { "s" },
                    cleared.join(", ")
                ));
                self.create(&path, spec()).await?
            }
            other => other?,
        };
        created
            .as_str()
            .map(String::from)
            .ok_or_else(|| self.failed("creating the update session returned no id"))
    }

    /// Cancels and deletes this user's ACTIVE update sessions on the item; returns their ids.
    /// The list is the calling user's sessions ("Content Library Item UpdateSession list"); each
    /// is read again because a server may ignore the item filter (govmomi's simulator does).
    /// `cancel` ends the session and drops what it received; `DELETE` is refused while a session
    /// is ACTIVE, so it comes second.
    async fn clear_sessions(&self, item_id: &str) -> Result<Vec<String>, LibraryError> {
        let list = self.path(
            &format!("/content/library/item/update-session?library_item_id={item_id}"),
            &format!("/content/library/item/update-session?library_item_id={item_id}"),
        );
        let ids = self.ids(
            self.call(Method::GET, &list, None).await?,
            "update session list",
        )?;
        let mut cleared = Vec::new();
        for sid in ids {
            let session = self
                .call(Method::GET, &self.session_url(&sid), None)
                .await?;
            let field = |k: &str| session.get(k).and_then(Value::as_str);
            if field("library_item_id") != Some(item_id) || field("state") != Some("ACTIVE") {
                continue;
            }
            self.call(Method::POST, &self.session_path(&sid, "cancel"), None)
                .await?;
            // Cancelled sessions are deleted by vCenter in time anyway; this only tidies.
            let _ = self
                .call(Method::DELETE, &self.session_url(&sid), None)
                .await;
            cleared.push(sid);
        }
        Ok(cleared)
    }

    /// Ends a session this import cannot finish: `fail` with the reason, or `cancel` when vCenter
    /// refuses that, so no ACTIVE session is left to block the item's next import. A session
    /// vCenter has already ended (ERROR after a failed transfer) refuses both, which is fine.
    async fn abandon(&self, sid: &str, reason: &str) {
        let body = json!({ "client_error_message": reason });
        let failed = self
            .call(Method::POST, &self.session_path(sid, "fail"), Some(body))
            .await;
        if failed.is_err() {
            let _ = self
                .call(Method::POST, &self.session_path(sid, "cancel"), None)
                .await;
        }
    }

    /// Adds a file to the update session; returns its file info. `/rest`: `…/updatesession/file/
    /// id:{id}?~action=add` (200). `/api`: `POST …/update-session/{id}/file` as the 7.0.2 spec and
    /// Broadcom's reference document it (201); on 404 the `?action=add` form reported for
    /// vSphere 9, and whichever form worked is used for the rest of this client's calls.
    async fn add_file(&self, sid: &str, spec: Value) -> Result<Value, LibraryError> {
        if self.generation() == Generation::Rest {
            return self
                .call(
                    Method::POST,
                    &self.session_file_path(sid, "add"),
                    Some(self.body("file_spec", spec)),
                )
                .await;
        }
        let form = *self.add_form.lock().unwrap_or_else(|p| p.into_inner());
        let remember = |f| *self.add_form.lock().unwrap_or_else(|p| p.into_inner()) = f;
        if form != AddForm::Action {
            let plain = format!("/api/content/library/item/update-session/{sid}/file");
            match self.call(Method::POST, &plain, Some(spec.clone())).await {
                Err(LibraryError::Remote { status: 404, .. }) if form == AddForm::Unknown => {}
                other => {
                    if other.is_ok() {
                        remember(AddForm::Plain);
                    }
                    return other;
                }
            }
        }
        let added = self
            .call(
                Method::POST,
                &self.session_file_path(sid, "add"),
                Some(spec),
            )
            .await;
        if added.is_ok() {
            remember(AddForm::Action);
        }
        added
    }

    async fn transfer(
        &self,
        sid: &str,
        reader: &dyn ArtifactReader,
        package: &Package,
        transfer: &Transfer,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), LibraryError> {
        match transfer {
            Transfer::Push => {
                let mut done = 0u64;
                for member in package.parts() {
                    let mut spec = json!({
                        "name": member.name,
                        "source_type": "PUSH",
                        "size": member.size,
                    });
                    if let Some(c) = package.checksums.get(&member.name) {
                        spec["checksum_info"] =
                            json!({ "algorithm": c.algorithm, "checksum": c.hex });
                    }
                    let info = self.add_file(sid, spec).await?;
                    let uri = info
                        .get("upload_endpoint")
                        .and_then(|e| e.get("uri"))
                        .and_then(Value::as_str)
                        .ok_or_else(|| {
                            self.failed(format!(
                                "adding `{}` returned no upload endpoint",
                                member.name
                            ))
                        })?
                        .to_string();
                    let base = done;
                    let member_progress = |n| progress(base + n);
                    let upload = self.upload(&uri, reader, package, member, &member_progress);
                    self.keeping_alive(sid, upload).await?;
                    done += member.size;
                }
                // The whole OVA is checked against the record before the session completes.
                reader
                    .verify_whole()
                    .await
                    .map_err(|e| self.failed(format!("the site's copy of the OVA: {e}")))?;
            }
            Transfer::Pull { url, thumbprint } => {
                let name = url
                    .rsplit('/')
                    .next()
                    .and_then(|n| n.split('?').next())
                    .filter(|n| !n.is_empty())
                    .unwrap_or("image.ova")
                    .to_string();
                let mut endpoint = json!({ "uri": url });
                if let Some(t) = thumbprint {
                    endpoint["ssl_certificate_thumbprint"] = json!(t);
                }
                let spec =
                    json!({ "name": name, "source_type": "PULL", "source_endpoint": endpoint });
                self.add_file(sid, spec).await?;
                self.keeping_alive(sid, self.wait_for_pull(sid)).await?;
            }
        }

        let validation = self
            .call(Method::POST, &self.session_file_path(sid, "validate"), None)
            .await?;
        // A vCenter answers with has_errors, missing_files and invalid_files.
        let mut problems = Vec::new();
        for f in validation
            .get("missing_files")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            problems.push(format!("missing {}", f.as_str().unwrap_or("?")));
        }
        for f in validation
            .get("invalid_files")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            problems.push(format!(
                "invalid {}: {}",
                f.get("name").and_then(Value::as_str).unwrap_or("?"),
                error_message(f).as_deref().unwrap_or("no reason given")
            ));
        }
        if validation.get("has_errors").and_then(Value::as_bool) == Some(true)
            || !problems.is_empty()
        {
            return Err(self.failed(format!(
                "vCenter refused the files: {}",
                if problems.is_empty() {
                    "has_errors".to_string()
                } else {
                    problems.join("; ")
                }
            )));
        }
        self.call(Method::POST, &self.session_path(sid, "complete"), None)
            .await?;
        let start = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(100);
        loop {
            let (state, error) = self.session_state(sid).await?;
            match state.as_str() {
                "DONE" => return Ok(()),
                "ERROR" | "CANCELED" => {
                    return Err(self.failed(format!(
                        "the update session ended {state}: {}",
                        error.unwrap_or_else(|| "no reason given".into())
                    )));
                }
                _ if start.elapsed() > self.deadline => {
                    return Err(self.failed(format!(
                        "the update session is still {state} after {}",
                        humantime::format_duration(self.deadline)
                    )));
                }
                _ => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Runs `work`, sending keep-alive for the update session meanwhile: vCenter expires idle
    /// sessions, and a transfer of many GiB is idle as far as the session is concerned.
    async fn keeping_alive<F: std::future::Future<Output = Result<(), LibraryError>>>(
        &self,
        sid: &str,
        work: F,
    ) -> Result<(), LibraryError> {
        let keep_alive = async {
            loop {
                tokio::time::sleep(self.keep_alive).await;
                let _ = self
                    .call(Method::POST, &self.session_path(sid, "keep-alive"), None)
                    .await;
            }
        };
        tokio::select! {
            r = work => r,
            () = keep_alive => unreachable!("keep-alive never ends"),
        }
    }

    async fn upload(
        &self,
        uri: &str,
        reader: &dyn ArtifactReader,
        package: &Package,
        member: &crate::ova::Member,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), LibraryError> {
        for attempt in 0..2 {
            let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
            let body = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|chunk| (chunk, rx))
            });
            let sid = self.session_id().unwrap_or_default();
            let request = self
                .client
                .client()
                .put(uri)
                .header(SESSION_HEADER, sid)
                .header(reqwest::header::CONTENT_LENGTH, member.size)
                .body(reqwest::Body::wrap_stream(body))
                .send();
            let sent = std::sync::atomic::AtomicU64::new(0);
            let feed = async {
                // vCenter checks each file against the checksum_info it was given.
                let r = super::copy_member(&self.name(), reader, package, member, false, |chunk| {
                    let n =
                        sent.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    progress(n + chunk.len() as u64);
                    let tx = tx.clone();
                    async move {
                        tx.send(Ok(chunk))
                            .await
                            .map_err(|_| std::io::Error::other("the upload connection closed"))
                    }
                })
                .await;
                drop(tx);
                r
            };
            let (resp, fed) = tokio::join!(request, feed);
            let resp = resp
                .map_err(|e| self.failed(format!("uploading `{}` to {uri}: {e}", member.name)))?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && attempt == 0 {
                // The API session expired during a long upload: log in and send it again.
                self.login().await?;
                continue;
            }
            if !status.is_success() {
                return self
                    .reply("PUT", uri, resp, self.generation())
                    .await
                    .map(|_| ());
            }
            return fed.map(|_| ());
        }
        Err(self.failed(format!(
            "uploading `{}`: not authorised after logging in again",
            member.name
        )))
    }

    async fn wait_for_pull(&self, sid: &str) -> Result<(), LibraryError> {
        let start = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(100);
        loop {
            let files = self.session_files(sid).await?;
            if let Some(f) = files.iter().find(|f| f.status == "ERROR") {
                let (_, session_error) = self.session_state(sid).await.unwrap_or_default();
                return Err(self.failed(format!(
                    "vCenter could not fetch `{}`: {}",
                    f.name,
                    f.error
                        .clone()
                        .or(session_error)
                        .unwrap_or_else(|| "no reason given".into())
                )));
            }
            if !files.is_empty() && files.iter().all(|f| f.status == "READY") {
                return Ok(());
            }
            if start.elapsed() > self.deadline {
                return Err(self.failed("the PULL transfer did not finish in time"));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    /// Deletes the image's oldest version items beyond `keep`; returns their names.
    async fn retain(
        &self,
        library: &str,
        request: &ImportRequest,
    ) -> Result<Vec<String>, LibraryError> {
        let path = self.path(
            &format!("/content/library/item?library_id={library}"),
            &format!("/content/library/item?library_id={library}"),
        );
        let ids = self.ids(self.call(Method::GET, &path, None).await?, "item list")?;
        let prefix = format!("{} ", request.image.name);
        let mut mine = Vec::new();
        for id in ids {
            let item = self.item(&id).await?;
            let description = item
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("");
            // Items imagepipe made say "<image> <version> (imagepipe record sha256 …)".
            let Some(version) = description
                .strip_prefix(&prefix)
                .filter(|_| description.contains("(imagepipe record sha256"))
                .and_then(|r| r.split_whitespace().next())
                .and_then(|v| v.parse::<semver::Version>().ok())
            else {
                continue;
            };
            let name = item
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if request.is_item_of(&name, &version) {
                mine.push((version, id, name));
            }
        }
        mine.sort_by(|a, b| b.0.cmp(&a.0));
        let mut removed = Vec::new();
        for (_, id, name) in mine.into_iter().skip(request.keep.max(1)) {
            self.delete_item(&id).await?;
            removed.push(name);
        }
        Ok(removed)
    }

    /// Deletes the library's items that hold these versions of an image (items imagepipe
    /// made, known by their description, as retention knows them); returns their names. Log
    /// in first. An item is deleted whole, in one call.
    pub async fn remove_versions(
        &self,
        image: &crate::image::ImageName,
        versions: &std::collections::BTreeSet<semver::Version>,
    ) -> Result<Vec<String>, LibraryError> {
        let library = self.library_id().await?;
        let path = self.path(
            &format!("/content/library/item?library_id={library}"),
            &format!("/content/library/item?library_id={library}"),
        );
        let ids = self.ids(self.call(Method::GET, &path, None).await?, "item list")?;
        let prefix = format!("{image} ");
        let mut removed = Vec::new();
        for id in ids {
            let item = self.item(&id).await?;
            let description = item
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("");
            // Items imagepipe made say "<image> <version> (imagepipe record sha256 …)".
            let version = description
                .strip_prefix(&prefix)
                .filter(|_| description.contains("(imagepipe record sha256"))
                .and_then(|r| r.split_whitespace().next())
                .and_then(|v| v.parse::<semver::Version>().ok());
            if version.is_some_and(|v| versions.contains(&v)) {
                // An update session left on the item (a killed import) would block the delete.
                self.clear_sessions(&id).await?;
                self.delete_item(&id).await?;
                removed.push(
                    item.get("name")
                        .and_then(Value::as_str)
                        .unwrap_or(&id)
                        .to_string(),
                );
            }
        }
        Ok(removed)
    }

    /// Asks each subscribed library to sync, and waits until it lists the item (by name) or the
    /// deadline passes.
    pub async fn sync_subscribed(
        &self,
        names: &[String],
        item_name: &str,
        deadline: Duration,
    ) -> Result<Vec<super::Synced>, LibraryError> {
        self.sync_subscribed_until(names, item_name, None, deadline)
            .await
    }

    /// Asks each subscribed library to sync, and waits until it lists the item (by name) whose
    /// description holds `description` when given (the record's sha256: the version just
    /// imported, not the one an earlier sync brought), or the deadline passes. vCenter's sync
    /// is asynchronous: `subscribed-library … sync` answers before the items change.
    pub async fn sync_subscribed_until(
        &self,
        names: &[String],
        item_name: &str,
        description: Option<&str>,
        deadline: Duration,
    ) -> Result<Vec<super::Synced>, LibraryError> {
        let mut out = Vec::new();
        for name in names {
            // Only a subscribed library syncs; a local one of the same name is not meant.
            let ids = self
                .find("library", json!({ "name": name, "type": "SUBSCRIBED" }))
                .await?;
            let Some(id) = ids.first() else {
                return Err(self.failed(format!(
                    "subscribed library `{name}` does not exist (no library of type SUBSCRIBED has this name)"
                )));
            };
            let sync = self.path(
                &format!("/content/subscribed-library/id:{id}?~action=sync"),
                &format!("/content/subscribed-library/{id}?action=sync"),
            );
            self.call(Method::POST, &sync, None).await?;
            let start = tokio::time::Instant::now();
            let has_item = loop {
                if let Some(item) = self.find_item(id, item_name).await? {
                    let current = match description {
                        None => true,
                        Some(d) => self
                            .item(&item)
                            .await?
                            .get("description")
                            .and_then(Value::as_str)
                            .is_some_and(|have| have.contains(d)),
                    };
                    if current {
                        break true;
                    }
                }
                if start.elapsed() > deadline {
                    break false;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            };
            out.push(super::Synced {
                library: name.clone(),
                has_item,
            });
        }
        Ok(out)
    }
}

/// How a deploy check ends at one site, before it becomes the record's [`DeployCheck`].
type DeployStep = Result<(), (DeployResult, String)>;

impl VSphere {
    /// A path under `/rest/vcenter` or `/api/vcenter` (the VM calls, which `/rest` has outside
    /// `com/vmware`).
    fn vm_path(&self, vm: &str, rest_tail: &str, api_tail: &str) -> String {
        match self.generation() {
            Generation::Rest => format!("/rest/vcenter/vm/{vm}{rest_tail}"),
            _ => format!("/api/vcenter/vm/{vm}{api_tail}"),
        }
    }

    /// Deploys a throw-away VM from the library item `item_id` into `target`, powers it on,
    /// waits up to `wait` for vCenter to report it running, and deletes it again, on every
    /// path: when a step fails, and when `interrupt` turns true (SIGTERM, Ctrl-C) at any point,
    /// including while vCenter is still deploying (the VM is then found by its unique name).
    ///
    /// `POST …/vcenter/ovf/library-item/{id}?action=deploy` answers `succeeded: false` with its
    /// errors for a descriptor vCenter cannot deploy; that is [`DeployResult::Refused`] with
    /// vCenter's messages, as is a 4xx refusal of the request.
    pub async fn deploy_check(
        &self,
        item_id: &str,
        target: &crate::config::DeployTarget,
        wait: Duration,
        interrupt: &tokio::sync::watch::Receiver<bool>,
    ) -> DeployCheck {
        let vm_name = format!(
            "imagepipe-deploy-check-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let vm: Mutex<Option<String>> = Mutex::new(None);
        let mut interrupt = interrupt.clone();
        let work = self.deploy_and_run(item_id, target, &vm_name, wait, &vm);
        let outcome = tokio::select! {
            r = work => r,
            _ = interrupt.wait_for(|i| *i) => Err((
                DeployResult::Error,
                "interrupted; the deploy check's VM was deleted".to_string(),
            )),
        };
        let known = vm.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let cleanup = self.remove_vm(known.as_deref(), &vm_name).await;
        let (result, reason) = match (outcome, cleanup) {
            (_, Err(left)) => (DeployResult::Error, Some(left)),
            (Ok(()), Ok(())) => (DeployResult::Running, None),
            (Err((result, reason)), Ok(())) => (result, Some(reason)),
        };
        DeployCheck {
            result,
            vm_name,
            checked_at: chrono::Utc::now(),
            reason: reason.map(|r| crate::secret::scrub(&r).into_owned()),
        }
    }

    async fn deploy_and_run(
        &self,
        item_id: &str,
        target: &crate::config::DeployTarget,
        vm_name: &str,
        wait: Duration,
        vm: &Mutex<Option<String>>,
    ) -> DeployStep {
        let error = |e: LibraryError| (DeployResult::Error, e.to_string());
        let path = match self.generation() {
            Generation::Rest => {
                format!("/rest/com/vmware/vcenter/ovf/library-item/id:{item_id}?~action=deploy")
            }
            _ => format!("/api/vcenter/ovf/library-item/{item_id}?action=deploy"),
        };
        let mut placement = serde_json::Map::new();
        placement.insert("resource_pool_id".into(), json!(target.resource_pool));
        if let Some(f) = &target.folder {
            placement.insert("folder_id".into(), json!(f));
        }
        if let Some(h) = &target.host {
            placement.insert("host_id".into(), json!(h));
        }
        let mut spec = serde_json::Map::new();
        spec.insert("name".into(), json!(vm_name));
        spec.insert("accept_all_EULA".into(), json!(true));
        if let Some(d) = &target.datastore {
            spec.insert("default_datastore_id".into(), json!(d));
        }
        let body = json!({ "target": placement, "deployment_spec": spec });
        let reply = match self.create(&path, body).await {
            Ok(v) => v,
            Err(LibraryError::Remote {
                status, message, ..
            }) if (400..500).contains(&status) && status != 404 => {
                return Err((DeployResult::Refused, message));
            }
            Err(e) => return Err(error(e)),
        };
        if let Some(id) = reply
            .get("resource_id")
            .and_then(|r| r.get("id"))
            .and_then(Value::as_str)
        {
            *vm.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.to_string());
        }
        if reply.get("succeeded").and_then(Value::as_bool) != Some(true) {
            return Err((DeployResult::Refused, deploy_errors(&reply)));
        }
        let Some(id) = vm.lock().unwrap_or_else(|p| p.into_inner()).clone() else {
            return Err((
                DeployResult::Error,
                "vCenter reported the deploy as succeeded but named no VM".into(),
            ));
        };
        let start = self.vm_path(&id, "/power/start", "/power?action=start");
        self.call(Method::POST, &start, None).await.map_err(|e| {
            (
                DeployResult::NotRunning,
                format!("the VM did not power on: {e}"),
            )
        })?;
        let began = tokio::time::Instant::now();
        loop {
            let state = self
                .call(Method::GET, &self.vm_path(&id, "/power", "/power"), None)
                .await
                .map_err(error)?;
            let state = state.get("state").and_then(Value::as_str).unwrap_or("");
            if state == "POWERED_ON" {
                return Ok(());
            }
            if began.elapsed() > wait {
                return Err((
                    DeployResult::NotRunning,
                    format!(
                        "the VM was still {state} after {}",
                        humantime::format_duration(wait)
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Powers off and deletes the deploy check's VM (`id` when known, else every VM named
    /// `name`: a deploy interrupted before vCenter answered may still have made it), then makes
    /// sure it is gone. The error names what is left behind.
    async fn remove_vm(&self, id: Option<&str>, name: &str) -> Result<(), String> {
        let ids = match id {
            Some(id) => vec![id.to_string()],
            None => {
                let list = match self.generation() {
                    Generation::Rest => format!("/rest/vcenter/vm?filter.names={name}"),
                    _ => format!("/api/vcenter/vm?names={name}"),
                };
                let found = self.call(Method::GET, &list, None).await.map_err(|e| {
                    format!("could not look for a VM named {name} to delete it: {e}")
                })?;
                found
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|v| v.get("name").and_then(Value::as_str) == Some(name))
                    .filter_map(|v| v.get("vm").and_then(Value::as_str).map(String::from))
                    .collect()
            }
        };
        for id in ids {
            // Powering off a VM that is off is refused; that is fine, only the delete counts.
            let stop = self.vm_path(&id, "/power/stop", "/power?action=stop");
            let _ = self.call(Method::POST, &stop, None).await;
            let vm = self.vm_path(&id, "", "");
            let deleted = self.call(Method::DELETE, &vm, None).await;
            match self.call(Method::GET, &vm, None).await {
                Err(LibraryError::Remote { status: 404, .. }) => {}
                _ => {
                    return Err(format!(
                        "the deploy check's VM {name} ({id}) could not be deleted{}; delete it by hand",
                        deleted.err().map(|e| format!(": {e}")).unwrap_or_default()
                    ));
                }
            }
        }
        Ok(())
    }
}

/// vCenter's messages of a deploy that did not succeed (`error.errors[].error.messages[]`, and
/// any other `default_message` in the error), or a note that it gave none.
fn deploy_errors(reply: &Value) -> String {
    fn collect(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(m) = o.get("default_message").and_then(Value::as_str) {
                    out.push(m.to_string());
                }
                o.values().for_each(|v| collect(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| collect(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    collect(reply.get("error").unwrap_or(&Value::Null), &mut out);
    out.dedup();
    if out.is_empty() {
        "vCenter did not deploy the item and gave no reason".into()
    } else {
        out.join("; ")
    }
}

/// vSphere's error type of an error reply, in `/api`'s upper snake case: `/api`'s `error_type`,
/// newer `/rest` servers' `value.error_type`, or the last part of `/rest`'s `type`
/// (`com.vmware.vapi.std.errors.resource_busy`).
fn error_type(body: &Value) -> Option<String> {
    let named = body
        .get("error_type")
        .or_else(|| body.get("value").and_then(|v| v.get("error_type")))
        .and_then(Value::as_str);
    let typed = || {
        body.get("type")
            .and_then(Value::as_str)
            .and_then(|t| t.rsplit('.').next())
    };
    named
        .or_else(typed)
        .filter(|t| !t.is_empty())
        .map(str::to_ascii_uppercase)
}

/// Whether vCenter refused a create because another update session is active on the item.
fn is_busy(e: &LibraryError) -> bool {
    matches!(e, LibraryError::Remote { error_type: Some(t), .. } if t == "RESOURCE_BUSY")
}

/// The `default_message` of a value's `error_message` (a vSphere localizable message).
fn error_message(v: &Value) -> Option<String> {
    v.get("error_message")?
        .get("default_message")?
        .as_str()
        .map(String::from)
}

fn content_version(item: &Value) -> String {
    match item.get("content_version") {
        Some(Value::String(s)) => s.clone(),
        Some(v) if !v.is_null() => v.to_string(),
        _ => "1".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types_of_both_generations() {
        // /api (vSphere 7.0.2 spec `VapiStdErrors*`).
        let api = json!({ "error_type": "RESOURCE_BUSY", "messages": [] });
        assert_eq!(error_type(&api).as_deref(), Some("RESOURCE_BUSY"));
        // /rest, as vcsim and 6.x answer.
        let rest = json!({ "type": "com.vmware.vapi.std.errors.resource_busy", "value": {} });
        assert_eq!(error_type(&rest).as_deref(), Some("RESOURCE_BUSY"));
        // /rest from a newer vCenter, with error_type inside value (govmomi issue #3319).
        let newer = json!({
            "type": "com.vmware.vapi.std.errors.not_allowed_in_current_state",
            "value": { "error_type": "NOT_ALLOWED_IN_CURRENT_STATE", "messages": [] },
        });
        assert_eq!(
            error_type(&newer).as_deref(),
            Some("NOT_ALLOWED_IN_CURRENT_STATE")
        );
        // A body that is no vSphere error.
        assert_eq!(error_type(&json!({ "detail": "no" })), None);
        assert_eq!(error_type(&Value::Null), None);
    }

    #[test]
    fn only_resource_busy_is_busy() {
        let remote = |t: Option<&str>| LibraryError::Remote {
            library: "l".into(),
            method: "POST".into(),
            url: "u".into(),
            status: 500,
            message: "m".into(),
            error_type: t.map(String::from),
        };
        assert!(is_busy(&remote(Some("RESOURCE_BUSY"))));
        assert!(!is_busy(&remote(Some("ALREADY_EXISTS"))));
        assert!(!is_busy(&remote(None)));
    }
}
