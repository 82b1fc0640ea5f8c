//! [`Expr`] → text that parses back to the same tree.
//!
//! Locals are named after their scope level (`a`, `b`, … then `v27`), so a
//! name never needs shadowing to be right. `Then`/`Let` chains print as the
//! items of a sequence; wherever a sequence is not allowed (an operand, the
//! left side of `;`) they print as a `{ … }` block, which adds no node.

use super::ast::Expr;
use std::fmt::Write;

/// Prints `e` as program text, one item per line, indented by block.
pub fn print(e: &Expr) -> String {
    let mut p = Printer {
        out: String::new(),
        indent: 0,
        scope: 0,
    };
    p.seq(e);
    p.out.push('\n');
    p.out
}

struct Printer {
    out: String,
    indent: usize,
    /// Locals in scope at the point being printed.
    scope: usize,
}

fn local_name(level: usize) -> String {
    const NAMES: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    match NAMES.get(level) {
        Some(&c) => (c as char).to_string(),
        None => format!("v{level}"),
    }
}

impl Printer {
    fn name(&self, d: usize) -> String {
        local_name(self.scope - 1 - d)
    }

    fn newline(&mut self) {
        self.out.push('\n');
        for _ in 0..self.indent {
            self.out.push_str("    ");
        }
    }

    /// A sequence: `Then` and `Let` chains unfold into items.
    fn seq(&mut self, e: &Expr) {
        let outer = self.scope;
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
                    let _ = write!(self.out, "let {} = ", local_name(self.scope));
                    self.expr(init);
                    self.out.push(';');
                    self.newline();
                    self.scope += 1;
                    e = body;
                }
                _ => {
                    self.item(e);
                    break;
                }
            }
        }
        self.scope = outer;
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

    /// `expr` of the grammar: assignment, loop or sum.
    fn expr(&mut self, e: &Expr) {
        match e {
            Expr::Set(d, v) => {
                let name = self.name(*d);
                let _ = write!(self.out, "{name} = ");
                self.expr_value(v);
            }
            Expr::While(c, body) => {
                self.out.push_str("while ");
                self.expr_value(c);
                self.out.push(' ');
                self.block(body);
            }
            _ => self.sum(e),
        }
    }

    /// An `expr` position: chains need braces, the rest prints as is.
    fn expr_value(&mut self, e: &Expr) {
        match e {
            Expr::Then(..) | Expr::Let(..) => self.block(e),
            // A loop condition ending in a block would swallow the body's
            // `{`, so parenthesise nested assignments and loops.
            Expr::Set(..) | Expr::While(..) => {
                self.out.push('(');
                self.expr(e);
                self.out.push(')');
            }
            _ => self.sum(e),
        }
    }

    /// `sum`: left-nested `Add`s need no parentheses.
    fn sum(&mut self, e: &Expr) {
        match e {
            Expr::Add(a, b) => {
                self.sum(a);
                self.out.push_str(" + ");
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
                let name = self.name(*d);
                self.out.push_str(&name);
            }
            Expr::Then(..) | Expr::Let(..) => self.block(e),
            Expr::Add(..) | Expr::Set(..) | Expr::While(..) => {
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
        let text = print(&e);
        assert_eq!(parse(&text).unwrap(), e, "{text}");
        assert!(text.contains("while b {"), "{text}");
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
        ] {
            let e = parse(src).unwrap();
            let text = print(&e);
            assert_eq!(parse(&text).unwrap(), e, "{src} printed as {text}");
        }
    }
}
