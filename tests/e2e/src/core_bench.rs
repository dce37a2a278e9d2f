//! The pure core's cost per record, in instructions (issue 6): callgrind
//! counts `core-bench` (`src/bin/core-bench.rs`) for two record counts, and
//! the difference divided by the difference of records is the figure —
//! process start, building the input and fixed costs cancel out; only the
//! function that runs the core path is counted at all (`--toggle-collect`).

use anyhow::{Context as _, bail};
use std::path::Path;
use std::time::{Duration, Instant};

/// The two record counts measured.
pub const SMALL: usize = 2_000;
pub const LARGE: usize = 12_000;
/// The functions of `core-bench` callgrind counts (and what they call):
/// sync-worker's pure part (mapping, matching, planning) ...
pub const MEASURED_FN: &str = "*measured_worker*";
/// ... and webhook-ingest's (verification and parsing), counted apart.
pub const INGEST_FN: &str = "*measured_ingest*";
/// Longest one callgrind run may take.
const RUN_LIMIT: Duration = Duration::from_secs(600);

/// Instructions (`Ir`) the pure core spends per record: (Ir(LARGE) −
/// Ir(SMALL)) / (LARGE − SMALL), each counted by callgrind on
/// `<bin_dir>/core-bench` (a release build).
pub fn core_instructions_per_record(bin_dir: &Path) -> anyhow::Result<f64> {
    per_record(bin_dir, MEASURED_FN)
}

/// The same for webhook-ingest's verification and parsing of the deliveries.
pub fn ingest_instructions_per_record(bin_dir: &Path) -> anyhow::Result<f64> {
    per_record(bin_dir, INGEST_FN)
}

fn per_record(bin_dir: &Path, function: &str) -> anyhow::Result<f64> {
    let small = callgrind_ir(bin_dir, SMALL, function)?;
    let large = callgrind_ir(bin_dir, LARGE, function)?;
    if large <= small {
        bail!("callgrind counted {large} instructions for {LARGE} records but {small} for {SMALL}");
    }
    Ok((large - small) as f64 / (LARGE - SMALL) as f64)
}

/// Instructions callgrind counts in `core-bench <records>`'s measured part.
pub fn callgrind_ir(bin_dir: &Path, records: usize, function: &str) -> anyhow::Result<u64> {
    let bin = bin_dir.join("core-bench");
    if !bin.exists() {
        bail!("{} is missing: cargo build --release -p learnlink-e2e --bins", bin.display());
    }
    let dir = tempfile::tempdir()?;
    let out_file = dir.path().join("callgrind.out");
    let mut cmd = std::process::Command::new("valgrind");
    cmd.args(["--tool=callgrind", "--collect-atstart=no"])
        .arg(format!("--toggle-collect={function}"))
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg(&bin)
        .arg(records.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    learnlink_local::process::die_with_parent(&mut cmd);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("valgrind is not installed (`make bench` installs it)")
        }
        Err(e) => return Err(e).context("starting valgrind"),
    };
    let out = wait_with_limit(child, RUN_LIMIT).with_context(|| format!("callgrind on core-bench {records}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "callgrind on core-bench {records} failed ({}): {}{}",
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    // core-bench checks that every record went through the whole path.
    if !stdout.starts_with(&format!("records {records} ")) {
        bail!("core-bench {records} said {:?}", stdout.trim());
    }
    let text = std::fs::read_to_string(&out_file).with_context(|| format!("reading {}", out_file.display()))?;
    let ir = callgrind_total_ir(&text).context("the callgrind output has no totals line")?;
    if ir == 0 {
        bail!("callgrind counted nothing in {MEASURED_FN}: are the release binary's symbols stripped?");
    }
    Ok(ir)
}

fn wait_with_limit(mut child: std::process::Child, limit: Duration) -> anyhow::Result<std::process::Output> {
    use std::io::Read;
    // Drain both pipes on threads so a chatty child cannot block.
    let drain = |p: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = p {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            bail!("still running after {limit:?}; killed");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let join = |h: std::thread::JoinHandle<Vec<u8>>| h.join().unwrap_or_default();
    Ok(std::process::Output { status, stdout: join(stdout), stderr: join(stderr) })
}

/// The total `Ir` of a callgrind output file: its `totals:` line (else its
/// `summary:` line), at the position of `Ir` in its `events:` line.
pub fn callgrind_total_ir(text: &str) -> Option<u64> {
    let field = |key: &str| text.lines().find_map(|l| l.strip_prefix(key)).map(str::trim);
    let index = match field("events:") {
        Some(events) => events.split_whitespace().position(|e| e == "Ir")?,
        None => 0,
    };
    let line = field("totals:").or_else(|| field("summary:"))?;
    line.split_whitespace().nth(index)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_ir_is_read_from_the_totals_line() {
        let text = "# callgrind format\nversion: 1\ncreator: callgrind-3.22.0\npid: 4242\n\
                    cmd:  target/release/core-bench 2000\npart: 1\n\ndesc: I1 cache: \n\
                    positions: line\nevents: Ir\nsummary: 41234567\n\nfl=(1) ???\nfn=(1) main\n\
                    0 12\n\ntotals: 41234567\n";
        assert_eq!(callgrind_total_ir(text), Some(41_234_567));
    }

    #[test]
    fn with_several_events_ir_is_picked_by_position() {
        let text = "events: Dr Ir Dw\nsummary: 5 77 9\n";
        assert_eq!(callgrind_total_ir(text), Some(77));
        assert_eq!(callgrind_total_ir("events: Ir\ntotals: 0\n"), Some(0));
    }

    /// The figure itself, on the release build (`cargo build --release -p
    /// learnlink-e2e --bin core-bench`; needs valgrind): `cargo test -p
    /// learnlink-e2e --lib core_bench -- --ignored --nocapture`.
    #[test]
    #[ignore = "needs valgrind and a release build of core-bench"]
    fn the_release_core_costs_a_sane_number_of_instructions_per_record() -> anyhow::Result<()> {
        let dir = match std::env::var_os("LEARNLINK_BIN_DIR") {
            Some(_) => crate::bin_dir(),
            None => crate::root().join("target/release"),
        };
        let per_record = core_instructions_per_record(&dir)?;
        println!("core_instructions_per_record {per_record:.0}");
        assert!((1_000.0..10_000_000.0).contains(&per_record), "{per_record}");
        Ok(())
    }

    #[test]
    fn no_totals_is_none() {
        assert_eq!(callgrind_total_ir("events: Ir\n"), None);
        assert_eq!(callgrind_total_ir("events: Dr\nsummary: 3\n"), None);
        assert_eq!(callgrind_total_ir("totals: many\n"), None);
    }
}
