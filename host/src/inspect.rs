//! `dhost inspect`: a component's WIT ([`crate::guest::wit_text`]); or, with `--summary`, its imports and exports with what a
//! node would do with each. With `--node`, the WIT of a module published to a node.

use crate::cli::InspectArgs;
use crate::guest::wasm::Runtime;
use crate::guest::wit_text::file_wit_text;
use crate::guest::world::{Interface, Role, World};
use crate::printable::lines;
use anyhow::Context as _;
use std::fmt::Write;
use std::path::Path;

/// Prints what `args` ask for on stdout.
pub(crate) fn inspect(args: &InspectArgs) -> anyhow::Result<()> {
    // (The WIT's doc comments are anyone's text: shown printable, lines kept.)
    if let Some(node) = &args.node {
        let wit = crate::modules::client::remote_wit(&args.survey, node, &args.guest)?;
        print!("{}", lines(wit));
        return Ok(());
    }
    let path = Path::new(&args.guest);
    let cannot = || format!("cannot inspect {}", path.display());
    if args.summary {
        let runtime = Runtime::new(args.cache.dir(), false)?;
        let component = runtime.load_component(path).with_context(cannot)?;
        let world = World::of(&component, runtime.engine());
        print!("{}", lines(describe(&world)));
        return Ok(());
    }
    print!("{}", lines(file_wit_text(path).with_context(cannot)?));
    Ok(())
}

/// The description `dhost inspect` prints.
pub(crate) fn describe(world: &World) -> String {
    let mut out = String::new();
    let section = |out: &mut String, title: &str, interfaces: &[Interface]| {
        let _ = writeln!(out, "{title}:");
        if interfaces.is_empty() {
            let _ = writeln!(out, "  (none)");
        }
        for iface in interfaces {
            let _ = writeln!(out, "  {}  [{}]", iface.name, role(&iface.role));
            for f in &iface.functions {
                let _ = writeln!(out, "    {}: {}", f.name, f.signature());
            }
        }
    };
    section(&mut out, "imports", &world.imports);
    section(&mut out, "exports", &world.exports);
    let _ = writeln!(out, "node:");
    if world.is_command() {
        let _ = writeln!(out, "  runs as a WASI command (wasi:cli/run)");
    }
    for f in world.sends() {
        let how = if f.results.is_empty() {
            "multicast to the group"
        } else {
            "call with a reply, from one node over TCP"
        };
        let _ = writeln!(out, "  sends  {}  ({how})", f.id);
    }
    for f in world.serves() {
        match f.unsendable_param() {
            None => {
                let _ = writeln!(out, "  serves {}", f.id);
            }
            Some(p) => {
                let _ = writeln!(
                    out,
                    "  cannot serve {} (parameter `{p}` cannot travel)",
                    f.id
                );
            }
        }
    }
    for (kind, interfaces) in [
        ("cannot provide import", &world.imports),
        ("ignores export", &world.exports),
    ] {
        for i in interfaces {
            if let Role::Unsupported(why) = &i.role {
                let _ = writeln!(out, "  {kind} {}: {why}", i.name);
            }
        }
    }
    out
}

fn role(role: &Role) -> &'static str {
    match role {
        Role::Wasi => "WASI",
        Role::NodeImport => "node",
        Role::Events(_) => "node events",
        Role::CommandRun => "WASI command",
        Role::Application => "application",
        Role::Unsupported(_) => "unsupported",
    }
}
