//! Test kit for the end-to-end tests and the demo: start a local stack (or
//! attach to the running one), and drive its parts — the admin API, the
//! emulators' admin endpoints, moto — the way an operator and an LMS would.

use anyhow::{Context as _, bail};
use learnlink_core::ports::SecretStore;
use learnlink_local::stack::{Endpoints, Ports, Stack, StackConfig};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const LMS_API_KEY: &str = "lms-local-key";
pub const REGION: &str = "us-east-1";

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap_or_else(|_| PathBuf::from("."))
}

/// Where `cargo build` put the binaries (`LEARNLINK_BIN_DIR` overrides).
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("LEARNLINK_BIN_DIR") {
        let d = PathBuf::from(d);
        return if d.is_absolute() { d } else { root().join(d) };
    }
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => PathBuf::from(t).join("debug"),
        None => root().join("target/debug"),
    }
}

pub struct Options {
    pub template: PathBuf,
    pub parameters: Vec<(String, String)>,
    /// Instances per function (None: the runtime's default of 4).
    pub concurrency: Option<u32>,
    /// Environment for every function, after the template's.
    pub function_env: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            template: root().join("infra/template.yaml"),
            parameters: Vec::new(),
            concurrency: None,
            function_env: Vec::new(),
        }
    }
}

/// A running stack and clients for it.
pub struct Env {
    pub endpoints: Endpoints,
    pub admin_token: String,
    pub http: reqwest::Client,
    pub stack_name: String,
    /// Present when this process started the stack; dropping it stops it.
    pub stack: Option<Stack>,
}

impl Env {
    /// Start a private stack for one test (free ports, children die with the test).
    pub fn start(name: &str, opts: Options) -> anyhow::Result<Env> {
        let state_dir = root().join("target/e2e").join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state_dir);
        let stack_name = "learnlink".to_string();
        let cfg = StackConfig {
            state_dir,
            template: opts.template,
            stack_name: stack_name.clone(),
            region: REGION.into(),
            parameters: opts.parameters.into_iter().collect(),
            ports: Ports::any(),
            bin_dir: bin_dir(),
            venv: root().join(".venv"),
            admin_token: format!("test-admin-{}", uuid::Uuid::new_v4().simple()),
            lms_api_key: LMS_API_KEY.into(),
            attached: true,
            function_env: opts.function_env,
            concurrency: opts.concurrency,
        };
        let stack = Stack::up(&cfg)?;
        Ok(Env {
            endpoints: stack.endpoints.clone(),
            admin_token: cfg.admin_token.clone(),
            http: client()?,
            stack_name,
            stack: Some(stack),
        })
    }

    /// Attach to the stack `make up` started (reads `stack.env`).
    pub fn attach(state_dir: &Path) -> anyhow::Result<Env> {
        let env = learnlink_local::stack::read_env(state_dir)?;
        let get = |k: &str| env.get(k).cloned().with_context(|| format!("{k} missing from stack.env"));
        Ok(Env {
            endpoints: Endpoints {
                aws_endpoint_url: get("AWS_ENDPOINT_URL")?,
                salesforce_url: get("SALESFORCE_URL")?,
                lms_url: get("LMS_URL")?,
                hris_url: get("HRIS_URL")?,
                api_url: get("LEARNLINK_API_URL")?,
                webhook_url: get("WEBHOOK_URL")?,
                runtime_url: get("LEARNLINK_RUNTIME_URL")?,
            },
            admin_token: get("LEARNLINK_ADMIN_TOKEN")?,
            http: client()?,
            stack_name: get("LEARNLINK_STACK")?,
            stack: None,
        })
    }

    pub fn queue_url(&self, logical_id: &str) -> String {
        format!(
            "{}/{}/{}-{logical_id}",
            self.endpoints.aws_endpoint_url,
            learnlink_local::wiring::ACCOUNT_ID,
            self.stack_name
        )
    }

    pub async fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&learnlink_adapters::aws::load_local(&self.endpoints.aws_endpoint_url, REGION).await)
    }

    async fn json(&self, req: reqwest::RequestBuilder) -> anyhow::Result<(u16, Value)> {
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    /// A tenant configuration with one canonical webhook source `lms`.
    pub fn tenant_config(&self, id: &str, webhook_secret: &str) -> Value {
        json!({
            "name": format!("Tenant {id}"),
            "salesforce": {"environment": {"my_domain": self.endpoints.salesforce_url}, "client_id": "learnlink-local"},
            "webhooks": {"sources": [{"name": "lms", "dialect": "canonical", "secrets": [webhook_secret]}]},
        })
    }

    /// `POST /admin/tenants` with [`Env::tenant_config`].
    pub async fn create_tenant(&self, id: &str, webhook_secret: &str) -> anyhow::Result<()> {
        let body = json!({"id": id, "config": self.tenant_config(id, webhook_secret)});
        let (status, v) = self
            .json(
                self.http
                    .post(format!("{}/admin/tenants", self.endpoints.api_url))
                    .bearer_auth(&self.admin_token)
                    .json(&body),
            )
            .await?;
        if status != 201 {
            bail!("creating tenant {id}: {status} {v}");
        }
        Ok(())
    }

    /// An admin API call with the admin token: `(status, JSON body)`.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req =
            self.http.request(method, format!("{}{path}", self.endpoints.api_url)).bearer_auth(&self.admin_token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.json(req).await
    }

    /// What a browser does for `learnlink connect`: open the start URL,
    /// follow the Salesforce login (the emulator approves at once) back to the
    /// callback. `tamper` may change the authorize URL first. Returns the
    /// callback's status and page.
    pub async fn browser_connect(
        &self,
        start_url: &str,
        tamper: impl FnOnce(String) -> String,
    ) -> anyhow::Result<(u16, String)> {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
        let r = client.get(start_url).send().await?;
        if r.status().as_u16() != 302 {
            return Ok((r.status().as_u16(), r.text().await?));
        }
        let authorize = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let r = client.get(tamper(authorize)).send().await?;
        let callback = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        if callback.is_empty() {
            return Ok((r.status().as_u16(), r.text().await?));
        }
        let r = client.get(&callback).send().await?;
        Ok((r.status().as_u16(), r.text().await?))
    }

    /// The URL `learnlink connect` opens.
    pub fn connect_url(&self, tenant: &str) -> String {
        format!("{}/oauth/{tenant}/start", self.endpoints.api_url)
    }

    /// Connect the tenant through the real OAuth flow (PKCE, single-use
    /// state) against the emulator; returns the stored token set, so tests
    /// can check it never reaches a log.
    pub async fn connect_salesforce(&self, tenant: &str) -> anyhow::Result<Value> {
        let (status, page) = self.browser_connect(&self.connect_url(tenant), |u| u).await?;
        if status != 200 {
            bail!("connecting {tenant}: {status} {page}");
        }
        self.stored_tokens(tenant).await
    }

    /// The token set stored in Secrets Manager for the tenant.
    pub async fn stored_tokens(&self, tenant: &str) -> anyhow::Result<Value> {
        use secrecy::ExposeSecret;
        let aws = learnlink_adapters::aws::load_local(&self.endpoints.aws_endpoint_url, REGION).await;
        let store = learnlink_adapters::secrets::SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&aws));
        let secret = store
            .get_secret(&format!("learnlink/{tenant}/salesforce"))
            .await
            .map_err(|e| anyhow::anyhow!(e.chain()))?
            .with_context(|| format!("no token secret for {tenant}"))?;
        Ok(serde_json::from_str(secret.expose_secret())?)
    }

    /// `POST /__emulator/...` on the Salesforce emulator.
    pub async fn sf_admin(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let (status, v) = self
            .json(self.http.post(format!("{}/__emulator{path}", self.endpoints.salesforce_url)).json(&body))
            .await?;
        if !(200..300).contains(&status) {
            bail!("emulator {path}: {status} {v}");
        }
        Ok(v)
    }

    /// Fire a schedule of the template through the runtime, as if at `at`.
    pub async fn fire(&self, function: &str, event: &str, at: Option<time::OffsetDateTime>) -> anyhow::Result<Value> {
        let mut url = format!("{}/schedules/{function}/{event}/fire", self.endpoints.runtime_url);
        if let Some(t) = at {
            url.push_str(&format!("?time={}", t.format(&time::format_description::well_known::Rfc3339)?));
        }
        let (status, v) = self.json(self.http.post(url)).await?;
        if status != 200 {
            bail!("firing {function}/{event}: {status} {v}");
        }
        Ok(v)
    }

    /// The tenant's status through the admin API.
    pub async fn status(&self, tenant: &str) -> anyhow::Result<Value> {
        let (status, v) = self.admin(reqwest::Method::GET, &format!("/admin/tenants/{tenant}/status"), None).await?;
        if status != 200 {
            bail!("status of {tenant}: {status} {v}");
        }
        Ok(v)
    }

    /// Every line of every log of this stack that contains one of `needles`.
    pub fn log_lines_containing(&self, needles: &[&str]) -> anyhow::Result<Vec<String>> {
        let Some(stack) = &self.stack else { bail!("only a stack this process started has its logs here") };
        let mut hits = Vec::new();
        for entry in std::fs::read_dir(stack.state_dir.join("logs"))? {
            let path = entry?.path();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for line in text.lines() {
                if needles.iter().any(|n| !n.is_empty() && line.contains(n)) {
                    hits.push(format!("{}: {line}", path.display()));
                }
            }
        }
        Ok(hits)
    }

    /// Regenerate the LMS emulator's data set.
    pub async fn lms_dataset(&self, learners: u32, enrollments_per_learner: u32) -> anyhow::Result<()> {
        let body = json!({"seed": 7, "learners": learners, "departments": 4, "courses": 6, "enrollments_per_learner": enrollments_per_learner});
        let (status, v) =
            self.json(self.http.post(format!("{}/__emulator/dataset", self.endpoints.lms_url)).json(&body)).await?;
        if status != 200 {
            bail!("setting the LMS data set: {status} {v}");
        }
        Ok(())
    }

    /// Every item of an LMS list endpoint, following its cursor.
    pub async fn lms_all(&self, what: &str) -> anyhow::Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10_000 {
            let mut req = self
                .http
                .get(format!("{}/api/v1/{what}", self.endpoints.lms_url))
                .bearer_auth(LMS_API_KEY)
                .query(&[("limit", "1000")]);
            if let Some(c) = &cursor {
                req = req.query(&[("cursor", c)]);
            }
            let (status, v) = self.json(req).await?;
            if status != 200 {
                bail!("listing {what}: {status} {v}");
            }
            out.extend(v["data"].as_array().cloned().unwrap_or_default());
            match v["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return Ok(out),
            }
        }
        bail!("listing {what}: the cursor did not end")
    }

    /// Create a Contact in the emulator for each LMS learner (linked by
    /// `LMS_Learner_Id__c`), as an org that already tracks its learners would have.
    pub async fn seed_contacts_for_learners(&self) -> anyhow::Result<usize> {
        let learners = self.lms_all("learners").await?;
        let contacts: Vec<Value> = learners
            .iter()
            .map(|l| json!({"FirstName": l["first_name"], "LastName": l["last_name"], "Email": l["email"], "LMS_Learner_Id__c": l["id"]}))
            .collect();
        for chunk in contacts.chunks(1000) {
            let (status, v) = self
                .json(
                    self.http
                        .post(format!("{}/__emulator/records/Contact", self.endpoints.salesforce_url))
                        .json(&chunk),
                )
                .await?;
            if status != 200 && status != 201 {
                bail!("seeding contacts: {status} {v}");
            }
        }
        Ok(contacts.len())
    }

    /// Ask the LMS emulator to send signed canonical webhooks.
    pub async fn emit_webhooks(&self, tenant: &str, secret: &str, extra: Value) -> anyhow::Result<Value> {
        let mut body = json!({"target_url": format!("{}/{tenant}/lms", self.endpoints.webhook_url), "dialect": "canonical", "secret": secret});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let (status, v) = self
            .json(self.http.post(format!("{}/__emulator/webhooks/emit", self.endpoints.lms_url)).json(&body))
            .await?;
        if status != 200 {
            bail!("emitting webhooks: {status} {v}");
        }
        Ok(v)
    }

    /// POST a body to the webhook URL with the given headers.
    pub async fn post_webhook(
        &self,
        path: &str,
        body: &str,
        headers: &[(&str, String)],
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self.http.post(format!("{}/{path}", self.endpoints.webhook_url)).body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        self.json(req).await
    }

    pub async fn sf_records(&self, sobject: &str) -> anyhow::Result<Vec<Value>> {
        let (status, v) =
            self.json(self.http.get(format!("{}/__emulator/records/{sobject}", self.endpoints.salesforce_url))).await?;
        if status != 200 {
            bail!("reading {sobject}: {status} {v}");
        }
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    pub async fn sf_stats(&self) -> anyhow::Result<Value> {
        Ok(self.json(self.http.get(format!("{}/__emulator/stats", self.endpoints.salesforce_url))).await?.1)
    }

    pub async fn runtime(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self.json(self.http.get(format!("{}/{path}", self.endpoints.runtime_url))).await?.1)
    }

    pub async fn runtime_post(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        self.json(self.http.post(format!("{}/{path}", self.endpoints.runtime_url))).await
    }

    pub async fn get(&self, url: &str) -> anyhow::Result<(u16, Value)> {
        self.json(self.http.get(url)).await
    }

    /// Messages in a queue (visible + in flight).
    pub async fn queue_depth(&self, logical_id: &str) -> anyhow::Result<u64> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .sqs()
            .await
            .get_queue_attributes()
            .queue_url(self.queue_url(logical_id))
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await?;
        let a = out.attributes.unwrap_or_default();
        let n = |k: A| a.get(&k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        Ok(n(A::ApproximateNumberOfMessages) + n(A::ApproximateNumberOfMessagesNotVisible))
    }
}

fn client() -> anyhow::Result<reqwest::Client> {
    learnlink_adapters::install_crypto_provider();
    Ok(reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?)
}

/// Poll `f` until it returns `Some`, at most `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sign a canonical webhook body as an LMS would.
pub fn sign(secret: &str, body: &str) -> String {
    learnlink_core::webhook::canonical::sign(secret, time::OffsetDateTime::now_utc().unix_timestamp(), body.as_bytes())
}

/// A Salesforce emulator process on a free port (dies with this process).
pub struct SfEmulator {
    pub url: String,
    child: std::process::Child,
}

impl SfEmulator {
    pub fn start() -> anyhow::Result<SfEmulator> {
        use std::io::BufRead as _;
        learnlink_adapters::install_crypto_provider();
        let mut cmd = std::process::Command::new(bin_dir().join("sf-emulator"));
        cmd.args(["--host", "127.0.0.1", "--port", "0"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        learnlink_local::process::die_with_parent(&mut cmd);
        let mut child = cmd.spawn().context("starting sf-emulator (build it first: cargo build --bins)")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        let url = line.trim().strip_prefix("listening on ").map(str::to_string);
        match url {
            Some(url) => Ok(SfEmulator { url, child }),
            None => {
                let _ = child.kill();
                bail!("sf-emulator did not say where it listens (got {line:?})")
            }
        }
    }
}

impl Drop for SfEmulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- the review queue and the dead-letter queue ------------------------------------

impl Env {
    /// Run the `learnlink` CLI against this stack with the admin token (no colours).
    pub fn learnlink(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        std::process::Command::new(bin_dir().join("learnlink"))
            .args(["--api-url", &self.endpoints.api_url, "--token", &self.admin_token, "--no-color"])
            .args(args)
            .env_remove("LEARNLINK_API_URL")
            .env_remove("LEARNLINK_ADMIN_TOKEN")
            .output()
            .context("running learnlink (build it first: make bins)")
    }

    /// Clear every pending fault of the Salesforce emulator.
    pub async fn sf_clear_faults(&self) -> anyhow::Result<()> {
        let r = self.http.delete(format!("{}/__emulator/faults", self.endpoints.salesforce_url)).send().await?;
        if !r.status().is_success() {
            bail!("clearing the emulator's faults: {}", r.status());
        }
        Ok(())
    }
}

impl Env {
    /// `POST /admin/tenants` with [`Env::tenant_config`], the LMS emulator as
    /// the tenant's LMS API, and these sync settings (SPEC §4.3).
    pub async fn create_tenant_with_lms(&self, id: &str, webhook_secret: &str, sync: Value) -> anyhow::Result<()> {
        let mut config = self.tenant_config(id, webhook_secret);
        config["lms"] = json!({"base_url": self.endpoints.lms_url, "api_key": LMS_API_KEY});
        config["sync"] = sync;
        let (status, v) =
            self.admin(reqwest::Method::POST, "/admin/tenants", Some(json!({"id": id, "config": config}))).await?;
        if status != 201 {
            bail!("creating tenant {id}: {status} {v}");
        }
        Ok(())
    }
}

// ---- job 2: imports --------------------------------------------------------------

impl Env {
    /// A tenant whose LMS is the stack's emulator and whose import is `import`.
    pub async fn create_tenant_with_import(&self, id: &str, webhook_secret: &str, import: Value) -> anyhow::Result<()> {
        let mut config = self.tenant_config(id, webhook_secret);
        config["lms"] = json!({"base_url": self.endpoints.lms_url, "api_key": LMS_API_KEY});
        config["import"] = import;
        let (status, v) =
            self.admin(reqwest::Method::POST, "/admin/tenants", Some(json!({"id": id, "config": config}))).await?;
        if status != 201 {
            bail!("creating tenant {id}: {status} {v}");
        }
        Ok(())
    }

    /// Salesforce Users `first..first+count` (`bench{n}@users.test`), seeded
    /// through the emulator's admin API (no API call counted), 5,000 a request.
    pub async fn seed_sf_users(&self, first: u32, count: u32) -> anyhow::Result<()> {
        let org = self.sf_get("/org").await?;
        let profile = org["identity"]["profiles"]
            .as_array()
            .and_then(|ps| {
                ps.iter()
                    .flat_map(|p| p.as_array().cloned().unwrap_or_default())
                    .find(|v| v.as_str().is_some_and(|s| s.starts_with("00e")))
            })
            .and_then(|v| v.as_str().map(str::to_string))
            .context("the emulator's org has no profile")?;
        let mut n = first;
        while n < first + count {
            let end = (n + 5_000).min(first + count);
            let rows: Vec<Value> = (n..end)
                .map(|i| {
                    let department = ["Sales", "Support", "R&D"][(i % 3) as usize];
                    json!({"Username": format!("bench{i}@users.test"), "LastName": format!("User {i}"), "FirstName": "Bench",
                        "Email": format!("bench{i}@users.test"), "Alias": format!("b{}", i % 1_000_000), "IsActive": true,
                        "TimeZoneSidKey": "GMT", "LocaleSidKey": "en_US", "EmailEncodingKey": "UTF-8",
                        "LanguageLocaleKey": "en_US", "ProfileId": profile, "Department": department,
                        "Title": "Engineer"})
                })
                .collect();
            let r = self
                .http
                .post(format!("{}/__emulator/records/User?lenient=true", self.endpoints.salesforce_url))
                .json(&rows)
                .send()
                .await?;
            if !r.status().is_success() {
                bail!("seeding users: {} {}", r.status(), r.text().await.unwrap_or_default());
            }
            n = end;
        }
        Ok(())
    }

    async fn sf_get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self.http.get(format!("{}/__emulator{path}", self.endpoints.salesforce_url)).send().await?.json().await?)
    }

    /// `POST /admin/tenants/{t}/imports`: the run id.
    pub async fn start_import(&self, tenant: &str, dry_run: bool) -> anyhow::Result<String> {
        let (status, v) = self
            .admin(
                reqwest::Method::POST,
                &format!("/admin/tenants/{tenant}/imports"),
                Some(json!({"dry_run": dry_run})),
            )
            .await?;
        if status != 202 {
            bail!("starting the import of {tenant}: {status} {v}");
        }
        Ok(v["run_id"].as_str().unwrap_or_default().to_string())
    }

    /// Waits for run `run_id` to finish (done or interrupted): its run document.
    pub async fn wait_import(
        &self,
        tenant: &str,
        run_id: &str,
        dry_run: bool,
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        let lane = if dry_run { "dry_run" } else { "live" };
        wait_for("the import run", timeout, || async {
            let (_, v) = self.admin(reqwest::Method::GET, &format!("/admin/tenants/{tenant}/imports"), None).await?;
            let run = v[lane]["run"].clone();
            Ok((run["run_id"] == run_id && run["status"] != "running").then_some(run))
        })
        .await
    }
}

pub mod core_bench;
pub mod jsforce_bench;

// ---- job 3: backfills ------------------------------------------------------------

impl Env {
    /// A tenant whose LMS is the stack's emulator, with these backfill
    /// settings (SPEC §6: shard_size, bulk_threshold, kill_switch).
    pub async fn create_tenant_for_backfill(
        &self,
        id: &str,
        webhook_secret: &str,
        backfill: Value,
    ) -> anyhow::Result<()> {
        let mut config = self.tenant_config(id, webhook_secret);
        config["lms"] = json!({"base_url": self.endpoints.lms_url, "api_key": LMS_API_KEY});
        config["backfill"] = backfill;
        let (status, v) =
            self.admin(reqwest::Method::POST, "/admin/tenants", Some(json!({"id": id, "config": config}))).await?;
        if status != 201 {
            bail!("creating tenant {id}: {status} {v}");
        }
        Ok(())
    }

    /// `POST /admin/tenants/{t}/backfills` (served by backfill-fanout).
    pub async fn start_backfill(&self, tenant: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        self.admin(reqwest::Method::POST, &format!("/admin/tenants/{tenant}/backfills"), Some(body)).await
    }

    /// `GET /admin/tenants/{t}/backfills/{id}?shards=true`: status and body.
    async fn backfill_answer(&self, tenant: &str, id: &str) -> anyhow::Result<(u16, Value)> {
        self.admin(reqwest::Method::GET, &format!("/admin/tenants/{tenant}/backfills/{id}?shards=true"), None).await
    }

    /// `GET /admin/tenants/{t}/backfills/{id}?shards=true`.
    pub async fn backfill(&self, tenant: &str, id: &str) -> anyhow::Result<Value> {
        let (status, v) = self.backfill_answer(tenant, id).await?;
        if status != 200 {
            bail!("backfill {id}: {status} {v}");
        }
        Ok(v)
    }

    /// Wait until the backfill's status is final and its kill switch is no
    /// longer engaged (it is restored just after the final status is
    /// stored); returns its view. A 503 (a store unavailable for a moment:
    /// "retry later") is ridden out as `learnlink backfill status --watch`
    /// does; any other error ends the wait.
    pub async fn wait_backfill(&self, tenant: &str, id: &str, timeout: Duration) -> anyhow::Result<Value> {
        wait_for(&format!("backfill {id} to end"), timeout, || async {
            let (status, v) = self.backfill_answer(tenant, id).await?;
            match status {
                200 => {}
                503 => {
                    eprintln!("backfill {id}: 503 {v}; reading again");
                    return Ok(None);
                }
                _ => bail!("backfill {id}: {status} {v}"),
            }
            let s = v["backfill"]["status"].as_str().unwrap_or("");
            let engaged = v["backfill"]["kill_switch"]["state"] == "engaged";
            Ok((matches!(s, "completed" | "failed" | "cancelled") && !engaged).then_some(v))
        })
        .await
    }

    /// The org default `Bypass_Automation__c` (None: no org-default record).
    pub async fn bypass_automation(&self) -> anyhow::Result<Option<bool>> {
        let rows = self.sf_records("LMS_Sync_Settings__c").await?;
        Ok(rows.first().map(|r| r["Bypass_Automation__c"].as_bool().unwrap_or(false)))
    }
}

// ---- bad input, tenant isolation, SOQL injection ---------------------------------

/// An HTTP answer read off the wire by [`raw_request`].
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// (lowercase name, value) in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// One HTTP/1.1 request sent exactly as written — method, request target
/// (`..`, `%2F`, case and trailing slashes are not normalised, as a URL
/// parser such as reqwest's would) and headers (no `Content-Type` unless
/// given) — to the `http://host:port` of `base_url`.
pub async fn raw_request(
    base_url: &str,
    method: &str,
    target: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> anyhow::Result<RawResponse> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let url = url::Url::parse(base_url)?;
    let host = url.host_str().context("the base URL has no host")?.to_string();
    let port = url.port_or_known_default().context("the base URL has no port")?;
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
        let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        stream.flush().await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        anyhow::Ok(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(90), exchange).await.context("no answer within 90 s")??;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").context("the answer has no header end")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut rest = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        let mut body = Vec::new();
        let mut at = 0;
        loop {
            let end = rest[at..].windows(2).position(|w| w == b"\r\n").context("a chunk has no size line")? + at;
            let size_text = String::from_utf8_lossy(&rest[at..end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .with_context(|| format!("bad chunk size {size_text:?}"))?;
            if size == 0 {
                break;
            }
            let start = end + 2;
            body.extend_from_slice(rest.get(start..start + size).context("a chunk is cut short")?);
            at = start + size + 2;
        }
        rest = body;
    } else if let Some(n) = headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()) {
        rest.truncate(n);
    }
    Ok(RawResponse { status, headers, body: rest })
}

impl Env {
    pub async fn dynamo(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(
            &learnlink_adapters::aws::load_local(&self.endpoints.aws_endpoint_url, REGION).await,
        )
    }

    /// `(logical id, physical name)` of the stack's `tables` or `queues`, as
    /// the local runtime wired them from the template.
    pub async fn wired(&self, kind: &str) -> anyhow::Result<Vec<(String, String)>> {
        let wiring = self.runtime("wiring").await?;
        let list = wiring[kind].as_array().with_context(|| format!("the wiring lists no {kind}: {wiring}"))?;
        Ok(list
            .iter()
            .map(|t| (t["logical_id"].as_str().unwrap_or("").to_string(), t["name"].as_str().unwrap_or("").to_string()))
            .collect())
    }

    /// Every item of every DynamoDB table of the stack:
    /// `"<table>|<pk>|<sk>"` → the item (attributes in name order, values as
    /// the SDK prints them), for before/after comparisons.
    pub async fn dynamo_items(&self) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
        use std::collections::BTreeMap;
        let ddb = self.dynamo().await;
        let mut out = BTreeMap::new();
        for (logical, table) in self.wired("tables").await? {
            let mut start: Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> = None;
            loop {
                let page = ddb
                    .scan()
                    .table_name(&table)
                    .consistent_read(true)
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .with_context(|| format!("scanning {table}"))?;
                for item in page.items.unwrap_or_default() {
                    let key = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                    let sorted: BTreeMap<&String, String> = item.iter().map(|(k, v)| (k, format!("{v:?}"))).collect();
                    out.insert(format!("{logical}|{}|{}", key("pk"), key("sk")), format!("{sorted:?}"));
                }
                match page.last_evaluated_key {
                    Some(k) if !k.is_empty() => start = Some(k),
                    _ => break,
                }
            }
        }
        Ok(out)
    }

    /// Every queue of the stack (logical id) and the messages it holds:
    /// visible, in flight and delayed.
    pub async fn queue_depths(&self) -> anyhow::Result<std::collections::BTreeMap<String, u64>> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let sqs = self.sqs().await;
        let mut out = std::collections::BTreeMap::new();
        for (logical, _) in self.wired("queues").await? {
            let got = sqs
                .get_queue_attributes()
                .queue_url(self.queue_url(&logical))
                .attribute_names(A::ApproximateNumberOfMessages)
                .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
                .attribute_names(A::ApproximateNumberOfMessagesDelayed)
                .send()
                .await
                .with_context(|| format!("reading the depth of {logical}"))?;
            let a = got.attributes.unwrap_or_default();
            let n = |k: A| a.get(&k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            out.insert(
                logical,
                n(A::ApproximateNumberOfMessages)
                    + n(A::ApproximateNumberOfMessagesNotVisible)
                    + n(A::ApproximateNumberOfMessagesDelayed),
            );
        }
        Ok(out)
    }

    /// The secrets stored in Secrets Manager: name → when it last changed.
    pub async fn secrets_changed(&self) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
        let aws = learnlink_adapters::aws::load_local(&self.endpoints.aws_endpoint_url, REGION).await;
        let sm = aws_sdk_secretsmanager::Client::new(&aws);
        let mut out = std::collections::BTreeMap::new();
        let mut token: Option<String> = None;
        loop {
            let page = sm.list_secrets().set_next_token(token.take()).send().await.context("listing secrets")?;
            for s in page.secret_list.unwrap_or_default() {
                let changed = s.last_changed_date.map(|d| d.to_string()).unwrap_or_default();
                out.insert(s.name.unwrap_or_default(), changed);
            }
            match page.next_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => return Ok(out),
            }
        }
    }

    /// Insert records into the Salesforce org at `org_url` (this stack's
    /// emulator, or another [`SfEmulator`]) through its admin API: their ids.
    pub async fn sf_insert_into(&self, org_url: &str, sobject: &str, records: &[Value]) -> anyhow::Result<Vec<String>> {
        let (status, v) =
            self.json(self.http.post(format!("{org_url}/__emulator/records/{sobject}")).json(&records)).await?;
        if status != 200 && status != 201 {
            bail!("inserting {sobject} records: {status} {v}");
        }
        Ok(v.as_array().into_iter().flatten().filter_map(|r| r["id"].as_str().map(str::to_string)).collect())
    }

    /// Every record of `sobject` in the org at `org_url`.
    pub async fn sf_records_in(&self, org_url: &str, sobject: &str) -> anyhow::Result<Vec<Value>> {
        let (status, v) = self.json(self.http.get(format!("{org_url}/__emulator/records/{sobject}"))).await?;
        if status != 200 {
            bail!("reading {sobject} of {org_url}: {status} {v}");
        }
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// `POST /api/v1/learners` on the LMS emulator: the learner created.
    pub async fn lms_create_learner(&self, learner: Value) -> anyhow::Result<Value> {
        let (status, v) = self
            .json(
                self.http
                    .post(format!("{}/api/v1/learners", self.endpoints.lms_url))
                    .bearer_auth(LMS_API_KEY)
                    .json(&learner),
            )
            .await?;
        if status != 201 {
            bail!("creating the learner {learner}: {status} {v}");
        }
        Ok(v)
    }
}

// ---- the chaos run (issue 9) -----------------------------------------------------

pub mod chaos;
