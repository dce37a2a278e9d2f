//! `make chaos`: the chaos run of issue 9 on a private local stack —
//! `learnlink-chaos [N]` sends N LMS events (default 100,000) while the
//! emulators inject faults, then prints `CHAOS <name> <n>` lines (events,
//! lost, duplicated, regressed first) and exits 1 unless 0 were lost,
//! duplicated and regressed (2 when the run itself failed). See
//! `learnlink_e2e::chaos`.

use learnlink_e2e::chaos::{ChaosOptions, run};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    learnlink_adapters::install_crypto_provider();
    let n: usize = match std::env::args().nth(1).map(|a| a.replace('_', "").parse()) {
        None => 100_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: learnlink-chaos [N events, default 100000]");
            return ExitCode::from(2);
        }
    };
    match run(n, ChaosOptions::for_events(n)).await {
        Ok(report) => {
            for line in report.lines() {
                println!("{line}");
            }
            for e in &report.examples {
                eprintln!("chaos: {e}");
            }
            if report.ok() { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        Err(e) => {
            eprintln!("chaos run failed: {e:#}");
            ExitCode::from(2)
        }
    }
}
