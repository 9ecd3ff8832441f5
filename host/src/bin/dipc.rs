//! `dipc MAILBOXES SIZE PORT PACKET`: starts a mailbox server in the background and returns
//! once it accepts connections (the DIPC assignment's command; `dhost mailbox serve
//! --daemon`).

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut cli = dhost::cli::DipcCli::parse();
    cli.serve.daemon = true;
    dhost::cli::init_logging_at("info");
    match cli.serve.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dipc: {e:#}");
            ExitCode::FAILURE
        }
    }
}
