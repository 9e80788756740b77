//! docs/guide.md compiles: every Rust block in it is an excerpt of a file
//! the build compiles (named by the `<!-- from PATH -->` line above the
//! block), every TOML block parses, and its echo scenario passes.

#[path = "../examples/ping.rs"]
#[allow(dead_code)] // the example's own `main`
mod ping;

use std::path::{Path, PathBuf};

use ping::Echo;

/// A line of a guide block that stands for any number of source lines.
const ELIDED: &str = "// ...";

/// A fenced code block of the guide: where it starts, its language, the
/// source it claims to be an excerpt of, and its lines.
struct Block {
    line: usize,
    lang: String,
    from: Option<String>,
    lines: Vec<String>,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().enumerate();
    let mut from = None;
    while let Some((number, line)) = lines.next() {
        let trimmed = line.trim();
        if let Some(path) = trimmed.strip_prefix("<!-- from ").and_then(|rest| rest.strip_suffix(" -->")) {
            from = Some(path.to_string());
            continue;
        }
        let Some(lang) = trimmed.strip_prefix("```") else {
            if !trimmed.is_empty() {
                from = None;
            }
            continue;
        };
        let body = lines.by_ref().map(|(_, l)| l).take_while(|l| l.trim() != "```").map(String::from).collect();
        blocks.push(Block { line: number + 1, lang: lang.to_string(), from: from.take(), lines: body });
    }
    blocks
}

/// Whether `block` matches `source` from its start, an [`ELIDED`] line
/// matching any run of source lines (lines compared without their
/// indentation).
fn matches_at(block: &[&str], source: &[&str]) -> bool {
    match block.split_first() {
        None => true,
        Some((&ELIDED, rest)) => (0..=source.len()).any(|skip| matches_at(rest, &source[skip..])),
        Some((line, rest)) => source.split_first().is_some_and(|(s, more)| s == line && matches_at(rest, more)),
    }
}

fn is_excerpt(block: &[String], source: &str) -> bool {
    let block: Vec<&str> = block.iter().map(|l| l.trim()).collect();
    let source: Vec<&str> = source.lines().map(str::trim).collect();
    (0..source.len()).any(|start| matches_at(&block, &source[start..]))
}

#[test]
fn every_rust_block_of_the_guide_is_an_excerpt_of_compiled_code() {
    let guide = std::fs::read_to_string(root().join("docs/guide.md")).expect("the guide");
    let mut checked = 0;
    for block in blocks(&guide).iter().filter(|b| b.lang.starts_with("rust")) {
        let at = format!("docs/guide.md:{}", block.line);
        assert_eq!(block.lang, "rust", "{at}: a block marked `{}` is not compiled", block.lang);
        let from = block.from.as_ref().unwrap_or_else(|| panic!("{at}: no `<!-- from PATH -->` line above the block"));
        let source = std::fs::read_to_string(root().join(from)).unwrap_or_else(|e| panic!("{at}: {from}: {e}"));
        assert!(is_excerpt(&block.lines, &source), "{at}: the block is not an excerpt of {from}");
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} Rust blocks found");
}

#[test]
fn every_toml_block_of_the_guide_parses_and_its_excerpts_match() {
    let guide = std::fs::read_to_string(root().join("docs/guide.md")).expect("the guide");
    for block in blocks(&guide).iter().filter(|b| b.lang == "toml") {
        let at = format!("docs/guide.md:{}", block.line);
        let text = block.lines.join("\n");
        text.parse::<toml::Table>().unwrap_or_else(|e| panic!("{at}: {e}"));
        if let Some(from) = &block.from {
            let source = std::fs::read_to_string(root().join(from)).unwrap_or_else(|e| panic!("{at}: {from}: {e}"));
            assert!(is_excerpt(&block.lines, &source), "{at}: the block is not an excerpt of {from}");
        }
    }
}

#[test]
fn an_excerpt_must_match_in_order() {
    let source = "fn a() {\n    one();\n    two();\n}\n";
    let lines = |text: &str| text.lines().map(String::from).collect::<Vec<_>>();
    assert!(is_excerpt(&lines("fn a() {\n// ...\n}"), source));
    assert!(is_excerpt(&lines("two();\n}"), source));
    assert!(!is_excerpt(&lines("two();\none();"), source));
    assert!(!is_excerpt(&lines("fn a() {\nthree();\n}"), source));
}

#[test]
fn echo_scenarios() {
    tandem_sim::testing::check_file(Echo, "examples/ping.toml");
}
