//! The shape of the repository, checked: the runtime's modules depend on each other in one
//! direction, no source file grows past the size we keep, and every test and example file is
//! built (the suite package lists them one by one, so a file nobody lists would never run).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest a source file of the runtime may be.
const MAX_LINES: usize = 700;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// `text` without comments (doc comments included: an intra-doc link is not a dependency) and
/// without its unit tests (a `#[cfg(test)] mod tests` block, which closes the file).
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines().map(|line| line.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// The identifier that starts `text`.
fn ident(text: &str) -> &str {
    let end = text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(text.len());
    &text[..end]
}

/// The names `code` reaches through `crate::`: the first segment of each path, and each item of
/// a `crate::{a, b::c}` group.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue; // `extern crate::`-like words, never a path of ours
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for item in inner.split(',') {
                let name = ident(item.trim());
                if !name.is_empty() {
                    names.insert(name.to_string());
                }
            }
        } else {
            names.insert(ident(rest).to_string());
        }
    }
    names
}

/// The top-level modules of `flux/src/lib.rs` in the order they are declared, and the module
/// each name re-exported at the root comes from.
fn declared_modules(lib: &str) -> (Vec<String>, BTreeMap<String, String>) {
    let mut modules = Vec::new();
    let mut reexports = BTreeMap::new();
    for line in code_of(lib).lines() {
        let line = line.trim();
        let line = line.strip_prefix("pub ").unwrap_or(line);
        if let Some(rest) = line.strip_prefix("mod ")
            && rest.ends_with(';')
        {
            modules.push(ident(rest).to_string());
        } else if let Some(rest) = line.strip_prefix("use ") {
            let module = ident(rest);
            let after = &rest[module.len()..];
            let Some(after) = after.strip_prefix("::") else { continue };
            let items = after.trim_end_matches(';').trim_start_matches('{').trim_end_matches('}');
            for item in items.split(',') {
                let name = ident(item.trim());
                if !name.is_empty() && name != "self" {
                    reexports.insert(name.to_string(), module.to_string());
                }
            }
        }
    }
    (modules, reexports)
}

/// What each top-level module of `src` uses of the others (a directory counts as one module).
fn dependencies(
    src: &Path,
    modules: &[String],
    reexports: &BTreeMap<String, String>,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for module in modules {
        let file = src.join(format!("{module}.rs"));
        let files = if file.exists() { vec![file] } else { rust_files(&src.join(module)) };
        assert!(!files.is_empty(), "module `{module}` has no source file under {}", src.display());
        let used = uses.entry(module.clone()).or_default();
        for file in files {
            for name in crate_paths(&code_of(&read(&file))) {
                let target = if modules.contains(&name) { Some(name) } else { reexports.get(&name).cloned() };
                if let Some(target) = target.filter(|t| t != module && modules.contains(t)) {
                    used.insert(target);
                }
            }
        }
    }
    uses
}

/// Each module of the runtime uses only modules declared before it in `lib.rs`: the list there,
/// read from the top, goes from the vocabulary (errors, values, events) through the store, the
/// engine, runs, tasks and the driver to the server. Arrows point one way, so there is no import
/// circle; an upward use (a root re-export included) fails here, naming both modules.
#[test]
fn modules_depend_only_on_modules_declared_before_them() {
    let src = root().join("flux/src");
    let (modules, reexports) = declared_modules(&read(&src.join("lib.rs")));
    assert!(modules.len() > 15, "lib.rs declares too few modules to be read right: {modules:?}");
    let uses = dependencies(&src, &modules, &reexports);
    let mut upward = Vec::new();
    for (position, module) in modules.iter().enumerate() {
        for used in &uses[module] {
            let at = modules.iter().position(|m| m == used).unwrap_or(usize::MAX);
            if at > position {
                upward.push(format!("`{module}` uses `{used}`, which lib.rs declares after it"));
            }
        }
    }
    assert!(upward.is_empty(), "dependencies pointing up:\n{}", upward.join("\n"));
}

/// The check above, on a made-up crate: an upward use, also through a root re-export, is seen.
#[test]
fn an_upward_use_is_seen() {
    let lib = "mod low;\nmod high;\npub use high::{Thing, Other};\n";
    let (modules, reexports) = declared_modules(lib);
    assert_eq!(modules, ["low", "high"]);
    assert_eq!(reexports.get("Thing").map(String::as_str), Some("high"));
    let code = code_of("use crate::{Thing, value};\n/// [`crate::high::X`]\nfn f() { crate::low::g() }\n");
    assert_eq!(crate_paths(&code), ["Thing", "low", "value"].map(String::from).into_iter().collect());
}

/// No source file of the runtime is longer than [`MAX_LINES`]: past that, a concept inside it
/// wants a module of its own.
#[test]
fn no_runtime_file_is_too_long() {
    let src = root().join("flux/src");
    let long: Vec<String> = rust_files(&src)
        .into_iter()
        .filter_map(|file| {
            let lines = read(&file).lines().count();
            (lines > MAX_LINES).then(|| format!("{} has {lines} lines", file.display()))
        })
        .collect();
    assert!(long.is_empty(), "files over {MAX_LINES} lines:\n{}", long.join("\n"));
}

/// The `path = "..."` of every target a package manifest lists, as file names under `dir`.
fn listed(manifest: &str, dir: &str) -> BTreeSet<String> {
    manifest
        .lines()
        .filter_map(|line| line.trim().strip_prefix("path = \""))
        .filter_map(|path| path.strip_suffix('"'))
        .filter_map(|path| path.split(&format!("{dir}/")).nth(1).map(str::to_string))
        .collect()
}

/// Every file in `tests/` and `examples/` is a target of the suite package, of the examples'
/// package (`examples/Cargo.toml`, whose paths are relative to `examples/`) or, for the CLI
/// tests, of `flux` itself: with target discovery off, a file nobody lists is never built.
#[test]
fn every_test_and_example_is_built() {
    let root = root();
    let examples = read(&root.join("examples/Cargo.toml")).replace("path = \"", "path = \"examples/");
    let manifests = read(&root.join("suite/Cargo.toml")) + &read(&root.join("flux/Cargo.toml")) + &examples;
    for dir in ["tests", "examples", "benches"] {
        let targets = listed(&manifests, dir);
        let missing: Vec<String> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".rs") && !targets.contains(name))
            .collect();
        assert!(missing.is_empty(), "files in {dir}/ that no Cargo.toml lists as a target: {missing:?}");
    }
}
