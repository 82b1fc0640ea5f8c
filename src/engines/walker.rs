//! `walker` — the reference: a recursive `match` over the AST.
//!
//! **Compile** produces nothing new: the code *is* the validated tree (a clone,
//! so the engine owns it like every other engine owns its code).
//! **Values** are Rust return values of the recursive `eval`; **locals** live
//! in one `Vec<i64>` used as a stack, `Let` pushes and pops, `Get(d)` reads
//! `len - 1 - d`. **Control** is Rust's own: `While` is a Rust `loop`, so the
//! native stack depth is the tree's depth, never the iteration count.
//!
//! Trade-off: nothing to compile and obviously right, which is why every other
//! engine is checked against it (the checks live in `src/reference/`, with a
//! budgeted copy of this walker); every step pays a `match` on a boxed node
//! and a pointer chase.
//!
//! **Unsafe code**: none; `run` indexes arguments and locals with bounds
//! checks (the trait's `execute` is an `unsafe fn` for the other engines).

use crate::engine::technique;
use crate::front::ast::Expr;
use crate::front::program::Program;

technique! {
    Walker = "walker", Original, Program;
    "recursive match over the AST (the reference)";
    compile: |program| Ok(program.clone()),
    execute: run,
    show: |program| crate::front::printer::print(program.expr());
}

fn run(program: &Program, args: &[i64]) -> i64 {
    let mut locals = Vec::with_capacity(program.max_locals());
    eval(program.expr(), args, &mut locals)
}

fn eval(e: &Expr, args: &[i64], locals: &mut Vec<i64>) -> i64 {
    match e {
        Expr::Sub(..) | Expr::Lt(..) | Expr::If(..) | Expr::Call(..) => {
            unreachable!("Level 2 is refused before compile")
        }
        Expr::Litr(n) => *n,
        Expr::Arg(i) => args[*i],
        Expr::Get(d) => locals[locals.len() - 1 - d],
        Expr::Add(a, b) => {
            let a = eval(a, args, locals);
            a.wrapping_add(eval(b, args, locals))
        }
        Expr::Let(init, body) => {
            let v = eval(init, args, locals);
            locals.push(v);
            let r = eval(body, args, locals);
            locals.pop();
            r
        }
        Expr::Set(d, v) => {
            let v = eval(v, args, locals);
            let slot = locals.len() - 1 - d;
            locals[slot] = v;
            0
        }
        Expr::While(c, body) => {
            while eval(c, args, locals) > 0 {
                eval(body, args, locals);
            }
            0
        }
        Expr::Then(a, b) => {
            eval(a, args, locals);
            eval(b, args, locals)
        }
    }
}
