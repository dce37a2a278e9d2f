//! The command groups later work fills: their shape is in `--help`; running
//! them says what they will do and exits 69.

use crate::cli::{BackfillCmd, Command, ExportCmd};
use crate::error::{Failure, exit};

/// The command and what it will do.
pub fn describe(c: &Command) -> (&'static str, &'static str) {
    match c {
        Command::Backfill(BackfillCmd::Start { .. }) => (
            "backfill start",
            "it will backfill the LMS history since a date into Salesforce, resumable and with progress.",
        ),
        Command::Backfill(BackfillCmd::Status { .. }) => {
            ("backfill status", "it will show a backfill's progress: shards done, records written and failures.")
        }
        Command::Backfill(BackfillCmd::Cancel { .. }) => {
            ("backfill cancel", "it will cancel the tenant's running backfill, keeping what was written.")
        }
        Command::Export(ExportCmd::Enrollments { .. }) => {
            ("export enrollments", "it will export the tenant's enrollments since a date as CSV.")
        }
        _ => ("", ""),
    }
}

/// The failure of a command that is not available yet (exit 69).
pub fn not_available(c: &Command) -> Failure {
    let (name, what) = describe(c);
    Failure::new(
        exit::NOT_AVAILABLE,
        "not_available",
        format!("`learnlink {name}` is not available in this version yet: {what}"),
    )
}
