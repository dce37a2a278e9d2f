//! The local stack's one AWS endpoint in front of two moto processes.
//!
//! moto is one Python process: under the webhook stream of `make bench` it
//! spends a whole core (the GIL) and every call waits for it, so the
//! figures measured moto rather than learnlink. AWS runs each service on
//! its own endpoint; so does the local stack: DynamoDB gets a moto of its
//! own, everything else (SQS, Secrets Manager) shares another, and this
//! router — one URL, `AWS_ENDPOINT_URL` — sends each request to its
//! service's moto, unchanged (method, path, query, headers including
//! `Host`, so moto's queue URLs still name this endpoint; body).
//!
//! The service is read from the SigV4 credential scope
//! (`Credential=<key>/<date>/<region>/<service>/aws4_request`), else from
//! `X-Amz-Target` (`DynamoDB_20120810.PutItem`).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Where each service's requests go.
#[derive(Debug, Clone)]
pub struct Backends {
    /// DynamoDB (and DynamoDB Streams).
    pub dynamodb: String,
    /// Every other service.
    pub default: String,
}

impl Backends {
    /// The backend base URL for a request with these headers.
    pub fn for_headers(&self, headers: &HeaderMap) -> &str {
        match service_of(headers) {
            // `dynamodb`, and DynamoDB Streams' `dynamodbstreams`.
            Some(s) if s.starts_with("dynamodb") => &self.dynamodb,
            _ => &self.default,
        }
    }
}

/// The AWS service a signed request is for, lower case.
pub fn service_of(headers: &HeaderMap) -> Option<String> {
    if let Some(auth) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        && let Some(scope) = auth.split("Credential=").nth(1)
    {
        let scope = scope.split([',', ' ']).next().unwrap_or("");
        let parts: Vec<&str> = scope.split('/').collect();
        if parts.len() >= 5 && parts[parts.len() - 1] == "aws4_request" {
            return Some(parts[parts.len() - 2].to_ascii_lowercase());
        }
    }
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok())?;
    let prefix = target.split('.').next().unwrap_or("").to_ascii_lowercase();
    if prefix.starts_with("dynamodb") {
        Some("dynamodb".into())
    } else if prefix.starts_with("amazonsqs") {
        Some("sqs".into())
    } else if prefix.starts_with("secretsmanager") {
        Some("secretsmanager".into())
    } else {
        None
    }
}

struct Router {
    backends: Backends,
    http: reqwest::Client,
}

/// Headers that belong to one connection, not to the request.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "upgrade" | "te" | "trailer"
    )
}

/// Largest body forwarded (moto's own limits are far below this).
const MAX_BODY: usize = 64 * 1024 * 1024;

async fn forward(State(r): State<Arc<Router>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let base = r.backends.for_headers(&parts.headers).trim_end_matches('/');
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let url = format!("{base}{path}");
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("could not read the request body: {e}")).into_response(),
    };
    let mut out = r.http.request(parts.method, &url).body(body);
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) && name != header::CONTENT_LENGTH {
            out = out.header(name, value);
        }
    }
    let resp = match out.send().await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::warn!(url = %url, error = %e, "AWS backend unreachable");
            return (StatusCode::BAD_GATEWAY, format!("the local AWS backend {base} did not answer: {e}"))
                .into_response();
        }
    };
    let status = resp.status();
    let mut headers = HeaderMap::new();
    for (name, value) in resp.headers() {
        if !hop_by_hop(name) && name != header::CONTENT_LENGTH {
            headers.append(name.clone(), value.clone());
        }
    }
    match resp.bytes().await {
        Ok(bytes) => (status, headers, Body::from(bytes)).into_response(),
        Err(e) => {
            (StatusCode::BAD_GATEWAY, format!("the local AWS backend {base} broke off its answer: {e}")).into_response()
        }
    }
}

/// Serve until the process ends: print `listening on <url>` once bound.
pub async fn serve(listen: std::net::SocketAddr, backends: Backends) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .no_proxy()
        // The Host header is forwarded as sent, so moto names this endpoint.
        .build()
        .context("building the HTTP client")?;
    let state = Arc::new(Router { backends, http });
    let app = axum::Router::new().fallback(forward).with_state(state);
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    axum::serve(listener, app).await.context("serving")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_service_comes_from_the_credential_scope_then_the_target() {
        let b = Backends { dynamodb: "http://d".into(), default: "http://o".into() };
        let signed = |svc: &str| {
            format!(
                "AWS4-HMAC-SHA256 Credential=test/20261124/us-east-1/{svc}/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"
            )
        };
        assert_eq!(b.for_headers(&headers(&[("authorization", &signed("dynamodb"))])), "http://d");
        assert_eq!(b.for_headers(&headers(&[("authorization", &signed("sqs"))])), "http://o");
        assert_eq!(b.for_headers(&headers(&[("authorization", &signed("secretsmanager"))])), "http://o");
        assert_eq!(b.for_headers(&headers(&[("x-amz-target", "DynamoDB_20120810.PutItem")])), "http://d");
        assert_eq!(b.for_headers(&headers(&[("x-amz-target", "AmazonSQS.SendMessage")])), "http://o");
        // Unsigned, untargeted (moto's own API, a health probe): the default.
        assert_eq!(b.for_headers(&HeaderMap::new()), "http://o");
        assert_eq!(b.for_headers(&headers(&[("authorization", "Bearer x")])), "http://o");
    }
}
