//! `lcnet`: the PP-LCNet model zoo on the command line.
//!
//! Exit codes: 0 success, 1 an error (the message says which file, tensor or
//! value is wrong), 2 bad command-line usage, 3 `run` classified some images
//! but could not read others.

mod build_info {
    include!(concat!(env!("OUT_DIR"), "/build_info.rs"));
}
mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            // `{:#}` keeps the whole cause chain on one line.
            eprintln!("lcnet: error: {err:#}");
            ExitCode::from(1)
        }
    }
}
