//! `lcnet`: the PP-LCNet model zoo on the command line.
//!
//! Exit codes: 0 success, 1 an error (the message says which file, tensor or
//! value is wrong), 2 bad command-line usage.

mod build_info {
    include!(concat!(env!("OUT_DIR"), "/build_info.rs"));
}
mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` keeps the whole cause chain on one line.
            eprintln!("lcnet: error: {err:#}");
            ExitCode::from(1)
        }
    }
}
