//! `closure_stack_continuations` — `closure_continuations` with every
//! intermediate value on an explicit operand stack instead of in arguments
//! and native frames.
//!
//! **Compile** flattens the tree into a [`Chain`] of stack-machine steps in
//! evaluation order (what `show` prints), tracking the operand-stack height
//! so the stack can be sized exactly, then folds each chain from its end into
//! boxed closures, each capturing (a pointer to) the closure of the step
//! after it; an arena owns them all, so dropping a long chain never recurses.
//! **Values** live in one buffer `mem = [locals… | operand stack…]`: a step
//! pops its operands and pushes its result at `mem[sp]`, and passes the new
//! stack pointer `sp` to its continuation. Because both sides of `Add` are
//! on the stack, `Add` is a plain step and needs no nested call (unlike
//! `closure_continuations`). An expression whose value is discarded pushes
//! nothing. **Locals** sit in slots fixed by their scope level, so `Let` just
//! pops into a slot.
//!
//! **Control**: each step ends by calling its continuation in tail position
//! (a jump from opt-level 1 on). `While` is a native Rust loop around its
//! condition and body chains, which *return* (the condition its value); only
//! after the loop does it tail-call onwards. So a call chain is at most as
//! long as straight-line code, never as long as the run.
//!
//! Trade-off: the flattest continuation code (no nested calls except loops),
//! paid for with a load and a store through memory for every intermediate
//! value and the stack pointer threaded through every call.

use crate::engine::{CompileError, Technique, Tier};
use crate::front::ast::Expr;
use crate::front::program::Program;

/// One stack-machine step.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Push `n`.
    Lit(i64),
    /// Push `args[i]`.
    Arg(usize),
    /// Push the local in slot `s`.
    Get(usize),
    /// Pop two, push their wrapping sum.
    Add,
    /// Pop into slot `s` (a new local, or an assignment).
    Store(usize),
    /// Loop: `cond` pushes one value, `body` leaves the stack as it found it.
    While(Chain, Chain),
}

/// Steps run one after another, each continuing into the next; the chain
/// ends by returning its top value (if it pushes one) to its caller.
#[derive(Debug, PartialEq, Eq)]
pub struct Chain {
    steps: Vec<Step>,
    /// Whether the chain leaves one value on the stack.
    pushes: bool,
}

/// Lowers the tree, tracking the operand-stack height.
struct Lower {
    height: usize,
    max_height: usize,
}

impl Lower {
    fn push(&mut self) {
        self.height += 1;
        self.max_height = self.max_height.max(self.height);
    }

    fn chain(&mut self, e: &Expr, scope: usize, want: bool) -> Chain {
        let mut steps = Vec::new();
        let start = self.height;
        self.lower(&mut steps, e, scope, want);
        // A nested chain's pushes are undone by its caller (`While`).
        self.height = start;
        Chain {
            steps,
            pushes: want,
        }
    }

    /// Appends the steps of `e`; if `want`, they push its value.
    fn lower(&mut self, out: &mut Vec<Step>, e: &Expr, scope: usize, want: bool) {
        match e {
            Expr::Litr(_) | Expr::Arg(_) | Expr::Get(_) if !want => {}
            Expr::Litr(n) => {
                out.push(Step::Lit(*n));
                self.push();
            }
            Expr::Arg(i) => {
                out.push(Step::Arg(*i));
                self.push();
            }
            Expr::Get(d) => {
                out.push(Step::Get(scope - 1 - d));
                self.push();
            }
            Expr::Add(a, b) => {
                self.lower(out, a, scope, want);
                self.lower(out, b, scope, want);
                if want {
                    out.push(Step::Add);
                    self.height -= 1;
                }
            }
            Expr::Let(init, body) => {
                self.lower(out, init, scope, true);
                out.push(Step::Store(scope));
                self.height -= 1;
                self.lower(out, body, scope + 1, want);
            }
            Expr::Set(d, v) => {
                self.lower(out, v, scope, true);
                out.push(Step::Store(scope - 1 - d));
                self.height -= 1;
                if want {
                    out.push(Step::Lit(0));
                    self.push();
                }
            }
            Expr::While(c, body) => {
                // The condition's value is popped by the loop itself.
                let cond = self.chain(c, scope, true);
                let body = self.chain(body, scope, false);
                out.push(Step::While(cond, body));
                if want {
                    out.push(Step::Lit(0));
                    self.push();
                }
            }
            Expr::Then(a, b) => {
                self.lower(out, a, scope, false);
                self.lower(out, b, scope, want);
            }
        }
    }
}

impl Chain {
    fn write(&self, indent: usize, out: &mut String) {
        let pad = "  ".repeat(indent);
        for step in &self.steps {
            match step {
                Step::Lit(n) => out.push_str(&format!("{pad}push {n}\n")),
                Step::Arg(i) => out.push_str(&format!("{pad}push arg {i}\n")),
                Step::Get(s) => out.push_str(&format!("{pad}push L{s}\n")),
                Step::Add => out.push_str(&format!("{pad}add\n")),
                Step::Store(s) => out.push_str(&format!("{pad}pop L{s}\n")),
                Step::While(c, b) => {
                    out.push_str(&format!("{pad}while (native loop) cond:\n"));
                    c.write(indent + 1, out);
                    out.push_str(&format!("{pad}do:\n"));
                    b.write(indent + 1, out);
                }
            }
        }
        let end = if self.pushes { "return top" } else { "return" };
        out.push_str(&format!("{pad}{end}\n"));
    }
}

/// A step's closure: `(mem, args, sp)`; `mem[sp]` is the next free slot.
type Fun = dyn Fn(&mut [i64], &[i64], usize) -> i64;

/// A continuation: a step's closure, owned by the code's [`Arena`].
///
/// Closures refer to their successors by these plain pointers instead of
/// owning them, so dropping a chain of any length frees its closures one by
/// one from a `Vec`, instead of recursing once per step.
#[derive(Clone, Copy)]
struct Cont(*const Fun);

impl Cont {
    #[inline(always)]
    fn call(self, mem: &mut [i64], args: &[i64], sp: usize) -> i64 {
        // SAFETY: a `Cont` is only made by `Arena::alloc` and only held by
        // closures in the same arena or by the `Code` owning it; the arena
        // frees its closures only when that `Code` is dropped, and closures
        // only run while `execute` borrows the `Code`.
        unsafe { (*self.0)(mem, args, sp) }
    }
}

/// Owns every closure of a compiled program.
#[derive(Default)]
struct Arena(Vec<*mut Fun>);

impl Arena {
    fn alloc(&mut self, f: impl Fn(&mut [i64], &[i64], usize) -> i64 + 'static) -> Cont {
        let f: Box<Fun> = Box::new(f);
        let p = Box::into_raw(f);
        self.0.push(p);
        Cont(p)
    }

    /// Folds `chain` into closures, from its end to its first step.
    ///
    /// Every step below relies on the same invariant: the stack pointer a
    /// step receives is the height `Lower` computed for that point plus the
    /// stack's base, and `mem` holds `max_locals + max_height` slots; so a
    /// push writes below `mem.len()` and a pop reads above the stack's base.
    fn build(&mut self, chain: &Chain) -> Cont {
        let mut next = if chain.pushes {
            self.alloc(|m, _, sp| {
                // SAFETY: a chain that pushes has its value at `sp - 1`
                // (stack invariant above).
                unsafe { *m.get_unchecked(sp - 1) }
            })
        } else {
            self.alloc(|_, _, _| 0)
        };
        for step in chain.steps.iter().rev() {
            next = match *step {
                Step::Lit(n) => self.alloc(move |m, a, sp| {
                    // SAFETY: a push stays below `mem.len()` (stack invariant).
                    unsafe { *m.get_unchecked_mut(sp) = n };
                    next.call(m, a, sp + 1)
                }),
                Step::Arg(i) => self.alloc(move |m, a, sp| {
                    // SAFETY: `Arg(i)` is in the program, so `i < arg_count`,
                    // which `execute`'s caller guarantees; the push is in
                    // bounds by the stack invariant.
                    unsafe { *m.get_unchecked_mut(sp) = *a.get_unchecked(i) };
                    next.call(m, a, sp + 1)
                }),
                Step::Get(s) => self.alloc(move |m, a, sp| {
                    // SAFETY: validation put the local in scope, so its level
                    // `s < max_locals`; the push is in bounds (stack invariant).
                    unsafe { *m.get_unchecked_mut(sp) = *m.get_unchecked(s) };
                    next.call(m, a, sp + 1)
                }),
                Step::Add => self.alloc(move |m, a, sp| {
                    // SAFETY: `Add` follows the pushes of both operands, so
                    // `sp - 2` and `sp - 1` are stack slots (stack invariant).
                    unsafe {
                        let b = *m.get_unchecked(sp - 1);
                        let x = m.get_unchecked_mut(sp - 2);
                        *x = x.wrapping_add(b);
                    }
                    next.call(m, a, sp - 1)
                }),
                Step::Store(s) => self.alloc(move |m, a, sp| {
                    // SAFETY: the stored value was just pushed (stack
                    // invariant), and the local's level `s < max_locals`.
                    unsafe { *m.get_unchecked_mut(s) = *m.get_unchecked(sp - 1) };
                    next.call(m, a, sp - 1)
                }),
                Step::While(ref cond, ref body) => {
                    let (cond, body) = (self.build(cond), self.build(body));
                    self.alloc(move |m, a, sp| {
                        while cond.call(m, a, sp) > 0 {
                            body.call(m, a, sp);
                        }
                        next.call(m, a, sp)
                    })
                }
            };
        }
        next
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        for &p in &self.0 {
            // SAFETY: every pointer came from `Box::into_raw` in `alloc` and
            // is freed exactly once, here. Closures capture only `Cont`s and
            // plain values, so freeing one never touches another.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

/// The compiled program: the chain for `show` and its first closure.
pub struct Code {
    chain: Chain,
    entry: Cont,
    max_locals: usize,
    max_height: usize,
    /// Owns `entry` and every closure it reaches.
    _arena: Arena,
}

pub struct ClosureStackContinuations;

impl Technique for ClosureStackContinuations {
    const NAME: &'static str = "closure_stack_continuations";
    const TIER: Tier = Tier::Original;
    const TAIL_CALLS: bool = true;
    const SUMMARY: &'static str =
        "continuation closures over an explicit operand stack; loops are native";
    type Code = Code;

    fn compile(program: &Program) -> Result<Code, CompileError> {
        let mut lower = Lower {
            height: 0,
            max_height: 0,
        };
        let chain = lower.chain(program.expr(), 0, true);
        let mut arena = Arena::default();
        let entry = arena.build(&chain);
        Ok(Code {
            chain,
            entry,
            max_locals: program.max_locals(),
            max_height: lower.max_height,
            _arena: arena,
        })
    }

    unsafe fn execute(code: &Code, args: &[i64]) -> i64 {
        let mut mem = vec![0i64; code.max_locals + code.max_height];
        code.entry.call(&mut mem, args, code.max_locals)
    }

    fn show(code: &Code) -> String {
        let mut out = format!(
            "; {} local slots, operand stack of {}; each step tail-calls the next\n",
            code.max_locals, code.max_height
        );
        code.chain.write(0, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    crate::engines::conformance::conformance_tests!(
        super::ClosureStackContinuations,
        extra: [CONTINUATION_TRICKY],
        also: [deep_programs, long_straight_line, far_assignments],
    );
}
