//! `learnlink-local`: start and stop the local stack, or run the local
//! runtime itself (`serve`, started by `up`).

use clap::{Args, Parser, Subcommand};
use learnlink_local::commands::{self, UpOptions};
use learnlink_local::serve::{ServeConfig, run};
use learnlink_local::stack::{self, Ports};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "learnlink-local", about = "The learnlink local stack", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start moto, the emulators and the local runtime; print the endpoints.
    Up(UpArgs),
    /// Stop the processes `up` started (by pid).
    Down {
        #[arg(long, default_value = ".learnlink", env = "LEARNLINK_STATE_DIR")]
        state_dir: PathBuf,
    },
    /// Print the endpoints of the running stack.
    Status {
        #[arg(long, default_value = ".learnlink", env = "LEARNLINK_STATE_DIR")]
        state_dir: PathBuf,
    },
    /// Run the local runtime in the foreground (started by `up`).
    Serve(ServeArgs),
    /// The stack's one AWS endpoint: DynamoDB to one moto, every other
    /// service to another (started by `up`).
    AwsRouter {
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// Base URL of the moto serving DynamoDB.
        #[arg(long)]
        dynamodb: String,
        /// Base URL of the moto serving every other service.
        #[arg(long)]
        default: String,
    },
}

fn kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

/// Which template, as which stack.
#[derive(Args)]
struct StackArgs {
    #[arg(long, default_value = "infra/template.yaml")]
    template: PathBuf,
    #[arg(long, default_value = "learnlink")]
    stack_name: String,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Template parameter override, as `sam deploy --parameter-overrides`.
    #[arg(long = "param", value_parser = kv)]
    params: Vec<(String, String)>,
}

#[derive(Args)]
struct UpArgs {
    #[arg(long, default_value = ".learnlink", env = "LEARNLINK_STATE_DIR")]
    state_dir: PathBuf,
    #[command(flatten)]
    stack: StackArgs,
    #[arg(long, default_value_t = 4566, env = "LEARNLINK_MOTO_PORT")]
    moto_port: u16,
    #[arg(long, default_value_t = 4567, env = "LEARNLINK_SALESFORCE_PORT")]
    salesforce_port: u16,
    #[arg(long, default_value_t = 4568, env = "LEARNLINK_LMS_PORT")]
    lms_port: u16,
    #[arg(long, default_value_t = 4569, env = "LEARNLINK_GATEWAY_PORT")]
    gateway_port: u16,
    #[arg(long, default_value = "target/debug")]
    bin_dir: PathBuf,
    #[arg(long, default_value = ".venv")]
    venv: PathBuf,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    stack: StackArgs,
    #[arg(long)]
    moto_url: String,
    #[arg(long, default_value = "127.0.0.1:4569")]
    gateway: std::net::SocketAddr,
    #[arg(long)]
    bin_dir: PathBuf,
    #[arg(long)]
    log_dir: PathBuf,
    /// Environment for every function, applied after the template's.
    #[arg(long = "env", value_parser = kv)]
    env: Vec<(String, String)>,
    /// Concurrency of a function that sets no ReservedConcurrentExecutions
    /// (AWS scales much further; instances start on demand, so an idle
    /// function costs nothing). Enough for a 50 requests/s webhook stream
    /// at ~100 ms per request.
    #[arg(long, default_value_t = 10)]
    concurrency: u32,
    /// Pollers per SQS event source without ScalingConfig.
    #[arg(long, default_value_t = 2)]
    pollers: u32,
}

fn up(a: UpArgs) -> anyhow::Result<()> {
    commands::up(UpOptions {
        state_dir: a.state_dir,
        template: a.stack.template,
        stack_name: a.stack.stack_name,
        region: a.stack.region,
        parameters: a.stack.params,
        ports: Ports { moto: a.moto_port, salesforce: a.salesforce_port, lms: a.lms_port, gateway: a.gateway_port },
        bin_dir: a.bin_dir,
        venv: a.venv,
    })
    .map(|_| ())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Up(a) => up(a),
        Cmd::Down { state_dir } => commands::down(&state_dir).map(|_| ()),
        Cmd::Status { state_dir } => {
            let state_dir = commands::absolute(state_dir);
            if stack::running(&state_dir) {
                stack::read_env(&state_dir).map(|env| {
                    println!("The local stack is running:");
                    commands::print_endpoints(&env);
                })
            } else {
                println!("The local stack is not running (`make up` starts it).");
                return ExitCode::from(3);
            }
        }
        Cmd::AwsRouter { listen, dynamodb, default } => {
            let _ = tracing_subscriber::fmt().with_ansi(false).try_init();
            learnlink_adapters::install_crypto_provider();
            match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt.block_on(learnlink_local::aws_router::serve(
                    listen,
                    learnlink_local::aws_router::Backends { dynamodb, default },
                )),
                Err(e) => Err(e.into()),
            }
        }
        Cmd::Serve(a) => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
                )
                .with_ansi(false)
                .try_init();
            let cfg = ServeConfig {
                template: a.stack.template,
                stack_name: a.stack.stack_name,
                region: a.stack.region,
                parameters: a.stack.params.into_iter().collect(),
                moto_url: a.moto_url,
                gateway: a.gateway,
                bin_dir: a.bin_dir,
                log_dir: a.log_dir,
                env: a.env,
                default_concurrency: a.concurrency,
                default_pollers: a.pollers,
            };
            match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt.block_on(run(cfg)),
                Err(e) => Err(e.into()),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("learnlink-local: {e:#}");
            ExitCode::FAILURE
        }
    }
}
