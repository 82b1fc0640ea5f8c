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
//! (a jump from opt-level 1 on). A `While` is a native Rust loop around its
//! condition and body chains, which *return* (the condition its value); only
//! after the loop does it tail-call onwards. So a call chain is at most as
//! long as straight-line code, never as long as the run.
//!
//! **What a step costs**: its own memory traffic (a push is a store and a
//! pointer bump, `add` two loads and a store), two loads and a jump to reach
//! the next step, and nothing for arguments, four scalars (data, arguments,
//! locals, `sp`, raw pointers all) that pass through unchanged, with the
//! continuations held as in `closure_continuations`. The step that ends a
//! chain returns its value instead of pushing it, so a loop condition never
//! touches the stack.
//! Operand-location variants, for any literal, never a chosen one:
//! **`add n`**, **`sub n`** and **`lt n`**, a literal right operand applied
//! to the top of the stack in place. No arm keys on a value or an index;
//! the one step that does the work of two nodes is the branch on `<`
//! (below), where only the branch needs the comparison.
//!
//! **Branches, calls and returns** stay continuations. An `If` is a step
//! with two continuations: it pops its condition and picks one (**`if >
//! 0`**), or pops two operands, or one and a literal, and compares (**`if
//! <`**, **`if < n`**); both branches continue to what follows the `If`
//! themselves. A *frame* is `[locals | header | operand stack]` in one flat
//! block of the engine's memory sized for `MAX_CALLS` frames: the arguments
//! a caller pushed become the callee's first locals where they lie, and the
//! header above the callee's locals holds the call depth, the caller's
//! frame and the caller's *return continuation*. A **call** checks the
//! depth (in its own frame's header), writes the header and tail-calls the
//! callee's first step, both read from a table indexed by function number
//! (set once every body is built, so functions may call ones defined
//! later); a **return** is the body's last push, which finds the header
//! right below its empty stack, puts the value where the arguments were and
//! tail-calls the return continuation (**`pop`** drops a value nobody
//! reads). So a guest call grows no native stack. A loop whose condition or
//! body makes a call must not wait natively either: it is a cycle of
//! continuations (**`loop`**: the test pops the condition and continues
//! into the body or past the loop, the body's end back into the condition
//! through a cell). A failing call sets a flag below the arguments and
//! returns, straight to `run`. A program without functions compiles and
//! runs exactly as before, with no header.
//!
//! Trade-off: the flattest continuation code (no nested calls except loops),
//! paid for with a load and a store through memory for every intermediate
//! value and the stack pointer threaded through every call. A guest call
//! costs its arguments' pushes, a header of four words written and four
//! read, and two indirect jumps (into the callee, back to the caller's
//! continuation); the arguments are never copied.
//!
//! Unsafe code rests on trusting this module's own lowering (its stack
//! heights, slots and argument indices, frames within memory sized from
//! every body's); there is no verifier.

use super::closure_continuations::{
    HEADER, Header, Link, failed, makes_call, step, with_failure_flag,
};
use super::closures::{Arena, thin_closure};
use crate::engine::{CallDepthExceeded, CompileError, technique};
use crate::front::ast::Expr;
use crate::front::program::{Level, MAX_CALLS, Program};
use std::cell::Cell;

technique! {
    ClosureStackContinuations = "closure_stack_continuations", Original, Code;
    "continuation closures over an explicit operand stack; calls and returns too";
    compile: compile, try_execute: run, show: show;
    const LEVEL: Level = Level::Two;
    // Every step ends in a tail call to the next.
    const TAIL_CALLS: bool = true;
    // One closure per step, nested chains included.
    fn variants() -> Vec<String> {
        crate::engine::variants_of::<StepKind>()
    }
    fn census(code: &Code) -> Vec<(String, usize)> {
        let mut kinds = Vec::new();
        code.main.chain.kinds(&mut kinds);
        for f in &code.functions {
            f.chain.kinds(&mut kinds);
        }
        crate::engine::census_of(kinds)
    }
}

/// One stack-machine step.
#[derive(Debug, PartialEq, Eq, strum::EnumDiscriminants)]
#[strum_discriminants(name(StepKind), derive(strum::VariantArray, strum::IntoStaticStr))]
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
    /// Pop two, push their wrapping difference.
    Sub,
    /// Subtract `n` from the top value.
    SubLit(i64),
    /// Pop two, push 1 if the first is less, else 0.
    Lt,
    /// Replace the top value by 1 if it is less than `n`, else 0.
    LtLit(i64),
    /// Pop the condition; continue into the first branch if it is `> 0`,
    /// else into the second; both continue after the `If`.
    If(Chain, Chain),
    /// Pop two; branch on the first being less than the second.
    IfLt(Chain, Chain),
    /// Pop one; branch on it being less than `n`.
    IfLtLit(i64, Chain, Chain),
    /// A loop whose condition or body makes a call, so it continues rather
    /// than returns: `cond` pushes one value, which the test pops; the
    /// body continues back into `cond`.
    Loop(Chain, Chain),
    /// Pop `args` values, the first locals of `function`'s frame, and push
    /// the value of its body.
    Call { function: usize, args: usize },
    /// Pop a call's value nobody reads.
    Pop,
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
    /// Whether the program has functions: if not, nothing makes a call and
    /// the question is never asked.
    calls: bool,
}

impl Lower {
    fn makes_call(&self, e: &Expr) -> bool {
        self.calls && makes_call(e)
    }

    fn push(&mut self) {
        self.height += 1;
        self.max_height = self.max_height.max(self.height);
    }

    fn chain(&mut self, e: &Expr, scope: usize, want: bool) -> Chain {
        let mut steps = Vec::new();
        let start = self.height;
        self.lower(&mut steps, e, scope, want);
        // A nested chain's pushes are undone by its caller (`While`), or
        // are those of its `If`.
        self.height = start;
        Chain {
            steps,
            pushes: want,
        }
    }

    /// `a op b` for an operator whose literal right operand is in the step.
    fn binary(
        &mut self,
        out: &mut Vec<Step>,
        (a, b): (&Expr, &Expr),
        scope: usize,
        want: bool,
        (step, lit): (Step, fn(i64) -> Step),
    ) {
        self.lower(out, a, scope, want);
        match *b {
            // The literal is in the step: height unchanged.
            Expr::Litr(n) if want => out.push(lit(n)),
            _ => {
                self.lower(out, b, scope, want);
                if want {
                    out.push(step);
                    self.height -= 1;
                }
            }
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
            Expr::Add(a, b) => self.binary(out, (a, b), scope, want, (Step::Add, Step::AddLit)),
            Expr::Sub(a, b) => self.binary(out, (a, b), scope, want, (Step::Sub, Step::SubLit)),
            Expr::Lt(a, b) => self.binary(out, (a, b), scope, want, (Step::Lt, Step::LtLit)),
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
                let continues = self.makes_call(c) || self.makes_call(body);
                let cond = self.chain(c, scope, true);
                let body = self.chain(body, scope, false);
                out.push(if continues {
                    Step::Loop(cond, body)
                } else {
                    Step::While(cond, body)
                });
                if want {
                    out.push(Step::Lit(0));
                    self.push();
                }
            }
            Expr::Then(a, b) => {
                self.lower(out, a, scope, false);
                self.lower(out, b, scope, want);
            }
            Expr::If(c, t, f) => {
                /// What the branch tests.
                enum Test {
                    Positive,
                    Less,
                    LessThan(i64),
                }
                // The branch pops its operands before either branch runs.
                let test = match &**c {
                    Expr::Lt(x, y) => {
                        self.lower(out, x, scope, true);
                        if let Expr::Litr(n) = **y {
                            self.height -= 1;
                            Test::LessThan(n)
                        } else {
                            self.lower(out, y, scope, true);
                            self.height -= 2;
                            Test::Less
                        }
                    }
                    c => {
                        self.lower(out, c, scope, true);
                        self.height -= 1;
                        Test::Positive
                    }
                };
                let (t, f) = (self.chain(t, scope, want), self.chain(f, scope, want));
                out.push(match test {
                    Test::Positive => Step::If(t, f),
                    Test::Less => Step::IfLt(t, f),
                    Test::LessThan(n) => Step::IfLtLit(n, t, f),
                });
                if want {
                    self.push();
                }
            }
            Expr::Call(f, args) => {
                for arg in args {
                    self.lower(out, arg, scope, true);
                }
                self.height -= args.len();
                out.push(Step::Call {
                    function: *f,
                    args: args.len(),
                });
                self.push();
                if !want {
                    out.push(Step::Pop);
                    self.height -= 1;
                }
            }
        }
    }
}

impl Chain {
    /// The chains nested in `step`.
    fn nested(step: &Step) -> impl Iterator<Item = &Chain> {
        let (a, b) = match step {
            Step::While(a, b)
            | Step::Loop(a, b)
            | Step::If(a, b)
            | Step::IfLt(a, b)
            | Step::IfLtLit(_, a, b) => (Some(a), Some(b)),
            _ => (None, None),
        };
        a.into_iter().chain(b)
    }

    /// Steps in this chain and the chains nested in it.
    fn len(&self) -> usize {
        let nested = |s: &Step| Chain::nested(s).map(Chain::len).sum::<usize>();
        self.steps.iter().map(|s| 1 + nested(s)).sum()
    }

    /// The kind of every step, nested chains included.
    fn kinds(&self, out: &mut Vec<StepKind>) {
        for step in &self.steps {
            out.push(step.into());
            for chain in Chain::nested(step) {
                chain.kinds(out);
            }
        }
    }

    fn write(&self, names: &[String], indent: usize, out: &mut String) {
        let pad = "  ".repeat(indent);
        for step in &self.steps {
            let branches = |test: &str, t: &Chain, f: &Chain, out: &mut String| {
                out.push_str(&format!("{pad}if {test} then:\n"));
                t.write_branch(names, indent + 1, out);
                out.push_str(&format!("{pad}else:\n"));
                f.write_branch(names, indent + 1, out);
                out.push_str(&format!("{pad}end if\n"));
            };
            match step {
                Step::Lit(n) => out.push_str(&format!("{pad}push {n}\n")),
                Step::Arg(i) => out.push_str(&format!("{pad}push arg {i}\n")),
                Step::Get(s) => out.push_str(&format!("{pad}push L{s}\n")),
                Step::Add => out.push_str(&format!("{pad}add\n")),
                Step::AddLit(n) => out.push_str(&format!("{pad}add {n}\n")),
                Step::Sub => out.push_str(&format!("{pad}sub\n")),
                Step::SubLit(n) => out.push_str(&format!("{pad}sub {n}\n")),
                Step::Lt => out.push_str(&format!("{pad}lt\n")),
                Step::LtLit(n) => out.push_str(&format!("{pad}lt {n}\n")),
                Step::Store(s) => out.push_str(&format!("{pad}pop L{s}\n")),
                Step::Pop => out.push_str(&format!("{pad}pop\n")),
                Step::Call { function, args } => {
                    out.push_str(&format!("{pad}call {} ({args} args)\n", names[*function]))
                }
                Step::While(c, b) => {
                    out.push_str(&format!("{pad}while (native loop) cond:\n"));
                    c.write(names, indent + 1, out);
                    out.push_str(&format!("{pad}do:\n"));
                    b.write(names, indent + 1, out);
                }
                Step::Loop(c, b) => {
                    out.push_str(&format!("{pad}loop (continuing) cond:\n"));
                    c.write_branch(names, indent + 1, out);
                    out.push_str(&format!("{pad}while > 0 do:\n"));
                    b.write_branch(names, indent + 1, out);
                    out.push_str(&format!("{pad}  repeat\n"));
                }
                Step::If(t, f) => branches("> 0", t, f, out),
                Step::IfLt(t, f) => branches("<", t, f, out),
                Step::IfLtLit(n, t, f) => branches(&format!("< {n}"), t, f, out),
            }
        }
        let end = if self.pushes { "return top" } else { "return" };
        out.push_str(&format!("{pad}{end}\n"));
    }

    /// A chain that continues where its step continues: no return of its own.
    fn write_branch(&self, names: &[String], indent: usize, out: &mut String) {
        let mut all = String::new();
        self.write(names, indent, &mut all);
        // Drop the chain's own `return` line.
        let body = all.trim_end_matches('\n');
        let body = body.rsplit_once('\n').map_or("", |(body, _)| body);
        if !body.is_empty() {
            out.push_str(body);
            out.push('\n');
        }
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

/// The end of a function's body, which always pushes its value: the value
/// goes onto the caller's stack where the arguments were (at this frame's
/// base) and on to the caller's continuation, both read from the header
/// just below this frame's empty operand stack.
#[derive(Clone, Copy)]
struct Exit;

impl Next for Exit {
    #[inline(always)]
    fn push(self, args: *const i64, locals: *mut i64, sp: *mut i64, v: i64) -> i64 {
        // SAFETY: a body's last push finds its operand stack empty, and a
        // `Call` step wrote the header right below it.
        let (caller, resume) = unsafe {
            let h = sp.sub(HEADER).cast::<Header<Cont>>();
            ((*h).caller, (*h).resume)
        };
        resume.push(args, caller, locals, v)
    }

    fn go(self, _: *const i64, _: *mut i64, _: *mut i64) -> i64 {
        unreachable!("a function's body ends by pushing its value")
    }
}

/// The end of the body of a loop that continues rather than returns: on to
/// the loop's condition. A body pushes nothing.
#[derive(Clone, Copy)]
struct Back(*const Cell<Cont>);

impl Next for Back {
    fn push(self, _: *const i64, _: *mut i64, _: *mut i64, _: i64) -> i64 {
        unreachable!("a loop body pushes nothing")
    }

    #[inline(always)]
    fn go(self, args: *const i64, locals: *mut i64, sp: *mut i64) -> i64 {
        // SAFETY: the cell lives in the code's arena, like the closures
        // that hold it, and was set when the loop was built.
        unsafe { (*self.0).get() }.go(args, locals, sp)
    }
}

/// A function as calls reach it: its first closure (set once every body is
/// built) and the locals its frame starts with.
struct Entry {
    code: Cell<Cont>,
    locals: usize,
}

/// Folds chains into closures in an [`Arena`]; calls go through `table`.
struct Builder<'a> {
    arena: &'a Arena,
    table: &'a [Entry],
}

impl Builder<'_> {
    /// The continuation `link` stands for, as a closure that continues
    /// with the stack as it is.
    fn cont(&self, link: Link<Cont>) -> Cont {
        match link {
            Link::Cont(c) => c,
            // Only a chain that pushes nothing can be empty.
            Link::Return => Cont::new_in(self.arena, |_, _, _| 0),
            Link::Exit => Cont::new_in(self.arena, |a, l, sp| Exit.go(a, l, sp)),
            Link::Back(head) => Cont::new_in(self.arena, move |a, l, sp| Back(head).go(a, l, sp)),
        }
    }

    /// The continuation `link` stands for, as a closure that continues
    /// after a value was pushed (the value a call returns).
    fn pushed(&self, link: Link<Cont>) -> Cont {
        /// # Safety
        ///
        /// `sp` is just above the pushed value.
        unsafe fn pop(sp: *mut i64) -> (*mut i64, i64) {
            // SAFETY: the caller's promise.
            unsafe { (sp.sub(1), *sp.sub(1)) }
        }
        match link {
            Link::Cont(c) => c,
            Link::Return => Cont::new_in(self.arena, |_, _, sp| {
                // SAFETY: a value was pushed just below `sp`.
                unsafe { pop(sp) }.1
            }),
            Link::Exit => Cont::new_in(self.arena, |a, l, sp| {
                // SAFETY: a value was pushed just below `sp`.
                let (sp, v) = unsafe { pop(sp) };
                Exit.push(a, l, sp, v)
            }),
            Link::Back(head) => Cont::new_in(self.arena, move |a, l, sp| {
                // SAFETY: a value was pushed just below `sp`.
                let (sp, v) = unsafe { pop(sp) };
                Back(head).push(a, l, sp, v)
            }),
        }
    }

    /// Folds `chain` into closures, from its end to its first step, the
    /// last continuing to `end`; `locals` is the frame's local count of the
    /// body the chain is part of (its header is right above them).
    ///
    /// Every `unsafe` block below relies on the same invariant: the stack
    /// pointer a step receives is the stack's base plus the height `Lower`
    /// computed for that point, and the frame holds `max_locals + max_height`
    /// slots (plus a header between them in a run with functions); so a
    /// push writes inside the frame and a pop reads at or above the stack's
    /// base. Slots are below `max_locals` (locals in scope) and argument
    /// indices below `arg_count` by validation.
    fn build(&self, chain: &Chain, end: Link<Cont>, locals: usize) -> Link<Cont> {
        let arena = self.arena;
        let mut next = end;
        for step in chain.steps.iter().rev() {
            let cont = match *step {
                Step::Lit(n) => step!(Cont in arena, next, |a, l, sp, k| k.push(a, l, sp, n)),
                Step::Arg(i) => step!(Cont in arena, next, |a, l, sp, k| {
                    // SAFETY: `i < arg_count` (see above).
                    k.push(a, l, sp, unsafe { *a.add(i) })
                }),
                Step::Get(s) => step!(Cont in arena, next, |a, l, sp, k| {
                    // SAFETY: `s < max_locals` (see above).
                    k.push(a, l, sp, unsafe { *l.add(s) })
                }),
                Step::Add => step!(Cont in arena, next, |a, l, sp: *mut i64, k| {
                    // SAFETY: `Add` follows the pushes of both operands, so
                    // `sp - 2` and `sp - 1` are stack slots (see above).
                    let (sp, x, y) = unsafe { (sp.sub(2), *sp.sub(2), *sp.sub(1)) };
                    k.push(a, l, sp, x.wrapping_add(y))
                }),
                Step::Sub => step!(Cont in arena, next, |a, l, sp: *mut i64, k| {
                    // SAFETY: as for `Add`.
                    let (sp, x, y) = unsafe { (sp.sub(2), *sp.sub(2), *sp.sub(1)) };
                    k.push(a, l, sp, x.wrapping_sub(y))
                }),
                Step::Lt => step!(Cont in arena, next, |a, l, sp: *mut i64, k| {
                    // SAFETY: as for `Add`.
                    let (sp, x, y) = unsafe { (sp.sub(2), *sp.sub(2), *sp.sub(1)) };
                    k.push(a, l, sp, i64::from(x < y))
                }),
                Step::AddLit(n) => step!(Cont in arena, next, |a, l, sp: *mut i64, k| {
                    // SAFETY: the left operand was just pushed (see above).
                    let (sp, x) = unsafe { (sp.sub(1), *sp.sub(1)) };
                    k.push(a, l, sp, x.wrapping_add(n))
                }),
                Step::SubLit(n) => step!(Cont in arena, next, |a, l, sp: *mut i64, k| {
                    // SAFETY: the left operand was just pushed (see above).
                    let (sp, x) = unsafe { (sp.sub(1), *sp.sub(1)) };
                    k.push(a, l, sp, x.wrapping_sub(n))
                }),
                Step::LtLit(n) => step!(Cont in arena, next, |a, l, sp: *mut i64, k| {
                    // SAFETY: the left operand was just pushed (see above).
                    let (sp, x) = unsafe { (sp.sub(1), *sp.sub(1)) };
                    k.push(a, l, sp, i64::from(x < n))
                }),
                Step::Store(s) => step!(Cont in arena, next, |a, l, sp: *mut i64, k| {
                    // SAFETY: the stored value was just pushed, and the local's
                    // slot `s < max_locals` (see above).
                    let sp = unsafe {
                        let sp = sp.sub(1);
                        *l.add(s) = *sp;
                        sp
                    };
                    k.go(a, l, sp)
                }),
                Step::Pop => step!(Cont in arena, next, |a, l, sp: *mut i64, k| {
                    // SAFETY: the call's value was just pushed (see above).
                    k.go(a, l, unsafe { sp.sub(1) })
                }),
                Step::While(ref cond, ref body) => {
                    let cond = self.cont(self.build(cond, Link::Return, locals));
                    let body = self.cont(self.build(body, Link::Return, locals));
                    step!(Cont in arena, next, |a, l, sp, k| {
                        while cond.call(a, l, sp) > 0 {
                            body.call(a, l, sp);
                        }
                        k.go(a, l, sp)
                    })
                }
                Step::Loop(ref cond, ref body) => {
                    let head: &Cell<Cont> = arena.alloc(Cell::new(self.cont(Link::Return)));
                    let body = self.cont(self.build(body, Link::Back(head), locals));
                    let test = step!(Cont in arena, next, |a, l, sp: *mut i64, k| {
                        // SAFETY: the condition's value was just pushed.
                        let (sp, v) = unsafe { (sp.sub(1), *sp.sub(1)) };
                        if v > 0 { body.call(a, l, sp) } else { k.go(a, l, sp) }
                    });
                    let cond = self.cont(self.build(cond, Link::Cont(test), locals));
                    head.set(cond);
                    cond
                }
                Step::If(ref t, ref f)
                | Step::IfLt(ref t, ref f)
                | Step::IfLtLit(_, ref t, ref f) => {
                    // Both branches continue where the `If` continues.
                    let then = self.cont(self.build(t, next, locals));
                    let otherwise = self.cont(self.build(f, next, locals));
                    match *step {
                        Step::If(..) => Cont::new_in(arena, move |a, l, sp: *mut i64| {
                            // SAFETY: the condition was just pushed.
                            let (sp, v) = unsafe { (sp.sub(1), *sp.sub(1)) };
                            if v > 0 {
                                then.call(a, l, sp)
                            } else {
                                otherwise.call(a, l, sp)
                            }
                        }),
                        Step::IfLt(..) => Cont::new_in(arena, move |a, l, sp: *mut i64| {
                            // SAFETY: both operands were just pushed.
                            let (sp, x, y) = unsafe { (sp.sub(2), *sp.sub(2), *sp.sub(1)) };
                            if x < y {
                                then.call(a, l, sp)
                            } else {
                                otherwise.call(a, l, sp)
                            }
                        }),
                        Step::IfLtLit(n, ..) => Cont::new_in(arena, move |a, l, sp: *mut i64| {
                            // SAFETY: the left operand was just pushed.
                            let (sp, x) = unsafe { (sp.sub(1), *sp.sub(1)) };
                            if x < n {
                                then.call(a, l, sp)
                            } else {
                                otherwise.call(a, l, sp)
                            }
                        }),
                        _ => unreachable!("matched above"),
                    }
                }
                Step::Call { function, args } => {
                    let entry: *const Entry = &self.table[function];
                    let resume = self.pushed(next);
                    Cont::new_in(arena, move |a, l, sp: *mut i64| {
                        // SAFETY: a `Call` step runs only in a run with
                        // functions, where every frame has its header right
                        // above its `locals`; the arguments are the top
                        // `args` values; the callee's frame, header and
                        // stack lie within the run's memory, sized for
                        // `MAX_CALLS` frames of the largest function
                        // (`run_with_calls`). The table lives as long as
                        // the code.
                        unsafe {
                            let depth = (*l.add(locals).cast::<Header<Cont>>()).depth;
                            if depth == MAX_CALLS {
                                *failed(a) = 1;
                                return 0;
                            }
                            let entry = &*entry;
                            let callee = sp.sub(args);
                            let h = callee.add(entry.locals);
                            h.cast::<Header<Cont>>().write(Header {
                                depth: depth + 1,
                                caller: l,
                                resume,
                            });
                            entry.code.get().call(a, callee, h.add(HEADER))
                        }
                    })
                }
            };
            next = Link::Cont(cont);
        }
        next
    }
}

/// One body's code: its chain (for `show`) and the sizes of its frame.
struct Body {
    chain: Chain,
    max_locals: usize,
    max_height: usize,
}

impl Body {
    fn of(e: &Expr, params: usize, max_locals: usize, calls: bool) -> Body {
        let mut lower = Lower {
            height: 0,
            max_height: 0,
            calls,
        };
        let chain = lower.chain(e, params, true);
        Body {
            chain,
            max_locals,
            max_height: lower.max_height,
        }
    }
}

/// What `compile` made: main's first closure, the chains it was built from
/// (for `show`), the sizes of the frames they run on, and the table of
/// the functions' first closures that calls go through.
///
/// Every step relies on running only from `run`: on a frame of
/// `max_locals` local slots followed by `max_height` stack slots (with a
/// header between them in a program with functions, and room for
/// `MAX_CALLS` more frames above), with `args` holding the program's
/// `arg_count` values (`run`'s caller's promise).
pub struct Code {
    main: Body,
    functions: Vec<Body>,
    names: Vec<String>,
    entry: Cont,
    /// Slots of memory a run with calls needs; 0 if the program has no
    /// function.
    frame_memory: usize,
    _table: Box<[Entry]>,
    /// Owns `entry` and every closure it reaches; declared last so that it is
    /// dropped last.
    _arena: Arena,
}

fn compile(program: &Program) -> Result<Code, CompileError> {
    let calls = !program.functions().is_empty();
    let main = Body::of(program.expr(), 0, program.max_locals(), calls);
    let functions: Vec<Body> = program
        .functions()
        .iter()
        .zip(program.function_facts())
        .map(|(f, facts)| Body::of(&f.body, f.arity(), facts.max_locals, true))
        .collect();
    let steps = main.chain.len() + functions.iter().map(|f| f.chain.len()).sum::<usize>();
    // Closures take 16 to 40 bytes; most capture a continuation and one
    // word.
    let arena = Arena::with_capacity(32 * steps);
    let unset = Cont::new_in(&arena, |_, _, _| 0);
    let table: Box<[Entry]> = functions
        .iter()
        .map(|f| Entry {
            code: Cell::new(unset),
            locals: f.max_locals,
        })
        .collect();
    let builder = Builder {
        arena: &arena,
        table: &table,
    };
    for (entry, f) in table.iter().zip(&functions) {
        let code = builder.build(&f.chain, Link::Exit, f.max_locals);
        entry.code.set(builder.cont(code));
    }
    let entry = builder.build(&main.chain, Link::Return, main.max_locals);
    let entry = builder.cont(entry);
    let frame = |b: &Body| b.max_locals + HEADER + b.max_height;
    let largest = functions.iter().map(frame).max();
    let frame_memory = largest.map_or(0, |f| frame(&main) + MAX_CALLS * f);
    Ok(Code {
        names: program.functions().iter().map(|f| f.name.clone()).collect(),
        main,
        functions,
        entry,
        frame_memory,
        _table: table,
        _arena: arena,
    })
}

/// Runs main's chain from its first closure, on a fresh buffer of locals
/// and stack.
///
/// # Safety
///
/// `args` covers the program's argument count (`Technique::execute`'s contract).
unsafe fn run(code: &Code, args: &[i64]) -> Result<i64, CallDepthExceeded> {
    let locals = code.main.max_locals;
    if code.frame_memory > 0 {
        // Zeroed: main's header says depth 0. Pages no call reaches are
        // never touched.
        let mut memory = vec![0i64; code.frame_memory];
        let l = memory.as_mut_ptr();
        // SAFETY: main's locals, header and stack come first in the memory.
        let sp = unsafe { l.add(locals + HEADER) };
        return with_failure_flag(args, |a| code.entry.call(a, l, sp));
    }
    // `Code`'s invariant: the buffer is sized from the program, and the
    // caller guarantees `args` covers its argument count.
    let mut mem = vec![0i64; locals + code.main.max_height];
    let l = mem.as_mut_ptr();
    // SAFETY: `max_locals` is within `mem`: the stack starts empty.
    let sp = unsafe { l.add(locals) };
    Ok(code.entry.call(args.as_ptr(), l, sp))
}

fn show(code: &Code) -> String {
    let header = |b: &Body| {
        format!(
            "{} local slots, operand stack of {}",
            b.max_locals, b.max_height
        )
    };
    let mut out = format!("; {}; each step tail-calls the next\n", header(&code.main));
    if code.functions.is_empty() {
        code.main.chain.write(&code.names, 0, &mut out);
        return out;
    }
    for (name, f) in code.names.iter().zip(&code.functions) {
        out.push_str(&format!("fn {name}: {}\n", header(f)));
        f.chain.write_branch(&code.names, 1, &mut out);
        out.push_str("  return top to caller\n");
    }
    out.push_str("main:\n");
    code.main.chain.write(&code.names, 1, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::engines::conformance::conformance_tests!(ClosureStackContinuations, closure_chains);

    fn code(src: &str) -> Code {
        compile(&crate::front::compile_source("t", src).unwrap()).unwrap()
    }

    #[test]
    fn arguments_are_pushed_where_the_callee_finds_its_locals() {
        use Step::*;
        // The value of a call nobody reads is popped.
        let code = code("fn f(a, b) { a - b } f(arg(0), 2); 3");
        assert_eq!(
            code.main.chain.steps,
            [
                Arg(0),
                Lit(2),
                Call {
                    function: 0,
                    args: 2
                },
                Pop,
                Lit(3)
            ]
        );
        // `a` is the callee's slot 0, where the first argument was pushed.
        assert_eq!(code.functions[0].chain.steps, [Get(0), Get(1), Sub]);
        assert_eq!(code.functions[0].max_locals, 2);
    }

    #[test]
    fn a_loop_continues_if_it_makes_a_call_and_is_native_otherwise() {
        let code = code("fn f() { 1 } let n = 2; while n { n = n - f() }; while n { }; n");
        let loops: Vec<_> = code
            .main
            .chain
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Loop(..) => Some("loop"),
                Step::While(..) => Some("while"),
                _ => None,
            })
            .collect();
        assert_eq!(loops, ["loop", "while"]);
    }

    #[test]
    fn show_lists_every_function_and_main() {
        let shown = show(&code(
            "fn even(n) { if n < 1 { 1 } else { odd(n - 1) } }\n\
             fn odd(n) { if n < 1 { 0 } else { even(n - 1) } }\n\
             even(arg(0))",
        ));
        let heads: Vec<_> = shown.lines().filter(|l| !l.starts_with(' ')).collect();
        assert_eq!(
            heads[1..],
            [
                "fn even: 1 local slots, operand stack of 1",
                "fn odd: 1 local slots, operand stack of 1",
                "main:"
            ]
        );
        assert!(shown.lines().any(|l| l.trim() == "call odd (1 args)"));
        assert!(shown.lines().any(|l| l.trim() == "if < 1 then:"));
    }

    #[test]
    fn a_literal_right_operand_is_added_on_the_stack_top() {
        let p = crate::front::compile_source("t", "let x = arg(0); x = x + -3; x + x").unwrap();
        let code = compile(&p).unwrap();
        use Step::*;
        assert_eq!(
            code.main.chain.steps,
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
        assert_eq!(code.main.max_height, 2);
    }
}
