//! The `learnlink` command-line interface (SPEC §8). It talks only to the
//! admin API (`infra/openapi.yaml`), plus `up` / `down` for the local stack.
//!
//! - [`cli`]: the command line (clap);
//! - [`env`]: finding the API (flags, environment, `.learnlink/stack.env`);
//! - [`api`]: a typed client over the OpenAPI operations;
//! - [`output`]: tables, colours, JSON, progress and errors;
//! - [`commands`]: one module per command group;
//! - [`error`]: failures and the exit codes they mean.

pub mod api;
pub mod cli;
pub mod commands;
pub mod env;
pub mod error;
pub mod jsonpath;
pub mod output;
pub mod timearg;

use cli::{Cli, Command};
use error::{Failure, exit};
use output::Output;

/// Seconds to wait for an API answer when `--timeout` is not given.
pub const DEFAULT_TIMEOUT: u64 = 60;
/// The longest wait for one API answer (a longer `--timeout` is for following a backfill).
pub const MAX_ANSWER_SECS: u64 = 3600;

/// Run a parsed command line; returns the exit code.
pub fn run(cli: Cli) -> u8 {
    let Cli { mut global, command } = cli;
    let out = Output::new(global.json, global.quiet, global.no_color);
    let result = match command {
        Command::Up(a) => commands::stack::up(&out, a),
        Command::Down(a) => commands::stack::down(&out, a),
        api_command => run_api(&out, &mut global, api_command),
    };
    match result {
        Ok(()) => exit::OK,
        Err(f) => {
            out.failure(&f);
            f.exit
        }
    }
}

fn run_api(out: &Output, global: &mut cli::Global, command: Command) -> Result<(), Failure> {
    let cwd =
        std::env::current_dir().map_err(|e| Failure::unexpected(format!("cannot read the current directory: {e}")))?;
    let target = env::resolve(global.api_url.take(), global.token.take(), global.stack_env.take(), &cwd)?;
    let client = api::Client::new(
        target,
        std::time::Duration::from_secs(global.timeout.unwrap_or(DEFAULT_TIMEOUT).min(MAX_ANSWER_SECS)),
    )?;
    let ctx = commands::Ctx { client, out: *out, timeout: global.timeout };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::unexpected(format!("cannot start the async runtime: {e}")))?;
    let mut result = rt.block_on(commands::run(&ctx, command));
    if let (Err(f), Some(secret)) = (&mut result, ctx.client.secret()) {
        f.redact(secret);
    }
    result
}
