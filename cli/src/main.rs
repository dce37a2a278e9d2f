//! `learnlink`: parse the command line, run it, exit with the code its outcome means.

use clap::Parser as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = learnlink_cli::cli::Cli::parse();
    ExitCode::from(learnlink_cli::run(cli))
}
