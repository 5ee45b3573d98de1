//! The module graph has no cycle (STYLE.md habit 19: arrows point down). Each top-level module
//! of `src/` is a node, and each command under `src/cmd/` (a file, or a folder of them) one of
//! its own (commands may use one another, never be used by what they use); an edge is any `crate::` path in a file's code
//! outside its unit tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The node a file belongs to: `cmd::NAME` for a command, else its top-level module.
fn node_of(rel: &Path) -> Option<String> {
    let parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    match parts.as_slice() {
        [one] if one == "lib" || one == "main" => None,
        [cmd, name, ..] if cmd == "cmd" && name != "mod" => Some(format!("cmd::{name}")),
        [first, ..] => Some(first.clone()),
        [] => None,
    }
}

/// The nodes a `crate::` path names: `crate::a::b` gives `a` (or `cmd::b`), and
/// `crate::{a, b::c}` gives each.
fn targets(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect()
    };
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let paths: Vec<String> = if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            group[..end].split(',').map(|p| ident(p.trim())).collect()
        } else {
            vec![ident(rest)]
        };
        for p in paths {
            let segs: Vec<&str> = p.split("::").filter(|s| !s.is_empty()).collect();
            match segs.as_slice() {
                ["cmd", name, ..] => out.insert(format!("cmd::{name}")),
                [first, ..] => out.insert((*first).to_string()),
                [] => false,
            };
        }
    }
    out
}

#[test]
fn the_module_graph_has_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in &all {
        let rel = path.strip_prefix(&src).expect("under src");
        let Some(node) = node_of(rel) else { continue };
        let text = std::fs::read_to_string(path).expect("read");
        // Unit tests may reach anywhere.
        let code = text
            .find("#[cfg(test)]\nmod tests")
            .map_or(text.as_str(), |at| &text[..at]);
        for t in targets(code) {
            if t != node && t != "cmd" {
                edges.entry(node.clone()).or_default().insert(t);
            }
        }
    }
    assert!(
        edges.get("server").is_some_and(|e| e.contains("crypto")),
        "the graph was read: {edges:?}"
    );
    // Depth-first search for a back edge; the cycle is named when found.
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(2) => return None,
            Some(1) => {
                let from = path.iter().position(|p| p == n).unwrap_or(0);
                let mut cycle = path[from..].to_vec();
                cycle.push(n.to_string());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(n.to_string(), 1);
        path.push(n.to_string());
        for next in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(next, edges, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        let mut path = Vec::new();
        if let Some(cycle) = visit(n, &edges, &mut state, &mut path) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
    // The checker finds a cycle when there is one.
    let mut planted = edges.clone();
    planted
        .entry("crypto".into())
        .or_default()
        .insert("server".into());
    let mut state = BTreeMap::new();
    let found = planted
        .keys()
        .find_map(|n| visit(n, &planted, &mut state, &mut Vec::new()));
    assert!(found.is_some(), "a planted cycle is found");
}
