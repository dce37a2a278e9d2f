//! REST API resources: versions, CRUD, upsert by external id, a generic
//! Composite, and `/limits`.

use super::{Reply, SalesforceClient, base_url};
use learnlink_core::budget::OrgLimits;
use learnlink_core::salesforce::rest::{
    ApiVersionInfo, CompositeRequest, CompositeSubresponse, Upserted, data_path, external_id_path, fields_param,
    multiple_matches, parse_composite_response, parse_created, parse_upsert, parse_versions, record_path, sobject_path,
};
use learnlink_core::salesforce::{SalesforceError, Session, error_from_response};
use serde_json::{Map, Value};

impl SalesforceClient {
    /// `GET /services/data`: the API versions the instance serves (no
    /// session needed).
    pub async fn versions(&self, instance_url: &str) -> Result<Vec<ApiVersionInfo>, SalesforceError> {
        let base = base_url(instance_url)?;
        let resp = self.send("listing API versions", base, self.http.get(format!("{base}/services/data"))).await?;
        let reply = Reply::read("listing API versions", resp).await?;
        if !reply.success() {
            return Err(error_from_response(reply.status, &reply.body));
        }
        parse_versions(&reply.json("API versions")?)
    }

    /// `POST …/sobjects/<sobject>/`: create a record; its id.
    pub async fn create(
        &self,
        session: &Session,
        sobject: &str,
        fields: &Map<String, Value>,
    ) -> Result<String, SalesforceError> {
        let url = Self::url(session, &format!("{}/", sobject_path(sobject)?))?;
        let reply = self.call("create", session, self.http.post(url).json(fields)).await?;
        if !reply.success() {
            return Err(error_from_response(reply.status, &reply.body));
        }
        parse_created(reply.status, &reply.json("create")?)
    }

    async fn get_record(
        &self,
        what: &str,
        session: &Session,
        path: String,
        fields: &[&str],
    ) -> Result<Option<Map<String, Value>>, SalesforceError> {
        let mut req = self.http.get(Self::url(session, &path)?);
        if let Some(f) = fields_param(fields)? {
            req = req.query(&[("fields", f)]);
        }
        let reply = self.call(what, session, req).await?;
        match reply.status {
            200 => match reply.json(what)? {
                Value::Object(m) => Ok(Some(m)),
                _ => Err(SalesforceError::unexpected(what, "the record is not a JSON object")),
            },
            300 => Err(multiple_matches(&reply.body, what)),
            404 => match error_from_response(404, &reply.body) {
                // A record in the recycle bin answers ENTITY_IS_DELETED: gone too.
                SalesforceError::Api { code, .. } if code == "NOT_FOUND" || code == "ENTITY_IS_DELETED" => Ok(None),
                other => Err(other),
            },
            status => Err(error_from_response(status, &reply.body)),
        }
    }

    /// `GET …/sobjects/<sobject>/<id>?fields=…` (all fields when `fields` is
    /// empty); `None` when no such record exists or it was deleted.
    pub async fn get(
        &self,
        session: &Session,
        sobject: &str,
        id: &str,
        fields: &[&str],
    ) -> Result<Option<Map<String, Value>>, SalesforceError> {
        self.get_record("get record", session, record_path(sobject, id)?, fields).await
    }

    /// `GET …/sobjects/<sobject>/<field>/<value>`; `None` when nothing
    /// matches; several matches (300) are a permanent error.
    pub async fn get_by_external_id(
        &self,
        session: &Session,
        sobject: &str,
        field: &str,
        value: &str,
        fields: &[&str],
    ) -> Result<Option<Map<String, Value>>, SalesforceError> {
        let what = format!("{sobject} by {field}");
        self.get_record(&what, session, external_id_path(sobject, field, value)?, fields).await
    }

    /// `PATCH …/sobjects/<sobject>/<id>` (204).
    pub async fn update(
        &self,
        session: &Session,
        sobject: &str,
        id: &str,
        fields: &Map<String, Value>,
    ) -> Result<(), SalesforceError> {
        let url = Self::url(session, &record_path(sobject, id)?)?;
        let reply = self.call("update", session, self.http.patch(url).json(fields)).await?;
        if reply.success() { Ok(()) } else { Err(error_from_response(reply.status, &reply.body)) }
    }

    /// `DELETE …/sobjects/<sobject>/<id>` (204). A missing record is a
    /// `NOT_FOUND` error (permanent); callers that only want it gone may
    /// treat that code as done.
    pub async fn delete(&self, session: &Session, sobject: &str, id: &str) -> Result<(), SalesforceError> {
        let url = Self::url(session, &record_path(sobject, id)?)?;
        let reply = self.call("delete", session, self.http.delete(url)).await?;
        if reply.success() { Ok(()) } else { Err(error_from_response(reply.status, &reply.body)) }
    }

    /// `PATCH …/sobjects/<sobject>/<field>/<value>`: 201 created, 200
    /// updated, 300 several records match (permanent: nothing written). The
    /// external id travels in the URL; the body's copy of it, if any, must
    /// agree and is left out.
    pub async fn upsert(
        &self,
        session: &Session,
        sobject: &str,
        field: &str,
        value: &str,
        fields: &Map<String, Value>,
    ) -> Result<Upserted, SalesforceError> {
        let path = external_id_path(sobject, field, value)?;
        let mut body = fields.clone();
        if let Some(v) = body.remove(field)
            && v.as_str() != Some(value)
        {
            return Err(SalesforceError::invalid(format!(
                "the body's {field} differs from the external id upserted by"
            )));
        }
        let what = format!("upsert {sobject} by {field}");
        let reply = self.call(&what, session, self.http.patch(Self::url(session, &path)?).json(&body)).await?;
        parse_upsert(reply.status, &reply.body, reply.location.as_deref(), &what)
    }

    /// A generic `POST …/composite` (up to 25 subrequests). Subrequest
    /// failures are in the subresponses ([`CompositeSubresponse::error`]);
    /// the call fails only as a whole.
    pub async fn composite(
        &self,
        session: &Session,
        request: &CompositeRequest,
    ) -> Result<Vec<CompositeSubresponse>, SalesforceError> {
        let body = request.body()?;
        let url = Self::url(session, &data_path("composite"))?;
        let doc = self.call_json("Composite request", session, self.http.post(url).json(&body)).await?;
        parse_composite_response(&doc)
    }

    /// `GET …/limits`: the org's allocations (`DailyApiRequests`, the Bulk
    /// API 2.0 daily limits, …). The call also refreshes [`Self::api_usage`].
    pub async fn limits(&self, session: &Session) -> Result<OrgLimits, SalesforceError> {
        let url = Self::url(session, &data_path("limits"))?;
        let doc = self.call_json("reading /limits", session, self.http.get(url)).await?;
        OrgLimits::parse(&doc).map_err(|e| SalesforceError::unexpected("reading /limits", &e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use axum::Router;
    use axum::extract::{Path, Query};
    use axum::http::StatusCode;
    use axum::routing::{get, post};
    use learnlink_core::budget::ApiUsage;
    use learnlink_core::salesforce::rest::CompositeSubrequest;
    use learnlink_core::{Classify, ErrorClass};
    use serde_json::json;
    use std::collections::HashMap;

    /// A mock that answers one route with the response of a recorded exchange.
    async fn replaying(name: &str, route: &str, method: axum::routing::MethodFilter) -> Option<(String, Value)> {
        let ex = recorded(name)?.into_iter().last()?;
        let e = ex.clone();
        let handler = move || {
            let e = e.clone();
            async move { replay(&e) }
        };
        let url = mock(Router::new().route(route, axum::routing::on(method, handler))).await;
        Some((url, ex))
    }

    #[tokio::test]
    async fn recorded_crud_exchanges_parse() {
        use axum::routing::MethodFilter;
        let c = client();
        if let Some((url, _)) =
            replaying("create-record", "/services/data/v62.0/sobjects/Account/", MethodFilter::POST).await
        {
            let mut fields = Map::new();
            fields.insert("Name".into(), json!("Test Account from Nango"));
            assert_eq!(c.create(&session(&url), "Account", &fields).await.unwrap(), "001dM00003kRs59QAC");
            assert_eq!(c.api_usage(&url), Some(ApiUsage { used: 22, limit: 15000 }));
        }
        if let Some((url, ex)) =
            replaying("get-record", "/services/data/v62.0/sobjects/Account/{id}", MethodFilter::GET).await
        {
            let rec = c.get(&session(&url), "Account", "001dM00003jU9GxQAK", &[]).await.unwrap().unwrap();
            assert_eq!(rec["Name"], ex["response"]["body"]["Name"]);
        }
        if let Some((url, _)) =
            replaying("upsert-record", "/services/data/v62.0/sobjects/Contact/Email/{value}", MethodFilter::PATCH).await
        {
            let mut fields = Map::new();
            fields.insert("LastName".into(), json!("TestUser"));
            let up =
                c.upsert(&session(&url), "Contact", "Email", "test_upsert_004@example.com", &fields).await.unwrap();
            assert_eq!(up, Upserted::Created { id: "003dM00001wBXYDQA4".into() });
        }
        if let Some((url, _)) = replaying(
            "update-record-by-external-id",
            "/services/data/v62.0/sobjects/Account/Ext__c/{value}",
            MethodFilter::PATCH,
        )
        .await
        {
            let up = c.upsert(&session(&url), "Account", "Ext__c", "A-1", &Map::new()).await.unwrap();
            assert_eq!(up, Upserted::Updated { id: "001dM00003kReWpQAK".into() });
        }
        if let Some((url, _)) =
            replaying("update-record", "/services/data/v62.0/sobjects/Account/{id}", MethodFilter::PATCH).await
        {
            c.update(&session(&url), "Account", "001dM00003kS3BpQAK", &Map::new()).await.unwrap();
        }
        if let Some((url, _)) =
            replaying("delete-record", "/services/data/v62.0/sobjects/Account/{id}", MethodFilter::DELETE).await
        {
            c.delete(&session(&url), "Account", "001dM00003kS5tZQAS").await.unwrap();
        }
        if let Some(ex) = recorded("delete-sobject-collection") {
            let e = ex[0].clone();
            let url = mock(Router::new().route(
                "/services/data",
                get(move || {
                    let e = e.clone();
                    async move { replay(&e) }
                }),
            ))
            .await;
            let v = c.versions(&url).await.unwrap();
            assert!(v.iter().any(|v| v.version == "62.0" && v.url == "/services/data/v62.0"), "{v:?}");
        }
        if let Some((url, _)) = replaying("get-limits", "/services/data/v62.0/limits", MethodFilter::GET).await {
            let l = c.limits(&session(&url)).await.unwrap();
            assert_eq!((l.daily_api_requests.max, l.daily_api_requests.remaining), (15000, 14976));
            assert_eq!(l.daily_bulk_v2_query_jobs.map(|l| l.max), Some(10000));
            assert_eq!(c.api_usage(&url), Some(ApiUsage { used: 24, limit: 15000 }));
        }
    }

    #[tokio::test]
    async fn get_by_external_id_found_missing_and_ambiguous() {
        let url = mock(Router::new().route(
            "/services/data/v62.0/sobjects/Contact/LMS_Learner_Id__c/{value}",
            get(|Path(value): Path<String>, Query(q): Query<HashMap<String, String>>| async move {
                match value.as_str() {
                    "L 1/é" => {
                        assert_eq!(q.get("fields").map(String::as_str), Some("Id,Email"));
                        (
                            StatusCode::OK,
                            json!({"attributes": {"type": "Contact"}, "Id": "003000000000001AAA", "Email": "a@x"})
                                .to_string(),
                        )
                    }
                    "twice" => (
                        StatusCode::MULTIPLE_CHOICES,
                        json!([
                            "/services/data/v62.0/sobjects/Contact/003000000000001AAA",
                            "/services/data/v62.0/sobjects/Contact/003000000000002AAA"
                        ])
                        .to_string(),
                    ),
                    _ => (
                        StatusCode::NOT_FOUND,
                        json!([{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])
                            .to_string(),
                    ),
                }
            }),
        ))
        .await;
        let c = client();
        let s = session(&url);
        let found = c.get_by_external_id(&s, "Contact", "LMS_Learner_Id__c", "L 1/é", &["Id", "Email"]).await.unwrap();
        assert_eq!(found.unwrap()["Id"], "003000000000001AAA");
        assert_eq!(c.get_by_external_id(&s, "Contact", "LMS_Learner_Id__c", "nobody", &[]).await.unwrap(), None);
        let e = c.get_by_external_id(&s, "Contact", "LMS_Learner_Id__c", "twice", &[]).await.unwrap_err();
        assert_eq!((e.code().as_str(), e.class()), ("MULTIPLE_CHOICES", ErrorClass::Permanent));
        let e = c.get_by_external_id(&s, "Contact", "Bad Field", "x", &[]).await.unwrap_err();
        assert_eq!(e.code(), "INVALID_REQUEST");
    }

    #[tokio::test]
    async fn upsert_distinguishes_created_updated_and_several() {
        let url = mock(Router::new().route(
            "/services/data/v62.0/sobjects/Contact/LMS_Learner_Id__c/{value}",
            axum::routing::patch(|Path(value): Path<String>, axum::Json(body): axum::Json<Value>| async move {
                assert!(body.get("LMS_Learner_Id__c").is_none(), "the key travels in the URL only");
                match value.as_str() {
                    "new" => (StatusCode::CREATED, json!({"id": "003000000000003AAA", "success": true, "errors": [], "created": true}).to_string()),
                    "old" => (StatusCode::OK, json!({"id": "003000000000001AAA", "success": true, "errors": [], "created": false}).to_string()),
                    "twice" => (StatusCode::MULTIPLE_CHOICES, json!(["/services/data/v62.0/sobjects/Contact/003000000000001AAA", "/services/data/v62.0/sobjects/Contact/003000000000002AAA"]).to_string()),
                    "locked" => (StatusCode::BAD_REQUEST, json!([{"errorCode": "UNABLE_TO_LOCK_ROW", "message": "unable to obtain exclusive access to this record"}]).to_string()),
                    _ => (StatusCode::BAD_REQUEST, json!([{"errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "message": "Email required", "fields": []}]).to_string()),
                }
            }),
        ))
        .await;
        let c = client();
        let s = session(&url);
        let mut body = Map::new();
        body.insert("LastName".into(), json!("X"));
        let up = |v: &'static str, body: Map<String, Value>| {
            let c = c.clone();
            let s = s.clone();
            async move { c.upsert(&s, "Contact", "LMS_Learner_Id__c", v, &body).await }
        };
        assert_eq!(up("new", body.clone()).await.unwrap(), Upserted::Created { id: "003000000000003AAA".into() });
        let mut with_key = body.clone();
        with_key.insert("LMS_Learner_Id__c".into(), json!("old"));
        assert_eq!(up("old", with_key.clone()).await.unwrap(), Upserted::Updated { id: "003000000000001AAA".into() });
        let e = up("twice", body.clone()).await.unwrap_err();
        assert_eq!((e.code().as_str(), e.class()), ("MULTIPLE_CHOICES", ErrorClass::Permanent));
        assert!(e.to_string().contains("2 records match"), "{e}");
        assert_eq!(up("locked", body.clone()).await.unwrap_err().class(), ErrorClass::Retryable);
        let e = up("invalid", body.clone()).await.unwrap_err();
        assert_eq!((e.code().as_str(), e.class()), ("FIELD_CUSTOM_VALIDATION_EXCEPTION", ErrorClass::Permanent));
        assert!(e.to_string().contains("Email required"));
        assert_eq!(up("other", with_key).await.unwrap_err().code(), "INVALID_REQUEST");
    }

    #[tokio::test]
    async fn missing_records_read_as_none_and_expired_sessions_as_such() {
        let url = mock(Router::new().route(
            "/services/data/v62.0/sobjects/Account/{id}",
            get(|Path(id): Path<String>| async move {
                if id == "001000000000000AAA" {
                    (
                        StatusCode::NOT_FOUND,
                        json!([{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])
                            .to_string(),
                    )
                } else {
                    (
                        StatusCode::UNAUTHORIZED,
                        json!([{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}])
                            .to_string(),
                    )
                }
            }),
        ))
        .await;
        let c = client();
        assert_eq!(c.get(&session(&url), "Account", "001000000000000AAA", &["Name"]).await.unwrap(), None);
        let e = c.get(&session(&url), "Account", "001000000000001AAA", &[]).await.unwrap_err();
        assert!(matches!(e, SalesforceError::SessionExpired));
        assert_eq!(c.get(&session(&url), "Account", "../../limits", &[]).await.unwrap_err().code(), "INVALID_REQUEST");
    }

    #[tokio::test]
    async fn generic_composite_returns_subresponses() {
        let url = mock(Router::new().route(
            "/services/data/v62.0/composite",
            post(|axum::Json(req): axum::Json<Value>| async move {
                assert_eq!(req["compositeRequest"][1]["url"], "/services/data/v62.0/sobjects/Contact/@{newAccount.id}");
                axum::Json(json!({"compositeResponse": [
                    {"body": {"id": "001000000000001AAA", "success": true, "errors": []}, "httpHeaders": {}, "httpStatusCode": 201, "referenceId": "newAccount"},
                    {"body": [{"errorCode": "PROCESSING_HALTED", "message": "halted"}], "httpHeaders": {}, "httpStatusCode": 400, "referenceId": "contact"}]}))
            }),
        ))
        .await;
        let req = CompositeRequest {
            all_or_none: true,
            collate_subrequests: None,
            subrequests: vec![
                CompositeSubrequest {
                    method: "POST".into(),
                    url: data_path("sobjects/Account"),
                    reference_id: "newAccount".into(),
                    body: Some(json!({"Name": "A"})),
                },
                CompositeSubrequest {
                    method: "GET".into(),
                    url: data_path("sobjects/Contact/@{newAccount.id}"),
                    reference_id: "contact".into(),
                    body: None,
                },
            ],
        };
        let subs = client().composite(&session(&url), &req).await.unwrap();
        assert_eq!(subs.len(), 2);
        assert!(subs[0].error().is_none());
        assert_eq!(subs[1].error().unwrap().code(), "PROCESSING_HALTED");
        let empty = CompositeRequest::default();
        assert_eq!(client().composite(&session(&url), &empty).await.unwrap_err().code(), "INVALID_REQUEST");
    }

    #[tokio::test]
    async fn limits_without_daily_api_requests_are_an_unexpected_answer() {
        let url = mock(Router::new().route(
            "/services/data/v62.0/limits",
            get(|| async {
                ([("sforce-limit-info", "api-usage=5/100")], axum::Json(json!({"Other": {"Max": 1, "Remaining": 1}})))
            }),
        ))
        .await;
        let c = client();
        let e = c.limits(&session(&url)).await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Retryable);
        assert_eq!(c.api_usage(&url), Some(ApiUsage { used: 5, limit: 100 }), "usage is recorded even on a bad answer");
    }
}
