//! govmomi's vCenter simulator (`tests/vcsim/main.go`, built by `scripts/vcsim` from Debian's
//! Go packages), started on loopback for a test and stopped when dropped (its stdin closes).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

pub const USER: &str = "user";
pub const PASSWORD: &str = "pass";

#[derive(Debug)]
pub struct Vcsim {
    child: Child,
    pub url: String,
    pub datastore: String,
    /// A resource pool to deploy VMs into (the deploy check's `library.deploy`).
    pub resource_pool: String,
}

fn binary() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        // Step crates and the root crate (benchmarks) include this file: find the script upwards.
        let mut root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        while !root.join("scripts/vcsim").exists() {
            assert!(root.pop(), "scripts/vcsim not found above the crate");
        }
        let out = Command::new(root.join("scripts/vcsim"))
            .stderr(Stdio::inherit())
            .output()
            .expect("scripts/vcsim runs");
        assert!(
            out.status.success(),
            "scripts/vcsim failed: apt-get install golang-go golang-github-vmware-govmomi-dev"
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    })
}

impl Vcsim {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts the simulator with `tests/vcsim/main.go`'s flags, e.g. `["-delay", "50ms"]`.
    pub fn start_with(args: &[&str]) -> Self {
        let mut child = Command::new(binary())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut url = String::new();
        let mut datastore = String::new();
        let mut resource_pool = String::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(u) = line.strip_prefix("URL ") {
                url = u.to_string();
            } else if let Some(p) = line.strip_prefix("RESOURCE_POOL ") {
                resource_pool = p.to_string();
            } else if let Some(d) = line.strip_prefix("DATASTORE ") {
                datastore = d.to_string();
                break;
            }
        }
        assert!(
            !url.is_empty() && !datastore.is_empty(),
            "vcsim did not start"
        );
        Self {
            child,
            url,
            datastore,
            resource_pool,
        }
    }

    /// A new API session's id.
    pub async fn session(&self, client: &reqwest::Client) -> String {
        let v: serde_json::Value = client
            .post(format!("{}/rest/com/vmware/cis/session", self.url))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["value"].as_str().unwrap().to_string()
    }

    /// A `/rest` call as a test's own client; the reply's `value`.
    pub async fn rest(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let client = reqwest::Client::new();
        let sid = self.session(&client).await;
        let mut rb = client
            .request(method, format!("{}/rest/com/vmware{path}", self.url))
            .header("vmware-api-session-id", sid);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let text = rb.send().await.unwrap().text().await.unwrap();
        if text.trim().is_empty() {
            return serde_json::Value::Null;
        }
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v.get("value").cloned().unwrap_or(v)
    }

    /// Creates a local library on the simulator's datastore; returns its id.
    pub async fn create_library(&self, name: &str) -> String {
        let spec = serde_json::json!({ "create_spec": {
            "name": name, "type": "LOCAL",
            "storage_backings": [{ "type": "DATASTORE", "datastore_id": self.datastore }],
        }});
        let v = self
            .rest(reqwest::Method::POST, "/content/local-library", Some(spec))
            .await;
        v.as_str().unwrap().to_string()
    }

    /// Creates a published local library; returns its id and publish URL.
    pub async fn create_published_library(&self, name: &str) -> (String, String) {
        let spec = serde_json::json!({ "create_spec": {
            "name": name, "type": "LOCAL",
            "storage_backings": [{ "type": "DATASTORE", "datastore_id": self.datastore }],
            "publish_info": { "published": true, "authentication_method": "NONE" },
        }});
        let id = self
            .rest(reqwest::Method::POST, "/content/local-library", Some(spec))
            .await;
        let id = id.as_str().unwrap().to_string();
        let lib = self
            .rest(
                reqwest::Method::GET,
                &format!("/content/library/id:{id}"),
                None,
            )
            .await;
        (
            id,
            lib["publish_info"]["publish_url"]
                .as_str()
                .unwrap()
                .to_string(),
        )
    }

    /// Creates a library subscribed to `url`, syncing on demand only; returns its id.
    pub async fn create_subscribed_library(&self, name: &str, url: &str) -> String {
        let spec = serde_json::json!({ "create_spec": {
            "name": name, "type": "SUBSCRIBED",
            "storage_backings": [{ "type": "DATASTORE", "datastore_id": self.datastore }],
            "subscription_info": { "subscription_url": url, "authentication_method": "NONE",
                                   "automatic_sync_enabled": false, "on_demand": true },
        }});
        let id = self
            .rest(
                reqwest::Method::POST,
                "/content/subscribed-library",
                Some(spec),
            )
            .await;
        id.as_str().unwrap().to_string()
    }

    /// A library as vCenter describes it.
    pub async fn library(&self, id: &str) -> serde_json::Value {
        self.rest(
            reqwest::Method::GET,
            &format!("/content/library/id:{id}"),
            None,
        )
        .await
    }

    /// `(name, id, description)` of every item in a library.
    pub async fn items(&self, library: &str) -> Vec<(String, String, String)> {
        let ids = self
            .rest(
                reqwest::Method::GET,
                &format!("/content/library/item?library_id={library}"),
                None,
            )
            .await;
        let mut out = Vec::new();
        for id in ids.as_array().cloned().unwrap_or_default() {
            let id = id.as_str().unwrap();
            let item = self
                .rest(
                    reqwest::Method::GET,
                    &format!("/content/library/item/id:{id}"),
                    None,
                )
                .await;
            out.push((
                item["name"].as_str().unwrap_or("").to_string(),
                id.to_string(),
                item["description"].as_str().unwrap_or("").to_string(),
            ));
        }
        out.sort();
        out
    }

    /// `(name, power state)` of every VM, sorted.
    pub async fn vms(&self) -> Vec<(String, String)> {
        let client = reqwest::Client::new();
        let sid = self.session(&client).await;
        let v: serde_json::Value = client
            .get(format!("{}/rest/vcenter/vm", self.url))
            .header("vmware-api-session-id", sid)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut out: Vec<(String, String)> = v["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|vm| {
                (
                    vm["name"].as_str().unwrap().to_string(),
                    vm["power_state"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// `(name, size)` of an item's files.
    pub async fn files(&self, item: &str) -> Vec<(String, u64)> {
        let files = self
            .rest(
                reqwest::Method::GET,
                &format!("/content/library/item/file?library_item_id={item}"),
                None,
            )
            .await;
        let mut out: Vec<(String, u64)> = files
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|f| {
                (
                    f["name"].as_str().unwrap().to_string(),
                    f["size"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        out.sort();
        out
    }
}

impl Drop for Vcsim {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
