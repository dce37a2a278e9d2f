//! `learnlink logs` → `GET /admin/tenants/{tenant}/activity` (following
//! `next_cursor` with `--all`); `learnlink runs` → `GET …/runs`.

use super::{Ctx, write_file};
use crate::api::{ActivityEntry, ActivityQuery};
use crate::cli::LogsArgs;
use crate::error::Failure;
use crate::output::outcome_color;
use crate::timearg::{elapsed, short_time};
use comfy_table::Color;
use learnlink_core::activity::{Direction, to_csv};
use serde_json::json;
use std::path::Path;

/// The most pages `--all` follows (a guard against an API that never ends).
pub const MAX_PAGES: usize = 10_000;

fn pretty(v: &serde_json::Value) -> Result<String, Failure> {
    let mut text =
        serde_json::to_string_pretty(v).map_err(|e| Failure::unexpected(format!("cannot print JSON: {e}")))?;
    text.push('\n');
    Ok(text)
}

fn direction(d: Direction) -> &'static str {
    match d {
        Direction::LmsToSalesforce => "LMS → SF",
        Direction::SalesforceToLms => "SF → LMS",
    }
}

fn emit(ctx: &Ctx, output: Option<&Path>, bytes: &[u8], what: &str) -> Result<(), Failure> {
    match output {
        Some(p) => {
            write_file(p, bytes)?;
            ctx.out.note(format!("Wrote {what} to {}.", p.display()));
            Ok(())
        }
        None => ctx.out.raw(&String::from_utf8_lossy(bytes)),
    }
}

pub async fn logs(ctx: &Ctx, a: LogsArgs) -> Result<(), Failure> {
    if let (Some(s), Some(u)) = (&a.since, &a.until)
        && s > u
    {
        // Both are RFC 3339 in UTC to the second: text order is time order.
        return Err(Failure::invalid(format!("--since ({s}) is after --until ({u})")));
    }
    let mut q = ActivityQuery {
        outcome: a.outcome.map(|o| o.as_str().to_string()),
        learner: a.learner.clone(),
        since: a.since.clone(),
        until: a.until.clone(),
        limit: a.limit,
        cursor: a.cursor.clone(),
    };
    let out = &ctx.out;
    let tenant = a.tenant.as_str();

    if a.csv && !a.all {
        let text = ctx.client.activity_csv(tenant, &q).await.map_err(|e| ctx.fail(e))?;
        return emit(ctx, a.output.as_deref(), text.as_bytes(), "the activity page");
    }

    let first = ctx.client.list_activity(tenant, &q).await.map_err(|e| ctx.fail(e))?;
    if !a.all {
        if out.json || a.output.is_some() {
            return emit(ctx, a.output.as_deref(), pretty(&first.raw)?.as_bytes(), "the activity page");
        }
        print_entries(ctx, &first.data.entries)?;
        if let Some(c) = &first.data.next_cursor {
            out.note(format!("More entries: add --all, or --cursor {c}"));
        }
        return Ok(());
    }

    // --all: follow the cursor, with a progress spinner on stderr.
    let mut entries = first.data.entries;
    let mut next = first.data.next_cursor;
    let pb = out.spinner("reading the activity log");
    let mut pages = 1usize;
    while let Some(cursor) = next.take() {
        if pages >= MAX_PAGES {
            pb.finish_and_clear();
            return Err(Failure::unexpected(format!(
                "the activity log has more than {MAX_PAGES} pages: narrow it with --since / --until"
            )));
        }
        if q.cursor.as_deref() == Some(cursor.as_str()) {
            pb.finish_and_clear();
            return Err(Failure::unexpected("the API gave the same cursor twice: stopping"));
        }
        pb.set_message(format!("reading the activity log: {} entries, page {}", entries.len(), pages + 1));
        q.cursor = Some(cursor);
        let page = match ctx.client.list_activity(tenant, &q).await {
            Ok(p) => p,
            Err(e) => {
                pb.finish_and_clear();
                return Err(ctx.fail(e));
            }
        };
        pages += 1;
        entries.extend(page.data.entries);
        next = page.data.next_cursor;
    }
    pb.finish_and_clear();

    if a.csv {
        // The core's writer: the same header and quoting as the API's own CSV.
        let text = to_csv(&entries);
        return emit(ctx, a.output.as_deref(), text.as_bytes(), &format!("{} entries", entries.len()));
    }
    if out.json || a.output.is_some() {
        let doc = json!({"tenant": tenant, "entries": entries, "next_cursor": null});
        return emit(ctx, a.output.as_deref(), pretty(&doc)?.as_bytes(), &format!("{} entries", entries.len()));
    }
    print_entries(ctx, &entries)?;
    out.note(format!("{} entries in {pages} page(s).", entries.len()));
    Ok(())
}

fn print_entries(ctx: &Ctx, entries: &[ActivityEntry]) -> Result<(), Failure> {
    let out = &ctx.out;
    if entries.is_empty() {
        return out.say("No activity matches.");
    }
    let mut t = out.table(["at", "outcome", "direction", "object", "lms id", "learner", "salesforce id", "reason"]);
    for e in entries {
        let reason = match (&e.reason, &e.message) {
            (Some(r), Some(m)) => format!("{r}: {m}"),
            (Some(r), None) => r.clone(),
            (None, Some(m)) => m.clone(),
            (None, None) => String::new(),
        };
        t.add_row(vec![
            out.cell(short_time(e.at), None),
            out.cell(e.outcome.as_str(), outcome_color(e.outcome.as_str())),
            out.cell(direction(e.direction), None),
            out.cell(&e.object, None),
            out.cell(&e.lms_id, None),
            out.cell(e.learner_id.as_deref().unwrap_or(""), None),
            out.cell(e.salesforce_id.as_deref().unwrap_or(""), None),
            out.cell(reason, None),
        ]);
    }
    out.print_table(&t)
}

pub async fn runs(ctx: &Ctx, tenant: &str, limit: Option<u32>) -> Result<(), Failure> {
    let doc = ctx.client.list_runs(tenant, limit).await.map_err(|e| ctx.fail(e))?;
    let out = &ctx.out;
    if out.json {
        return out.json_value(&doc.raw);
    }
    if doc.data.runs.is_empty() {
        return out.say(format!("No runs recorded for {tenant} (runs are kept 30 days)."));
    }
    let mut t = out.table(["run", "job", "started", "took", "created", "updated", "skipped", "failed"]);
    for r in &doc.data.runs {
        t.add_row(vec![
            out.cell(&r.run_id, None),
            out.cell(&r.job, None),
            out.cell(crate::timearg::short(&r.started_at), None),
            out.cell(elapsed(&r.started_at, &r.finished_at).unwrap_or_default(), None),
            out.cell(r.created, None),
            out.cell(r.updated, None),
            out.cell(r.skipped, None),
            out.cell(r.failed, (r.failed > 0).then_some(Color::Red)),
        ]);
    }
    out.print_table(&t)
}
