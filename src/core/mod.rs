//! The functional core: pure functions and data, no tokio, tonic, kube or `std::fs`.

pub mod admission;
pub mod allocation;
pub mod container_resources;
pub mod conversions;
pub mod node;
pub mod plan;
pub mod pod_cgroup;
pub mod pod_status;
pub mod quantity;
pub mod queue;
pub mod resources;
pub mod runtime;
pub mod seed;
pub mod state;
pub mod status;
pub mod validate;

/// The core's modules form a one-way graph: every `super::x` / `crate::core::x` reference in a
/// module's non-test code is an edge, and no module reaches itself.
#[cfg(test)]
mod graph {
    use std::collections::{BTreeMap, BTreeSet};

    fn edges() -> BTreeMap<String, BTreeSet<String>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core");
        let mut modules = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            if path.extension().is_some_and(|e| e == "rs") && name != "mod" {
                let text = std::fs::read_to_string(&path).unwrap();
                let code = text.split("#[cfg(test)]").next().unwrap().to_string();
                modules.insert(name, code);
            }
        }
        let names: BTreeSet<String> = modules.keys().cloned().collect();
        modules
            .iter()
            .map(|(name, code)| {
                let used = ["super::", "crate::core::"]
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

    #[test]
    fn no_module_cycles() {
        let edges = edges();
        assert!(edges["plan"].contains("pod_cgroup"), "the scan sees edges");
        for start in edges.keys() {
            let mut stack: Vec<&String> = edges[start].iter().collect();
            let mut seen = BTreeSet::new();
            while let Some(m) = stack.pop() {
                assert_ne!(m, start, "core module {start} reaches itself: {edges:?}");
                if seen.insert(m) {
                    stack.extend(edges[m].iter());
                }
            }
        }
    }
}
