//! The layout rule ARCHITECTURE.md states: no two modules of `src/` import
//! each other (a module's file, with its inline `mod tests`, counts as one).
//!
//! An import is any path starting with `crate::`, `super::` or `self::` in
//! code (comments and string literals are skipped), grouped `{…}` imports
//! included, resolved to the innermost module file it names. Three kinds of
//! path do not count: `$crate::` paths in macro bodies (they belong where
//! the macro is expanded), paths into the crate root `lib.rs` (its `pub use`
//! lines are a facade for users outside the crate), and `src/main.rs` (the
//! binary, a user of the library).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Pairs that import each other today and are being untangled elsewhere.
/// The test fails when a listed pair no longer does: then drop its line.
const KNOWN: &[(&str, &str)] = &[];

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
        let base = match w.as_str() {
            "crate" if i == 0 || c[i - 1] != '$' => Some(Vec::new()),
            "self" => Some(here),
            "super" => Some(here[..here.len().saturating_sub(1)].to_vec()),
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

#[test]
fn no_two_modules_import_each_other() {
    let mut files = BTreeMap::new();
    modules(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &[],
        &mut files,
    );
    let graph: BTreeMap<&Module, BTreeSet<Module>> = files
        .iter()
        .map(|(m, text)| (m, imports(m, text, &files)))
        .collect();
    let name = |m: &Module| m.join("/");
    let mut pairs = BTreeSet::new();
    for (a, deps) in &graph {
        for b in deps {
            if *a < b && graph.get(b).is_some_and(|d| d.contains(*a)) {
                pairs.insert((name(a), name(b)));
            }
        }
    }
    let known: BTreeSet<(String, String)> = KNOWN
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let new: Vec<_> = pairs.difference(&known).collect();
    assert!(new.is_empty(), "modules that import each other: {new:?}");
    let gone: Vec<_> = known.difference(&pairs).collect();
    assert!(
        gone.is_empty(),
        "no longer import each other, remove from KNOWN: {gone:?}"
    );
    // The check sees imports at all: the harness uses the reference's rule.
    assert!(
        graph[&vec!["harness".to_string(), "case".to_string()]]
            .contains(&vec!["reference".to_string()])
    );
}
