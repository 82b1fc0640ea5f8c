//! `closure_continuations` — closures that are handed the next step: each
//! step does its work and passes its value on by calling its continuation.
//!
//! **Compile** first flattens the tree into a [`Chain`] of steps in
//! evaluation order (what `show` prints; nested chains are stored inline,
//! so it is one flat vector of 16-byte steps), then folds each chain from its
//! end into closures: every closure captures the continuation of the step
//! after it, as two words (the step's code and its data). The last step of a
//! chain is built with no continuation at all and returns its value. A bump
//! arena owns all closures, laid out side by side: compile makes no heap
//! allocation per step, and dropping a long chain does not recurse.
//! **Values** travel as an argument: a step receives the previous step's
//! value and calls its continuation with its own. The left operand of an
//! `Add` is simply the value flowing in; the right operand runs as a *nested*
//! chain (an ordinary call that returns), so the left value waits on the
//! native stack meanwhile. **Locals** live in a buffer sized by `max_locals`;
//! a local's slot is its scope level, fixed at compile time, so `Let` only
//! writes a slot and nothing is pushed or popped at run time.
//!
//! **Control**: a step ends by calling its continuation in tail position;
//! LLVM makes these sibling calls jumps (opt-level 1 and up). Where that
//! fails, the straight-line chain could at most be as deep as the program
//! is long, never as deep as it runs: `While` is a native Rust loop that
//! calls its condition and body as nested chains which *return*, and only
//! after the loop does it tail-call its continuation.
//!
//! **What a step costs, and the original's lesson.** A step is its own
//! work plus two loads and a jump to reach the next; what surrounds that
//! decides the rest. The original comparison's version of this technique
//! was cheaper than a first, plain-Rust one in four ways, all kept here:
//! a continuation is a code pointer and a data pointer stored *inside* the
//! calling closure (a `dyn Fn` pointer adds a dependent vtable load and a
//! register shuffle per step); every step takes the same four scalars
//! (data, arguments, locals, value) — raw pointers, not slices, which would
//! take six registers and make `Add` and `While` save all of them across
//! their nested calls; the last step of a chain returns its value itself
//! rather than calling a closure that only returns; and an `Add` of a
//! literal adds a captured constant instead of running a nested chain. It
//! differs in two ways: its arms keyed on argument 1, the literals ±1 and
//! locals 0 and 1 are gone, and its locals pointer moved at every `Let` and
//! was moved back by an extra step at the scope's end, where here slots are
//! fixed and leaving a scope costs nothing.
//! The one operand-location variant: **`add n`**, an `Add` whose right
//! operand is a literal, adds the captured constant to the value flowing in
//! (for any literal, not a chosen one). No arm keys on a value or an index,
//! and no step does the work of two nodes.
//!
//! Trade-off: no dispatch loop and no operand stack, and a step never
//! returns through its predecessors; but each step is an indirect jump, and
//! every `Add` of a non-literal and every loop iteration pays a real call
//! and return for its nested chains.
//!
//! Unsafe code rests on trusting this module's own lowering (slots from the
//! validated scopes, argument indices from validation); there is no verifier.

use super::closures::{Arena, thin_closure};
use crate::engine::{CompileError, technique};
use crate::front::ast::Expr;
use crate::front::program::Program;

/// One step of a chain; it receives the previous step's value.
///
/// Nested chains are stored inline, right after the step that runs them and
/// closed by [`Step::End`], so a whole program is one flat `Vec` of 16-byte
/// steps: lowering allocates no `Vec` per `Add` or `While`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Value `n` (ignores its input).
    Lit(i64),
    /// Value `args[i]`.
    Arg(usize),
    /// Value of the local in slot `s`.
    Get(usize),
    /// Stores its input into slot `s`, a new local; passes its input on.
    Bind(usize),
    /// Stores its input into slot `s`; value `0`.
    Set(usize),
    /// Value = input + the value of the nested chain that follows.
    AddRight,
    /// Value = input + `n` (an `Add` whose right operand is a literal).
    AddLit(i64),
    /// Runs the nested chain that follows (the condition), and the one
    /// after it (the body) while the condition is `> 0`; value `0`.
    While,
    /// Ends a nested chain: its value goes back to the step that ran it.
    End,
}

/// The program's steps in evaluation order, nested chains inline.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Chain(Vec<Step>);

impl Chain {
    fn of(program: &Program) -> Chain {
        // Most nodes lower to one step (`Then` to none, `End`s are one per
        // nested chain), so this is close and rarely regrows.
        let mut c = Chain(Vec::with_capacity(program.node_count()));
        c.lower(program.expr(), 0);
        c
    }

    /// Appends the steps of `e`, evaluated with `scope` locals in scope.
    fn lower(&mut self, e: &Expr, scope: usize) {
        match e {
            Expr::Sub(..) | Expr::Lt(..) | Expr::If(..) | Expr::Call(..) => {
                unreachable!("Level 2 is refused before compile")
            }
            Expr::Litr(n) => self.0.push(Step::Lit(*n)),
            Expr::Arg(i) => self.0.push(Step::Arg(*i)),
            Expr::Get(d) => self.0.push(Step::Get(scope - 1 - d)),
            Expr::Add(a, b) => {
                self.lower(a, scope);
                if let Expr::Litr(n) = **b {
                    self.0.push(Step::AddLit(n));
                } else {
                    self.0.push(Step::AddRight);
                    self.lower(b, scope);
                    self.0.push(Step::End);
                }
            }
            Expr::Let(init, body) => {
                self.lower(init, scope);
                self.0.push(Step::Bind(scope));
                self.lower(body, scope + 1);
            }
            Expr::Set(d, v) => {
                self.lower(v, scope);
                self.0.push(Step::Set(scope - 1 - d));
            }
            Expr::While(c, body) => {
                self.0.push(Step::While);
                self.lower(c, scope);
                self.0.push(Step::End);
                self.lower(body, scope);
                self.0.push(Step::End);
            }
            // The first step of any chain ignores its input, so `a`'s value
            // is dropped by `b`'s first step.
            Expr::Then(a, b) => {
                self.lower(a, scope);
                self.lower(b, scope);
            }
        }
    }

    fn write(&self, out: &mut String) {
        use std::fmt::Write;
        /// What an `End` closes.
        enum Open {
            Add,
            Cond,
            Body,
        }
        let mut open = Vec::new();
        let pad = |depth: usize| "  ".repeat(depth);
        for step in &self.0 {
            let p = pad(open.len());
            // Writing to a `String` cannot fail.
            let _ = match step {
                Step::Lit(n) => writeln!(out, "{p}lit {n}"),
                Step::Arg(i) => writeln!(out, "{p}arg {i}"),
                Step::Get(s) => writeln!(out, "{p}get L{s}"),
                Step::Bind(s) => writeln!(out, "{p}bind L{s}"),
                Step::Set(s) => writeln!(out, "{p}set L{s}"),
                Step::AddLit(n) => writeln!(out, "{p}add {n}"),
                Step::AddRight => {
                    open.push(Open::Add);
                    writeln!(out, "{p}add (call):")
                }
                Step::While => {
                    open.push(Open::Cond);
                    writeln!(out, "{p}while (native loop) cond:")
                }
                Step::End => {
                    let _ = writeln!(out, "{p}return");
                    match open.pop() {
                        Some(Open::Cond) => {
                            open.push(Open::Body);
                            writeln!(out, "{}do:", pad(open.len() - 1))
                        }
                        _ => Ok(()),
                    }
                }
            };
        }
        out.push_str("return\n");
    }
}

thin_closure! {
    /// A continuation: a step's closure, owned by the code's [`Arena`],
    /// called with `(args, locals, value of the previous step)`.
    ///
    /// Closures refer to their successors by these plain pointers instead of
    /// owning them, so nothing is freed recursively: the arena releases all
    /// closures at once.
    struct Cont = Fn(args: *const i64, locals: *mut i64, v: i64) -> i64;
}

/// Where a step goes next while a chain is folded: a continuation `C`, or
/// back to whoever ran the chain.
#[derive(Clone, Copy)]
pub(crate) enum Link<C> {
    Cont(C),
    Return,
}

/// Builds the closure `|$a, $l, $x| $body` as a `$node` twice over — with
/// `$k` the continuation, or with `$k` the chain's end `$ret` — and
/// allocates the one `$next` calls for. So the step that ends a chain
/// returns by itself instead of calling a closure that only returns.
macro_rules! step {
    ($node:ident in $arena:expr, $next:expr, $ret:expr, |$a:tt, $l:tt, $x:tt $(: $t:ty)?, $k:ident| $body:expr) => {
        match $next {
            Link::Cont($k) => $node::new_in($arena, move |$a, $l, $x $(: $t)?| $body),
            Link::Return => {
                let $k = $ret;
                $node::new_in($arena, move |$a, $l, $x $(: $t)?| $body)
            }
        }
    };
}
pub(crate) use step;

/// Where a step goes next: a continuation, or back to whoever ran the chain.
/// Each step is built for one or the other, so the end of a chain costs no
/// call.
trait Next: Copy + 'static {
    fn go(self, args: *const i64, locals: *mut i64, v: i64) -> i64;
}

impl Next for Cont {
    #[inline(always)]
    fn go(self, args: *const i64, locals: *mut i64, v: i64) -> i64 {
        self.call(args, locals, v)
    }
}

/// The end of a chain: the value goes back to the caller.
#[derive(Clone, Copy)]
struct Return;

impl Next for Return {
    #[inline(always)]
    fn go(self, _: *const i64, _: *mut i64, v: i64) -> i64 {
        v
    }
}

/// Folds chains into closures in an [`Arena`].
struct Builder<'a>(&'a Arena);

impl Builder<'_> {
    /// The continuation `link` stands for; a chain's end becomes a closure
    /// that hands its input back (only for an empty chain).
    fn cont(&self, link: Link<Cont>) -> Cont {
        match link {
            Link::Cont(c) => c,
            Link::Return => Cont::new_in(self.0, |_, _, v| v),
        }
    }

    /// Folds `chain` into closures, from the last step to the first: each
    /// nested chain is complete (back to its first step) by the time the
    /// `AddRight` or `While` that runs it is reached.
    ///
    /// Every `unsafe` block below relies on [`Code`]'s invariant for `args`
    /// and `locals`, and on validation for the operands: a slot `s` comes
    /// from a local in scope, so `s < max_locals`; an index `i` from an
    /// `Arg(i)` in the program, so `i < arg_count`.
    fn build(&self, chain: &Chain) -> Cont {
        // Continuations waiting while a nested chain is folded: for each
        // open `End`, what follows the step that runs it (and for a loop,
        // also its finished body).
        let mut waiting = Vec::new();
        let mut next: Link<Cont> = Link::Return;
        for step in chain.0.iter().rev() {
            let cont = match *step {
                Step::End => {
                    waiting.push(next);
                    next = Link::Return;
                    continue;
                }
                Step::Lit(n) => step!(Cont in self.0, next, Return, |a, l, _, k| k.go(a, l, n)),
                Step::Arg(i) => step!(Cont in self.0, next, Return, |a, l, _, k| {
                    // SAFETY: `i < arg_count` (see above).
                    k.go(a, l, unsafe { *a.add(i) })
                }),
                Step::Get(s) => step!(Cont in self.0, next, Return, |a, l, _, k| {
                    // SAFETY: `s < max_locals` (see above).
                    k.go(a, l, unsafe { *l.add(s) })
                }),
                Step::Bind(s) => step!(Cont in self.0, next, Return, |a, l, v, k| {
                    // SAFETY: a `Let` at level `s` means `s < max_locals`.
                    unsafe { *l.add(s) = v };
                    k.go(a, l, v)
                }),
                Step::Set(s) => step!(Cont in self.0, next, Return, |a, l, v, k| {
                    // SAFETY: `s < max_locals` (see above).
                    unsafe { *l.add(s) = v };
                    k.go(a, l, 0)
                }),
                Step::AddLit(n) => step!(Cont in self.0, next, Return, |a, l, v: i64, k| k.go(
                    a,
                    l,
                    v.wrapping_add(n)
                )),
                Step::AddRight => {
                    let right = self.cont(next);
                    let after = waiting.pop().expect("lowering closes every nested chain");
                    step!(Cont in self.0, after, Return, |a, l, v: i64, k| {
                        let r = right.go(a, l, 0);
                        k.go(a, l, v.wrapping_add(r))
                    })
                }
                Step::While => {
                    let cond = self.cont(next);
                    let body = waiting.pop().expect("lowering closes every nested chain");
                    let body = self.cont(body);
                    let after = waiting.pop().expect("lowering closes every nested chain");
                    step!(Cont in self.0, after, Return, |a, l, _, k| {
                        while cond.go(a, l, 0) > 0 {
                            body.go(a, l, 0);
                        }
                        k.go(a, l, 0)
                    })
                }
            };
            next = Link::Cont(cont);
        }
        self.cont(next)
    }
}

technique! {
    ClosureContinuations = "closure_continuations", Original, Code;
    "closures that tail-call the next step as a continuation; loops are native";
    compile: compile, execute: run, show: show;
    // Every step ends in a tail call to the next.
    const TAIL_CALLS: bool = true;
}

/// The compiled program: the chain for `show` and its first closure.
///
/// Invariant, relied on by every step: the closures run only from
/// `run`, with `args` holding the program's `arg_count` values (its
/// caller's promise) and `locals` its `max_locals` slots.
pub struct Code {
    chain: Chain,
    entry: Cont,
    max_locals: usize,
    /// Owns `entry` and every closure it reaches; declared last so that it is
    /// dropped last.
    _arena: Arena,
}

fn compile(program: &Program) -> Result<Code, CompileError> {
    let chain = Chain::of(program);
    // Closures take 16 to 56 bytes; most capture a continuation and one
    // word.
    let arena = Arena::with_capacity(32 * chain.0.len());
    let entry = Builder(&arena).build(&chain);
    Ok(Code {
        chain,
        entry,
        max_locals: program.max_locals(),
        _arena: arena,
    })
}

/// Runs the chain from its first closure, on fresh locals.
///
/// # Safety
///
/// `args` covers the program's argument count (`Technique::execute`'s contract).
unsafe fn run(code: &Code, args: &[i64]) -> i64 {
    // `Code`'s invariant: `locals` is sized from the program, and the
    // caller guarantees `args` covers its argument count.
    let mut locals = vec![0i64; code.max_locals];
    code.entry.go(args.as_ptr(), locals.as_mut_ptr(), 0)
}

fn show(code: &Code) -> String {
    let mut out = format!(
        "; {} local slots; each step tail-calls the next\n",
        code.max_locals
    );
    code.chain.write(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::ClosureContinuations;
    use crate::engines::conformance::listing;

    crate::engines::conformance::conformance_tests!(ClosureContinuations, closure_chains);

    #[test]
    fn a_literal_right_operand_is_added_in_place() {
        // The right operand of the last `+` is not a literal: a call.
        assert_eq!(
            listing::<ClosureContinuations>("let x = arg(0); x = x + -3; x + x"),
            [
                "arg 0",
                "bind L0",
                "get L0",
                "add -3",
                "set L0",
                "get L0",
                "add (call):",
                "  get L0",
                "  return",
                "return"
            ]
        );
    }
}
