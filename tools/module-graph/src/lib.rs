//! The import graph of one crate, module by module, and its cycles.
//!
//! Cargo keeps the workspace's crates in layers (a crate cannot depend on one that depends
//! on it); this crate does the same for the modules inside each crate. It parses every
//! module of a crate (following `mod` declarations from `lib.rs` or `main.rs`), resolves
//! every path that names something of the crate (`use crate::a::B`, `super::c`, a path
//! through an imported name) to the module that *defines* it, seeing through `pub use`
//! re-exports, and reports the strongly connected components of the resulting graph: each
//! is a set of modules that import each other in a ring. It reports them again with each
//! top-level module standing for everything under it, so that two top-level modules that
//! import each other through different children are a ring too.
//!
//! Rules, chosen so that a cycle found is one a reader would call a cycle:
//! - a module depends on the module that defines what it names, not on a parent that only
//!   re-exports it;
//! - a parent's `mod child;` and its `pub use child::Item;` are not dependencies;
//! - test code (`#[cfg(test)]` items) is left out: tests may look anywhere;
//! - names inside macro invocations are not seen (they are tokens, not paths).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// A module's path inside its crate, without `crate`: `["guest", "worker"]`.
pub type ModulePath = Vec<String>;

/// One crate's modules and who imports whom.
#[derive(Debug, Default)]
pub struct ModuleGraph {
    /// Every module, with the file that holds it.
    pub modules: BTreeMap<ModulePath, PathBuf>,
    /// `edges[a]` holds every module `a` depends on.
    pub edges: BTreeMap<ModulePath, BTreeSet<ModulePath>>,
    /// For each edge, the first path (as written) that made it.
    pub reasons: BTreeMap<(ModulePath, ModulePath), String>,
}

/// Why a crate could not be read.
#[derive(Debug)]
pub struct ReadError {
    /// The file.
    pub file: PathBuf,
    /// What went wrong.
    pub reason: String,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.reason)
    }
}

impl std::error::Error for ReadError {}

/// What one module's file says: the names it brings in, what it re-exports, what it names.
#[derive(Default)]
struct ModuleFacts {
    /// `use` declarations: local name -> the path it stands for (as written, unresolved).
    imports: HashMap<String, Vec<String>>,
    /// Glob imports (`use a::b::*`): the paths of the modules globbed.
    globs: Vec<Vec<String>>,
    /// `pub use` names: exported name -> the path it stands for.
    reexports: HashMap<String, Vec<String>>,
    /// Every path the module's code names (uses and paths in code), as written.
    references: Vec<Vec<String>>,
    /// The child modules it declares with `mod`.
    children: BTreeSet<String>,
}

/// Reads the crate whose root file is `root` (`src/lib.rs` or `src/main.rs`).
pub fn read_crate(root: &Path) -> Result<ModuleGraph, ReadError> {
    let mut facts: BTreeMap<ModulePath, ModuleFacts> = BTreeMap::new();
    let mut graph = ModuleGraph::default();
    let mut pending = vec![(Vec::new(), root.to_path_buf(), true)];
    while let Some((module, file, owns_dir)) = pending.pop() {
        let text = std::fs::read_to_string(&file).map_err(|e| ReadError {
            file: file.clone(),
            reason: e.to_string(),
        })?;
        let parsed = syn::parse_file(&text).map_err(|e| ReadError {
            file: file.clone(),
            reason: format!("does not parse: {e}"),
        })?;
        let mut module_facts = ModuleFacts::default();
        collect_items(&parsed.items, &mut module_facts);
        // A file `a.rs` keeps its children in `a/`; `lib.rs`, `main.rs` and `mod.rs` in
        // their own directory.
        let dir = if owns_dir {
            file.parent().map(Path::to_path_buf).unwrap_or_default()
        } else {
            file.with_extension("")
        };
        for child in &module_facts.children {
            let mut path = module.clone();
            path.push(child.clone());
            let flat = dir.join(format!("{child}.rs"));
            let nested = dir.join(child).join("mod.rs");
            if flat.exists() {
                pending.push((path, flat, false));
            } else if nested.exists() {
                pending.push((path, nested, true));
            } else {
                return Err(ReadError {
                    file: file.clone(),
                    reason: format!("module `{child}` has no file"),
                });
            }
        }
        graph.modules.insert(module.clone(), file);
        facts.insert(module, module_facts);
    }
    for (module, module_facts) in &facts {
        let resolver = Resolver {
            facts: &facts,
            modules: &graph.modules,
        };
        let mut targets = BTreeSet::new();
        for reference in &module_facts.references {
            if let Some(target) = resolver.defining_module(module, reference, 0)
                && &target != module
            {
                graph
                    .reasons
                    .entry((module.clone(), target.clone()))
                    .or_insert_with(|| reference.join("::"));
                targets.insert(target);
            }
        }
        graph.edges.insert(module.clone(), targets);
    }
    Ok(graph)
}

impl ModuleGraph {
    /// The sets of modules that import each other in a ring (strongly connected components
    /// of more than one module), each sorted, in a stable order.
    pub fn cycles(&self) -> Vec<Vec<ModulePath>> {
        let nodes: Vec<&ModulePath> = self.modules.keys().collect();
        let index: HashMap<&ModulePath, usize> =
            nodes.iter().enumerate().map(|(i, m)| (*m, i)).collect();
        let successors: Vec<Vec<usize>> = nodes
            .iter()
            .map(|m| {
                self.edges
                    .get(*m)
                    .into_iter()
                    .flatten()
                    .filter_map(|t| index.get(t).copied())
                    .collect()
            })
            .collect();
        let mut components: Vec<Vec<ModulePath>> = strongly_connected(&successors)
            .into_iter()
            .filter(|c| c.len() > 1)
            .map(|c| {
                let mut c: Vec<ModulePath> = c.into_iter().map(|i| nodes[i].clone()).collect();
                c.sort();
                c
            })
            .collect();
        components.sort();
        components
    }
}

impl ModuleGraph {
    /// The graph as the crate's root sees it: each top-level module stands for itself and
    /// every module under it, and an edge between two modules under different top-level
    /// modules is an edge between those.
    pub fn top_level(&self) -> ModuleGraph {
        let top = |m: &ModulePath| m.iter().take(1).cloned().collect::<ModulePath>();
        let mut graph = ModuleGraph::default();
        for (module, file) in &self.modules {
            if module.len() <= 1 {
                graph.modules.insert(module.clone(), file.clone());
            }
        }
        for (from, targets) in &self.edges {
            for to in targets {
                let (a, b) = (top(from), top(to));
                if a == b {
                    continue;
                }
                graph
                    .reasons
                    .entry((a.clone(), b.clone()))
                    .or_insert_with(|| {
                        let why = &self.reasons[&(from.clone(), to.clone())];
                        format!("{} -> {}: {why}", display(from), display(to))
                    });
                graph.edges.entry(a).or_default().insert(b);
            }
        }
        graph
    }

    /// Every ring of the crate: of modules ([`Self::cycles`]), then of top-level modules
    /// that import each other only through different children (`a::x` uses `b::y` and
    /// `b::z` uses `a::w`), which no module-by-module ring shows.
    pub fn rings(&self) -> Vec<Vec<ModulePath>> {
        let mut rings = self.cycles();
        for ring in self.top_level().cycles() {
            if !rings.contains(&ring) {
                rings.push(ring);
            }
        }
        rings
    }
}

/// Writes a module path as Rust does: `guest::worker`, or `crate` for the root.
pub fn display(module: &[String]) -> String {
    if module.is_empty() {
        "crate".to_owned()
    } else {
        module.join("::")
    }
}

/// Tarjan's algorithm, iterative (a crate's graph is small, but recursion is not needed).
fn strongly_connected(successors: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = successors.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut components = Vec::new();
    let mut next = 0;
    for start in 0..n {
        if index[start] != usize::MAX {
            continue;
        }
        // (node, position in its successor list)
        let mut work = vec![(start, 0)];
        index[start] = next;
        low[start] = next;
        next += 1;
        stack.push(start);
        on_stack[start] = true;
        while let Some(&mut (v, ref mut i)) = work.last_mut() {
            if let Some(&w) = successors[v].get(*i) {
                *i += 1;
                if index[w] == usize::MAX {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                work.pop();
                if let Some(&(parent, _)) = work.last() {
                    low[parent] = low[parent].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut component = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        component.push(w);
                        if w == v {
                            break;
                        }
                    }
                    components.push(component);
                }
            }
        }
    }
    components
}

/// Resolves written paths to the module that defines what they name.
struct Resolver<'a> {
    facts: &'a BTreeMap<ModulePath, ModuleFacts>,
    modules: &'a BTreeMap<ModulePath, PathBuf>,
}

impl Resolver<'_> {
    /// The module that defines what `path`, written in `module`, names; `None` for names
    /// outside the crate.
    fn defining_module(
        &self,
        module: &ModulePath,
        path: &[String],
        depth: usize,
    ) -> Option<ModulePath> {
        let absolute = self.absolute(module, path, depth)?;
        self.definer(absolute, depth)
    }

    /// `path`, written in `module`, as a path from the crate's root.
    fn absolute(&self, module: &ModulePath, path: &[String], depth: usize) -> Option<Vec<String>> {
        if depth > 16 {
            return None;
        }
        let (first, rest) = path.split_first()?;
        let facts = self.facts.get(module)?;
        match first.as_str() {
            "crate" => Some(rest.to_vec()),
            "self" => Some(module.iter().chain(rest).cloned().collect()),
            "super" => {
                let mut parent = module.clone();
                parent.pop()?;
                self.absolute(&parent, &[&["self".to_owned()], rest].concat(), depth + 1)
            }
            name if facts.children.contains(name) => {
                Some(module.iter().chain(path).cloned().collect())
            }
            name => {
                if let Some(target) = facts.imports.get(name) {
                    let base = self.absolute(module, target, depth + 1)?;
                    return Some(base.into_iter().chain(rest.iter().cloned()).collect());
                }
                // A name from a glob import of one of the crate's modules.
                for glob in &facts.globs {
                    let Some(base) = self.absolute(module, glob, depth + 1) else {
                        continue;
                    };
                    if self.modules.contains_key(&base) {
                        let candidate: Vec<String> =
                            base.into_iter().chain(path.iter().cloned()).collect();
                        return Some(candidate);
                    }
                }
                None
            }
        }
    }

    /// The module that defines the item at `absolute`, seeing through re-exports.
    fn definer(&self, absolute: Vec<String>, depth: usize) -> Option<ModulePath> {
        if depth > 16 {
            return None;
        }
        // The longest prefix that is a module.
        let mut length = absolute.len();
        while !self.modules.contains_key(&absolute[..length]) {
            length = length.checked_sub(1)?;
        }
        let module: ModulePath = absolute[..length].to_vec();
        if let Some(name) = absolute.get(length)
            && let Some(target) = self.facts.get(&module).and_then(|f| f.reexports.get(name))
        {
            let rest = &absolute[length + 1..];
            // (A re-export of another crate's item: no module of this crate defines it.)
            let base = self.absolute(&module, target, depth + 1)?;
            let through: Vec<String> = base.into_iter().chain(rest.iter().cloned()).collect();
            return self.definer(through, depth + 1);
        }
        Some(module)
    }
}

/// Whether the attributes say `#[cfg(test)]`.
fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Ident>()
                .is_ok_and(|ident| ident == "test")
    })
}

/// Whether a `use` is visible to other modules (`pub`, `pub(crate)`, `pub(super)`).
fn is_exported(vis: &syn::Visibility) -> bool {
    !matches!(vis, syn::Visibility::Inherited)
}

fn collect_items(items: &[syn::Item], facts: &mut ModuleFacts) {
    for item in items {
        if is_test_only(item_attrs(item)) {
            continue;
        }
        match item {
            syn::Item::Mod(m) if m.content.is_none() => {
                facts.children.insert(m.ident.to_string());
            }
            syn::Item::Use(u) => {
                let mut leaves = Vec::new();
                flatten_use(&u.tree, &mut Vec::new(), &mut leaves);
                for (alias, path) in leaves {
                    match alias {
                        UseLeaf::Name(name) => {
                            if is_exported(&u.vis) {
                                facts.reexports.insert(name.clone(), path.clone());
                            } else {
                                // A re-export is not a dependency of the module that makes it;
                                // a private import is.
                                facts.references.push(path.clone());
                            }
                            facts.imports.insert(name, path);
                        }
                        UseLeaf::Glob => {
                            if !is_exported(&u.vis) {
                                facts.references.push(path.clone());
                            }
                            facts.globs.push(path);
                        }
                    }
                }
            }
            other => {
                let mut visitor = PathCollector { facts };
                visitor.visit_item(other);
            }
        }
    }
}

fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    match item {
        syn::Item::Const(i) => &i.attrs,
        syn::Item::Enum(i) => &i.attrs,
        syn::Item::ExternCrate(i) => &i.attrs,
        syn::Item::Fn(i) => &i.attrs,
        syn::Item::ForeignMod(i) => &i.attrs,
        syn::Item::Impl(i) => &i.attrs,
        syn::Item::Macro(i) => &i.attrs,
        syn::Item::Mod(i) => &i.attrs,
        syn::Item::Static(i) => &i.attrs,
        syn::Item::Struct(i) => &i.attrs,
        syn::Item::Trait(i) => &i.attrs,
        syn::Item::TraitAlias(i) => &i.attrs,
        syn::Item::Type(i) => &i.attrs,
        syn::Item::Union(i) => &i.attrs,
        syn::Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

enum UseLeaf {
    /// A name brought into scope (the last segment, or its `as` rename).
    Name(String),
    /// `*`.
    Glob,
}

fn flatten_use(
    tree: &syn::UseTree,
    prefix: &mut Vec<String>,
    out: &mut Vec<(UseLeaf, Vec<String>)>,
) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            flatten_use(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let name = n.ident.to_string();
            if name == "self" {
                if let Some(last) = prefix.last() {
                    out.push((UseLeaf::Name(last.clone()), prefix.clone()));
                }
            } else {
                let mut path = prefix.clone();
                path.push(name.clone());
                out.push((UseLeaf::Name(name), path));
            }
        }
        syn::UseTree::Rename(r) => {
            let mut path = prefix.clone();
            if r.ident != "self" {
                path.push(r.ident.to_string());
            }
            out.push((UseLeaf::Name(r.rename.to_string()), path));
        }
        syn::UseTree::Glob(_) => out.push((UseLeaf::Glob, prefix.clone())),
        syn::UseTree::Group(g) => {
            for tree in &g.items {
                flatten_use(tree, prefix, out);
            }
        }
    }
}

/// Collects every path named in code, skipping test-only items and inline test modules.
struct PathCollector<'a> {
    facts: &'a mut ModuleFacts,
}

impl<'ast> Visit<'ast> for PathCollector<'_> {
    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.segments.len() > 1 || path.leading_colon.is_none() {
            self.facts
                .references
                .push(path.segments.iter().map(|s| s.ident.to_string()).collect());
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_item(&mut self, item: &'ast syn::Item) {
        if is_test_only(item_attrs(item)) {
            return;
        }
        if let syn::Item::Use(u) = item {
            // A `use` inside a function body: a dependency of this module.
            let mut leaves = Vec::new();
            flatten_use(&u.tree, &mut Vec::new(), &mut leaves);
            for (leaf, path) in leaves {
                if let UseLeaf::Name(name) = leaf {
                    self.facts
                        .imports
                        .entry(name)
                        .or_insert_with(|| path.clone());
                }
                self.facts.references.push(path);
            }
            return;
        }
        syn::visit::visit_item(self, item);
    }

    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {
        // (`pub(super)` names where an item is seen, not something it uses.)
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if is_test_only(&f.attrs) {
            return;
        }
        syn::visit::visit_impl_item_fn(self, f);
    }
}
