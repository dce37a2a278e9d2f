//! In-process emulator for integration tests.
#![allow(dead_code)]

use serde_json::{Value, json};

pub const V: &str = "v63.0";

pub struct Emu {
    pub base: String,
    pub client: reqwest::Client,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Emu {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn start() -> Emu {
    start_with(sf_emulator::Config::default()).await
}

pub async fn start_with(config: sf_emulator::Config) -> Emu {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(sf_emulator::serve(listener, config));
    Emu { base, client: reqwest::Client::new(), task }
}

pub struct Conn {
    pub access_token: String,
    pub refresh_token: String,
}

impl Emu {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn data(&self, path: &str) -> String {
        format!("{}/services/data/{V}{}", self.base, path)
    }

    pub async fn admin(&self, path: &str, body: Value) -> Value {
        let r = self.client.post(self.url(&format!("/__emulator{path}"))).json(&body).send().await.unwrap();
        assert!(r.status().is_success(), "admin {path}: {}", r.status());
        r.json().await.unwrap()
    }

    pub async fn admin_get(&self, path: &str) -> Value {
        self.client.get(self.url(&format!("/__emulator{path}"))).send().await.unwrap().json().await.unwrap()
    }

    pub async fn connect(&self) -> Conn {
        let v = self.admin("/connections", json!({})).await;
        Conn {
            access_token: v["access_token"].as_str().unwrap().to_owned(),
            refresh_token: v["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    /// PATCH composite/sobjects/{obj}/{field}; returns (status, body).
    pub async fn upsert(&self, token: &str, obj: &str, field: &str, body: Value) -> (u16, Value) {
        let r = self
            .client
            .patch(self.data(&format!("/composite/sobjects/{obj}/{field}")))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    pub async fn query(&self, token: &str, q: &str) -> (u16, Value) {
        let r = self.client.get(self.data("/query")).query(&[("q", q)]).bearer_auth(token).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    pub async fn get_path(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self.client.get(self.url(path)).bearer_auth(token).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    pub async fn seed_contacts(&self, n: usize) {
        let records: Vec<Value> = (0..n)
            .map(|i| {
                json!({
                    "FirstName": "Ada",
                    "LastName": format!("Learner{i}"),
                    "Email": format!("ada{i}@example.com"),
                    "LMS_Learner_Id__c": format!("L{i}"),
                })
            })
            .collect();
        let r = self.client.post(self.url("/__emulator/records/Contact")).json(&records).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 201);
    }
}

pub fn enrollment(id: &str, learner: &str, status: &str) -> Value {
    json!({
        "attributes": {"type": "LMS_Enrollment__c"},
        "LMS_Enrollment_Id__c": id,
        "Contact__r": {"attributes": {"type": "Contact"}, "LMS_Learner_Id__c": learner},
        "Course_Id__c": "C001",
        "Course_Title__c": "Safety 101",
        "Status__c": status,
        "Progress__c": 50,
        "Score__c": null,
        "Enrolled_At__c": "2026-05-12T10:00:00.000Z",
        "LMS_Updated_At__c": "2026-05-12T11:00:00.000Z",
    })
}

pub fn first_error(v: &Value) -> (&str, &str) {
    (v["errors"][0]["statusCode"].as_str().unwrap_or(""), v["errors"][0]["message"].as_str().unwrap_or(""))
}

/// A response: status, headers, body (JSON, or the text as a JSON string).
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }
}

impl Emu {
    /// Any request; `path` is absolute (`/services/...`).
    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self.client.request(m, self.url(path));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text.clone()))
        };
        Resp { status, headers, body, text }
    }

    /// A request under `/services/data/{V}`.
    pub async fn api(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Resp {
        self.call(method, &format!("/services/data/{V}{path}"), Some(token), body).await
    }

    /// Seeds records through the admin API; returns their ids.
    pub async fn seed(&self, sobject: &str, records: Value) -> Vec<String> {
        let r =
            self.client.post(self.url(&format!("/__emulator/records/{sobject}"))).json(&records).send().await.unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 201, "seeding {sobject}: {body}");
        body.as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap().to_owned()).collect()
    }

    pub async fn settings(&self, body: Value) -> Value {
        self.admin("/settings", body).await
    }

    /// POST /services/oauth2/token with a form.
    pub async fn token(&self, path_prefix: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(&format!("{path_prefix}/services/oauth2/token")))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }
}

/// A client that does not follow redirects (to read authorize's 302).
pub fn no_redirect_client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}
