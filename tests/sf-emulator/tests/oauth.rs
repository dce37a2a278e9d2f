//! OAuth refresh with Refresh Token Rotation, and session checks.

// Test code: helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{Value, json};

async fn refresh(emu: &Emu, token: &str) -> (u16, Value) {
    let r = emu
        .client
        .post(emu.url("/services/oauth2/token"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", token), ("client_id", "learnlink-client")])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let emu = start().await;
    let conn = emu.connect().await;

    let (status, body) = refresh(&emu, &conn.refresh_token).await;
    assert_eq!(status, 200);
    for key in ["access_token", "refresh_token", "signature", "scope", "instance_url", "id", "token_type", "issued_at"]
    {
        assert!(body.get(key).is_some(), "missing {key}: {body}");
    }
    assert!(body.get("expires_in").is_none());
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["instance_url"], emu.base.as_str());
    assert!(body["id"].as_str().unwrap().starts_with(&format!("{}/id/00D", emu.base)));
    let second_refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let second_access = body["access_token"].as_str().unwrap().to_owned();
    assert_ne!(second_refresh, conn.refresh_token);

    // The new access token works.
    let (status, _) = emu.query(&second_access, "SELECT Id FROM Contact").await;
    assert_eq!(status, 200);

    // The rotated (old) refresh token is refused ...
    let (status, body) = refresh(&emu, &conn.refresh_token).await;
    assert_eq!(status, 400);
    assert_eq!(body, json!({"error": "invalid_grant", "error_description": "expired access/refresh token"}));
    // ... and its reuse revoked the whole family: the current refresh token too,
    // and the access tokens of the family.
    let (status, body) = refresh(&emu, &second_refresh).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    let (status, _) = emu.query(&second_access, "SELECT Id FROM Contact").await;
    assert_eq!(status, 401);

    // Another family is unaffected.
    let other = emu.connect().await;
    let (status, _) = refresh(&emu, &other.refresh_token).await;
    assert_eq!(status, 200);

    let stats = emu.admin_get("/stats").await;
    assert_eq!(stats["refreshes"], 2);
    assert_eq!(stats["by_kind"]["auth"], 4);
    assert_eq!(stats["by_endpoint"]["token"], 4);
    assert_eq!(stats["totals"]["auth_calls"], 4);
}

#[tokio::test]
async fn token_endpoint_errors() {
    let emu = start().await;
    let (status, body) = refresh(&emu, "no-such-token").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "expired access/refresh token");

    for form in [vec![("grant_type", "password")], vec![]] {
        let r = emu.client.post(emu.url("/services/oauth2/token")).form(&form).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 400);
        assert_eq!(r.headers()["content-type"].to_str().unwrap(), "application/json;charset=UTF-8");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body, json!({"error": "unsupported_grant_type", "error_description": "grant type not supported"}));
    }
}

#[tokio::test]
async fn invalid_session_and_expiry() {
    let emu = start().await;
    let conn = emu.connect().await;
    let expected = json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]);

    // No header, garbage token.
    let r = emu.client.get(emu.data("/query?q=SELECT+Id+FROM+Contact")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().get("sforce-limit-info").is_none());
    assert_eq!(r.json::<Value>().await.unwrap(), expected);
    let (status, body) = emu.query("garbage", "SELECT Id FROM Contact").await;
    assert_eq!((status, body), (401, expected.clone()));

    // Session timeout: the access token stops working, refresh still works.
    emu.admin("/sessions/expire", json!({})).await;
    let (status, body) = emu.query(&conn.access_token, "SELECT Id FROM Contact").await;
    assert_eq!((status, body), (401, expected.clone()));
    let (status, body) = refresh(&emu, &conn.refresh_token).await;
    assert_eq!(status, 200);
    let access = body["access_token"].as_str().unwrap().to_owned();
    let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
    let (status, _) = emu.query(&access, "SELECT Id FROM Contact").await;
    assert_eq!(status, 200);

    // Password reset: every family revoked.
    emu.admin("/tokens/revoke", json!({})).await;
    let (status, _) = emu.query(&access, "SELECT Id FROM Contact").await;
    assert_eq!(status, 401);
    let (status, body) = refresh(&emu, &refresh_token).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn versions_list_is_public() {
    let emu = start().await;
    let r = emu.client.get(emu.url("/services/data")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    let last = v.as_array().unwrap().last().unwrap();
    assert_eq!(last["url"], "/services/data/v66.0");
    assert_eq!(last["version"], "66.0");
}

#[tokio::test]
async fn the_clock_moves_idle_refresh_tokens_past_their_ttl() {
    let emu = common::start().await;
    emu.admin("/settings", serde_json::json!({"refresh_idle_ttl_ms": 10 * 86_400_000u64})).await;
    let c = emu.connect().await;
    // 8 days idle: still good, and the refresh resets the idle clock.
    emu.admin("/clock", serde_json::json!({"advance_ms": 8 * 86_400_000u64})).await;
    let (s, v) = emu
        .token("", &[("grant_type", "refresh_token"), ("refresh_token", &c.refresh_token), ("client_id", "x")])
        .await;
    assert_eq!(s, 200, "{v}");
    let rt = v["refresh_token"].as_str().unwrap().to_string();
    // 11 more days idle: expired.
    emu.admin("/clock", serde_json::json!({"advance_ms": 11 * 86_400_000u64})).await;
    let (s, v) = emu.token("", &[("grant_type", "refresh_token"), ("refresh_token", &rt), ("client_id", "x")]).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")), "{v}");
    let clock = emu.admin_get("/clock").await;
    assert_eq!(clock["offset_ms"], 19 * 86_400_000u64);
}
