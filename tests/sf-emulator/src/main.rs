//! `sf-emulator` binary: prints `listening on http://HOST:PORT` once ready.

use std::io::Write;

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "sf-emulator", about = "Salesforce REST API emulator for learnlink's tests")]
struct Args {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to bind (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Base URL announced as `instance_url` (default: http://HOST:PORT).
    #[arg(long)]
    public_url: Option<String>,
    /// Daily API request limit.
    #[arg(long, default_value_t = 15_000)]
    daily_api_limit: u64,
    /// Records per query page (1..=2000).
    #[arg(long, default_value_t = 2000)]
    query_page_size: usize,
    /// Require this client_id on token requests.
    #[arg(long)]
    client_id: Option<String>,
    /// Require this client_secret when one is presented.
    #[arg(long)]
    client_secret: Option<String>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port)).await?;
    let addr = listener.local_addr()?;
    let config = sf_emulator::Config {
        public_url: args.public_url,
        daily_api_limit: args.daily_api_limit,
        query_page_size: args.query_page_size,
        client_id: args.client_id,
        client_secret: args.client_secret,
        ..sf_emulator::Config::default()
    };
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{}:{}", args.host, addr.port())?;
        out.flush()?;
    }
    tracing::info!(%addr, "sf-emulator ready");
    sf_emulator::serve(listener, config).await
}
