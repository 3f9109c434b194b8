//! The architecture's rule "no cycle between modules", checked on the sources: every `crate::`
//! path in src/ (unit tests and comments excluded) is resolved to the file that defines it, and
//! that graph of files must have no cycle. A file may use its own ancestors (`train::callbacks`
//! uses `train`'s `Callback`): a parent and its children are one unit.

use std::collections::BTreeMap;
use std::path::Path;

/// Every module under src/ by its path (`train::callbacks`), with its source.
fn modules(dir: &Path, prefix: &[String], out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        let mut name = prefix.to_vec();
        if path.is_dir() {
            name.push(stem);
            modules(&path, &name, out);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") || (prefix.is_empty() && (stem == "lib" || stem == "main")) {
            continue;
        }
        if stem != "mod" {
            name.push(stem);
        }
        out.insert(name.join("::"), std::fs::read_to_string(&path).unwrap());
    }
}

/// The `crate::` paths a source names outside its unit tests and comments, `crate::{a, b::c}`
/// groups expanded.
fn paths(source: &str) -> Vec<String> {
    let code = source.split("#[cfg(test)]").next().unwrap();
    let code: String = code.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            out.extend(group.split(',').map(|p| p.trim().to_string()));
        } else {
            out.push(rest.chars().take_while(|&c| ident(c)).collect::<String>().trim_end_matches(':').to_string());
        }
    }
    out
}

#[test]
fn no_module_depends_on_itself_through_others() {
    let mut sources = BTreeMap::new();
    modules(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &[], &mut sources);
    assert!(sources.len() > 40 && sources.contains_key("train::callbacks"), "the walk found {:?}", sources.keys());
    // The longest module path that `path` starts with.
    let resolve = |path: &str| {
        let parts: Vec<&str> = path.split("::").collect();
        (1..=parts.len()).rev().map(|n| parts[..n].join("::")).find(|m| sources.contains_key(m))
    };
    let mut edges: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (module, source) in &sources {
        let mut to: Vec<String> = paths(source).iter().filter_map(|p| resolve(p)).filter(|t| t != module && !module.starts_with(&format!("{t}::"))).collect();
        to.sort();
        to.dedup();
        edges.insert(module, to);
    }
    assert!(edges["run"].iter().any(|t| t == "checkpoint"), "the scan sees run's use of checkpoint: {:?}", edges["run"]);

    // Depth-first search; a module met again while still on the path closes a cycle.
    fn visit<'a>(m: &'a str, edges: &'a BTreeMap<&str, Vec<String>>, path: &mut Vec<&'a str>, done: &mut Vec<&'a str>) {
        if done.contains(&m) {
            return;
        }
        if let Some(at) = path.iter().position(|&p| p == m) {
            panic!("module cycle: {} -> {m}", path[at..].join(" -> "));
        }
        path.push(m);
        for t in &edges[m] {
            visit(t, edges, path, done);
        }
        path.pop();
        done.push(m);
    }
    let mut done = Vec::new();
    for m in edges.keys() {
        visit(m, &edges, &mut Vec::new(), &mut done);
    }
}
