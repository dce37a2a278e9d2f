//! `/admin/tenants/{tenant}/activity` (JSON or CSV) and `/runs`.

use crate::{Answer, Deps, Fail, current, int_param, param, time_param};
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use learnlink_adapters::lambda::json_response;
use learnlink_core::activity::{ActivityFilter, Outcome, to_csv};
use serde_json::json;

pub(crate) async fn list(deps: &Deps, raw: &str, req: &ApiGatewayV2httpRequest) -> Answer {
    let stored = current(deps, raw).await?;
    let outcome = match param(req, "outcome") {
        None => None,
        Some(o) => Some(Outcome::parse(o).ok_or_else(|| {
            let all: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
            Fail::bad_request("invalid_parameter", format!("outcome must be one of {}", all.join(", ")))
        })?),
    };
    let learner = param(req, "learner").map(str::to_string);
    if learner.as_ref().is_some_and(|l| l.is_empty() || l.len() > 255) {
        return Err(Fail::bad_request("invalid_parameter", "learner must be 1 to 255 characters"));
    }
    let filter =
        ActivityFilter { outcome, learner, since: time_param(req, "since")?, until: time_param(req, "until")? };
    let limit = int_param(req, "limit", 1, 1000)?.unwrap_or(100) as usize;
    let csv = match param(req, "format") {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(Fail::bad_request("invalid_parameter", "format must be json or csv")),
    };
    let cursor = param(req, "cursor");
    let page = deps.activity.query(&stored.tenant, &filter, limit, cursor).await.map_err(|e| {
        if e.class == learnlink_core::ErrorClass::Permanent && cursor.is_some() {
            Fail::bad_request("invalid_cursor", e.message)
        } else {
            e.into()
        }
    })?;
    if csv {
        let mut r = ApiGatewayV2httpResponse::default();
        r.status_code = 200;
        r.headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/csv; charset=utf-8"));
        r.body = Some(Body::Text(to_csv(&page.entries)));
        return Ok(r);
    }
    Ok(json_response(200, &json!({"tenant": stored.tenant, "entries": page.entries, "next_cursor": page.next_cursor})))
}

pub(crate) async fn runs(deps: &Deps, raw: &str, req: &ApiGatewayV2httpRequest) -> Answer {
    let stored = current(deps, raw).await?;
    let limit = int_param(req, "limit", 1, 1000)?.unwrap_or(50) as usize;
    let runs = deps.activity.runs(&stored.tenant, limit).await?;
    Ok(json_response(200, &json!({"tenant": stored.tenant, "runs": runs})))
}
