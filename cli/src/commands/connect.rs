//! `learnlink connect <tenant>`: the OAuth web-server flow with PKCE. The
//! admin opens `<api>/oauth/<tenant>/start` (which redirects to the tenant's
//! Salesforce login) and signs in as the integration user; the command waits
//! until the callback has stored the tokens. Relinking keeps every setting
//! and replays the work kept while disconnected.

use super::Ctx;
use crate::cli::ConnectArgs;
use crate::error::{Failure, exit};
use crate::output::status_color;
use serde_json::json;
use std::time::{Duration, Instant};

pub async fn run(ctx: &Ctx, a: &ConnectArgs) -> Result<(), Failure> {
    // The tenant must exist (404 → exit 3).
    ctx.client.get_tenant(&a.tenant).await.map_err(|e| ctx.fail(e))?;
    let before = ctx.client.get_status(&a.tenant).await.map_err(|e| ctx.fail(e))?.data.connected_at;
    let url = ctx.client.url(&["oauth", &a.tenant, "start"]);
    let out = &ctx.out;
    if out.json && a.no_wait {
        return out.json_value(&json!({"tenant": a.tenant, "authorize_url": url.as_str()}));
    }
    out.say(format!("Open this URL and sign in to Salesforce as the integration user of {}:\n  {url}", a.tenant))?;
    // Scripts read the URL from stderr too (stdout may be a pipe).
    eprintln!("authorize_url: {url}");
    if !a.no_browser {
        let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
        let _ = std::process::Command::new(opener)
            .arg(url.as_str())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
    if a.no_wait {
        return Ok(());
    }
    let pb = out.spinner("waiting for the Salesforce sign-in");
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let doc = ctx.client.get_status(&a.tenant).await.map_err(|e| ctx.fail(e))?;
        let h = doc.data;
        let connected_now = h.connected_at.is_some() && h.connected_at != before && h.status != "DISCONNECTED";
        if connected_now {
            pb.finish_and_clear();
            if out.json {
                return out.json_value(&doc.raw);
            }
            out.line(format!("{}  {}", out.bold(&a.tenant), out.paint(&h.status, status_color(&h.status))))?;
            out.line(format!("  {}", h.sentence))?;
            for w in h.warnings.iter().filter(|w| w.cause != h.cause.clone().unwrap_or_default()) {
                out.line(format!("  also: {} Remedy: {}", w.sentence, w.remedy))?;
            }
            if let Some(g) = h.gap_backfills.last() {
                out.line(format!("  gap to backfill: {} → {} ({})", g.from, g.to, g.state))?;
            }
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(a.wait_secs) {
            pb.finish_and_clear();
            return Err(Failure::new(
                exit::FAILURE,
                "timed_out",
                format!("no sign-in completed within {} s; run `learnlink connect {}` again", a.wait_secs, a.tenant),
            ));
        }
    }
}
