//! `lms-emulator` binary: prints `listening on http://HOST:PORT` once ready.

use std::io::Write;

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "lms-emulator", about = "Canonical LMS API emulator for learnlink's tests")]
struct Args {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to bind (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// API key expected as `Authorization: Bearer <key>`.
    #[arg(long, default_value = "lms-local-key")]
    api_key: String,
    /// Seed of the start-up data set.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Learners in the start-up data set.
    #[arg(long, default_value_t = 100)]
    learners: u32,
    /// Departments in the start-up data set.
    #[arg(long, default_value_t = 5)]
    departments: u32,
    /// Courses in the start-up data set.
    #[arg(long, default_value_t = 10)]
    courses: u32,
    /// Enrollments per learner in the start-up data set.
    #[arg(long, default_value_t = 3)]
    enrollments_per_learner: u32,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let dataset = lms_emulator::DatasetParams {
        seed: args.seed,
        learners: args.learners,
        departments: args.departments,
        courses: args.courses,
        enrollments_per_learner: args.enrollments_per_learner,
    };
    if let Err(e) = dataset.validate() {
        eprintln!("invalid data set parameters: {}", e.0);
        std::process::exit(2);
    }
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port)).await?;
    let addr = listener.local_addr()?;
    let config = lms_emulator::Config { api_key: args.api_key, dataset };
    let state = lms_emulator::LmsState::new(config);
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{}:{}", args.host, addr.port())?;
        out.flush()?;
    }
    tracing::info!(%addr, "lms-emulator ready");
    lms_emulator::serve_state(listener, state).await
}
