//! What the JSON-over-HTTP clients of the LMS ([`crate::lms`]) and the HRIS
//! ([`crate::hris`]) share: the reqwest client (rustls/ring, timeouts,
//! learnlink's user agent, redirects never followed: they would carry the
//! credentials elsewhere), the base URL errors name, and the one mapping of
//! answers onto the error taxonomy:
//! - 429 → throttled, with the `Retry-After` seconds as a [`Throttled`]
//!   cause ([`retry_after`] reads it back);
//! - 5xx, 408, transport failures (connect, timeout, reset), a truncated or
//!   non-JSON body → retryable;
//! - 401/403 (the credentials), 400, 404 and other 4xx, redirects, JSON of the
//!   wrong shape → permanent.
//!
//! Every message names the API and its base URL, never a secret of the
//! connection (a message of the server echoing one is redacted) nor a URL
//! with its query.

use std::fmt;
use std::time::Duration;

use learnlink_core::{ErrorClass, PortError};
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;

/// The cause attached to a throttled [`PortError`]: how long the server asked
/// to wait (`Retry-After` in seconds), when it said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: Option<Duration>,
}

impl fmt::Display for Throttled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.retry_after {
            Some(d) => write!(f, "Retry-After: {} s", d.as_secs()),
            None => f.write_str("no Retry-After"),
        }
    }
}

impl std::error::Error for Throttled {}

/// The wait the server asked for, if `e` is a throttled answer that carried
/// one.
pub fn retry_after(e: &PortError) -> Option<Duration> {
    e.source.as_deref().and_then(|s| s.downcast_ref::<Throttled>()).and_then(|t| t.retry_after)
}

/// How errors name one API and read its answers.
pub(crate) struct Api {
    /// The API in messages: `LMS`, `HRIS`.
    pub name: &'static str,
    /// The path segments between the base URL and an endpoint's own.
    pub prefix: &'static [&'static str],
    /// Whose JSON a body of the wrong shape is not: `the canonical LMS API's`.
    pub schema: &'static str,
    /// What a 401/403 asks to check: `LMS API key`.
    pub credentials: &'static str,
    /// JSON pointers to the server's own sentence in an error body, tried in
    /// order (the first present must be a string).
    pub message_at: &'static [&'static str],
}

/// A tenant's connection to an API.
pub(crate) trait Connection {
    const API: &'static Api;
    fn base_url(&self) -> &str;
    /// Every secret the connection holds: none may appear in an error.
    fn secrets(&self) -> Vec<&str>;
}

/// The HTTP client of `api`: these timeouts, learnlink's user agent, no
/// redirects followed.
pub(crate) fn client(
    api: &Api,
    connect_timeout: Duration,
    request_timeout: Duration,
) -> Result<reqwest::Client, PortError> {
    crate::install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .timeout(request_timeout)
        .user_agent(concat!("learnlink/", env!("CARGO_PKG_VERSION")))
        // A redirect would carry the credentials elsewhere: never follow.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| PortError::permanent(format!("building the {} HTTP client", api.name)).with_source(e))
}

/// One server of an API, as errors name it (the base URL without credentials
/// or query).
pub(crate) struct Endpoint<'a, C: Connection> {
    base: Url,
    pub shown: String,
    pub conn: &'a C,
}

impl<'a, C: Connection> Endpoint<'a, C> {
    pub fn new(conn: &'a C) -> Result<Self, PortError> {
        let invalid = || {
            PortError::permanent(format!(
                "the {} base URL {:?} is not an http(s) URL without credentials, query or fragment",
                C::API.name,
                conn.base_url().chars().take(200).collect::<String>()
            ))
        };
        let base = Url::parse(conn.base_url().trim()).map_err(|_| invalid())?;
        let ok = matches!(base.scheme(), "http" | "https")
            && base.host_str().is_some_and(|h| !h.is_empty())
            && base.username().is_empty()
            && base.password().is_none()
            && base.query().is_none()
            && base.fragment().is_none()
            && !base.cannot_be_a_base();
        if !ok {
            return Err(invalid());
        }
        let shown = base.as_str().trim_end_matches('/').to_string();
        Ok(Endpoint { base, shown, conn })
    }

    /// `{base}/<the API's prefix>/<segments>`.
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(C::API.prefix).extend(segments);
        }
        url
    }

    /// Text from the server, safe to put in an error: no secret of the
    /// connection appears, and it is kept short.
    pub fn scrub(&self, text: &str) -> String {
        let mut out: String = text.chars().take(300).collect();
        for secret in self.conn.secrets() {
            if !secret.is_empty() {
                out = out.replace(secret, "[redacted]");
            }
        }
        out
    }

    /// A request that did not complete. No URL in the message or the cause
    /// (a query may carry ids).
    pub fn transport(&self, what: &str, e: reqwest::Error) -> PortError {
        let e = e.without_url();
        let (class, why) = if e.is_timeout() {
            (ErrorClass::Retryable, "timed out")
        } else if e.is_connect() {
            (ErrorClass::Retryable, "could not connect")
        } else if e.is_builder() {
            (ErrorClass::Permanent, "could not be built")
        } else {
            (ErrorClass::Retryable, "did not complete")
        };
        PortError::new(class, format!("{} {}: {what}: the request {why}", C::API.name, self.shown)).with_source(e)
    }

    /// The JSON body of a successful answer; any other answer, a body cut
    /// short or one that does not parse, in the taxonomy.
    pub async fn read_json<T: DeserializeOwned>(&self, what: &str, resp: reqwest::Response) -> Result<T, PortError> {
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = resp.bytes().await.map_err(|e| self.transport(&format!("reading the answer to {what}"), e))?;
        if !status.is_success() {
            return Err(self.status_error(what, status, retry_after, &body));
        }
        serde_json::from_slice(&body).map_err(|e| {
            let class = if e.is_data() { ErrorClass::Permanent } else { ErrorClass::Retryable };
            let why = if e.is_data() {
                format!("JSON that is not {}", C::API.schema)
            } else {
                "a body that is not JSON".into()
            };
            PortError::new(
                class,
                format!("{} {}: {what} answered {} with {why}", C::API.name, self.shown, status.as_u16()),
            )
            .with_source(e)
        })
    }

    /// An answer that is not a success, in the taxonomy.
    fn status_error(&self, what: &str, status: StatusCode, retry_after: Option<Duration>, body: &[u8]) -> PortError {
        let api = C::API;
        let code = status.as_u16();
        let reason = status.canonical_reason().map(|r| format!(" {r}")).unwrap_or_default();
        // The server's own sentence, when it sent one where the API puts it.
        let detail = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                let m = api.message_at.iter().find_map(|p| v.pointer(p))?.as_str()?;
                Some(format!(": {}", self.scrub(m)))
            })
            .unwrap_or_default();
        let head = format!("{} {}: {what} answered {code}{reason}{detail}", api.name, self.shown);
        match code {
            429 => {
                let wait = match retry_after {
                    Some(d) => format!("; retry after {} s", d.as_secs()),
                    None => String::new(),
                };
                PortError::throttled(format!("{head}{wait}")).with_source(Throttled { retry_after })
            }
            408 | 500..=599 => PortError::retryable(head),
            401 | 403 => {
                PortError::permanent(format!("{head} (check the {} configured for this tenant)", api.credentials))
            }
            300..=399 => {
                PortError::permanent(format!("{head} (redirects are not followed; check the {} base URL)", api.name))
            }
            404 => PortError::permanent(format!("{head} (check the {} base URL)", api.name)),
            _ => PortError::permanent(head),
        }
    }
}

/// What the clients' tests share: mock servers and what an error reveals.
#[cfg(test)]
pub(crate) mod testkit {
    use learnlink_core::PortError;
    use serde_json::Value;

    /// Serves `router` on a free local port: its base URL.
    pub async fn mock(router: axum::Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        format!("http://{addr}")
    }

    /// A base URL nothing listens on.
    pub async fn refused_url() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        format!("http://{addr}")
    }

    /// Every message and cause of `e`, for checking what it reveals.
    pub fn everything(e: &PortError) -> String {
        format!("{} | {e:?}", e.chain())
    }

    /// An emulator served in-process on a free local port, stopped when
    /// dropped.
    pub struct Emulator {
        pub base: String,
        pub http: reqwest::Client,
        task: tokio::task::JoinHandle<std::io::Result<()>>,
    }

    impl Drop for Emulator {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl Emulator {
        /// Spawns `serve` on a listener of its own.
        pub async fn start<F>(serve: impl FnOnce(tokio::net::TcpListener) -> F) -> Emulator
        where
            F: Future<Output = std::io::Result<()>> + Send + 'static,
        {
            crate::install_crypto_provider();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let task = tokio::spawn(serve(listener));
            Emulator { base, http: reqwest::Client::new(), task }
        }

        /// An admin call (no auth) that must succeed: its JSON answer.
        pub async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
            let r = self.http.request(method, format!("{}{path}", self.base)).json(&body).send().await.unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
            r.json().await.unwrap()
        }

        /// `GET path` with this bearer key, which must succeed: its JSON answer.
        pub async fn get(&self, path: &str, key: &str) -> Value {
            let r = self.http.get(format!("{}{path}", self.base)).bearer_auth(key).send().await.unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
            r.json().await.unwrap()
        }
    }
}
