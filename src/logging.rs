//! Log output: text or JSON lines on stderr, levels from `RUST_LOG` (default `info`).
//!
//! Lines reach stderr through [`queue`]: a stderr nobody reads, or one whose reader has gone
//! (`devin-exporter 2>&1 | head -1`), loses log lines but never blocks or panics the server.

pub mod queue;

use std::fmt;
use std::io::{IsTerminal, Write};

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub use queue::Flush;

/// Installs the global subscriber. Hold the returned [`Flush`] until the end: dropping it
/// writes out the lines still queued. Fails only if the writer thread cannot start.
pub fn init(format: LogFormat) -> std::io::Result<Flush> {
    let (writer, flush) = queue::spawn(std::io::stderr(), queue::CAPACITY)?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(flush)
}

/// Writes one line straight to stderr (an error outside the log). Unlike `eprintln!`, a
/// stderr that cannot be written loses the line instead of panicking.
pub fn stderr_line(line: fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
