//! `core-bench <records> [batch]`: the pure core's path for `<records>`
//! enrollment records, for callgrind (`learnlink_e2e::core_bench`, `make
//! bench`): signed canonical deliveries of 10 events each →
//! `webhook::verify` + `webhook::parse` → per worker batch (`[batch]`
//! records, default 1,000 = the sync queue's BatchSize): `sync::collapse` →
//! matching (`ContactIndex`, `AccountIndex`, `decide` per learner) → Contact
//! writes (`sync::contact_record`) ahead of the records (`sync::event_record`)
//! → `sync::plan_records` → every `CompositeCall::request_bytes()`.
//!
//! Everything the LMS and Salesforce supply (signed bodies, learners,
//! departments, the Contact and Account query rows) is built before
//! [`measured_core_path`], the one function callgrind counts
//! (`--toggle-collect`). Every batch has the same shape whatever
//! `<records>` is (100 learners, 10 enrollments each; a third of the
//! learners linked in place, a third linked but in another Account (a
//! move), a third matched by email (a link)), so the cost of a record does
//! not depend on how many there are. Prints one line:
//! `records <n> events <n> contact_writes <n> calls <n> bytes <n>`.

use learnlink_core::config::{
    AccountPlacement, DepartmentScope, DomainFilter, FilterMode, PlacementRule, SyncSettings,
};
use learnlink_core::matching::{self, AccountIndex, ContactIndex, ContactRow, Decision, DepartmentTree, Known};
use learnlink_core::model::{Department, Enrollment, EnrollmentStatus, Learner};
use learnlink_core::sync::{self, PlannedRecord};
use learnlink_core::webhook::{self, Dialect, LmsEvent};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::process::ExitCode;
use time::OffsetDateTime;

const EVENTS_PER_DELIVERY: usize = 10;
const ENROLLMENTS_PER_LEARNER: usize = 10;
const DEPARTMENTS: [&str; 4] = ["Sales", "Support", "Engineering", "Finance"];
const SECRET: &str = "whsec-core-bench-0123456789";

/// What the LMS and Salesforce supply; none of it is counted.
struct Input {
    now: OffsetDateTime,
    secrets: Vec<String>,
    settings: SyncSettings,
    departments: Vec<Department>,
    /// Account query rows (Id, Name): one Account per department.
    accounts: Vec<(String, String)>,
    learners: HashMap<String, Learner>,
    /// Per worker batch: its signed deliveries.
    batches: Vec<Vec<Delivery>>,
}

/// A signed delivery as the LMS posts it: headers and raw body.
type Delivery = (Vec<(String, String)>, Vec<u8>);

/// Per worker batch: the Contact query's rows for its learners (one per
/// learner); the index takes them over.
type ContactRows = Vec<Vec<ContactRow>>;

fn learner_id(k: usize) -> String {
    format!("L{k:07}")
}

fn account_id(d: usize) -> String {
    format!("001BENCH{d:010}")
}

fn build(records: usize, batch: usize) -> anyhow::Result<(Input, ContactRows)> {
    let now = OffsetDateTime::now_utc();
    let t0 = now - time::Duration::days(3);
    let mut departments = vec![Department { id: "D0".into(), name: "Company".into(), parent_id: None }];
    for (d, name) in DEPARTMENTS.iter().enumerate() {
        departments.push(Department { id: format!("D{}", d + 1), name: (*name).into(), parent_id: Some("D0".into()) });
    }
    let accounts: Vec<(String, String)> =
        DEPARTMENTS.iter().enumerate().map(|(d, name)| (account_id(d), (*name).to_string())).collect();
    let settings = SyncSettings {
        domain_filter: Some(DomainFilter { mode: FilterMode::Allow, domains: vec!["example.com".into()] }),
        department_scope: Some(DepartmentScope { department_id: "D0".into(), include_sub_departments: true }),
        matching_field: None,
        create_contacts: true,
        move_contacts: true,
        account_placement: Some(AccountPlacement {
            rule: PlacementRule::DepartmentName,
            default_account_id: Some(account_id(99)),
            learner_field: None,
        }),
        ..SyncSettings::default()
    };
    let learners_per_batch = batch.div_ceil(ENROLLMENTS_PER_LEARNER);
    let mut learners = HashMap::new();
    let mut batches = Vec::new();
    let mut contact_rows = Vec::new();
    for (b, first) in (0..records).step_by(batch).enumerate() {
        let len = batch.min(records - first);
        let mut rows = Vec::new();
        for j in 0..learners_per_batch.min(len) {
            let k = b * learners_per_batch + j;
            let dept = k % DEPARTMENTS.len();
            let l = Learner {
                id: learner_id(k),
                email: format!("learner.{k}@example.com"),
                first_name: format!("First{k}"),
                last_name: format!("Last{k}"),
                department_id: Some(format!("D{}", dept + 1)),
                fields: Default::default(),
                active: true,
                updated_at: t0,
            };
            // A third linked in place, a third linked in another Account, a third found by email.
            let (linked, account) = match k % 3 {
                0 => (true, account_id(dept)),
                1 => (true, account_id((dept + 1) % DEPARTMENTS.len())),
                _ => (false, account_id(dept)),
            };
            rows.push(ContactRow {
                id: format!("003BENCH{k:010}"),
                account_id: Some(account),
                learner_id: linked.then(|| l.id.clone()),
                match_value: Some(l.email.clone()),
            });
            learners.insert(l.id.clone(), l);
        }
        let mut events = Vec::new();
        for p in 0..len {
            let i = first + p;
            let k = b * learners_per_batch + p % learners_per_batch;
            let updated = t0 + time::Duration::seconds(i as i64);
            let completed = i % 4 == 0;
            let e = Enrollment {
                id: format!("E{i:08}"),
                learner_id: learner_id(k),
                course_id: format!("C{:03}", i % 37),
                course_title: Some(format!("Course {}", i % 37)),
                status: if completed { EnrollmentStatus::Completed } else { EnrollmentStatus::InProgress },
                progress_pct: Some(if completed { 100.0 } else { (i % 100) as f64 }),
                score: completed.then_some(72.5 + (i % 25) as f64),
                enrolled_at: Some(t0 - time::Duration::days(30)),
                completed_at: completed.then_some(updated),
                updated_at: updated,
            };
            let kind = if completed { "enrollment.completed" } else { "enrollment.updated" };
            let occurred = updated.format(&time::format_description::well_known::Rfc3339)?;
            events.push(json!({
                "id": format!("evt_{}_{}", e.id, updated.unix_timestamp()),
                "type": kind,
                "occurred_at": occurred,
                "data": serde_json::to_value(&e)?,
            }));
        }
        let deliveries = events
            .chunks(EVENTS_PER_DELIVERY)
            .map(|chunk| {
                let body = serde_json::to_vec(&json!({"events": chunk}))?;
                let sig = webhook::canonical::sign(SECRET, now.unix_timestamp(), &body);
                let headers = vec![
                    ("content-type".to_string(), "application/json".to_string()),
                    (webhook::canonical::SIGNATURE_HEADER.to_string(), sig),
                ];
                anyhow::Ok((headers, body))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        batches.push(deliveries);
        contact_rows.push(rows);
    }
    let input = Input { now, secrets: vec![SECRET.to_string()], settings, departments, accounts, learners, batches };
    Ok((input, contact_rows))
}

#[derive(Default)]
struct Totals {
    records: usize,
    events: usize,
    contact_writes: usize,
    calls: usize,
    bytes: usize,
}

fn learner_of(ev: &LmsEvent) -> &str {
    match &ev.payload {
        webhook::EventPayload::Enrollment(e) => &e.learner_id,
        webhook::EventPayload::Certification(c) => &c.learner_id,
    }
}

/// The counted part: everything learnlink's core does for the records.
#[inline(never)]
fn measured_core_path(input: &Input, contact_rows: ContactRows) -> anyhow::Result<Totals> {
    let mut totals = Totals::default();
    // sync-worker caches the tree (5 minutes): built once.
    let tree = DepartmentTree::new(input.departments.iter().cloned());
    for (deliveries, rows) in input.batches.iter().zip(contact_rows) {
        let events = measured_ingest(input, deliveries)?;
        totals.events += events.len();
        measured_worker(input, &tree, &events, rows, &mut totals)?;
    }
    Ok(totals)
}

/// webhook-ingest: each delivery verified on its raw body, then parsed
/// (counted apart: `core_ingest_instructions_per_record`).
#[inline(never)]
fn measured_ingest(input: &Input, deliveries: &[Delivery]) -> anyhow::Result<Vec<LmsEvent>> {
    let mut events: Vec<LmsEvent> = Vec::new();
    for (headers, body) in deliveries {
        webhook::verify(Dialect::Canonical, headers, None, body, &input.secrets, input.now)
            .map_err(|r| anyhow::anyhow!("{r}"))?;
        events.extend(webhook::parse(Dialect::Canonical, body).map_err(|r| anyhow::anyhow!("{r}"))?);
    }
    Ok(events)
}

/// sync-worker's pure part — mapping, matching, planning, the Composite
/// request bytes (`core_instructions_per_record`, SPEC issue 6).
#[inline(never)]
fn measured_worker(
    input: &Input,
    tree: &DepartmentTree,
    events: &[LmsEvent],
    rows: Vec<ContactRow>,
    totals: &mut Totals,
) -> anyhow::Result<()> {
    let Input { settings, accounts, learners, .. } = input;
    // The newest event per record, the batch's learners.
    let collapsed = sync::collapse(events.iter().enumerate());
    let mut seen = HashSet::new();
    let batch_learners: Vec<&Learner> = collapsed
        .iter()
        .map(|(ev, _)| learner_of(ev))
        .filter(|id| seen.insert(*id))
        .filter_map(|id| learners.get(id))
        .collect();
    // Matching against the batch's query rows.
    let contacts = ContactIndex::new(rows);
    let account_index = AccountIndex::new(accounts.iter().map(|(i, n)| (i.as_str(), n.as_str())));
    let known = Known { settings, tree, contacts: &contacts, accounts: &account_index };
    let decisions: HashMap<&str, Decision> =
        batch_learners.iter().map(|l| (l.id.as_str(), matching::decide(l, None, &known))).collect();
    // Plan: Contact writes first (learner order), then the records.
    let mut ids: Vec<&str> = decisions.keys().copied().collect();
    ids.sort_unstable();
    let mut planned: Vec<PlannedRecord> = Vec::new();
    for id in ids {
        if let (Some(Decision::Sync { contact_write: Some(w), .. }), Some(l)) = (decisions.get(id), learners.get(id)) {
            planned.push(PlannedRecord { record: sync::contact_record(w, l), items: Vec::new() });
        }
    }
    totals.contact_writes += planned.len();
    for (ev, items) in &collapsed {
        if let Some(Decision::Sync { .. }) = decisions.get(learner_of(ev)) {
            planned.push(PlannedRecord { record: sync::event_record(ev), items: items.clone() });
            totals.records += 1;
        }
    }
    let calls = sync::plan_records(planned);
    totals.calls += calls.len();
    for call in &calls {
        totals.bytes += black_box(call.request_bytes()).len();
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let parse = |a: Option<String>, default: usize| a.map_or(Ok(default), |s| s.parse::<usize>());
    let (records, batch) = match (parse(args.next(), 0), parse(args.next(), 1_000)) {
        (Ok(r), Ok(b)) if r > 0 && b >= EVENTS_PER_DELIVERY && b % EVENTS_PER_DELIVERY == 0 => (r, b),
        _ => {
            eprintln!("usage: core-bench <records> [batch: a multiple of {EVENTS_PER_DELIVERY}, default 1000]");
            return ExitCode::from(2);
        }
    };
    let result = build(records, batch).and_then(|(input, rows)| measured_core_path(black_box(&input), black_box(rows)));
    match result {
        Ok(t) if t.records == records && t.events == records => {
            println!(
                "records {} events {} contact_writes {} calls {} bytes {}",
                t.records, t.events, t.contact_writes, t.calls, t.bytes
            );
            ExitCode::SUCCESS
        }
        Ok(t) => {
            eprintln!("core-bench: {} of {records} records planned ({} events)", t.records, t.events);
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("core-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
