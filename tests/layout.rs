//! The framework imports no bundled system: the core, the simulation library
//! and the MsQuic backend are written for any system. Only the `tandem`
//! binary (sim/src/main.rs, and the benchmarks it carries in sim/src/bench/)
//! links the bundled systems, as a user's own `main` would.

use std::path::{Path, PathBuf};

const BUNDLED: [&str; 2] = ["tandem_pubsub", "tandem_kv"];

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
    for dir in ["src", "sim/src", "msquic/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    let binary = [root.join("sim/src/main.rs"), root.join("sim/src/bench")];
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

#[test]
fn framework_crates_depend_on_no_bundled_system() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for manifest in ["Cargo.toml", "msquic/Cargo.toml"] {
        let text = std::fs::read_to_string(root.join(manifest)).unwrap();
        let deps = text.split("[dependencies]").nth(1).unwrap_or_default().split("\n[").next().unwrap_or_default();
        assert!(
            !deps.contains("tandem-pubsub") && !deps.contains("tandem-kv"),
            "{manifest} depends on a bundled system"
        );
    }
    // tandem-sim names them only as optional dependencies of its binary.
    let sim = std::fs::read_to_string(root.join("sim/Cargo.toml")).unwrap();
    for line in sim.lines().filter(|l| l.starts_with("tandem-pubsub") || l.starts_with("tandem-kv")) {
        assert!(line.contains("optional = true"), "sim/Cargo.toml: {line}");
    }
    assert!(sim.contains("required-features = [\"bundled\"]"), "only the binary needs the bundled systems");
}
