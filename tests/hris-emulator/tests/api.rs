//! The HRIS emulator over HTTP, started in-process (and the binary once).

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashSet};

use serde_json::{Value, json};

const KEY: &str = "hris-local-key";
const TOKEN: &str = "hris-local-account";
const EMPLOYEES: &str = "/api/hris/v1/employees";

struct Hris {
    base: String,
    client: reqwest::Client,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Hris {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start(dataset: hris_emulator::DatasetParams) -> Hris {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = hris_emulator::Config { dataset, ..hris_emulator::Config::default() };
    let task = tokio::spawn(hris_emulator::serve(listener, config));
    Hris { base, client: reqwest::Client::new(), task }
}

async fn empty() -> Hris {
    start(hris_emulator::DatasetParams { seed: 1, employees: 0, groups: 0 }).await
}

impl Hris {
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// GET with the key and token; (status, Retry-After, body).
    async fn get_full(&self, path: &str) -> (u16, Option<String>, Value) {
        let r = self.client.get(self.url(path)).bearer_auth(KEY).header("X-Account-Token", TOKEN).send().await.unwrap();
        let status = r.status().as_u16();
        let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        (status, retry, r.json().await.unwrap())
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let (s, _, v) = self.get_full(path).await;
        (s, v)
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let (s, v) = self.admin(reqwest::Method::POST, path, Some(body)).await;
        assert_eq!(s, 200, "{v}");
        v
    }

    /// One page of employees.
    async fn page(&self, query: &str) -> Value {
        let (s, v) = self.get(&format!("{EMPLOYEES}?{query}")).await;
        assert_eq!(s, 200, "{v}");
        v
    }

    /// Every employee, following `next`, starting with `first_query`.
    async fn all(&self, first_query: &str, page_size: usize) -> Vec<Value> {
        let mut out = Vec::new();
        let mut page = self.page(&format!("page_size={page_size}&{first_query}")).await;
        for _ in 0..100_000 {
            out.extend(page["results"].as_array().unwrap().iter().cloned());
            match page["next"].as_str() {
                None => return out,
                Some(c) => page = self.page(&format!("page_size={page_size}&cursor={c}")).await,
            }
        }
        panic!("paging did not end");
    }
}

fn key(e: &Value) -> (String, String) {
    (e["modified_at"].as_str().unwrap().to_owned(), e["id"].as_str().unwrap().to_owned())
}

fn assert_strictly_ordered(items: &[Value]) {
    for w in items.windows(2) {
        assert!(key(&w[0]) < key(&w[1]), "{:?} then {:?}", key(&w[0]), key(&w[1]));
    }
}

fn enc(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn pages_follow_the_modified_at_id_order_without_skips_or_repeats() {
    let hris = start(hris_emulator::DatasetParams { seed: 7, employees: 1000, groups: 6 }).await;
    let all = hris.all("", 37).await;
    assert_eq!(all.len(), 1000);
    assert_strictly_ordered(&all);
    let ids: HashSet<&str> = all.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1000);
    // Ties on modified_at exist and are broken by id.
    let stamps: HashSet<&str> = all.iter().map(|e| e["modified_at"].as_str().unwrap()).collect();
    assert!(stamps.len() < 1000);

    // The default page is 100; the last page has no next.
    let first = hris.page("").await;
    assert_eq!(first["results"].as_array().unwrap().len(), 100);
    assert!(first["previous"].is_null());
    let last = hris.page("page_size=100&modified_after=2099-01-01T00:00:00Z").await;
    assert!(last["results"].as_array().unwrap().is_empty() && last["next"].is_null());

    // `previous` walks back to the same page.
    let second = hris.page(&format!("page_size=100&cursor={}", first["next"].as_str().unwrap())).await;
    let back = hris.page(&format!("cursor={}", second["previous"].as_str().unwrap())).await;
    assert_eq!(back["results"], first["results"]);
}

#[tokio::test]
async fn employees_changed_between_pages_move_to_the_end_and_are_served_once_more() {
    let hris = start(hris_emulator::DatasetParams { seed: 3, employees: 300, groups: 4 }).await;
    let before = hris.all("", 100).await;
    let served_id = before[10]["id"].as_str().unwrap().to_owned();
    let unserved_id = before[250]["id"].as_str().unwrap().to_owned();

    let mut got = Vec::new();
    let p1 = hris.page("page_size=100").await;
    got.extend(p1["results"].as_array().unwrap().iter().cloned());
    // Between pages: one already served changes, one not yet served changes,
    // one is deleted, one is created.
    let (s, patched) = hris
        .admin(reqwest::Method::PATCH, &format!("/__emulator/employees/{served_id}"), Some(json!({"job_title": "CTO"})))
        .await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(patched["job_title"], "CTO");
    let (s, _) = hris
        .admin(
            reqwest::Method::PATCH,
            &format!("/__emulator/employees/{unserved_id}"),
            Some(json!({"first_name": "Zed"})),
        )
        .await;
    assert_eq!(s, 200);
    let deleted_id = before[150]["id"].as_str().unwrap().to_owned();
    let (s, deleted) = hris.admin(reqwest::Method::DELETE, &format!("/__emulator/employees/{deleted_id}"), None).await;
    assert_eq!(s, 200);
    assert_eq!(deleted["remote_was_deleted"], true);
    let created =
        hris.post("/__emulator/employees", json!([{"first_name": "New", "work_email": "new@acme.example"}])).await;
    let new_id = created["employees"][0]["id"].as_str().unwrap().to_owned();

    let mut cursor = p1["next"].as_str().unwrap().to_owned();
    loop {
        let p = hris.page(&format!("page_size=100&cursor={cursor}")).await;
        got.extend(p["results"].as_array().unwrap().iter().cloned());
        match p["next"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_strictly_ordered(&got);
    let count = |id: &str| got.iter().filter(|e| e["id"] == id).count();
    assert_eq!(got.len(), 302);
    assert_eq!(count(&served_id), 2, "the served one comes again, changed");
    assert_eq!(count(&unserved_id), 1, "the unserved one comes once, changed");
    assert_eq!(count(&deleted_id), 1);
    assert_eq!(count(&new_id), 1);
    let tail: Vec<&str> = got[got.len() - 4..].iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(tail, [served_id.as_str(), unserved_id.as_str(), deleted_id.as_str(), new_id.as_str()]);
    assert_eq!(got[got.len() - 3]["first_name"], "Zed");
    assert_eq!(got[got.len() - 2]["remote_was_deleted"], true);
    let every: BTreeSet<&str> = got.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(every.len(), 301);
}

#[tokio::test]
async fn modified_after_is_exclusive_and_the_cursor_carries_it() {
    let hris = start(hris_emulator::DatasetParams { seed: 9, employees: 500, groups: 2 }).await;
    let all = hris.all("", 100).await;
    let t = all[200]["modified_at"].as_str().unwrap().to_owned();
    let expected: Vec<&Value> = all.iter().filter(|e| e["modified_at"].as_str().unwrap() > t.as_str()).collect();
    let after = hris.all(&format!("modified_after={}", enc(&t)), 7).await;
    assert_eq!(after.iter().collect::<Vec<_>>(), expected);
    // The same instant in another offset.
    let ms = &t[19..23];
    let shifted = format!("{}T{:02}{}{ms}+02:00", &t[..10], t[11..13].parse::<u32>().unwrap() + 2, &t[13..19]);
    if t[11..13].parse::<u32>().unwrap() < 22 {
        let first = hris.page(&format!("page_size=5&modified_after={}", enc(&shifted))).await;
        assert_eq!(first["results"][0], *expected[0]);
    }
    // Beside a cursor, modified_after must be the cursor's.
    let first = hris.page(&format!("page_size=5&modified_after={}", enc(&t))).await;
    let c = first["next"].as_str().unwrap();
    let same = hris.page(&format!("page_size=5&modified_after={}&cursor={c}", enc(&t))).await;
    assert_eq!(same["results"][0], *expected[5]);
    let (s, v) = hris.get(&format!("{EMPLOYEES}?cursor={c}&modified_after=2020-01-01T00:00:00Z")).await;
    assert_eq!((s, v["error"]["parameter"].as_str()), (400, Some("modified_after")));
}

#[tokio::test]
async fn the_api_wants_the_key_and_the_account_token() {
    let hris = empty().await;
    let url = hris.url(EMPLOYEES);
    let cases = [
        (None, None),
        (Some(format!("Bearer {KEY}")), None),
        (Some(format!("Bearer {KEY}")), Some("wrong")),
        (Some("Bearer wrong".to_owned()), Some(TOKEN)),
        (Some(format!("Basic {KEY}")), Some(TOKEN)),
        (None, Some(TOKEN)),
    ];
    for (auth, token) in cases {
        let mut req = hris.client.get(&url);
        if let Some(a) = &auth {
            req = req.header("Authorization", a);
        }
        if let Some(t) = token {
            req = req.header("X-Account-Token", t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{auth:?} {token:?}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "unauthorized");
        assert!(!v.to_string().contains(KEY) && !v.to_string().contains(TOKEN));
    }
    let r = hris.client.get(&url).header("authorization", format!("bearer {KEY}")).header("x-account-token", TOKEN);
    assert_eq!(r.send().await.unwrap().status().as_u16(), 200);
    let r = hris.client.get(hris.url("/api/hris/v1/groups")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // Admin needs nothing.
    let (s, stats) = hris.admin(reqwest::Method::GET, "/__emulator/stats", None).await;
    assert_eq!(s, 200);
    assert_eq!(stats["unauthorized"], 7);
    assert_eq!(stats["requests"]["GET /api/hris/v1/employees"], 7);
}

#[tokio::test]
async fn bad_parameters_are_named() {
    let hris = start(hris_emulator::DatasetParams { seed: 1, employees: 10, groups: 3 }).await;
    let groups_page = {
        let (s, v) = hris.get("/api/hris/v1/groups?page_size=1").await;
        assert_eq!(s, 200);
        v
    };
    let group_cursor = groups_page["next"].as_str().unwrap().to_owned();
    for (query, param) in [
        ("modified_after=yesterday", "modified_after"),
        ("modified_after=2026-13-01T00:00:00Z", "modified_after"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=%21%21", "cursor"),
        (&format!("cursor={group_cursor}"), "cursor"),
        ("page_size=0", "page_size"),
        ("page_size=101", "page_size"),
        ("page_size=ten", "page_size"),
        ("page_size=-1", "page_size"),
    ] {
        let (s, v) = hris.get(&format!("{EMPLOYEES}?{query}")).await;
        assert_eq!(s, 400, "{query}: {v}");
        assert_eq!(v["error"]["parameter"], param, "{query}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(param));
    }
    let (s, v) = hris.get("/api/hris/v1/groups?page_size=500").await;
    assert_eq!((s, v["error"]["parameter"].as_str()), (400, Some("page_size")));
    let (s, _) = hris.get("/api/hris/v1/nothing").await;
    assert_eq!(s, 404);
    let (s, v) = hris.admin(reqwest::Method::GET, "/__emulator/stats", None).await;
    assert_eq!((s, v["bad_requests"].as_u64()), (200, Some(10)));
}

#[tokio::test]
async fn faults_fail_the_next_requests() {
    let hris = start(hris_emulator::DatasetParams { seed: 1, employees: 5, groups: 1 }).await;
    hris.post("/__emulator/faults", json!({"status": 429, "count": 2})).await;
    for _ in 0..2 {
        let (s, retry, v) = hris.get_full(EMPLOYEES).await;
        assert_eq!((s, retry.as_deref()), (429, Some("1")), "{v}");
        assert_eq!(v["error"]["code"], "injected_fault");
    }
    assert_eq!(hris.get(EMPLOYEES).await.0, 200);
    hris.post("/__emulator/faults", json!({"status": 503, "count": 1})).await;
    let (_, v) = hris.admin(reqwest::Method::GET, "/__emulator/faults", None).await;
    assert_eq!(v["faults"], json!({"status": 503, "count": 1}));
    let (s, retry, _) = hris.get_full("/api/hris/v1/groups").await;
    assert_eq!((s, retry), (503, None));
    assert_eq!(hris.get("/api/hris/v1/groups").await.0, 200);
    // Cleared by count 0, refused outside 400..=599.
    hris.post("/__emulator/faults", json!({"status": 500, "count": 3})).await;
    hris.post("/__emulator/faults", json!({"status": 500, "count": 0})).await;
    assert_eq!(hris.get(EMPLOYEES).await.0, 200);
    let (s, _) =
        hris.admin(reqwest::Method::POST, "/__emulator/faults", Some(json!({"status": 200, "count": 1}))).await;
    assert_eq!(s, 400);
    let (_, stats) = hris.admin(reqwest::Method::GET, "/__emulator/stats", None).await;
    assert_eq!(stats["faults_served"], 3);
    assert!(stats["faults"].is_null());
}

#[tokio::test]
async fn data_sets_are_deterministic() {
    let a = empty().await;
    let b = empty().await;
    let params = json!({"employees": 400, "seed": 11, "groups": 5});
    let summary = a.post("/__emulator/dataset", params.clone()).await;
    assert_eq!((summary["employees"].as_u64(), summary["groups"].as_u64()), (Some(400), Some(5)));
    b.post("/__emulator/dataset", params).await;
    let (ea, eb) = (a.all("", 100).await, b.all("", 100).await);
    assert_eq!(ea, eb);
    assert_eq!(a.get("/api/hris/v1/groups").await, b.get("/api/hris/v1/groups").await);
    b.post("/__emulator/dataset", json!({"employees": 400, "seed": 12, "groups": 5})).await;
    assert_ne!(ea, b.all("", 100).await);

    // Merge's employee shape.
    let e = &ea[0];
    for field in [
        "id",
        "remote_id",
        "employee_number",
        "first_name",
        "last_name",
        "display_full_name",
        "work_email",
        "personal_email",
        "company",
        "groups",
        "employment_status",
        "start_date",
        "termination_date",
        "remote_was_deleted",
        "modified_at",
        "department",
        "job_title",
    ] {
        assert!(e.get(field).is_some(), "{field} missing in {e}");
    }
    let id = e["id"].as_str().unwrap();
    assert_eq!(id.len(), 36);
    assert_eq!(id.matches('-').count(), 4);
    let stamp = e["modified_at"].as_str().unwrap();
    assert!(stamp.len() == 24 && stamp.ends_with('Z') && stamp.as_bytes()[19] == b'.', "{stamp}");
    let statuses: HashSet<&str> = ea.iter().map(|e| e["employment_status"].as_str().unwrap()).collect();
    assert_eq!(statuses, HashSet::from(["ACTIVE", "PENDING", "INACTIVE"]));
    assert!(ea.iter().filter(|e| e["employment_status"] == "INACTIVE").all(|e| e["termination_date"].is_string()));
    // Group ids on employees are groups; the department is a DEPARTMENT group's name.
    let groups = a.get("/api/hris/v1/groups").await.1;
    let groups = groups["results"].as_array().unwrap();
    assert!(groups.iter().all(|g| ["TEAM", "DEPARTMENT"].contains(&g["type"].as_str().unwrap())));
    let group_ids: HashSet<&str> = groups.iter().map(|g| g["id"].as_str().unwrap()).collect();
    assert!(ea.iter().flat_map(|e| e["groups"].as_array().unwrap()).all(|g| group_ids.contains(g.as_str().unwrap())));
    let dept_names: HashSet<&str> =
        groups.iter().filter(|g| g["type"] == "DEPARTMENT").map(|g| g["name"].as_str().unwrap()).collect();
    assert!(ea.iter().all(|e| dept_names.contains(e["department"].as_str().unwrap())));

    // Big ones are quick enough to generate.
    let started = std::time::Instant::now();
    let big = a.post("/__emulator/dataset", json!({"employees": 100_000, "seed": 1, "groups": 20})).await;
    assert_eq!(big["employees"], 100_000);
    eprintln!("100k employees generated in {:?}", started.elapsed());
    let (s, _) = a.admin(reqwest::Method::POST, "/__emulator/dataset", Some(json!({"employees": 3_000_000}))).await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn groups_page_by_id() {
    let hris = start(hris_emulator::DatasetParams { seed: 5, employees: 0, groups: 7 }).await;
    let mut all = Vec::new();
    let mut path = "/api/hris/v1/groups?page_size=3".to_owned();
    let mut pages = 0;
    loop {
        let (s, v) = hris.get(&path).await;
        assert_eq!(s, 200, "{v}");
        pages += 1;
        all.extend(v["results"].as_array().unwrap().iter().cloned());
        match v["next"].as_str() {
            Some(c) => path = format!("/api/hris/v1/groups?page_size=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!((pages, all.len()), (3, 7));
    let ids: Vec<&str> = all.iter().map(|g| g["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    assert_eq!(all[0].as_object().unwrap().keys().collect::<Vec<_>>(), ["id", "remote_id", "name", "type"]);
    let v = hris.post("/__emulator/groups", json!([{"name": "Ops", "type": "TEAM"}, {"id": "g-1", "name": "X"}])).await;
    assert_eq!(v["upserted"], 2);
    let (_, v) = hris.get("/api/hris/v1/groups").await;
    assert_eq!(v["results"].as_array().unwrap().len(), 9);
}

#[tokio::test]
async fn admin_changes_employees() {
    let hris = empty().await;
    let v = hris
        .post(
            "/__emulator/employees",
            json!([
                {"id": "e-1", "first_name": "Ada", "modified_at": "2026-02-01T00:00:00Z", "custom_fields": {"x": 1}},
                {"first_name": "Bob", "employment_status": "PENDING"},
            ]),
        )
        .await;
    assert_eq!(v["upserted"], 2);
    assert_eq!(v["employees"][0]["modified_at"], "2026-02-01T00:00:00.000Z");
    let bob = v["employees"][1].clone();
    assert_eq!(bob["id"].as_str().unwrap().len(), 36);
    assert_eq!(bob["groups"], json!([]));
    assert_eq!(bob["remote_was_deleted"], false);
    assert!(bob["termination_date"].is_null());

    let (s, one) = hris.get(&format!("{EMPLOYEES}/e-1")).await;
    assert_eq!((s, &one["custom_fields"]), (200, &json!({"x": 1})));
    assert_eq!(hris.get(&format!("{EMPLOYEES}/nope")).await.0, 404);

    // A patch restamps and moves the employee to the end.
    let (s, ada) =
        hris.admin(reqwest::Method::PATCH, "/__emulator/employees/e-1", Some(json!({"last_name": "Lovelace"}))).await;
    assert_eq!(s, 200);
    assert_eq!((ada["first_name"].as_str(), ada["last_name"].as_str()), (Some("Ada"), Some("Lovelace")));
    assert!(ada["modified_at"].as_str().unwrap() > bob["modified_at"].as_str().unwrap());
    let all = hris.all("", 10).await;
    assert_eq!(all.iter().map(|e| e["id"].clone()).collect::<Vec<_>>(), [bob["id"].clone(), json!("e-1")]);

    for (method, path, body) in [
        (reqwest::Method::PATCH, "/__emulator/employees/nope", Some(json!({}))),
        (reqwest::Method::DELETE, "/__emulator/employees/nope", None),
    ] {
        assert_eq!(hris.admin(method, path, body).await.0, 404);
    }
    for (method, path, body) in [
        (reqwest::Method::PATCH, "/__emulator/employees/e-1", json!({"id": "other"})),
        (reqwest::Method::PATCH, "/__emulator/employees/e-1", json!({"employment_status": "RETIRED"})),
        (reqwest::Method::POST, "/__emulator/employees", json!([{"start_date": "soon"}])),
        (reqwest::Method::POST, "/__emulator/employees", json!([{"modified_at": "later"}])),
        (reqwest::Method::POST, "/__emulator/employees", json!([1])),
    ] {
        let (s, v) = hris.admin(method, path, Some(body)).await;
        assert_eq!(s, 400, "{v}");
    }

    // Reset: the configured data set (none here), counters zeroed.
    hris.post("/__emulator/reset", json!(null)).await;
    let (_, stats) = hris.admin(reqwest::Method::GET, "/__emulator/stats", None).await;
    assert_eq!((stats["employees"].as_u64(), stats["requests"].as_object().unwrap().len()), (Some(0), 0));
}

#[tokio::test]
async fn the_binary_prints_where_it_listens() {
    use tokio::io::AsyncBufReadExt;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hris-emulator"))
        .args(["--bind", "127.0.0.1:0", "--employees", "3", "--api-key", "k", "--account-token", "t"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line()).await.unwrap().unwrap();
    let url = line.unwrap().strip_prefix("listening on ").unwrap().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let r = reqwest::Client::new()
        .get(format!("{url}{EMPLOYEES}"))
        .bearer_auth("k")
        .header("X-Account-Token", "t")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["results"].as_array().unwrap().len(), 3);
    child.kill().await.unwrap();
}
