//! Builds a *valid* AST from arbitrary bytes, so the structure-aware target
//! spends its time in the engines rather than in the parser's error paths.
//!
//! Every node starts with one tag byte. Locals are resolved modulo the
//! number in scope (a `Get`/`Set` with nothing in scope becomes a literal),
//! depth is capped at [`MAX_DEPTH`], and when the bytes run out every open
//! node is finished with leaves. Two tags exist to reach interesting states
//! quickly: a counted loop (`let i = n; while i { body; i = i + -1 }`) and a
//! whole workload embedded as a subtree (workloads are closed programs, so
//! they are valid in any scope). The four arguments come first, one byte
//! each, so seed files can be written by hand (`scripts/fuzz.sh` does).

use arbitrary::{Result, Unstructured};
use vm_perf::front::parser::parse;
use vm_perf::workloads::WORKLOADS;
use vm_perf::{Expr, MAX_DEPTH};

/// How many arguments generated programs may read.
pub const ARGS: usize = 4;

/// Tag bytes (a tag is `byte % TAGS`).
pub const TAG_LITR: u8 = 0;
pub const TAG_ARG: u8 = 1;
pub const TAG_GET: u8 = 2;
pub const TAG_ADD: u8 = 3;
pub const TAG_LET: u8 = 4;
pub const TAG_SET: u8 = 5;
pub const TAG_WHILE: u8 = 6;
pub const TAG_THEN: u8 = 7;
pub const TAG_COUNTED: u8 = 8;
pub const TAG_WORKLOAD: u8 = 9;
pub const TAGS: u8 = 10;

/// The program and the arguments to run it with.
pub fn program(data: &[u8]) -> Result<(Expr, Vec<i64>)> {
    let mut u = Unstructured::new(data);
    let mut args = Vec::with_capacity(ARGS);
    for _ in 0..ARGS {
        args.push(arg_value(u.arbitrary::<u8>()?));
    }
    let mut g = Gen { u, nodes: 0 };
    let e = g.expr(0, MAX_DEPTH)?;
    Ok((e, args))
}

/// One byte → an argument: mostly small loop counts, sometimes extremes.
fn arg_value(b: u8) -> i64 {
    let v = i64::from(b >> 3);
    match b & 7 {
        0..=4 => v,
        5 => -v,
        6 => i64::MAX - v,
        _ => i64::MIN + v,
    }
}

struct Gen<'a> {
    u: Unstructured<'a>,
    nodes: usize,
}

/// Generated programs stay below this many nodes (the bytes run out first
/// almost always; this bounds the embedded workloads' contribution).
const MAX_NODES: usize = 20_000;

impl Gen<'_> {
    /// A valid expression with `scope` locals in scope, at most `depth` deep.
    fn expr(&mut self, scope: usize, depth: usize) -> Result<Expr> {
        self.nodes += 1;
        if self.u.is_empty() || depth <= 1 || self.nodes > MAX_NODES {
            return Ok(if scope > 0 {
                Expr::Get(0)
            } else {
                Expr::Litr(0)
            });
        }
        let tag = self.u.arbitrary::<u8>()? % TAGS;
        let d = depth - 1;
        Ok(match tag {
            TAG_LITR => Expr::Litr(self.literal()?),
            TAG_ARG => Expr::Arg(usize::from(self.u.arbitrary::<u8>()?) % ARGS),
            TAG_GET if scope > 0 => Expr::Get(self.local(scope)?),
            TAG_GET => Expr::Litr(self.literal()?),
            TAG_ADD => Expr::add(self.expr(scope, d)?, self.expr(scope, d)?),
            TAG_LET => Expr::let_(self.expr(scope, d)?, self.expr(scope + 1, d)?),
            TAG_SET if scope > 0 => {
                let l = self.local(scope)?;
                Expr::set(l, self.expr(scope, d)?)
            }
            TAG_SET => Expr::then(self.expr(scope, d)?, self.expr(scope, d)?),
            TAG_WHILE => Expr::while_(self.expr(scope, d)?, self.expr(scope, d)?),
            TAG_THEN => Expr::then(self.expr(scope, d)?, self.expr(scope, d)?),
            TAG_COUNTED if depth > 5 => {
                let n = i64::from(self.u.arbitrary::<u8>()? % 16);
                let body = self.expr(scope + 1, depth - 4)?;
                let dec = Expr::set(0, Expr::add(Expr::Get(0), Expr::Litr(-1)));
                Expr::let_(
                    Expr::Litr(n),
                    Expr::while_(Expr::Get(0), Expr::then(body, dec)),
                )
            }
            TAG_WORKLOAD => {
                let w = &WORKLOADS[usize::from(self.u.arbitrary::<u8>()?) % WORKLOADS.len()];
                match parse(w.source) {
                    // A Level-2 workload's functions do not fit in an expression.
                    Ok(s) if s.functions.is_empty() && s.main.depth() <= depth => {
                        self.nodes += s.main.node_count();
                        s.main
                    }
                    _ => Expr::Litr(0),
                }
            }
            _ => Expr::Litr(self.literal()?),
        })
    }

    fn local(&mut self, scope: usize) -> Result<usize> {
        Ok(usize::from(self.u.arbitrary::<u16>()?) % scope)
    }

    /// Mostly small literals (loop counts), sometimes any `i64`.
    fn literal(&mut self) -> Result<i64> {
        let b = self.u.arbitrary::<u8>()?;
        Ok(match b % 4 {
            0 => self.u.arbitrary::<i64>()?,
            1 => -i64::from(b >> 2),
            _ => i64::from(b >> 2),
        })
    }
}
