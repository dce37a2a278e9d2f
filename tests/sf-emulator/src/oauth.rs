//! OAuth 2.0 endpoints (SPEC §3, §9.1):
//! - `GET /services/oauth2/authorize`: web-server flow with PKCE; auto-approves the
//!   integration user and 302-redirects to `redirect_uri` with `code` and `state`;
//! - `POST /services/oauth2/token`: `authorization_code` (+ PKCE) and `refresh_token`
//!   with Refresh Token Rotation; no `expires_in`;
//! - `GET|POST /services/oauth2/userinfo`, `POST|GET /services/oauth2/revoke`, and the
//!   identity URL `GET /id/{orgId}/{userId}`.
//!
//! Login hosts: the base URL is the production host (login.salesforce.com, or a My
//! Domain); the same endpoints under `/sandbox` (or any request whose `Host` starts
//! with `test.`) are the sandbox host (test.salesforce.com). The org is one or the
//! other (`Config::sandbox`): logging in or refreshing through the other host fails.
//! OAuth requests are counted under `auth` and never against the API limit.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Value as Json, json};
use sha2::Sha256;

use crate::errors::{ApiError, sf_json};
use crate::state::{FaultKind, SfState};
use crate::tokens::{CodeRequest, LoginHost, OAuthError, TokenSet};
use crate::values::{FieldValue, now_ms};

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
struct OAuthErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

fn oauth_error(status: StatusCode, e: &OAuthError) -> Response {
    sf_json(status, &OAuthErrorBody { error: e.error, error_description: e.description })
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut r = (status, text).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain;charset=UTF-8"));
    r
}

/// The login host a request came through.
pub fn login_host(uri: &axum::http::Uri, headers: &HeaderMap) -> LoginHost {
    let host_is_test = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| h.to_ascii_lowercase().starts_with("test."));
    if uri.path().starts_with("/sandbox/") || host_is_test { LoginHost::Sandbox } else { LoginHost::Production }
}

/// Base URL of a login host.
pub fn login_base(state: &SfState, host: LoginHost) -> String {
    match host {
        LoginHost::Production => state.base_url().to_owned(),
        LoginHost::Sandbox => format!("{}/sandbox", state.base_url()),
    }
}

fn org_host(state: &SfState) -> LoginHost {
    if state.config().sandbox { LoginHost::Sandbox } else { LoginHost::Production }
}

/// Counts an OAuth request; applies an injected `auth`-scoped fault.
async fn enter_auth(state: &SfState, endpoint: &str) -> Result<(), Response> {
    let hit = {
        let mut org = state.org();
        org.count("auth", endpoint);
        org.stats.totals.auth_calls += 1;
        org.stats.totals.requests += 1;
        org.take_fault("auth", false)
    };
    let Some(hit) = hit else { return Ok(()) };
    match hit.kind {
        FaultKind::Latency => {
            tokio::time::sleep(Duration::from_millis(hit.latency_ms)).await;
            Ok(())
        }
        FaultKind::ServerUnavailable => Err(ApiError::server_unavailable().into_response()),
        FaultKind::ServerError => Err(ApiError::unknown_exception(now_ms().unsigned_abs()).into_response()),
        FaultKind::RequestLimitExceeded => Err(ApiError::request_limit_exceeded().into_response()),
        FaultKind::InvalidSession | FaultKind::UnableToLockRow => Ok(()),
    }
}

/// Builds the token response for `set`.
pub fn token_response(state: &SfState, set: &TokenSet) -> TokenResponse {
    let org_id = state.org().identity.org_id.clone();
    let id = format!("{}/id/{}/{}", login_base(state, set.host), org_id, set.user_id);
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
        scope: set.scope.clone(),
        instance_url: state.base_url().to_owned(),
        id,
        token_type: "Bearer".to_owned(),
        issued_at,
    }
}

fn normalize_scope(requested: Option<&str>) -> String {
    match requested.map(str::trim).filter(|s| !s.is_empty()) {
        None => "refresh_token api".to_owned(),
        Some(s) => {
            let mut parts: Vec<&str> = s.split_whitespace().collect();
            parts.dedup();
            parts.join(" ")
        }
    }
}

fn redirect(location: &str) -> Response {
    let mut r = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn with_params(base: &str, params: &[(&str, &str)]) -> String {
    let mut url = base.to_owned();
    let mut sep = if base.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        url.push(sep);
        url.push_str(k);
        url.push('=');
        url.push_str(&percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string());
        sep = '&';
    }
    url
}

/// The error page Salesforce shows when it cannot trust the redirect URI.
fn error_page(state: &SfState, host: LoginHost, error: &str, description: &str) -> Response {
    redirect(&with_params(
        &format!("{}/setup/secur/RemoteAccessErrorPage.apexp", login_base(state, host)),
        &[("error", error), ("error_description", description)],
    ))
}

/// `GET /setup/secur/RemoteAccessErrorPage.apexp`: a human page with the error.
pub async fn remote_access_error_page(Query(q): Query<HashMap<String, String>>) -> Response {
    let error = q.get("error").cloned().unwrap_or_default();
    let desc = q.get("error_description").cloned().unwrap_or_default();
    let body = format!(
        "<html><head><title>Remote Access Error</title></head><body><h1>Remote Access Error</h1><p>error={}</p><p>{}</p></body></html>",
        html_escape(&error),
        html_escape(&desc)
    );
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html;charset=UTF-8"));
    r
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `GET /services/oauth2/authorize`.
pub async fn authorize(
    State(state): State<SfState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = enter_auth(&state, "authorize").await {
        return r;
    }
    let host = login_host(&uri, &headers);
    let cfg = state.config();
    let client_id = q.get("client_id").map(String::as_str).unwrap_or("");
    let client_ok = !client_id.is_empty() && cfg.client_id.as_deref().is_none_or(|c| c == client_id);
    if !client_ok {
        return error_page(&state, host, "invalid_client_id", "client identifier invalid");
    }
    let redirect_uri = q.get("redirect_uri").map(String::as_str).unwrap_or("");
    let redirect_ok = !redirect_uri.is_empty()
        && url::Url::parse(redirect_uri).is_ok()
        && (cfg.redirect_uris.is_empty() || cfg.redirect_uris.iter().any(|r| r == redirect_uri));
    if !redirect_ok {
        return error_page(&state, host, "redirect_uri_mismatch", "redirect_uri must match configuration");
    }
    let st = q.get("state").map(String::as_str);
    let back = |params: &[(&str, &str)]| {
        let mut p: Vec<(&str, &str)> = params.to_vec();
        if let Some(s) = st {
            p.push(("state", s));
        }
        redirect(&with_params(redirect_uri, &p))
    };
    if q.get("response_type").map(String::as_str) != Some("code") {
        return back(&[("error", "unsupported_response_type"), ("error_description", "response type not supported")]);
    }
    let challenge = q.get("code_challenge").filter(|c| !c.is_empty()).cloned();
    match (q.get("code_challenge_method").map(String::as_str), &challenge) {
        (Some("S256"), Some(_)) | (None, None) => {}
        (None, Some(_)) => {}
        (Some(_), _) => {
            return back(&[("error", "invalid_request"), ("error_description", "invalid code_challenge_method")]);
        }
    }
    if host != org_host(&state) {
        // The user of this org cannot log in through the other login host.
        let mut r = (
            StatusCode::BAD_REQUEST,
            "<html><body><h1>Login failed</h1><p>Please check your username and password. If you still can't log in, contact your Salesforce administrator.</p></body></html>",
        )
            .into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html;charset=UTF-8"));
        return r;
    }
    let (deny, user_id) = {
        let org = state.org();
        (org.settings.deny_consent, org.identity.integration_user_id.clone())
    };
    if deny {
        return back(&[("error", "access_denied"), ("error_description", "end-user denied authorization")]);
    }
    let code = {
        let mut org = state.org();
        org.tokens.issue_code(
            CodeRequest {
                client_id: client_id.to_owned(),
                redirect_uri: redirect_uri.to_owned(),
                challenge,
                user_id,
                scope: normalize_scope(q.get("scope").map(String::as_str)),
                host,
            },
            now_ms(),
        )
    };
    back(&[("code", &code)])
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// `POST /services/oauth2/token`.
pub async fn token(
    State(state): State<SfState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = enter_auth(&state, "token").await {
        return r;
    }
    let host = login_host(&uri, &headers);
    let mut params: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    if let Some((id, secret)) = basic_credentials(&headers) {
        params.entry("client_id".into()).or_insert(id);
        params.entry("client_secret".into()).or_insert(secret);
    }
    let bad = |e: &OAuthError| oauth_error(StatusCode::BAD_REQUEST, e);
    let grant = params.get("grant_type").map(String::as_str).unwrap_or("");
    if grant != "refresh_token" && grant != "authorization_code" {
        return bad(&OAuthError { error: "unsupported_grant_type", description: "grant type not supported" });
    }
    let cfg = state.config();
    let client_id = params.get("client_id").map(String::as_str).unwrap_or("");
    if client_id.is_empty() || cfg.client_id.as_deref().is_some_and(|c| c != client_id) {
        return bad(&OAuthError { error: "invalid_client_id", description: "client identifier invalid" });
    }
    let secret = params.get("client_secret");
    if let (Some(given), Some(expected)) = (secret, &cfg.client_secret) {
        if given != expected {
            return bad(&OAuthError { error: "invalid_client", description: "invalid client credentials" });
        }
    }
    let org15 = state.org15();
    let now = now_ms();
    if grant == "authorization_code" {
        let verifier = params.get("code_verifier").filter(|v| !v.is_empty()).map(String::as_str);
        if secret.is_none() && cfg.client_secret.is_some() && verifier.is_none() {
            return bad(&OAuthError { error: "invalid_client", description: "invalid client credentials" });
        }
        let Some(code) = params.get("code").filter(|c| !c.is_empty()) else {
            return bad(&OAuthError::INVALID_CODE);
        };
        let outcome = {
            let mut org = state.org();
            let (reject_tilde, ttl) = (org.settings.pkce_reject_tilde, org.settings.auth_code_ttl_ms);
            org.tokens.exchange_code(
                &org15,
                code,
                client_id,
                params.get("redirect_uri").map(String::as_str),
                verifier,
                reject_tilde,
                ttl,
                host,
                now,
            )
        };
        return match outcome {
            Ok(set) => sf_json(StatusCode::OK, &token_response(&state, &set)),
            Err(e) => bad(&e),
        };
    }
    let Some(presented) = params.get("refresh_token").filter(|t| !t.is_empty()) else {
        return bad(&OAuthError::EXPIRED_TOKEN);
    };
    let begun = {
        let mut org = state.org();
        let ttl = org.settings.refresh_idle_ttl_ms;
        org.tokens.begin_refresh(presented, ttl, host, now).map(|f| (f, org.settings.oauth_processing_delay_ms))
    };
    let (family, delay) = match begun {
        Ok(x) => x,
        Err(e) => return bad(&e),
    };
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let outcome = {
        let mut org = state.org();
        let r = org.tokens.finish_refresh(&org15, family, now_ms());
        if r.is_ok() {
            org.stats.refreshes += 1;
        }
        r
    };
    match outcome {
        Ok(set) => sf_json(StatusCode::OK, &token_response(&state, &set)),
        Err(e) => bad(&e),
    }
}

/// `POST /services/oauth2/revoke` (form `token=...`) or `GET ...?token=`: revokes a
/// refresh token's family, or one access token. 200 with an empty body, or 400
/// `unsupported_token_type` for an unknown token, as Salesforce does.
pub async fn revoke(State(state): State<SfState>, Query(q): Query<HashMap<String, String>>, body: Bytes) -> Response {
    if let Err(r) = enter_auth(&state, "revoke").await {
        return r;
    }
    let params: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let token = params.get("token").or_else(|| q.get("token")).cloned().unwrap_or_default();
    let known = state.org().tokens.revoke_token(&token);
    if known {
        StatusCode::OK.into_response()
    } else {
        oauth_error(
            StatusCode::BAD_REQUEST,
            &OAuthError { error: "unsupported_token_type", description: "this token type is not supported" },
        )
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth")).then(|| token.trim())
}

/// The user of the request's access token, or the 403 the OAuth endpoints answer.
fn oauth_user(state: &SfState, headers: &HeaderMap) -> Result<String, Response> {
    let Some(token) = bearer(headers) else {
        return Err(plain(StatusCode::FORBIDDEN, "Missing_OAuth_Token"));
    };
    let mut org = state.org();
    let timeout = org.settings.session_timeout_ms;
    org.tokens.use_access(token, timeout, now_ms()).ok_or_else(|| plain(StatusCode::FORBIDDEN, "Bad_OAuth_Token"))
}

fn utc_offset_ms(tz: &str) -> i64 {
    let hours: i64 = match tz {
        "America/Los_Angeles" => -8,
        "America/Chicago" => -6,
        "America/New_York" => -5,
        "Europe/Paris" | "Europe/Berlin" => 1,
        "Asia/Tokyo" => 9,
        "Australia/Sydney" => 10,
        _ => 0,
    };
    hours * 3_600_000
}

/// Values of the user's record by field name.
fn user_fields(state: &SfState, user_id: &str) -> HashMap<String, FieldValue> {
    let schema = state.schema();
    let org = state.org();
    let (Some(uo), Some(def)) = (schema.object_index("User"), schema.object("User")) else {
        return HashMap::new();
    };
    let Some(rec) = org.store.find_by_id(uo, user_id).and_then(|i| org.store.record(uo, i)) else {
        return HashMap::new();
    };
    def.fields.iter().enumerate().map(|(i, f)| (f.name.clone(), rec.get(i).clone())).collect()
}

fn urls(base: &str, org15: &str, user_id: &str) -> Json {
    json!({
        "enterprise": format!("{base}/services/Soap/c/{{version}}/{org15}"),
        "metadata": format!("{base}/services/Soap/m/{{version}}/{org15}"),
        "partner": format!("{base}/services/Soap/u/{{version}}/{org15}"),
        "rest": format!("{base}/services/data/v{{version}}/"),
        "sobjects": format!("{base}/services/data/v{{version}}/sobjects/"),
        "search": format!("{base}/services/data/v{{version}}/search/"),
        "query": format!("{base}/services/data/v{{version}}/query/"),
        "recent": format!("{base}/services/data/v{{version}}/recent/"),
        "tooling_soap": format!("{base}/services/Soap/T/{{version}}/{org15}"),
        "tooling_rest": format!("{base}/services/data/v{{version}}/tooling/"),
        "profile": format!("{base}/{user_id}"),
        "feeds": format!("{base}/services/data/v{{version}}/chatter/feeds"),
        "groups": format!("{base}/services/data/v{{version}}/chatter/groups"),
        "users": format!("{base}/services/data/v{{version}}/chatter/users"),
        "feed_items": format!("{base}/services/data/v{{version}}/chatter/feed-items"),
        "feed_elements": format!("{base}/services/data/v{{version}}/chatter/feed-elements"),
        "custom_domain": base,
    })
}

fn text_of(f: &HashMap<String, FieldValue>, name: &str) -> Json {
    f.get(name).map(FieldValue::to_json).unwrap_or(Json::Null)
}

/// `GET|POST /services/oauth2/userinfo` (shape as Salesforce answers it).
pub async fn userinfo(State(state): State<SfState>, OriginalUri(uri): OriginalUri, headers: HeaderMap) -> Response {
    if let Err(r) = enter_auth(&state, "userinfo").await {
        return r;
    }
    let user_id = match oauth_user(&state, &headers) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let host = login_host(&uri, &headers);
    let (org_id, org15) = {
        let org = state.org();
        (org.identity.org_id.clone(), org.identity.org_id.get(..15).unwrap_or_default().to_owned())
    };
    let f = user_fields(&state, &user_id);
    let base = state.base_url();
    let photo = |suffix: &str, field: &str| match f.get(field) {
        Some(FieldValue::Text(t)) => t.clone(),
        _ => format!("{base}/profilephoto/005/{suffix}"),
    };
    let tz = f.get("TimeZoneSidKey").and_then(FieldValue::as_text).unwrap_or("America/Los_Angeles").to_owned();
    let updated = match f.get("LastModifiedDate") {
        Some(FieldValue::DateTime(ms)) => {
            let s = crate::values::format_datetime_z(*ms);
            // "2026-05-06T09:49:19Z": no milliseconds.
            s.get(..19).map(|p| format!("{p}Z")).unwrap_or(s)
        }
        _ => String::new(),
    };
    let body = json!({
        "sub": format!("{}/id/{org_id}/{user_id}", login_base(&state, host)),
        "user_id": user_id,
        "organization_id": org_id,
        "preferred_username": text_of(&f, "Username"),
        "nickname": text_of(&f, "CommunityNickname"),
        "name": text_of(&f, "Name"),
        "email": text_of(&f, "Email"),
        "email_verified": true,
        "given_name": text_of(&f, "FirstName"),
        "family_name": text_of(&f, "LastName"),
        "zoneinfo": tz,
        "photos": {"picture": photo("F", "FullPhotoUrl"), "thumbnail": photo("T", "SmallPhotoUrl")},
        "profile": format!("{base}/{user_id}"),
        "picture": photo("F", "FullPhotoUrl"),
        "address": {},
        "is_salesforce_integration_user": false,
        "urls": urls(base, &org15, &user_id),
        "active": f.get("IsActive").map(FieldValue::to_json).unwrap_or(Json::Bool(true)),
        "user_type": f.get("UserType").and_then(FieldValue::as_text).unwrap_or("Standard").to_ascii_uppercase(),
        "language": text_of(&f, "LanguageLocaleKey"),
        "locale": text_of(&f, "LocaleSidKey"),
        "utcOffset": utc_offset_ms(&tz),
        "updated_at": updated,
    });
    sf_json(StatusCode::OK, &body)
}

/// `GET /id/{orgId}/{userId}`: the identity service.
pub async fn identity(
    State(state): State<SfState>,
    Path((org_id, user_id)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = enter_auth(&state, "identity").await {
        return r;
    }
    let token_user = match oauth_user(&state, &headers) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let (real_org, org15) = {
        let org = state.org();
        (org.identity.org_id.clone(), org.identity.org_id.get(..15).unwrap_or_default().to_owned())
    };
    let same = |a: &str, b: &str| crate::ids::normalize(a).is_some_and(|x| crate::ids::normalize(b) == Some(x));
    if !same(&org_id, &real_org) || !same(&user_id, &token_user) {
        return plain(StatusCode::FORBIDDEN, "Bad_Id");
    }
    let host = login_host(&uri, &headers);
    let f = user_fields(&state, &token_user);
    let base = state.base_url();
    let tz = f.get("TimeZoneSidKey").and_then(FieldValue::as_text).unwrap_or("America/Los_Angeles").to_owned();
    let body = json!({
        "id": format!("{}/id/{real_org}/{token_user}", login_base(&state, host)),
        "asserted_user": true,
        "user_id": token_user,
        "organization_id": real_org,
        "username": text_of(&f, "Username"),
        "nick_name": text_of(&f, "CommunityNickname"),
        "display_name": text_of(&f, "Name"),
        "email": text_of(&f, "Email"),
        "email_verified": true,
        "first_name": text_of(&f, "FirstName"),
        "last_name": text_of(&f, "LastName"),
        "timezone": tz,
        "photos": {"picture": format!("{base}/profilephoto/005/F"), "thumbnail": format!("{base}/profilephoto/005/T")},
        "addr_street": text_of(&f, "Street"),
        "addr_city": text_of(&f, "City"),
        "addr_state": text_of(&f, "State"),
        "addr_country": text_of(&f, "Country"),
        "addr_zip": text_of(&f, "PostalCode"),
        "mobile_phone": text_of(&f, "MobilePhone"),
        "mobile_phone_verified": false,
        "is_lightning_login_user": false,
        "status": {"created_date": null, "body": null},
        "urls": urls(base, &org15, &token_user),
        "active": f.get("IsActive").map(FieldValue::to_json).unwrap_or(Json::Bool(true)),
        "user_type": f.get("UserType").and_then(FieldValue::as_text).unwrap_or("Standard").to_ascii_uppercase(),
        "language": text_of(&f, "LanguageLocaleKey"),
        "locale": text_of(&f, "LocaleSidKey"),
        "utcOffset": utc_offset_ms(&tz),
        "last_modified_date": f.get("LastModifiedDate").map(FieldValue::to_json).unwrap_or(Json::Null),
        "is_app_installed": true,
    });
    sf_json(StatusCode::OK, &body)
}
