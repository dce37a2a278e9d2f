//! `learnlink export enrollments <tenant> --since <time> [--until <time>]`
//! → `GET /admin/tenants/{tenant}/exports/enrollments`, following
//! `Learnlink-Next-Cursor` answer after answer, the CSV written to a file
//! (whole or not at all: a temporary file beside it, renamed at the end) or
//! to stdout as it comes; the count goes to stderr.

use super::Ctx;
use crate::error::Failure;
use crate::timearg;
use serde_json::json;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// The most answers followed (at 5,000 rows each: 500 million rows).
pub const MAX_PAGES: usize = 100_000;

/// Where the CSV goes.
enum Sink {
    Stdout,
    File { tmp: PathBuf, path: PathBuf, file: std::io::BufWriter<std::fs::File> },
}

impl Sink {
    fn open(path: Option<&Path>) -> Result<Sink, Failure> {
        let Some(path) = path else { return Ok(Sink::Stdout) };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "export.csv".into());
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let file = std::fs::File::create(&tmp)
            .map_err(|e| Failure::unexpected(format!("cannot write {}: {e}", tmp.display())))?;
        Ok(Sink::File { tmp, path: path.to_path_buf(), file: std::io::BufWriter::new(file) })
    }

    fn write(&mut self, ctx: &Ctx, text: &str) -> Result<(), Failure> {
        match self {
            Sink::Stdout => ctx.out.raw(text),
            Sink::File { tmp, file, .. } => file
                .write_all(text.as_bytes())
                .map_err(|e| Failure::unexpected(format!("cannot write {}: {e}", tmp.display()))),
        }
    }

    fn finish(self) -> Result<(), Failure> {
        match self {
            Sink::Stdout => Ok(()),
            Sink::File { tmp, path, file } => {
                let fail = |e: std::io::Error| {
                    let _ = std::fs::remove_file(&tmp);
                    Failure::unexpected(format!("cannot write {}: {e}", path.display()))
                };
                let f = file.into_inner().map_err(|e| fail(e.into_error()))?;
                f.sync_all().map_err(fail)?;
                std::fs::rename(&tmp, &path).map_err(fail)
            }
        }
    }

    fn abandon(self) {
        if let Sink::File { tmp, file, .. } = self {
            drop(file);
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// The data rows of one answer (the header row of the first one not counted).
pub fn rows(csv: &str, first: bool) -> Result<u64, Failure> {
    let records = learnlink_core::csv::parse_all(csv.as_bytes())
        .map_err(|e| Failure::unexpected(format!("the API's CSV cannot be read: {e}")))?;
    let n = records.len() as u64;
    Ok(if first { n.saturating_sub(1) } else { n })
}

/// `learnlink export enrollments`.
pub async fn enrollments(
    ctx: &Ctx,
    tenant: &str,
    since: &str,
    until: Option<&str>,
    output: Option<&Path>,
) -> Result<(), Failure> {
    // Fixed once: every answer reads the same window.
    let until = until.map(str::to_string).unwrap_or_else(|| timearg::format(OffsetDateTime::now_utc()));
    if since >= until.as_str() {
        // Both are RFC 3339 in UTC to the second: text order is time order.
        return Err(Failure::invalid(format!("--since ({since}) must be before --until ({until})")));
    }
    let out = &ctx.out;
    let mut sink = Sink::open(output)?;
    let pb = if output.is_some() { out.spinner("exporting enrollments") } else { indicatif::ProgressBar::hidden() };
    let (mut total, mut pages) = (0u64, 0usize);
    let mut cursor: Option<String> = None;
    let result: Result<(), Failure> = async {
        loop {
            let page = ctx
                .client
                .export_enrollments(tenant, since, &until, cursor.as_deref())
                .await
                .map_err(|e| ctx.fail(e))?;
            total += rows(&page.csv, pages == 0)?;
            pages += 1;
            sink.write(ctx, &page.csv)?;
            pb.set_message(format!("exporting enrollments: {total} rows"));
            match page.next_cursor {
                None => return Ok(()),
                Some(c) if cursor.as_deref() == Some(c.as_str()) => {
                    return Err(Failure::unexpected("the API gave the same cursor twice: stopping"));
                }
                Some(_) if pages >= MAX_PAGES => {
                    return Err(Failure::unexpected(format!(
                        "the export has more than {MAX_PAGES} answers: narrow it with --since / --until"
                    )));
                }
                Some(c) => cursor = Some(c),
            }
        }
    }
    .await;
    pb.finish_and_clear();
    if let Err(mut f) = result {
        sink.abandon();
        if total > 0 && output.is_none() {
            f.message = format!("{} (after {total} rows were written)", f.message);
        }
        return Err(f);
    }
    sink.finish()?;
    let whither = output.map(|p| format!(" to {}", p.display())).unwrap_or_default();
    if out.json && output.is_some() {
        out.json_value(&json!({
            "tenant": tenant,
            "since": since,
            "until": until,
            "rows": total,
            "output": output.map(|p| p.display().to_string()),
        }))?;
    }
    out.note(format!("Exported {total} enrollment(s) of {tenant} updated in [{since}, {until}){whither}."));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_records_not_lines() {
        let first = "enrollment_id,course_title\ne1,\"Safety,\nlevel 2\"\ne2,Fire\n";
        assert_eq!(rows(first, true).unwrap(), 2);
        assert_eq!(rows("e3,x\n", false).unwrap(), 1);
        assert_eq!(rows("enrollment_id,course_title\n", true).unwrap(), 0);
        assert_eq!(rows("", false).unwrap(), 0);
        assert!(rows("a,\"open", false).is_err());
    }
}
