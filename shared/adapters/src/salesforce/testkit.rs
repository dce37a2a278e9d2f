//! Test helpers: in-process axum mock servers on 127.0.0.1, a sleeper that
//! records instead of waiting, and the recorded Salesforce exchanges in
//! `../shared/fixtures/salesforce/recorded/` (read at run time, never copied).

use super::{ClientConfig, SalesforceClient, Sleeper};
use axum::Router;
use futures::future::BoxFuture;
use learnlink_core::salesforce::Session;
use secrecy::SecretString;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub async fn mock(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// A local address nothing listens on.
pub async fn refused_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

pub fn client() -> SalesforceClient {
    SalesforceClient::new().unwrap()
}

pub fn session(url: &str) -> Session {
    Session { instance_url: url.to_string(), access_token: SecretString::from("tok") }
}

/// Records the waits it is asked for and returns at once.
#[derive(Default)]
pub struct RecordingSleeper {
    pub waits: Mutex<Vec<Duration>>,
}

impl Sleeper for RecordingSleeper {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.waits.lock().unwrap().push(duration);
        Box::pin(async {})
    }
}

pub fn client_with_sleeper(tune: impl FnOnce(&mut ClientConfig)) -> (SalesforceClient, Arc<RecordingSleeper>) {
    let sleeper = Arc::new(RecordingSleeper::default());
    let mut config = ClientConfig { sleeper: sleeper.clone(), ..ClientConfig::default() };
    tune(&mut config);
    (SalesforceClient::with_config(config).unwrap(), sleeper)
}

/// The recorded exchanges of one fixture file, or `None` (with a note)
/// when the shared fixtures are not beside the repository.
pub fn recorded(name: &str) -> Option<Vec<Value>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/salesforce/recorded");
    let path = dir.join(format!("{name}.json"));
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!("SKIPPED: recorded Salesforce fixture not found at {}", path.display());
        return None;
    };
    let doc: Value = serde_json::from_str(&text).unwrap();
    Some(doc["exchanges"].as_array().unwrap().clone())
}

/// The response of a recorded exchange as an axum answer (status, the
/// headers that matter, body).
pub fn replay(exchange: &Value) -> axum::response::Response {
    use axum::response::IntoResponse;
    let resp = &exchange["response"];
    let status = axum::http::StatusCode::from_u16(resp["status"].as_u64().unwrap() as u16).unwrap();
    let mut headers = axum::http::HeaderMap::new();
    for (k, v) in resp["headers"].as_object().unwrap() {
        headers.insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            axum::http::HeaderValue::from_str(v.as_str().unwrap()).unwrap(),
        );
    }
    let body = match &resp["body"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    (status, headers, body).into_response()
}
