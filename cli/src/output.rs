//! Output: JSON for scripts, tables and colours for people, progress on stderr,
//! and errors as one line (plus the violations and a hint).

use crate::error::{Failure, exit};
use comfy_table::{Cell, Color, ContentArrangement, Table, presets};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use owo_colors::OwoColorize;
use serde_json::Value;
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// How to print.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
    pub quiet: bool,
    /// Colours on stdout.
    pub color: bool,
    /// Colours on stderr.
    pub err_color: bool,
    /// stdout is a terminal (tables may wrap to its width).
    pub tty: bool,
    /// stderr is a terminal (progress bars are drawn).
    pub err_tty: bool,
}

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// Whether to colour a stream: never with `--no-color`, `NO_COLOR` or
/// `TERM=dumb`; always with `CLICOLOR_FORCE` (other than `0`); otherwise
/// when the stream is a terminal.
pub fn colour_wanted(no_color_flag: bool, is_tty: bool) -> bool {
    if no_color_flag || env_set("NO_COLOR") || std::env::var("TERM").is_ok_and(|t| t == "dumb") {
        return false;
    }
    if std::env::var("CLICOLOR_FORCE").is_ok_and(|v| !v.is_empty() && v != "0") {
        return true;
    }
    is_tty
}

/// The colour of a connection status.
pub fn status_color(status: &str) -> Option<Color> {
    match status {
        "CONNECTED" => Some(Color::Green),
        "DEGRADED" => Some(Color::Yellow),
        "DISCONNECTED" => Some(Color::Red),
        "PAUSED" => Some(Color::Blue),
        _ => None,
    }
}

/// The colour of a record outcome.
pub fn outcome_color(outcome: &str) -> Option<Color> {
    match outcome {
        "created" | "updated" => Some(Color::Green),
        "linked" | "unlinked" => Some(Color::Cyan),
        "skipped" => Some(Color::Blue),
        "ambiguous" => Some(Color::Yellow),
        "failed" => Some(Color::Red),
        _ => None,
    }
}

/// A broken pipe (`learnlink logs | head`) ends the command quietly.
pub const BROKEN_PIPE: &str = "broken_pipe";

fn io_failure(e: std::io::Error) -> Failure {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Failure::new(exit::OK, BROKEN_PIPE, "the output was closed")
    } else {
        Failure::unexpected(format!("cannot write the output: {e}"))
    }
}

impl Output {
    pub fn new(json: bool, quiet: bool, no_color: bool) -> Output {
        let tty = std::io::stdout().is_terminal();
        let err_tty = std::io::stderr().is_terminal();
        Output {
            json,
            quiet,
            color: colour_wanted(no_color, tty),
            err_color: colour_wanted(no_color, err_tty),
            tty,
            err_tty,
        }
    }

    /// Write text to stdout as is.
    pub fn raw(&self, text: &str) -> Result<(), Failure> {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes()).and_then(|_| out.flush()).map_err(io_failure)
    }

    /// A line on stdout.
    pub fn line(&self, text: impl AsRef<str>) -> Result<(), Failure> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", text.as_ref()).and_then(|_| out.flush()).map_err(io_failure)
    }

    /// A line on stdout, unless `--quiet`.
    pub fn say(&self, text: impl AsRef<str>) -> Result<(), Failure> {
        if self.quiet { Ok(()) } else { self.line(text) }
    }

    /// A note on stderr, unless `--quiet` (never mixed into data on stdout).
    pub fn note(&self, text: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", text.as_ref());
        }
    }

    /// JSON, pretty-printed, on stdout.
    pub fn json_value(&self, v: &Value) -> Result<(), Failure> {
        let text =
            serde_json::to_string_pretty(v).map_err(|e| Failure::unexpected(format!("cannot print JSON: {e}")))?;
        self.line(text)
    }

    /// Colour text (stdout) when colours are on.
    pub fn paint(&self, text: &str, color: Option<Color>) -> String {
        paint(self.color, text, color)
    }

    /// Bold text (stdout) when colours are on.
    pub fn bold(&self, text: &str) -> String {
        if self.color { text.bold().to_string() } else { text.to_string() }
    }

    /// Dim text (stdout) when colours are on.
    pub fn dim(&self, text: &str) -> String {
        if self.color { text.dimmed().to_string() } else { text.to_string() }
    }

    /// A table for stdout with this output's colour and width settings.
    pub fn table<I, S>(&self, header: I) -> Table
    where
        I: IntoIterator<Item = S>,
        S: Into<Cell>,
    {
        let mut t = Table::new();
        // The terminal's width is read once, then comfy-table is told exactly
        // what to do: wrap to that width, and style only when colours are on.
        // (A pseudo-terminal may report no width, or a tiny one: no wrapping then.)
        let width = if self.tty { t.width().filter(|w| *w >= 40) } else { None };
        t.force_no_tty();
        if self.tty {
            t.load_style(presets::UTF8_FULL_CONDENSED);
        } else {
            t.load_style(presets::ASCII_BORDERS_ONLY_CONDENSED);
        }
        if let Some(w) = width {
            t.set_width(w);
            t.set_content_arrangement(ContentArrangement::Dynamic);
        }
        if self.color {
            t.enforce_styling();
        }
        t.set_header(header);
        t
    }

    /// A cell coloured when colours are on.
    pub fn cell(&self, text: impl ToString, color: Option<Color>) -> Cell {
        match color {
            Some(c) if self.color => Cell::new(text).fg(c),
            _ => Cell::new(text),
        }
    }

    /// Print a table on stdout.
    pub fn print_table(&self, t: &Table) -> Result<(), Failure> {
        self.line(t.to_string())
    }

    /// A progress spinner on stderr (hidden unless stderr is a terminal and not `--quiet`).
    pub fn spinner(&self, message: &str) -> ProgressBar {
        if self.quiet || !self.err_tty {
            return ProgressBar::hidden();
        }
        let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} [{elapsed}]") {
            pb.set_style(style);
        }
        pb.set_message(message.to_string());
        pb.enable_steady_tick(Duration::from_millis(120));
        pb
    }

    /// Report a failure on stderr: the error JSON with `--json`; otherwise
    /// `error: <message>`, every violation in a table, and the hint.
    pub fn failure(&self, f: &Failure) {
        if f.code == BROKEN_PIPE {
            return;
        }
        if self.json {
            let text = serde_json::to_string_pretty(&f.json()).unwrap_or_else(|_| f.message.clone());
            eprintln!("{text}");
            return;
        }
        let label = if self.err_color { "error:".red().bold().to_string() } else { "error:".to_string() };
        eprintln!("{label} {}", f.message);
        if !f.violations.is_empty() {
            let mut t = Table::new();
            t.load_style(if self.err_tty {
                presets::UTF8_FULL_CONDENSED
            } else {
                presets::ASCII_BORDERS_ONLY_CONDENSED
            });
            t.force_no_tty();
            t.use_stderr();
            if self.err_tty {
                t.set_content_arrangement(ContentArrangement::Dynamic);
            }
            t.set_header(["path", "violation"]);
            for v in &f.violations {
                let path = if v.path.is_empty() { "(document)" } else { v.path.as_str() };
                t.add_row([path, v.message.as_str()]);
            }
            eprintln!("{t}");
        }
        if let Some(h) = &f.hint
            && !self.quiet
        {
            let label = if self.err_color { "hint:".cyan().to_string() } else { "hint:".to_string() };
            eprintln!("{label} {h}");
        }
    }
}

/// Colour text when `on`.
pub fn paint(on: bool, text: &str, color: Option<Color>) -> String {
    let Some(c) = color.filter(|_| on) else { return text.to_string() };
    match c {
        Color::Green => text.green().to_string(),
        Color::Yellow => text.yellow().to_string(),
        Color::Red => text.red().to_string(),
        Color::Blue => text.blue().to_string(),
        Color::Cyan => text.cyan().to_string(),
        Color::Magenta => text.magenta().to_string(),
        _ => text.to_string(),
    }
}

/// A JSON value on one line, for diffs and `config get --path` of a scalar.
pub fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_outcomes_have_their_colours() {
        assert_eq!(status_color("CONNECTED"), Some(Color::Green));
        assert_eq!(status_color("DEGRADED"), Some(Color::Yellow));
        assert_eq!(status_color("DISCONNECTED"), Some(Color::Red));
        assert_eq!(status_color("PAUSED"), Some(Color::Blue));
        assert_eq!(status_color("OTHER"), None);
        assert_eq!(outcome_color("failed"), Some(Color::Red));
        assert_eq!(outcome_color("created"), Some(Color::Green));
    }

    #[test]
    fn paint_is_plain_when_off() {
        assert_eq!(paint(false, "CONNECTED", Some(Color::Green)), "CONNECTED");
        assert_eq!(paint(true, "CONNECTED", Some(Color::Green)), "\u{1b}[32mCONNECTED\u{1b}[39m");
        assert_eq!(paint(true, "x", None), "x");
    }

    #[test]
    fn the_flag_turns_colours_off() {
        assert!(!colour_wanted(true, true));
    }
}
