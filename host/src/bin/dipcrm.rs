//! `dipcrm PORT`: stops the mailbox server `dipc` started on PORT (the DIPC assignment's
//! command; `dhost mailbox stop`).

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = dhost::cli::DipcrmCli::parse();
    dhost::cli::init_logging_at("warn");
    match cli.stop.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dipcrm: {e:#}");
            ExitCode::FAILURE
        }
    }
}
