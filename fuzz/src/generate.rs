//! Builds a *valid* AST from arbitrary bytes, so the structure-aware target
//! spends its time in the engines rather than in the parser's error paths.
//!
//! Every node starts with one tag byte. Locals are resolved modulo the
//! number in scope (a `Get`/`Set` with nothing in scope becomes a literal),
//! depth is capped at [`MAX_DEPTH`], and when the bytes run out every open
//! node is finished with leaves. Two tags exist to reach interesting states
//! quickly: a counted loop (`let i = n; while i { body; i = i + -1 }`) and a
//! whole Level-1 workload embedded as a subtree (workloads are closed
//! programs, so they are valid in any scope). The four arguments come
//! first, one byte each, so seed files can be written by hand
//! (`scripts/fuzz.sh` does).
//!
//! Level 2: the next byte gives the number of functions declared up front
//! (none: main alone), each with up to three parameters; `Sub`, `Lt`, `If`
//! and `Call` have tags of their own (a call names a function modulo their
//! number, with as many arguments as it takes), and one more tag adds a
//! countdown function on the spot, `fn dN(n) { if 0 < n { … dN(n - 1) … }
//! else { … } }`, called on fuel around the call limit: 9,999, 10,000 or
//! 10,001 calls active, or a small count. Nothing else bounds recursion: the
//! oracle's step budget cuts off what runs too long, and runs that exceed
//! the limit must fail alike on every engine.

use arbitrary::{Result, Unstructured};
use vm_perf::front::parser::parse;
use vm_perf::workloads::WORKLOADS;
use vm_perf::{Expr, Function, MAX_CALLS, MAX_DEPTH, Source};

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
pub const TAG_SUB: u8 = 10;
pub const TAG_LT: u8 = 11;
pub const TAG_IF: u8 = 12;
pub const TAG_CALL: u8 = 13;
pub const TAG_COUNTDOWN: u8 = 14;
pub const TAGS: u8 = 15;

/// The most functions a generated program declares up front, and in all.
const DECLARED: u8 = 4;
const MAX_FUNCTIONS: usize = 8;

/// The program and the arguments to run it with.
pub fn program(data: &[u8]) -> Result<(Source, Vec<i64>)> {
    let mut u = Unstructured::new(data);
    let mut args = Vec::with_capacity(ARGS);
    for _ in 0..ARGS {
        args.push(arg_value(u.arbitrary::<u8>()?));
    }
    let declared = u.arbitrary::<u8>()? % (DECLARED + 1);
    let mut functions: Vec<Function> = (0..declared)
        .map(|i| Ok(function(format!("f{i}"), usize::from(u.arbitrary::<u8>()? % 4))))
        .collect::<Result<_>>()?;
    let mut g = Gen {
        u,
        nodes: 0,
        functions: functions.iter().map(Function::arity).collect(),
        bodies: Vec::new(),
    };
    let mut bodies = Vec::new();
    for f in &functions {
        bodies.push(g.expr(f.arity(), MAX_DEPTH)?);
    }
    let main = g.expr(0, MAX_DEPTH)?;
    for (f, body) in functions.iter_mut().zip(bodies) {
        f.body = body;
    }
    functions.extend(g.bodies);
    Ok((Source { functions, main }, args))
}

/// A function with `arity` parameters and a placeholder body.
fn function(name: String, arity: usize) -> Function {
    Function {
        name,
        params: (0..arity).map(|p| format!("p{p}")).collect(),
        body: Expr::Litr(0),
    }
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
    /// The arity of every function so far; calls index this.
    functions: Vec<usize>,
    /// The countdown functions added on the way (after the declared ones).
    bodies: Vec<Function>,
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
            TAG_SUB => Expr::sub(self.expr(scope, d)?, self.expr(scope, d)?),
            TAG_LT => Expr::lt(self.expr(scope, d)?, self.expr(scope, d)?),
            TAG_IF => Expr::if_(
                self.expr(scope, d)?,
                self.expr(scope, d)?,
                self.expr(scope, d)?,
            ),
            TAG_CALL if !self.functions.is_empty() => {
                let f = usize::from(self.u.arbitrary::<u8>()?) % self.functions.len();
                let args = (0..self.functions[f])
                    .map(|_| self.expr(scope, d))
                    .collect::<Result<_>>()?;
                Expr::call(f, args)
            }
            TAG_COUNTDOWN if depth > 5 && self.functions.len() < MAX_FUNCTIONS => {
                self.countdown(scope, d)?
            }
            _ => Expr::Litr(self.literal()?),
        })
    }

    /// A new `fn dN(n) { if 0 < n { dN(n - 1) op other } else { base } }`
    /// and a call of it on fuel near the limit (fuel `n` makes `n + 1`
    /// calls active).
    fn countdown(&mut self, scope: usize, depth: usize) -> Result<Expr> {
        let index = self.functions.len();
        self.functions.push(1);
        // Its place now: countdowns made inside its body come after it.
        let slot = self.bodies.len();
        self.bodies.push(function(format!("d{index}"), 1));
        let recurse = Expr::call(index, vec![Expr::sub(Expr::Get(0), Expr::Litr(1))]);
        let other = self.expr(1, 4)?;
        let burning = match self.u.arbitrary::<u8>()? % 3 {
            0 => Expr::add(recurse, other),
            1 => Expr::then(other, recurse),
            _ => Expr::sub(other, recurse),
        };
        let base = self.expr(1, 4)?;
        self.bodies[slot].body = Expr::if_(Expr::lt(Expr::Litr(0), Expr::Get(0)), burning, base);
        let limit = MAX_CALLS as i64;
        let fuel = match self.u.arbitrary::<u8>()? % 5 {
            0 => Expr::Litr(limit - 2),
            1 => Expr::Litr(limit - 1),
            2 => Expr::Litr(limit),
            3 => self.expr(scope, depth)?,
            _ => Expr::Litr(i64::from(self.u.arbitrary::<u8>()?)),
        };
        Ok(Expr::call(index, vec![fuel]))
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
