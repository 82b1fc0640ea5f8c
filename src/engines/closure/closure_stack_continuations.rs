//! `closure_stack_continuations` — `closure_continuations` with every
//! intermediate value on an explicit operand stack instead of in arguments
//! and native frames.
//!
//! **Compile** flattens the tree into a [`Chain`] of stack-machine steps in
//! evaluation order (what `show` prints), tracking the operand-stack height
//! so the stack can be sized exactly, then folds each chain from its end into
//! closures, each capturing the continuation of the step after it as two
//! words (code and data); a bump arena owns them all, so compile makes no
//! heap allocation per step and dropping a long chain never recurses. The
//! arena and continuations are the same as `closure_continuations`'.
//! **Values** live in one buffer `[locals… | operand stack…]`: a step pops
//! its operands and pushes its result at the stack pointer `sp`, and passes
//! the new `sp` to its continuation. Because both sides of `Add` are on the
//! stack, `Add` is a plain step and needs no nested call (unlike
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
//! **What a step costs, and the original's lesson**: its own memory
//! traffic (a push is a store and a pointer bump, `add` two loads and a
//! store), two loads and a jump to reach the next step, and nothing for
//! arguments, four scalars (data, arguments, locals, `sp`) that pass through
//! unchanged. The original comparison's version was cheaper than a first,
//! plain-Rust one for the reasons `closure_continuations` gives (two-word
//! continuations stored in the caller instead of `dyn Fn` pointers, raw
//! pointers instead of slices and an index, no closure that only returns,
//! a literal operand added in place) and kept its stack pointer in an
//! argument too; here it is a raw pointer rather than an index into a
//! slice. Beyond it, the step that ends a chain returns its value instead
//! of pushing it, so a loop condition never touches the stack. Its arms keyed
//! on argument 1, the literals ±1 and locals 0 and 1 are gone, and so is its
//! moving locals pointer (slots are fixed by scope level here).
//! The one operand-location variant: **`add n`**, an `Add` whose right
//! operand is a literal, adds the captured constant to the top of the stack
//! in place (for any literal, not a chosen one). No arm keys on a value or
//! an index, and no step does the work of two nodes.
//!
//! Trade-off: the flattest continuation code (no nested calls except loops),
//! paid for with a load and a store through memory for every intermediate
//! value and the stack pointer threaded through every call.
//!
//! Unsafe code rests on trusting this module's own lowering (its stack
//! heights, slots and argument indices); there is no verifier.

use super::closure_continuations::{Link, step};
use super::closures::{Arena, thin_closure};
use crate::engine::{CompileError, technique};
use crate::front::ast::Expr;
use crate::front::program::Program;

technique! {
    ClosureStackContinuations = "closure_stack_continuations", Original, Code;
    "continuation closures over an explicit operand stack; loops are native";
    compile: compile, execute: run, show: show;
    // Every step ends in a tail call to the next.
    const TAIL_CALLS: bool = true;
}

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
    /// Add `n` to the top value (an `Add` whose right operand is a literal).
    AddLit(i64),
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
            Expr::Sub(..) | Expr::Lt(..) | Expr::If(..) | Expr::Call(..) => {
                unreachable!("Level 2 is refused before compile")
            }
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
                match **b {
                    // The literal is in the step: height unchanged.
                    Expr::Litr(n) if want => out.push(Step::AddLit(n)),
                    _ => {
                        self.lower(out, b, scope, want);
                        if want {
                            out.push(Step::Add);
                            self.height -= 1;
                        }
                    }
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
    /// Steps in this chain and the chains nested in it.
    fn len(&self) -> usize {
        let nested = |s: &Step| match s {
            Step::While(c, b) => c.len() + b.len(),
            _ => 0,
        };
        self.steps.iter().map(|s| 1 + nested(s)).sum()
    }

    fn write(&self, indent: usize, out: &mut String) {
        let pad = "  ".repeat(indent);
        for step in &self.steps {
            match step {
                Step::Lit(n) => out.push_str(&format!("{pad}push {n}\n")),
                Step::Arg(i) => out.push_str(&format!("{pad}push arg {i}\n")),
                Step::Get(s) => out.push_str(&format!("{pad}push L{s}\n")),
                Step::Add => out.push_str(&format!("{pad}add\n")),
                Step::AddLit(n) => out.push_str(&format!("{pad}add {n}\n")),
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

thin_closure! {
    /// A continuation: a step's closure, owned by the code's [`Arena`],
    /// called with `(args, locals, sp)`.
    struct Cont = Fn(args: *const i64, locals: *mut i64, sp: *mut i64) -> i64;
}

/// Where a step goes next: a continuation (which gets the stack pointer),
/// or back to whoever ran the chain. Each step is built for one or the
/// other, so the end of a chain costs no call.
trait Next: Copy + 'static {
    /// Continue with `v` pushed at `sp`.
    fn push(self, args: *const i64, locals: *mut i64, sp: *mut i64, v: i64) -> i64;
    /// Continue with the stack as it is.
    fn go(self, args: *const i64, locals: *mut i64, sp: *mut i64) -> i64;
}

impl Next for Cont {
    #[inline(always)]
    fn push(self, args: *const i64, locals: *mut i64, sp: *mut i64, v: i64) -> i64 {
        // SAFETY: the step pushing `v` was lowered with the stack below its
        // maximum height, so `sp` is inside the buffer (`Code`'s invariant).
        unsafe { *sp = v };
        // SAFETY: one past a slot of the buffer is at most its end.
        self.call(args, locals, unsafe { sp.add(1) })
    }

    #[inline(always)]
    fn go(self, args: *const i64, locals: *mut i64, sp: *mut i64) -> i64 {
        self.call(args, locals, sp)
    }
}

/// The end of a chain: a chain that pushes hands its value back instead of
/// pushing it (the caller would only pop it); one that does not returns 0,
/// which nobody reads.
#[derive(Clone, Copy)]
struct Return;

impl Next for Return {
    #[inline(always)]
    fn push(self, _: *const i64, _: *mut i64, _: *mut i64, v: i64) -> i64 {
        v
    }

    #[inline(always)]
    fn go(self, _: *const i64, _: *mut i64, _: *mut i64) -> i64 {
        0
    }
}

/// Folds `chain` into closures, from its end to its first step.
///
/// Every `unsafe` block below relies on the same invariant: the stack
/// pointer a step receives is the stack's base plus the height `Lower`
/// computed for that point, and the buffer holds `max_locals + max_height`
/// slots; so a push writes inside the buffer and a pop reads at or above
/// the stack's base. Slots are below `max_locals` (locals in scope) and
/// argument indices below `arg_count` by validation.
fn build(arena: &Arena, chain: &Chain) -> Cont {
    let mut next: Link<Cont> = Link::Return;
    for step in chain.steps.iter().rev() {
        let cont = match *step {
            Step::Lit(n) => step!(Cont in arena, next, Return, |a, l, sp, k| k.push(a, l, sp, n)),
            Step::Arg(i) => step!(Cont in arena, next, Return, |a, l, sp, k| {
                // SAFETY: `i < arg_count` (see above).
                k.push(a, l, sp, unsafe { *a.add(i) })
            }),
            Step::Get(s) => step!(Cont in arena, next, Return, |a, l, sp, k| {
                // SAFETY: `s < max_locals` (see above).
                k.push(a, l, sp, unsafe { *l.add(s) })
            }),
            Step::Add => step!(Cont in arena, next, Return, |a, l, sp: *mut i64, k| {
                // SAFETY: `Add` follows the pushes of both operands, so
                // `sp - 2` and `sp - 1` are stack slots (see above).
                let (sp, x, y) = unsafe { (sp.sub(2), *sp.sub(2), *sp.sub(1)) };
                k.push(a, l, sp, x.wrapping_add(y))
            }),
            Step::AddLit(n) => step!(Cont in arena, next, Return, |a, l, sp: *mut i64, k| {
                // SAFETY: the left operand was just pushed (see above).
                let (sp, x) = unsafe { (sp.sub(1), *sp.sub(1)) };
                k.push(a, l, sp, x.wrapping_add(n))
            }),
            Step::Store(s) => step!(Cont in arena, next, Return, |a, l, sp: *mut i64, k| {
                // SAFETY: the stored value was just pushed, and the local's
                // slot `s < max_locals` (see above).
                let sp = unsafe {
                    let sp = sp.sub(1);
                    *l.add(s) = *sp;
                    sp
                };
                k.go(a, l, sp)
            }),
            Step::While(ref cond, ref body) => {
                let (cond, body) = (build(arena, cond), build(arena, body));
                step!(Cont in arena, next, Return, |a, l, sp, k| {
                    while cond.call(a, l, sp) > 0 {
                        body.call(a, l, sp);
                    }
                    k.go(a, l, sp)
                })
            }
        };
        next = Link::Cont(cont);
    }
    match next {
        Link::Cont(c) => c,
        // Only a chain that pushes nothing can be empty.
        Link::Return => Cont::new_in(arena, |_, _, _| 0),
    }
}

/// What `compile` made: the first step's closure, the chain it was built
/// from (for `show`) and the sizes of the buffer it runs on.
///
/// Every step relies on running only from `run`: on a buffer of
/// `max_locals` local slots followed by `max_height` stack slots, with
/// `args` holding the program's `arg_count` values (`run`'s caller's
/// promise).
pub struct Code {
    chain: Chain,
    entry: Cont,
    max_locals: usize,
    max_height: usize,
    /// Owns `entry` and every closure it reaches; declared last so that it is
    /// dropped last.
    _arena: Arena,
}

fn compile(program: &Program) -> Result<Code, CompileError> {
    let mut lower = Lower {
        height: 0,
        max_height: 0,
    };
    let chain = lower.chain(program.expr(), 0, true);
    // Closures take 16 to 40 bytes; most capture a continuation and one
    // word.
    let arena = Arena::with_capacity(32 * chain.len());
    let entry = build(&arena, &chain);
    Ok(Code {
        chain,
        entry,
        max_locals: program.max_locals(),
        max_height: lower.max_height,
        _arena: arena,
    })
}

/// Runs the chain from its first closure, on a fresh buffer of locals and stack.
///
/// # Safety
///
/// `args` covers the program's argument count (`Technique::execute`'s contract).
unsafe fn run(code: &Code, args: &[i64]) -> i64 {
    // `Code`'s invariant: the buffer is sized from the program, and the
    // caller guarantees `args` covers its argument count.
    let mut mem = vec![0i64; code.max_locals + code.max_height];
    let locals = mem.as_mut_ptr();
    // SAFETY: `max_locals` is within `mem`: the stack starts empty.
    let sp = unsafe { locals.add(code.max_locals) };
    code.entry.call(args.as_ptr(), locals, sp)
}

fn show(code: &Code) -> String {
    let mut out = format!(
        "; {} local slots, operand stack of {}; each step tail-calls the next\n",
        code.max_locals, code.max_height
    );
    code.chain.write(0, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::engines::conformance::conformance_tests!(ClosureStackContinuations, closure_chains);

    #[test]
    fn a_literal_right_operand_is_added_on_the_stack_top() {
        let p = crate::front::compile_source("t", "let x = arg(0); x = x + -3; x + x").unwrap();
        let code = compile(&p).unwrap();
        use Step::*;
        assert_eq!(
            code.chain.steps,
            [
                Arg(0),
                Store(0),
                Get(0),
                AddLit(-3),
                Store(0),
                Get(0),
                Get(0),
                Add
            ]
        );
        assert_eq!(code.max_height, 2);
    }
}
