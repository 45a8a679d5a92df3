//! A vCenter content library, through either generation of the vSphere Automation REST API:
//! `/rest/com/vmware/...` (6.5, 6.7: bodies wrapped in `create_spec` and friends, replies in
//! `{"value": …}`) or `/api/...` (7.0U2 and later: plain bodies and replies).
//! <https://developer.broadcom.com/xapis/vsphere-automation-api/latest/content/>
//!
//! An import is one update session on the item: add the descriptor and every disk (with the
//! OVA manifest's checksum), transfer them (PUSH through this process, or PULL by vCenter from
//! the site's store), validate, complete, and wait for the session to finish. Any failure fails
//! the session and removes an item this import created, so nothing half-imported remains.

use std::sync::Mutex;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{ImportRequest, Imported, Layout, LibraryError};
use crate::http::HttpClient;
use crate::ova::Package;
use crate::secret::Secret;
use crate::store::ArtifactReader;

const SESSION_HEADER: &str = "vmware-api-session-id";

/// Which REST generation to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
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
        let url = format!("{}{path}", self.base);
        for attempt in 0..2 {
            let sid = self.session_id().unwrap_or_default();
            let resp = self
                .client
                .send(|c| {
                    let rb = c.request(method.clone(), &url).header(SESSION_HEADER, &sid);
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

    async fn session_state(&self, sid: &str) -> Result<(String, Option<String>), LibraryError> {
        let path = self.path(
            &format!("/content/library/item/update-session/id:{sid}"),
            &format!("/content/library/item/update-session/{sid}"),
        );
        let v = self.call(Method::GET, &path, None).await?;
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
                    library: self.library_name.clone(),
                    item: request.item_name.clone(),
                    item_id: id.clone(),
                    item_version: content_version(&item),
                    changed: false,
                    removed: Vec::new(),
                    synced: Vec::new(),
                    manifest: package.manifest.is_some(),
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
                let id = self
                    .call(Method::POST, &path, Some(self.body("create_spec", spec)))
                    .await?;
                let id = id
                    .as_str()
                    .ok_or_else(|| self.failed("creating the item returned no id"))?
                    .to_string();
                (id, true)
            }
        };

        let path = self.path(
            "/content/library/item/update-session",
            "/content/library/item/update-session",
        );
        let spec = self.body("create_spec", json!({ "library_item_id": item_id }));
        let sid = match self.call(Method::POST, &path, Some(spec)).await {
            Ok(v) => v
                .as_str()
                .map(String::from)
                .ok_or_else(|| self.failed("creating the update session returned no id")),
            Err(e) => Err(e),
        };
        let outcome = match sid {
            Ok(sid) => {
                let r = self
                    .transfer(&sid, reader, package, transfer, progress)
                    .await;
                if let Err(e) = &r {
                    let body = json!({ "client_error_message": e.to_string() });
                    let _ = self
                        .call(Method::POST, &self.session_path(&sid, "fail"), Some(body))
                        .await;
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
            library: self.library_name.clone(),
            item: request.item_name.clone(),
            item_id,
            item_version: content_version(&item),
            changed: true,
            removed,
            synced: Vec::new(),
            manifest: package.manifest.is_some(),
        })
    }

    async fn transfer(
        &self,
        sid: &str,
        reader: &dyn ArtifactReader,
        package: &Package,
        transfer: &Transfer,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), LibraryError> {
        let add = self.session_file_path(sid, "add");
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
                    let info = self
                        .call(Method::POST, &add, Some(self.body("file_spec", spec)))
                        .await?;
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
                self.call(Method::POST, &add, Some(self.body("file_spec", spec)))
                    .await?;
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

    /// Asks each subscribed library to sync, and waits until it lists the item (by name) or the
    /// deadline passes.
    pub async fn sync_subscribed(
        &self,
        names: &[String],
        item_name: &str,
        deadline: Duration,
    ) -> Result<Vec<super::Synced>, LibraryError> {
        let mut out = Vec::new();
        for name in names {
            let ids = self.find("library", json!({ "name": name })).await?;
            let Some(id) = ids.first() else {
                return Err(self.failed(format!("subscribed library `{name}` does not exist")));
            };
            let sync = self.path(
                &format!("/content/subscribed-library/id:{id}?~action=sync"),
                &format!("/content/subscribed-library/{id}?action=sync"),
            );
            self.call(Method::POST, &sync, None).await?;
            let start = tokio::time::Instant::now();
            let has_item = loop {
                if self.find_item(id, item_name).await?.is_some() {
                    break true;
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
