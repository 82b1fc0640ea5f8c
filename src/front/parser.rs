//! Text → [`Expr`]: a hand-written lexer and recursive-descent parser for the
//! grammar in `docs/LANGUAGE.md`, resolving names to scope distances as it goes.
//!
//! Two guards keep hostile input from overflowing the native stack: the
//! parser's own recursion is limited to [`MAX_DEPTH`] nested constructs, and
//! the tree it builds is measured bottom-up and refused the moment it would
//! nest deeper than [`MAX_DEPTH`]. Long sums and long sequences are built in
//! loops, not by recursion.

use super::ast::{Expr, Source};
use super::program::MAX_DEPTH;
use std::fmt;
use std::ops::Range;

/// A syntax or name error, with the byte span where it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub span: Range<usize>,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseError {}

/// `text` cut to a length fit for a one-line message.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

fn error<T>(span: Range<usize>, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        span,
        message: message.into(),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok<'s> {
    Int(i64),
    Ident(&'s str),
    Let,
    While,
    ArgKw,
    Assign,
    Semi,
    Plus,
    LParen,
    RParen,
    LBrace,
    RBrace,
    Eof,
}

impl fmt::Display for Tok<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Int(n) => write!(f, "integer `{n}`"),
            Tok::Ident(s) => write!(f, "name `{}`", shorten(s)),
            Tok::Let => f.write_str("`let`"),
            Tok::While => f.write_str("`while`"),
            Tok::ArgKw => f.write_str("`arg`"),
            Tok::Assign => f.write_str("`=`"),
            Tok::Semi => f.write_str("`;`"),
            Tok::Plus => f.write_str("`+`"),
            Tok::LParen => f.write_str("`(`"),
            Tok::RParen => f.write_str("`)`"),
            Tok::LBrace => f.write_str("`{`"),
            Tok::RBrace => f.write_str("`}`"),
            Tok::Eof => f.write_str("end of input"),
        }
    }
}

type Lexed<'s> = (Tok<'s>, Range<usize>);

/// A streaming lexer: one token per call, so memory does not grow with the
/// input and an error near the start of a huge file is found at once.
struct Lexer<'s> {
    src: &'s str,
    pos: usize,
}

impl<'s> Lexer<'s> {
    /// The next token; `Eof` (again and again) at the end.
    fn next(&mut self) -> Result<Lexed<'s>, ParseError> {
        let src = self.src;
        let bytes = src.as_bytes();
        let mut i = self.pos;
        // Whitespace and comments.
        loop {
            match bytes.get(i) {
                Some(b' ' | b'\t' | b'\n' | b'\r') => i += 1,
                Some(b'/') if bytes.get(i + 1) == Some(&b'/') => {
                    i += bytes[i..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .unwrap_or(bytes.len() - i);
                }
                _ => break,
            }
        }
        let start = i;
        let Some(&c) = bytes.get(i) else {
            self.pos = i;
            return Ok((Tok::Eof, src.len()..src.len()));
        };
        let tok = match c {
            b'-' | b'0'..=b'9' => {
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                let text = &src[start..i];
                if text == "-" {
                    return error(
                        start..i,
                        "`-` must start a negative integer literal (there is no subtraction)",
                    );
                }
                if i < bytes.len() && (bytes[i].is_ascii_alphabetic() || bytes[i] == b'_') {
                    return error(
                        start..i + 1,
                        format!("invalid integer literal `{}…`", shorten(text)),
                    );
                }
                match text.parse::<i64>() {
                    Ok(n) => Tok::Int(n),
                    Err(_) => {
                        return error(
                            start..i,
                            format!(
                                "integer literal `{}` does not fit in 64 bits",
                                shorten(text)
                            ),
                        );
                    }
                }
            }
            b'A'..=b'Z' | b'a'..=b'z' | b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                match &src[start..i] {
                    "let" => Tok::Let,
                    "while" => Tok::While,
                    "arg" => Tok::ArgKw,
                    name => Tok::Ident(name),
                }
            }
            _ => {
                let tok = match c {
                    b'=' => Tok::Assign,
                    b';' => Tok::Semi,
                    b'+' => Tok::Plus,
                    b'(' => Tok::LParen,
                    b')' => Tok::RParen,
                    b'{' => Tok::LBrace,
                    b'}' => Tok::RBrace,
                    _ => {
                        let ch = src[start..].chars().next().unwrap_or('?');
                        return error(
                            start..start + ch.len_utf8(),
                            format!("unexpected character {ch:?}"),
                        );
                    }
                };
                i += 1;
                tok
            }
        };
        self.pos = i;
        Ok((tok, start..i))
    }
}

/// Parses a whole program. Names are resolved; validity of the result as a
/// [`super::program::Program`] is still checked separately.
pub fn parse(src: &str) -> Result<Source, ParseError> {
    let mut lexer = Lexer { src, pos: 0 };
    let cur = lexer.next()?;
    let mut p = Parser {
        lexer,
        cur,
        ahead: None,
        prev_rbrace: false,
        scope: Vec::new(),
        nesting: 0,
    };
    let (e, _) = p.seq(None)?;
    match p.peek() {
        Tok::Eof => Ok(Source::from(e)),
        Tok::RBrace => error(p.span(), "unmatched `}`"),
        t => error(p.span(), format!("expected `;` or end of input, found {t}")),
    }
}

struct Parser<'s> {
    lexer: Lexer<'s>,
    /// The current token (always lexed).
    cur: Lexed<'s>,
    /// The token after it, lexed only when `peek2` asked for it.
    ahead: Option<Lexed<'s>>,
    /// Whether the token before `cur` was `}` (a `;` may be left out).
    prev_rbrace: bool,
    /// Names of the locals in scope, innermost last (at most [`MAX_DEPTH`]).
    scope: Vec<&'s str>,
    /// How many parser functions are active for nested constructs.
    nesting: usize,
}

/// A parsed subtree and its depth (a leaf is 1).
type Node = (Expr, usize);

impl<'s> Parser<'s> {
    fn peek(&self) -> Tok<'s> {
        self.cur.0
    }
    fn peek2(&mut self) -> Result<Tok<'s>, ParseError> {
        if self.ahead.is_none() {
            self.ahead = Some(self.lexer.next()?);
        }
        Ok(self.ahead.as_ref().map_or(Tok::Eof, |t| t.0))
    }
    fn span(&self) -> Range<usize> {
        self.cur.1.clone()
    }
    fn bump(&mut self) -> Result<Lexed<'s>, ParseError> {
        let next = match self.ahead.take() {
            Some(t) => t,
            None => self.lexer.next()?,
        };
        let t = std::mem::replace(&mut self.cur, next);
        self.prev_rbrace = t.0 == Tok::RBrace;
        Ok(t)
    }
    fn expect(&mut self, want: Tok<'s>, context: &str) -> Result<Range<usize>, ParseError> {
        if self.peek() == want {
            Ok(self.bump()?.1)
        } else {
            error(
                self.span(),
                format!("expected {want} {context}, found {}", self.peek()),
            )
        }
    }

    /// Enters one nested construct; refuses past [`MAX_DEPTH`].
    fn enter(&mut self) -> Result<(), ParseError> {
        self.nesting += 1;
        if self.nesting > MAX_DEPTH {
            return error(
                self.span(),
                format!("program nests deeper than the limit of {MAX_DEPTH}"),
            );
        }
        Ok(())
    }
    fn leave(&mut self) {
        self.nesting -= 1;
    }

    /// Builds a node over children, refusing trees deeper than the limit.
    fn node(&self, e: Expr, child_depth: usize, at: Range<usize>) -> Result<Node, ParseError> {
        let depth = child_depth + 1;
        if depth > MAX_DEPTH {
            return error(
                at,
                format!("program nests deeper than the limit of {MAX_DEPTH}"),
            );
        }
        Ok((e, depth))
    }

    fn resolve(&self, name: &str, span: Range<usize>) -> Result<usize, ParseError> {
        match self.scope.iter().rposition(|n| *n == name) {
            Some(i) => Ok(self.scope.len() - 1 - i),
            None => error(span, format!("unknown name `{}`", shorten(name))),
        }
    }

    /// `seq = [ item { sep item } [";"] ]`, up to `}` (if `closing`) or EOF.
    fn seq(&mut self, closing: Option<Range<usize>>) -> Result<Node, ParseError> {
        enum Item {
            Let(Node, Range<usize>),
            Expr(Node, Range<usize>),
        }
        let outer_scope = self.scope.len();
        let mut items: Vec<Item> = Vec::new();
        loop {
            match self.peek() {
                Tok::Eof | Tok::RBrace => break,
                _ => {}
            }
            let start = self.span();
            // Every item but the last is a `Then`/`Let` around the rest, and
            // every local in scope is a `Let` around us: either count alone
            // bounds the depth from below. Refusing here keeps hostile input
            // (10⁶ items, 10⁶ `let`s) from being collected, and the name
            // lookups in `resolve` short.
            if items.len() >= MAX_DEPTH || self.scope.len() >= MAX_DEPTH {
                return error(
                    start,
                    format!("program nests deeper than the limit of {MAX_DEPTH}"),
                );
            }
            let ends_with_brace;
            if self.peek() == Tok::Let {
                self.bump()?;
                let (name, _) = match self.bump()? {
                    (Tok::Ident(name), span) => (name, span),
                    (t, span) => {
                        return error(span, format!("expected a name after `let`, found {t}"));
                    }
                };
                self.expect(Tok::Assign, "after the name in `let`")?;
                let init = self.expr()?;
                ends_with_brace = self.prev_rbrace;
                self.scope.push(name);
                items.push(Item::Let(init, start));
            } else {
                let e = self.expr()?;
                ends_with_brace = self.prev_rbrace;
                items.push(Item::Expr(e, start));
            }
            match self.peek() {
                Tok::Semi => {
                    self.bump()?;
                }
                Tok::Eof | Tok::RBrace => break,
                _ if ends_with_brace => {}
                t => {
                    let what = if closing.is_some() {
                        "`;` or `}`"
                    } else {
                        "`;` or end of input"
                    };
                    return error(self.span(), format!("expected {what}, found {t}"));
                }
            }
        }
        self.scope.truncate(outer_scope);
        if let Some(open) = closing
            && self.peek() != Tok::RBrace
        {
            return error(
                open,
                "unclosed `{`: no matching `}` before the end of input",
            );
        }
        // Fold from the right without recursion: `a; rest` is Then(a, rest).
        let mut acc: Option<Node> = None;
        while let Some(item) = items.pop() {
            acc = Some(match (item, acc) {
                (Item::Let(_, span), None) => {
                    return error(
                        span,
                        "`let` has no body: it must be followed by at least one item in its block",
                    );
                }
                (Item::Expr(e, _), None) => e,
                (Item::Let((init, di), span), Some((body, db))) => {
                    self.node(Expr::let_(init, body), di.max(db), span)?
                }
                (Item::Expr((e, de), span), Some((rest, dr))) => {
                    self.node(Expr::then(e, rest), de.max(dr), span)?
                }
            });
        }
        Ok(acc.unwrap_or((Expr::Litr(0), 1)))
    }

    /// `expr = IDENT "=" expr | "while" expr block | sum`
    fn expr(&mut self) -> Result<Node, ParseError> {
        self.enter()?;
        let r = self.expr_inner();
        self.leave();
        r
    }

    fn expr_inner(&mut self) -> Result<Node, ParseError> {
        let first = self.peek();
        let assigns = matches!(first, Tok::Ident(_)) && self.peek2()? == Tok::Assign;
        match first {
            Tok::Ident(name) if assigns => {
                let (_, span) = self.bump()?;
                self.bump()?;
                let d = self.resolve(name, span.clone())?;
                let (value, dv) = self.expr()?;
                self.node(Expr::set(d, value), dv, span)
            }
            Tok::While => {
                let (_, span) = self.bump()?;
                let (cond, dc) = self.expr()?;
                if self.peek() != Tok::LBrace {
                    return error(
                        self.span(),
                        format!(
                            "expected `{{` to start the loop body, found {}",
                            self.peek()
                        ),
                    );
                }
                let (body, db) = self.block()?;
                self.node(Expr::while_(cond, body), dc.max(db), span)
            }
            _ => self.sum(),
        }
    }

    /// `sum = atom { "+" atom }`, left associative, built in a loop.
    fn sum(&mut self) -> Result<Node, ParseError> {
        let (mut acc, mut depth) = self.atom()?;
        while self.peek() == Tok::Plus {
            let (_, span) = self.bump()?;
            let (rhs, dr) = self.atom()?;
            (acc, depth) = self.node(Expr::add(acc, rhs), depth.max(dr), span)?;
        }
        Ok((acc, depth))
    }

    /// `atom = INT | "arg" "(" INT ")" | IDENT | "(" expr ")" | block`
    fn atom(&mut self) -> Result<Node, ParseError> {
        let span = self.span();
        match self.peek() {
            Tok::Int(n) => {
                self.bump()?;
                Ok((Expr::Litr(n), 1))
            }
            Tok::ArgKw => {
                self.bump()?;
                self.expect(Tok::LParen, "after `arg`")?;
                let index = match self.bump()? {
                    (Tok::Int(n), s) => match usize::try_from(n) {
                        Ok(i) => i,
                        Err(_) => {
                            return error(
                                s,
                                format!("argument index must be 0 or more, found {n}"),
                            );
                        }
                    },
                    (t, s) => return error(s, format!("expected an argument index, found {t}")),
                };
                self.expect(Tok::RParen, "after the argument index")?;
                Ok((Expr::Arg(index), 1))
            }
            Tok::Ident(name) => {
                self.bump()?;
                Ok((Expr::Get(self.resolve(name, span)?), 1))
            }
            Tok::LParen => {
                self.bump()?;
                let inner = self.expr()?;
                if self.peek() != Tok::RParen {
                    return error(
                        self.span(),
                        format!(
                            "expected `)` to close the `(` at byte {}, found {}",
                            span.start,
                            self.peek()
                        ),
                    );
                }
                self.bump()?;
                Ok(inner)
            }
            Tok::LBrace => self.block(),
            Tok::Let => error(
                span,
                "`let` is only allowed as an item of a sequence; wrap it in `{ }` to use it as a value",
            ),
            Tok::Eof => error(span, "expected an expression, found end of input"),
            t => error(span, format!("expected an expression, found {t}")),
        }
    }

    /// `block = "{" seq "}"`
    fn block(&mut self) -> Result<Node, ParseError> {
        // Not counted as nesting: the items inside are, through `expr`.
        let open = self.expect(Tok::LBrace, "to start a block")?;
        let r = self.seq(Some(open))?;
        self.bump()?; // the `}` checked by `seq`
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Expr::*;

    fn p(src: &str) -> Expr {
        parse(src)
            .unwrap_or_else(|e| panic!("{src:?}: {e} at {:?}", e.span))
            .main
    }

    fn err(src: &str) -> ParseError {
        parse(src).expect_err(src)
    }

    #[test]
    fn parses_the_original_benchmark() {
        let src = include_str!("../../workloads/sum.vm");
        let want = "Let(Litr(0), Then(Let(Arg(0), While(Get(0), Then(Set(1, Add(Get(1), Arg(1))), Set(0, Add(Get(0), Litr(-1)))))), Get(0)))";
        assert_eq!(format!("{:?}", p(src)), want);
    }

    #[test]
    fn empty_forms_are_zero() {
        assert_eq!(p(""), Litr(0));
        assert_eq!(p("  // nothing\n"), Litr(0));
        assert_eq!(p("{}"), Litr(0));
        assert_eq!(p("5;"), Litr(5));
    }

    #[test]
    fn sums_are_left_associative_and_greedy() {
        assert_eq!(
            p("1 + 2 + 3"),
            Expr::add(Expr::add(Litr(1), Litr(2)), Litr(3))
        );
        assert_eq!(p("{ 1 } + 1"), Expr::add(Litr(1), Litr(1)));
        assert_eq!(p("let x1 = 0; x1 = 0; 1").kind(), "Let");
    }

    #[test]
    fn separator_may_be_left_out_after_a_brace() {
        let e = p("let x = 1; while x { x = 0 } x");
        assert_eq!(
            format!("{e:?}"),
            "Let(Litr(1), Then(While(Get(0), Set(0, Litr(0))), Get(0)))"
        );
        assert!(parse("1 2").is_err());
    }

    #[test]
    fn shadowing_resolves_to_the_innermost() {
        assert_eq!(
            p("let x = 1; let x = 2; x"),
            Expr::let_(Litr(1), Expr::let_(Litr(2), Get(0)))
        );
        assert_eq!(
            p("let x = 1; let y = 2; x"),
            Expr::let_(Litr(1), Expr::let_(Litr(2), Get(1)))
        );
        // A block's `let` ends with the block.
        assert!(parse("{ let y = 1; y }; y").is_err());
    }

    #[test]
    fn errors_carry_spans() {
        assert_eq!(err("let x = 1").span, 0..3);
        assert_eq!(err("1 + zz").span, 4..6);
        assert_eq!(err("arg(-1)").span, 4..6);
        assert_eq!(err("99999999999999999999").span, 0..20);
        assert_eq!(err("{ 1").span, 0..1);
        assert_eq!(err("1 }").span, 2..3);
        assert_eq!(err("1 - 2").span, 2..3);
        assert_eq!(err("while 1 2").span, 8..9);
        assert_eq!(err("#").span, 0..1);
    }

    #[test]
    fn deep_input_is_refused_not_overflowed() {
        let parens = "(".repeat(100_000) + "1" + &")".repeat(100_000);
        assert!(err(&parens).message.contains("limit"));
        let sum = vec!["1"; 100_000].join(" + ");
        assert!(err(&sum).message.contains("limit"));
        let lets: String = (0..100_000)
            .map(|i| format!("let a{i} = 1;"))
            .collect::<String>()
            + "0";
        assert!(err(&lets).message.contains("limit"));
        let ok = vec!["1"; MAX_DEPTH].join(" + ");
        assert_eq!(p(&ok).depth(), MAX_DEPTH);
    }
}
