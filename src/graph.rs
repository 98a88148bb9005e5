//! The module graph is one-way, at two levels: the crate's top modules (`crate::x` edges) and
//! the core's modules (`super::x` / `crate::core::x` edges). An edge is a reference in a module's
//! non-test code (its `#[cfg(test)]` items and comment lines skipped); a module that
//! reaches itself fails the test with the graph. `main.rs` and `lib.rs` are the roots, not nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The code of `path` (a file, or every `.rs` file below a directory) before its tests, without
/// comment lines.
fn code(path: &Path) -> String {
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n != "tests" && n != "tests.rs")
            })
            .collect();
        entries.sort();
        return entries.iter().map(|p| code(p)).collect();
    }
    if path.extension().is_none_or(|e| e != "rs") {
        return String::new();
    }
    let text = std::fs::read_to_string(path).unwrap();
    without_tests(&text)
        .filter(|l| !l.trim_start().starts_with("//"))
        .map(|l| l.to_string() + "\n")
        .collect()
}

/// The lines of `text` without its `#[cfg(test)]` items: the item after the attribute is its next
/// line when that line's braces balance (`mod tests;`, `fn f() {}`), else it ends at the closing
/// brace indented like the attribute.
fn without_tests(text: &str) -> impl Iterator<Item = &str> {
    let mut skip_until: Option<String> = None;
    let mut after_attr: Option<String> = None;
    text.lines().filter(move |line| {
        if let Some(close) = &skip_until {
            if line.trim_end() == close {
                skip_until = None;
            }
            return false;
        }
        if let Some(indent) = after_attr.take() {
            // an item on one line (`mod tests;`, `fn f() {}`) ends with it
            let one_line = line.matches('{').count() == line.matches('}').count();
            if !one_line {
                skip_until = Some(indent + "}");
            }
            return false;
        }
        if line.trim() == "#[cfg(test)]" {
            let indent = &line[..line.len() - line.trim_start().len()];
            after_attr = Some(indent.to_string());
            return false;
        }
        true
    })
}

/// The modules of `dir` (its `.rs` files and subdirectories, without `skip`) and the ones each
/// names after one of `prefixes`.
fn edges(dir: &str, prefixes: &[&str], skip: &[&str]) -> Graph {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if !skip.contains(&name.as_str())
            && (path.is_dir() || path.extension().is_some_and(|e| e == "rs"))
        {
            modules
                .entry(name)
                .or_insert_with(String::new)
                .push_str(&code(&path));
        }
    }
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .iter()
        .map(|(name, code)| {
            let used = prefixes
                .iter()
                .flat_map(|prefix| code.split(prefix).skip(1))
                .map(|rest| {
                    rest.chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect::<String>()
                })
                .filter(|m| m != name && names.contains(m))
                .collect();
            (name.clone(), used)
        })
        .collect()
}

fn assert_one_way(level: &str, edges: &Graph) {
    for start in edges.keys() {
        let mut stack: Vec<&String> = edges[start].iter().collect();
        let mut seen = BTreeSet::new();
        while let Some(m) = stack.pop() {
            assert_ne!(m, start, "{level} module {start} reaches itself: {edges:?}");
            if seen.insert(m) {
                stack.extend(edges[m].iter());
            }
        }
    }
}

#[test]
fn the_core_is_a_one_way_graph() {
    let edges = edges("src/core", &["super::", "crate::core::"], &["mod"]);
    assert!(edges["plan"].contains("pod_cgroup"), "the scan sees edges");
    assert_one_way("core", &edges);
}

#[test]
fn the_crate_is_a_one_way_graph() {
    let edges = edges("src", &["crate::"], &["main", "lib", "graph"]);
    assert!(
        edges["controller"].contains("engine"),
        "the scan sees edges"
    );
    assert!(
        edges["engine"].contains("executor"),
        "directories are scanned"
    );
    assert!(!edges["core"].contains("executor"), "comments are no edges");
    assert!(
        edges["config"].contains("core"),
        "code after a `#[cfg(test)] mod tests;` is scanned"
    );
    assert_one_way("crate", &edges);
}

#[test]
fn test_items_are_skipped_and_code_after_them_kept() {
    let text = "use crate::a;\n#[cfg(test)]\nmod tests;\nuse crate::b;\n#[cfg(test)]\nmod t {\n    use crate::c;\n    fn f() {\n    }\n}\nuse crate::d;\n#[cfg(test)]\nfn g() {}\nuse crate::e;\n}\n";
    let kept: Vec<&str> = without_tests(text).collect();
    assert_eq!(
        kept,
        [
            "use crate::a;",
            "use crate::b;",
            "use crate::d;",
            "use crate::e;",
            "}"
        ]
    );
}
