//! A crate's module graph from its source text: each file is a module (`lib.rs`, `a.rs` or
//! `a/mod.rs`, `a/b.rs`); an edge goes from a file to every module it names through a
//! `crate::` or `super::` path (in `use` trees and in code), comments and inline `#[cfg(test)]`
//! modules aside. A module and the modules inside it are one unit, so only edges between siblings
//! count: `a::x → b::y` is an edge `a → b` under their common parent. A circle among the
//! siblings under any parent is reported.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type AnyError = Box<dyn std::error::Error>;

/// Every file under `dir` whose name ends with `suffix` (`.rs`, `.md`), build output and
/// hidden folders aside.
pub fn files_ending(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>, AnyError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if path.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    stack.push(path);
                }
            } else if name.ends_with(suffix) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The module path of a file under `src` (`lib.rs`/`main.rs` → `[]`).
fn module_of(src: &Path, file: &Path) -> Option<Vec<String>> {
    let relative = file.strip_prefix(src).ok()?;
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop()?;
    let stem = last.strip_suffix(".rs")?;
    if parts.is_empty() && matches!(stem, "lib" | "main") {
        return Some(parts);
    }
    if parts.first().is_some_and(|p| p == "bin") {
        return None;
    }
    if stem != "mod" {
        parts.push(stem.to_string());
    }
    Some(parts)
}

/// The code: no comments (doc links name modules without using them), no inline test
/// module.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths a `use` tree names, expanded (`a::{b, c::d}` → `a::b`, `a::c::d`).
fn expand(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head = tree[..open].trim().trim_end_matches("::");
        let inner = tree[open + 1..tree.rfind('}').unwrap_or(tree.len())].to_string();
        let base = join(prefix, head);
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&base, &inner[start..i], out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand(&base, &inner[start..], out);
    } else if !tree.is_empty() {
        let path = tree.split(" as ").next().unwrap_or(tree).trim();
        out.push(join(prefix, path));
    }
}

fn join(prefix: &str, path: &str) -> String {
    match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_string(),
        (_, true) => prefix.to_string(),
        _ => format!("{prefix}::{path}"),
    }
}

/// Every `crate::…` and `super::…` path in `text`: `use` trees expanded, and plain paths.
fn paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("use ") {
        let before_ok = at == 0 || !rest[..at].ends_with(is_ident);
        let after = &rest[at + 4..];
        let end = after.find(';').unwrap_or(after.len());
        let tree = &after[..end];
        if before_ok && (tree.starts_with("crate::") || tree.starts_with("super::")) {
            expand("", tree, &mut out);
        }
        rest = &after[end.min(after.len())..];
    }
    for anchor in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(at) = text[from..].find(anchor) {
            let start = from + at;
            from = start + anchor.len();
            if start > 0 && text[..start].ends_with(|c: char| is_ident(c) || c == ':') {
                continue;
            }
            let path: String = text[start..]
                .chars()
                .take_while(|c| is_ident(*c) || *c == ':')
                .collect();
            out.push(path.trim_end_matches(':').to_string());
        }
    }
    out
}

/// The module a path names from the module `at`: the longest known module prefix.
fn resolve(at: &[String], path: &str, known: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut base: Vec<String> = match segments.first() {
        Some(&"crate") => {
            segments.remove(0);
            Vec::new()
        }
        Some(&"super") => {
            let mut base = at.to_vec();
            while segments.first() == Some(&"super") {
                segments.remove(0);
                base.pop()?;
            }
            base
        }
        _ => return None,
    };
    let mut best = base.clone();
    for segment in segments {
        base.push(segment.to_string());
        if known.contains(&base) {
            best = base.clone();
        } else {
            break;
        }
    }
    Some(best)
}

/// The circles among sibling modules of the crate whose source folder is `src`, each as
/// `parent: a → b → a`.
pub fn circles(src: &Path) -> Result<Vec<String>, AnyError> {
    let mut modules = BTreeMap::new();
    for file in files_ending(src, ".rs")? {
        if let Some(module) = module_of(src, &file) {
            modules.insert(module, std::fs::read_to_string(&file)?);
        }
    }
    let known: BTreeSet<Vec<String>> = modules.keys().cloned().collect();
    // parent → (child → children it points to)
    let mut graphs: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (module, text) in &modules {
        for path in paths(&code(text)) {
            let Some(target) = resolve(module, &path, &known) else {
                continue;
            };
            let common = module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            if common == module.len() || common == target.len() {
                continue; // one holds the other
            }
            graphs
                .entry(module[..common].to_vec())
                .or_default()
                .entry(module[common].clone())
                .or_default()
                .insert(target[common].clone());
        }
    }
    let mut found = Vec::new();
    for (parent, graph) in &graphs {
        for circle in cycles_in(graph) {
            found.push(format!("{}: {}", parent_name(parent), circle.join(" → ")));
        }
    }
    Ok(found)
}

fn parent_name(parent: &[String]) -> String {
    match parent.is_empty() {
        true => "crate".into(),
        false => format!("crate::{}", parent.join("::")),
    }
}

/// One circle through each strongly connected group of more than one node.
fn cycles_in(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let mut reported: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    for start in graph.keys() {
        if reported.contains(start) {
            continue;
        }
        // Breadth-first from start's successors back to start: the shortest circle.
        let mut previous: BTreeMap<String, String> = BTreeMap::new();
        let mut queue: std::collections::VecDeque<String> = std::collections::VecDeque::new();
        queue.push_back(start.clone());
        let mut closed = None;
        while let Some(node) = queue.pop_front() {
            for next in graph.get(&node).into_iter().flatten() {
                if next == start {
                    closed = Some(node.clone());
                    break;
                }
                if !previous.contains_key(next) {
                    previous.insert(next.clone(), node.clone());
                    queue.push_back(next.clone());
                }
            }
            if closed.is_some() {
                break;
            }
        }
        if let Some(mut node) = closed {
            let mut circle = vec![start.clone()];
            let mut back = Vec::new();
            while &node != start {
                back.push(node.clone());
                node = previous
                    .get(&node)
                    .cloned()
                    .unwrap_or_else(|| start.clone());
            }
            back.reverse();
            circle.extend(back);
            circle.push(start.clone());
            reported.extend(circle.iter().cloned());
            out.push(circle);
        }
    }
    out
}
