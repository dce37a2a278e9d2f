//! `sf-emulator` binary: prints `listening on http://HOST:PORT` once ready.

use std::io::Write;
use std::path::PathBuf;

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "sf-emulator", about = "Salesforce API emulator for learnlink's tests")]
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
    /// Require this client_id on authorize and token requests.
    #[arg(long)]
    client_id: Option<String>,
    /// Require this client_secret when one is presented.
    #[arg(long)]
    client_secret: Option<String>,
    /// An allowed OAuth redirect_uri (repeatable; none: any).
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    /// The learnlink Salesforce metadata package (SFDX) to load the schema from
    /// (default: $LEARNLINK_SF_METADATA, else infra/salesforce of the workspace).
    #[arg(long, env = "LEARNLINK_SF_METADATA")]
    metadata: Option<PathBuf>,
    /// The org is a sandbox (login through /sandbox, test.salesforce.com).
    #[arg(long)]
    sandbox: bool,
    /// Access-token session timeout in seconds (inactivity).
    #[arg(long, default_value_t = 7200)]
    session_timeout_secs: u64,
    /// Refresh-token idle TTL in seconds (none: never expires).
    #[arg(long)]
    refresh_idle_ttl_secs: Option<u64>,
    /// The integration user has the System Administrator profile.
    #[arg(long)]
    integration_user_admin: bool,
    /// The integration user is assigned a permission set with Modify All Data.
    #[arg(long)]
    integration_user_modify_all_data: bool,
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
    let settings = sf_emulator::Settings {
        session_timeout_ms: args.session_timeout_secs.saturating_mul(1000),
        refresh_idle_ttl_ms: args.refresh_idle_ttl_secs.map(|s| s.saturating_mul(1000)),
        ..sf_emulator::Settings::default()
    };
    let config = sf_emulator::Config {
        public_url: Some(args.public_url.unwrap_or_else(|| format!("http://{}:{}", args.host, addr.port()))),
        daily_api_limit: args.daily_api_limit,
        query_page_size: args.query_page_size,
        client_id: args.client_id,
        client_secret: args.client_secret,
        redirect_uris: args.redirect_uris,
        metadata_dir: args.metadata,
        sandbox: args.sandbox,
        integration_user_admin: args.integration_user_admin,
        integration_user_modify_all_data: args.integration_user_modify_all_data,
        settings,
        ..sf_emulator::Config::default()
    };
    // Load the schema before announcing readiness: a bad package fails the start.
    let state =
        sf_emulator::SfState::try_new(config).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    tracing::info!(metadata = %state.schema().metadata_source, "schema loaded");
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{}:{}", args.host, addr.port())?;
        out.flush()?;
    }
    tracing::info!(%addr, "sf-emulator ready");
    sf_emulator::serve_state(listener, state).await
}
