//! `GET /admin/tenants/{tenant}/exports/enrollments` (SPEC §6.7): the
//! tenant's LMS enrollments with `since <= updated_at < until` as RFC 4180
//! CSV, for audits (the vendors' "Email CSV"). Up to [`MAX_ROWS`] rows per
//! answer, read from the LMS in pages of [`PAGE_SIZE`]; the header row only
//! on the first answer (no cursor); `Learnlink-Next-Cursor` (the LMS's own
//! cursor, opaque) when more rows remain.

use crate::imports::credential_fail;
use crate::{Answer, Deps, Fail, current, param, time_param};
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use http::HeaderValue;
use learnlink_adapters::lambda::error_response;
use learnlink_core::backfill::Window;
use learnlink_core::model::{Enrollment, EnrollmentStatus, salesforce_datetime};
use learnlink_core::tenant::Tenant;
use learnlink_core::{ErrorClass, PortError, credentials, csv};
use time::OffsetDateTime;

/// Rows in one answer at most.
pub(crate) const MAX_ROWS: usize = 5_000;
/// Enrollments asked of the LMS per page.
pub(crate) const PAGE_SIZE: u32 = 1_000;
/// LMS pages read for one answer at most (pages may come back short).
const MAX_PAGES: usize = 25;
/// The longest cursor taken.
const MAX_CURSOR: usize = 2048;
/// The response header carrying the cursor of the next answer.
pub(crate) const NEXT_CURSOR: &str = "learnlink-next-cursor";

/// The columns, in order.
pub(crate) const COLUMNS: [&str; 10] = [
    "enrollment_id",
    "learner_id",
    "course_id",
    "course_title",
    "status",
    "progress_pct",
    "score",
    "enrolled_at",
    "completed_at",
    "updated_at",
];

fn status(s: EnrollmentStatus) -> &'static str {
    match s {
        EnrollmentStatus::Enrolled => "enrolled",
        EnrollmentStatus::InProgress => "in_progress",
        EnrollmentStatus::Completed => "completed",
        EnrollmentStatus::Expired => "expired",
    }
}

fn number(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite()).map(|x| x.to_string()).unwrap_or_default()
}

fn when(t: Option<OffsetDateTime>) -> String {
    t.map(salesforce_datetime).unwrap_or_default()
}

/// One CSV row of an enrollment.
pub(crate) fn write_enrollment(out: &mut Vec<u8>, e: &Enrollment) {
    let fields = [
        e.id.clone(),
        e.learner_id.clone(),
        e.course_id.clone(),
        e.course_title.clone().unwrap_or_default(),
        status(e.status).to_string(),
        number(e.progress_pct),
        number(e.score),
        when(e.enrolled_at),
        when(e.completed_at),
        salesforce_datetime(e.updated_at),
    ];
    csv::write_row(out, fields.iter().map(String::as_str));
}

/// An LMS failure as an answer: throttled → 429 (with `Retry-After` when
/// the LMS gave one), retryable → 503, permanent → 400 for a cursor given
/// (it is not one the LMS accepts), 422 otherwise.
fn lms_fail(e: PortError, cursor_given: bool) -> Answer {
    tracing::warn!(class = %e.class, error = %e.chain(), "the enrollments export could not read the LMS");
    match e.class {
        ErrorClass::Throttled => {
            let wait = learnlink_adapters::lms::retry_after(&e);
            let mut r = error_response(
                429,
                "lms_throttled",
                &format!("the LMS is throttling learnlink's requests; retry later: {}", e.chain()),
            );
            if let Some(v) = wait.and_then(|d| HeaderValue::from_str(&d.as_secs().max(1).to_string()).ok()) {
                r.headers.insert(http::header::RETRY_AFTER, v);
            }
            Ok(r)
        }
        ErrorClass::Retryable => {
            Err(Fail::new(503, "lms_unavailable", format!("the LMS did not answer; retry in a moment: {}", e.chain())))
        }
        ErrorClass::Permanent if cursor_given => Err(Fail::bad_request(
            "invalid_cursor",
            format!("the cursor is not one this export gave (the LMS refused it): {}", e.chain()),
        )),
        ErrorClass::Permanent => {
            Err(Fail::new(422, "export_failed", format!("the LMS refused the export's request: {}", e.chain())))
        }
    }
}

/// `GET …/exports/enrollments?since=&until=&cursor=`.
pub(crate) async fn enrollments(deps: &Deps, raw: &str, req: &ApiGatewayV2httpRequest, now: OffsetDateTime) -> Answer {
    let stored = current(deps, raw).await?;
    let Some(since) = time_param(req, "since")? else {
        return Err(Fail::bad_request("invalid_parameter", "since is required: an RFC 3339 date-time"));
    };
    let until = time_param(req, "until")?.unwrap_or(now);
    let window = Window::new(since, until).map_err(|m| Fail::bad_request("invalid_window", m))?;
    let cursor = param(req, "cursor");
    if cursor.is_some_and(|c| c.is_empty() || c.len() > MAX_CURSOR) {
        return Err(Fail::bad_request(
            "invalid_cursor",
            format!("the cursor must be 1 to {MAX_CURSOR} characters, as a previous answer's Learnlink-Next-Cursor"),
        ));
    }
    let tenant = Tenant::from_stored(&stored)?;
    let lms =
        credentials::lms_connection(deps.secrets.as_ref(), &deps.names, &tenant).await.map_err(credential_fail)?;

    let mut out = Vec::with_capacity(256 * 1024);
    if cursor.is_none() {
        csv::write_row(&mut out, COLUMNS);
    }
    let mut next = cursor.map(str::to_string);
    let (mut rows, mut pages) = (0usize, 0usize);
    loop {
        let page = match deps.lms_enrollments.enrollments_page(&lms, &window, next.as_deref(), PAGE_SIZE).await {
            Ok(p) => p,
            Err(e) => return lms_fail(e, pages == 0 && cursor.is_some()),
        };
        pages += 1;
        for e in &page.enrollments {
            write_enrollment(&mut out, e);
        }
        rows += page.enrollments.len();
        next = page.next_cursor;
        if next.is_none() || rows + PAGE_SIZE as usize > MAX_ROWS || pages >= MAX_PAGES {
            break;
        }
    }
    tracing::info!(tenant = %stored.tenant, rows, pages, more = next.is_some(), "enrollments exported");
    let mut r = ApiGatewayV2httpResponse::default();
    r.status_code = 200;
    r.headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    if let Some(c) = next.as_deref() {
        let v = HeaderValue::from_str(c).map_err(|_| {
            Fail::new(422, "export_failed", "the LMS gave a cursor an HTTP header cannot carry; the export stops here")
        })?;
        r.headers.insert(NEXT_CURSOR, v);
    }
    r.body =
        Some(Body::Text(String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())));
    Ok(r)
}
