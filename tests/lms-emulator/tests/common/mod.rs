//! In-process LMS emulator for integration tests.
#![allow(dead_code)]

use serde_json::{Value, json};

pub const KEY: &str = "lms-local-key";

pub struct Lms {
    pub base: String,
    pub client: reqwest::Client,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Lms {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn start() -> Lms {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(lms_emulator::serve(listener, lms_emulator::Config::default()));
    Lms { base, client: reqwest::Client::new(), task }
}

impl Lms {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn dataset(&self, seed: u64, learners: u32, departments: u32, courses: u32, per: u32) -> Value {
        let r = self
            .client
            .post(self.url("/__emulator/dataset"))
            .json(&json!({"seed": seed, "learners": learners, "departments": departments, "courses": courses, "enrollments_per_learner": per}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        r.json().await.unwrap()
    }

    /// GET with the API key; returns (status, raw body).
    pub async fn get_raw(&self, path: &str) -> (u16, Vec<u8>) {
        let r = self.client.get(self.url(path)).bearer_auth(KEY).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.bytes().await.unwrap().to_vec())
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let (s, b) = self.get_raw(path).await;
        (s, serde_json::from_slice(&b).unwrap())
    }

    /// Every item of a list endpoint, following cursors.
    pub async fn all(&self, endpoint: &str, extra: &str, limit: usize) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..100_000 {
            let mut path = format!("{endpoint}?limit={limit}{extra}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (status, page) = self.get(&path).await;
            assert_eq!(status, 200, "{page}");
            out.extend(page["data"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return out,
            }
        }
        panic!("paging did not end");
    }
}
