//! `dipcrm PORT`: stops the mailbox server `dipc` started on PORT (the DIPC assignment's
//! command).

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = dhost_mailbox::cli::DipcrmCli::parse();
    dhost_mailbox::cli::init_logging_at("warn");
    match cli.stop.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dipcrm: {e:#}");
            ExitCode::FAILURE
        }
    }
}
