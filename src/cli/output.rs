//! Writing results to standard output: a failed write (a full disk, a
//! closed file) is an error with exit 1, never a panic as `println!` makes it.

use std::io::Write;

/// Writes `args` and a newline to standard output.
pub fn line(args: std::fmt::Arguments) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args).and_then(|()| out.write_all(b"\n")).map_err(write_error)
}

/// Flushes standard output (before exiting).
pub fn flush() -> anyhow::Result<()> {
    std::io::stdout().lock().flush().map_err(write_error)
}

/// The error of a failed write to standard output.
pub fn write_error(e: std::io::Error) -> anyhow::Error {
    anyhow::anyhow!("cannot write to standard output: {e}")
}

/// `text` with control characters escaped (`\n`, `\u{1b}`), for labels and
/// other strings from files: a newline or terminal escape in a checkpoint's
/// label must not forge a result line.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(char::is_control) {
        text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
    } else {
        text.into()
    }
}

/// `outln!(...)`: `println!` that returns the write error with `?`.
macro_rules! outln {
    () => { $crate::cli::output::line(format_args!(""))? };
    ($($arg:tt)*) => { $crate::cli::output::line(format_args!($($arg)*))? };
}

pub(crate) use outln;
