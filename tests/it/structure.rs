//! The shape of the code: which top-level modules of `src/` use which, read from their
//! `crate::` paths (outside comments and test modules). Two checks:
//! - no new import circle between top-level modules: every edge that closes a circle
//!   must be one of `KNOWN_CIRCLE_EDGES`, the circles this code still has (issue 14
//!   removes them; an edge that no longer closes a circle must leave the list);
//! - ARCHITECTURE.md's module map is this graph, as generated here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Edges (from, to) that close an import circle today. Shrink this list; never grow it.
const KNOWN_CIRCLE_EDGES: &[(&str, &str)] = &[
    ("app", "connectors"),
    ("connectors", "app"),
    ("connectors", "engine"),
    ("connectors", "operators"),
    ("connectors", "runtime"),
    ("connectors", "state"),
    ("engine", "app"),
    ("engine", "runtime"),
    ("operators", "connectors"),
    ("operators", "planner"),
    ("operators", "state"),
    ("planner", "app"),
    ("planner", "connectors"),
    ("planner", "operators"),
    ("planner", "runtime"),
    ("runtime", "app"),
    ("runtime", "connectors"),
    ("runtime", "engine"),
    ("runtime", "operators"),
    ("runtime", "planner"),
    ("runtime", "state"),
    ("state", "runtime"),
];

type Graph = BTreeMap<String, BTreeSet<String>>;

fn module_graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = Graph::new();
    let mut files = vec![src.clone()];
    let path = regex::Regex::new(r"crate::([a-z_]+)").unwrap();
    while let Some(entry) = files.pop() {
        if entry.is_dir() {
            files.extend(std::fs::read_dir(&entry).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if entry.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let relative = entry.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap().as_os_str().to_string_lossy();
        let top = first.trim_end_matches(".rs").to_string();
        if top == "main" || top == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&entry).unwrap();
        // Test modules sit at the end of a file; what they use is not the module's shape.
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let uses = graph.entry(top.clone()).or_default();
        for line in code.lines() {
            let line = line.split("//").next().unwrap_or("");
            for used in path.captures_iter(line) {
                if used[1] != top {
                    uses.insert(used[1].to_string());
                }
            }
        }
    }
    graph
}

/// The edges that lie on a circle: (a, b) where b reaches a back.
fn circle_edges(graph: &Graph) -> BTreeSet<(String, String)> {
    let reaches = |from: &str, to: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(m) = todo.pop() {
            if m == to {
                return true;
            }
            if seen.insert(m.clone()) {
                todo.extend(graph.get(&m).into_iter().flatten().cloned());
            }
        }
        false
    };
    graph
        .iter()
        .flat_map(|(a, uses)| uses.iter().map(move |b| (a.clone(), b.clone())))
        .filter(|(a, b)| reaches(b, a))
        .collect()
}

#[test]
fn no_new_import_circle_between_top_level_modules() {
    let graph = module_graph();
    let circles = circle_edges(&graph);
    let known: BTreeSet<(String, String)> = KNOWN_CIRCLE_EDGES
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let new: Vec<_> = circles.difference(&known).collect();
    assert!(
        new.is_empty(),
        "new import circles between top-level modules, through these uses: {new:?}; \
         a module must not use one that uses it back (see ARCHITECTURE.md's module map)"
    );
    let gone: Vec<_> = known.difference(&circles).collect();
    assert!(
        gone.is_empty(),
        "these uses no longer close a circle: take them out of KNOWN_CIRCLE_EDGES: {gone:?}"
    );
}

#[test]
fn architecture_md_maps_the_modules_as_they_are() {
    let graph = module_graph();
    let mut block = String::from("```text\n");
    for (module, uses) in &graph {
        let uses: Vec<&str> = uses.iter().map(String::as_str).collect();
        block.push_str(&format!(
            "{module} -> {}\n",
            if uses.is_empty() { "-".into() } else { uses.join(", ") }
        ));
    }
    block.push_str("```\n");
    let architecture = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md")).unwrap();
    let (start, end) = ("<!-- module-map: start -->\n", "<!-- module-map: end -->");
    let found = architecture
        .split_once(start)
        .and_then(|(_, rest)| rest.split_once(end))
        .map(|(map, _)| map)
        .expect("ARCHITECTURE.md has the module-map markers");
    assert_eq!(
        found, block,
        "ARCHITECTURE.md's module map is out of date; between the markers, put:\n{block}"
    );
}
