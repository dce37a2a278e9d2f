//! SOQL query and queryAll. [`SalesforceClient::query_page`] reads one page
//! from a [`QueryCursor`] (the import job checkpoints the next cursor after
//! each page); [`SalesforceClient::collect_pages`] follows every
//! `nextRecordsUrl` until `done`.

use super::SalesforceClient;
use learnlink_core::salesforce::query::{QueryCursor, QueryPage};
use learnlink_core::salesforce::{SalesforceError, Session};
use serde_json::{Map, Value};
use std::collections::HashSet;

impl SalesforceClient {
    /// One page of a query: the first (`QueryCursor::Start`) or a later one
    /// (`QueryCursor::Next`). Continue with `page.next_cursor()` until it is
    /// `None`.
    pub async fn query_page(&self, session: &Session, cursor: &QueryCursor) -> Result<QueryPage, SalesforceError> {
        let (path, soql) = cursor.request()?;
        let mut req = self.http.get(Self::url(session, &path)?);
        if let Some(q) = soql {
            req = req.query(&[("q", q)]);
        }
        if let Some(opts) = cursor.options_header() {
            req = req.header("Sforce-Query-Options", opts);
        }
        let doc = self.call_json("SOQL query", session, req).await?;
        QueryPage::parse(&doc)
    }

    /// Every record of a query, following each `nextRecordsUrl` until
    /// `done` (at most `ClientConfig::max_query_pages` pages; a locator that
    /// comes back twice is an error, not a loop).
    pub async fn collect_pages(
        &self,
        session: &Session,
        cursor: QueryCursor,
    ) -> Result<Vec<Map<String, Value>>, SalesforceError> {
        let mut records = Vec::new();
        let mut seen = HashSet::new();
        let mut cursor = Some(cursor);
        for _ in 0..self.config.max_query_pages {
            let Some(c) = cursor.take() else { return Ok(records) };
            let page = self.query_page(session, &c).await?;
            records.extend(page.records.iter().cloned());
            cursor = page.next_cursor();
            if let Some(QueryCursor::Next { url }) = &cursor
                && !seen.insert(url.clone())
            {
                return Err(SalesforceError::unexpected("query", "Salesforce returned the same nextRecordsUrl twice"));
            }
        }
        match cursor {
            None => Ok(records),
            Some(_) => Err(SalesforceError::invalid(format!(
                "the query has more than {} pages; read it page by page with query_page",
                self.config.max_query_pages
            ))),
        }
    }

    /// `query`: every matching record, all pages.
    pub async fn query_records(
        &self,
        session: &Session,
        soql: &str,
    ) -> Result<Vec<Map<String, Value>>, SalesforceError> {
        self.collect_pages(session, QueryCursor::query(soql)).await
    }

    /// `queryAll`: every matching record including deleted and archived
    /// ones, all pages.
    pub async fn query_all_records(
        &self,
        session: &Session,
        soql: &str,
    ) -> Result<Vec<Map<String, Value>>, SalesforceError> {
        self.collect_pages(session, QueryCursor::query_all(soql)).await
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use axum::Router;
    use axum::extract::{Path, Query};
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::get;
    use learnlink_core::budget::ApiUsage;
    use learnlink_core::{Classify, ErrorClass};
    use serde_json::json;
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn record(i: usize) -> Value {
        json!({"attributes": {"type": "Contact", "url": format!("/services/data/v62.0/sobjects/Contact/003{i:015}")},
               "Id": format!("003{i:015}"), "Email": format!("p{i}@example.com")})
    }

    /// A paging server: `total` records, pages of `size` (below 2,000, as
    /// Salesforce may send), locators like Salesforce's `01g…-N`.
    fn paging_router(total: usize, size: usize, endpoint: &'static str) -> Router {
        let page = move |from: usize| {
            let to = (from + size).min(total);
            let mut body = json!({"totalSize": total, "done": to == total,
                "records": (from..to).map(record).collect::<Vec<_>>()});
            if to < total {
                body["nextRecordsUrl"] = json!(format!("/services/data/v62.0/{endpoint}/01gRO0000016PIAYA2-{to}"));
            }
            body
        };
        Router::new()
            .route(
                &format!("/services/data/v62.0/{endpoint}"),
                get(move |Query(q): Query<HashMap<String, String>>, headers: HeaderMap| async move {
                    assert_eq!(q["q"], "SELECT Id, Email FROM Contact WHERE Email LIKE '%\\_x%'");
                    assert_eq!(headers.get("authorization").unwrap(), "Bearer tok");
                    ([("sforce-limit-info", "api-usage=10/15000")], axum::Json(page(0)))
                }),
            )
            .route(
                &format!("/services/data/v62.0/{endpoint}/{{locator}}"),
                get(move |Path(locator): Path<String>| async move {
                    let from: usize = locator.rsplit('-').next().unwrap().parse().unwrap();
                    ([("sforce-limit-info", format!("api-usage={}/15000", 10 + from))], axum::Json(page(from)))
                }),
            )
    }

    const SOQL: &str = "SELECT Id, Email FROM Contact WHERE Email LIKE '%\\_x%'";

    #[tokio::test]
    async fn every_next_records_url_is_followed() {
        for endpoint in ["query", "queryAll"] {
            let url = mock(paging_router(2_345, 500, endpoint)).await;
            let c = client();
            let records = if endpoint == "query" {
                c.query_records(&session(&url), SOQL).await.unwrap()
            } else {
                c.query_all_records(&session(&url), SOQL).await.unwrap()
            };
            assert_eq!(records.len(), 2_345);
            assert_eq!(records[2_344]["Id"], format!("003{:015}", 2_344));
            let ids: std::collections::HashSet<_> = records.iter().map(|r| r["Id"].as_str().unwrap()).collect();
            assert_eq!(ids.len(), 2_345);
            assert_eq!(c.api_usage(&url), Some(ApiUsage { used: 2_010, limit: 15_000 }));
        }
    }

    #[tokio::test]
    async fn page_at_a_time_with_a_checkpointable_cursor() {
        let url = mock(paging_router(1_200, 400, "query")).await;
        let c = client();
        let mut cursor = Some(QueryCursor::query(SOQL));
        let mut pages = 0;
        let mut seen = 0;
        while let Some(cur) = cursor {
            // What an import job stores after each page and reads back in the next invocation.
            let stored = serde_json::to_string(&cur).unwrap();
            let cur: QueryCursor = serde_json::from_str(&stored).unwrap();
            let page = c.query_page(&session(&url), &cur).await.unwrap();
            assert_eq!(page.total_size, 1_200);
            seen += page.records.len();
            pages += 1;
            cursor = page.next_cursor();
        }
        assert_eq!((pages, seen), (3, 1_200));
    }

    #[tokio::test]
    async fn recorded_query_pages_parse() {
        let c = client();
        for (name, route) in [
            ("query-records", "/services/data/v62.0/query"),
            ("query-all-records", "/services/data/v62.0/queryAll"),
            ("users", "/services/data/v62.0/query"),
        ] {
            let Some(ex) = recorded(name) else { return };
            let e = ex[0].clone();
            let want = e["response"]["body"]["totalSize"].as_u64().unwrap() as usize;
            let url = mock(Router::new().route(
                route,
                get(move || {
                    let e = e.clone();
                    async move { replay(&e) }
                }),
            ))
            .await;
            let cursor =
                if route.ends_with("queryAll") { QueryCursor::query_all("x") } else { QueryCursor::query("x") };
            let records = c.collect_pages(&session(&url), cursor).await.unwrap();
            assert_eq!(records.len(), want, "{name}");
        }
        // The last page of a long query, reached through its locator.
        let Some(ex) = recorded("retrieve-query-more") else { return };
        let e = ex[0].clone();
        let url = mock(Router::new().route(
            "/services/data/v60.0/query/{locator}",
            get(move || {
                let e = e.clone();
                async move { replay(&e) }
            }),
        ))
        .await;
        let page = c
            .query_page(
                &session(&url),
                &QueryCursor::Next { url: "/services/data/v60.0/query/0r8xx5R2sM3DgWhASK-2000".into() },
            )
            .await
            .unwrap();
        assert!(page.done && page.next_cursor().is_none());
        assert_eq!(page.total_size, 2086);
        assert_eq!(page.records.len(), 86);
    }

    #[tokio::test]
    async fn batch_size_is_asked_for_with_the_options_header() {
        let url = mock(Router::new().route(
            "/services/data/v62.0/query",
            get(|headers: HeaderMap| async move {
                assert_eq!(headers.get("sforce-query-options").unwrap(), "batchSize=200");
                axum::Json(json!({"totalSize": 0, "done": true, "records": []}))
            }),
        ))
        .await;
        let cursor =
            QueryCursor::Start { soql: "SELECT Id FROM User".into(), include_deleted: false, batch_size: Some(200) };
        assert!(client().query_page(&session(&url), &cursor).await.unwrap().records.is_empty());
    }

    #[tokio::test]
    async fn broken_paging_is_an_error_not_a_short_read() {
        // A locator that points back at itself.
        let url = mock(Router::new()
            .route("/services/data/v62.0/query", get(|| async {
                axum::Json(json!({"totalSize": 9, "done": false, "nextRecordsUrl": "/services/data/v62.0/query/01g-1", "records": [record(0)]}))
            }))
            .route("/services/data/v62.0/query/{l}", get(|| async {
                axum::Json(json!({"totalSize": 9, "done": false, "nextRecordsUrl": "/services/data/v62.0/query/01g-1", "records": [record(1)]}))
            })))
        .await;
        let e = client().query_records(&session(&url), "SELECT Id FROM Contact").await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Retryable);
        assert!(e.to_string().contains("same nextRecordsUrl"), "{e}");

        // Not done, but nowhere to go; or somewhere else entirely.
        for bad in [
            json!({"totalSize": 9, "done": false, "records": []}),
            json!({"totalSize": 9, "done": false, "nextRecordsUrl": "https://evil.example.com/steal", "records": []}),
        ] {
            let url = mock(Router::new().route(
                "/services/data/v62.0/query",
                get(move || {
                    let b = bad.clone();
                    async move { axum::Json(b) }
                }),
            ))
            .await;
            let e = client().query_records(&session(&url), "SELECT Id FROM Contact").await.unwrap_err();
            assert_eq!(e.class(), ErrorClass::Retryable, "{e}");
        }

        // More pages than the client is allowed to collect at once.
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let url = mock(paging_router(50, 10, "query").layer(axum::middleware::from_fn(
            move |req, next: axum::middleware::Next| {
                h.fetch_add(1, Ordering::SeqCst);
                async move { next.run(req).await }
            },
        )))
        .await;
        let (c, _) = client_with_sleeper(|cfg| cfg.max_query_pages = 3);
        let e = c.query_records(&session(&url), SOQL).await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Permanent);
        assert_eq!(hits.load(Ordering::SeqCst), 3, "the loop is bounded");
    }

    #[tokio::test]
    async fn query_errors_keep_salesforce_s_code_and_message() {
        let url = mock(Router::new().route("/services/data/v62.0/query", get(|| async {
            (StatusCode::BAD_REQUEST, axum::Json(json!([{"message": "\nSELECT Idx FROM Contact\n       ^\nERROR at Row:1:Column:8\nNo such column 'Idx' on entity 'Contact'.", "errorCode": "INVALID_FIELD"}])))
        })))
        .await;
        let e = client().query_records(&session(&url), "SELECT Idx FROM Contact").await.unwrap_err();
        assert_eq!((e.code().as_str(), e.class()), ("INVALID_FIELD", ErrorClass::Permanent));
        assert!(e.to_string().contains("No such column 'Idx'"), "{e}");
        let e = client().query_records(&session(&url), "   ").await.unwrap_err();
        assert_eq!(e.code(), "INVALID_REQUEST");
    }
}
