//! [`Expr`] or [`Source`] → text that parses back to the same tree.
//!
//! Locals are named after their scope level (`a`, `b`, … then `v27`), so a
//! name never needs shadowing to be right; in a function, a `let` whose
//! level name is a parameter's takes a `_` suffix until it is not. `Then`/
//! `Let` chains print as the items of a sequence; wherever a sequence is not
//! allowed (an operand, the left side of `;`) they print as a `{ … }` block,
//! which adds no node. Loops, branches and assignments inside an operand or
//! a condition are parenthesised.

use super::ast::{Expr, Function, Source};
use std::fmt::Write;

/// Prints a tree without functions as program text, one item per line,
/// indented by block. A `Call` in it needs [`print_source`] to be named.
pub fn print(e: &Expr) -> String {
    print_parts(&[], e)
}

/// Prints a whole program: its functions, then main.
pub fn print_source(source: &Source) -> String {
    print_parts(&source.functions, &source.main)
}

fn print_parts(functions: &[Function], main: &Expr) -> String {
    let mut p = Printer {
        out: String::new(),
        indent: 0,
        names: Vec::new(),
        params: &[],
        functions,
    };
    for f in functions {
        p.function(f);
    }
    p.params = &[];
    p.seq(main);
    p.out.push('\n');
    p.out
}

struct Printer<'a> {
    out: String,
    indent: usize,
    /// Names of the locals in scope, innermost last.
    names: Vec<String>,
    /// The parameters of the function being printed (no `let` takes them).
    params: &'a [String],
    functions: &'a [Function],
}

fn local_name(level: usize) -> String {
    const NAMES: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    match NAMES.get(level) {
        Some(&c) => (c as char).to_string(),
        None => format!("v{level}"),
    }
}

impl<'a> Printer<'a> {
    fn name(&self, d: usize) -> &str {
        &self.names[self.names.len() - 1 - d]
    }

    /// The name of a new `let`: its level's, made unlike every parameter.
    fn fresh(&self) -> String {
        let mut name = local_name(self.names.len());
        while self.params.contains(&name) {
            name.push('_');
        }
        name
    }

    fn newline(&mut self) {
        self.out.push('\n');
        for _ in 0..self.indent {
            self.out.push_str("    ");
        }
    }

    fn function(&mut self, f: &'a Function) {
        let _ = write!(self.out, "fn {}({}) ", f.name, f.params.join(", "));
        self.names = f.params.clone();
        self.params = &f.params;
        self.block(&f.body);
        self.names.clear();
        self.out.push('\n');
    }

    /// A sequence: `Then` and `Let` chains unfold into items.
    fn seq(&mut self, e: &Expr) {
        let outer = self.names.len();
        let mut e = e;
        loop {
            match e {
                Expr::Then(a, b) => {
                    self.item(a);
                    self.out.push(';');
                    self.newline();
                    e = b;
                }
                Expr::Let(init, body) => {
                    let name = self.fresh();
                    let _ = write!(self.out, "let {name} = ");
                    self.expr(init);
                    self.out.push(';');
                    self.newline();
                    self.names.push(name);
                    e = body;
                }
                _ => {
                    self.item(e);
                    break;
                }
            }
        }
        self.names.truncate(outer);
    }

    /// An item that is not the last of its sequence: a chain must be a block
    /// so it does not merge into the enclosing sequence.
    fn item(&mut self, e: &Expr) {
        match e {
            Expr::Then(..) | Expr::Let(..) => self.block(e),
            _ => self.expr(e),
        }
    }

    fn block(&mut self, e: &Expr) {
        if matches!(e, Expr::Litr(0)) {
            self.out.push_str("{}");
            return;
        }
        self.out.push('{');
        self.indent += 1;
        self.newline();
        self.seq(e);
        self.indent -= 1;
        self.newline();
        self.out.push('}');
    }

    /// `expr` of the grammar: assignment, loop, branch or comparison.
    fn expr(&mut self, e: &Expr) {
        match e {
            Expr::Set(d, v) => {
                let name = self.name(*d).to_string();
                let _ = write!(self.out, "{name} = ");
                self.expr_value(v);
            }
            Expr::While(c, body) => {
                self.out.push_str("while ");
                self.expr_value(c);
                self.out.push(' ');
                self.block(body);
            }
            Expr::If(c, t, f) => {
                self.out.push_str("if ");
                self.expr_value(c);
                self.out.push(' ');
                self.block(t);
                match &**f {
                    Expr::Litr(0) => {}
                    Expr::If(..) => {
                        self.out.push_str(" else ");
                        self.expr(f);
                    }
                    _ => {
                        self.out.push_str(" else ");
                        self.block(f);
                    }
                }
            }
            Expr::Lt(a, b) => {
                self.sum(a);
                self.out.push_str(" < ");
                self.sum(b);
            }
            _ => self.sum(e),
        }
    }

    /// An `expr` position: chains need braces, the rest prints as is.
    fn expr_value(&mut self, e: &Expr) {
        match e {
            Expr::Then(..) | Expr::Let(..) => self.block(e),
            // A condition ending in a block would swallow the body's `{`,
            // so parenthesise nested assignments, loops and branches.
            Expr::Set(..) | Expr::While(..) | Expr::If(..) => {
                self.out.push('(');
                self.expr(e);
                self.out.push(')');
            }
            _ => self.expr(e),
        }
    }

    /// `sum`: left-nested `Add`s and `Sub`s need no parentheses.
    fn sum(&mut self, e: &Expr) {
        match e {
            Expr::Add(a, b) | Expr::Sub(a, b) => {
                self.sum(a);
                self.out.push_str(if matches!(e, Expr::Add(..)) {
                    " + "
                } else {
                    " - "
                });
                self.atom(b);
            }
            _ => self.atom(e),
        }
    }

    fn atom(&mut self, e: &Expr) {
        match e {
            Expr::Litr(n) => {
                let _ = write!(self.out, "{n}");
            }
            Expr::Arg(i) => {
                let _ = write!(self.out, "arg({i})");
            }
            Expr::Get(d) => {
                let name = self.name(*d).to_string();
                self.out.push_str(&name);
            }
            Expr::Call(f, args) => {
                match self.functions.get(*f) {
                    Some(function) => self.out.push_str(&function.name),
                    None => {
                        let _ = write!(self.out, "f{f}");
                    }
                }
                self.out.push('(');
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(", ");
                    }
                    self.expr_value(a);
                }
                self.out.push(')');
            }
            Expr::Then(..) | Expr::Let(..) => self.block(e),
            Expr::Add(..)
            | Expr::Sub(..)
            | Expr::Lt(..)
            | Expr::Set(..)
            | Expr::While(..)
            | Expr::If(..) => {
                self.out.push('(');
                self.expr(e);
                self.out.push(')');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::parser::parse;

    #[test]
    fn prints_the_benchmark_readably() {
        let e = parse(include_str!("../../workloads/sum.vm")).unwrap();
        let text = print_source(&e);
        assert_eq!(parse(&text).unwrap(), e, "{text}");
        assert!(text.contains("while b {"), "{text}");
    }

    #[test]
    fn a_let_never_takes_a_parameters_name() {
        // The let's level name would be `b`, the parameter's name.
        let e = parse("fn f(b) { let c = b; b + c }\nf(1)").unwrap();
        let text = print_source(&e);
        assert!(text.contains("let b_ = b;"), "{text}");
        assert_eq!(parse(&text).unwrap(), e, "{text}");
    }

    #[test]
    fn tricky_shapes_round_trip() {
        for src in [
            "{ 1; 2 }; 3",
            "1 + (2 + 3)",
            "let x = 1; x + { let y = 2; y }",
            "let x = 1; while (x = 0) { }; x",
            "let x = 1; while (while 0 {}) { x = { 1; 2 } }",
            "-9223372036854775808 + -1",
            "let x = 1; x = (x = 2)",
            "{ let x = 1; x }; 4",
            "1; {}",
            // Level 2.
            "fn fib(n) { if n < 2 { n } else { fib(n - 1) + fib(n - 2) } }\nfib(arg(0))",
            "1 - (2 - 3)",
            "(1 < 2) < 3",
            "1 < (2 < 3)",
            "let x = 1; x - -1",
            "-9223372036854775808 - -9223372036854775808",
            "if 1 { 2 } else if 3 { 4 } else { 5 }",
            "if 1 { 2 } else { if 3 { 4 } }",
            "if (if 1 { 2 }) { 3 }",
            "while (if 1 { 0 }) { }",
            "(if 1 { 2 } else { 3 }) - 4",
            "let x = 0; if x = 1 { x }",
            "fn f(a, b) { a - b }\nlet x = 0; f(x = 2, { let y = 3; y })",
            "fn f(b) { let a = b; let b = a; a - b }\nf(1)",
            "fn a(a) { a }\nlet a = 1; a(a)",
            "fn f() { g() }\nfn g() { 1 }\n",
        ] {
            let e = parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
            let text = print_source(&e);
            assert_eq!(parse(&text).unwrap(), e, "{src} printed as {text}");
        }
    }
}
