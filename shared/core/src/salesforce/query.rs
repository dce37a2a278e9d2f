//! SOQL query / queryAll results and paging (SPEC §5.2): a page carries
//! `nextRecordsUrl` until `done`; pages may hold fewer than 2,000 records.
//! A [`QueryCursor`] is where the next page comes from; it is serializable
//! so an import job can checkpoint after every page and resume elsewhere.

use super::{SalesforceError, rest::data_path};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where the next page of a query comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum QueryCursor {
    /// The first page of a query. `include_deleted` uses `queryAll`
    /// (deleted and archived records too). `batch_size` (200–2,000) asks for
    /// smaller pages (`Sforce-Query-Options: batchSize=N`).
    Start {
        soql: String,
        #[serde(default)]
        include_deleted: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        batch_size: Option<u32>,
    },
    /// A later page: the `nextRecordsUrl` of the previous one.
    Next { url: String },
}

impl QueryCursor {
    pub fn query(soql: impl Into<String>) -> Self {
        QueryCursor::Start { soql: soql.into(), include_deleted: false, batch_size: None }
    }

    pub fn query_all(soql: impl Into<String>) -> Self {
        QueryCursor::Start { soql: soql.into(), include_deleted: true, batch_size: None }
    }

    /// The request path (without the query string) and the `q` parameter.
    pub fn request(&self) -> Result<(String, Option<&str>), SalesforceError> {
        match self {
            QueryCursor::Start { soql, include_deleted, batch_size } => {
                if soql.trim().is_empty() {
                    return Err(SalesforceError::invalid("the SOQL query is empty"));
                }
                if let Some(n) = batch_size
                    && !(200..=2000).contains(n)
                {
                    return Err(SalesforceError::invalid(format!("query batch size {n} is not within 200..=2000")));
                }
                Ok((data_path(if *include_deleted { "queryAll" } else { "query" }), Some(soql.as_str())))
            }
            QueryCursor::Next { url } => Ok((checked_next_url(url)?.to_string(), None)),
        }
    }

    /// The `Sforce-Query-Options` header value, if any.
    pub fn options_header(&self) -> Option<String> {
        match self {
            QueryCursor::Start { batch_size: Some(n), .. } => Some(format!("batchSize={n}")),
            _ => None,
        }
    }
}

/// A `nextRecordsUrl` is followed only when it is a data API path on the
/// same instance: the access token is never sent anywhere else.
pub fn checked_next_url(url: &str) -> Result<&str, SalesforceError> {
    let ok = url.starts_with("/services/data/")
        && !url.contains("..")
        && !url.contains("//")
        && !url.contains(['\\', '#', ' ', '\r', '\n']);
    if ok {
        Ok(url)
    } else {
        Err(SalesforceError::unexpected("query", "nextRecordsUrl is not a /services/data/ path on this instance"))
    }
}

/// One page of a query result.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryPage {
    #[serde(default)]
    pub total_size: u64,
    pub done: bool,
    #[serde(default)]
    pub records: Vec<Map<String, Value>>,
    #[serde(default)]
    pub next_records_url: Option<String>,
}

impl QueryPage {
    /// Read a page; a page that is not `done` must say where to go next.
    pub fn parse(body: &Value) -> Result<QueryPage, SalesforceError> {
        let page: QueryPage =
            serde_json::from_value(body.clone()).map_err(|e| SalesforceError::unreadable("reading a query page", e))?;
        if !page.done {
            match &page.next_records_url {
                None => {
                    return Err(SalesforceError::unexpected("query", "a page that is not done has no nextRecordsUrl"));
                }
                Some(u) => {
                    checked_next_url(u)?;
                }
            }
        }
        Ok(page)
    }

    /// Where the following page comes from; `None` when this was the last.
    pub fn next_cursor(&self) -> Option<QueryCursor> {
        if self.done { None } else { self.next_records_url.clone().map(|url| QueryCursor::Next { url }) }
    }
}

/// `Id` of a record, when present.
pub fn record_id(record: &Map<String, Value>) -> Option<&str> {
    record.get("Id").and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Classify, ErrorClass};
    use serde_json::json;

    #[test]
    fn cursors_make_requests() {
        let c = QueryCursor::query("SELECT Id FROM Contact");
        assert_eq!(c.request().unwrap(), ("/services/data/v62.0/query".into(), Some("SELECT Id FROM Contact")));
        assert_eq!(
            QueryCursor::query_all("SELECT Id FROM Contact").request().unwrap().0,
            "/services/data/v62.0/queryAll"
        );
        let next = QueryCursor::Next { url: "/services/data/v62.0/query/01gRO0000016PIAYA2-2000".into() };
        assert_eq!(next.request().unwrap(), ("/services/data/v62.0/query/01gRO0000016PIAYA2-2000".into(), None));
        let batch =
            QueryCursor::Start { soql: "SELECT Id FROM User".into(), include_deleted: false, batch_size: Some(500) };
        assert_eq!(batch.options_header().as_deref(), Some("batchSize=500"));
        let json = serde_json::to_value(&next).unwrap();
        assert_eq!(json, json!({"kind": "next", "url": "/services/data/v62.0/query/01gRO0000016PIAYA2-2000"}));
        assert_eq!(serde_json::from_value::<QueryCursor>(json).unwrap(), next);
        for bad in [
            QueryCursor::query("  "),
            QueryCursor::Start { soql: "x".into(), include_deleted: false, batch_size: Some(5000) },
            QueryCursor::Next { url: "https://evil.example.com/services/data/v62.0/query/x".into() },
            QueryCursor::Next { url: "/services/data/../../x".into() },
        ] {
            assert!(bad.request().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pages_must_say_where_to_go_next() {
        let p = QueryPage::parse(
            &json!({"totalSize": 3, "done": false, "nextRecordsUrl": "/services/data/v62.0/query/01g-2",
            "records": [{"attributes": {"type": "Account"}, "Id": "001"}]}),
        )
        .unwrap();
        assert_eq!(p.next_cursor(), Some(QueryCursor::Next { url: "/services/data/v62.0/query/01g-2".into() }));
        assert_eq!(record_id(&p.records[0]), Some("001"));
        let last = QueryPage::parse(&json!({"totalSize": 3, "done": true, "records": []})).unwrap();
        assert_eq!(last.next_cursor(), None);
        let e = QueryPage::parse(&json!({"totalSize": 3, "done": false, "records": []})).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Retryable);
        assert!(QueryPage::parse(&json!({"records": "x"})).is_err());
        let e = QueryPage::parse(&json!({"done": false, "nextRecordsUrl": "http://elsewhere/x", "records": []}));
        assert!(e.is_err());
    }
}
