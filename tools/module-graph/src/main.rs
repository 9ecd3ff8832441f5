//! `cargo run -p module-graph -- CRATE_ROOT...`: prints each crate's module import graph
//! and its rings (of modules, and of top-level modules); exits 1 if there is one. `--edges`
//! prints every edge too.

use std::path::PathBuf;
use std::process::ExitCode;

use module_graph::{display, read_crate};

fn main() -> ExitCode {
    let mut edges = false;
    let mut roots = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--edges" => edges = true,
            "-h" | "--help" => {
                println!("usage: module-graph [--edges] CRATE_ROOT...  (e.g. host/src/lib.rs)");
                return ExitCode::SUCCESS;
            }
            _ => roots.push(PathBuf::from(arg)),
        }
    }
    let mut found = false;
    for root in roots {
        let graph = match read_crate(&root) {
            Ok(graph) => graph,
            Err(e) => {
                eprintln!("module-graph: {e}");
                return ExitCode::from(2);
            }
        };
        println!("{}: {} modules", root.display(), graph.modules.len());
        if edges {
            for (from, to) in &graph.edges {
                for t in to {
                    let why = &graph.reasons[&(from.clone(), t.clone())];
                    println!("  {} -> {}  ({why})", display(from), display(t));
                }
            }
        }
        for cycle in graph.rings() {
            found = true;
            let names: Vec<String> = cycle.iter().map(|m| display(m)).collect();
            println!("  cycle: {{{}}}", names.join(", "));
        }
    }
    if found {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
