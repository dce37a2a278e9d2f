//! `learnlink backfill start|status|cancel <tenant>` → the admin API's
//! `/admin/tenants/{tenant}/backfills` routes (SPEC §6). `start --wait` and
//! `status --watch` follow a backfill until it ends: redrawn in place every
//! second on a terminal, a line every few seconds otherwise; the exit code
//! says how it ended (0 completed, 7 failed, cancelled or still running at
//! `--timeout`).

use super::Ctx;
use crate::api::{Backfill, BackfillView, Doc, Progress};
use crate::error::{Failure, exit};
use crate::timearg::short;
use comfy_table::Color;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Cells of the progress bar.
pub const BAR_WIDTH: usize = 20;
/// How often `--watch` reads the backfill.
const POLL: Duration = Duration::from_secs(1);
/// How often `--watch` prints a line when it cannot redraw in place.
const LINE_EVERY: Duration = Duration::from_secs(5);
/// Failed reads in a row `--watch` rides out (the API unavailable for a moment).
const MAX_READ_FAILURES: u32 = 5;
/// Backfills looked at to find the newest one that has not ended.
const RECENT: u32 = 20;

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Seconds as `45s`, `2m10s`, `1h05m`, `2d03h`.
pub fn duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..86400 => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
        _ => format!("{}d{:02}h", secs / 86400, (secs % 86400) / 3600),
    }
}

/// `[#########-----------]` for 45 % over `width` cells.
pub fn bar(percent: f64, width: usize) -> String {
    let p = if percent.is_finite() { percent.clamp(0.0, 100.0) } else { 0.0 };
    let filled = ((p / 100.0) * width as f64).round() as usize;
    format!("[{}{}]", "#".repeat(filled.min(width)), "-".repeat(width - filled.min(width)))
}

/// The progress as one line:
/// `[#########-----------] 45.0%  shards 9/20  written 90,000  failed 12  API calls 45  ETA 2m10s`.
pub fn progress_line(p: &Progress) -> String {
    let mut s = format!("{} {:.1}%  shards {}/{}", bar(p.percent, BAR_WIDTH), p.percent, p.shards_done, p.shards_total);
    if p.shards_failed > 0 {
        s.push_str(&format!(" ({} failed)", p.shards_failed));
    }
    s.push_str(&format!(
        "  written {}  failed {}  API calls {}",
        thousands(p.written),
        thousands(p.failed),
        thousands(p.api_calls)
    ));
    if let Some(eta) = p.eta_seconds {
        s.push_str(&format!("  ETA {}", duration(eta)));
    }
    s
}

/// The kill switch in words (`off`, `engaged (restores to false)`, …).
pub fn kill_switch_text(k: &Value) -> String {
    let previous = match k.get("previous") {
        Some(Value::Bool(b)) => b.to_string(),
        _ => "false: there was no org default".to_string(),
    };
    match k.get("state").and_then(Value::as_str).unwrap_or("off") {
        "off" => "off".into(),
        "pending" => "pending (engaged before the first write)".into(),
        "engaged" => format!("engaged: the org's automations are bypassed (restores to {previous})"),
        "restored" => format!("restored (to {previous})"),
        other => other.to_string(),
    }
}

/// The colour of a backfill status.
pub fn status_color(status: &str) -> Option<Color> {
    match status {
        "completed" => Some(Color::Green),
        "planning" | "running" => Some(Color::Cyan),
        "paused" => Some(Color::Blue),
        "cancelled" => Some(Color::Yellow),
        "failed" => Some(Color::Red),
        _ => None,
    }
}

/// The one line `--watch` draws: status and progress.
pub fn watch_line(b: &Backfill, p: &Progress) -> String {
    format!("{:<9}  {}", b.status, progress_line(p))
}

/// A line drawn over the previous one on a terminal (carriage return, the
/// line, then erase what a longer previous line left).
pub fn redraw(line: &str) -> String {
    format!("\r{line}\u{1b}[K")
}

fn window_text(b: &Backfill) -> String {
    format!("{} → {} UTC", short(&b.window.since), short(&b.window.until))
}

fn only_changed(b: &Backfill) -> bool {
    b.options.get("only_changed").and_then(Value::as_bool).unwrap_or(false)
}

fn origin_text(b: &Backfill) -> String {
    match b.origin.get("kind").and_then(Value::as_str) {
        Some("relink") => format!(
            "the gap of a disconnection (gap {})",
            b.origin.get("gap_id").and_then(Value::as_str).unwrap_or("?")
        ),
        Some("onboarding") => "onboarding (all history)".into(),
        Some("admin") | None => "an admin".into(),
        Some(other) => other.to_string(),
    }
}

/// Print one backfill for people.
fn show(ctx: &Ctx, tenant: &str, v: &BackfillView) -> Result<(), Failure> {
    let out = &ctx.out;
    let (b, p) = (&v.backfill, &v.progress);
    let status = out.paint(&b.status, status_color(&b.status));
    if out.quiet {
        return out.line(format!("{status}  {}", progress_line(p)));
    }
    out.line(format!("Backfill {} of {tenant}: {status}", out.bold(&b.id)))?;
    let mut window = window_text(b);
    if only_changed(b) {
        window.push_str(&format!("  (only changed: {} part(s) already covered were skipped)", b.skipped.len()));
    }
    out.line(format!("  window       {window}"))?;
    out.line(format!("  progress     {}", progress_line(p)))?;
    out.line(
        format!(
            "  records      {} expected; read {}, created {}, updated {}, failed {}, handed to enrollment sync {}",
            thousands(p.expected),
            thousands(p.read),
            thousands(p.created),
            thousands(p.updated),
            thousands(p.failed),
            thousands(p.handed_over)
        ) + &if p.stale > 0 { format!(", already newer in Salesforce {}", thousands(p.stale)) } else { String::new() },
    )?;
    out.line(format!("  kill switch  {}", kill_switch_text(&b.kill_switch)))?;
    if let Some(r) = b.reason.as_deref().filter(|r| !r.is_empty()) {
        out.line(format!("  reason       {r}"))?;
    }
    let mut when = format!("  started      {} by {}", short(&b.created_at), origin_text(b));
    match &b.finished_at {
        Some(f) => when.push_str(&format!(", ended {} after {}", short(f), duration(p.elapsed_seconds))),
        None => when.push_str(&format!(", running for {}", duration(p.elapsed_seconds))),
    }
    out.line(when)?;
    if let Some(shards) = &v.shards {
        print_shards(ctx, shards)?;
    }
    Ok(())
}

fn print_shards(ctx: &Ctx, shards: &[Value]) -> Result<(), Failure> {
    let out = &ctx.out;
    let mut t = out.table(["shard", "window", "status", "expected", "written", "failed", "attempts", "error"]);
    let n = |s: &Value, k: &str| s.get(k).and_then(Value::as_u64).unwrap_or(0);
    for s in shards {
        let c = s.get("counts").cloned().unwrap_or(Value::Null);
        let status = s.get("status").and_then(Value::as_str).unwrap_or("");
        let color = match status {
            "done" => Some(Color::Green),
            "failed" => Some(Color::Red),
            "cancelled" => Some(Color::Yellow),
            _ => None,
        };
        let w = &s["window"];
        t.add_row(vec![
            out.cell(n(s, "index"), None),
            out.cell(
                format!("{} → {}", short(w["since"].as_str().unwrap_or("")), short(w["until"].as_str().unwrap_or(""))),
                None,
            ),
            out.cell(status, color),
            out.cell(thousands(n(s, "expected")), None),
            out.cell(thousands(n(&c, "created") + n(&c, "updated")), None),
            out.cell(thousands(n(&c, "failed")), (n(&c, "failed") > 0).then_some(Color::Red)),
            out.cell(n(s, "attempts"), None),
            out.cell(s.get("error").and_then(Value::as_str).unwrap_or(""), None),
        ]);
    }
    out.print_table(&t)
}

/// How a backfill that ended did: Ok when completed, exit 7 otherwise.
fn verdict(tenant: &str, v: &BackfillView) -> Result<(), Failure> {
    let b = &v.backfill;
    let reason = b.reason.clone().unwrap_or_else(|| "no reason given".into());
    match b.status.as_str() {
        "completed" => Ok(()),
        "failed" => Err(Failure::new(
            exit::UNAVAILABLE,
            "backfill_failed",
            format!("backfill {} of {tenant} failed: {reason}", b.id),
        )
        .with_hint(format!(
            "what was written stays; a new backfill of the same window with --only-changed skips nothing already covered: learnlink backfill start {tenant} --since {} --until {}",
            b.window.since, b.window.until
        ))),
        "cancelled" => Err(Failure::new(
            exit::UNAVAILABLE,
            "backfill_cancelled",
            format!("backfill {} of {tenant} was cancelled: {reason}", b.id),
        )),
        other => Err(Failure::unexpected(format!("backfill {} of {tenant} is {other}", b.id))),
    }
}

/// Follow a backfill until it ends (or `--timeout`); prints its progress
/// and returns its last view.
async fn follow(ctx: &Ctx, tenant: &str, first: Doc<BackfillView>) -> Result<Doc<BackfillView>, Failure> {
    let out = &ctx.out;
    let id = first.data.backfill.id.clone();
    let lines = !out.json && !out.quiet;
    let in_place = lines && out.tty;
    let started = Instant::now();
    let timeout = ctx.timeout.map(Duration::from_secs);
    let mut last_line: Option<Instant> = None;
    let mut doc = first;
    let mut failures = 0u32;
    let end_line = |in_place: bool| if in_place { out.raw("\n") } else { Ok(()) };
    loop {
        let (b, p) = (&doc.data.backfill, &doc.data.progress);
        let done = b.is_final();
        if in_place {
            out.raw(&redraw(&watch_line(b, p)))?;
        } else if lines && (done || last_line.is_none_or(|t| t.elapsed() >= LINE_EVERY)) {
            out.line(watch_line(b, p))?;
            last_line = Some(Instant::now());
        }
        if done {
            end_line(in_place)?;
            return Ok(doc);
        }
        if let Some(t) = timeout
            && started.elapsed() >= t
        {
            end_line(in_place)?;
            return Err(Failure::new(
                exit::UNAVAILABLE,
                "still_running",
                format!("backfill {id} of {tenant} is still {} after {} s", b.status, t.as_secs()),
            )
            .with_hint(format!("it goes on; follow it with: learnlink backfill status {tenant} {id} --watch")));
        }
        tokio::time::sleep(POLL).await;
        match ctx.client.get_backfill(tenant, &id, false).await {
            Ok(d) => {
                doc = d;
                failures = 0;
            }
            Err(e) if e.exit_code() == exit::UNAVAILABLE && failures + 1 < MAX_READ_FAILURES => failures += 1,
            Err(e) => {
                end_line(in_place)?;
                return Err(ctx.fail(e));
            }
        }
    }
}

/// After following: the final view (JSON, or a sentence) and the verdict.
fn finish(ctx: &Ctx, tenant: &str, doc: &Doc<BackfillView>) -> Result<(), Failure> {
    let out = &ctx.out;
    let (b, p) = (&doc.data.backfill, &doc.data.progress);
    if out.json {
        out.json_value(&doc.raw)?;
    } else {
        out.say(format!(
            "Backfill {} of {tenant} {} after {}: {} written, {} failed, {} API calls.",
            b.id,
            out.paint(&b.status, status_color(&b.status)),
            duration(p.elapsed_seconds),
            thousands(p.written),
            thousands(p.failed),
            thousands(p.api_calls)
        ))?;
    }
    verdict(tenant, &doc.data)
}

/// `learnlink backfill start`.
pub async fn start(
    ctx: &Ctx,
    tenant: &str,
    since: &str,
    until: Option<&str>,
    only_changed: bool,
    wait: bool,
) -> Result<(), Failure> {
    if let Some(u) = until
        && since >= u
    {
        // Both are RFC 3339 in UTC to the second: text order is time order.
        return Err(Failure::invalid(format!("--since ({since}) must be before --until ({u})")));
    }
    let doc = ctx.client.start_backfill(tenant, since, until, only_changed).await.map_err(|e| ctx.fail(e))?;
    let out = &ctx.out;
    let (b, p) = (&doc.data.backfill, &doc.data.progress);
    if out.json && !wait {
        return out.json_value(&doc.raw);
    }
    if !out.json {
        let mut s = format!(
            "Backfill {} of {tenant} started: {} shard(s), {} record(s) expected, window {}.",
            out.bold(&b.id),
            b.shards.max(p.shards_total),
            thousands(b.expected),
            window_text(b)
        );
        if only_changed {
            s.push_str(&format!(" {} part(s) already covered are skipped.", b.skipped.len()));
        }
        out.say(s)?;
    }
    if !wait {
        out.note(format!("Follow it: learnlink backfill status {tenant} {} --watch", b.id));
        return Ok(());
    }
    let last = follow(ctx, tenant, doc).await?;
    finish(ctx, tenant, &last)
}

/// The newest backfill, or (`unfinished`) the newest that has not ended.
async fn newest(ctx: &Ctx, tenant: &str, unfinished: bool) -> Result<String, Failure> {
    let limit = if unfinished { RECENT } else { 1 };
    let list = ctx.client.list_backfills(tenant, Some(limit)).await.map_err(|e| ctx.fail(e))?;
    let found = list.data.backfills.iter().find(|v| !unfinished || !v.backfill.is_final());
    match found {
        Some(v) => Ok(v.backfill.id.clone()),
        None if unfinished => Err(Failure::new(
            exit::NOT_FOUND,
            "no_running_backfill",
            format!("{tenant} has no backfill that is still going: nothing to cancel"),
        )
        .with_hint(format!("learnlink backfill status {tenant} shows the newest one"))),
        None => Err(Failure::new(exit::NOT_FOUND, "no_backfill", format!("{tenant} has no backfill yet"))
            .with_hint(format!("start one: learnlink backfill start {tenant} --since <DATE>"))),
    }
}

/// `learnlink backfill status`.
pub async fn status(ctx: &Ctx, tenant: &str, id: Option<&str>, watch: bool) -> Result<(), Failure> {
    let id = match id {
        Some(i) => i.to_string(),
        None => newest(ctx, tenant, false).await?,
    };
    let doc = ctx.client.get_backfill(tenant, &id, false).await.map_err(|e| ctx.fail(e))?;
    if !watch {
        return if ctx.out.json { ctx.out.json_value(&doc.raw) } else { show(ctx, tenant, &doc.data) };
    }
    if !ctx.out.json && !ctx.out.quiet {
        let b = &doc.data.backfill;
        ctx.out.line(format!("Backfill {} of {tenant}, window {}:", ctx.out.bold(&b.id), window_text(b)))?;
    }
    let last = follow(ctx, tenant, doc).await?;
    finish(ctx, tenant, &last)
}

/// `learnlink backfill cancel`.
pub async fn cancel(ctx: &Ctx, tenant: &str, id: Option<&str>) -> Result<(), Failure> {
    let id = match id {
        Some(i) => i.to_string(),
        None => newest(ctx, tenant, true).await?,
    };
    let doc = ctx.client.cancel_backfill(tenant, &id).await.map_err(|e| ctx.fail(e))?;
    let out = &ctx.out;
    if out.json {
        return out.json_value(&doc.raw);
    }
    let (b, p) = (&doc.data.backfill, &doc.data.progress);
    out.say(format!(
        "Backfill {} of {tenant} {}: {} written stay, shards not done ({} of {}) are not written.",
        b.id,
        out.paint(&b.status, status_color(&b.status)),
        thousands(p.written),
        p.shards_total.saturating_sub(p.shards_done),
        p.shards_total
    ))?;
    out.say(format!("  {}", progress_line(p)))?;
    if b.kill_switch.get("state").and_then(Value::as_str) == Some("engaged") {
        out.note(format!(
            "The kill switch is still engaged ({}); the scheduler restores it within a minute.",
            kill_switch_text(&b.kill_switch)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn progress(
        percent: f64,
        done: u64,
        total: u64,
        written: u64,
        failed: u64,
        calls: u64,
        eta: Option<u64>,
    ) -> Progress {
        Progress {
            shards_total: total,
            shards_done: done,
            percent,
            written,
            failed,
            api_calls: calls,
            eta_seconds: eta,
            ..Progress::default()
        }
    }

    #[test]
    fn the_progress_line_has_the_bar_the_counts_and_the_eta() {
        let p = progress(45.0, 9, 20, 90_000, 12, 45, Some(130));
        assert_eq!(
            progress_line(&p),
            "[#########-----------] 45.0%  shards 9/20  written 90,000  failed 12  API calls 45  ETA 2m10s"
        );
        let mut p = progress(100.0, 20, 20, 1_234_567, 0, 3_001, None);
        assert_eq!(
            progress_line(&p),
            "[####################] 100.0%  shards 20/20  written 1,234,567  failed 0  API calls 3,001"
        );
        p.shards_failed = 2;
        p.shards_done = 18;
        p.percent = 0.04;
        assert!(progress_line(&p).starts_with("[--------------------] 0.0%  shards 18/20 (2 failed)  written"));
    }

    #[test]
    fn the_watch_line_redraws_in_place() {
        let b = Backfill { id: "bf-1".into(), status: "running".into(), ..Backfill::default() };
        let p = progress(45.0, 9, 20, 90_000, 12, 45, Some(130));
        assert_eq!(
            redraw(&watch_line(&b, &p)),
            "\rrunning    [#########-----------] 45.0%  shards 9/20  written 90,000  failed 12  API calls 45  ETA 2m10s\u{1b}[K"
        );
    }

    #[test]
    fn bars_round_and_clamp() {
        assert_eq!(bar(0.0, 20), "[--------------------]");
        assert_eq!(bar(2.4, 20), "[--------------------]");
        assert_eq!(bar(2.5, 20), "[#-------------------]");
        assert_eq!(bar(99.9, 20), "[####################]");
        assert_eq!(bar(150.0, 10), "[##########]");
        assert_eq!(bar(-3.0, 4), "[----]");
        assert_eq!(bar(f64::NAN, 4), "[----]");
    }

    #[test]
    fn numbers_and_durations_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(90_000), "90,000");
        assert_eq!(thousands(1_234_567_890), "1,234,567,890");
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(45), "45s");
        assert_eq!(duration(130), "2m10s");
        assert_eq!(duration(3_900), "1h05m");
        assert_eq!(duration(2 * 86_400 + 3 * 3_600 + 59), "2d03h");
    }

    #[test]
    fn kill_switch_states_in_words() {
        assert_eq!(kill_switch_text(&json!({"state": "off"})), "off");
        assert_eq!(kill_switch_text(&json!({"state": "pending"})), "pending (engaged before the first write)");
        assert_eq!(
            kill_switch_text(&json!({"state": "engaged", "previous": true})),
            "engaged: the org's automations are bypassed (restores to true)"
        );
        assert_eq!(
            kill_switch_text(&json!({"state": "restored", "previous": null})),
            "restored (to false: there was no org default)"
        );
        assert_eq!(kill_switch_text(&Value::Null), "off");
    }

    #[test]
    fn only_completed_backfills_succeed() {
        let view = |status: &str| BackfillView {
            backfill: Backfill { id: "bf-1".into(), status: status.into(), ..Backfill::default() },
            progress: Progress::default(),
            shards: None,
        };
        assert!(verdict("acme", &view("completed")).is_ok());
        let f = verdict("acme", &view("failed")).unwrap_err();
        assert_eq!((f.exit, f.code.as_str()), (7, "backfill_failed"));
        let f = verdict("acme", &view("cancelled")).unwrap_err();
        assert_eq!((f.exit, f.code.as_str()), (7, "backfill_cancelled"));
    }
}
