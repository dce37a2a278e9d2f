//! OAuth 2.0 against the tenant's login host (SPEC §3): the web-server flow
//! with PKCE (S256) and a ≥128-bit `state`, the code exchange, refresh under
//! Refresh Token Rotation, userinfo and revocation.

use super::{Reply, SalesforceClient, base_url};
use learnlink_core::salesforce::oauth::{
    AuthorizeRequest, ENTROPY_BYTES, OAuthClient, OAuthState, Pkce, TokenGrant, UserInfo, login_base, oauth_error,
    parse_token_response, token_form, userinfo_error,
};
use learnlink_core::salesforce::{SalesforceError, Session, TokenSet};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

/// A started authorization: send the user to `url`; keep `state` and the
/// PKCE verifier (single use, short TTL) for the callback.
#[derive(Debug)]
pub struct AuthorizeStart {
    pub url: String,
    pub state: OAuthState,
    pub pkce: Pkce,
}

fn entropy() -> [u8; ENTROPY_BYTES] {
    let mut bytes = [0u8; ENTROPY_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// Draw a fresh `state` and PKCE verifier from the OS and build the
/// authorize URL (`login.salesforce.com`, `test.salesforce.com` or a My
/// Domain, as `SalesforceEnvironment::login_url()` says).
pub fn authorize_start(req: &AuthorizeRequest) -> Result<AuthorizeStart, SalesforceError> {
    let state = OAuthState::from_entropy(&entropy());
    let pkce = Pkce::from_entropy(&entropy());
    let url = req.url(&state, &pkce)?;
    Ok(AuthorizeStart { url, state, pkce })
}

impl SalesforceClient {
    async fn token_request(
        &self,
        what: &str,
        login_url: &str,
        client: &OAuthClient,
        grant: TokenGrant<'_>,
        previous_refresh: Option<&SecretString>,
    ) -> Result<TokenSet, SalesforceError> {
        let base = login_base(login_url)?;
        let url = format!("{base}/services/oauth2/token");
        let form = token_form(client, &grant);
        let resp = self.send(what, base, self.http.post(url).form(&form)).await?;
        let reply = Reply::read(what, resp).await?;
        if reply.status != 200 {
            return Err(oauth_error(reply.status, &reply.body));
        }
        parse_token_response(&reply.json(what)?, previous_refresh)
    }

    /// `grant_type=authorization_code` with the PKCE verifier: the callback's
    /// code becomes a token set (`user_id`/`org_id` from the identity URL).
    pub async fn exchange_code(
        &self,
        login_url: &str,
        client: &OAuthClient,
        code: &SecretString,
        redirect_uri: &str,
        code_verifier: &SecretString,
    ) -> Result<TokenSet, SalesforceError> {
        if code.expose_secret().is_empty() {
            return Err(SalesforceError::invalid("the authorization code is empty"));
        }
        let grant = TokenGrant::AuthorizationCode { code, redirect_uri, code_verifier };
        self.token_request("exchanging the authorization code", login_url, client, grant, None).await
    }

    /// `grant_type=refresh_token`. Under Refresh Token Rotation the answer
    /// carries the new refresh token; without rotation the old one is kept.
    /// `invalid_grant` "token request is already being processed" is
    /// retryable; any other `invalid_grant` is permanent.
    pub async fn refresh_token(
        &self,
        login_url: &str,
        client: &OAuthClient,
        refresh_token: &SecretString,
    ) -> Result<TokenSet, SalesforceError> {
        let grant = TokenGrant::RefreshToken { refresh_token };
        self.token_request("token refresh", login_url, client, grant, Some(refresh_token)).await
    }

    /// `GET {instance}/services/oauth2/userinfo`: who the integration user is.
    pub async fn userinfo(&self, session: &Session) -> Result<UserInfo, SalesforceError> {
        let url = format!("{}/services/oauth2/userinfo", base_url(&session.instance_url)?);
        let reply = self.call("userinfo", session, self.http.get(url)).await?;
        if !reply.success() {
            return Err(userinfo_error(reply.status, &reply.body));
        }
        UserInfo::parse(&reply.json("userinfo")?)
    }

    /// `POST {login}/services/oauth2/revoke`: a refresh token revokes its
    /// whole family, an access token only itself. A token Salesforce no
    /// longer knows (`invalid_token`) is already unusable: that is success.
    pub async fn revoke(&self, login_url: &str, token: &SecretString) -> Result<(), SalesforceError> {
        let base = login_base(login_url)?;
        let url = format!("{base}/services/oauth2/revoke");
        let resp =
            self.send("token revocation", base, self.http.post(url).form(&[("token", token.expose_secret())])).await?;
        let reply = Reply::read("token revocation", resp).await?;
        if reply.success() {
            return Ok(());
        }
        let error = serde_json::from_str::<Value>(&reply.body)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string));
        if reply.status == 400 && error.as_deref() == Some("invalid_token") {
            return Ok(());
        }
        Err(oauth_error(reply.status, &reply.body))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::{get, post};
    use learnlink_core::salesforce::oauth::Pkce;
    use learnlink_core::{Classify, ErrorClass};
    use serde_json::json;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    fn form(body: &str) -> HashMap<String, String> {
        url::form_urlencoded::parse(body.as_bytes()).into_owned().collect()
    }

    #[test]
    fn authorize_start_draws_fresh_randomness() {
        let req = AuthorizeRequest {
            login_url: "https://test.salesforce.com".into(),
            client_id: "cid".into(),
            redirect_uri: "https://api.example.com/oauth/callback".into(),
            scope: Some("api refresh_token".into()),
            prompt: None,
        };
        let a = authorize_start(&req).unwrap();
        let b = authorize_start(&req).unwrap();
        assert_ne!(a.state.as_str(), b.state.as_str());
        assert_ne!(a.pkce.verifier().expose_secret(), b.pkce.verifier().expose_secret());
        assert!(a.url.starts_with("https://test.salesforce.com/services/oauth2/authorize?response_type=code"));
        assert!(a.url.contains(&format!("state={}", a.state.as_str())));
        assert!(a.url.contains(&format!("code_challenge={}", Pkce::challenge_for(a.pkce.verifier().expose_secret()))));
        // The verifier never leaves our side: not in the URL, not in Debug.
        let dbg = format!("{a:?}");
        assert!(!dbg.contains(a.pkce.verifier().expose_secret()) && !a.url.contains(a.pkce.verifier().expose_secret()));
    }

    #[tokio::test]
    async fn code_exchange_sends_pkce_and_reads_the_identity() {
        let seen = Arc::new(Mutex::new(None));
        let s = seen.clone();
        let url = mock(Router::new().route(
            "/services/oauth2/token",
            post(move |body: String| {
                let s = s.clone();
                async move {
                    *s.lock().unwrap() = Some(form(&body));
                    axum::Json(json!({"access_token": "00D!AT", "refresh_token": "RT1", "signature": "sig",
                        "scope": "refresh_token api", "instance_url": "https://acme.my.salesforce.com",
                        "id": "https://login.salesforce.com/id/00DdM00000vfgTuUAI/005dM00000awSFJQA2",
                        "token_type": "Bearer", "issued_at": "1778060000000"}))
                }
            }),
        ))
        .await;
        let c = client();
        let app = OAuthClient { client_id: "cid".into(), client_secret: Some(SecretString::from("shh")) };
        let t = c
            .exchange_code(
                &url,
                &app,
                &SecretString::from("CODE1"),
                "https://api.example.com/oauth/callback",
                &SecretString::from("VERIFIER1"),
            )
            .await
            .unwrap();
        assert_eq!(t.refresh_token.expose_secret(), "RT1");
        assert_eq!(t.instance_url, "https://acme.my.salesforce.com");
        assert_eq!(
            (t.org_id.as_deref(), t.user_id.as_deref()),
            (Some("00DdM00000vfgTuUAI"), Some("005dM00000awSFJQA2"))
        );
        let f = seen.lock().unwrap().clone().unwrap();
        assert_eq!(f["grant_type"], "authorization_code");
        assert_eq!(f["code"], "CODE1");
        assert_eq!(f["code_verifier"], "VERIFIER1");
        assert_eq!(f["redirect_uri"], "https://api.example.com/oauth/callback");
        assert_eq!((f["client_id"].as_str(), f["client_secret"].as_str()), ("cid", "shh"));
    }

    #[tokio::test]
    async fn code_exchange_failures() {
        let url = mock(Router::new().route(
            "/services/oauth2/token",
            post(|body: String| async move {
                if body.contains("code=used") {
                    (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant", "error_description": "authentication failure"})))
                } else if body.contains("code=nort") {
                    (StatusCode::OK, axum::Json(json!({"access_token": "AT", "instance_url": "https://x.my.salesforce.com"})))
                } else {
                    (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "redirect_uri_mismatch", "error_description": "redirect_uri must match configuration"})))
                }
            }),
        ))
        .await;
        let c = client();
        let app = OAuthClient::public("cid");
        let v = SecretString::from("v");
        let ex = |code: &'static str| {
            let c = c.clone();
            let app = app.clone();
            let url = url.clone();
            let v = v.clone();
            async move { c.exchange_code(&url, &app, &SecretString::from(code), "https://x/cb", &v).await }
        };
        let e = ex("used").await.unwrap_err();
        assert!(matches!(e, SalesforceError::InvalidGrant { .. }) && e.class() == ErrorClass::Permanent);
        let e = ex("nort").await.unwrap_err();
        assert_eq!((e.code().as_str(), e.class()), ("NO_REFRESH_TOKEN", ErrorClass::Permanent));
        let e = ex("other").await.unwrap_err();
        assert_eq!((e.code().as_str(), e.class()), ("redirect_uri_mismatch", ErrorClass::Permanent));
        assert!(e.to_string().contains("redirect_uri must match"), "{e}");
        let e = ex("").await.unwrap_err();
        assert_eq!(e.code(), "INVALID_REQUEST");
    }

    #[tokio::test]
    async fn refresh_with_and_without_rotation_and_invalid_grant() {
        let url = mock(Router::new().route(
            "/services/oauth2/token",
            post(|body: String| async move {
                let f = form(&body);
                assert_eq!(f["grant_type"], "refresh_token");
                match f["refresh_token"].as_str() {
                    "rotating" => (StatusCode::OK, axum::Json(json!({"access_token": "A2", "refresh_token": "R2",
                        "instance_url": "https://x.my.salesforce.com", "id": "https://login/id/00Dorg/005user", "issued_at": "1", "token_type": "Bearer"}))),
                    "static" => (StatusCode::OK, axum::Json(json!({"access_token": "A3",
                        "instance_url": "https://x.my.salesforce.com", "id": "https://login/id/00Dorg/005user", "issued_at": "2"}))),
                    "busy" => (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant", "error_description": "token request is already being processed"}))),
                    "garbage" => (StatusCode::OK, axum::Json(json!("<html>"))),
                    "down" => (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!("maintenance"))),
                    _ => (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant", "error_description": "expired access/refresh token"}))),
                }
            }),
        ))
        .await;
        let c = client();
        let app = OAuthClient::public("cid");
        let t = c.refresh_token(&url, &app, &SecretString::from("rotating")).await.unwrap();
        assert_eq!((t.access_token.expose_secret(), t.refresh_token.expose_secret()), ("A2", "R2"));
        assert_eq!((t.org_id.as_deref(), t.user_id.as_deref()), (Some("00Dorg"), Some("005user")));
        let t = c.refresh_token(&url, &app, &SecretString::from("static")).await.unwrap();
        assert_eq!((t.access_token.expose_secret(), t.refresh_token.expose_secret()), ("A3", "static"));
        let e = c.refresh_token(&url, &app, &SecretString::from("busy")).await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Retryable);
        let e = c.refresh_token(&url, &app, &SecretString::from("revoked")).await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Permanent);
        assert!(!format!("{e} {e:?}").contains("revoked\""), "the token is not echoed");
        assert_eq!(
            c.refresh_token(&url, &app, &SecretString::from("garbage")).await.unwrap_err().class(),
            ErrorClass::Retryable
        );
        assert_eq!(
            c.refresh_token(&url, &app, &SecretString::from("down")).await.unwrap_err().class(),
            ErrorClass::Retryable
        );
        // The SalesforceApi port goes the same way.
        use learnlink_core::ports::SalesforceApi;
        let t = c.refresh(&url, "cid", &SecretString::from("rotating")).await.unwrap();
        assert_eq!(t.refresh_token.expose_secret(), "R2");
        let e = c.refresh(&refused_url().await, "cid", &SecretString::from("x")).await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Retryable);
    }

    #[tokio::test]
    async fn userinfo_reads_the_recorded_document() {
        let Some(ex) = recorded("get-current-user") else { return };
        let exchange = ex[0].clone();
        let url = mock(Router::new().route(
            "/services/oauth2/userinfo",
            get(move |headers: axum::http::HeaderMap| {
                let exchange = exchange.clone();
                async move {
                    if headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer tok") {
                        replay(&exchange)
                    } else {
                        use axum::response::IntoResponse;
                        (StatusCode::FORBIDDEN, "Bad_OAuth_Token").into_response()
                    }
                }
            }),
        ))
        .await;
        let c = client();
        let u = c.userinfo(&session(&url)).await.unwrap();
        assert_eq!(u.user_id, "005dM00000awSFJQA2");
        assert_eq!(u.organization_id, "00DdM00000vfgTuUAI");
        assert_eq!(u.is_salesforce_integration_user, Some(false));
        let expired = Session { instance_url: url.clone(), access_token: SecretString::from("old") };
        assert!(matches!(c.userinfo(&expired).await.unwrap_err(), SalesforceError::SessionExpired));
    }

    #[tokio::test]
    async fn revoke_is_done_when_the_token_is_gone() {
        let url = mock(Router::new().route(
            "/services/oauth2/revoke",
            post(|body: String| async move {
                match body.as_str() {
                    "token=live" => (StatusCode::OK, String::new()),
                    "token=gone" => (StatusCode::BAD_REQUEST, json!({"error": "invalid_token"}).to_string()),
                    _ => (StatusCode::BAD_REQUEST, json!({"error": "unsupported_token_type"}).to_string()),
                }
            }),
        ))
        .await;
        let c = client();
        c.revoke(&url, &SecretString::from("live")).await.unwrap();
        c.revoke(&url, &SecretString::from("gone")).await.unwrap();
        let e = c.revoke(&url, &SecretString::from("odd")).await.unwrap_err();
        assert_eq!((e.code().as_str(), e.class()), ("unsupported_token_type", ErrorClass::Permanent));
        assert_eq!(c.revoke("not a url", &SecretString::from("x")).await.unwrap_err().code(), "INVALID_REQUEST");
    }
}
