//! The layout rule ARCHITECTURE.md states: the modules of `src/` import
//! each other in no circle of any length (`a → b → a`, `a → b → c → a`, …;
//! a module's file, with its inline `mod tests`, counts as one).
//!
//! An import is any path in code (comments and string literals are skipped)
//! starting with `crate::`, `super::`, `self::` or the name of a child
//! module (`isa::Lit` in `threaded/mod.rs`), grouped `{…}` imports
//! included, resolved to the innermost module file it names. A `mod child;`
//! declaration is not an import. Three kinds of path do not count:
//! `$crate::` paths in macro bodies (they belong where the macro is
//! expanded), paths into the crate root `lib.rs` (its `pub use` lines are a
//! facade for users outside the crate), and `src/main.rs` (the binary, a
//! user of the library).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Module = Vec<String>;

/// Every module file under `src/`, by module path (`lib.rs` is `[]`).
fn modules(dir: &Path, prefix: &[String], out: &mut BTreeMap<Module, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            let mut inner = prefix.to_vec();
            inner.push(name);
            modules(&path, &inner, out);
        } else if let Some(stem) = name.strip_suffix(".rs") {
            let mut module = prefix.to_vec();
            if prefix.is_empty() && stem == "main" {
                continue;
            }
            if !matches!(stem, "mod" | "lib") {
                module.push(stem.to_string());
            }
            out.insert(module, std::fs::read_to_string(&path).unwrap());
        }
    }
}

/// `text` with comments, string and character literals blanked out, so
/// that only code is left (line structure and braces of code kept).
fn code_only(text: &str) -> Vec<char> {
    let c: Vec<char> = text.chars().collect();
    let mut out = c.clone();
    let blank = |out: &mut Vec<char>, from: usize, to: usize| {
        for ch in &mut out[from..to.min(c.len())] {
            if *ch != '\n' {
                *ch = ' ';
            }
        }
    };
    let ident = |i: usize| i < c.len() && (c[i].is_alphanumeric() || c[i] == '_');
    let mut i = 0;
    while i < c.len() {
        let rest = &c[i..];
        if rest.starts_with(&['/', '/']) {
            let end = (i..c.len()).find(|&j| c[j] == '\n').unwrap_or(c.len());
            blank(&mut out, i, end);
            i = end;
        } else if rest.starts_with(&['/', '*']) {
            let (mut depth, mut j) = (1, i + 2);
            while j < c.len() && depth > 0 {
                if c[j..].starts_with(&['/', '*']) {
                    depth += 1;
                    j += 1;
                } else if c[j..].starts_with(&['*', '/']) {
                    depth -= 1;
                    j += 1;
                }
                j += 1;
            }
            blank(&mut out, i, j);
            i = j;
        } else if (c[i] == 'r' || (c[i] == 'b' && rest.get(1) == Some(&'r')))
            && !(i > 0 && ident(i - 1))
            && {
                let r = if c[i] == 'r' { i + 1 } else { i + 2 };
                let hashes = c[r..].iter().take_while(|&&h| h == '#').count();
                c.get(r + hashes) == Some(&'"')
            }
        {
            // A raw string: r"…", r#"…"#, br"…".
            let r = if c[i] == 'r' { i + 1 } else { i + 2 };
            let hashes = c[r..].iter().take_while(|&&h| h == '#').count();
            let mut j = r + hashes + 1;
            while j < c.len() && !(c[j] == '"' && c[j + 1..].iter().take(hashes).all(|&h| h == '#'))
            {
                j += 1;
            }
            let end = j + 1 + hashes;
            blank(&mut out, i, end);
            i = end;
        } else if c[i] == '"' {
            let mut j = i + 1;
            while j < c.len() && c[j] != '"' {
                j += if c[j] == '\\' { 2 } else { 1 };
            }
            blank(&mut out, i, j + 1);
            i = j + 1;
        } else if c[i] == '\'' {
            // A character literal ('x', '\n', '\u{7f}'), not a lifetime.
            let end = if rest.get(1) == Some(&'\\') {
                (i + 2..c.len()).find(|&j| c[j] == '\'').map(|j| j + 1)
            } else if rest.get(2) == Some(&'\'') {
                Some(i + 3)
            } else {
                None
            };
            match end {
                Some(end) => {
                    blank(&mut out, i, end);
                    i = end;
                }
                None => i += 1,
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The word at `i` (identifier characters), if one starts there.
fn word(c: &[char], i: usize) -> Option<String> {
    let starts = i < c.len()
        && (c[i].is_alphabetic() || c[i] == '_')
        && (i == 0 || !(c[i - 1].is_alphanumeric() || c[i - 1] == '_'));
    starts.then(|| {
        c[i..]
            .iter()
            .take_while(|ch| ch.is_alphanumeric() || **ch == '_')
            .collect()
    })
}

/// Whether the word at `i` continues a path (`::` before it), so it names
/// something inside another module, not a child of this one.
fn after_path_separator(c: &[char], i: usize) -> bool {
    let before: String = c[..i]
        .iter()
        .rev()
        .skip_while(|ch| ch.is_whitespace())
        .take(2)
        .collect();
    before == "::"
}

fn skip_space(c: &[char], mut i: usize) -> usize {
    while i < c.len() && c[i].is_whitespace() {
        i += 1;
    }
    i
}

/// The paths of a `::`-path starting at `i` (just after its first word),
/// each completed from `prefix`; grouped imports give several.
fn paths(c: &[char], mut i: usize, prefix: Module, out: &mut Vec<Module>) -> usize {
    let mut path = prefix;
    loop {
        let j = skip_space(c, i);
        if !c[j..].starts_with(&[':', ':']) {
            out.push(path);
            return i;
        }
        i = skip_space(c, j + 2);
        if c.get(i) == Some(&'{') {
            i += 1;
            loop {
                i = skip_space(c, i);
                match c.get(i) {
                    Some('}') => return i + 1,
                    Some(',') => i += 1,
                    _ => match word(c, i) {
                        Some(w) => {
                            let mut inner = path.clone();
                            match w.as_str() {
                                "super" => drop(inner.pop()),
                                "self" => {}
                                _ => inner.push(w.clone()),
                            }
                            i = paths(c, i + w.chars().count(), inner, out);
                            // `as alias` and anything else up to `,` or `}`.
                            while i < c.len() && !matches!(c[i], ',' | '}') {
                                i += 1;
                            }
                        }
                        None => i += 1,
                    },
                }
            }
        }
        match word(c, i) {
            Some(w) => {
                i += w.chars().count();
                match w.as_str() {
                    "super" => drop(path.pop()),
                    "self" => {}
                    _ => path.push(w),
                }
            }
            None => {
                out.push(path);
                return i;
            }
        }
    }
}

/// The module files `text` (module `me`) refers to.
fn imports(me: &Module, text: &str, files: &BTreeMap<Module, String>) -> BTreeSet<Module> {
    let c = code_only(text);
    let mut inline: Vec<(String, usize)> = Vec::new(); // (name, brace depth inside)
    let mut depth = 0;
    let mut found = Vec::new();
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '{' => depth += 1,
            '}' => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth -= 1;
            }
            _ => {}
        }
        let Some(w) = word(&c, i) else {
            i += 1;
            continue;
        };
        let next = i + w.chars().count();
        if w == "mod" {
            let j = skip_space(&c, next);
            if let Some(name) = word(&c, j) {
                let k = skip_space(&c, j + name.chars().count());
                if c.get(k) == Some(&'{') {
                    inline.push((name, depth + 1));
                }
            }
        }
        let here: Module = me
            .iter()
            .cloned()
            .chain(inline.iter().map(|(n, _)| n.clone()))
            .collect();
        let mut child = here.clone();
        child.push(w.clone());
        let base = match w.as_str() {
            "crate" if i == 0 || c[i - 1] != '$' => Some(Vec::new()),
            "self" => Some(here),
            "super" => Some(here[..here.len().saturating_sub(1)].to_vec()),
            // A path into a child module, relative to this one (`isa::Lit`).
            _ if files.contains_key(&child) && !after_path_separator(&c, i) => Some(child),
            _ => None,
        };
        if let Some(base) = base
            && c[skip_space(&c, next)..].starts_with(&[':', ':'])
        {
            let mut raw = Vec::new();
            i = paths(&c, next, base, &mut raw);
            found.extend(raw);
            continue;
        }
        i = next;
    }
    found
        .into_iter()
        .filter_map(|path| {
            (0..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|m| files.contains_key(m))
        })
        .filter(|m| !m.is_empty() && m != me)
        .collect()
}

/// Every module file's imports, by module path.
fn graph(files: &BTreeMap<Module, String>) -> BTreeMap<Module, BTreeSet<Module>> {
    files
        .iter()
        .map(|(m, text)| (m.clone(), imports(m, text, files)))
        .collect()
}

/// One circle of imports through each back edge a depth-first walk of
/// `graph` meets, each as its modules in import order (the first imports
/// the second, …, the last imports the first); none when the graph has no
/// cycle of any length.
fn cycles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    fn visit<'g>(
        m: &'g Module,
        graph: &'g BTreeMap<Module, BTreeSet<Module>>,
        marks: &mut BTreeMap<&'g Module, Mark>,
        path: &mut Vec<&'g Module>,
        found: &mut Vec<Vec<Module>>,
    ) {
        marks.insert(m, Mark::OnPath);
        path.push(m);
        for next in graph.get(m).into_iter().flatten() {
            match marks.get(next).copied().unwrap_or(Mark::New) {
                Mark::New => visit(next, graph, marks, path, found),
                Mark::OnPath => {
                    let from = path.iter().position(|p| *p == next).unwrap();
                    found.push(path[from..].iter().map(|p| p.to_vec()).collect());
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks.insert(m, Mark::Done);
    }
    let mut marks = BTreeMap::new();
    let mut found = Vec::new();
    for m in graph.keys() {
        if marks.get(m).copied().unwrap_or(Mark::New) == Mark::New {
            visit(m, graph, &mut marks, &mut Vec::new(), &mut found);
        }
    }
    found
}

/// `a → b → c → a`, as a reader of a failure reads it.
fn show(cycle: &[Module]) -> String {
    let mut names: Vec<String> = cycle.iter().map(|m| m.join("/")).collect();
    names.push(names[0].clone());
    names.join(" → ")
}

#[test]
fn no_modules_import_each_other_in_a_circle() {
    let mut files = BTreeMap::new();
    modules(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &[],
        &mut files,
    );
    let graph = graph(&files);
    let found: Vec<String> = cycles(&graph).iter().map(|c| show(c)).collect();
    assert!(
        found.is_empty(),
        "modules import each other in a circle:\n{}",
        found.join("\n")
    );
    // The check sees imports at all: the harness uses the reference's rule.
    assert!(
        graph[&vec!["harness".to_string(), "case".to_string()]]
            .contains(&vec!["reference".to_string()])
    );
}

/// Module texts by path, as `modules` reads them from `src/`.
fn synthetic(texts: &[(&str, &str)]) -> BTreeMap<Module, String> {
    texts
        .iter()
        .map(|(path, text)| {
            let module = path.split('/').map(str::to_string).collect();
            (module, text.to_string())
        })
        .collect()
}

fn module(path: &str) -> Module {
    path.split('/').map(str::to_string).collect()
}

#[test]
fn a_circle_of_three_modules_is_found_in_order() {
    let files = synthetic(&[
        ("a", "use crate::b::B;\npub struct A;"),
        ("b", "use super::c::C;\npub struct B;"),
        (
            "c",
            "pub struct C;\npub fn a() -> crate::a::A { crate::a::A }",
        ),
        ("d", "use crate::{a::A, c::C};"),
    ]);
    let found = cycles(&graph(&files));
    assert_eq!(found, vec![vec![module("a"), module("b"), module("c")]]);
    assert_eq!(show(&found[0]), "a → b → c → a");
    // Without the last edge of the circle, nothing is reported.
    let files = synthetic(&[
        ("a", "use crate::b::B;"),
        ("b", "use super::c::C;"),
        ("c", "pub struct C;"),
        ("d", "use crate::{a::A, c::C};"),
    ]);
    assert!(cycles(&graph(&files)).is_empty());
}

#[test]
fn a_parent_and_its_child_module_are_a_circle_only_through_paths() {
    // `mod child;` is a declaration, not an import.
    let declared = synthetic(&[
        ("family", "mod child;\npub struct Core;"),
        ("family/child", "use super::Core;"),
    ]);
    assert!(cycles(&graph(&declared)).is_empty());
    // A path into the child, bare or through `self::`, is one.
    for path in ["child::Item", "self::child::Item"] {
        let used = synthetic(&[
            (
                "family",
                &format!("mod child;\npub use {path};\npub struct Core;"),
            ),
            ("family/child", "use super::Core;\npub struct Item;"),
        ]);
        assert_eq!(
            cycles(&graph(&used)),
            vec![vec![module("family"), module("family/child")]],
            "{path}"
        );
    }
}
