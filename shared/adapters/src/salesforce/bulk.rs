//! Bulk API 2.0 ingest (SPEC §6.3). [`SalesforceClient::bulk_ingest`] runs
//! the whole thing: plan (core) → per part: create job → stream the CSV →
//! `UploadComplete` → poll with backoff → read the three result files as
//! streams → one [`RecordOutcome`] per input record. The steps are public
//! too, for a caller that spreads a job over several invocations.

use super::{Reply, SalesforceClient, transport};
use bytes::Bytes;
use learnlink_core::Classify;
use learnlink_core::csv::CsvReader;
use learnlink_core::error::ErrorClass;
use learnlink_core::salesforce::bulk::{
    BulkJobSummary, BulkMatcher, BulkOperation, BulkPart, BulkPlan, BulkReport, JobInfo, ResultKind, abort_body,
    unprocessed_failure, upload_complete_body,
};
use learnlink_core::salesforce::rest::data_path;
use learnlink_core::salesforce::{
    RecordFailure, RecordOutcome, SalesforceError, Session, SfRecord, error_from_response,
};
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;

/// Polls at most this many times whatever the schedule says.
const MAX_POLLS: u32 = 10_000;
/// Transient polling failures in a row that are waited out.
const MAX_POLL_BLIPS: u32 = 2;

fn job_path(job_id: &str, rest: &str) -> Result<String, SalesforceError> {
    if job_id.is_empty() || !job_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(SalesforceError::invalid(format!("{job_id:?} is not a Bulk job id")));
    }
    Ok(data_path(&format!("jobs/ingest/{job_id}{rest}")))
}

/// The CSV of one part, produced chunk by chunk as the upload reads it.
struct CsvChunks {
    plan: Arc<BulkPlan>,
    records: Arc<Vec<SfRecord>>,
    indices: Vec<usize>,
    next: usize,
    header_sent: bool,
    chunk_bytes: usize,
}

impl Iterator for CsvChunks {
    type Item = Result<Bytes, std::io::Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut buf = Vec::with_capacity(self.chunk_bytes + 1024);
        if !self.header_sent {
            buf.extend_from_slice(self.plan.header());
            self.header_sent = true;
        }
        while buf.len() < self.chunk_bytes && self.next < self.indices.len() {
            if let Some(r) = self.records.get(self.indices[self.next]) {
                self.plan.encode_row(r, &mut buf);
            }
            self.next += 1;
        }
        if buf.is_empty() { None } else { Some(Ok(Bytes::from(buf))) }
    }
}

impl SalesforceClient {
    /// `POST …/jobs/ingest`: open a job for the plan.
    pub async fn bulk_create_job(&self, session: &Session, plan: &BulkPlan) -> Result<JobInfo, SalesforceError> {
        let url = Self::url(session, &data_path("jobs/ingest"))?;
        let doc =
            self.call_json("creating a Bulk job", session, self.http.post(url).json(&plan.create_job_body())).await?;
        JobInfo::parse(&doc)
    }

    /// `PUT …/jobs/ingest/<id>/batches`: stream one part's CSV (header and
    /// rows encoded chunk by chunk; never the whole file in memory). The
    /// exact length is known from the plan and sent as `Content-Length`.
    pub async fn bulk_upload(
        &self,
        session: &Session,
        job_id: &str,
        plan: Arc<BulkPlan>,
        records: Arc<Vec<SfRecord>>,
        part: &BulkPart,
    ) -> Result<(), SalesforceError> {
        let url = Self::url(session, &job_path(job_id, "/batches")?)?;
        let chunks = CsvChunks {
            plan,
            records,
            indices: part.records.clone(),
            next: 0,
            header_sent: false,
            chunk_bytes: self.config.upload_chunk_bytes.max(1),
        };
        let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
        let req = self
            .http
            .put(url)
            .timeout(self.config.upload_timeout)
            .header(reqwest::header::CONTENT_TYPE, "text/csv")
            .header(reqwest::header::CONTENT_LENGTH, part.bytes)
            .body(body);
        let reply = self.call("uploading Bulk job data", session, req).await?;
        if reply.success() { Ok(()) } else { Err(error_from_response(reply.status, &reply.body)) }
    }

    async fn bulk_set_state(
        &self,
        what: &str,
        session: &Session,
        job_id: &str,
        body: serde_json::Value,
    ) -> Result<JobInfo, SalesforceError> {
        let url = Self::url(session, &job_path(job_id, "")?)?;
        let doc = self.call_json(what, session, self.http.patch(url).json(&body)).await?;
        JobInfo::parse(&doc)
    }

    /// `PATCH …/jobs/ingest/<id>` `{"state":"UploadComplete"}`: processing starts.
    pub async fn bulk_close_job(&self, session: &Session, job_id: &str) -> Result<JobInfo, SalesforceError> {
        self.bulk_set_state("closing a Bulk job", session, job_id, upload_complete_body()).await
    }

    /// `PATCH …/jobs/ingest/<id>` `{"state":"Aborted"}`.
    pub async fn bulk_abort_job(&self, session: &Session, job_id: &str) -> Result<JobInfo, SalesforceError> {
        self.bulk_set_state("aborting a Bulk job", session, job_id, abort_body()).await
    }

    /// `GET …/jobs/ingest/<id>`.
    pub async fn bulk_job_info(&self, session: &Session, job_id: &str) -> Result<JobInfo, SalesforceError> {
        let url = Self::url(session, &job_path(job_id, "")?)?;
        let doc = self.call_json("reading a Bulk job", session, self.http.get(url)).await?;
        JobInfo::parse(&doc)
    }

    /// Poll until the job is `JobComplete`, `Failed` or `Aborted`, waiting
    /// with exponential backoff (`ClientConfig::poll`, through the
    /// injectable sleeper). Up to two transient failures in a row are
    /// waited out (the job goes on regardless). Past `max_total` of
    /// waiting: a retryable `BULK_JOB_TIMEOUT` (the job goes on in
    /// Salesforce; poll again later).
    pub async fn bulk_wait(&self, session: &Session, job_id: &str) -> Result<JobInfo, SalesforceError> {
        let schedule = self.config.poll;
        let mut waited = Duration::ZERO;
        let mut attempt = 0u32;
        let mut blips = 0u32;
        let mut last_state = None;
        loop {
            match self.bulk_job_info(session, job_id).await {
                Ok(info) if info.state.is_terminal() => return Ok(info),
                Ok(info) => {
                    blips = 0;
                    last_state = Some(info.state);
                }
                Err(e)
                    if blips < MAX_POLL_BLIPS
                        && e.class() == ErrorClass::Retryable
                        && !matches!(e, SalesforceError::SessionExpired) =>
                {
                    blips += 1;
                    tracing::warn!(job = %job_id, error = %learnlink_core::error::error_chain(&e), "polling a Bulk job failed; trying again");
                }
                Err(e) => return Err(e),
            }
            let delay = schedule.delay(attempt).max(Duration::from_millis(1));
            attempt += 1;
            if waited + delay > schedule.max_total || attempt >= MAX_POLLS {
                let state = last_state.map(|s| format!("{s:?}")).unwrap_or_else(|| "unknown".into());
                return Err(SalesforceError::Api {
                    class: ErrorClass::Retryable,
                    status: 200,
                    code: "BULK_JOB_TIMEOUT".into(),
                    message: format!(
                        "Bulk job {job_id} is still {state} after {} s of polling; it goes on in Salesforce",
                        waited.as_secs()
                    ),
                });
            }
            self.config.sleeper.sleep(delay).await;
            waited += delay;
        }
    }

    /// Stream one result file (`successfulResults`, `failedResults`,
    /// `unprocessedrecords`) through the CSV reader into the matcher.
    pub async fn bulk_read_results(
        &self,
        session: &Session,
        job_id: &str,
        kind: ResultKind,
        matcher: &mut BulkMatcher,
        unprocessed: &RecordFailure,
    ) -> Result<(), SalesforceError> {
        let what = format!("reading Bulk {}", kind.resource());
        let url = Self::url(session, &job_path(job_id, &format!("/{}", kind.resource()))?)?;
        let req = self.http.get(url).header(reqwest::header::ACCEPT, "text/csv");
        let mut resp =
            self.send(&what, &session.instance_url, req.bearer_auth(session.access_token.expose_secret())).await?;
        if !resp.status().is_success() {
            let reply = Reply::read(&what, resp).await?;
            return Err(error_from_response(reply.status, &reply.body));
        }
        let unreadable = |e| SalesforceError::unreadable(&what, e);
        let mut reader = CsvReader::new();
        let mut rows = Vec::new();
        matcher.begin(kind);
        while let Some(chunk) = resp.chunk().await.map_err(|e| transport(&what, e))? {
            reader.push(&chunk, &mut rows).map_err(unreadable)?;
            for row in rows.drain(..) {
                matcher.row(row, unprocessed)?;
            }
        }
        reader.finish(&mut rows).map_err(unreadable)?;
        for row in rows.drain(..) {
            matcher.row(row, unprocessed)?;
        }
        Ok(())
    }

    /// Write `records` (one sObject, one key field) through Bulk API 2.0.
    ///
    /// Every input record gets exactly one outcome, in input order:
    /// records the plan refuses (duplicate key, a list value, a row over
    /// the upload limit) fail permanently without being sent; the others
    /// get what the result files say, matched by key whatever their order;
    /// a record no file mentions counts as unprocessed (retryable). Inputs
    /// over `max_upload_bytes` run as several jobs. When the first job
    /// cannot even be created (session expired, API limit, org down) the
    /// call fails as a whole, like a Composite call; later failures become
    /// per-record outcomes, and after a throttled or expired-session
    /// failure the remaining parts are not sent.
    pub async fn bulk_ingest(
        &self,
        session: &Session,
        operation: BulkOperation,
        records: Vec<SfRecord>,
    ) -> Result<BulkReport, SalesforceError> {
        let plan = Arc::new(BulkPlan::new(operation, &records, self.config.max_upload_bytes)?);
        let records = Arc::new(records);
        let mut outcomes: Vec<Option<RecordOutcome>> = vec![None; records.len()];
        for (i, f) in &plan.rejected {
            outcomes[*i] = Some(RecordOutcome::Failed(f.clone()));
        }
        let mut report = BulkReport {
            outcomes: Vec::new(),
            jobs: Vec::new(),
            unexpected_rows: 0,
            duplicate_rows: 0,
            missing_rows: 0,
        };
        let mut stop: Option<RecordFailure> = None;
        for (n, part) in plan.parts.iter().enumerate() {
            let mut summary = BulkJobSummary {
                id: String::new(),
                state: None,
                records: part.records.len(),
                bytes: part.bytes,
                processed: 0,
                failed: 0,
                error_message: None,
            };
            let part_outcomes = match &stop {
                Some(f) => vec![RecordOutcome::Failed(f.clone()); part.records.len()],
                None => match self
                    .bulk_part(session, plan.clone(), records.clone(), part, &mut summary, &mut report)
                    .await
                {
                    Ok(o) => o,
                    Err(e) if n == 0 => return Err(e),
                    Err(e) => {
                        let f = e.to_record_failure();
                        if matches!(e, SalesforceError::SessionExpired) || e.class() == ErrorClass::Throttled {
                            stop = Some(RecordFailure {
                                class: f.class,
                                code: "NOT_SENT".into(),
                                message: format!("not sent: an earlier Bulk job of this batch failed with {}", f.code),
                            });
                        }
                        summary.error_message = Some(f.message.clone());
                        vec![RecordOutcome::Failed(f); part.records.len()]
                    }
                },
            };
            for (&i, o) in part.records.iter().zip(part_outcomes) {
                outcomes[i] = Some(o);
            }
            report.jobs.push(summary);
        }
        let never = RecordFailure {
            class: ErrorClass::Retryable,
            code: "BULK_UNPROCESSED".into(),
            message: "the record was not part of any Bulk job".into(),
        };
        report.outcomes =
            outcomes.into_iter().map(|o| o.unwrap_or_else(|| RecordOutcome::Failed(never.clone()))).collect();
        Ok(report)
    }

    /// One part: `Err` only when its job could not be created (nothing of
    /// it reached Salesforce); later failures are per-record outcomes.
    async fn bulk_part(
        &self,
        session: &Session,
        plan: Arc<BulkPlan>,
        records: Arc<Vec<SfRecord>>,
        part: &BulkPart,
        summary: &mut BulkJobSummary,
        report: &mut BulkReport,
    ) -> Result<Vec<RecordOutcome>, SalesforceError> {
        let job = self.bulk_create_job(session, &plan).await?;
        summary.id = job.id.clone();
        summary.state = Some(job.state);
        let all_failed = |e: &SalesforceError| vec![RecordOutcome::Failed(e.to_record_failure()); part.records.len()];
        let mut matcher = plan.matcher(part, &records);

        if let Err(e) = self.bulk_upload(session, &job.id, plan.clone(), records.clone(), part).await {
            self.abort_quietly(session, &job.id).await;
            summary.error_message = Some(e.to_string());
            return Ok(all_failed(&e));
        }
        if let Err(e) = self.bulk_close_job(session, &job.id).await {
            self.abort_quietly(session, &job.id).await;
            summary.error_message = Some(e.to_string());
            return Ok(all_failed(&e));
        }
        let info = match self.bulk_wait(session, &job.id).await {
            Ok(info) => info,
            Err(e) => {
                summary.error_message = Some(e.to_string());
                return Ok(all_failed(&e));
            }
        };
        summary.state = Some(info.state);
        summary.processed = info.number_records_processed;
        summary.failed = info.number_records_failed;
        summary.error_message = info.error_message.clone();
        tracing::info!(job = %info.id, state = ?info.state, processed = info.number_records_processed,
            failed = info.number_records_failed, "Bulk job finished");

        let unprocessed = unprocessed_failure(&info);
        let mut missing = unprocessed.clone();
        for kind in ResultKind::ALL {
            if let Err(e) = self.bulk_read_results(session, &job.id, kind, &mut matcher, &unprocessed).await {
                tracing::warn!(job = %info.id, file = kind.resource(), error = %learnlink_core::error::error_chain(&e),
                    "reading Bulk results failed");
                // What this file would have said is unknown: retry those records.
                let f = e.to_record_failure();
                missing = RecordFailure {
                    class: f.class.worst(ErrorClass::Retryable),
                    code: f.code,
                    message: format!("the outcome is unknown: {}", f.message),
                };
            }
        }
        let matched = matcher.finish(&missing);
        report.unexpected_rows += matched.unexpected_rows;
        report.duplicate_rows += matched.duplicate_rows;
        report.missing_rows += matched.missing_rows;
        Ok(matched.outcomes)
    }

    async fn abort_quietly(&self, session: &Session, job_id: &str) {
        if let Err(e) = self.bulk_abort_job(session, job_id).await {
            tracing::warn!(job = %job_id, error = %learnlink_core::error::error_chain(&e), "aborting a Bulk job failed");
        }
    }
}

#[cfg(test)]
mod tests;
