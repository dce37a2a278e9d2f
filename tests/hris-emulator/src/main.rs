//! `hris-emulator` binary: prints `listening on http://HOST:PORT` once ready.

use std::io::Write;

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "hris-emulator", about = "Merge-style unified HRIS API emulator for learnlink's tests")]
struct Args {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to bind (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// `HOST:PORT` to bind, instead of --host and --port (port 0: any free port).
    #[arg(long, conflicts_with_all = ["host", "port"])]
    bind: Option<String>,
    /// API key expected as `Authorization: Bearer <key>`.
    #[arg(long, default_value = "hris-local-key")]
    api_key: String,
    /// Linked-account token expected as `X-Account-Token: <token>`.
    #[arg(long, default_value = "hris-local-account")]
    account_token: String,
    /// Seed of the start-up data set.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Employees in the start-up data set.
    #[arg(long, default_value_t = 100)]
    employees: u32,
    /// Groups in the start-up data set.
    #[arg(long, default_value_t = 6)]
    groups: u32,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let dataset = hris_emulator::DatasetParams { seed: args.seed, employees: args.employees, groups: args.groups };
    if let Err(e) = dataset.validate() {
        eprintln!("invalid data set parameters: {}", e.0);
        std::process::exit(2);
    }
    let listener = match &args.bind {
        Some(bind) => tokio::net::TcpListener::bind(bind.as_str()).await?,
        None => tokio::net::TcpListener::bind((args.host.as_str(), args.port)).await?,
    };
    let addr = listener.local_addr()?;
    let config = hris_emulator::Config { api_key: args.api_key, account_token: args.account_token, dataset };
    let state = hris_emulator::HrisState::new(config);
    {
        let mut out = std::io::stdout().lock();
        match &args.bind {
            Some(_) => writeln!(out, "listening on http://{addr}")?,
            None => writeln!(out, "listening on http://{}:{}", args.host, addr.port())?,
        }
        out.flush()?;
    }
    tracing::info!(%addr, "hris-emulator ready");
    hris_emulator::serve_state(listener, state).await
}
