//! The front end: AST, parser, printer, validator and the error reports the
//! command line prints. Nothing here knows about engines.

pub mod ast;
pub mod parser;
pub mod printer;
pub mod program;

use program::Program;
use std::fmt;
use std::ops::Range;

/// An error located in a source text: what the CLI prints compiler style.
#[derive(Clone, Debug)]
pub struct SourceError {
    /// The file name as the user gave it (`-` for standard input).
    pub file: String,
    pub source: String,
    /// Byte span of the offending text.
    pub span: Range<usize>,
    pub message: String,
}

impl SourceError {
    /// 1-based line and column (in characters) of the span's start.
    pub fn line_col(&self) -> (usize, usize) {
        line_col(&self.source, self.span.start)
    }

    /// The full report: the `FILE:LINE:COL: cause` line, then a source
    /// excerpt with the span marked (coloured only if `color`).
    pub fn render(&self, color: bool) -> String {
        use ariadne::{Config, IndexType, Label, Report, ReportKind, Source};
        let mut out = format!("{self}\n");
        let start = self.span.start.min(self.source.len());
        let end = self.span.end.clamp(start, self.source.len());
        let id = self.file.as_str();
        let mut excerpt = Vec::new();
        let written = Report::build(ReportKind::Error, (id, start..end))
            .with_config(
                Config::default()
                    .with_color(color)
                    .with_index_type(IndexType::Byte),
            )
            .with_message(&self.message)
            .with_label(Label::new((id, start..end)).with_message("here"))
            .finish()
            .write((id, Source::from(self.source.as_str())), &mut excerpt);
        if written.is_ok() {
            out.push_str(&String::from_utf8_lossy(&excerpt));
        }
        out
    }
}

/// `FILE:LINE:COL: cause` — the first line of every located error.
impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (line, col) = self.line_col();
        write!(f, "{}:{line}:{col}: {}", self.file, self.message)
    }
}

impl std::error::Error for SourceError {}

/// 1-based line and character column of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let col = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, col)
}

/// Decodes a source file's bytes; invalid UTF-8 is an error at its position.
pub fn decode(file: &str, bytes: Vec<u8>) -> Result<String, SourceError> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let bytes = e.into_bytes();
        // Keep the valid prefix as the excerpt so the position can be shown.
        let source = String::from_utf8_lossy(&bytes[..valid]).into_owned();
        SourceError {
            file: file.to_string(),
            span: valid..valid,
            source,
            message: format!(
                "invalid UTF-8 (byte 0x{:02x}); programs are UTF-8 text",
                bytes[valid]
            ),
        }
    })
}

/// Parses and validates program text: the whole front end in one call.
pub fn compile_source(file: &str, source: &str) -> Result<Program, SourceError> {
    let located = |span: Range<usize>, message: String| SourceError {
        file: file.to_string(),
        source: source.to_string(),
        span,
        message,
    };
    let expr = parser::parse(source).map_err(|e| located(e.span, e.message))?;
    Program::validate(expr).map_err(|e| located(0..0, e.to_string()))
}
