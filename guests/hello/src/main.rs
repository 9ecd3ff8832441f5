//! A plain WASI command (it exports `wasi:cli/run`), to show `dhost run hello.wasm -- ARGS`:
//! prints `hello` and its arguments, and fails with a message when one of them is `--fail`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--fail") {
        eprintln!("hello: failing, as asked by --fail");
        return ExitCode::FAILURE;
    }
    println!("hello {}", args.join(" "));
    ExitCode::SUCCESS
}
