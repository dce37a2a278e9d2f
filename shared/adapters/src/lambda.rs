//! Glue every function shares: typed configuration parsed once from the
//! environment, structured logging, and HTTP API (payload 2.0) helpers.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use base64::Engine;
use http::HeaderValue;
use learnlink_core::tenant::SecretNames;
use secrecy::SecretString;
use serde_json::{Value, json};

/// Configuration of a function, read once at cold start. Every name is set by
/// `infra/template.yaml` (and, on the local stack, by the local runtime from
/// the same template).
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    pub state_table: String,
    pub activity_table: String,
    pub applied_table: String,
    pub sync_queue_url: String,
    pub sync_dlq_url: String,
    pub backfill_queue_url: String,
    pub backfill_dlq_url: String,
    pub secret_names: SecretNames,
    pub admin_auth: AdminAuth,
}

/// How the admin API authenticates callers.
#[derive(Clone)]
pub enum AdminAuth {
    /// API Gateway's IAM authorizer has already authenticated the caller.
    Iam,
    /// A bearer token (the local stack).
    Bearer(SecretString),
}

impl std::fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminAuth::Iam => f.write_str("Iam"),
            AdminAuth::Bearer(_) => f.write_str("Bearer([redacted])"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {why}")]
    Invalid { name: &'static str, why: String },
}

impl FunctionConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let need = |k: &'static str| get(k).filter(|v| !v.is_empty()).ok_or(ConfigError::Missing(k));
        let admin_auth = match get("ADMIN_AUTH").as_deref().unwrap_or("iam") {
            "iam" => AdminAuth::Iam,
            "bearer" => AdminAuth::Bearer(SecretString::from(need("ADMIN_TOKEN")?)),
            other => {
                return Err(ConfigError::Invalid {
                    name: "ADMIN_AUTH",
                    why: format!("{other:?} is not iam or bearer"),
                });
            }
        };
        Ok(FunctionConfig {
            state_table: need("STATE_TABLE")?,
            activity_table: need("ACTIVITY_TABLE")?,
            applied_table: need("APPLIED_TABLE")?,
            sync_queue_url: need("SYNC_QUEUE_URL")?,
            sync_dlq_url: need("SYNC_DLQ_URL")?,
            backfill_queue_url: need("BACKFILL_QUEUE_URL")?,
            backfill_dlq_url: need("BACKFILL_DLQ_URL")?,
            secret_names: SecretNames::new(need("SECRET_PREFIX")?),
            admin_auth,
        })
    }
}

/// JSON logs on stdout (CloudWatch reads them; the local runtime files them).
/// Level from `RUST_LOG`, default `info`.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .try_init();
}

/// A JSON response.
pub fn json_response(status: u16, body: &Value) -> ApiGatewayV2httpResponse {
    let mut r = ApiGatewayV2httpResponse::default();
    r.status_code = i64::from(status);
    r.headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.body = Some(Body::Text(body.to_string()));
    r
}

/// The product's error shape: `{"error": {"code", "message"}}`.
pub fn error_response(status: u16, code: &str, message: &str) -> ApiGatewayV2httpResponse {
    json_response(status, &json!({"error": {"code": code, "message": message}}))
}

/// An HTML page (the OAuth callback's answers are for people).
pub fn html_response(status: u16, html: String) -> ApiGatewayV2httpResponse {
    let mut r = ApiGatewayV2httpResponse::default();
    r.status_code = i64::from(status);
    r.headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    r.body = Some(Body::Text(html));
    r
}

/// The raw request body bytes (API Gateway base64-encodes binary bodies).
pub fn body_bytes(req: &ApiGatewayV2httpRequest) -> Result<Vec<u8>, String> {
    match &req.body {
        None => Ok(Vec::new()),
        Some(b) if req.is_base64_encoded => base64::engine::general_purpose::STANDARD
            .decode(b)
            .map_err(|e| format!("the body is marked base64 but is not: {e}")),
        Some(b) => Ok(b.clone().into_bytes()),
    }
}

/// Headers as (lowercase name, value) pairs; non-UTF-8 values are skipped.
pub fn header_pairs(req: &ApiGatewayV2httpRequest) -> Vec<(String, String)> {
    req.headers.iter().filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string()))).collect()
}

pub fn path_param<'a>(req: &'a ApiGatewayV2httpRequest, name: &str) -> Option<&'a str> {
    req.path_parameters.get(name).map(String::as_str)
}

/// Whether an admin request is authenticated: in AWS the IAM authorizer ran
/// (API Gateway rejects unsigned requests before they reach a function);
/// locally the bearer token matches (compared in constant time).
pub fn admin_authorized(auth: &AdminAuth, req: &ApiGatewayV2httpRequest) -> bool {
    use secrecy::ExposeSecret;
    use subtle::ConstantTimeEq;
    match auth {
        AdminAuth::Iam => req.request_context.authorizer.as_ref().is_some_and(|a| a.iam.is_some()),
        AdminAuth::Bearer(token) => {
            // `Bearer <token>`; the scheme is case-insensitive (RFC 7235 §2.1).
            let given = req
                .headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, t)| t.trim_start_matches(' '))
                .unwrap_or("");
            bool::from(given.as_bytes().ct_eq(token.expose_secret().as_bytes()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_the_missing_variable() {
        let e = FunctionConfig::from_lookup(|_| None).unwrap_err();
        assert_eq!(e.to_string(), "environment variable STATE_TABLE is not set");
        let e = FunctionConfig::from_lookup(|k| (k == "ADMIN_AUTH").then(|| "bearer".into())).unwrap_err();
        assert_eq!(e.to_string(), "environment variable ADMIN_TOKEN is not set");
    }

    #[test]
    fn the_bearer_token_is_compared_exactly_and_its_scheme_in_any_case() {
        let auth = AdminAuth::Bearer(SecretString::from("t0ken"));
        let with = |value: Option<&str>| {
            let mut req = ApiGatewayV2httpRequest::default();
            if let Some(v) = value {
                req.headers.insert(http::header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            }
            admin_authorized(&auth, &req)
        };
        for ok in ["Bearer t0ken", "bearer t0ken", "BEARER t0ken", "Bearer  t0ken"] {
            assert!(with(Some(ok)), "{ok:?}");
        }
        for bad in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer "),
            Some("t0ken"),
            Some("Basic t0ken"),
            Some("Bearer t0ke"),
            Some("Bearer t0kenx"),
            Some("Bearer T0KEN"),
            Some("Bearer t0ken "),
            Some("Bearertoken t0ken"),
        ] {
            assert!(!with(bad), "{bad:?}");
        }
        // IAM: only a request API Gateway's IAM authorizer let through.
        assert!(!admin_authorized(&AdminAuth::Iam, &ApiGatewayV2httpRequest::default()));
    }

    #[test]
    fn admin_token_is_not_printed() {
        let cfg = FunctionConfig::from_lookup(|k| match k {
            "ADMIN_AUTH" => Some("bearer".into()),
            "ADMIN_TOKEN" => Some("sekret-token".into()),
            _ => Some(format!("v-{k}")),
        })
        .unwrap();
        assert!(!format!("{cfg:?}").contains("sekret-token"));
    }
}
