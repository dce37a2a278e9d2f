//! Bulk API 2.0 ingest (SPEC §6.3) in two halves that may run in different
//! invocations: [`SalesforceClient::bulk_submit`] plans (core) and, per part,
//! creates a job, streams its CSV and closes it (`UploadComplete`);
//! [`SalesforceClient::bulk_outcomes`] polls the jobs with backoff, reads
//! their result files as streams and matches them onto the input records,
//! one [`RecordOutcome`] per record. [`SalesforceClient::bulk_ingest`] runs
//! both. The single steps are public too.

use super::{Reply, SalesforceClient, transport};
use bytes::Bytes;
use learnlink_core::Classify;
use learnlink_core::csv::CsvReader;
use learnlink_core::error::ErrorClass;
use learnlink_core::salesforce::bulk::{
    BulkJobSummary, BulkMatcher, BulkOperation, BulkPart, BulkPlan, BulkReport, BulkSubmission, JobInfo, JobState,
    ResultKind, abort_body, unprocessed_failure, upload_complete_body,
};
use learnlink_core::salesforce::rest::data_path;
use learnlink_core::salesforce::{
    RecordFailure, RecordOutcome, SalesforceError, Session, SfRecord, error_from_response,
};
use secrecy::ExposeSecret;
use std::collections::HashMap;
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

/// After such a failure every later call fails too: stop sending, stop reading.
fn stops_the_batch(e: &SalesforceError) -> bool {
    matches!(e, SalesforceError::SessionExpired) || e.class() == ErrorClass::Throttled
}

/// The outcome of records a failed call may have concerned: unknown, so
/// never permanent.
fn unknown_outcome(e: &SalesforceError) -> RecordFailure {
    let f = e.to_record_failure();
    RecordFailure {
        class: f.class.worst(ErrorClass::Retryable),
        code: f.code,
        message: format!("the outcome is unknown: {}", f.message),
    }
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

/// HTTP calls made by one Bulk operation, and whether any job was read.
#[derive(Debug, Default)]
struct Tally {
    calls: u64,
    /// A job's info was answered (something about the outcomes is known).
    read_any: bool,
}

/// The records an upload streams from: shared as they are (the caller
/// gave them away), or borrowed, each part's records then copied for its
/// upload (the stream outlives the borrow).
enum Rows<'a> {
    Shared(&'a Arc<Vec<SfRecord>>),
    Borrowed(&'a [SfRecord]),
}

impl Rows<'_> {
    fn for_part(&self, part: &BulkPart) -> (Arc<Vec<SfRecord>>, BulkPart) {
        match self {
            Rows::Shared(all) => (Arc::clone(all), part.clone()),
            Rows::Borrowed(all) => {
                let rows: Vec<SfRecord> = part.records.iter().filter_map(|&i| all.get(i)).cloned().collect();
                let indices = (0..rows.len()).collect();
                (Arc::new(rows), BulkPart { records: indices, bytes: part.bytes })
            }
        }
    }
}

/// One part of a plan as the submission left it.
#[derive(Debug, Default)]
struct PartSent {
    /// Empty when no job was created for it.
    job_id: String,
    state: Option<JobState>,
    /// Uploaded and `UploadComplete`: Salesforce processes it.
    closed: bool,
    error: Option<String>,
}

/// What [`SalesforceClient::submit_plan`] did, part by part.
#[derive(Debug)]
struct Submitted {
    parts: Vec<PartSent>,
    /// By input index, sorted.
    not_sent: Vec<(usize, RecordFailure)>,
    calls: u64,
}

impl Submitted {
    fn jobs(&self) -> Vec<String> {
        self.parts.iter().filter(|p| p.closed).map(|p| p.job_id.clone()).collect()
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
        self.poll_job(session, job_id, false, &mut Tally::default()).await
    }

    /// [`Self::bulk_wait`], counting its calls; with `stop_at_open` an
    /// `Open` job (its upload never completed: nothing will process it) is
    /// returned as it is instead of being waited for.
    async fn poll_job(
        &self,
        session: &Session,
        job_id: &str,
        stop_at_open: bool,
        tally: &mut Tally,
    ) -> Result<JobInfo, SalesforceError> {
        let schedule = self.config.poll;
        let mut attempt = 0u32;
        let mut blips = 0u32;
        let mut last_state = None;
        // A job just closed is never done at once: the first look waits the
        // first delay (a call saved per job; a job found done by a resumed
        // worker costs one delay).
        self.config.sleeper.sleep(schedule.initial).await;
        let mut waited = schedule.initial;
        loop {
            tally.calls += 1;
            match self.bulk_job_info(session, job_id).await {
                Ok(info) => {
                    tally.read_any = true;
                    if info.state.is_terminal() || (stop_at_open && info.state == JobState::Open) {
                        return Ok(info);
                    }
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
            attempt += 1;
            let delay = schedule.delay(attempt).max(Duration::from_millis(1));
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

    /// Write `records` (one sObject, one key field) through Bulk API 2.0:
    /// [`Self::bulk_submit`] then [`Self::bulk_outcomes`] in one go.
    ///
    /// Every input record gets exactly one outcome, in input order:
    /// records the plan refuses (duplicate key, a list value, a row over
    /// the upload limit) fail permanently without being sent; the others
    /// get what the result files say, matched by key whatever their order;
    /// a record no file mentions counts as unprocessed (retryable). Inputs
    /// over `max_upload_bytes` run as several jobs (one summary per part in
    /// `jobs`). When the first job cannot even be created (session
    /// expired, API limit, org down) the call fails as a whole, like a
    /// Composite call; later failures become per-record outcomes, and
    /// after a throttled or expired-session failure the remaining parts
    /// are not sent. `calls` counts both halves.
    pub async fn bulk_ingest(
        &self,
        session: &Session,
        operation: BulkOperation,
        records: Vec<SfRecord>,
    ) -> Result<BulkReport, SalesforceError> {
        let plan = Arc::new(BulkPlan::new(operation, &records, self.config.max_upload_bytes)?);
        let records = Arc::new(records);
        let sent = self.submit_plan(session, &plan, Rows::Shared(&records)).await?;
        let jobs = sent.jobs();
        let mut tally = Tally::default();
        let mut report =
            match self.collect_outcomes(session, operation, &jobs, &records, &sent.not_sent, &mut tally).await {
                Ok(report) => report,
                Err(e) => {
                    // Sent, but nothing could be read: every sent record's outcome is that failure.
                    let f = e.to_record_failure();
                    let mut outcomes = vec![RecordOutcome::Failed(f); records.len()];
                    for (i, nf) in &sent.not_sent {
                        outcomes[*i] = RecordOutcome::Failed(nf.clone());
                    }
                    let jobs = jobs
                        .iter()
                        .map(|id| BulkJobSummary {
                            id: id.clone(),
                            error_message: Some(e.to_string()),
                            ..Default::default()
                        })
                        .collect();
                    BulkReport { outcomes, jobs, ..Default::default() }
                }
            };
        // One summary per part, in plan order, whether it was sent or not.
        let mut read: HashMap<String, BulkJobSummary> = report.jobs.drain(..).map(|s| (s.id.clone(), s)).collect();
        report.jobs = plan
            .parts
            .iter()
            .zip(sent.parts)
            .map(|(part, p)| {
                let mut s = read.remove(&p.job_id).filter(|_| p.closed).unwrap_or(BulkJobSummary {
                    id: p.job_id,
                    state: p.state,
                    error_message: p.error,
                    ..Default::default()
                });
                if s.state.is_none() {
                    s.state = p.state;
                }
                s.records = part.records.len();
                s.bytes = part.bytes;
                s
            })
            .collect();
        report.calls = sent.calls + tally.calls;
        Ok(report)
    }

    /// Bulk API 2.0 upsert, first half ([`SalesforceApi::bulk_submit`]):
    /// plan `records`, then per part create a job, stream its CSV and close
    /// it. Returns the closed jobs (plan order), the records not sent — the
    /// plan's rejections (permanent), the records of a part whose upload or
    /// close failed (its job aborted quietly; the failure of that call),
    /// and, after a throttled or expired-session failure, the records of
    /// the remaining parts (`NOT_SENT`) — and the HTTP calls made. `Err`
    /// only when nothing was sent: the plan is refused or the first job
    /// cannot be created.
    ///
    /// [`SalesforceApi::bulk_submit`]: learnlink_core::ports::SalesforceApi::bulk_submit
    pub async fn bulk_submit(
        &self,
        session: &Session,
        records: &[SfRecord],
    ) -> Result<BulkSubmission, SalesforceError> {
        let plan = Arc::new(BulkPlan::new(BulkOperation::Upsert, records, self.config.max_upload_bytes)?);
        let sent = self.submit_plan(session, &plan, Rows::Borrowed(records)).await?;
        Ok(BulkSubmission { jobs: sent.jobs(), not_sent: sent.not_sent, calls: sent.calls })
    }

    /// Bulk API 2.0 upsert, second half ([`SalesforceApi::bulk_outcomes`]),
    /// also for jobs an earlier invocation submitted: per job, read its
    /// info; an `Open` job (its upload never completed) is aborted and not
    /// read; any other is waited for (polling with backoff) and its results
    /// read — `successfulResults` always, `failedResults` only when the job
    /// reports failed records, `unprocessedrecords` only when it did not
    /// complete — into ONE matcher over `records` (by external id; rows
    /// naming other keys are counted as unexpected and ignored). A record
    /// no file names is unprocessed: retryable `BULK_UNPROCESSED` — or,
    /// with a single job or jobs that all ended the same particular way,
    /// that ending's failure (`BULK_JOB_FAILED`, permanent when Salesforce
    /// refused the content; `BULK_JOB_ABORTED`); or, when a call failed,
    /// that failure, never permanent (the outcome is unknown). After a
    /// throttled or expired-session failure the remaining jobs are not
    /// read. `Err` only when nothing about the jobs could be read (every
    /// job's info failed, or the session expired / the org throttled before
    /// any job info was read); `calls` counts the HTTP calls made.
    /// `jobs[i].records` is what the job reports processed, `bytes` 0.
    ///
    /// [`SalesforceApi::bulk_outcomes`]: learnlink_core::ports::SalesforceApi::bulk_outcomes
    pub async fn bulk_outcomes(
        &self,
        session: &Session,
        jobs: &[String],
        records: &[SfRecord],
    ) -> Result<BulkReport, SalesforceError> {
        let mut tally = Tally::default();
        let mut report = self.collect_outcomes(session, BulkOperation::Upsert, jobs, records, &[], &mut tally).await?;
        report.calls = tally.calls;
        Ok(report)
    }

    /// Create, upload and close one job per part of the plan.
    async fn submit_plan(
        &self,
        session: &Session,
        plan: &Arc<BulkPlan>,
        rows: Rows<'_>,
    ) -> Result<Submitted, SalesforceError> {
        let mut out =
            Submitted { parts: Vec::with_capacity(plan.parts.len()), not_sent: plan.rejected.clone(), calls: 0 };
        let mut stop: Option<RecordFailure> = None;
        for (n, part) in plan.parts.iter().enumerate() {
            let mut sent = PartSent::default();
            let failure = match &stop {
                Some(f) => Some(f.clone()),
                None => match self.submit_part(session, plan, &rows, part, &mut sent, &mut out.calls).await {
                    Ok(()) => None,
                    Err(e) if n == 0 && sent.job_id.is_empty() => return Err(e),
                    Err(e) => {
                        let f = e.to_record_failure();
                        if stops_the_batch(&e) {
                            stop = Some(RecordFailure {
                                class: f.class,
                                code: "NOT_SENT".into(),
                                message: format!("not sent: an earlier Bulk job of this batch failed with {}", f.code),
                            });
                        }
                        Some(f)
                    }
                },
            };
            if let Some(f) = failure {
                sent.error = Some(f.message.clone());
                out.not_sent.extend(part.records.iter().map(|&i| (i, f.clone())));
            }
            out.parts.push(sent);
        }
        out.not_sent.sort_by_key(|(i, _)| *i);
        Ok(out)
    }

    /// One part: create its job, upload, close. A job whose upload or close
    /// fails is aborted (quietly) and the failure returned.
    async fn submit_part(
        &self,
        session: &Session,
        plan: &Arc<BulkPlan>,
        rows: &Rows<'_>,
        part: &BulkPart,
        sent: &mut PartSent,
        calls: &mut u64,
    ) -> Result<(), SalesforceError> {
        *calls += 1;
        let job = self.bulk_create_job(session, plan).await?;
        sent.job_id = job.id.clone();
        sent.state = Some(job.state);
        let (records, part) = rows.for_part(part);
        *calls += 1;
        let mut done = self.bulk_upload(session, &job.id, Arc::clone(plan), records, &part).await;
        if done.is_ok() {
            *calls += 1;
            done = self.bulk_close_job(session, &job.id).await.map(|info| sent.state = Some(info.state));
        }
        if let Err(e) = done {
            *calls += 1;
            if let Some(info) = self.abort_quietly(session, &job.id).await {
                sent.state = Some(info.state);
            }
            return Err(e);
        }
        sent.closed = true;
        Ok(())
    }

    /// The outcomes of `records` (one sObject, one key) written by `jobs`;
    /// the records of `not_sent` get their failure and are expected in no
    /// result file. See [`Self::bulk_outcomes`].
    async fn collect_outcomes(
        &self,
        session: &Session,
        operation: BulkOperation,
        jobs: &[String],
        records: &[SfRecord],
        not_sent: &[(usize, RecordFailure)],
        tally: &mut Tally,
    ) -> Result<BulkReport, SalesforceError> {
        let mut report = BulkReport::default();
        let Some(first) = records.first() else { return Ok(report) };
        if let Some(r) =
            records.iter().find(|r| r.sobject != first.sobject || r.external_id_field != first.external_id_field)
        {
            return Err(SalesforceError::invalid(format!(
                "Bulk results are matched for one sObject by one key: {}.{} and {}.{} are mixed",
                first.sobject, first.external_id_field, r.sobject, r.external_id_field
            )));
        }
        for id in jobs {
            job_path(id, "")?;
        }
        let mut outcomes: Vec<Option<RecordOutcome>> = vec![None; records.len()];
        for (i, f) in not_sent {
            if let Some(slot) = outcomes.get_mut(*i) {
                *slot = Some(RecordOutcome::Failed(f.clone()));
            }
        }
        let expected: Vec<usize> = (0..records.len()).filter(|&i| outcomes[i].is_none()).collect();
        let mut matcher = BulkMatcher::new(
            operation,
            first.external_id_field,
            expected.iter().map(|&i| records[i].external_id.clone()),
        );

        // What a record no file names ended as: per job read, and the
        // failure that left some outcomes unknown, if any.
        let mut endings: Vec<RecordFailure> = Vec::new();
        let mut found_open: Vec<&str> = Vec::new();
        let mut unknown: Option<RecordFailure> = None;
        let mut first_error: Option<SalesforceError> = None;
        let mut stop: Option<RecordFailure> = None;
        let mut note = |e: SalesforceError, unknown: &mut Option<RecordFailure>, stop: &mut Option<RecordFailure>| {
            let f = unknown_outcome(&e);
            if stop.is_none() && stops_the_batch(&e) {
                *stop = Some(f.clone());
            }
            if unknown.as_ref().is_none_or(|u| u.class.worst(f.class) != u.class) {
                *unknown = Some(f);
            }
            if first_error.is_none() {
                first_error = Some(e);
            }
        };
        for id in jobs {
            let mut summary = BulkJobSummary { id: id.clone(), ..Default::default() };
            if let Some(f) = &stop {
                summary.error_message = Some(format!("not read: {}", f.message));
                report.jobs.push(summary);
                continue;
            }
            let info = match self.poll_job(session, id, true, tally).await {
                Ok(info) => info,
                Err(e) => {
                    if !tally.read_any && stops_the_batch(&e) {
                        return Err(e);
                    }
                    tracing::warn!(job = %id, error = %learnlink_core::error::error_chain(&e), "reading a Bulk job failed");
                    summary.error_message = Some(e.to_string());
                    note(e, &mut unknown, &mut stop);
                    report.jobs.push(summary);
                    continue;
                }
            };
            summary.state = Some(info.state);
            summary.records = usize::try_from(info.number_records_processed).unwrap_or(usize::MAX);
            summary.processed = info.number_records_processed;
            summary.failed = info.number_records_failed;
            summary.error_message = info.error_message.clone();
            if info.state == JobState::Open {
                // Its upload never completed (the worker stopped between
                // upload and close): nothing of it will be processed.
                tally.calls += 1;
                if let Some(aborted) = self.abort_quietly(session, id).await {
                    summary.state = Some(aborted.state);
                }
                tracing::info!(job = %id, "Bulk job found Open: aborted, its records are unprocessed");
                found_open.push(id);
                endings.push(RecordFailure {
                    class: ErrorClass::Retryable,
                    code: "BULK_UNPROCESSED".into(),
                    message: format!("Bulk job {id} was still Open (its upload never completed) and was aborted"),
                });
                report.jobs.push(summary);
                continue;
            }
            tracing::info!(job = %info.id, state = ?info.state, processed = info.number_records_processed,
                failed = info.number_records_failed, "Bulk job finished");
            let unprocessed = unprocessed_failure(&info);
            endings.push(unprocessed.clone());
            for kind in ResultKind::ALL {
                let needed = match kind {
                    ResultKind::Successful => true,
                    ResultKind::Failed => info.number_records_failed > 0,
                    ResultKind::Unprocessed => info.state != JobState::JobComplete,
                };
                if !needed {
                    continue;
                }
                tally.calls += 1;
                if let Err(e) = self.bulk_read_results(session, id, kind, &mut matcher, &unprocessed).await {
                    tracing::warn!(job = %id, file = kind.resource(), error = %learnlink_core::error::error_chain(&e),
                        "reading Bulk results failed");
                    note(e, &mut unknown, &mut stop);
                    if stop.is_some() {
                        break;
                    }
                }
            }
            report.jobs.push(summary);
        }
        if !tally.read_any
            && let Some(e) = first_error
        {
            return Err(e);
        }

        let missing = match unknown {
            Some(f) => f,
            None => common_ending(&endings).unwrap_or_else(|| {
                let mut message = "no Bulk job reported a result for this record".to_string();
                if !found_open.is_empty() {
                    message.push_str(&format!(
                        "; found Open (their upload never completed) and aborted: {}",
                        found_open.join(", ")
                    ));
                }
                RecordFailure { class: ErrorClass::Retryable, code: "BULK_UNPROCESSED".into(), message }
            }),
        };
        let matched = matcher.finish(&missing);
        for (&i, o) in expected.iter().zip(matched.outcomes) {
            outcomes[i] = Some(o);
        }
        report.outcomes =
            outcomes.into_iter().map(|o| o.unwrap_or_else(|| RecordOutcome::Failed(missing.clone()))).collect();
        report.unexpected_rows = matched.unexpected_rows;
        report.duplicate_rows = matched.duplicate_rows;
        report.missing_rows = matched.missing_rows;
        Ok(report)
    }

    async fn abort_quietly(&self, session: &Session, job_id: &str) -> Option<JobInfo> {
        match self.bulk_abort_job(session, job_id).await {
            Ok(info) => Some(info),
            Err(e) => {
                tracing::warn!(job = %job_id, error = %learnlink_core::error::error_chain(&e), "aborting a Bulk job failed");
                None
            }
        }
    }
}

/// When there was one job, or every job ended the same particular way
/// (same class and code: all failed for their content, all aborted), a
/// record none of them named ended that way too.
fn common_ending(endings: &[RecordFailure]) -> Option<RecordFailure> {
    let (first, rest) = endings.split_first()?;
    if rest.is_empty() {
        return Some(first.clone());
    }
    if first.code == "BULK_UNPROCESSED" || !rest.iter().all(|f| f.class == first.class && f.code == first.code) {
        return None;
    }
    Some(RecordFailure {
        class: first.class,
        code: first.code.clone(),
        message: format!("{} (and {} more Bulk jobs ended the same way)", first.message, rest.len()),
    })
}

#[cfg(test)]
mod tests;
