//! OAuth web-server flow with PKCE, Refresh Token Rotation races, idle TTL, session
//! timeout, userinfo, revoke, production and sandbox login hosts.

// Test code: helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use base64::Engine;
use common::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const CLIENT: &str = "learnlink-client";
const SECRET: &str = "s3cret";
const CALLBACK: &str = "http://127.0.0.1:9/oauth/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-learnlink-verifier";

fn challenge(v: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes()))
}

fn config() -> sf_emulator::Config {
    sf_emulator::Config {
        client_id: Some(CLIENT.into()),
        client_secret: Some(SECRET.into()),
        redirect_uris: vec![CALLBACK.into()],
        ..sf_emulator::Config::default()
    }
}

/// GET authorize; returns the Location and its query parameters.
async fn authorize(emu: &Emu, prefix: &str, params: &[(&str, &str)]) -> (u16, String, HashMap<String, String>) {
    let r = no_redirect_client()
        .get(emu.url(&format!("{prefix}/services/oauth2/authorize")))
        .query(params)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let loc = r.headers().get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let q = url::Url::parse(&loc).map(|u| u.query_pairs().into_owned().collect()).unwrap_or_default();
    (status, loc, q)
}

fn auth_params<'a>(challenge: &'a str, state: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", CLIENT),
        ("redirect_uri", CALLBACK),
        ("state", state),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("scope", "api refresh_token"),
    ]
}

async fn exchange(emu: &Emu, prefix: &str, code: &str, verifier: &str, redirect: &str) -> (u16, Value) {
    emu.token(
        prefix,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
            ("redirect_uri", redirect),
            ("code_verifier", verifier),
        ],
    )
    .await
}

async fn refresh(emu: &Emu, token: &str) -> (u16, Value) {
    emu.token(
        "",
        &[("grant_type", "refresh_token"), ("refresh_token", token), ("client_id", CLIENT), ("client_secret", SECRET)],
    )
    .await
}

#[tokio::test]
async fn code_with_pkce_good_reused_wrong_verifier_wrong_redirect() {
    let emu = start_with(config()).await;
    let ch = challenge(VERIFIER);
    let state = "3f9c2b7e0a1d4c6b8e2f5a7c9d1b3e5f";
    let (status, loc, q) = authorize(&emu, "", &auth_params(&ch, state)).await;
    assert_eq!(status, 302);
    assert!(loc.starts_with(CALLBACK), "{loc}");
    assert_eq!(q["state"], state);
    let code = q["code"].clone();
    assert!(code.ends_with("=="), "Salesforce codes end with ==: {code}");

    let (status, tok) = exchange(&emu, "", &code, VERIFIER, CALLBACK).await;
    assert_eq!(status, 200, "{tok}");
    for key in ["access_token", "refresh_token", "signature", "scope", "instance_url", "id", "token_type", "issued_at"]
    {
        assert!(tok.get(key).is_some(), "missing {key}: {tok}");
    }
    assert!(tok.get("expires_in").is_none(), "Salesforce sends no expires_in");
    assert_eq!(tok["scope"], "api refresh_token");
    assert_eq!(tok["instance_url"], emu.base.as_str());
    let org = emu.admin_get("/org").await;
    let user = org["identity"]["integration_user_id"].as_str().unwrap();
    assert_eq!(tok["id"], format!("{}/id/{}/{user}", emu.base, org["identity"]["org_id"].as_str().unwrap()));
    let access = tok["access_token"].as_str().unwrap();
    assert_eq!(emu.api("GET", "/limits", access, None).await.status, 200);

    // The code is single use.
    let (status, body) = exchange(&emu, "", &code, VERIFIER, CALLBACK).await;
    assert_eq!(
        (status, body),
        (400, json!({"error": "invalid_grant", "error_description": "expired authorization code"}))
    );

    // Wrong verifier.
    let (_, _, q) = authorize(&emu, "", &auth_params(&ch, "s2")).await;
    let (status, body) =
        exchange(&emu, "", &q["code"], "not-the-verifier-but-long-enough-0123456789abcdef", CALLBACK).await;
    assert_eq!((status, body), (400, json!({"error": "invalid_grant", "error_description": "invalid code verifier"})));

    // Missing verifier for a PKCE-bound code.
    let (_, _, q) = authorize(&emu, "", &auth_params(&ch, "s3")).await;
    let (status, body) = emu
        .token(
            "",
            &[
                ("grant_type", "authorization_code"),
                ("code", &q["code"]),
                ("client_id", CLIENT),
                ("client_secret", SECRET),
                ("redirect_uri", CALLBACK),
            ],
        )
        .await;
    assert_eq!((status, body["error_description"].as_str().unwrap()), (400, "invalid code verifier"));

    // A redirect_uri different from the authorize request.
    let (_, _, q) = authorize(&emu, "", &auth_params(&ch, "s4")).await;
    let (status, body) = exchange(&emu, "", &q["code"], VERIFIER, "http://127.0.0.1:9/other").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "redirect_uri_mismatch");

    // An unknown code, a wrong secret, an unknown client.
    let (status, body) = exchange(&emu, "", "aPrxNOPE==", VERIFIER, CALLBACK).await;
    assert_eq!((status, body["error"].as_str().unwrap()), (400, "invalid_grant"));
    let (status, body) = emu
        .token(
            "",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", "x"),
                ("client_id", CLIENT),
                ("client_secret", "wrong"),
            ],
        )
        .await;
    assert_eq!(
        (status, body),
        (400, json!({"error": "invalid_client", "error_description": "invalid client credentials"}))
    );
    let (status, body) =
        emu.token("", &[("grant_type", "refresh_token"), ("refresh_token", "x"), ("client_id", "other")]).await;
    assert_eq!(
        (status, body),
        (400, json!({"error": "invalid_client_id", "error_description": "client identifier invalid"}))
    );

    // A verifier with '~' is refused, as real orgs do.
    let tilde = "abc~defghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMN";
    let ch2 = challenge(tilde);
    let (_, _, q) = authorize(&emu, "", &auth_params(&ch2, "s5")).await;
    let (status, body) = exchange(&emu, "", &q["code"], tilde, CALLBACK).await;
    assert_eq!((status, body["error_description"].as_str().unwrap()), (400, "invalid code verifier"));

    let stats = emu.admin_get("/stats").await;
    assert!(stats["by_kind"]["auth"].as_u64().unwrap() >= 10);
    assert_eq!(stats["api_calls"], 1, "only the /limits call counts against the API limit");
}

#[tokio::test]
async fn authorize_errors_and_denied_consent() {
    let emu = start_with(config()).await;
    let ch = challenge(VERIFIER);
    // Unknown client: Salesforce's own error page, never the redirect URI.
    let mut p = auth_params(&ch, "s");
    p[1] = ("client_id", "someone-else");
    let (status, loc, q) = authorize(&emu, "", &p).await;
    assert_eq!(status, 302);
    assert!(loc.contains("/setup/secur/RemoteAccessErrorPage.apexp"), "{loc}");
    assert_eq!(q["error"], "invalid_client_id");
    // Unregistered redirect URI.
    let mut p = auth_params(&ch, "s");
    p[2] = ("redirect_uri", "http://evil.example/cb");
    let (_, loc, q) = authorize(&emu, "", &p).await;
    assert!(!loc.starts_with("http://evil.example"));
    assert_eq!(q["error"], "redirect_uri_mismatch");
    assert_eq!(q["error_description"], "redirect_uri must match configuration");
    let page = emu.client.get(&loc).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("redirect_uri_mismatch"));
    // Unsupported response type goes back to the (trusted) redirect URI with state.
    let mut p = auth_params(&ch, "st");
    p[0] = ("response_type", "token");
    let (_, loc, q) = authorize(&emu, "", &p).await;
    assert!(loc.starts_with(CALLBACK));
    assert_eq!((q["error"].as_str(), q["state"].as_str()), ("unsupported_response_type", "st"));
    // The user denies consent.
    emu.settings(json!({"deny_consent": true})).await;
    let (status, loc, q) = authorize(&emu, "", &auth_params(&ch, "deny-state")).await;
    assert_eq!(status, 302);
    assert!(loc.starts_with(CALLBACK));
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "deny-state");
    assert!(!q.contains_key("code"));
}

#[tokio::test]
async fn sandbox_login_host() {
    let emu = start_with(sf_emulator::Config { sandbox: true, ..config() }).await;
    let ch = challenge(VERIFIER);
    // The production host does not know sandbox users.
    let r = no_redirect_client()
        .get(emu.url("/services/oauth2/authorize"))
        .query(&auth_params(&ch, "s"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let (status, _, q) = authorize(&emu, "/sandbox", &auth_params(&ch, "s")).await;
    assert_eq!(status, 302);
    let (status, tok) = exchange(&emu, "/sandbox", &q["code"], VERIFIER, CALLBACK).await;
    assert_eq!(status, 200, "{tok}");
    assert!(tok["id"].as_str().unwrap().starts_with(&format!("{}/sandbox/id/", emu.base)));
    let rt = tok["refresh_token"].as_str().unwrap();
    // Refreshing through the production host fails; through the sandbox host works.
    let (status, body) = refresh(&emu, rt).await;
    assert_eq!((status, body["error"].as_str().unwrap()), (400, "invalid_grant"));
    let (status, _) = emu
        .token(
            "/sandbox",
            &[("grant_type", "refresh_token"), ("refresh_token", rt), ("client_id", CLIENT), ("client_secret", SECRET)],
        )
        .await;
    assert_eq!(status, 200);
    let org = emu.admin_get("/org").await;
    assert_eq!(org["identity"]["sandbox"], true);
}

#[tokio::test]
async fn rotation_new_token_each_time_old_refused_reuse_revokes_family() {
    let emu = start_with(config()).await;
    let c = emu.connect().await;
    let mut current = c.refresh_token.clone();
    let mut seen = vec![current.clone()];
    for _ in 0..3 {
        let (status, body) = refresh(&emu, &current).await;
        assert_eq!(status, 200);
        let next = body["refresh_token"].as_str().unwrap().to_owned();
        assert!(!seen.contains(&next), "a new refresh token every time");
        seen.push(next.clone());
        current = next;
    }
    let (status, body) =
        emu.token("", &[("grant_type", "refresh_token"), ("refresh_token", &current), ("client_id", CLIENT)]).await;
    assert_eq!(status, 200, "the secret is optional on refresh: {body}");
    let access = body["access_token"].as_str().unwrap().to_owned();
    current = body["refresh_token"].as_str().unwrap().to_owned();
    // An old token is refused, and its reuse revokes the family: the current
    // refresh token and the family's access tokens stop working.
    let (status, body) = refresh(&emu, &seen[1]).await;
    assert_eq!(
        (status, body),
        (400, json!({"error": "invalid_grant", "error_description": "expired access/refresh token"}))
    );
    let (status, _) = refresh(&emu, &current).await;
    assert_eq!(status, 400);
    let r = emu.api("GET", "/limits", &access, None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body, json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]));
}

#[tokio::test]
async fn concurrent_refreshes_exactly_one_wins() {
    let emu = start_with(config()).await;
    emu.settings(json!({"oauth_processing_delay_ms": 300})).await;
    let c = emu.connect().await;
    let n = 6;
    let mut tasks = Vec::new();
    for _ in 0..n {
        let client = emu.client.clone();
        let url = emu.url("/services/oauth2/token");
        let token = c.refresh_token.clone();
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", token.as_str()),
                    ("client_id", CLIENT),
                    ("client_secret", SECRET),
                ])
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }));
    }
    let mut ok = Vec::new();
    let mut busy = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        if status == 200 {
            ok.push(body);
        } else {
            assert_eq!(
                (status, body),
                (
                    400,
                    json!({"error": "invalid_grant", "error_description": "token request is already being processed"})
                )
            );
            busy += 1;
        }
    }
    assert_eq!(ok.len(), 1, "exactly one refresh succeeds");
    assert_eq!(busy, n - 1);
    // The winner's tokens work; the family is intact.
    let access = ok[0]["access_token"].as_str().unwrap();
    assert_eq!(emu.api("GET", "/limits", access, None).await.status, 200);
    let (status, _) = refresh(&emu, ok[0]["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn idle_ttl_and_session_timeout() {
    let emu = start_with(config()).await;
    emu.settings(json!({"refresh_idle_ttl_ms": 900, "session_timeout_ms": 500})).await;
    let c = emu.connect().await;
    // Used within the timeout, the session lives on (inactivity timeout).
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(emu.api("GET", "/limits", &c.access_token, None).await.status, 200);
    }
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let r = emu.api("GET", "/limits", &c.access_token, None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body[0]["errorCode"], "INVALID_SESSION_ID");
    assert!(r.header("sforce-limit-info").is_none());
    // The refresh token was not used for longer than its idle TTL: expired.
    let (status, body) = refresh(&emu, &c.refresh_token).await;
    assert_eq!(
        (status, body),
        (400, json!({"error": "invalid_grant", "error_description": "expired access/refresh token"}))
    );
    // A token refreshed in time keeps working.
    let c2 = emu.connect().await;
    let (status, body) = refresh(&emu, &c2.refresh_token).await;
    assert_eq!(status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let (status, _) = refresh(&emu, body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn userinfo_identity_and_revoke() {
    let emu = start_with(config()).await;
    let c = emu.connect().await;
    let r = emu.call("GET", "/services/oauth2/userinfo", Some(&c.access_token), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type").as_deref(), Some("application/json;charset=UTF-8"));
    assert!(r.header("sforce-limit-info").is_none());
    let org = emu.admin_get("/org").await;
    assert_eq!(r.body["user_id"], org["identity"]["integration_user_id"]);
    assert_eq!(r.body["preferred_username"], org["identity"]["integration_username"]);
    assert_eq!(r.body["urls"]["rest"], format!("{}/services/data/v{{version}}/", emu.base));
    let bad = emu.call("GET", "/services/oauth2/userinfo", Some("nope"), None).await;
    assert_eq!((bad.status, bad.text.as_str()), (403, "Bad_OAuth_Token"));
    let missing = emu.call("GET", "/services/oauth2/userinfo", None, None).await;
    assert_eq!((missing.status, missing.text.as_str()), (403, "Missing_OAuth_Token"));
    // The identity URL of the token response.
    let id_path = format!(
        "/id/{}/{}",
        org["identity"]["org_id"].as_str().unwrap(),
        org["identity"]["integration_user_id"].as_str().unwrap()
    );
    let r = emu.call("GET", &id_path, Some(&c.access_token), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["username"], org["identity"]["integration_username"]);
    // Revoking the refresh token revokes the family.
    let r = emu
        .client
        .post(emu.url("/services/oauth2/revoke"))
        .form(&[("token", c.refresh_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(emu.api("GET", "/limits", &c.access_token, None).await.status, 401);
    let r = emu.client.post(emu.url("/services/oauth2/revoke")).form(&[("token", "unknown")]).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": "unsupported_token_type", "error_description": "this token type is not supported"})
    );
    let stats = emu.admin_get("/stats").await;
    assert_eq!(stats["api_calls"], 0, "OAuth calls are not counted against the API limit");
    assert_eq!(stats["by_endpoint"]["userinfo"], 3);
}

#[tokio::test]
async fn auth_scoped_faults() {
    let emu = start_with(config()).await;
    let c = emu.connect().await;
    emu.admin("/faults", json!({"kind": "server_unavailable", "count": 1, "scope": "auth"})).await;
    // A data call is not affected by an auth-scoped fault.
    assert_eq!(emu.api("GET", "/limits", &c.access_token, None).await.status, 200);
    let (status, body) = refresh(&emu, &c.refresh_token).await;
    assert_eq!(status, 503);
    assert_eq!(body[0]["errorCode"], "SERVER_UNAVAILABLE");
    let (status, _) = refresh(&emu, &c.refresh_token).await;
    assert_eq!(status, 200, "the token survived the outage");
}
