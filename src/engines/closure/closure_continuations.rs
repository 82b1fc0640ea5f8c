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
//! is long, never as deep as it runs: a `While` is a native Rust loop that
//! calls its condition and body as nested chains which *return*, and only
//! after the loop does it tail-call its continuation.
//!
//! **What a step costs**: its own work plus two loads and a jump to reach
//! the next, because of four choices: a continuation is a code pointer and
//! a data pointer stored *inside* the calling closure (a `dyn Fn` pointer
//! would add a dependent vtable load and a register shuffle per step);
//! every step takes the same four scalars (data, arguments, locals, value),
//! raw pointers rather than slices, which would take six registers and make
//! `Add` and `While` save all of them across their nested calls; the last
//! step of a chain returns its value itself rather than calling a closure
//! that only returns; and leaving a scope costs nothing, slots being fixed.
//! Operand-location variants, for any literal or slot, never a chosen one:
//! **`add n`**, **`sub n`**, **`lt n`** (a literal right operand, captured
//! in the step) and **`add`/`sub`/`lt` saved** (below). No arm keys on a
//! value or an index; the one step that does the work of two nodes is the
//! branch on `<` (below), where only the branch needs the comparison.
//!
//! **Branches, calls and returns** stay continuations. An `If` is a step
//! with two continuations: it picks one by its input (**`if > 0`**) or by
//! comparing (**`if <`** with a nested right chain, **`if < n`**, **`if
//! saved <`**), and both branches continue to what follows the `If`
//! themselves, so a branch nests nothing. A *frame* is a function's slots
//! in one flat block of the engine's memory, sized for `MAX_CALLS` frames;
//! below each frame a header holds the call depth, the caller's frame and
//! the caller's *return continuation*. A **call** stores each argument
//! straight into its parameter's slot of the callee's frame (just above the
//! caller's slots in use), checks the depth, writes the header and
//! tail-calls the callee's first step, read from a table indexed by
//! function number (set once every body is built, so functions may call
//! ones defined later); a **return** is the body's last step tail-calling
//! the continuation in the header, on the caller's frame. So a guest call
//! grows no native stack, and the depth check is a load and a compare. But
//! nothing may *wait* natively for a call: a nested chain that makes one
//! would keep a native frame per active call. So an operand that makes a
//! call is not nested: its left operand is saved in a frame slot and the
//! operator runs after it (the *saved* variants), and a loop whose
//! condition or body makes a call is a cycle of continuations (**`loop`**:
//! the test continues into the body or past the loop, the body's end back
//! into the condition through a cell). A failing call sets a flag below
//! the arguments and returns, straight to `run`. A program without
//! functions compiles and runs exactly as before, with no header.
//!
//! Trade-off: no dispatch loop and no operand stack, and a step never
//! returns through its predecessors; but each step is an indirect jump, and
//! every `Add` of a non-literal and every loop iteration pays a real call
//! and return for its nested chains. A guest call costs a step per
//! argument, a header of four words written and four read, and two
//! indirect jumps (into the callee, back to the caller's continuation).
//!
//! Unsafe code rests on trusting this module's own lowering (slots from the
//! validated scopes or claimed by lowering, argument indices from
//! validation, frames within memory sized from every body's slots); there
//! is no verifier.

use super::closures::{Arena, thin_closure};
use crate::engine::{CallDepthExceeded, CompileError, technique};
use crate::front::ast::Expr;
use crate::front::program::{Level, MAX_CALLS, Program};
use std::cell::Cell;

/// One step of a chain; it receives the previous step's value.
///
/// Nested chains are stored inline, right after the step that runs them and
/// closed by [`Step::End`], so a whole body is one flat `Vec` of 16-byte
/// steps: lowering allocates no `Vec` per `Add` or `While`. Branches and
/// loops that continue rather than return are marked the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::EnumDiscriminants)]
#[strum_discriminants(name(StepKind), derive(strum::VariantArray, strum::IntoStaticStr))]
pub enum Step {
    /// Value `n` (ignores its input).
    Lit(i64),
    /// Value `args[i]`.
    Arg(usize),
    /// Value of the local in slot `s`.
    Get(usize),
    /// Stores its input into slot `s` (a new local, a saved left operand or
    /// a call's argument); passes its input on.
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
    /// Value = input − the value of the nested chain that follows.
    SubRight,
    /// Value = input − `n`.
    SubLit(i64),
    /// Value = 1 if input < the nested chain's value, else 0.
    LtRight,
    /// Value = 1 if input < `n`, else 0.
    LtLit(i64),
    /// Value = slot `s` + input: an `Add` whose right operand makes a call,
    /// its left operand saved in slot `s` meanwhile.
    AddSaved(usize),
    /// Value = slot `s` − input (left operand saved, as for `AddSaved`).
    SubSaved(usize),
    /// Value = 1 if slot `s` < input, else 0 (left operand saved).
    LtSaved(usize),
    /// Continues into the branch that follows if the input is `> 0`, else
    /// into the one after [`Step::Else`]; both continue after [`Step::EndIf`].
    If,
    /// As `If`, on input < the value of the nested chain that follows.
    IfLtRight,
    /// As `If`, on input < `n`.
    IfLtLit(i64),
    /// As `If`, on slot `s` < input (left operand saved).
    IfLtSaved(usize),
    /// Ends the first branch and starts the second.
    Else,
    /// Ends the second branch.
    EndIf,
    /// Starts a loop whose condition or body makes a call: the condition
    /// follows, then [`Step::LoopTest`], the body and [`Step::Repeat`].
    Loop,
    /// Continues into the body if the input is `> 0`, else after the loop
    /// with `0`.
    LoopTest,
    /// Ends a loop body: continues at the loop's condition.
    Repeat,
    /// Calls `function` on the frame at slot `frame` of this one, whose first
    /// slots hold the arguments; the value is the callee's.
    Call { function: u32, frame: u32 },
}

/// How a binary operator is lowered: its step with a nested right chain,
/// with a literal right operand, and with a saved left operand.
#[derive(Clone, Copy)]
struct Operator {
    right: Step,
    lit: fn(i64) -> Step,
    saved: fn(usize) -> Step,
}

const ADD: Operator = Operator {
    right: Step::AddRight,
    lit: Step::AddLit,
    saved: Step::AddSaved,
};
const SUB: Operator = Operator {
    right: Step::SubRight,
    lit: Step::SubLit,
    saved: Step::SubSaved,
};
const LT: Operator = Operator {
    right: Step::LtRight,
    lit: Step::LtLit,
    saved: Step::LtSaved,
};
const IF_LT: Operator = Operator {
    right: Step::IfLtRight,
    lit: Step::IfLtLit,
    saved: Step::IfLtSaved,
};

/// One body's steps in evaluation order, nested chains inline, and the
/// slots its frame needs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Chain {
    steps: Vec<Step>,
    /// Slots of a frame of this body: its locals and saved operands, and
    /// the slots below each callee's frame (its header).
    reach: usize,
}

/// Lowers one body into a [`Chain`].
struct Lower {
    chain: Chain,
    /// The slot of each local in scope, the innermost last.
    slots: Vec<usize>,
    /// The first free slot.
    top: usize,
    /// Whether the program has functions: if not, nothing makes a call and
    /// the question is never asked.
    calls: bool,
}

/// Whether evaluating `e` can make a call.
pub(crate) fn makes_call(e: &Expr) -> bool {
    matches!(e, Expr::Call(..)) || e.children().any(makes_call)
}

impl Lower {
    /// Lowers a body whose first `params` slots hold its parameters.
    fn body(e: &Expr, params: usize, calls: bool) -> Result<Chain, CompileError> {
        let mut lower = Lower {
            chain: Chain {
                steps: Vec::with_capacity(e.node_count()),
                reach: params,
            },
            slots: (0..params).collect(),
            top: params,
            calls,
        };
        lower.lower(e)?;
        Ok(lower.chain)
    }

    fn push(&mut self, step: Step) {
        self.chain.steps.push(step);
    }

    /// Claims the first free slot for `run`.
    fn with_slot(
        &mut self,
        run: impl FnOnce(&mut Self, usize) -> Result<(), CompileError>,
    ) -> Result<(), CompileError> {
        let s = self.top;
        self.top += 1;
        self.chain.reach = self.chain.reach.max(self.top);
        run(self, s)?;
        self.top = s;
        Ok(())
    }

    fn makes_call(&self, e: &Expr) -> bool {
        self.calls && makes_call(e)
    }

    fn local(&self, d: usize) -> usize {
        self.slots[self.slots.len() - 1 - d]
    }

    /// `a op b`: `b` a literal, a nested chain that returns, or (when it
    /// makes a call, which must continue rather than return) a chain that
    /// continues after `a`'s value is saved in a slot.
    fn binary(&mut self, op: Operator, a: &Expr, b: &Expr) -> Result<(), CompileError> {
        self.lower(a)?;
        if let Expr::Litr(n) = *b {
            self.push((op.lit)(n));
        } else if self.makes_call(b) {
            self.with_slot(|this, s| {
                this.push(Step::Bind(s));
                this.lower(b)?;
                this.push((op.saved)(s));
                Ok(())
            })?;
        } else {
            self.push(op.right);
            self.lower(b)?;
            self.push(Step::End);
        }
        Ok(())
    }

    /// Appends the steps of `e`.
    fn lower(&mut self, e: &Expr) -> Result<(), CompileError> {
        match e {
            Expr::Litr(n) => self.push(Step::Lit(*n)),
            Expr::Arg(i) => self.push(Step::Arg(*i)),
            Expr::Get(d) => self.push(Step::Get(self.local(*d))),
            Expr::Add(a, b) => self.binary(ADD, a, b)?,
            Expr::Sub(a, b) => self.binary(SUB, a, b)?,
            Expr::Lt(a, b) => self.binary(LT, a, b)?,
            Expr::Let(init, body) => {
                self.lower(init)?;
                self.with_slot(|this, s| {
                    this.push(Step::Bind(s));
                    this.slots.push(s);
                    this.lower(body)?;
                    this.slots.pop();
                    Ok(())
                })?;
            }
            Expr::Set(d, v) => {
                self.lower(v)?;
                self.push(Step::Set(self.local(*d)));
            }
            Expr::While(c, body) if self.makes_call(c) || self.makes_call(body) => {
                self.push(Step::Loop);
                self.lower(c)?;
                self.push(Step::LoopTest);
                self.lower(body)?;
                self.push(Step::Repeat);
            }
            Expr::While(c, body) => {
                self.push(Step::While);
                self.lower(c)?;
                self.push(Step::End);
                self.lower(body)?;
                self.push(Step::End);
            }
            // The first step of any chain ignores its input, so `a`'s value
            // is dropped by `b`'s first step.
            Expr::Then(a, b) => {
                self.lower(a)?;
                self.lower(b)?;
            }
            Expr::If(c, t, f) => {
                match &**c {
                    Expr::Lt(x, y) => self.binary(IF_LT, x, y)?,
                    c => {
                        self.lower(c)?;
                        self.push(Step::If);
                    }
                }
                self.lower(t)?;
                self.push(Step::Else);
                self.lower(f)?;
                self.push(Step::EndIf);
            }
            Expr::Call(f, args) => {
                // The callee's frame starts past a header above this
                // frame's slots in use; each argument is stored straight
                // into its parameter's slot there, and the arguments after
                // it are evaluated above it.
                let frame = self.top + HEADER;
                for (j, arg) in args.iter().enumerate() {
                    self.top = frame + j;
                    self.lower(arg)?;
                    self.push(Step::Bind(frame + j));
                    self.chain.reach = self.chain.reach.max(frame + j + 1);
                }
                self.top = frame - HEADER;
                self.chain.reach = self.chain.reach.max(frame);
                let too_big = || CompileError("a frame of more than 2^32 slots".into());
                self.push(Step::Call {
                    function: u32::try_from(*f).map_err(|_| too_big())?,
                    frame: u32::try_from(frame).map_err(|_| too_big())?,
                });
            }
        }
        Ok(())
    }
}

impl Chain {
    fn write(&self, names: &[String], out: &mut String, indent: usize) {
        use std::fmt::Write;
        /// What an `End` (or `Else`, `EndIf`, `Repeat`) closes.
        enum Open {
            Operand,
            IfOperand,
            Cond,
            Body,
            Branch,
            Loop,
        }
        let mut open = Vec::new();
        let pad = |depth: usize| "  ".repeat(indent + depth);
        for step in &self.steps {
            let p = pad(open.len());
            // Writing to a `String` cannot fail.
            let _ = match *step {
                Step::Lit(n) => writeln!(out, "{p}lit {n}"),
                Step::Arg(i) => writeln!(out, "{p}arg {i}"),
                Step::Get(s) => writeln!(out, "{p}get L{s}"),
                Step::Bind(s) => writeln!(out, "{p}bind L{s}"),
                Step::Set(s) => writeln!(out, "{p}set L{s}"),
                Step::AddLit(n) => writeln!(out, "{p}add {n}"),
                Step::SubLit(n) => writeln!(out, "{p}sub {n}"),
                Step::LtLit(n) => writeln!(out, "{p}lt {n}"),
                Step::AddSaved(s) => writeln!(out, "{p}add to saved L{s}"),
                Step::SubSaved(s) => writeln!(out, "{p}sub from saved L{s}"),
                Step::LtSaved(s) => writeln!(out, "{p}lt, saved L{s} <"),
                Step::AddRight | Step::SubRight | Step::LtRight => {
                    open.push(Open::Operand);
                    let op = match step {
                        Step::AddRight => "add",
                        Step::SubRight => "sub",
                        _ => "lt",
                    };
                    writeln!(out, "{p}{op} (call):")
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
                        Some(Open::IfOperand) => {
                            open.push(Open::Branch);
                            writeln!(out, "{}then:", pad(open.len() - 1))
                        }
                        _ => Ok(()),
                    }
                }
                Step::If => {
                    open.push(Open::Branch);
                    writeln!(out, "{p}if > 0 then:")
                }
                Step::IfLtLit(n) => {
                    open.push(Open::Branch);
                    writeln!(out, "{p}if < {n} then:")
                }
                Step::IfLtSaved(s) => {
                    open.push(Open::Branch);
                    writeln!(out, "{p}if saved L{s} < then:")
                }
                Step::IfLtRight => {
                    open.push(Open::IfOperand);
                    writeln!(out, "{p}if < (call):")
                }
                Step::Else => writeln!(out, "{}else:", pad(open.len() - 1)),
                Step::EndIf => {
                    open.pop();
                    writeln!(out, "{}end if", pad(open.len()))
                }
                Step::Loop => {
                    open.push(Open::Loop);
                    writeln!(out, "{p}loop (continuing) cond:")
                }
                Step::LoopTest => writeln!(out, "{}while > 0 do:", pad(open.len() - 1)),
                Step::Repeat => {
                    let _ = writeln!(out, "{p}repeat");
                    open.pop();
                    Ok(())
                }
                Step::Call { function, frame } => writeln!(
                    out,
                    "{p}call {} (frame at L{frame})",
                    names[function as usize]
                ),
            };
        }
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

/// Where a step goes next while a chain is folded: a continuation `C`, back
/// to whoever ran the chain, back to the caller of the running function
/// (the end of a function's body), or to a loop's condition, which is
/// built after its body and so reached through a cell.
#[derive(Clone, Copy)]
pub(crate) enum Link<C> {
    Cont(C),
    Return,
    Exit,
    Back(*const Cell<C>),
}

/// Builds the closure `|$a, $l, $x| $body` as a `$node` once per kind of
/// [`Link`] — with `$k` the continuation, or with `$k` the engine's
/// `Return`, `Exit` or `Back` (each engine defines these three) — and
/// allocates the one `$next` calls for. So the step that ends a chain,
/// a function or a loop body does that itself instead of calling a
/// closure that only does that.
macro_rules! step {
    ($node:ident in $arena:expr, $next:expr, |$a:tt, $l:tt, $x:tt $(: $t:ty)?, $k:ident| $body:expr) => {
        match $next {
            Link::Cont($k) => $node::new_in($arena, move |$a, $l, $x $(: $t)?| $body),
            Link::Return => {
                let $k = Return;
                $node::new_in($arena, move |$a, $l, $x $(: $t)?| $body)
            }
            Link::Exit => {
                let $k = Exit;
                $node::new_in($arena, move |$a, $l, $x $(: $t)?| $body)
            }
            Link::Back(head) => {
                let $k = Back(head);
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

/// What a `Call` step writes beside the callee's frame; the callee's end
/// reads it back. Main's frame has one too, with depth 0. Shared with
/// `closure_stack_continuations` (`C` is the engine's continuation).
#[repr(C)]
pub(crate) struct Header<C> {
    /// Calls active with this frame's.
    pub(crate) depth: usize,
    /// The caller's frame.
    pub(crate) caller: *mut i64,
    /// Where the caller continues with the callee's value.
    pub(crate) resume: C,
}

/// Slots a [`Header`] takes (its continuation is two words in both
/// engines).
pub(crate) const HEADER: usize = size_of::<Header<Cont>>() / size_of::<i64>();

/// The header below the frame at `locals`.
///
/// # Safety
///
/// `locals` is a frame of a run with functions ([`run_with_calls`]): main's
/// or one a `Call` step made, so [`HEADER`] slots of the run's frame
/// memory lie below it.
#[inline(always)]
unsafe fn header(locals: *mut i64) -> *mut Header<Cont> {
    // SAFETY: the caller's promise.
    unsafe { locals.sub(HEADER).cast::<Header<Cont>>() }
}

/// The end of a function's body: the value goes to the caller's
/// continuation, in the caller's frame, both read from the header.
#[derive(Clone, Copy)]
struct Exit;

impl Next for Exit {
    #[inline(always)]
    fn go(self, args: *const i64, locals: *mut i64, v: i64) -> i64 {
        // SAFETY: a function's body runs only on a frame a `Call` step made,
        // which wrote its header.
        let (caller, resume) = unsafe {
            let h = header(locals);
            ((*h).caller, (*h).resume)
        };
        resume.go(args, caller, v)
    }
}

/// The end of a loop body whose loop continues rather than returns: on to
/// the loop's condition.
#[derive(Clone, Copy)]
struct Back(*const Cell<Cont>);

impl Next for Back {
    #[inline(always)]
    fn go(self, args: *const i64, locals: *mut i64, _: i64) -> i64 {
        // SAFETY: the cell lives in the code's arena, like the closures
        // that hold it, and was set when the loop was built.
        unsafe { (*self.0).get() }.go(args, locals, 0)
    }
}

/// The flag below a run's arguments that a failing call sets.
///
/// # Safety
///
/// `args` comes from a `run_with_calls` (of either engine), which puts a
/// writable slot below the arguments.
#[inline(always)]
pub(crate) unsafe fn failed(args: *const i64) -> *mut i64 {
    // SAFETY: the caller's promise.
    unsafe { args.cast_mut().sub(1) }
}

/// Folds chains into closures in an [`Arena`]; calls go through `table`.
struct Builder<'a> {
    arena: &'a Arena,
    table: &'a [Cell<Cont>],
}

impl Builder<'_> {
    /// The continuation `link` stands for, as a closure.
    fn cont(&self, link: Link<Cont>) -> Cont {
        match link {
            Link::Cont(c) => c,
            Link::Return => Cont::new_in(self.arena, |_, _, v| v),
            Link::Exit => Cont::new_in(self.arena, |a, l, v| Exit.go(a, l, v)),
            Link::Back(head) => Cont::new_in(self.arena, move |a, l, v| Back(head).go(a, l, v)),
        }
    }

    /// Folds `chain` into closures, from the last step to the first, the
    /// last continuing to `end`: each nested chain is complete (back to its
    /// first step) by the time the step that runs it is reached.
    ///
    /// Every `unsafe` block below relies on [`Code`]'s invariant for `args`
    /// and `locals`, and on validation and lowering for the operands: a
    /// slot `s` comes from a local in scope or a slot lowering claimed, so
    /// `s < reach`; an index `i` from an `Arg(i)` in the program, so
    /// `i < arg_count`.
    fn build(&self, chain: &Chain, end: Link<Cont>) -> Cont {
        // Continuations waiting while a nested chain or a branch is folded:
        // for each open `End`, what follows the step that runs it (and for
        // a loop, also its finished body); for a branch, what follows the
        // `If` (and its second branch, once folded).
        let mut waiting = Vec::new();
        // The condition cell of each loop being folded.
        let mut loops = Vec::new();
        let mut next: Link<Cont> = end;
        let arena = self.arena;
        for step in chain.steps.iter().rev() {
            let cont = match *step {
                Step::End => {
                    waiting.push(next);
                    next = Link::Return;
                    continue;
                }
                Step::EndIf => {
                    waiting.push(next);
                    continue;
                }
                Step::Else => {
                    let after = *waiting.last().expect("an `EndIf` is open");
                    waiting.push(next);
                    next = after;
                    continue;
                }
                Step::Repeat => {
                    let head: &Cell<Cont> = arena.alloc(Cell::new(self.cont(Link::Return)));
                    loops.push(head);
                    waiting.push(next);
                    next = Link::Back(head);
                    continue;
                }
                Step::Loop => {
                    let head = loops.pop().expect("a `Repeat` is open");
                    head.set(self.cont(next));
                    continue;
                }
                Step::Lit(n) => step!(Cont in arena, next, |a, l, _, k| k.go(a, l, n)),
                Step::Arg(i) => step!(Cont in arena, next, |a, l, _, k| {
                    // SAFETY: `i < arg_count` (see above).
                    k.go(a, l, unsafe { *a.add(i) })
                }),
                Step::Get(s) => step!(Cont in arena, next, |a, l, _, k| {
                    // SAFETY: `s < reach` (see above).
                    k.go(a, l, unsafe { *l.add(s) })
                }),
                Step::Bind(s) => step!(Cont in arena, next, |a, l, v, k| {
                    // SAFETY: `s < reach` (see above).
                    unsafe { *l.add(s) = v };
                    k.go(a, l, v)
                }),
                Step::Set(s) => step!(Cont in arena, next, |a, l, v, k| {
                    // SAFETY: `s < reach` (see above).
                    unsafe { *l.add(s) = v };
                    k.go(a, l, 0)
                }),
                Step::AddLit(n) => step!(Cont in arena, next, |a, l, v: i64, k| k.go(
                    a,
                    l,
                    v.wrapping_add(n)
                )),
                Step::SubLit(n) => step!(Cont in arena, next, |a, l, v: i64, k| k.go(
                    a,
                    l,
                    v.wrapping_sub(n)
                )),
                Step::LtLit(n) => step!(Cont in arena, next, |a, l, v: i64, k| k.go(
                    a,
                    l,
                    i64::from(v < n)
                )),
                Step::AddSaved(s) => step!(Cont in arena, next, |a, l, v: i64, k| {
                    // SAFETY: `s < reach` (see above).
                    k.go(a, l, unsafe { *l.add(s) }.wrapping_add(v))
                }),
                Step::SubSaved(s) => step!(Cont in arena, next, |a, l, v: i64, k| {
                    // SAFETY: `s < reach` (see above).
                    k.go(a, l, unsafe { *l.add(s) }.wrapping_sub(v))
                }),
                Step::LtSaved(s) => step!(Cont in arena, next, |a, l, v: i64, k| {
                    // SAFETY: `s < reach` (see above).
                    k.go(a, l, i64::from(unsafe { *l.add(s) } < v))
                }),
                Step::AddRight => {
                    let right = self.cont(next);
                    let after = waiting.pop().expect("lowering closes every nested chain");
                    step!(Cont in arena, after, |a, l, v: i64, k| {
                        let r = right.go(a, l, 0);
                        k.go(a, l, v.wrapping_add(r))
                    })
                }
                Step::SubRight => {
                    let right = self.cont(next);
                    let after = waiting.pop().expect("lowering closes every nested chain");
                    step!(Cont in arena, after, |a, l, v: i64, k| {
                        let r = right.go(a, l, 0);
                        k.go(a, l, v.wrapping_sub(r))
                    })
                }
                Step::LtRight => {
                    let right = self.cont(next);
                    let after = waiting.pop().expect("lowering closes every nested chain");
                    step!(Cont in arena, after, |a, l, v: i64, k| {
                        let r = right.go(a, l, 0);
                        k.go(a, l, i64::from(v < r))
                    })
                }
                Step::While => {
                    let cond = self.cont(next);
                    let body = waiting.pop().expect("lowering closes every nested chain");
                    let body = self.cont(body);
                    let after = waiting.pop().expect("lowering closes every nested chain");
                    step!(Cont in arena, after, |a, l, _, k| {
                        while cond.go(a, l, 0) > 0 {
                            body.go(a, l, 0);
                        }
                        k.go(a, l, 0)
                    })
                }
                Step::If | Step::IfLtLit(_) | Step::IfLtSaved(_) | Step::IfLtRight => {
                    let right = match step {
                        Step::IfLtRight => {
                            let right = self.cont(next);
                            next = waiting.pop().expect("lowering closes every nested chain");
                            Some(right)
                        }
                        _ => None,
                    };
                    let then = self.cont(next);
                    let otherwise = self.cont(waiting.pop().expect("an `Else` is open"));
                    // Both branches continue after the `If` themselves.
                    waiting.pop().expect("an `EndIf` is open");
                    match *step {
                        Step::If => Cont::new_in(arena, move |a, l, v| {
                            if v > 0 {
                                then.go(a, l, 0)
                            } else {
                                otherwise.go(a, l, 0)
                            }
                        }),
                        Step::IfLtLit(n) => Cont::new_in(arena, move |a, l, v| {
                            if v < n {
                                then.go(a, l, 0)
                            } else {
                                otherwise.go(a, l, 0)
                            }
                        }),
                        Step::IfLtSaved(s) => Cont::new_in(arena, move |a, l, v| {
                            // SAFETY: `s < reach` (see above).
                            let x = unsafe { *l.add(s) };
                            if x < v {
                                then.go(a, l, 0)
                            } else {
                                otherwise.go(a, l, 0)
                            }
                        }),
                        _ => {
                            let right = right.expect("an `IfLtRight` has a right operand");
                            Cont::new_in(arena, move |a, l, v| {
                                let r = right.go(a, l, 0);
                                if v < r {
                                    then.go(a, l, 0)
                                } else {
                                    otherwise.go(a, l, 0)
                                }
                            })
                        }
                    }
                }
                Step::LoopTest => {
                    let body = self.cont(next);
                    let after = waiting.pop().expect("a `Repeat` is open");
                    step!(Cont in arena, after, |a, l, v: i64, k| {
                        if v > 0 {
                            body.go(a, l, 0)
                        } else {
                            k.go(a, l, 0)
                        }
                    })
                }
                Step::Call { function, frame } => {
                    let entry: *const Cell<Cont> = &self.table[function as usize];
                    let resume = self.cont(next);
                    let frame = frame as usize;
                    Cont::new_in(arena, move |a, l, _| {
                        // SAFETY: a `Call` step runs only in a run with
                        // functions, on a frame with a header; the callee's
                        // frame at `frame` and its header lie within the
                        // run's frame memory, sized for `MAX_CALLS` frames
                        // of the largest `reach` (`run_with_calls`).
                        unsafe {
                            let depth = (*header(l)).depth;
                            if depth == MAX_CALLS {
                                *failed(a) = 1;
                                return 0;
                            }
                            let callee = l.add(frame);
                            header(callee).write(Header {
                                depth: depth + 1,
                                caller: l,
                                resume,
                            });
                            // The table's cells live as long as the code.
                            (*entry).get().go(a, callee, 0)
                        }
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
    "closures that tail-call the next step as a continuation; calls and returns too";
    compile: compile, try_execute: run, show: show;
    const LEVEL: Level = Level::Two;
    // Every step ends in a tail call to the next.
    const TAIL_CALLS: bool = true;
    // One closure per step (an `End` only closes a nested chain).
    fn variants() -> Vec<String> {
        crate::engine::variants_of::<StepKind>()
    }
    fn census(code: &Code) -> Vec<(String, usize)> {
        let bodies = std::iter::once(&code.main).chain(&code.functions);
        crate::engine::census_of(bodies.flat_map(|c| c.steps.iter().map(StepKind::from)))
    }
}

/// The compiled program: the chains for `show`, main's first closure and
/// the table of the functions' first closures that calls go through.
///
/// Invariant, relied on by every step: the closures run only from
/// `run`, with `args` holding the program's `arg_count` values (its
/// caller's promise) and `locals` main's `reach` slots; in a program with
/// functions, on frame memory with a header below each frame and room for
/// `MAX_CALLS` calls.
pub struct Code {
    main: Chain,
    functions: Vec<Chain>,
    names: Vec<String>,
    entry: Cont,
    /// Slots of frame memory a run with calls needs; 0 if the program has
    /// no function.
    frame_memory: usize,
    /// Each function's first closure, by function number.
    _table: Box<[Cell<Cont>]>,
    /// Owns `entry` and every closure it reaches; declared last so that it is
    /// dropped last.
    _arena: Arena,
}

fn compile(program: &Program) -> Result<Code, CompileError> {
    let calls = !program.functions().is_empty();
    let main = Lower::body(program.expr(), 0, calls)?;
    let functions = program
        .functions()
        .iter()
        .map(|f| Lower::body(&f.body, f.arity(), true))
        .collect::<Result<Vec<_>, _>>()?;
    let steps = main.steps.len() + functions.iter().map(|c| c.steps.len()).sum::<usize>();
    // Closures take 16 to 56 bytes; most capture a continuation and one
    // word.
    let arena = Arena::with_capacity(32 * steps);
    let unset = Cont::new_in(&arena, |_, _, v| v);
    let table: Box<[Cell<Cont>]> = functions.iter().map(|_| Cell::new(unset)).collect();
    let builder = Builder {
        arena: &arena,
        table: &table,
    };
    for (cell, chain) in table.iter().zip(&functions) {
        cell.set(builder.build(chain, Link::Exit));
    }
    let entry = builder.build(&main, Link::Return);
    let largest = functions.iter().map(|c| c.reach).max();
    let frame_memory = largest.map_or(0, |f| HEADER + main.reach + MAX_CALLS * f);
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

/// Runs main's chain from its first closure, on fresh locals.
///
/// # Safety
///
/// `args` covers the program's argument count (`Technique::execute`'s contract).
unsafe fn run(code: &Code, args: &[i64]) -> Result<i64, CallDepthExceeded> {
    if code.frame_memory > 0 {
        // SAFETY: this function's contract.
        return unsafe { run_with_calls(code, args) };
    }
    // `Code`'s invariant: `locals` is sized from the program, and the
    // caller guarantees `args` covers its argument count.
    let mut locals = vec![0i64; code.main.reach];
    Ok(code.entry.go(args.as_ptr(), locals.as_mut_ptr(), 0))
}

/// Runs a program with functions: main's frame above a header of depth 0
/// at the bottom of frame memory for `MAX_CALLS` frames, and a failure
/// flag below the arguments.
///
/// # Safety
///
/// As for [`run`].
unsafe fn run_with_calls(code: &Code, args: &[i64]) -> Result<i64, CallDepthExceeded> {
    // Zeroed: main's header says depth 0. Pages no call reaches are never
    // touched.
    let mut memory = vec![0i64; code.frame_memory];
    // SAFETY: the memory holds main's header below its frame.
    let l = unsafe { memory.as_mut_ptr().add(HEADER) };
    with_failure_flag(args, |a| code.entry.go(a, l, 0))
}

/// Runs `go` on a copy of `args` with a failure flag below it ([`failed`]),
/// and reads the flag when `go` returns: a call that would make more than
/// `MAX_CALLS` active sets it and returns at once, through continuations
/// that all return what they call (shared with
/// `closure_stack_continuations`).
pub(crate) fn with_failure_flag(
    args: &[i64],
    go: impl FnOnce(*const i64) -> i64,
) -> Result<i64, CallDepthExceeded> {
    let mut flagged = Vec::with_capacity(1 + args.len());
    flagged.push(0);
    flagged.extend_from_slice(args);
    // SAFETY: the vector holds the flag before the arguments.
    let v = go(unsafe { flagged.as_mut_ptr().add(1) });
    match flagged[0] {
        0 => Ok(v),
        _ => Err(CallDepthExceeded),
    }
}

fn show(code: &Code) -> String {
    let mut out = format!(
        "; {} local slots; each step tail-calls the next\n",
        code.main.reach
    );
    if code.functions.is_empty() {
        code.main.write(&code.names, &mut out, 0);
        out.push_str("return\n");
        return out;
    }
    for (name, chain) in code.names.iter().zip(&code.functions) {
        out.push_str(&format!("fn {name}: {} slots\n", chain.reach));
        chain.write(&code.names, &mut out, 1);
        out.push_str("  return to caller\n");
    }
    out.push_str("main:\n");
    code.main.write(&code.names, &mut out, 1);
    out.push_str("  return\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::conformance::listing;

    fn steps(src: &str) -> (Vec<Step>, Vec<Vec<Step>>) {
        let code = compile(&crate::front::compile_source("t", src).unwrap()).unwrap();
        let functions = code.functions.into_iter().map(|c| c.steps).collect();
        (code.main.steps, functions)
    }

    #[test]
    fn an_operand_that_makes_a_call_is_not_nested_its_left_value_is_saved() {
        use Step::*;
        // The call's frame starts past main's one local, the saved `1` and
        // the header; its argument goes straight into the callee's slot 0.
        let (main, _) = steps("fn f(x) { x } let y = arg(0); 1 + f(y)");
        let frame = 2 + HEADER as u32;
        assert_eq!(
            main,
            [
                Arg(0),
                Bind(0),
                Lit(1),
                Bind(1),
                Get(0),
                Bind(frame as usize),
                Call { function: 0, frame },
                AddSaved(1)
            ]
        );
    }

    #[test]
    fn branches_continue_and_compare_in_the_branch_step() {
        use Step::*;
        let (_, functions) = steps("fn f(n) { if n < 2 { n } else { 0 - n } } f(1)");
        assert_eq!(
            functions[0],
            [
                Get(0),
                IfLtLit(2),
                Get(0),
                Else,
                Lit(0),
                SubRight,
                Get(0),
                End,
                EndIf
            ]
        );
    }

    #[test]
    fn a_loop_continues_if_it_makes_a_call_and_is_native_otherwise() {
        let (main, _) = steps("fn f() { 1 } let n = 2; while n { n = n - f() }; while n { }; n");
        let loops: Vec<_> = main
            .iter()
            .filter(|s| matches!(s, Step::Loop | Step::While))
            .collect();
        assert_eq!(loops, [&Step::Loop, &Step::While]);
    }

    #[test]
    fn show_lists_every_function_and_main() {
        let shown = listing::<ClosureContinuations>(
            "fn even(n) { if n < 1 { 1 } else { odd(n - 1) } }\n\
             fn odd(n) { if n < 1 { 0 } else { even(n - 1) } }\n\
             even(arg(0))",
        );
        let heads: Vec<_> = shown.iter().filter(|l| !l.starts_with(' ')).collect();
        assert_eq!(heads, ["fn even: 6 slots", "fn odd: 6 slots", "main:"]);
        assert!(shown.iter().any(|l| l.trim() == "call odd (frame at L5)"));
        assert!(shown.iter().any(|l| l.trim() == "call even (frame at L5)"));
    }

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
