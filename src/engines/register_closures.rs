//! `register_closures` — nested closures (like `closures`) whose innermost
//! locals travel through the closures as arguments instead of sitting in
//! memory.
//!
//! **Compile** turns every node into a boxed closure that captures its
//! children's closures (indirect threading), plus a description tree that
//! `show` prints. Each closure takes the register file `[i64; REGS]` by value
//! and returns its value together with the (possibly updated) registers.
//!
//! **Locals**: register `r0` holds the innermost local, `r1` the next one,
//! up to [`REGS`]; anything further out lives in a spill buffer, in a slot
//! fixed by its scope level. So `Get(d)`/`Set(d, _)` with `d < REGS` touch a
//! register and the others a spill slot; the rule depends only on `d`, for
//! any number of locals. **`Let` shifts the registers**: the new local enters
//! as `r0`, the others move up by one, and the one pushed out of the last
//! register (if that register held a local) is spilled to its home slot.
//! When the body returns, the registers shift back down and the spilled local
//! is reloaded into the last register; a `Set` to it meanwhile went to the
//! spill slot, so the reload sees it.
//!
//! **Values** are return values; **control** is Rust's own (a `While` is a
//! Rust loop), so native stack depth follows the tree, not the run.
//!
//! `REGS = 2`: the original's choice, and what keeps the registers plus the
//! memory pointer in argument registers. More registers make each `Let` shift
//! and every return copy more words; the return (value + registers) already
//! goes through a small caller-provided buffer at two.
//!
//! Trade-off: the hottest locals are read without touching memory and nothing
//! is pushed or popped per `Let`, at the cost of moving the register file in
//! and out of every closure call.

use crate::engine::{CompileError, Technique, Tier};
use crate::front::ast::Expr;
use crate::front::program::Program;

/// How many innermost locals are passed through the closures.
pub const REGS: usize = 2;

type Regs = [i64; REGS];

/// What every closure can reach besides its registers.
struct Mem<'a> {
    /// Home slots of locals that are not in registers, by scope level.
    spill: &'a mut [i64],
    args: &'a [i64],
}

type Node = Box<dyn Fn(&mut Mem<'_>, Regs) -> (i64, Regs)>;

/// The closure tree's description, for `show`.
struct Shape {
    label: String,
    kids: Vec<Shape>,
}

impl Shape {
    fn new(label: impl Into<String>, kids: Vec<Shape>) -> Shape {
        Shape {
            label: label.into(),
            kids,
        }
    }

    fn write(&self, indent: usize, out: &mut String) {
        out.push_str(&"  ".repeat(indent));
        out.push_str(&self.label);
        out.push('\n');
        for k in &self.kids {
            k.write(indent + 1, out);
        }
    }
}

// `get_reg::<K>` etc. are instantiated for each register by hand below.
const _: () = assert!(REGS == 2);

fn get_reg<const K: usize>() -> Node {
    Box::new(|_, r| (r[K], r))
}

fn set_reg<const K: usize>(value: Node) -> Node {
    Box::new(move |m, r| {
        let (v, mut r) = value(m, r);
        r[K] = v;
        (0, r)
    })
}

/// Compiles `e`, evaluated with `scope` locals in scope.
fn compile(e: &Expr, scope: usize) -> (Node, Shape) {
    match e {
        Expr::Litr(n) => {
            let n = *n;
            (
                Box::new(move |_, r| (n, r)),
                Shape::new(format!("lit {n}"), vec![]),
            )
        }
        Expr::Arg(i) => {
            let i = *i;
            let node: Node = Box::new(move |m, r| {
                // SAFETY: `Arg(i)` is in the program, so `i < arg_count`,
                // which `execute`'s caller guarantees `args` holds.
                (unsafe { *m.args.get_unchecked(i) }, r)
            });
            (node, Shape::new(format!("arg {i}"), vec![]))
        }
        Expr::Get(d) if *d < REGS => {
            let node = [get_reg::<0>, get_reg::<1>][*d]();
            (node, Shape::new(format!("get r{d}"), vec![]))
        }
        Expr::Get(d) => {
            let slot = scope - 1 - d;
            let node: Node = Box::new(move |m, r| {
                // SAFETY: see `spill_len`: a local `REGS` or more scopes out
                // has its level below `max_locals - REGS`.
                (unsafe { *m.spill.get_unchecked(slot) }, r)
            });
            (node, Shape::new(format!("get [{slot}]"), vec![]))
        }
        Expr::Set(d, v) => {
            let (value, vs) = compile(v, scope);
            if *d < REGS {
                let node = [set_reg::<0>, set_reg::<1>][*d](value);
                return (node, Shape::new(format!("set r{d}"), vec![vs]));
            }
            let slot = scope - 1 - d;
            let node: Node = Box::new(move |m, r| {
                let (v, r) = value(m, r);
                // SAFETY: as for `Get`: the slot is below `spill_len`.
                unsafe { *m.spill.get_unchecked_mut(slot) = v };
                (0, r)
            });
            (node, Shape::new(format!("set [{slot}]"), vec![vs]))
        }
        Expr::Add(a, b) => {
            let ((a, sa), (b, sb)) = (compile(a, scope), compile(b, scope));
            let node: Node = Box::new(move |m, r| {
                let (x, r) = a(m, r);
                let (y, r) = b(m, r);
                (x.wrapping_add(y), r)
            });
            (node, Shape::new("add", vec![sa, sb]))
        }
        Expr::Let(init, body) => {
            let ((init, si), (body, sb)) = (compile(init, scope), compile(body, scope + 1));
            // The local at level `scope - REGS` is in the last register and
            // is pushed out by the new one.
            match scope.checked_sub(REGS) {
                None => {
                    let node: Node = Box::new(move |m, r| {
                        let (v, r) = init(m, r);
                        let (x, inner) = body(m, shift_in(v, r));
                        (x, shift_out(inner, 0))
                    });
                    (node, Shape::new("let r0 (shift)", vec![si, sb]))
                }
                Some(slot) => {
                    let node: Node = Box::new(move |m, r| {
                        let (v, r) = init(m, r);
                        // SAFETY: a `Let` at level `scope` nests inside
                        // `scope` others, so `scope < max_locals` and
                        // `slot = scope - REGS < spill_len`.
                        unsafe { *m.spill.get_unchecked_mut(slot) = r[REGS - 1] };
                        let (x, inner) = body(m, shift_in(v, r));
                        // SAFETY: as above.
                        let back = unsafe { *m.spill.get_unchecked(slot) };
                        (x, shift_out(inner, back))
                    });
                    let label = format!("let r0 (shift, r{} spills to [{slot}])", REGS - 1);
                    (node, Shape::new(label, vec![si, sb]))
                }
            }
        }
        Expr::While(c, body) => {
            let ((cond, sc), (body, sb)) = (compile(c, scope), compile(body, scope));
            let node: Node = Box::new(move |m, mut r| {
                loop {
                    let (c, r1) = cond(m, r);
                    r = r1;
                    if c <= 0 {
                        return (0, r);
                    }
                    r = body(m, r).1;
                }
            });
            (node, Shape::new("while", vec![sc, sb]))
        }
        Expr::Then(a, b) => {
            let ((a, sa), (b, sb)) = (compile(a, scope), compile(b, scope));
            let node: Node = Box::new(move |m, r| {
                let (_, r) = a(m, r);
                b(m, r)
            });
            (node, Shape::new("then", vec![sa, sb]))
        }
    }
}

/// Registers inside a new scope: `v` first, the rest moved up one.
#[inline(always)]
fn shift_in(v: i64, outer: Regs) -> Regs {
    let mut r = [v; REGS];
    r[1..].copy_from_slice(&outer[..REGS - 1]);
    r
}

/// Registers after the scope: moved back down, `last` refilling the end.
#[inline(always)]
fn shift_out(inner: Regs, last: i64) -> Regs {
    let mut r = [last; REGS];
    r[..REGS - 1].copy_from_slice(&inner[1..]);
    r
}

/// Spill slots needed: a local is only ever in memory if `REGS` newer locals
/// exist, so only levels below `max_locals - REGS` need a home.
fn spill_len(program: &Program) -> usize {
    program.max_locals().saturating_sub(REGS)
}

/// The compiled program: the closure tree and its description.
pub struct Code {
    root: Node,
    shape: Shape,
    spill_len: usize,
}

pub struct RegisterClosures;

impl Technique for RegisterClosures {
    const NAME: &'static str = "register_closures";
    const TIER: Tier = Tier::Original;
    const SUMMARY: &'static str =
        "nested closures; the 2 innermost locals passed as arguments, the rest spilled";
    type Code = Code;

    fn compile(program: &Program) -> Result<Code, CompileError> {
        let (root, shape) = compile(program.expr(), 0);
        Ok(Code {
            root,
            shape,
            spill_len: spill_len(program),
        })
    }

    unsafe fn execute(code: &Code, args: &[i64]) -> i64 {
        let mut spill = vec![0i64; code.spill_len];
        let mut mem = Mem {
            spill: &mut spill,
            args,
        };
        (code.root)(&mut mem, [0; REGS]).0
    }

    fn show(code: &Code) -> String {
        let mut out = format!(
            "; registers r0..r{} (r0 = innermost local), {} spill slots\n",
            REGS - 1,
            code.spill_len
        );
        code.shape.write(0, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::engines::tape_continuations::testkit;

    const NAME: &str = "register_closures";

    #[test]
    fn agrees_with_walker() {
        testkit::agrees_with_walker(NAME);
    }

    #[test]
    fn long_loop_on_a_small_stack() {
        testkit::small_stack_long_loop(NAME);
    }

    #[test]
    fn deep_programs() {
        testkit::deep_programs(NAME);
    }

    #[test]
    fn long_straight_line() {
        testkit::long_straight_line(NAME);
    }
}
