//! Scenario errors, located by file, line and column.

use std::ops::Range;

/// A rejected scenario: `FILE:LINE:COLUMN: message` (line and column 1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ScenarioError {
    /// The file, as given to the parser.
    pub file: String,
    /// The 1-based line of the offending key or value.
    pub line: usize,
    /// The 1-based column (in characters) of the offending key or value.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

/// An error at a byte range of the source, before it is given a line and column.
#[derive(Debug)]
pub(crate) struct Located {
    /// The offending key or value.
    pub span: Range<usize>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl Located {
    /// An error at `span`.
    pub fn new(span: Range<usize>, message: impl Into<String>) -> Located {
        Located { span, message: message.into() }
    }
}

impl ScenarioError {
    /// Locates `error` in `text`, the contents of `file`.
    pub(crate) fn located(file: &str, text: &str, error: Located) -> ScenarioError {
        let (line, column) = line_column(text, error.span.start);
        ScenarioError { file: file.to_string(), line, column, message: error.message }
    }

    /// A file that could not be read (reported at 1:1).
    pub(crate) fn unreadable(file: &str, error: &std::io::Error) -> ScenarioError {
        ScenarioError {
            file: file.to_string(),
            line: 1,
            column: 1,
            message: format!("cannot read the scenario file: {error}"),
        }
    }
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (before.matches('\n').count() + 1, before[line_start..].chars().count() + 1)
}
