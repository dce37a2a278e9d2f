//! `learnlink review list` → `GET /admin/tenants/{tenant}/review` (every page);
//! `learnlink review resolve` → `POST …/review/{learner}/resolve`.

use super::Ctx;
use super::logs::MAX_PAGES;
use crate::api::ReviewItem;
use crate::error::Failure;
use crate::timearg::short;
use comfy_table::Color;
use serde_json::json;

pub async fn list(ctx: &Ctx, tenant: &str) -> Result<(), Failure> {
    let out = &ctx.out;
    let first = ctx.client.list_review(tenant, None, None).await.map_err(|e| ctx.fail(e))?;
    let mut items: Vec<ReviewItem> = first.data.items;
    let mut next = first.data.next_cursor;
    let mut last: Option<String> = None;
    let mut pages = 1usize;
    while let Some(cursor) = next.take() {
        if pages >= MAX_PAGES {
            return Err(Failure::unexpected(format!("the review queue has more than {MAX_PAGES} pages")));
        }
        if last.as_deref() == Some(cursor.as_str()) {
            return Err(Failure::unexpected("the API gave the same cursor twice: stopping"));
        }
        let page = ctx.client.list_review(tenant, None, Some(&cursor)).await.map_err(|e| ctx.fail(e))?;
        pages += 1;
        items.extend(page.data.items);
        next = page.data.next_cursor;
        last = Some(cursor);
    }
    if out.json {
        return out.json_value(&json!({"tenant": tenant, "items": items, "next_cursor": null}));
    }
    if items.is_empty() {
        return out.say(format!("No learner of {tenant} waits for a Contact choice."));
    }
    let mut t = out.table(["learner", "email", "candidates", "held", "first seen"]);
    for i in &items {
        t.add_row(vec![
            out.cell(&i.learner_id, None),
            out.cell(&i.email, None),
            out.cell(i.candidates.join("\n"), None),
            out.cell(i.held, (i.held > 0).then_some(Color::Yellow)),
            out.cell(short(&i.first_seen), None),
        ]);
    }
    out.print_table(&t)?;
    out.note(format!(
        "{} learner(s) wait. Choose a Contact: learnlink review resolve {tenant} <learner> <contact>",
        items.len()
    ));
    Ok(())
}

pub async fn resolve(ctx: &Ctx, tenant: &str, learner: &str, contact: &str) -> Result<(), Failure> {
    let doc = ctx.client.resolve_review(tenant, learner, contact).await.map_err(|e| {
        let f = ctx.fail(e);
        match f.code.as_str() {
            "unknown_learner" => f.or_hint(format!("`learnlink review list {tenant}` shows who waits")),
            "not_a_candidate" => f.or_hint("choose one of the candidates listed by `learnlink review list`"),
            _ => f,
        }
    })?;
    let out = &ctx.out;
    if out.json {
        return out.json_value(&doc.raw);
    }
    let r = &doc.data;
    out.say(format!(
        "Learner {} of {tenant} will be linked to Contact {} on its next record; {} held record(s) went back to the sync queue.",
        r.learner_id, r.contact_id, r.released
    ))
}
