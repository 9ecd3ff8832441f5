//! The `dhost` executable: parses the command line and hands it to the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = dhost::commands::parse_command_line();
    cli.init_logging();
    match dhost::commands::execute(cli) {
        Ok(code) => code,
        Err(e) => {
            // (An error may carry a peer's words: shown printable.)
            eprintln!("dhost: {}", dhost::printable::lines(format_args!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}
