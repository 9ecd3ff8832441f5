//! The WIT of a component, as text: decoded from the component by the Bytecode Alliance's
//! wit-parser and printed by wit-component's printer (the same text as `wasm-tools
//! component wit`), and the export that answers for an interface named with or without its
//! version. `dhost inspect` prints it, and a node serves it to clients (`dhost:node/describe`)
//! for its own guests and its published modules.

use anyhow::Context as _;
use std::path::Path;

/// The WIT of the component in the file at `path` (binary, or `.wat` text).
pub fn file_wit_text(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).context("cannot read it")?;
    let bytes = if path.extension().is_some_and(|e| e == "wat") {
        wat::parse_bytes(&bytes)
            .context("it is not valid WAT text")?
            .into_owned()
    } else {
        bytes
    };
    wit_text(&bytes)
}

/// The WIT of the component in `bytes`: its world (in the package `root:component`) and
/// every package it uses, nested.
pub fn wit_text(bytes: &[u8]) -> anyhow::Result<String> {
    super::wasm::check_component(bytes)?;
    let decoded =
        wit_parser::decoding::decode(bytes).context("cannot decode the component's WIT")?;
    let resolve = decoded.resolve();
    let main = decoded.package();
    let nested: Vec<_> = resolve
        .packages
        .iter()
        .map(|(id, _)| id)
        .filter(|id| *id != main)
        .collect();
    let mut printer = wit_component::WitPrinter::default();
    printer
        .print(resolve, main, &nested)
        .context("cannot print the component's WIT")?;
    let mut text = printer.output.to_string();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// What exports `interface`, among `(export name, what)` pairs: the export of that name, or
/// else the one export of that name with a version (`name@VERSION`), if there is one.
pub fn find_export<'e, T>(exports: &'e [(&str, T)], interface: &str) -> Option<&'e T> {
    if let Some((_, found)) = exports.iter().find(|(name, _)| *name == interface) {
        return Some(found);
    }
    let mut versioned = exports.iter().filter(|(name, _)| {
        name.split_once('@')
            .is_some_and(|(unversioned, _)| unversioned == interface)
    });
    match (versioned.next(), versioned.next()) {
        (Some((_, found)), None) => Some(found),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interface_is_found_by_its_name_with_or_without_its_version() {
        let exports = [
            ("dhost:kv/store", 1),
            ("wasi:cli/run@0.2.6", 2),
            ("a:b/c@1.0.0", 3),
            ("a:b/c@2.0.0", 4),
        ];
        let find = |name| find_export(&exports, name).copied();
        assert_eq!(find("dhost:kv/store"), Some(1));
        assert_eq!(find("wasi:cli/run"), Some(2));
        assert_eq!(find("wasi:cli/run@0.2.6"), Some(2));
        // Two versions: which one is meant cannot be told.
        assert_eq!(find("a:b/c"), None);
        assert_eq!(find("a:b/c@2.0.0"), Some(4));
        assert_eq!(find("dhost:kv"), None);
    }
}
