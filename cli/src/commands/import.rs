//! `learnlink import preview|run|status <tenant>` → the admin API's
//! `/admin/tenants/{tenant}/imports` routes. `run` starts a run (or a dry
//! run) and, unless `--no-wait`, follows it page by page to its counts.

use super::Ctx;
use crate::error::{Failure, exit};
use comfy_table::Color;
use serde_json::Value;
use std::time::{Duration, Instant};

fn count(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn counts_line(c: &Value, dry_run: bool) -> String {
    if dry_run {
        format!(
            "{} seen over {} page(s): would import {}, deactivate {}, skip {}",
            count(c, "seen"),
            count(c, "pages"),
            count(c, "would_import"),
            count(c, "deactivated"),
            count(c, "skipped")
        )
    } else {
        format!(
            "{} seen over {} page(s): {} created, {} updated, {} unchanged, {} deactivated, {} skipped, {} failed",
            count(c, "seen"),
            count(c, "pages"),
            count(c, "created"),
            count(c, "updated"),
            count(c, "unchanged"),
            count(c, "deactivated"),
            count(c, "skipped"),
            count(c, "failed")
        )
    }
}

pub async fn preview(ctx: &Ctx, tenant: &str, limit: u64) -> Result<(), Failure> {
    let doc = ctx.client.preview_import(tenant, limit).await.map_err(|e| ctx.fail(e))?;
    let out = &ctx.out;
    if out.json {
        return out.json_value(&doc.raw);
    }
    let p = &doc.raw["preview"];
    let people = p["people"].as_array().cloned().unwrap_or_default();
    if people.is_empty() {
        return out.say(format!("The import of {tenant} sees nobody new since its checkpoint."));
    }
    let mut t = out.table(["source id", "action", "email", "name", "reason", "raw source payload"]);
    for row in &people {
        let action = row["action"].as_str().unwrap_or("");
        let color = match action {
            "create" => Some(Color::Green),
            "update" => Some(Color::Cyan),
            "deactivate" => Some(Color::Yellow),
            _ => Some(Color::DarkGrey),
        };
        let l = &row["learner"];
        let name = format!("{} {}", l["first_name"].as_str().unwrap_or(""), l["last_name"].as_str().unwrap_or(""));
        let mut raw = row["raw"].clone();
        if let Some(o) = raw.as_object_mut() {
            o.remove("attributes");
        }
        t.add_row(vec![
            out.cell(row["external_id"].as_str().unwrap_or(""), None),
            out.cell(action, color),
            out.cell(l["email"].as_str().unwrap_or(""), None),
            out.cell(name.trim(), None),
            out.cell(row["reason"].as_str().unwrap_or(""), None),
            out.cell(serde_json::to_string(&raw).unwrap_or_default(), None),
        ]);
    }
    out.print_table(&t)?;
    let by = |a: &str| people.iter().filter(|r| r["action"] == a).count();
    out.note(format!(
        "{} people: {} create, {} update, {} deactivate, {} skip{}. Nothing was written.",
        people.len(),
        by("create"),
        by("update"),
        by("deactivate"),
        by("skip"),
        if p["more"].as_bool() == Some(true) { " (more follow in the source)" } else { "" }
    ));
    Ok(())
}

pub async fn run(ctx: &Ctx, tenant: &str, dry_run: bool, wait: bool, timeout_s: u64) -> Result<(), Failure> {
    let doc = ctx.client.start_import(tenant, dry_run).await.map_err(|e| ctx.fail(e))?;
    let run_id = doc.raw["run_id"].as_str().unwrap_or_default().to_string();
    let out = &ctx.out;
    if !wait {
        return if out.json {
            out.json_value(&doc.raw)
        } else {
            out.say(format!("Import {run_id} of {tenant} started. Follow it: learnlink import status {tenant}"))
        };
    }
    let lane = if dry_run { "dry_run" } else { "live" };
    let started = Instant::now();
    let bar = (!out.json).then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.enable_steady_tick(Duration::from_millis(120));
        b
    });
    let mut delay = Duration::from_millis(200);
    loop {
        let state = ctx.client.import_state(tenant).await.map_err(|e| ctx.fail(e))?;
        let run = &state.raw[lane]["run"];
        if run["run_id"].as_str() == Some(run_id.as_str()) {
            if let Some(b) = &bar {
                b.set_message(format!(
                    "{run_id}: page {} — {}",
                    count(run, "page"),
                    counts_line(&run["counts"], dry_run)
                ));
            }
            match run["status"].as_str() {
                Some("done") | Some("interrupted") => {
                    if let Some(b) = &bar {
                        b.finish_and_clear();
                    }
                    if out.json {
                        out.json_value(&state.raw[lane])?;
                    } else {
                        out.say(format!(
                            "Import {run_id} of {tenant}{}: {}.",
                            if dry_run { " (dry run, nothing written)" } else { "" },
                            counts_line(&run["counts"], dry_run)
                        ))?;
                    }
                    if run["status"] == "interrupted" {
                        return Err(Failure::new(
                            exit::UNAVAILABLE,
                            "import_interrupted",
                            format!("the run stopped early: {}", run["message"].as_str().unwrap_or("no reason given")),
                        )
                        .with_hint("the checkpoint is kept: the next run resumes from it, nothing is skipped"));
                    }
                    return Ok(());
                }
                _ => {}
            }
        }
        if started.elapsed() > Duration::from_secs(timeout_s) {
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            return Err(Failure::new(
                exit::UNAVAILABLE,
                "still_running",
                format!("import {run_id} of {tenant} is still running after {timeout_s} s"),
            )
            .with_hint(format!("it goes on; follow it with: learnlink import status {tenant}")));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

pub async fn status(ctx: &Ctx, tenant: &str) -> Result<(), Failure> {
    let doc = ctx.client.import_state(tenant).await.map_err(|e| ctx.fail(e))?;
    let out = &ctx.out;
    if out.json {
        return out.json_value(&doc.raw);
    }
    let s = &doc.raw;
    out.say(format!(
        "Import of {tenant}: source {}, schedule {}",
        s["source"].as_str().unwrap_or("none"),
        s["schedule"].as_str().unwrap_or("")
    ))?;
    let cp = &s["live"]["checkpoint"];
    if cp.is_object() {
        out.say(format!("Checkpoint: {} {}", cp["at"].as_str().unwrap_or(""), cp["id"].as_str().unwrap_or("")))?;
    } else {
        out.say("Checkpoint: none (the first run reads everything)")?;
    }
    let mut t = out.table(["lane", "run", "status", "started", "finished", "counts", "message"]);
    for lane in ["live", "dry_run"] {
        let run = &s[lane]["run"];
        if !run.is_object() {
            continue;
        }
        let status = run["status"].as_str().unwrap_or("");
        let color = match status {
            "done" => Some(Color::Green),
            "running" => Some(Color::Cyan),
            _ => Some(Color::Yellow),
        };
        t.add_row(vec![
            out.cell(lane, None),
            out.cell(run["run_id"].as_str().unwrap_or(""), None),
            out.cell(status, color),
            out.cell(run["started_at"].as_str().unwrap_or(""), None),
            out.cell(run["finished_at"].as_str().unwrap_or(""), None),
            out.cell(counts_line(&run["counts"], lane == "dry_run"), None),
            out.cell(run["message"].as_str().unwrap_or(""), None),
        ]);
    }
    out.print_table(&t)
}
