//! The workspace's shape, as docs/architecture.md draws it: the vendor side
//! depends on no launcher code, and no source file imports, through any
//! chain of others, a file that imports it (no import circles).
//!
//! The circle check reads the sources, not the compiler: each crate root
//! (`lib.rs`, `main.rs`, `src/bin/*.rs`) and the files its `mod` items
//! bring in are modules; a path through `crate::`, `super::` or `self::`
//! outside comments and `#[cfg(test)]` modules is an edge to the file of
//! the longest module it names. A `pub use` is an alias, not an edge: a
//! path through it leads to the file that defines the item (a crate root
//! that re-exports its modules' items is a facade, not a hub).
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sealrun_tests::repo_root;

/// A crate's modules: module path (`["floating", "wire"]`) to its file.
type Modules = BTreeMap<Vec<String>, PathBuf>;

/// The text of `path` without comments and without its `#[cfg(test)]`
/// modules (their braces matched; braces in strings could confuse it, and
/// then only hide edges of that test module).
fn code_of(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap();
    let mut code = String::with_capacity(text.len());
    for line in text.lines() {
        // A `//` inside a string (a URL) is rare in paths we care about;
        // cutting the line there only hides an edge on that line.
        code.push_str(line.find("//").map_or(line, |i| &line[..i]));
        code.push('\n');
    }
    let test_mod = regex_lite::Regex::new(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{").unwrap();
    while let Some(m) = test_mod.find(&code) {
        let mut depth = 0usize;
        let mut end = code.len();
        for (i, c) in code[m.end() - 1..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = m.end() - 1 + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        code.replace_range(m.start()..end, "");
    }
    code
}

/// The `mod name;` items of a file (not inline `mod name { ... }`).
fn declared_mods(code: &str) -> Vec<String> {
    let re = regex_lite::Regex::new(r"(?m)^\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+([a-z_][a-z0-9_]*)\s*;").unwrap();
    re.captures_iter(code).map(|c| c[1].to_owned()).collect()
}

/// Every module file of the crate rooted at `root`, following `mod` items.
fn modules_of(root: &Path) -> Modules {
    let mut out = Modules::new();
    let mut todo = vec![(Vec::new(), root.to_owned())];
    while let Some((module, file)) = todo.pop() {
        let code = code_of(&file);
        // Children of `a.rs` or `a/mod.rs` live in `a/`; of a root, beside it.
        let is_dir_owner = module.is_empty() || file.file_name().is_some_and(|n| n == "mod.rs");
        let dir = if is_dir_owner { file.parent().unwrap().to_owned() } else { file.with_extension("") };
        for name in declared_mods(&code) {
            let flat = dir.join(format!("{name}.rs"));
            let nested = dir.join(&name).join("mod.rs");
            let child = if flat.is_file() { flat } else { nested };
            assert!(child.is_file(), "{}: `mod {name};` has no file", file.display());
            let mut path = module.clone();
            path.push(name);
            todo.push((path, child));
        }
        out.insert(module, file);
    }
    out
}

/// The module paths a file refers to through `crate::`, `super::`, `self::`.
fn referenced_paths(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(start) {
            let at = from + i;
            from = at + start.len();
            // Part of a longer name (`my_crate::`, `itself::`) or path
            // (`super::super::`, read with the first `super`).
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            if at >= 2 && &bytes[at - 2..at] == b"::" {
                continue;
            }
            let base: Vec<String> = match start {
                "crate::" => Vec::new(),
                // `super` is the parent module, wherever the file is.
                "super::" => module[..module.len().saturating_sub(1)].to_vec(),
                _ => module.to_vec(),
            };
            // `super::super::…`: each further `super` climbs one more.
            let (mut base, mut rest) = (base, &code[from..]);
            while let Some(r) = rest.strip_prefix("super::") {
                base.pop();
                rest = r;
            }
            for tail in paths_after(rest) {
                let mut p = base.clone();
                p.extend(tail);
                out.push(p);
            }
        }
    }
    out
}

/// The paths at the start of `s`: `a::b::C` gives one, `{a, b::{c, D}}`
/// gives each.
fn paths_after(s: &str) -> Vec<Vec<String>> {
    fn ident(s: &str) -> (&str, &str) {
        let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
        (&s[..end], &s[end..])
    }
    fn group(mut s: &str, prefix: &[String], out: &mut Vec<Vec<String>>) -> usize {
        // `s` starts after `{`; returns how much of it the group used.
        let len = s.len();
        loop {
            s = s.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
            if let Some(rest) = s.strip_prefix('}') {
                return len - rest.len();
            }
            if s.is_empty() {
                return len;
            }
            let used = one(s, prefix, out);
            s = &s[used.max(1)..];
        }
    }
    fn one(s: &str, prefix: &[String], out: &mut Vec<Vec<String>>) -> usize {
        let len = s.len();
        let mut path = prefix.to_vec();
        let mut rest = s;
        loop {
            if let Some(inner) = rest.strip_prefix('{') {
                let used = group(inner, &path, out);
                return len - inner.len() + used;
            }
            let (name, after) = ident(rest);
            if name.is_empty() {
                break;
            }
            if name != "self" {
                path.push(name.to_owned());
            }
            rest = after;
            match rest.strip_prefix("::") {
                Some(r) => rest = r,
                None => break,
            }
        }
        out.push(path);
        len - rest.len()
    }
    let mut out = Vec::new();
    one(s, &[], &mut out);
    out
}

/// `pub use` statements: module, then each name it re-exports and the
/// module that name comes from.
type Aliases = BTreeMap<Vec<String>, BTreeMap<String, Vec<String>>>;

fn pub_use() -> regex_lite::Regex {
    regex_lite::Regex::new(r"(?ms)^\s*pub(?:\([a-z]+\))?\s+use\s+([^;]*);").unwrap()
}

fn aliases(modules: &Modules) -> Aliases {
    let mut out = Aliases::new();
    for (module, file) in modules {
        let code = code_of(file);
        for c in pub_use().captures_iter(&code) {
            let text: String = c[1].split_whitespace().collect::<Vec<_>>().join(" ");
            let (base, rest) = if let Some(r) = text.strip_prefix("crate::") {
                (Vec::new(), r)
            } else if let Some(r) = text.strip_prefix("super::") {
                (module[..module.len().saturating_sub(1)].to_vec(), r)
            } else if let Some(r) = text.strip_prefix("self::") {
                (module.clone(), r)
            } else {
                (module.clone(), text.as_str())
            };
            for path in paths_after(rest) {
                let Some((name, from)) = path.split_last() else { continue };
                let mut source = base.clone();
                source.extend(from.iter().cloned());
                out.entry(module.clone()).or_default().insert(name.clone(), source);
            }
        }
    }
    out
}

/// The file that defines what `path` names: the longest module it names,
/// followed through re-exports.
fn file_of<'a>(modules: &'a Modules, aliases: &Aliases, path: &[String]) -> Option<&'a PathBuf> {
    let mut path = path.to_vec();
    // Bounded: a re-export of a re-export of ... ends within a few hops.
    for _ in 0..8 {
        let n = (0..=path.len()).rev().find(|n| modules.contains_key(&path[..*n]))?;
        let through = path.get(n).and_then(|name| aliases.get(&path[..n])?.get(name));
        match through {
            Some(source) => {
                let mut next = source.clone();
                next.extend(path[n..].iter().cloned());
                path = next;
            }
            None => return modules.get(&path[..n]),
        }
    }
    modules.get(&path[..0])
}

/// The import edges between the files of one crate.
fn edges(modules: &Modules) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let aliases = aliases(modules);
    let mut out: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for (module, file) in modules {
        let code = pub_use().replace_all(&code_of(file), "").into_owned();
        let from = out.entry(file.clone()).or_default();
        for p in referenced_paths(&code, module) {
            if let Some(to) = file_of(modules, &aliases, &p)
                && to != file
            {
                from.insert(to.clone());
            }
        }
    }
    out
}

/// The circles in `graph`: its strongly connected parts of two or more
/// files (Tarjan's algorithm).
fn circles(graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    struct State<'a> {
        graph: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        index: BTreeMap<&'a PathBuf, (usize, usize)>,
        stack: Vec<&'a PathBuf>,
        on_stack: BTreeSet<&'a PathBuf>,
        next: usize,
        out: Vec<Vec<PathBuf>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a PathBuf) {
        s.index.insert(v, (s.next, s.next));
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        let graph = s.graph;
        for w in graph.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.index[v].1.min(s.index[w].1);
                s.index.get_mut(v).unwrap().1 = low;
            } else if s.on_stack.contains(w) {
                let low = s.index[v].1.min(s.index[w].0);
                s.index.get_mut(v).unwrap().1 = low;
            }
        }
        if s.index[v].0 == s.index[v].1 {
            let mut part = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                part.push(w.clone());
                if w == v {
                    break;
                }
            }
            if part.len() > 1 {
                part.sort();
                s.out.push(part);
            }
        }
    }
    let mut s =
        State { graph, index: BTreeMap::new(), stack: Vec::new(), on_stack: BTreeSet::new(), next: 0, out: Vec::new() };
    for v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// Every crate root of the workspace's packages and of the samples.
fn crate_roots() -> Vec<PathBuf> {
    let root = repo_root();
    let mut out = Vec::new();
    for dir in ["sdk", "shared", "launcher"].iter().map(|d| root.join(d)).chain([root.join("tests")]) {
        let packages: Vec<PathBuf> = if dir.ends_with("tests") {
            vec![dir]
        } else {
            fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).filter(|p| p.join("Cargo.toml").is_file()).collect()
        };
        for p in packages {
            let src = p.join("src");
            out.extend(["lib.rs", "main.rs"].iter().map(|f| src.join(f)).filter(|f| f.is_file()));
            if let Ok(bins) = fs::read_dir(src.join("bin")) {
                out.extend(bins.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "rs")));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn no_source_file_is_part_of_an_import_circle() {
    let root = repo_root();
    let mut found = Vec::new();
    let roots = crate_roots();
    assert!(roots.len() >= 10, "the walk found only {roots:?}");
    for r in &roots {
        let modules = modules_of(r);
        for part in circles(&edges(&modules)) {
            let names: Vec<String> =
                part.iter().map(|p| p.strip_prefix(&root).unwrap_or(p).display().to_string()).collect();
            found.push(names.join(" <-> "));
        }
    }
    assert!(found.is_empty(), "import circles:\n  {}", found.join("\n  "));
}

/// The checker itself finds a circle it is shown, through every kind of
/// path it reads, follows re-exports to where items are defined, and finds
/// none where there is none.
#[test]
fn the_circle_check_sees_circles_through_every_kind_of_path() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    fs::create_dir_all(src.join("a")).unwrap();
    // The root re-exports everything: a facade, no edge of its own.
    fs::write(src.join("lib.rs"), "mod a;\nmod b;\nmod c;\npub use a::X;\npub use c::Y;\npub type T = u8;\n").unwrap();
    fs::write(src.join("a/mod.rs"), "mod inner;\npub use inner::X;\n").unwrap();
    fs::write(src.join("a/inner.rs"), "use super::super::{c::{self, Y}};\npub struct X;\n").unwrap();
    fs::write(
        src.join("b.rs"),
        "// use crate::c;\npub fn f() -> crate::T { 0 }\n#[cfg(test)]\nmod tests {\n    use crate::c::Y;\n}\n",
    )
    .unwrap();
    // Through the root's re-export and a's: the edge goes to a/inner.rs.
    fs::write(src.join("c.rs"), "pub struct Y;\nfn g() -> crate::X { crate::X }\n").unwrap();
    let modules = modules_of(&src.join("lib.rs"));
    assert_eq!(modules.len(), 5, "{modules:?}");
    let found = circles(&edges(&modules));
    assert_eq!(found.len(), 1, "{found:?}");
    let names: Vec<String> = found[0].iter().map(|p| p.strip_prefix(src).unwrap().display().to_string()).collect();
    assert_eq!(names, ["a/inner.rs", "c.rs"]);
    // Break it: c no longer names X. b's commented-out import, its test
    // module's and the root's type alias are no circle.
    fs::write(src.join("c.rs"), "pub struct Y;\nfn g() -> crate::T { 1 }\n").unwrap();
    assert!(circles(&edges(&modules_of(&src.join("lib.rs")))).is_empty());
}

#[test]
fn the_vendor_side_depends_on_no_launcher_code() {
    for package in ["sealrun-sdk", "sealrun-server", "sealrun-format"] {
        let out = Command::new(env!("CARGO"))
            .args(["tree", "--offline", "--edges", "normal,build", "--prefix", "none", "-p", package])
            .current_dir(repo_root())
            .output()
            .unwrap();
        assert!(out.status.success(), "cargo tree: {}", String::from_utf8_lossy(&out.stderr));
        let tree = String::from_utf8(out.stdout).unwrap();
        for line in tree.lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            assert!(
                !matches!(name, "sealrun" | "sealrun-floatd"),
                "{package} depends on the launcher side through {line:?}:\n{tree}"
            );
        }
    }
}

/// The launcher's room of a file: the first folder under `src/`, or the
/// file's name for the files at the top (`session.rs`, `error.rs`).
fn room_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap_or(file);
    let first = rel.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned()).unwrap_or_default();
    first.trim_end_matches(".rs").to_owned()
}

/// The launcher's rooms as docs/architecture.md draws them: `license/`
/// and `runtime/` do not import each other (the session joins them), and
/// `platform/` imports nothing of the launcher.
#[test]
fn the_launchers_rooms_keep_to_their_side() {
    let src = repo_root().join("launcher/sealrun/src");
    let graph = edges(&modules_of(&src.join("lib.rs")));
    let mut wrong = Vec::new();
    let mut seen = BTreeMap::<String, usize>::new();
    for (from, tos) in &graph {
        for to in tos {
            let (a, b) = (room_of(&src, from), room_of(&src, to));
            *seen.entry(format!("{a}->{b}")).or_default() += 1;
            let bad =
                (a == "license" && b == "runtime") || (a == "runtime" && b == "license") || (a == "platform" && b != a);
            if bad {
                wrong.push(format!("{} imports {}", from.display(), to.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "imports across the launcher's rooms:\n{}", wrong.join("\n"));
    // Not passing for want of edges: the rooms are there and are used.
    for edge in ["session->license", "session->runtime", "license->platform", "runtime->platform", "cli->session"] {
        assert!(seen.contains_key(edge), "no import {edge}; the rooms moved? seen: {seen:?}");
    }
}

/// Every source file and test the docs name as evidence
/// (`` `launcher/sealrun/src/runtime/runner.rs::parses_dir_grants` ``, or a
/// path alone) exists: a restructuring that moves a test moves the
/// reference with it, so the security tables keep pointing at real tests.
#[test]
fn the_docs_name_files_and_tests_that_exist() {
    let root = repo_root();
    let reference =
        regex_lite::Regex::new(r"`((?:launcher|sdk|shared|tests|fuzz)/[\w./-]+\.rs)(?:::([\w:]+))?`").unwrap();
    let mut docs = vec![root.join("README.md")];
    for entry in fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            docs.push(path);
        }
    }
    let mut checked = 0;
    let mut wrong = Vec::new();
    for doc in &docs {
        let text = fs::read_to_string(doc).unwrap();
        for m in reference.captures_iter(&text) {
            let file = root.join(&m[1]);
            checked += 1;
            let Ok(code) = fs::read_to_string(&file) else {
                wrong.push(format!("{}: no file {}", doc.display(), &m[1]));
                continue;
            };
            let Some(item) = m.get(2) else { continue };
            // `name`, `name::sqlite` (a test per database backend), or
            // `module::tests` (a test module).
            let parts: Vec<&str> = item.as_str().split("::").collect();
            let name = match parts.as_slice() {
                [.., name, "sqlite" | "postgres"] => *name,
                [.., "tests"] => continue,
                [.., name] => *name,
                [] => continue,
            };
            let defined = [format!("fn {name}("), format!("both_backends!({name},")];
            if !defined.iter().any(|d| code.contains(d.as_str())) {
                wrong.push(format!("{}: {} has no test {name}", doc.display(), &m[1]));
            }
        }
    }
    assert!(checked > 50, "the pattern found only {checked} references; did the docs' style change?");
    assert!(wrong.is_empty(), "the docs name what is not there:\n{}", wrong.join("\n"));
}
