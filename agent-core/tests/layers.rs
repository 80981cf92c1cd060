//! The layers of agent-core, checked: every `crate::<module>` path in `src/` is an edge between
//! top-level modules, and the edges must go down the table below (or stay within one layer) and
//! form no cycle. A failure names the offending edge and where it is written.
//!
//! A plain text scan (comments and string literals skipped), so it needs no parser crate:
//! `use crate::a::b`, `crate::a::f()`, `use crate::{a, b::c}` and `$crate::a` all count.
//! `super::` paths never leave a top-level module here (checked: `super::super` is refused).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Lowest first. A module may use modules of its own layer or of a lower one.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "wire, store, transport, plugins (know nothing of tasks)",
        &[
            "wire",
            "store",
            "transport",
            "plugins",
            "identity",
            "schedule",
        ],
    ),
    ("config, cli", &["config", "cli", "logging"]),
    ("context and session", &["session"]),
    ("job engine and tasks", &["jobs", "tasks"]),
    ("the daemon (schedules tasks and jobs)", &["daemon"]),
    ("Windows service around the daemon", &["service"]),
    ("dispatch", &["app"]),
];

/// One `crate::<to>` reference in a file of module `from`.
#[derive(Debug, Clone)]
struct Edge {
    from: String,
    to: String,
    at: String,
}

impl std::fmt::Display for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{} -> {}` ({})", self.from, self.to, self.at)
    }
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, mods)| mods.contains(&module))
}

/// The top-level modules declared in `lib.rs`.
fn lib_modules(src: &Path) -> BTreeSet<String> {
    let lib = fs::read_to_string(src.join("lib.rs")).unwrap();
    lib.lines()
        .map(str::trim)
        .filter_map(|l| {
            let l = l.strip_prefix("pub ").unwrap_or(l);
            l.strip_prefix("mod ")?
                .strip_suffix(';')
                .map(str::to_string)
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of `text` with comments and string/char literals blanked (newlines kept, so
/// byte offsets still give line numbers).
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, c: u8| out.push(if c == b'\n' { b'\n' } else { b' ' });
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                blank(&mut out, b[i]);
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
        } else if c == b'r'
            && (i == 0 || !is_ident(b[i - 1]))
            && matches!(b.get(i + 1), Some(b'"' | b'#'))
        {
            // raw string r"…" / r#"…"#
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            let mut k = j + 1;
            while k < b.len() && !b[k..].starts_with(&close) {
                k += 1;
            }
            let end = (k + close.len()).min(b.len());
            for &x in &b[i..end] {
                blank(&mut out, x);
            }
            i = end;
        } else if c == b'"' {
            blank(&mut out, c);
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    blank(&mut out, b[i]);
                    i += 1;
                }
                if i < b.len() {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
            if i < b.len() {
                blank(&mut out, b[i]);
                i += 1;
            }
        } else if c == b'\'' {
            // a char literal ('x', '\n', '\''), not a lifetime ('a)
            let len = if b.get(i + 1) == Some(&b'\\') {
                (i + 2..b.len()).find(|&k| b[k] == b'\'').map(|k| k + 1 - i)
            } else {
                let ch_len = text[i + 1..].chars().next().map_or(1, char::len_utf8);
                (b.get(i + 1 + ch_len) == Some(&b'\'')).then_some(ch_len + 2)
            };
            match len {
                Some(n) => {
                    for &x in &b[i..i + n] {
                        blank(&mut out, x);
                    }
                    i += n;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn ident_at(s: &str, i: usize) -> &str {
    let end = s[i..]
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(s.len(), |n| i + n);
    &s[i..end]
}

/// The top-level names `crate::…` paths in `code` reach, with their byte offsets.
fn crate_paths(code: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let b = code.as_bytes();
    for (i, _) in code.match_indices("crate") {
        if i > 0 && is_ident(b[i - 1]) {
            continue;
        }
        let rest = code[i + 5..].trim_start();
        let Some(rest) = rest.strip_prefix("::") else {
            continue;
        };
        let rest = rest.trim_start();
        let at = code.len() - rest.len();
        if let Some(group) = rest.strip_prefix('{') {
            // use crate::{a, b::{c, d}, e}: the names at depth 1, after `{` or `,`
            let mut depth = 1;
            let mut expect_name = true;
            let g = code.len() - group.len();
            let mut k = g;
            while k < b.len() && depth > 0 {
                match b[k] {
                    b'{' => depth += 1,
                    b'}' => depth -= 1,
                    b',' if depth == 1 => expect_name = true,
                    c if is_ident(c) && depth == 1 && expect_name => {
                        let name = ident_at(code, k);
                        found.push((k, name.to_string()));
                        expect_name = false;
                        k += name.len();
                        continue;
                    }
                    _ => {}
                }
                k += 1;
            }
        } else if rest.as_bytes().first().copied().is_some_and(is_ident) {
            found.push((at, ident_at(code, at).to_string()));
        }
    }
    found
}

/// Every edge between distinct top-level modules of `src`.
fn edges(src: &Path) -> Vec<Edge> {
    let modules = lib_modules(src);
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut edges = Vec::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let from = first.strip_suffix(".rs").unwrap_or(&first).to_string();
        if !modules.contains(&from) {
            // lib.rs (the root) and the binaries' roots (main.rs, plugin_host.rs)
            continue;
        }
        let text = fs::read_to_string(&file).unwrap();
        let code = code_only(&text);
        assert!(
            !code.contains("super::super"),
            "{}: `super::super` may leave the top-level module; write `crate::…`",
            rel.display()
        );
        for (offset, to) in crate_paths(&code) {
            if to != from && modules.contains(&to) {
                let line = code[..offset].matches('\n').count() + 1;
                edges.push(Edge {
                    from: from.clone(),
                    to,
                    at: format!("src/{}:{line}", rel.display()),
                });
            }
        }
    }
    edges
}

/// The edges that go up the layer table, and modules missing from it.
fn layer_violations(edges: &[Edge], modules: &BTreeSet<String>) -> Vec<String> {
    let mut problems: Vec<String> = modules
        .iter()
        .filter(|m| layer_of(m).is_none())
        .map(|m| format!("module `{m}` is in no layer: add it to LAYERS in tests/layers.rs"))
        .collect();
    for e in edges {
        if let (Some(from), Some(to)) = (layer_of(&e.from), layer_of(&e.to))
            && to > from
        {
            problems.push(format!(
                "{e}: `{}` ({}) may not use `{}` ({}), a higher layer",
                e.from, LAYERS[from].0, e.to, LAYERS[to].0
            ));
        }
    }
    problems
}

/// One cycle of the module graph, as its edges, if there is any.
fn find_cycle(edges: &[Edge]) -> Option<Vec<Edge>> {
    let mut graph: BTreeMap<&str, Vec<&Edge>> = BTreeMap::new();
    for e in edges {
        graph.entry(&e.from).or_default().push(e);
    }
    // 0 = unvisited, 1 = on the current path, 2 = done
    fn visit<'a>(
        node: &'a str,
        graph: &BTreeMap<&'a str, Vec<&'a Edge>>,
        state: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a Edge>,
    ) -> Option<Vec<Edge>> {
        state.insert(node, 1);
        for e in graph.get(node).into_iter().flatten() {
            path.push(e);
            match state.get(e.to.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = path.iter().position(|p| p.from == e.to).unwrap();
                    return Some(path[start..].iter().map(|&p| p.clone()).collect());
                }
                0 => {
                    if let Some(c) = visit(&e.to, graph, state, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
            path.pop();
        }
        state.insert(node, 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node).copied().unwrap_or(0) == 0
            && let Some(c) = visit(node, &graph, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn top_level_modules_follow_the_layers_without_cycles() {
    let src = src();
    let modules = lib_modules(&src);
    let edges = edges(&src);
    // The scan must see the real graph, not pass on an empty one.
    assert!(modules.len() >= 10, "lib.rs modules: {modules:?}");
    assert!(
        edges.iter().any(|e| e.from == "app" && e.to == "session"),
        "the scan found no `app -> session` edge: it is broken ({} edges)",
        edges.len()
    );
    for (_, mods) in LAYERS {
        for m in *mods {
            assert!(
                modules.contains(*m),
                "LAYERS names `{m}`, which lib.rs does not declare"
            );
        }
    }
    let problems = layer_violations(&edges, &modules);
    assert!(
        problems.is_empty(),
        "layer violations:\n{}",
        problems.join("\n")
    );
    if let Some(cycle) = find_cycle(&edges) {
        let shown: Vec<String> = cycle.iter().map(ToString::to_string).collect();
        panic!(
            "import cycle between top-level modules:\n{}",
            shown.join("\n")
        );
    }
}

#[test]
fn a_back_edge_is_named() {
    let e = |from: &str, to: &str| Edge {
        from: from.into(),
        to: to.into(),
        at: format!("src/{from}.rs:1"),
    };
    let modules: BTreeSet<String> = ["wire", "store", "app", "session"].map(String::from).into();
    let up = [e("app", "session"), e("session", "store"), e("wire", "app")];
    let problems = layer_violations(&up, &modules);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("`wire -> app` (src/wire.rs:1): `wire`"),
        "{}",
        problems[0]
    );
    // app -> session -> store and wire -> app go nowhere back: no cycle, only the layer error
    assert!(find_cycle(&up).is_none());
}

#[test]
fn a_cycle_within_a_layer_is_named() {
    let e = |from: &str, to: &str, line: u32| Edge {
        from: from.into(),
        to: to.into(),
        at: format!("src/{from}.rs:{line}"),
    };
    let edges = [
        e("wire", "store", 1),
        e("store", "identity", 2),
        e("identity", "wire", 3),
    ];
    let cycle: Vec<String> = find_cycle(&edges)
        .expect("a cycle")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        cycle,
        [
            "`identity -> wire` (src/identity.rs:3)",
            "`wire -> store` (src/wire.rs:1)",
            "`store -> identity` (src/store.rs:2)",
        ]
    );
    assert!(find_cycle(&edges[..2]).is_none());
}

#[test]
fn the_scan_reads_paths_not_comments_or_strings() {
    let code = code_only(
        "use crate::wire::X; // crate::app\n/* crate::jobs */ let s = \"crate::tasks\";\n\
         let r = r#\"crate::cli\"#; let c = '\"'; fn f<'a>() { crate::store::open(); }\n\
         use crate::{config::Config, plugins::{self, Registry}, session};\n$crate::logging::x!();\n\
         pub(crate) fn g() {}",
    );
    let names: Vec<String> = crate_paths(&code).into_iter().map(|(_, n)| n).collect();
    assert_eq!(
        names,
        ["wire", "store", "config", "plugins", "session", "logging"]
    );
}
