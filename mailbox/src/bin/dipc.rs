//! `dipc MAILBOXES SIZE PORT PACKET`: starts a mailbox server in the background and returns
//! once it accepts connections (the DIPC assignment's command).

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut cli = dhost_mailbox::cli::DipcCli::parse();
    cli.serve.daemon = true;
    dhost_mailbox::cli::init_logging_at("info");
    match cli.serve.serve_text() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dipc: {e:#}");
            ExitCode::FAILURE
        }
    }
}
