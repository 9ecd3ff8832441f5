//! `dhost inspect`: a component's imports and exports with their WIT types, and what a
//! node would do with each.

use crate::cli::InspectArgs;
use crate::guest::wasm::Runtime;
use crate::guest::world::{Interface, Role, World};
use anyhow::Context as _;
use std::fmt::Write;

/// Prints the description of `args.guest` on stdout.
pub fn inspect(args: &InspectArgs) -> anyhow::Result<()> {
    let runtime = Runtime::new(args.cache.dir(), false)?;
    let component = runtime
        .load_component(&args.guest)
        .with_context(|| format!("cannot inspect {}", args.guest.display()))?;
    let world = World::of(&component, runtime.engine());
    print!("{}", describe(&world));
    Ok(())
}

/// The description `dhost inspect` prints.
pub fn describe(world: &World) -> String {
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
            "call with a reply: not supported yet"
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
    for i in world.imports.iter().chain(&world.exports) {
        if let Role::Unsupported(why) = &i.role {
            let _ = writeln!(out, "  cannot use {}: {why}", i.name);
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
