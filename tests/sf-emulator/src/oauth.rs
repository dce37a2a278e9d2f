//! `POST /services/oauth2/token` (refresh_token grant with rotation) and
//! `POST /services/oauth2/revoke`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use std::collections::HashMap;

use crate::errors::sf_json;
use crate::state::SfState;
use crate::tokens::{RefreshOutcome, TokenSet};
use crate::values::now_ms;

/// Successful token response. Salesforce sends no `expires_in`.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    pub signature: String,
    pub scope: String,
    pub instance_url: String,
    pub id: String,
    pub token_type: String,
    pub issued_at: String,
}

#[derive(Serialize)]
struct OAuthError<'a> {
    error: &'a str,
    error_description: &'a str,
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    sf_json(status, &OAuthError { error, error_description: description })
}

/// Builds the token response for `set`.
pub fn token_response(state: &SfState, set: &TokenSet) -> TokenResponse {
    let ident = state.identity();
    let id = format!("{}/id/{}/{}", state.base_url(), ident.org_id, ident.integration_user_id);
    let issued_at = set.issued_at_ms.to_string();
    // Salesforce: base64(HMAC-SHA256(client secret, id + issued_at)).
    let key = state.config().client_secret.clone().unwrap_or_else(|| "sf-emulator".to_owned());
    let signature = match Hmac::<Sha256>::new_from_slice(key.as_bytes()) {
        Ok(mut mac) => {
            mac.update(id.as_bytes());
            mac.update(issued_at.as_bytes());
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    TokenResponse {
        access_token: set.access_token.clone(),
        refresh_token: set.refresh_token.clone(),
        signature,
        scope: "refresh_token api".to_owned(),
        instance_url: state.base_url().to_owned(),
        id,
        token_type: "Bearer".to_owned(),
        issued_at,
    }
}

/// `POST /services/oauth2/token`.
pub async fn token(State(state): State<SfState>, body: Bytes) -> Response {
    let params: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    state.org().count_kind("token");
    let grant = params.get("grant_type").map(String::as_str).unwrap_or("");
    if grant != "refresh_token" {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "grant type not supported");
    }
    let client_ok = match (params.get("client_id"), &state.config().client_id) {
        (None, _) => false,
        (Some(given), Some(expected)) => given == expected,
        (Some(given), None) => !given.is_empty(),
    };
    if !client_ok {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_client_id", "client identifier invalid");
    }
    if let (Some(given), Some(expected)) = (params.get("client_secret"), &state.config().client_secret) {
        if given != expected {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_client", "invalid client credentials");
        }
    }
    let Some(presented) = params.get("refresh_token").filter(|t| !t.is_empty()) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "expired access/refresh token");
    };
    let outcome = {
        let mut org = state.org();
        let outcome = org.tokens.refresh(state.org15(), presented, now_ms());
        if matches!(outcome, RefreshOutcome::Ok(_)) {
            org.stats.refreshes += 1;
        }
        outcome
    };
    match outcome {
        RefreshOutcome::Ok(set) => sf_json(StatusCode::OK, &token_response(&state, &set)),
        RefreshOutcome::InvalidGrant => {
            oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "expired access/refresh token")
        }
    }
}

/// `POST /services/oauth2/revoke` (form `token=...`): revokes the token's family.
/// Answers 200 with an empty body, or 400 `unsupported_token_type` for an unknown
/// token, as Salesforce does.
pub async fn revoke(State(state): State<SfState>, body: Bytes) -> Response {
    let params: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let token = params.get("token").cloned().unwrap_or_default();
    let known = state.org().tokens.revoke_token(&token);
    if known {
        StatusCode::OK.into_response()
    } else {
        oauth_error(StatusCode::BAD_REQUEST, "unsupported_token_type", "this token type is not supported")
    }
}
