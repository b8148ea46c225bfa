//! `lcnet`: the PP-LCNet model zoo on the command line.
//!
//! Exit codes: 0 success, 1 an error (the message says which file, tensor or
//! value is wrong), 2 bad command-line usage, 3 `run` classified some images
//! but could not read others, 4 `verify` ran but the outputs differ.

mod build_info {
    include!(concat!(env!("OUT_DIR"), "/build_info.rs"));
}
mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    restore_sigpipe();
    match cli::run() {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            // `{:#}` keeps the whole cause chain on one line.
            eprintln!("lcnet: error: {err:#}");
            ExitCode::from(1)
        }
    }
}

/// `lcnet list | head` should end quietly, as other Unix tools do, instead of
/// panicking on a closed pipe: Rust ignores SIGPIPE by default.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: resetting a signal to its default disposition before any thread
    // is started has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
