//! Text → [`Source`]: a hand-written lexer and recursive-descent parser for
//! the grammar in `docs/LANGUAGE.md`, resolving names to scope distances as
//! it goes. Calls are resolved at the end, when every function is known (a
//! function may call one defined after it): each call gets a provisional
//! number while parsing, and one pass renumbers them to function indices.
//!
//! Two guards keep hostile input from overflowing the native stack: the
//! parser's own recursion is limited to [`MAX_DEPTH`] nested constructs, and
//! the tree it builds is measured bottom-up and refused the moment it would
//! nest deeper than [`MAX_DEPTH`] (in main and in each function body). Long
//! sums, long sequences and long lists of functions are built in loops, not
//! by recursion.

use super::ast::{Expr, Function, Source};
use super::program::{MAX_DEPTH, MAX_PARAMS};
use std::collections::HashMap;
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
    /// The digits of an integer literal; `None` when they exceed `u64`.
    Int(Option<u64>),
    Ident(&'s str),
    Let,
    While,
    ArgKw,
    Fn,
    If,
    Else,
    Assign,
    Semi,
    Comma,
    Plus,
    Minus,
    Lt,
    LParen,
    RParen,
    LBrace,
    RBrace,
    Eof,
}

impl fmt::Display for Tok<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Int(Some(n)) => write!(f, "integer `{n}`"),
            Tok::Int(None) => f.write_str("an integer"),
            Tok::Ident(s) => write!(f, "name `{}`", shorten(s)),
            Tok::Let => f.write_str("`let`"),
            Tok::While => f.write_str("`while`"),
            Tok::ArgKw => f.write_str("`arg`"),
            Tok::Fn => f.write_str("`fn`"),
            Tok::If => f.write_str("`if`"),
            Tok::Else => f.write_str("`else`"),
            Tok::Assign => f.write_str("`=`"),
            Tok::Semi => f.write_str("`;`"),
            Tok::Comma => f.write_str("`,`"),
            Tok::Plus => f.write_str("`+`"),
            Tok::Minus => f.write_str("`-`"),
            Tok::Lt => f.write_str("`<`"),
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
            b'0'..=b'9' => {
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                let text = &src[start..i];
                if i < bytes.len() && (bytes[i].is_ascii_alphabetic() || bytes[i] == b'_') {
                    return error(
                        start..i + 1,
                        format!("invalid integer literal `{}…`", shorten(text)),
                    );
                }
                // The sign is the parser's: `-` before digits where an atom
                // starts. The range is checked there, with the sign known.
                Tok::Int(text.parse::<u64>().ok())
            }
            b'A'..=b'Z' | b'a'..=b'z' | b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                match &src[start..i] {
                    "let" => Tok::Let,
                    "while" => Tok::While,
                    "arg" => Tok::ArgKw,
                    "fn" => Tok::Fn,
                    "if" => Tok::If,
                    "else" => Tok::Else,
                    name => Tok::Ident(name),
                }
            }
            _ => {
                let tok = match c {
                    b'=' => Tok::Assign,
                    b';' => Tok::Semi,
                    b'+' => Tok::Plus,
                    b'-' => Tok::Minus,
                    b'<' => Tok::Lt,
                    b',' => Tok::Comma,
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

/// Parses a whole program: its functions, then main. Names and calls are
/// resolved; validity of the result as a [`super::program::Program`] is
/// still checked separately.
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
        defined: HashMap::new(),
        calls: Vec::new(),
    };
    let mut functions = Vec::new();
    while p.peek() == Tok::Fn {
        functions.push(p.function(functions.len())?);
    }
    let (main, _) = p.seq(None)?;
    match p.peek() {
        Tok::Eof => {}
        Tok::RBrace => return error(p.span(), "unmatched `}`"),
        t => return error(p.span(), format!("expected `;` or end of input, found {t}")),
    }
    let mut source = Source { functions, main };
    p.resolve_calls(&mut source)?;
    Ok(source)
}

const FN_MISPLACED: &str =
    "a function is defined only at the top of the program, before the main sequence";

/// A call as parsed, before every function is known.
struct PendingCall<'s> {
    name: &'s str,
    span: Range<usize>,
    args: usize,
}

struct Parser<'s> {
    lexer: Lexer<'s>,
    /// The current token (always lexed).
    cur: Lexed<'s>,
    /// The token after it, lexed only when `peek2` asked for it.
    ahead: Option<Lexed<'s>>,
    /// Whether the token before `cur` was `}` (a `;` may be left out).
    prev_rbrace: bool,
    /// Names of the locals in scope, innermost last (at most [`MAX_DEPTH`]);
    /// in a function, its parameters first.
    scope: Vec<&'s str>,
    /// How many parser functions are active for nested constructs.
    nesting: usize,
    /// The functions defined so far: name → index.
    defined: HashMap<&'s str, usize>,
    /// Every call so far; `Call(i, _)` refers to `calls[i]` until resolved.
    calls: Vec<PendingCall<'s>>,
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

    /// `function = "fn" IDENT "(" [ IDENT { "," IDENT } ] ")" block`; it
    /// will be function number `index`.
    fn function(&mut self, index: usize) -> Result<Function, ParseError> {
        self.bump()?; // `fn`
        let (name, name_span) = match self.bump()? {
            (Tok::Ident(name), span) => (name, span),
            (t, span) => {
                return error(
                    span,
                    format!("expected a function name after `fn`, found {t}"),
                );
            }
        };
        if self.defined.contains_key(name) {
            return error(
                name_span,
                format!("a function named `{}` is already defined", shorten(name)),
            );
        }
        self.expect(Tok::LParen, "after the function name")?;
        let params = self.comma_list("after a parameter", |p, params: &[&'s str]| {
            let (param, span) = match p.bump()? {
                (Tok::Ident(param), span) => (param, span),
                (t, span) => {
                    return error(span, format!("expected a parameter name, found {t}"));
                }
            };
            if params.contains(&param) {
                return error(
                    span,
                    format!(
                        "`{}` is already a parameter of `{}`",
                        shorten(param),
                        shorten(name)
                    ),
                );
            }
            if params.len() == MAX_PARAMS {
                return error(
                    span,
                    format!("`{}` has more than {MAX_PARAMS} parameters", shorten(name)),
                );
            }
            Ok(param)
        })?;
        if self.peek() != Tok::LBrace {
            return error(
                self.span(),
                format!(
                    "expected `{{` to start the body of `{}`, found {}",
                    shorten(name),
                    self.peek()
                ),
            );
        }
        // The body sees its parameters as its outermost locals, in order.
        self.scope = params.clone();
        let (body, _) = self.block()?;
        self.scope.clear();
        self.defined.insert(name, index);
        Ok(Function {
            name: name.to_string(),
            params: params.into_iter().map(str::to_string).collect(),
            body,
        })
    }

    /// Checks every call against the functions (the first mistake in the
    /// text is reported) and renumbers it to its function's index.
    fn resolve_calls(&self, source: &mut Source) -> Result<(), ParseError> {
        if self.calls.is_empty() {
            return Ok(());
        }
        let mut index = Vec::with_capacity(self.calls.len());
        let mut first_error: Option<ParseError> = None;
        for call in &self.calls {
            let found = match self.defined.get(call.name) {
                None => Err(format!("unknown function `{}`", shorten(call.name))),
                Some(&f) if source.functions[f].arity() != call.args => {
                    let params = source.functions[f].arity();
                    Err(format!(
                        "`{}` takes {params} argument{}, {} given",
                        shorten(call.name),
                        if params == 1 { "" } else { "s" },
                        call.args
                    ))
                }
                Some(&f) => Ok(f),
            };
            match found {
                Ok(f) => index.push(f),
                Err(message) => {
                    index.push(0);
                    if first_error
                        .as_ref()
                        .is_none_or(|e| call.span.start < e.span.start)
                    {
                        first_error = Some(ParseError {
                            span: call.span.clone(),
                            message,
                        });
                    }
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let mut todo: Vec<&mut Expr> = source
            .functions
            .iter_mut()
            .map(|f| &mut f.body)
            .chain(std::iter::once(&mut source.main))
            .collect();
        while let Some(e) = todo.pop() {
            match e {
                Expr::Litr(_) | Expr::Arg(_) | Expr::Get(_) => {}
                Expr::Set(_, x) => todo.push(x),
                Expr::Add(a, b)
                | Expr::Let(a, b)
                | Expr::While(a, b)
                | Expr::Then(a, b)
                | Expr::Sub(a, b)
                | Expr::Lt(a, b) => {
                    todo.push(a);
                    todo.push(b);
                }
                Expr::If(c, t, f) => {
                    todo.push(c);
                    todo.push(t);
                    todo.push(f);
                }
                Expr::Call(f, args) => {
                    *f = index[*f];
                    todo.extend(args.iter_mut());
                }
            }
        }
        Ok(())
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
                Tok::Fn => return error(self.span(), FN_MISPLACED),
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

    /// `expr = IDENT "=" expr | "while" expr block | ifexpr | compare`
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
            Tok::If => self.if_expr(),
            _ => self.compare(),
        }
    }

    /// `ifexpr = "if" expr block [ "else" ( block | ifexpr ) ]`; without
    /// `else` the other branch is `0`.
    fn if_expr(&mut self) -> Result<Node, ParseError> {
        // An `else if` chain recurses: counted like any nesting.
        self.enter()?;
        let r = self.if_inner();
        self.leave();
        r
    }

    fn if_inner(&mut self) -> Result<Node, ParseError> {
        let (_, span) = self.bump()?; // `if`
        let (cond, dc) = self.expr()?;
        if self.peek() != Tok::LBrace {
            return error(
                self.span(),
                format!("expected `{{` to start the branch, found {}", self.peek()),
            );
        }
        let (then, dt) = self.block()?;
        let (otherwise, de) = if self.peek() == Tok::Else {
            self.bump()?;
            match self.peek() {
                Tok::LBrace => self.block()?,
                Tok::If => self.if_expr()?,
                t => {
                    return error(
                        self.span(),
                        format!("expected `{{` or `if` after `else`, found {t}"),
                    );
                }
            }
        } else {
            (Expr::Litr(0), 1)
        };
        self.node(Expr::if_(cond, then, otherwise), dc.max(dt).max(de), span)
    }

    /// `compare = sum [ "<" sum ]`: one comparison, never a chain.
    fn compare(&mut self) -> Result<Node, ParseError> {
        let (lhs, dl) = self.sum()?;
        if self.peek() != Tok::Lt {
            return Ok((lhs, dl));
        }
        let (_, span) = self.bump()?;
        let (rhs, dr) = self.sum()?;
        if self.peek() == Tok::Lt {
            return error(
                self.span(),
                "`<` does not chain: parenthesise the comparison on one side, as in `(a < b) < c`",
            );
        }
        self.node(Expr::lt(lhs, rhs), dl.max(dr), span)
    }

    /// `sum = atom { ( "+" | "-" ) atom }`, left associative, built in a loop.
    fn sum(&mut self) -> Result<Node, ParseError> {
        let (mut acc, mut depth) = self.atom()?;
        loop {
            let build = match self.peek() {
                Tok::Plus => Expr::add,
                Tok::Minus => Expr::sub,
                _ => return Ok((acc, depth)),
            };
            let (_, span) = self.bump()?;
            let (rhs, dr) = self.atom()?;
            (acc, depth) = self.node(build(acc, rhs), depth.max(dr), span)?;
        }
    }

    /// The value of an integer literal, negated when `minus` is the span of
    /// the `-` before it; an error when it is outside `i64`.
    fn literal(
        &self,
        digits: Option<u64>,
        span: Range<usize>,
        minus: Option<Range<usize>>,
    ) -> Result<i64, ParseError> {
        let value = match (digits, &minus) {
            (Some(n), None) => i64::try_from(n).ok(),
            (Some(n), Some(_)) => 0i64.checked_sub_unsigned(n),
            (None, _) => None,
        };
        value.map_or_else(
            || {
                let text = &self.lexer.src[span.clone()];
                let sign = if minus.is_some() { "-" } else { "" };
                let start = minus.map_or(span.start, |m| m.start);
                error(
                    start..span.end,
                    format!(
                        "integer literal `{sign}{}` does not fit in 64 bits",
                        shorten(text)
                    ),
                )
            },
            Ok,
        )
    }

    /// `[ item { "," item } ] ")"` after a `(` already read: each item is
    /// read by `item`, which sees the items before it; anything but `,` or
    /// `)` after an item is an error naming `context`.
    fn comma_list<T>(
        &mut self,
        context: &str,
        mut item: impl FnMut(&mut Self, &[T]) -> Result<T, ParseError>,
    ) -> Result<Vec<T>, ParseError> {
        let mut items = Vec::new();
        if self.peek() != Tok::RParen {
            loop {
                let next = item(self, &items)?;
                items.push(next);
                if self.peek() != Tok::Comma {
                    break;
                }
                self.bump()?;
            }
        }
        if self.peek() != Tok::RParen {
            return error(
                self.span(),
                format!("expected `,` or `)` {context}, found {}", self.peek()),
            );
        }
        self.bump()?;
        Ok(items)
    }

    /// `IDENT "(" [ expr { "," expr } ] ")"`, the name already current.
    fn call(&mut self, name: &'s str) -> Result<Node, ParseError> {
        let (_, span) = self.bump()?;
        self.bump()?; // `(`
        let mut depth = 0;
        let context = format!("in the call of `{}`", shorten(name));
        let args = self.comma_list(&context, |p, _| {
            let (arg, d) = p.expr()?;
            depth = depth.max(d);
            Ok(arg)
        })?;
        let pending = self.calls.len();
        self.calls.push(PendingCall {
            name,
            span: span.clone(),
            args: args.len(),
        });
        self.node(Expr::call(pending, args), depth, span)
    }

    /// `atom = INT | "-" INT | "arg" "(" INT ")" | IDENT | call | "(" expr ")" | block`
    fn atom(&mut self) -> Result<Node, ParseError> {
        let span = self.span();
        match self.peek() {
            Tok::Int(n) => {
                self.bump()?;
                Ok((Expr::Litr(self.literal(n, span, None)?), 1))
            }
            Tok::Minus => {
                self.bump()?;
                match self.bump()? {
                    (Tok::Int(n), digits) => {
                        Ok((Expr::Litr(self.literal(n, digits, Some(span))?), 1))
                    }
                    (t, _) => error(
                        span,
                        format!(
                            "`-` where a value starts must begin a negative integer, found {t} \
                             (there is no negation; write `0 - …`)"
                        ),
                    ),
                }
            }
            Tok::ArgKw => {
                self.bump()?;
                self.expect(Tok::LParen, "after `arg`")?;
                let index = match self.bump()? {
                    // Without a `-`, a literal is never negative.
                    (Tok::Int(n), s) => self.literal(n, s, None)?.unsigned_abs() as usize,
                    (Tok::Minus, minus) => match self.bump()? {
                        (Tok::Int(n), s) => {
                            let n = self.literal(n, s.clone(), Some(minus.clone()))?;
                            return error(
                                minus.start..s.end,
                                format!("argument index must be 0 or more, found {n}"),
                            );
                        }
                        (t, s) => {
                            return error(s, format!("expected an argument index, found {t}"));
                        }
                    },
                    (t, s) => return error(s, format!("expected an argument index, found {t}")),
                };
                self.expect(Tok::RParen, "after the argument index")?;
                Ok((Expr::Arg(index), 1))
            }
            Tok::Ident(name) if self.peek2()? == Tok::LParen => self.call(name),
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
            Tok::Fn => error(span, FN_MISPLACED),
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
        assert_eq!(err("1 - x").span, 4..5);
        assert_eq!(err("1 - -x").span, 4..5);
        assert_eq!(err("while 1 2").span, 8..9);
        assert_eq!(err("#").span, 0..1);
    }

    fn source(src: &str) -> Source {
        parse(src).unwrap_or_else(|e| panic!("{src:?}: {e} at {:?}", e.span))
    }

    #[test]
    fn minus_is_a_sign_where_an_atom_starts_and_subtraction_between_atoms() {
        let x = |e: Expr| Expr::let_(Litr(5), e);
        assert_eq!(p("let x = 5; x + -1"), x(Expr::add(Get(0), Litr(-1))));
        assert_eq!(p("let x = 5; x - 1"), x(Expr::sub(Get(0), Litr(1))));
        assert_eq!(p("let x = 5; x-1"), x(Expr::sub(Get(0), Litr(1))));
        assert_eq!(p("let x = 5; x - -1"), x(Expr::sub(Get(0), Litr(-1))));
        assert_eq!(p("let x = 5; x - - 1"), x(Expr::sub(Get(0), Litr(-1))));
        assert_eq!(p("- 7"), Litr(-7));
        assert_eq!(p("-9223372036854775808"), Litr(i64::MIN));
        assert_eq!(
            p("1 - 2 - 3"),
            Expr::sub(Expr::sub(Litr(1), Litr(2)), Litr(3))
        );
        assert_eq!(
            p("1 - 2 + 3"),
            Expr::add(Expr::sub(Litr(1), Litr(2)), Litr(3))
        );
        assert!(err("9223372036854775808").message.contains("does not fit"));
        assert_eq!(err("1 + -9223372036854775809").span, 4..24);
        assert!(err("--1").message.contains("no negation"));
    }

    #[test]
    fn comparison_binds_looser_than_sums_and_does_not_chain() {
        assert_eq!(
            p("1 + 2 < 3 - 4"),
            Expr::lt(Expr::add(Litr(1), Litr(2)), Expr::sub(Litr(3), Litr(4)))
        );
        assert_eq!(
            p("(1 < 2) < 3"),
            Expr::lt(Expr::lt(Litr(1), Litr(2)), Litr(3))
        );
        let e = err("1 < 2 < 3");
        assert_eq!(e.span, 6..7);
        assert!(e.message.contains("chain"));
    }

    #[test]
    fn if_else_chains_and_defaults_to_zero() {
        assert_eq!(p("if 1 { 2 }"), Expr::if_(Litr(1), Litr(2), Litr(0)));
        assert_eq!(
            p("if 1 { 2 } else if 3 { 4 } else { 5 }"),
            Expr::if_(Litr(1), Litr(2), Expr::if_(Litr(3), Litr(4), Litr(5)))
        );
        assert_eq!(
            p("(if 1 { 2 } else { 3 }) + 4"),
            Expr::add(Expr::if_(Litr(1), Litr(2), Litr(3)), Litr(4))
        );
        // Like `while`, an `if` ends its item: what follows is the next one.
        assert_eq!(
            p("if 1 { 2 } 3"),
            Expr::then(Expr::if_(Litr(1), Litr(2), Litr(0)), Litr(3))
        );
        assert!(parse("1 + if 1 { 2 }").is_err());
        assert!(parse("if 1 { 2 } else 3").is_err());
    }

    #[test]
    fn functions_bind_parameters_as_nested_lets_and_resolve_calls_late() {
        let s = source(
            "fn f(a, b) { let c = a; b - c }
             fn g() { f(1, h()) }
             fn h() { 7 }
             let f = 2; g() + f",
        );
        let names: Vec<_> = s.functions.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["f", "g", "h"]);
        assert_eq!(s.functions[0].params, ["a", "b"]);
        assert_eq!(
            s.functions[0].body,
            Expr::let_(Get(1), Expr::sub(Get(1), Get(0)))
        );
        assert_eq!(
            s.functions[1].body,
            Expr::call(0, vec![Litr(1), Expr::call(2, vec![])])
        );
        // A local may share a function's name.
        assert_eq!(
            s.main,
            Expr::let_(Litr(2), Expr::add(Expr::call(1, vec![]), Get(0)))
        );
        // Recursion.
        let s = source(
            "fn r(n) { r(n) }
r(1)",
        );
        assert_eq!(s.functions[0].body, Expr::call(0, vec![Get(0)]));
        // An empty main is 0.
        assert_eq!(source("fn f() { 1 }").main, Litr(0));
    }

    #[test]
    fn a_body_sees_only_its_own_names() {
        assert!(err("let x = 1;\nfn f() { x }").message.contains("function"));
        assert!(
            err("fn f() { x }\nlet x = 1; f()")
                .message
                .contains("unknown name `x`")
        );
        assert!(
            err("fn f(a) { 1 }\nfn g() { a }\n0")
                .message
                .contains("unknown name `a`")
        );
    }

    #[test]
    fn level_two_mistakes_are_located() {
        let at = |src: &str, span: Range<usize>, word: &str| {
            let e = err(src);
            assert_eq!(e.span, span, "{src}: {e}");
            assert!(e.message.contains(word), "{src}: {e}");
        };
        at("g(1)", 0..1, "unknown function `g`");
        at(
            "fn f(a) { a }\nf(1, 2)",
            14..15,
            "takes 1 argument, 2 given",
        );
        at("fn f() { 1 }\nfn f() { 2 }\n0", 16..17, "already defined");
        at("fn f(a, b, a) { 1 }", 11..12, "already a parameter");
        let many = (0..17)
            .map(|i| format!("p{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let too_many = format!("fn f({many}) {{ 1 }}");
        let p16 = too_many.find("p16").unwrap();
        at(&too_many, p16..p16 + 3, "more than 16");
        at("1 < 2 < 3", 6..7, "chain");
        at("1;\nfn f() { 1 }", 3..5, "before the main sequence");
        at("let x = 1; -x", 11..12, "there is no negation");
        at("1\nfn f() { 1 }", 2..4, "before the main sequence");
        // The first mistake in the text, wherever calls are resolved.
        at(
            "fn f() { g(1) }\nfn g() { 0 }\nh()",
            9..10,
            "takes 0 arguments, 1 given",
        );
        assert!(
            parse(&format!(
                "fn f({}) {{ 1 }}",
                &many[..many.rfind(',').unwrap()]
            ))
            .is_ok()
        );
    }

    #[test]
    fn token_soup_never_panics_and_what_parses_validates() {
        const WORDS: &[&str] = &[
            "fn",
            "f",
            "g",
            "(",
            ")",
            ",",
            "{",
            "}",
            "if",
            "else",
            "<",
            "-",
            "+",
            "1",
            "let",
            "x",
            "=",
            ";",
            "while",
            "arg(0)",
            "9223372036854775808",
            "a",
            "\n",
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut parsed = 0;
        for _ in 0..20_000 {
            let len = next() % 24;
            let text: Vec<&str> = (0..len)
                .map(|_| WORDS[(next() % WORDS.len() as u64) as usize])
                .collect();
            let text = text.join(" ");
            if let Ok(source) = parse(&text) {
                let checked = super::super::program::Program::validate(source);
                assert!(checked.is_ok(), "{text:?}: {checked:?}");
                parsed += 1;
            }
        }
        assert!(parsed > 500, "only {parsed} soups parsed");
    }

    #[test]
    fn deep_else_if_chains_are_refused_not_overflowed() {
        let chain = "if 1 { 1 } else ".repeat(100_000) + "{ 0 }";
        assert!(err(&chain).message.contains("limit"));
        let calls = "f(".repeat(100_000) + &")".repeat(100_000);
        assert!(
            err(&format!("fn f(x) {{ x }}\n{calls}"))
                .message
                .contains("limit")
        );
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
