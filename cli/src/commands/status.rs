//! `learnlink status [<tenant>]` → `GET /admin/tenants/{tenant}/status`
//! (for every tenant of `GET /admin/tenants` without one).

use super::Ctx;
use crate::api::{ApiError, Doc, Health};
use crate::error::Failure;
use crate::output::status_color;
use futures::StreamExt as _;
use serde_json::json;

/// How many status calls are in flight at once for `status` without a tenant.
const CONCURRENCY: usize = 8;

pub async fn run(ctx: &Ctx, tenant: Option<&str>) -> Result<(), Failure> {
    match tenant {
        Some(t) => one(ctx, t).await,
        None => all(ctx).await,
    }
}

async fn one(ctx: &Ctx, tenant: &str) -> Result<(), Failure> {
    let doc = ctx.client.get_status(tenant).await.map_err(|e| ctx.fail(e))?;
    let out = &ctx.out;
    if out.json {
        return out.json_value(&doc.raw);
    }
    let h = &doc.data;
    let status = out.paint(&h.status, status_color(&h.status));
    if out.quiet {
        return out.line(status);
    }
    out.line(format!("{}  {status}", out.bold(tenant)))?;
    if !h.sentence.is_empty() {
        out.line(format!("  {}", h.sentence))?;
    }
    if let Some(r) = h.remedy.as_deref().filter(|r| !r.is_empty()) {
        out.line(format!("  remedy: {r}"))?;
    }
    if let Some(c) = h.cause.as_deref().filter(|c| !c.is_empty()) {
        out.line(format!("  {}", out.dim(&format!("cause: {c}"))))?;
    }
    if h.dlq_depth > 0 {
        out.line(format!("  dead-letter queue: {} message(s)", h.dlq_depth))?;
    }
    for w in h.warnings.iter().skip(1) {
        out.line(format!("  also: {} Remedy: {}", w.sentence, w.remedy))?;
    }
    if h.parked > 0 {
        out.line(format!("  parked work: {} job(s)", h.parked))?;
    }
    for g in &h.gap_backfills {
        out.line(format!("  gap backfill {}: {} → {}", g.state, g.from, g.to))?;
    }
    Ok(())
}

async fn all(ctx: &Ctx) -> Result<(), Failure> {
    let tenants = ctx.client.list_tenants().await.map_err(|e| ctx.fail(e))?;
    let ids: Vec<String> = tenants.data.tenants.iter().map(|t| t.id.clone()).collect();
    let results: Vec<(String, Result<Doc<Health>, ApiError>)> = futures::stream::iter(ids)
        .map(|id| async move {
            let r = ctx.client.get_status(&id).await;
            (id, r)
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let out = &ctx.out;
    let first_error = results.iter().find_map(|(id, r)| r.as_ref().err().map(|e| (id.clone(), e.clone())));
    if out.json {
        let statuses: Vec<_> = results.iter().filter_map(|(_, r)| r.as_ref().ok().map(|d| d.raw.clone())).collect();
        out.json_value(&json!({ "statuses": statuses }))?;
    } else if results.is_empty() {
        out.say("No tenants yet: `learnlink tenant create <id> …` adds one.")?;
    } else {
        let mut t = out.table(["tenant", "status", "dlq", "sentence"]);
        for (id, r) in &results {
            match r {
                Ok(d) => {
                    let h = &d.data;
                    let mut sentence = h.sentence.clone();
                    if let Some(r) = h.remedy.as_deref().filter(|r| !r.is_empty()) {
                        sentence.push_str(&format!(" Remedy: {r}"));
                    }
                    t.add_row(vec![
                        out.cell(id, None),
                        out.cell(&h.status, status_color(&h.status)),
                        out.cell(h.dlq_depth, None),
                        out.cell(sentence, None),
                    ]);
                }
                Err(e) => {
                    t.add_row(vec![
                        out.cell(id, None),
                        out.cell("?", None),
                        out.cell("", None),
                        out.cell(format!("error: {}", e.message), None),
                    ]);
                }
            }
        }
        out.print_table(&t)?;
    }
    match first_error {
        Some((id, e)) => {
            let mut f = ctx.fail(e);
            f.message = format!("the status of {id} could not be read: {}", f.message);
            Err(f)
        }
        None => Ok(()),
    }
}
