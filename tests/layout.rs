//! The house: the framework imports no bundled system (the core, the backends
//! and the command line are written for any system; only the `tandem`
//! binary, cli/src/main.rs, and the benchmarks it carries in cli/src/bench/,
//! link them, as a user's own `main` would), and no crate depends on one
//! beside or above it.

use std::path::{Path, PathBuf};

const BUNDLED: [&str; 4] = ["tandem_pubsub", "tandem_kv", "tandem_twophase", "tandem_primary"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_framework_module_imports_a_bundled_system() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "sim/src", "msquic/src", "cli/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    let binary = [root.join("cli/src/main.rs"), root.join("cli/src/bench")];
    let framework: Vec<&PathBuf> = files.iter().filter(|f| !binary.iter().any(|b| f.starts_with(b))).collect();
    assert!(framework.len() > 30, "the framework's files were found");
    for file in framework {
        let text = std::fs::read_to_string(file).unwrap();
        // Doc examples (tests of the docs, not imports) may show a bundled system.
        let code = text.lines().filter(|l| !l.trim_start().starts_with("//"));
        for (line, system) in code.flat_map(|l| BUNDLED.map(|s| (l, s))) {
            assert!(!line.contains(system), "{} names {system}: {line}", file.display());
        }
    }
}

/// The house, bottom up: the core; the two backends and the systems beside
/// one another on it; the command line on the roof.
const FLOORS: [(&str, &str, u8); 8] = [
    ("Cargo.toml", "tandem", 0),
    ("sim/Cargo.toml", "tandem-sim", 1),
    ("msquic/Cargo.toml", "tandem-msquic", 1),
    ("systems/pubsub/Cargo.toml", "tandem-pubsub", 1),
    ("systems/kv/Cargo.toml", "tandem-kv", 1),
    ("systems/twophase/Cargo.toml", "tandem-twophase", 1),
    ("systems/primary/Cargo.toml", "tandem-primary", 1),
    ("cli/Cargo.toml", "tandem-cli", 2),
];

/// The tandem packages a manifest's `[dependencies]` names (tests'
/// dev-dependencies may reach anywhere).
fn dependencies(manifest: &str) -> Vec<&'static str> {
    let deps = manifest.split("\n[dependencies]").nth(1).unwrap_or_default().split("\n[").next().unwrap_or_default();
    let names: Vec<&str> = deps.lines().filter_map(|l| l.split_once('=')).map(|(name, _)| name.trim()).collect();
    FLOORS.iter().map(|&(_, package, _)| package).filter(|p| names.contains(p)).collect()
}

#[test]
fn no_crate_imports_one_beside_or_above_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let floor = |package: &str| FLOORS.iter().find(|f| f.1 == package).unwrap().2;
    for (manifest, package, own) in FLOORS {
        let text = std::fs::read_to_string(root.join(manifest)).unwrap();
        assert!(text.contains(&format!("name = \"{package}\"")), "{manifest} is {package}");
        for dependency in dependencies(&text) {
            assert!(floor(dependency) < own, "{package} (floor {own}) depends on {dependency}, beside or above it");
        }
    }
    let cli = std::fs::read_to_string(root.join("cli/Cargo.toml")).unwrap();
    assert_eq!(dependencies(&cli).len(), 7, "the roof stands on every crate");
}

#[test]
fn only_the_binary_depends_on_the_bundled_systems() {
    let cli = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("cli/Cargo.toml")).unwrap();
    for line in cli.lines().filter(|l| BUNDLED.iter().any(|s| l.starts_with(&s.replace('_', "-")))) {
        assert!(line.contains("optional = true"), "cli/Cargo.toml: {line}");
    }
    assert!(cli.contains("required-features = [\"bundled\"]"), "only the binary needs the bundled systems");
}

/// The code lines of `file` (comments and doc comments left out).
fn code(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// The simulation crate, the right way up: the shared parts (options,
/// ports, boot, the QUIC model, queue bounds) on its ground floor, and the
/// two backends side by side, neither importing the other.
#[test]
fn neither_simulation_backend_imports_the_other() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sim/src");
    for (backend, other) in [("events", "turmoil"), ("turmoil", "events")] {
        let mut files = Vec::new();
        rust_files(&root.join(backend), &mut files);
        assert!(files.len() >= 3, "the {backend} backend's files were found");
        for file in files {
            let code = code(&file);
            for path in [format!("crate::{other}"), format!("super::super::{other}"), format!("tandem_sim::{other}")] {
                assert!(!code.contains(&path), "{} imports the {other} backend ({path})", file.display());
            }
        }
    }
    // The ground floor imports neither backend.
    for floor in ["options.rs", "quic.rs", "determinism.rs"] {
        let code = code(&root.join(floor));
        for backend in ["crate::events", "crate::turmoil"] {
            assert!(!code.contains(backend), "sim/src/{floor} stands on a backend ({backend})");
        }
    }
}

/// No backend is chosen by a global: it is a value (`SimOptions::backend`,
/// `Space::backend`, the CLI's `--backend`) passed down to each run.
#[test]
fn no_backend_is_chosen_by_a_global() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "sim/src", "msquic/src", "cli/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    for file in files {
        let code = code(&file);
        for line in code.lines().filter(|l| l.trim_start().starts_with("static ") || l.contains(" static ")) {
            assert!(!line.to_lowercase().contains("backend"), "{}: a global backend: {line}", file.display());
        }
        assert!(
            !code.contains("TANDEM_BACKEND") || file.ends_with("cli/src/lib.rs"),
            "{} reads TANDEM_BACKEND",
            file.display()
        );
    }
}

/// The framework's files a new node fault touches, as the README's "Adding
/// a generic action" lists them: the model, its parser and writer, the
/// explorer's generator, and each backend that carries it out (the others
/// refuse it, by default, before the run).
const NODE_FAULT_FILES: [&str; 6] = [
    "src/scenario/mod.rs",
    "src/scenario/parse.rs",
    "src/scenario/write.rs",
    "sim/src/explore/strategy.rs",
    "sim/src/events/cluster.rs",
    "msquic/src/real/cluster.rs",
];

/// The code of `file` before its unit tests (a `mod tests` inline; one
/// in a file of its own is left out anyway).
fn code_before_tests(file: &Path) -> String {
    let code = code(file);
    code.split("#[cfg(test)]\nmod tests {").next().unwrap_or_default().to_string()
}

/// The Rust files of the framework (not the systems, not the tests).
fn framework_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["src", "sim/src", "msquic/src", "cli/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    files
}

/// The README's "Adding a generic action".
fn adding_an_action(root: &Path) -> String {
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = readme.split("### Adding a generic action").nth(1).expect("the README says how to add an action");
    section.split("\n## ").next().unwrap().to_string()
}

#[test]
fn a_new_node_fault_touches_at_most_six_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let section = adding_an_action(root);
    for file in NODE_FAULT_FILES {
        assert!(section.contains(file), "the README's \"Adding a generic action\" names {file}");
    }
    let files = framework_files(root);
    // `pause` and `clock` were the last node faults added: whatever names
    // them is what the next one touches.
    for fault in ["Pause", "Clock"] {
        let naming: Vec<String> = files
            .iter()
            .filter(|file| {
                let code = code_before_tests(file);
                code.contains(&format!("Action::{fault}")) || code.contains(&format!("NodeChange::{fault}"))
            })
            .map(|file| file.strip_prefix(root).unwrap().display().to_string())
            .collect();
        let extra: Vec<&String> = naming.iter().filter(|f| !NODE_FAULT_FILES.contains(&f.as_str())).collect();
        assert!(extra.is_empty(), "`{fault}` is also named in {extra:?}: a new node fault would touch them too");
        assert!(naming.len() <= 6, "{naming:?}");
    }
}

/// The files a new kind of link fault touches, as the README lists them.
const LINK_FAULT_FILES: [&str; 12] = [
    "src/scenario/mod.rs",
    "src/scenario/parse.rs",
    "src/scenario/write.rs",
    "src/scenario/validate.rs",
    "src/engine/links.rs",
    "src/engine/coverage.rs",
    "src/engine/picture/mod.rs",
    "sim/src/explore/shrink.rs",
    "sim/src/explore/strategy.rs",
    "sim/src/events/cluster.rs",
    "sim/src/turmoil/cluster.rs",
    "msquic/src/real/faults.rs",
];

#[test]
fn a_new_link_fault_touches_the_files_the_readme_lists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let section = adding_an_action(root);
    for file in LINK_FAULT_FILES {
        assert!(section.contains(file), "the README's \"Adding a generic action\" names {file}");
    }
    // `latency` was the last link fault added (its change, its coverage
    // bit, the link fields the relays name): whatever names it is what the
    // next one touches.
    let mut naming: Vec<String> = framework_files(root)
        .iter()
        .filter(|file| {
            let code = code_before_tests(file);
            ["LinkChange::Latency", "Active::Latency", "Link { partitioned"].iter().any(|name| code.contains(name))
        })
        .map(|file| file.strip_prefix(root).unwrap().display().to_string())
        .collect();
    let mut listed = LINK_FAULT_FILES.map(String::from).to_vec();
    listed.sort();
    naming.sort();
    assert_eq!(naming, listed, "the files that name `latency` are the README's list");
}
