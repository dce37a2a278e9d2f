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
