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
        // Show only a window around the span: the lines it covers, cut to
        // a few hundred bytes, so a huge one-line file prints a short excerpt.
        let text = self.source.as_str();
        let start = floor_char(text, self.span.start.min(text.len()));
        let end = floor_char(text, self.span.end.clamp(start, text.len()));
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[end..].find('\n').map_or(text.len(), |i| end + i);
        let mut from = floor_char(text, line_start.max(start.saturating_sub(WINDOW)));
        // ariadne numbers the excerpt's lines from its own start, so start
        // at the top of the file unless that is a lot of text to scan.
        if from == line_start && line_start <= 1 << 20 {
            from = 0;
        }
        let to = floor_char(
            text,
            line_end.min(end.max(start + 1).saturating_add(WINDOW)),
        );
        let (line, _) = self.line_col();
        let id = self.file.as_str();
        let local = start - from..end.min(to) - from;
        let mut excerpt = Vec::new();
        let written = Report::build(ReportKind::Error, (id, local.clone()))
            .with_config(
                Config::default()
                    .with_color(color)
                    .with_index_type(IndexType::Byte),
            )
            .with_message(&self.message)
            .with_label(Label::new((id, local)).with_message("here"))
            .finish()
            .write(
                (
                    id,
                    Source::from(&text[from..to]).with_display_line_offset(if from == 0 {
                        0
                    } else {
                        line - 1
                    }),
                ),
                &mut excerpt,
            );
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

/// Bytes of context an excerpt shows on each side of an error.
const WINDOW: usize = 160;

/// The largest char boundary of `text` at or below `i`.
fn floor_char(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

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
    // Keep the text only up to a little past the error: the excerpt never
    // shows more, and a huge file is not copied for one error message.
    let located = |span: Range<usize>, message: String| SourceError {
        file: file.to_string(),
        source: source[..floor_char(source, span.end.saturating_add(WINDOW + 1))].to_string(),
        span,
        message,
    };
    let expr = parser::parse(source).map_err(|e| located(e.span, e.message))?;
    Program::validate(expr).map_err(|e| located(0..0, e.to_string()))
}
