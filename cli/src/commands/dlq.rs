//! `learnlink dlq list [<tenant>]` → `GET /admin/tenants/{tenant}/dlq` (or
//! `GET /admin/dlq`); `learnlink dlq replay` → `POST …/dlq/replay`.

use super::Ctx;
use crate::error::{Failure, exit};
use crate::timearg::short;
use comfy_table::Color;

pub async fn list(ctx: &Ctx, tenant: Option<&str>) -> Result<(), Failure> {
    let doc = ctx.client.list_dlq(tenant).await.map_err(|e| ctx.fail(e))?;
    let out = &ctx.out;
    if out.json {
        return out.json_value(&doc.raw);
    }
    let msgs = &doc.data.messages;
    if msgs.is_empty() {
        return out.say(match tenant {
            Some(t) => format!("No message of {t} is in the dead-letter queue."),
            None => "The dead-letter queue is empty.".to_string(),
        });
    }
    let mut header = vec!["message id"];
    if tenant.is_none() {
        header.push("tenant");
    }
    header.extend(["received", "sent", "event", "record", "description"]);
    let mut t = out.table(header);
    for m in msgs {
        let mut row = vec![out.cell(&m.message_id, None)];
        if tenant.is_none() {
            row.push(match &m.tenant {
                Some(t) => out.cell(t, None),
                None => out.cell("(unreadable)", Some(Color::Red)),
            });
        }
        row.extend([
            out.cell(m.receive_count, None),
            out.cell(short(&m.sent_at), None),
            out.cell(m.event_id.as_deref().unwrap_or(""), None),
            out.cell(m.record.as_deref().unwrap_or(""), None),
            out.cell(&m.description, None),
        ]);
        t.add_row(row);
    }
    out.print_table(&t)?;
    match tenant {
        Some(t) => out.note(format!(
            "{} message(s). Send them back: learnlink dlq replay {t} (or --id <message id> for some)",
            msgs.len()
        )),
        None => out.note(format!("{} message(s).", msgs.len())),
    }
    Ok(())
}

pub async fn replay(ctx: &Ctx, tenant: &str, ids: &[String]) -> Result<(), Failure> {
    let doc = ctx.client.replay_dlq(tenant, ids).await.map_err(|e| {
        let f = ctx.fail(e);
        if f.code == "unknown_message" {
            f.or_hint(format!("`learnlink dlq list {tenant}` shows its messages"))
        } else {
            f
        }
    })?;
    let out = &ctx.out;
    let r = &doc.data;
    let mut asked: Vec<&String> = ids.iter().collect();
    asked.sort();
    asked.dedup();
    let missing: Vec<&str> = asked.iter().filter(|id| !r.message_ids.contains(id)).map(|id| id.as_str()).collect();
    if out.json {
        out.json_value(&doc.raw)?;
    } else {
        out.say(format!("Replayed {} message(s) of {tenant} to the sync queue.", r.replayed))?;
    }
    if !missing.is_empty() {
        return Err(Failure::new(
            exit::UNAVAILABLE,
            "partly_replayed",
            format!(
                "{} message(s) were not replayed and stay in the dead-letter queue: {}",
                missing.len(),
                missing.join(", ")
            ),
        )
        .with_hint("try again in a moment: a second replay is harmless"));
    }
    Ok(())
}
