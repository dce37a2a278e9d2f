//! Groups and their memberships (SPEC §9.2): `GET`/`POST /api/v1/groups`,
//! `GET /api/v1/groups/{id}/members`, `PUT`/`DELETE
//! /api/v1/groups/{id}/members/{learner_id}`. Upserts create groups by name
//! and set memberships too (`learners::upsert`). Group names are unique
//! case-insensitively; memberships are not learner attributes, so the group
//! endpoints do not stamp learners.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::api::{Page, Position, admit, encode_cursor, error, list_params};
use crate::learners::{FieldError, body_object, only, text};
use crate::state::LmsState;

fn no_group(id: &str) -> Response {
    let shown: String = id.chars().take(64).collect();
    error(StatusCode::NOT_FOUND, "not_found", &format!("no group with id {shown:?}"), None)
}

fn no_learner(id: &str) -> Response {
    let shown: String = id.chars().take(64).collect();
    error(StatusCode::NOT_FOUND, "not_found", &format!("no learner with id {shown:?}"), None)
}

/// `GET /api/v1/groups`: `{"data": [{"id", "name", "member_count"}],
/// "next_cursor"}` in id order, paged like departments (`limit`, `cursor`;
/// `updated_since` is validated and ignored).
pub async fn list(
    State(state): State<LmsState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    state.count("GET /api/v1/groups");
    if let Err(r) = admit(&state, &headers) {
        return r;
    }
    let p = match list_params(&q) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let data = state.data();
    let start = p.after.map_or(0, |a| a.index.saturating_add(1));
    let groups = data.groups_from(start, p.limit);
    let end = start.saturating_add(u32::try_from(groups.len()).unwrap_or(u32::MAX));
    let more = (end as usize) < data.group_count();
    let next_cursor = (more && end > start).then(|| encode_cursor(Position { updated_at: 0, index: end - 1 }));
    Json(Page { data: groups, next_cursor }).into_response()
}

/// `POST /api/v1/groups` with `{"name"}`: 201 with the group and its
/// `Location`; 409 `conflict` when the name is taken.
pub async fn create(State(state): State<LmsState>, headers: HeaderMap, body: Bytes) -> Response {
    state.count("POST /api/v1/groups");
    if let Err(r) = admit(&state, &headers) {
        return r;
    }
    let body = match body_object(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let name = only(&body, &["name"]).and_then(|()| match body.get("name") {
        Some(v) => text(v, "name"),
        None => Err(FieldError::new("name", "name is required")),
    });
    let name = match name {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    match state.data().create_group(&name) {
        Ok(group) => {
            state.stats().groups_created += 1;
            let mut r = (StatusCode::CREATED, Json(&group)).into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/groups/{}", group.id)) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        Err(existing) => {
            let message = format!("group {} is already named {:?}", existing.id, existing.name);
            let body =
                json!({ "error": { "code": "conflict", "message": message, "field": "name", "id": existing.id } });
            (StatusCode::CONFLICT, Json(body)).into_response()
        }
    }
}

/// `GET /api/v1/groups/{id}/members`: `{"data": [learner ids], "next_cursor":
/// null}`, every member in id order.
pub async fn members(State(state): State<LmsState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    state.count("GET /api/v1/groups/{id}/members");
    if let Err(r) = admit(&state, &headers) {
        return r;
    }
    let data = state.data();
    match data.group_index(&id).and_then(|g| data.group_members(g)) {
        Some(ids) => Json(Page { data: ids, next_cursor: None }).into_response(),
        None => no_group(&id),
    }
}

/// `PUT /api/v1/groups/{id}/members/{learner_id}`: 204 (idempotent).
pub async fn add_member(
    State(state): State<LmsState>,
    headers: HeaderMap,
    Path((id, learner)): Path<(String, String)>,
) -> Response {
    state.count("PUT /api/v1/groups/{id}/members/{learner_id}");
    if let Err(r) = admit(&state, &headers) {
        return r;
    }
    let data = state.data();
    let Some(g) = data.group_index(&id) else { return no_group(&id) };
    let Some(l) = data.learner_index(&learner) else { return no_learner(&learner) };
    match data.add_member(g, l) {
        Some(added) => {
            if added {
                state.stats().memberships_added += 1;
            }
            StatusCode::NO_CONTENT.into_response()
        }
        None => no_group(&id),
    }
}

/// `DELETE /api/v1/groups/{id}/members/{learner_id}`: 204, or 404 when the
/// learner is no member.
pub async fn remove_member(
    State(state): State<LmsState>,
    headers: HeaderMap,
    Path((id, learner)): Path<(String, String)>,
) -> Response {
    state.count("DELETE /api/v1/groups/{id}/members/{learner_id}");
    if let Err(r) = admit(&state, &headers) {
        return r;
    }
    let data = state.data();
    let Some(g) = data.group_index(&id) else { return no_group(&id) };
    let Some(l) = data.learner_index(&learner) else { return no_learner(&learner) };
    match data.remove_member(g, l) {
        Some(true) => {
            state.stats().memberships_removed += 1;
            StatusCode::NO_CONTENT.into_response()
        }
        Some(false) => {
            let shown: String = learner.chars().take(64).collect();
            error(StatusCode::NOT_FOUND, "not_found", &format!("learner {shown:?} is no member of group {id}"), None)
        }
        None => no_group(&id),
    }
}

#[cfg(test)]
mod tests {
    use crate::learners::tests::{item, small, start};
    use serde_json::{Value, json};

    #[tokio::test]
    async fn create_list_and_conflicts() {
        let emu = start(small()).await;
        let (status, g) = emu.call("POST", "/api/v1/groups", Some(json!({"name": " Sales "}))).await;
        assert_eq!(status, 201, "{g}");
        assert_eq!(g, json!({"id": "G0000", "name": "Sales", "member_count": 0}));
        let (status, v) = emu.call("POST", "/api/v1/groups", Some(json!({"name": "SALES"}))).await;
        assert_eq!(
            (status, v["error"]["code"].as_str(), v["error"]["id"].as_str()),
            (409, Some("conflict"), Some("G0000"))
        );
        for (body, field) in [
            (json!({}), "name"),
            (json!({"name": ""}), "name"),
            (json!({"name": 5}), "name"),
            (json!({"name": "x".repeat(256)}), "name"),
            (json!({"name": "Ok", "id": "G9"}), "id"),
        ] {
            let (status, v) = emu.call("POST", "/api/v1/groups", Some(body.clone())).await;
            assert_eq!((status, v["error"]["field"].as_str()), (400, Some(field)), "{body}: {v}");
        }
        let (status, _) = emu.send("POST", "/api/v1/groups", Some(json!({"name": "X"})), None).await;
        assert_eq!(status, 401);
        let (status, _) = emu.send("GET", "/api/v1/groups", None, Some("wrong")).await;
        assert_eq!(status, 401);

        for n in 1..5 {
            let (status, _) = emu.call("POST", "/api/v1/groups", Some(json!({"name": format!("Team {n}")}))).await;
            assert_eq!(status, 201);
        }
        // Pages of 2 through 5 groups.
        let mut names = Vec::new();
        let mut path = "/api/v1/groups?limit=2".to_string();
        loop {
            let (status, page) = emu.call("GET", &path, None).await;
            assert_eq!(status, 200, "{page}");
            assert!(page["data"].as_array().unwrap().len() <= 2);
            names.extend(page["data"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap().to_owned()));
            match page["next_cursor"].as_str() {
                Some(c) => path = format!("/api/v1/groups?limit=2&cursor={c}"),
                None => break,
            }
        }
        assert_eq!(names, ["Sales", "Team 1", "Team 2", "Team 3", "Team 4"]);
        let (status, v) = emu.call("GET", "/api/v1/groups?limit=0", None).await;
        assert_eq!((status, v["error"]["parameter"].as_str()), (400, Some("limit")));
        let (status, v) = emu.call("GET", "/api/v1/groups?cursor=zz", None).await;
        assert_eq!((status, v["error"]["parameter"].as_str()), (400, Some("cursor")));
        let stats = emu.stats().await;
        assert_eq!(stats["groups_created"], 5);
        assert_eq!(stats["requests"]["POST /api/v1/groups"], 12);
    }

    #[tokio::test]
    async fn memberships() {
        let emu = start(small()).await;
        let (_, g) = emu.call("POST", "/api/v1/groups", Some(json!({"name": "Sales"}))).await;
        let gid = g["id"].as_str().unwrap();
        let member = |l: &str| format!("/api/v1/groups/{gid}/members/{l}");
        let members = format!("/api/v1/groups/{gid}/members");
        let before = emu.learner("L000003").await;

        for _ in 0..2 {
            let (status, v) = emu.call("PUT", &member("L000003"), None).await;
            assert_eq!((status, v), (204, Value::Null), "idempotent");
        }
        assert_eq!(emu.call("PUT", &member("L000001"), None).await.0, 204);
        let (status, v) = emu.call("GET", &members, None).await;
        assert_eq!((status, v), (200, json!({"data": ["L000001", "L000003"], "next_cursor": null})));
        assert_eq!(emu.state.group_names_of("L000003"), ["Sales"]);
        assert_eq!(emu.learner("L000003").await, before, "memberships do not stamp the learner");
        let (_, list) = emu.call("GET", "/api/v1/groups", None).await;
        assert_eq!(list["data"][0]["member_count"], 2);

        assert_eq!(emu.call("DELETE", &member("L000003"), None).await.0, 204);
        let (status, v) = emu.call("DELETE", &member("L000003"), None).await;
        assert_eq!((status, v["error"]["code"].as_str()), (404, Some("not_found")), "no such membership");
        assert!(emu.state.group_names_of("L000003").is_empty());
        let stats = emu.stats().await;
        assert_eq!((stats["memberships_added"].as_u64(), stats["memberships_removed"].as_u64()), (Some(2), Some(1)));

        // Unknown groups and learners.
        for (method, path) in [
            ("GET", "/api/v1/groups/G0009/members".to_string()),
            ("GET", "/api/v1/groups/G9/members".to_string()),
            ("PUT", "/api/v1/groups/G0009/members/L000001".to_string()),
            ("PUT", member("L999999")),
            ("DELETE", "/api/v1/groups/nope/members/L000001".to_string()),
            ("DELETE", member("L1")),
        ] {
            let (status, v) = emu.call(method, &path, None).await;
            assert_eq!((status, v["error"]["code"].as_str()), (404, Some("not_found")), "{method} {path}");
        }
        for method in ["GET", "PUT", "DELETE"] {
            let path = if method == "GET" { members.clone() } else { member("L000001") };
            assert_eq!(emu.send(method, &path, None, None).await.0, 401, "{method}");
        }

        // Upserts and the group endpoints share memberships.
        let mut a = item("A", "a@example.com");
        a["groups"] = json!(["sales"]);
        let r = emu.upsert(json!([a]), false, false).await;
        let id = r[0]["id"].as_str().unwrap();
        let (_, v) = emu.call("GET", &members, None).await;
        assert_eq!(v["data"], json!(["L000001", id]));
        assert_eq!(emu.stats().await["groups_created"], 1, "matched by name, not created again");
    }
}
