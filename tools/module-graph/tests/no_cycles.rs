//! The workspace's modules import each other in one direction only: every crate of the
//! workspace (each member of the root Cargo.toml: the protocol, mailbox, runtime and node
//! crates, the binary, the guest SDK, the example guests, the tools) is read, and any ring
//! of modules, or of top-level modules, that import each other fails the test, named.
//! (Crates themselves cannot form rings: Cargo refuses them.)

use module_graph::{display, read_crate};
use std::path::{Path, PathBuf};

/// The workspace's root (two levels above this crate).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The directories of the workspace's members, as the root Cargo.toml lists them.
fn members() -> Vec<PathBuf> {
    let root = workspace();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("the root manifest");
    let line = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("a members list");
    let list = &line[line.find('[').expect("a list") + 1..line.rfind(']').expect("a list")];
    list.split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
        .map(|m| root.join(m))
        .collect()
}

/// The root file of every library and binary crate in the workspace.
fn crate_roots() -> Vec<PathBuf> {
    let mut roots = Vec::new();
    for dir in members() {
        for file in ["src/lib.rs", "src/main.rs"] {
            let path = dir.join(file);
            if path.exists() {
                roots.push(path);
            }
        }
    }
    roots
}

#[test]
fn no_module_imports_itself_through_others() {
    let roots = crate_roots();
    assert!(roots.len() >= 10, "found only {roots:?}");
    for layer in ["protocol", "mailbox", "runtime", "node", "host"] {
        let root = workspace().join(layer).join("src/lib.rs");
        assert!(roots.contains(&root), "{} is not read", root.display());
    }
    let mut cycles = Vec::new();
    for root in &roots {
        let graph = read_crate(root).unwrap_or_else(|e| panic!("{e}"));
        assert!(!graph.modules.is_empty());
        for cycle in graph.rings() {
            let names: Vec<String> = cycle.iter().map(|m| display(m)).collect();
            cycles.push(format!("{}: {{{}}}", root.display(), names.join(", ")));
        }
    }
    assert!(
        cycles.is_empty(),
        "modules that import each other in a ring (break the ring: move what both need \
         into a module of its own, or pass it in through a small trait):\n{}",
        cycles.join("\n")
    );
}

/// A crate written out in a temporary directory.
fn scratch_crate(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("module-graph-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("a directory");
        std::fs::write(&path, text).expect("a file");
    }
    dir.join("lib.rs")
}

#[test]
fn a_ring_is_found_and_named() {
    let root = scratch_crate(
        "ring",
        &[
            ("lib.rs", "pub mod a;\npub mod b;\npub mod c;\n"),
            ("a.rs", "use crate::b::B;\npub struct A(B);\n"),
            // Through a parent's re-export, and a path in code.
            ("b/mod.rs", "mod inner;\npub use inner::B;\n"),
            (
                "b/inner.rs",
                "pub struct B;\nfn f() { let _ = crate::c::C; }\n",
            ),
            ("c.rs", "pub struct C;\nfn g(_: super::a::A) {}\n"),
        ],
    );
    let graph = read_crate(&root).expect("the crate reads");
    let cycles: Vec<Vec<String>> = graph
        .cycles()
        .iter()
        .map(|c| c.iter().map(|m| display(m)).collect())
        .collect();
    assert_eq!(cycles, [["a", "b::inner", "c"]]);
}

#[test]
fn re_exports_and_test_code_are_not_rings() {
    let root = scratch_crate(
        "no-ring",
        &[
            ("lib.rs", "pub mod a;\npub mod b;\npub use b::B;\n"),
            (
                "a.rs",
                "pub struct A(crate::B);\n#[cfg(test)]\nmod tests { use crate::b::*; }\n",
            ),
            (
                "b.rs",
                "pub struct B;\n#[cfg(test)]\nfn only_in_tests(_: crate::a::A) {}\n",
            ),
        ],
    );
    let graph = read_crate(&root).expect("the crate reads");
    assert!(graph.cycles().is_empty(), "{:?}", graph.edges);
    let a_uses: Vec<String> = graph.edges[&vec!["a".to_string()]]
        .iter()
        .map(|m| display(m))
        .collect();
    assert_eq!(a_uses, ["b"]);
}

#[test]
fn top_level_modules_that_import_each_other_through_different_children_are_a_ring() {
    let root = scratch_crate(
        "top-ring",
        &[
            ("lib.rs", "pub mod a;\npub mod b;\n"),
            ("a/mod.rs", "pub mod w;\npub mod x;\n"),
            ("a/w.rs", "pub struct W;\n"),
            ("a/x.rs", "pub struct X(crate::b::y::Y);\n"),
            ("b/mod.rs", "pub mod y;\npub mod z;\n"),
            ("b/y.rs", "pub struct Y;\n"),
            ("b/z.rs", "pub struct Z(crate::a::w::W);\n"),
        ],
    );
    let graph = read_crate(&root).expect("the crate reads");
    assert!(graph.cycles().is_empty(), "no ring of modules");
    let rings: Vec<Vec<String>> = graph
        .rings()
        .iter()
        .map(|c| c.iter().map(|m| display(m)).collect())
        .collect();
    assert_eq!(rings, [["a", "b"]]);
}
