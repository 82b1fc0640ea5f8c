//! `register_continuations` — a register machine whose handlers tail-call
//! each other: `register_bytecode`'s three-address code, laid out on a
//! threaded tape (the design of wasmi 2.0, wasm3 and Stitch).
//!
//! **Compile** lowers the tree to three-address ops over *locations* and
//! writes them onto a tape of the threaded-code core
//! ([`crate::engines::threaded`]): each op is its handler's address followed
//! by one word per operand that lives in memory or is a constant. Every
//! expression is compiled with a destination, so `x = x + arg(1)` is the
//! single op `r0 = r0 + [1]`: one dispatch per AST operation, leaves
//! (literals, arguments, locals) read in place as operands, `Set`, `Let` and
//! `Then` costing nothing of their own. A local is read in place only if the
//! operands evaluated after it store to no local, so left-to-right order is
//! kept.
//!
//! **Locations** (the operand kinds a handler is specialised by; there is no
//! handler per value or per index):
//!
//! | location | where | listing |
//! |---|---|---|
//! | `acc` | a handler argument: the expression temporary being built | `acc` |
//! | `r0`–`r2` | handler arguments: three locals chosen by loop-weighted use | `r0` |
//! | slot | the frame (an operand word holds the slot): other locals, arguments, spilled temporaries | `[5]` |
//! | constant | the operand word itself (sources only) | `-1` |
//!
//! Each op family has one handler per combination of its operands'
//! location kinds: `add` 5 destinations × 6 × 6 sources, `copy` 5 × 6,
//! `if > 0 goto` and `return` 6 each.
//!
//! **A slot store is read back from `acc`**: every op that stores to a
//! frame slot also leaves the value in `acc`, and the compiler remembers
//! which slot `acc` holds until the next op that writes `acc` or the next
//! jump target. An op that reads that slot meanwhile reads `acc` instead
//! (`[4] = [4] + r2; [5] = [5] + acc`), so it does not wait for the store
//! to reach memory and come back.
//!
//! **Calling convention**: `(ip, fp, acc, r0, r1, r2)`, six integer
//! arguments, all in registers. Arguments are copied into the frame when a
//! run starts, so an argument is a slot and needs no pointer of its own:
//! that is what frees the sixth register for a third local. Everything the
//! registers decide (location kinds, the instruction set's handler tables,
//! the convention, the handlers) is written once by `register_family!`
//! from a list of registers and an ABI; `register_preserve_none` makes the
//! same family with eight registers on `rust-preserve-none`.
//!
//! **Register allocation**: every `Let` gets a home for its whole scope. A
//! use counts 8^(loops around it); the `Let`s are taken heaviest first and
//! each gets the first of `r0`–`r2` that no `Let` whose scope overlaps its
//! own (an enclosing or an enclosed one) holds; the rest live in frame
//! slots. An argument read inside a loop competes too, as a local that is
//! never written and lives for the whole program (copied into its register
//! by the first ops). Homes never move, so nothing is spilled or reloaded at scope
//! boundaries. Expression temporaries live in `acc`; when both operands of
//! an `Add` need computing, the left one goes to a frame slot.
//!
//! **Control**: `while c { b }` is `goto test; head: b; test: c; if c > 0
//! goto head`, so an iteration ends in one compare-and-branch. Every
//! handler, the back-edge included, ends in a call of the next op's handler
//! in tail position: on stable Rust LLVM makes each one a jump from
//! opt-level 1 on (the profiles the tests run in, where the stack tests
//! prove a 10⁸-iteration loop stays on a 256 KiB stack); the
//! `register_tail_calls` engine builds the same handlers with `become`.
//! Only `return` returns. The exit way of a loop test runs out of line, so
//! each way of the branch keeps its own dispatch jump.
//!
//! **Calls and branches** (Level 2). Main and every function are bodies of
//! one tape. A frame lives in the engine's own memory (a stack of words
//! sized for `MAX_CALLS` frames, reused from run to run), never on the
//! native stack: a function's frame is its header (the op to return to,
//! the caller's `fp`, the depth, the run's arguments, the caller's saved
//! registers: room for as many as the program's most register-hungry body
//! uses, none in `fib`, so a frame is no longer than it must be), then its
//! parameters, locals and temporaries. It is a
//! register window: it starts inside the caller's frame, at the top of
//! the caller's live temporaries, and the caller computes each argument
//! straight into the callee's parameter slot (`fib(n - 1)` is the one op
//! `[15] = [7] + -1`), so nothing is copied at the call. `call` is one
//! dispatch: check the depth, write the header, save the registers the
//! caller's locals hold (a selector: `r0` up to the highest in use, none
//! in `fib`), move `fp`, jump to the callee's first op. `return v to
//! caller` is one dispatch too: restore the three registers and `fp`,
//! leave `v` in `acc` and in the frame's first slot (the caller's slot
//! where the frame started, so a call whose value must wait for another
//! one, as in `fib(n - 1) + fib(n - 2)`, needs no copy), jump to the op
//! after the call. A parameter used in a loop gets a register like a local
//! (loaded by the function's first op); inside a function `arg(i)` is an
//! op of its own (`get_arg`, through the header). `if c < d` is one
//! compare-and-branch (`if c >= d goto else`, both operands in any
//! location); an `if` at the end of a body returns from each way; `a - n`
//! with a literal `n` is the add handler on `-n` (an operand-location
//! variant, not a new op); `-` and a `<` whose 0/1 is used write `acc`.
//! A loop whose test is `<` materialises it (`acc = a < b`, then the plain
//! test). Cost: the call handler is about a dozen machine instructions
//! (a depth check, four header stores, the saves, the jump; a call past
//! the limit continues at an op that fails, so both ways share the one
//! tail call), the return about ten, three of them register reloads.
//!
//! **Unsafe** code rests on the verifier: handlers read slots and operand
//! words unchecked because the verifier (`Tape::new`) checked every op;
//! the call and return ops rest on it too (a call's target is a
//! function's first op, its frame starts inside the caller's, every
//! function frame holds the header, a return is only in a function).
//!
//! Trade-off: the fewest dispatches of any plain engine here and a
//! dispatch that is one indirect jump, for an allocator pass before
//! compiling, 200-odd monomorphised handlers, and reliance on LLVM's
//! sibling-call optimisation on stable Rust.

use crate::engine::{CallDepthExceeded, CompileError};
use crate::engines::threaded::{
    ArgIndex, Backend, Backward, Body, Bounds, Callee, Emitter, Exit, Forward, FrameBase, Isa,
    Layout, Operand, Stable, Tape, TapeWord, failed, frame, target, threaded_engine, word,
    writes_through_emitter,
};
use crate::front::ast::Expr;
use crate::front::program::{MAX_CALLS, Program};
use std::collections::BTreeMap;
use std::fmt;

/// A register family: how many locals live in handler arguments, and how a
/// run enters the chain. Implemented by each family's tape word
/// (`register_family!`): this module's three registers on Rust's
/// convention, `register_preserve_none`'s eight on `rust-preserve-none`.
pub trait Family: TapeWord + 'static {
    /// How many locals live in handler arguments (`r0`…).
    const REGS: usize;
    /// Calls the handler of the op at `ip` with frame `fp` and the rest of
    /// the state zero.
    ///
    /// # Safety
    ///
    /// The handler contract: `ip` is an op of a verified tape of this
    /// family and `fp` a frame that tape's driver set up.
    unsafe fn enter(ip: *const Self, fp: *mut i64) -> Exit<Self>;
}

/// The most registers a family has (the allocator's fixed arrays).
const MAX_REGS: usize = 8;

/// Where an operand lives at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loc {
    Acc,
    Reg(usize),
    Slot(usize),
    Const(i64),
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Loc::Acc => write!(f, "acc"),
            Loc::Reg(k) => write!(f, "r{k}"),
            Loc::Slot(s) => write!(f, "[{s}]"),
            Loc::Const(n) => write!(f, "{n}"),
        }
    }
}

/// A location on the tape, in a family of `N` registers: its kind selects
/// the handler (`acc` 0, `r0`… 1 to `N`, a slot `N + 1`, a constant `N +
/// 2`), a slot or a constant is an operand word. Handler tables for
/// destinations have no constant column, so a constant destination has no
/// handler.
pub struct LocOperand<const N: usize>;

impl<const N: usize> LocOperand<N> {
    const SLOT: u8 = N as u8 + 1;
    const CONST: u8 = N as u8 + 2;
}

impl<const N: usize> Operand for LocOperand<N> {
    type Value = Loc;
    const WORDS: u64 = 1 << (N + 1) | 1 << (N + 2);
    fn encode(l: Loc, _: &Layout) -> (u8, Option<i64>) {
        match l {
            Loc::Acc => (0, None),
            // A register out of range gets no column, so no handler.
            Loc::Reg(k) if k < N => (k as u8 + 1, None),
            Loc::Reg(_) => (u8::MAX, None),
            Loc::Slot(s) => (Self::SLOT, Some(s as i64)),
            Loc::Const(n) => (Self::CONST, Some(n)),
        }
    }
    fn decode(l: u8, x: i64, _: &Layout) -> Loc {
        match l {
            0 => Loc::Acc,
            l if l == Self::SLOT => Loc::Slot(x as usize),
            l if l == Self::CONST => Loc::Const(x),
            l if (l as usize) <= N => Loc::Reg(l as usize - 1),
            _ => Loc::Reg(usize::MAX),
        }
    }
    fn check(l: u8, x: i64, b: &Bounds) -> bool {
        l != Self::SLOT || b.slot(x)
    }
    fn location(l: u8) -> String {
        match l {
            0 => "acc".into(),
            l if l == Self::SLOT => "slot".into(),
            l if l == Self::CONST => "const".into(),
            l => format!("r{}", l - 1),
        }
    }
}

/// How many registers a call saves (`r0` up to it): a selector, no word.
pub struct Saves;

impl Operand for Saves {
    type Value = usize;
    const WORDS: u64 = 0;
    fn encode(k: usize, _: &Layout) -> (u8, Option<i64>) {
        (u8::try_from(k).unwrap_or(u8::MAX), None)
    }
    fn decode(k: u8, _: i64, _: &Layout) -> usize {
        k as usize
    }
    fn check(_: u8, _: i64, _: &Bounds) -> bool {
        true
    }
    fn location(k: u8) -> String {
        format!("saves {k}")
    }
}

/// Frame slot `s`, which the verifier checked for the op being run.
macro_rules! slot {
    ($fp:ident, $s:expr) => {{
        let s = $s as usize;
        // SAFETY: the verifier checked this op's slot operand is below the
        // frame's `frame_len` slots, and by the handler contract `fp` is
        // such a frame.
        unsafe { &mut *$fp.add(s) }
    }};
}
pub(crate) use slot;

/// The value at location kind `L`, whose word (if it has one) is operand
/// word `i`. The state is named at the call, the registers as `(name,
/// kind)` pairs: `load!(L, i; ip, fp, acc, [(r0, R0), …])`.
macro_rules! load {
    ($L:expr, $i:expr; $ip:ident, $fp:ident, $acc:ident, [$(($r:ident, $K:ident)),*]) => {
        match $L {
            ACC => $acc,
            $($K => $r,)*
            SLOT => *slot!($fp, word!($ip, $i)),
            _ => word!($ip, $i),
        }
    };
}
pub(crate) use load;

/// Stores `v` at destination kind `L`, whose word (if it has one) is
/// operand word `i`.
macro_rules! store {
    ($L:expr, $i:expr, $v:expr; $ip:ident, $fp:ident, $acc:ident, [$(($r:ident, $K:ident)),*]) => {{
        let v = $v;
        match $L {
            ACC => $acc = v,
            $($K => $r = v,)*
            // A slot keeps its value cached in `acc` too (see the module doc).
            _ => {
                *slot!($fp, word!($ip, $i)) = v;
                $acc = v;
            }
        }
    }};
}
pub(crate) use store;

/// The end of a return to the caller with value `v`: the caller's
/// registers and frame back, `v` in `acc` and in the frame's first slot;
/// the `Flow` to the op after the call. Only in an op the verifier
/// allows in functions alone.
macro_rules! return_to_caller {
    ($v:expr; $fp:ident, $acc:ident, [$(($r:ident, $K:ident)),*]) => {{
        let v = $v;
        // SAFETY: the verifier put this op in a function, whose frame a call
        // op set up: its header holds the op after that call (on the same
        // verified tape), the caller's frame and the registers the caller
        // saved; the other registers get what lies after them (the save
        // area's rest, this frame's slots, or the padding the driver puts
        // after the frames for exactly these reads): numbers the caller
        // never reads. Slot 0 is the caller's slot `base`, where the
        // caller finds the result.
        let ret = unsafe {
            let ret = *$fp.add(frame::RET) as *const ();
            // Register `K` was saved at `SAVES + K - 1`.
            $($r = *$fp.add(frame::SAVES + $K as usize - 1);)*
            let caller = *$fp.add(frame::CALLER) as *mut i64;
            *$fp = v;
            $fp = caller;
            ret
        };
        $acc = v;
        Flow::Goto($crate::engines::threaded::Target(ret))
    }};
}
pub(crate) use return_to_caller;

/// Writes handlers with a register family's calling convention (the plain
/// ops' and the fused tier's); the invocation names the state its bodies
/// use and the family's ABI.
macro_rules! register_handlers {
    (
        state($fp:ident, $acc:ident, [$(($r:ident, $K:ident)),*]),
        abi: $abi:literal, attrs: $attrs:tt;
        $($body:tt)*
    ) => {
        $crate::engines::threaded::handlers! {
            word: Word,
            state: ($fp: *mut i64, $acc: i64, $($r: i64),*),
            park: tail,
            abi: $abi,
            attrs: $attrs;
            $($body)*
        }
    };
}
pub(crate) use register_handlers;

/// Everything of a register family that depends on its registers, written
/// once: in the module it is invoked in, the location kinds (`ACC`, one
/// per register, `SLOT`, `CONST`), the tape word and handler type of the
/// convention `(ip, fp, acc, registers…)` with the given ABI (and the
/// handlers' attributes, `attrs`), the instruction set (headed by `isa`,
/// with every location combination of this family), the op a failing call
/// continues at, and the handlers.
macro_rules! register_family {
    (
        regs: [$(($r:ident, $K:ident = $k:literal)),* $(,)?],
        abi: $abi:literal,
        attrs: [$($ha:meta),*],
        isa: { $($isa:tt)* }
    ) => {
        /// How many locals live in handler arguments.
        pub(crate) const REGS: usize = [$($k),*].len();
        /// Location kinds: the handlers' const parameters.
        pub(crate) const ACC: u8 = 0;
        $(pub(crate) const $K: u8 = $k;)*
        pub(crate) const SLOT: u8 = REGS as u8 + 1;
        pub(crate) const CONST: u8 = REGS as u8 + 2;

        /// Whether an operand of location kind `l` has a word on the tape.
        pub(crate) const fn words(l: u8) -> usize {
            (l == SLOT || l == CONST) as usize
        }

        $crate::engines::threaded::convention!(
            Word, Handler, extern $abi, (fp: *mut i64, acc: i64, $($r: i64),*)
        );

        impl $crate::engines::threaded::register_continuations::Family for Word {
            const REGS: usize = REGS;
            // Not inlined, so the attributes hold for the one native call
            // into the chain too (its caller must save every register a
            // `preserve_none` callee may clobber).
            #[inline(never)]
            $(#[$ha])*
            unsafe fn enter(
                ip: *const Word,
                fp: *mut i64,
            ) -> $crate::engines::threaded::Exit<Word> {
                // SAFETY: this function's contract is the handler contract.
                unsafe { ((*ip).handler.0)(ip, fp, 0, $({ let $r = 0; $r }),*) }
            }
        }

        /// The op a call that would exceed the depth continues at.
        struct FailOp(Word);
        // SAFETY: never written; its one word is a handler address.
        unsafe impl Sync for FailOp {}
        static FAIL: FailOp = FailOp(Word {
            handler: Handler(fail_op),
        });

        /// The handler of [`FAIL`]: the run fails.
        ///
        /// # Safety
        ///
        /// None needed: it reads nothing.
        #[allow(unused_variables)]
        $(#[$ha])*
        unsafe extern $abi fn fail_op(
            ip: *const Word,
            fp: *mut i64,
            acc: i64,
            $($r: i64),*
        ) -> $crate::engines::threaded::Exit<Word> {
            ($crate::engines::threaded::FAILED.cast(), 0)
        }

        $crate::engines::threaded::isa! {
            $($isa)*
            /// `dst = a + b` (wrapping)
            Add(dst: Loc as LocOperand<REGS>, a: Loc as LocOperand<REGS>, b: Loc as LocOperand<REGS>)
                "{dst} = {a} + {b}"
                => add<dst in [ACC, $($K,)* SLOT], a in [ACC, $($K,)* SLOT, CONST],
                       b in [ACC, $($K,)* SLOT, CONST]>;
            /// `dst = src`
            Copy(dst: Loc as LocOperand<REGS>, src: Loc as LocOperand<REGS>) "{dst} = {src}"
                => copy<dst in [ACC, $($K,)* SLOT], src in [ACC, $($K,)* SLOT, CONST]>;
            /// `goto target` (forward: a loop's entry into its test)
            Jump(t: usize as Forward) "goto @{t}" => jump;
            /// `if c > 0 goto target` (backward: a loop's test)
            JumpIfPos(c: Loc as LocOperand<REGS>, t: usize as Backward) "if {c} > 0 goto @{t}"
                => jump_if_pos<c in [ACC, $($K,)* SLOT, CONST]>;
            /// the program's value is `v`
            Return(v: Loc as LocOperand<REGS>) "return {v}"
                => ret<v in [ACC, $($K,)* SLOT, CONST]>
                if |b: &Bounds| !b.in_function();
            /// `acc = a - b` (wrapping); a literal `b` is `a + -b`, the add handler
            Sub(dst: Loc as LocOperand<REGS>, a: Loc as LocOperand<REGS>, b: Loc as LocOperand<REGS>)
                "{dst} = {a} - {b}"
                => sub<dst in [ACC], a in [ACC, $($K,)* SLOT, CONST], b in [ACC, $($K,)* SLOT]>;
            /// `acc = a < b` (1 or 0), where the value is used as a number
            Lt(dst: Loc as LocOperand<REGS>, a: Loc as LocOperand<REGS>, b: Loc as LocOperand<REGS>)
                "{dst} = {a} < {b}"
                => lt<dst in [ACC], a in [ACC, $($K,)* SLOT, CONST], b in [ACC, $($K,)* SLOT, CONST]>;
            /// `if !(a < b) goto target` (forward: an `if`'s way to its else)
            JumpIfNotLt(a: Loc as LocOperand<REGS>, b: Loc as LocOperand<REGS>, t: usize as Forward)
                "if {a} >= {b} goto @{t}"
                => jump_if_not_lt<a in [ACC, $($K,)* SLOT, CONST], b in [ACC, $($K,)* SLOT, CONST]>;
            /// `if c <= 0 goto target` (forward: an `if`'s way to its else)
            JumpIfNotPos(c: Loc as LocOperand<REGS>, t: usize as Forward) "if {c} <= 0 goto @{t}"
                => jump_if_not_pos<c in [ACC, $($K,)* SLOT, CONST]>;
            /// `dst = arg(i)` in a function (main reads its arguments as slots)
            GetArg(dst: Loc as LocOperand<REGS>, i: usize as ArgIndex) "{dst} = arg({i})"
                => get_arg<dst in [ACC, $($K,)* SLOT]> if |b: &Bounds| b.in_function();
            /// call the function at `f` with its frame at slot `base` of this one,
            /// its arguments already in its parameter slots; save `r0`.. below `saves`
            Call(saves: usize as Saves, f: usize as Callee, base: usize as FrameBase)
                "call @{f} frame [{base}] saving {saves}"
                => call<saves in [0, $($K),*]>;
            /// return `v` from a function to the op after its call
            Ret(v: Loc as LocOperand<REGS>) "return {v} to caller"
                => ret_call<v in [ACC, $($K,)* SLOT, CONST]> if |b: &Bounds| b.in_function();
        }

        $crate::engines::threaded::register_continuations::register_handlers! {
            state(fp, acc, [$(($r, $K)),*]), abi: $abi, attrs: [$($ha),*];
            fn add<const D: u8, const X: u8, const Y: u8>(ip) {
                let x = load!(X, words(D); ip, fp, acc, [$(($r, $K)),*]);
                let y = load!(Y, words(D) + words(X); ip, fp, acc, [$(($r, $K)),*]);
                store!(D, 0, x.wrapping_add(y); ip, fp, acc, [$(($r, $K)),*]);
                Flow::Next
            }
            fn copy<const D: u8, const X: u8>(ip) {
                let x = load!(X, words(D); ip, fp, acc, [$(($r, $K)),*]);
                store!(D, 0, x; ip, fp, acc, [$(($r, $K)),*]);
                Flow::Next
            }
            fn jump(ip) {
                Flow::Goto(target!(ip, 0))
            }
            // The exit is taken once per loop: out of line, so the back-edge and
            // the exit each keep a dispatch jump of their own.
            fn jump_if_pos<const C: u8>(ip) {
                if load!(C, 0; ip, fp, acc, [$(($r, $K)),*]) > 0 {
                    Flow::Back(target!(ip, words(C)))
                } else {
                    Flow::JumpCold((LEN * 8) as isize)
                }
            }
            fn ret<const X: u8>(ip) {
                Flow::Halt(load!(X, 0; ip, fp, acc, [$(($r, $K)),*]))
            }
            fn sub<const D: u8, const X: u8, const Y: u8>(ip) {
                let x = load!(X, words(D); ip, fp, acc, [$(($r, $K)),*]);
                let y = load!(Y, words(D) + words(X); ip, fp, acc, [$(($r, $K)),*]);
                store!(D, 0, x.wrapping_sub(y); ip, fp, acc, [$(($r, $K)),*]);
                Flow::Next
            }
            fn lt<const D: u8, const X: u8, const Y: u8>(ip) {
                let x = load!(X, words(D); ip, fp, acc, [$(($r, $K)),*]);
                let y = load!(Y, words(D) + words(X); ip, fp, acc, [$(($r, $K)),*]);
                store!(D, 0, i64::from(x < y); ip, fp, acc, [$(($r, $K)),*]);
                Flow::Next
            }
            fn jump_if_not_lt<const X: u8, const Y: u8>(ip) {
                let x = load!(X, 0; ip, fp, acc, [$(($r, $K)),*]);
                let y = load!(Y, words(X); ip, fp, acc, [$(($r, $K)),*]);
                if x < y { Flow::Next } else { Flow::Goto(target!(ip, words(X) + words(Y))) }
            }
            fn jump_if_not_pos<const C: u8>(ip) {
                if load!(C, 0; ip, fp, acc, [$(($r, $K)),*]) > 0 {
                    Flow::Next
                } else {
                    Flow::Goto(target!(ip, words(C)))
                }
            }
            fn get_arg<const D: u8>(ip) {
                let i = word!(ip, words(D)) as usize;
                // SAFETY: the verifier put this op in a function, whose frame's
                // header a call wrote: its `ARGS` word is the run's arguments (the
                // driver's pointer, passed on by every call), and it checked `i` is
                // below their count.
                let v = unsafe { *(*fp.add(frame::ARGS) as *const i64).add(i) };
                store!(D, 0, v; ip, fp, acc, [$(($r, $K)),*]);
                Flow::Next
            }
            fn call<const S: u8>(ip) {
                // SAFETY: every frame has the core's header (main's written by the
                // driver, a function's by its call), so `DEPTH` is inside it.
                let depth = unsafe { *fp.add(frame::DEPTH) };
                if depth >= MAX_CALLS as i64 {
                    // The same continuation as a call, to an op that fails: one
                    // tail call for both ways keeps LLVM making it a jump.
                    Flow::Goto($crate::engines::threaded::Target(
                        std::ptr::addr_of!(FAIL.0).cast(),
                    ))
                } else {
                    let base = word!(ip, 1) as usize;
                    // SAFETY: the verifier checked `base` is at most this frame's
                    // length, and the callee's frame (at least the header's
                    // slots, which the verifier also checked) starts there: with
                    // at most `MAX_CALLS` frames stacked so (the check above),
                    // every frame lies inside the stack the driver sized by
                    // `Stack::words`. The op after this one exists (a body ends
                    // with an op that stops).
                    unsafe {
                        let callee = fp.add(base);
                        *callee.add(frame::RET) = ip.add(LEN) as i64;
                        *callee.add(frame::CALLER) = fp as i64;
                        *callee.add(frame::DEPTH) = depth + 1;
                        *callee.add(frame::ARGS) = *fp.add(frame::ARGS);
                        // Register `K` is saved at `SAVES + K - 1`, if `S`
                        // says the caller holds it.
                        $(if S >= $K {
                            *callee.add(frame::SAVES + $K as usize - 1) = $r;
                        })*
                        fp = callee;
                    }
                    Flow::Goto(target!(ip, 0))
                }
            }
            fn ret_call<const X: u8>(ip) {
                let v = load!(X, 0; ip, fp, acc, [$(($r, $K)),*]);
                return_to_caller!(v; fp, acc, [$(($r, $K)),*])
            }
        }
    };
}
// Used by `register_preserve_none` (nightly) too.
#[cfg_attr(not(feature = "nightly"), allow(unused_imports))]
pub(crate) use register_family;

register_family! {
    regs: [(r0, R0 = 1), (r1, R1 = 2), (r2, R2 = 3)],
    abi: "Rust",
    attrs: [],
    isa: {
        /// The register machine's instruction set.
        pub isa RegIsa { word: Word, handler: Handler, instr: Instr, kind: Kind, min_len: 1 }
    }
}

/// What the compiler knows of a node, by pre-order index, from one pass,
/// packed in a word: the nodes in its subtree (to find a right child's
/// index), whether that subtree stores to a local, and, for a `Let`, the
/// register its local lives in (0: none).
#[derive(Clone, Copy, Default)]
struct Node(u32);

impl Node {
    const STORES: u32 = 1 << 31;
    const HOME: u32 = 15 << 27;
    const SIZE: u32 = (1 << 27) - 1;
    /// More nodes than a packed size holds.
    const TOO_MANY: usize = 1 << 27;

    fn size(self) -> usize {
        (self.0 & Self::SIZE) as usize
    }
    fn stores(self) -> bool {
        self.0 & Self::STORES != 0
    }
    fn home(self) -> Option<usize> {
        match (self.0 & Self::HOME) >> 27 {
            0 => None,
            k => Some(k as usize - 1),
        }
    }
}

/// The pre-pass over one body: per-node facts and register allocation.
#[derive(Default)]
struct Analysis {
    nodes: Vec<Node>,
    /// Which argument (main) or parameter (a function), if any, each
    /// register holds for the whole body.
    arg_homes: [Option<usize>; MAX_REGS],
    /// How many registers the body uses: `r0` up to the highest any of its
    /// values lives in (so no call in it saves more).
    regs_used: usize,
}

/// A value competing for a register: a `Let`'s local or an argument.
struct Candidate {
    /// Its scope's pre-order interval (a whole `Let`, init included; the
    /// whole program for an argument).
    start: u32,
    end: u32,
    weight: u64,
    what: Value,
}

#[derive(Clone, Copy)]
enum Value {
    /// The `Let` at this node.
    Let(u32),
    /// An argument of the run (main) or a parameter (a function).
    Arg(usize),
}

impl Analysis {
    /// `body` with `params` parameters (a function's), or main's (`None`),
    /// for a family of `regs` registers.
    fn new(
        body: &Expr,
        nodes: usize,
        max_locals: usize,
        params: Option<usize>,
        regs: usize,
    ) -> Analysis {
        let mut scan = Scan {
            nodes: vec![Node::default(); nodes],
            next: 0,
            candidates: Vec::with_capacity(max_locals + 4),
            scope: Vec::with_capacity(max_locals),
            in_function: params.is_some(),
        };
        // A parameter competes like an argument of main: one candidate,
        // for the whole body, its uses counted through the scope.
        for p in 0..params.unwrap_or(0) {
            scan.scope.push(scan.candidates.len() as u32);
            scan.candidates.push(Candidate {
                start: 0,
                end: u32::MAX,
                weight: 0,
                what: Value::Arg(p),
            });
        }
        scan.scan(body, 0);
        let Scan {
            mut nodes,
            mut candidates,
            ..
        } = scan;
        // An argument read inside a loop competes for a register like a
        // local that is never written, over the whole program: the reads of
        // each argument (one candidate each so far) become one candidate.
        candidates.sort_by_key(|c| match c.what {
            Value::Let(_) => (0, 0),
            Value::Arg(i) => (1, i),
        });
        let lets = candidates.partition_point(|c| matches!(c.what, Value::Let(_)));
        let mut kept = lets;
        for r in lets..candidates.len() {
            let same = kept > lets
                && matches!((candidates[kept - 1].what, candidates[r].what),
                    (Value::Arg(a), Value::Arg(b)) if a == b);
            if same {
                let w = candidates[r].weight;
                candidates[kept - 1].weight = candidates[kept - 1].weight.saturating_add(w);
            } else {
                candidates.swap(kept, r);
                kept += 1;
            }
        }
        candidates.truncate(kept);
        candidates.retain(|c| matches!(c.what, Value::Let(_)) || c.weight >= weight(1));
        let mut arg_homes = [None; MAX_REGS];
        let mut regs_used = 0;
        for (c, k) in allocate(&mut candidates, regs) {
            regs_used = regs_used.max(k + 1);
            match c {
                Value::Let(i) => nodes[i as usize].0 |= (k as u32 + 1) << 27,
                Value::Arg(i) => arg_homes[k] = Some(i),
            }
        }
        Analysis {
            nodes,
            arg_homes,
            regs_used,
        }
    }
}

struct Scan {
    nodes: Vec<Node>,
    /// The next node's pre-order index.
    next: usize,
    /// The `Let`s, in pre-order, and one candidate per argument read.
    candidates: Vec<Candidate>,
    /// The candidates (parameters, `Let`s) in scope, innermost last.
    scope: Vec<u32>,
    /// Whether the body is a function's (its `Arg`s are no candidates).
    in_function: bool,
}

/// A use's weight: 8 per enclosing loop (capped, so it cannot overflow).
fn weight(loops: u32) -> u64 {
    1 << (3 * loops.min(20))
}

impl Scan {
    /// Records `e`'s subtree; returns whether it stores. Recursion depth is
    /// the tree's depth, at most `MAX_DEPTH`.
    fn scan(&mut self, e: &Expr, loops: u32) -> bool {
        let i = self.next;
        self.next += 1;
        let uses = |s: &mut Scan, d: usize| {
            let c = s.scope[s.scope.len() - 1 - d] as usize;
            s.candidates[c].weight = s.candidates[c].weight.saturating_add(weight(loops));
        };
        let stores = match e {
            Expr::Litr(_) => false,
            Expr::Arg(_) if self.in_function => false,
            Expr::Arg(a) => {
                self.candidates.push(Candidate {
                    start: 0,
                    end: u32::MAX,
                    weight: weight(loops),
                    what: Value::Arg(*a),
                });
                false
            }
            Expr::Get(d) => {
                uses(self, *d);
                false
            }
            Expr::Set(d, v) => {
                uses(self, *d);
                self.scan(v, loops);
                true
            }
            Expr::Add(a, b) | Expr::Then(a, b) | Expr::Sub(a, b) | Expr::Lt(a, b) => {
                let a = self.scan(a, loops);
                self.scan(b, loops) || a
            }
            // A callee stores to no local of this body: only the arguments.
            Expr::If(..) | Expr::Call(..) => {
                let mut stores = false;
                for c in e.children() {
                    stores |= self.scan(c, loops);
                }
                stores
            }
            Expr::While(c, b) => {
                let c = self.scan(c, loops + 1);
                self.scan(b, loops + 1) || c
            }
            Expr::Let(init, body) => {
                let init = self.scan(init, loops);
                let c = self.candidates.len();
                self.candidates.push(Candidate {
                    start: i as u32,
                    end: 0,
                    weight: weight(loops),
                    what: Value::Let(i as u32),
                });
                self.scope.push(c as u32);
                let body = self.scan(body, loops);
                self.scope.pop();
                self.candidates[c].end = self.next as u32;
                init || body
            }
        };
        let size = (self.next - i) as u32;
        self.nodes[i] = Node(size | if stores { Node::STORES } else { 0 });
        stores
    }
}

/// Gives the heaviest candidates registers: each takes the first register
/// that no candidate with an overlapping scope took before it. Scopes nest,
/// so two overlap exactly when one contains the other's start.
fn allocate(candidates: &mut [Candidate], regs: usize) -> Vec<(Value, usize)> {
    // Up to one per register, every candidate gets one of its own.
    if candidates.len() <= regs {
        return candidates
            .iter()
            .enumerate()
            .map(|(k, c)| (c.what, k))
            .collect();
    }
    candidates.sort_by_key(|c| (std::cmp::Reverse(c.weight), c.start));
    // Per register, the scopes it holds: start -> end.
    let mut held: [BTreeMap<u32, u32>; MAX_REGS] = Default::default();
    let held = &mut held[..regs];
    let mut homes = Vec::new();
    for c in candidates.iter() {
        let (start, end) = (c.start, c.end);
        let free = |h: &BTreeMap<u32, u32>| {
            let before = h
                .range(..=start)
                .next_back()
                .is_some_and(|(_, &e)| e > start);
            let inside = h.range(start..end).next().is_some();
            !before && !inside
        };
        if let Some(k) = held.iter().position(free) {
            held[k].insert(start, end);
            homes.push((c.what, k));
        }
    }
    homes
}

/// A hook that may emit superinstructions in place of the plain code: how
/// the fused tier extends this compiler without it naming the fused tier.
pub(crate) trait Lowering: Sized {
    type Isa: Isa<Word: Family, Instr: From<Instr>, Kind: From<Kind>>;
    /// Emits `e` (an `Add`, node `i`) into `dst` its own way if it has one
    /// of the hook's shapes (arguments as for `Compiler::into`).
    fn add(
        &self,
        _c: &mut Compiler<Self::Isa>,
        _e: &Expr,
        _i: usize,
        _dst: Loc,
        _height: usize,
    ) -> bool {
        false
    }
    /// Emits a loop's test `if cond > 0 goto head` its own way, if it can;
    /// `true` if that op also serves the loop's entry (no plain test needed).
    fn test(&self, _c: &mut Compiler<Self::Isa>, _cond: Loc, _head: usize, _test: usize) -> Test {
        Test::Plain
    }
    /// Emits a function's `return acc to caller` its own way, if it can,
    /// right after the body's value was computed into `acc`; `true` if it
    /// did.
    fn ret(&self, _c: &mut Compiler<Self::Isa>) -> bool {
        false
    }
    /// Whether `k` is one of the hook's ops that never fall through.
    fn stops(_k: <Self::Isa as Isa>::Kind) -> bool {
        false
    }
}

/// What a hook did with a loop's test.
pub(crate) enum Test {
    /// Nothing: the plain `if cond > 0 goto head`.
    Plain,
    /// Its own op, which the loop's entry also reaches.
    Fused,
    /// Its own op at the end of the body, which the loop's entry does not
    /// reach: the plain test must follow it.
    FusedInBody,
}

/// The plain tier: no hook.
#[derive(Default)]
pub(crate) struct Plain;

impl Lowering for Plain {
    type Isa = RegIsa;
}

/// Lowers the tree onto a tape of instruction set `I`.
pub(crate) struct Compiler<I: Isa> {
    code: Emitter<I>,
    facts: Analysis,
    /// Homes of the locals in scope, innermost last (a function's
    /// parameters first).
    scope: Vec<Loc>,
    /// First frame slot of the locals (after the header and main's
    /// arguments) and of the temporaries (after the locals).
    locals_base: usize,
    temps_base: usize,
    max_temps: usize,
    /// The slot whose value `acc` also holds right now, if any: a slot
    /// store leaves its value in `acc`, so the next read of that slot can
    /// read `acc` instead of waiting for the store to reach memory.
    cached: Option<usize>,
    /// The last plain `add` emitted: its index and operands.
    last_add: Option<(usize, Loc, Loc, Loc)>,
    /// Whether the body being compiled is a function's.
    in_function: bool,
    /// The header's length in main's frame: 0 for a Level-1 program, whose
    /// frame is as it always was.
    main_header: usize,
    /// The header's length in a function's frame: the core's words, then
    /// room for the registers the program's calls save (as many as the
    /// body that uses most uses).
    header: usize,
    /// The functions' analyses, made before any body is compiled (the
    /// header depends on all of them); each is taken when its body starts.
    functions: Vec<Analysis>,
    /// The calls emitted so far, patched once every entry is known: the
    /// op, the callee, the registers it saves and its frame base.
    calls: Vec<(usize, usize, usize, usize)>,
}

/// Node `i`'s children's pre-order indices (meaningless for a leaf).
fn children(f: &Analysis, i: usize) -> (usize, usize) {
    let a = i + 1;
    (a, a + f.nodes.get(a).map_or(0, |n| n.size()))
}

writes_through_emitter!(Compiler);

/// A branch emitted before its target is known.
#[derive(Clone, Copy)]
enum Pending {
    Jump,
    NotPos(Loc),
    NotLt(Loc, Loc),
}

impl<I: Isa<Word: Family, Instr: From<Instr>>> Compiler<I> {
    pub(crate) fn new(program: &Program) -> Self {
        let regs = I::Word::REGS;
        let main = program.source();
        let facts = Analysis::new(
            &main.main,
            program.node_count()
                - program
                    .function_facts()
                    .iter()
                    .map(|f| f.node_count)
                    .sum::<usize>(),
            program.max_locals(),
            None,
            regs,
        );
        let functions: Vec<Analysis> = (program.functions().iter())
            .zip(program.function_facts())
            .map(|(f, facts)| {
                let params = Some(f.arity());
                Analysis::new(&f.body, facts.node_count, facts.max_locals, params, regs)
            })
            .collect();
        let saved = (functions.iter().chain([&facts]))
            .map(|a| a.regs_used)
            .max()
            .unwrap_or(0);
        // A Level-2 main frame has the header too (the depth and the
        // arguments a call passes on); a Level-1 one is as it always was.
        let header = if program.level() == crate::front::program::Level::Two {
            frame::SAVES + saved
        } else {
            0
        };
        let locals_base = header + program.arg_count();
        Compiler {
            // About one op of two or three words per node.
            code: Emitter::with_capacity(program.node_count() + 1, 3),
            facts,
            scope: Vec::with_capacity(program.max_locals()),
            locals_base,
            temps_base: locals_base + program.max_locals(),
            max_temps: 0,
            cached: None,
            last_add: None,
            in_function: false,
            main_header: header,
            header,
            functions,
            calls: Vec::new(),
        }
    }

    /// Starts function `f`'s body: its parameters are its first locals,
    /// in the slots after the header (the caller wrote them there).
    fn start_function(&mut self, program: &Program, f: usize) {
        let facts = program.function_facts()[f];
        let params = program.functions()[f].arity();
        self.facts = std::mem::take(&mut self.functions[f]);
        self.locals_base = self.header;
        self.temps_base = self.header + facts.max_locals;
        self.max_temps = 0;
        self.cached = None;
        self.last_add = None;
        self.in_function = true;
        self.scope.clear();
        for p in 0..params {
            let home = match self.facts.arg_homes.iter().position(|&a| a == Some(p)) {
                Some(k) => {
                    let param = Loc::Slot(self.header + p);
                    self.emit(Instr::Copy(Loc::Reg(k), param));
                    Loc::Reg(k)
                }
                None => Loc::Slot(self.header + p),
            };
            self.scope.push(home);
        }
    }

    /// The frame's length so far.
    fn frame_len(&self) -> usize {
        self.temps_base + self.max_temps
    }

    fn temp(&mut self, height: usize) -> Loc {
        self.max_temps = self.max_temps.max(height + 1);
        Loc::Slot(self.temps_base + height)
    }

    /// Whether `e` is read in place as an operand: a literal, a local, or
    /// (in main, where they are slots) an argument.
    pub(crate) fn is_leaf(&self, e: &Expr) -> bool {
        match e {
            Expr::Litr(_) | Expr::Get(_) => true,
            Expr::Arg(_) => !self.in_function,
            _ => false,
        }
    }

    /// Where `l` can be read by the op emitted next: `acc` if `acc` caches
    /// the slot.
    pub(crate) fn src(&self, l: Loc) -> Loc {
        match l {
            Loc::Slot(s) if self.cached == Some(s) => Loc::Acc,
            l => l,
        }
    }

    /// Where leaf `e`'s value can be read by the op emitted next.
    pub(crate) fn leaf(&self, e: &Expr) -> Loc {
        self.src(match *e {
            Expr::Litr(n) => Loc::Const(n),
            Expr::Arg(i) => match self.facts.arg_homes.iter().position(|&a| a == Some(i)) {
                Some(k) => Loc::Reg(k),
                None => Loc::Slot(self.main_header + i),
            },
            Expr::Get(d) => self.local(d),
            _ => unreachable!("not a leaf"),
        })
    }

    /// Records that the op emitted next writes `dst` (a slot store also
    /// writes `acc`); returns `dst`.
    pub(crate) fn write(&mut self, dst: Loc) -> Loc {
        match dst {
            Loc::Acc => self.cached = None,
            Loc::Slot(s) => self.cached = Some(s),
            Loc::Reg(_) | Loc::Const(_) => {}
        }
        dst
    }

    /// A jump target: other paths arrive here, so `acc` caches nothing.
    pub(crate) fn label(&mut self) -> usize {
        self.cached = None;
        self.len()
    }

    /// Node `i`'s children's pre-order indices.
    pub(crate) fn children(&self, i: usize) -> (usize, usize) {
        children(&self.facts, i)
    }

    /// Whether node `i`'s subtree stores to a local.
    pub(crate) fn stores(&self, i: usize) -> bool {
        self.facts.nodes[i].stores()
    }

    /// The last op's destination and operands, if it is a plain `add`.
    pub(crate) fn last_add(&self) -> Option<(Loc, Loc, Loc)> {
        let (at, dst, a, b) = self.last_add?;
        (at + 1 == self.len()).then_some((dst, a, b))
    }

    /// Removes the last op if it is a plain `add` whose destination
    /// `replaceable` accepts, and returns its operands, for a hook that
    /// replaces it. A taken add is forgotten: the op that replaces it, at
    /// the same index, is not an `add` a later hook may take.
    pub(crate) fn take_last_add(
        &mut self,
        replaceable: impl FnOnce(Loc) -> bool,
    ) -> Option<(Loc, Loc, Loc)> {
        let (at, dst, a, b) = self.last_add?;
        if at + 1 != self.len() || !replaceable(dst) {
            return None;
        }
        self.last_add = None;
        self.pop();
        Some((dst, a, b))
    }

    /// Emits `dst = src` unless they are the same place.
    fn copy(&mut self, dst: Loc, src: Loc) {
        if src != dst {
            let dst = self.write(dst);
            self.emit(Instr::Copy(dst, src));
        }
    }

    /// Emits the plain `dst = x + y`, which a hook may take back.
    fn add(&mut self, dst: Loc, x: Loc, y: Loc) {
        let dst = self.write(dst);
        let at = self.emit(Instr::Add(dst, x, y));
        self.last_add = Some((at, dst, x, y));
    }

    /// The home of the `Let` at node `i` (a register, or the slot of its
    /// scope level).
    fn home(&self, i: usize) -> Loc {
        match self.facts.nodes[i].home() {
            Some(k) => Loc::Reg(k),
            None => Loc::Slot(self.locals_base + self.scope.len()),
        }
    }

    /// The home of local `d`.
    fn local(&self, d: usize) -> Loc {
        self.scope[self.scope.len() - 1 - d]
    }

    /// The locations of a binary node's operands `a` and `b` (nodes `ia`,
    /// `ib`), after emitting what computes them: each is read just before
    /// the op that uses them, after the other operand's code ran.
    fn operands<L: Lowering<Isa = I>>(
        &mut self,
        l: &L,
        (a, ia): (&Expr, usize),
        (b, ib): (&Expr, usize),
        height: usize,
    ) -> (Loc, Loc) {
        match (self.is_leaf(a), self.is_leaf(b)) {
            (true, true) => (self.leaf(a), self.leaf(b)),
            (false, true) => {
                self.into(l, a, ia, Loc::Acc, height);
                (Loc::Acc, self.leaf(b))
            }
            // A local read after `b` must not be stored to by `b`.
            (true, false) if !matches!(*a, Expr::Get(_)) || !self.stores(ib) => {
                self.into(l, b, ib, Loc::Acc, height);
                (self.leaf(a), Loc::Acc)
            }
            _ => {
                let t = self.temp(height);
                self.into(l, a, ia, t, height + 1);
                self.into(l, b, ib, Loc::Acc, height + 1);
                (self.src(t), Loc::Acc)
            }
        }
    }

    /// Emits a branch whose target comes later; patch it with [`Self::land`].
    fn branch(&mut self, p: Pending) -> (usize, Pending) {
        let at = self.emit(match p {
            Pending::Jump => Instr::Jump(usize::MAX),
            Pending::NotPos(c) => Instr::JumpIfNotPos(c, usize::MAX),
            Pending::NotLt(a, b) => Instr::JumpIfNotLt(a, b, usize::MAX),
        });
        (at, p)
    }

    /// Points branch `b` at the next op, a label.
    fn land(&mut self, (at, p): (usize, Pending)) {
        let t = self.label();
        self.patch(
            at,
            match p {
                Pending::Jump => Instr::Jump(t),
                Pending::NotPos(c) => Instr::JumpIfNotPos(c, t),
                Pending::NotLt(a, b) => Instr::JumpIfNotLt(a, b, t),
            },
        );
    }

    /// Emits the test of `if c` (node `ic`): a branch, to be landed on the
    /// else way, taken when `c` is not positive; `c < d` is one
    /// compare-and-branch, no 0/1 in between.
    fn unless<L: Lowering<Isa = I>>(
        &mut self,
        l: &L,
        c: &Expr,
        ic: usize,
        height: usize,
    ) -> (usize, Pending) {
        if let Expr::Lt(a, b) = c {
            let (ia, ib) = self.children(ic);
            let (x, y) = self.operands(l, (a, ia), (b, ib), height);
            return self.branch(Pending::NotLt(x, y));
        }
        let cond = if self.is_leaf(c) {
            self.leaf(c)
        } else {
            self.into(l, c, ic, Loc::Acc, height);
            Loc::Acc
        };
        self.branch(Pending::NotPos(cond))
    }

    /// Node `i` of an `If`: its three children's indices.
    fn if_children(&self, i: usize) -> (usize, usize, usize) {
        let (ic, it) = self.children(i);
        (ic, it, it + self.facts.nodes[it].size())
    }

    /// A call of `f` with `args`, its value left in `acc` and in the slot
    /// where its frame starts (the returned one). Its frame starts at the
    /// top of the live temporaries, or at `dst` if `dst` is the newest of
    /// them (the value is then where it is wanted); each argument is
    /// computed straight into its parameter slot in that frame.
    fn call<L: Lowering<Isa = I>>(
        &mut self,
        l: &L,
        f: usize,
        args: &[Expr],
        i: usize,
        dst: Loc,
        height: usize,
    ) -> usize {
        let top = self.temps_base + height;
        let base = match dst {
            Loc::Slot(s) if height > 0 && s + 1 == top => s,
            _ => top,
        };
        let first = self.header + base;
        self.max_temps = self.max_temps.max(first + args.len() - self.temps_base);
        let mut ia = i + 1;
        for (k, a) in args.iter().enumerate() {
            let param = first + k;
            self.into(l, a, ia, Loc::Slot(param), param + 1 - self.temps_base);
            ia += self.facts.nodes[ia].size();
        }
        // Every register a local or an argument of this body holds is
        // saved: those are the prefix up to the highest.
        let saves = self
            .scope
            .iter()
            .filter_map(|l| match l {
                Loc::Reg(k) => Some(k + 1),
                _ => None,
            })
            .chain(
                self.facts
                    .arg_homes
                    .iter()
                    .enumerate()
                    .filter_map(|(k, a)| a.map(|_| k + 1)),
            )
            .max()
            .unwrap_or(0);
        let at = self.emit(Instr::Call(saves, 0, base));
        self.calls.push((at, f, saves, base));
        // The result is in `acc` and in slot `base`.
        self.cached = Some(base);
        self.last_add = None;
        base
    }

    /// Emits code leaving `e` (node `i`) in `dst`; only its last op writes
    /// `dst`, and no value waits in `acc` while another op runs. `height`
    /// temporaries are live.
    pub(crate) fn into<L: Lowering<Isa = I>>(
        &mut self,
        l: &L,
        e: &Expr,
        i: usize,
        dst: Loc,
        height: usize,
    ) {
        if self.is_leaf(e) {
            let src = self.leaf(e);
            self.copy(dst, src);
            return;
        }
        let (ia, ib) = children(&self.facts, i);
        match e {
            Expr::Add(..) if l.add(self, e, i, dst, height) => {}
            Expr::Add(a, b) => {
                let (x, y) = self.operands(l, (a, ia), (b, ib), height);
                self.add(dst, x, y);
            }
            // A literal right operand is the add handler's: `a - n` is
            // `a + -n` (wrapping, so for every `n`).
            Expr::Sub(a, b) => match self.operands(l, (a, ia), (b, ib), height) {
                (x, Loc::Const(n)) => self.add(dst, x, Loc::Const(n.wrapping_neg())),
                // `-` and `<` of two values computed at run time are rarer
                // than `+`: one destination, `acc`, and a copy if needed.
                (x, y) => {
                    self.write(Loc::Acc);
                    self.emit(Instr::Sub(Loc::Acc, x, y));
                    self.copy(dst, Loc::Acc);
                }
            },
            Expr::Lt(a, b) => {
                let (x, y) = self.operands(l, (a, ia), (b, ib), height);
                self.write(Loc::Acc);
                self.emit(Instr::Lt(Loc::Acc, x, y));
                self.copy(dst, Loc::Acc);
            }
            Expr::If(c, t, f) => {
                let (ic, it, iff) = self.if_children(i);
                let to_else = self.unless(l, c, ic, height);
                self.into(l, t, it, dst, height);
                let to_end = self.branch(Pending::Jump);
                self.land(to_else);
                self.into(l, f, iff, dst, height);
                self.land(to_end);
            }
            Expr::Call(f, args) => {
                let at = self.call(l, *f, args, i, dst, height);
                if dst != Loc::Slot(at) {
                    let src = self.src(Loc::Slot(at));
                    self.copy(dst, src);
                }
            }
            Expr::Arg(n) => {
                let dst = self.write(dst);
                self.emit(Instr::GetArg(dst, *n));
            }
            Expr::Let(init, body) => {
                let home = self.home(i);
                self.into(l, init, ia, home, height);
                self.scope.push(home);
                self.into(l, body, ib, dst, height);
                self.scope.pop();
            }
            Expr::Set(d, v) => {
                self.into(l, v, ia, self.local(*d), height);
                self.copy(dst, Loc::Const(0));
            }
            Expr::While(c, body) => {
                self.while_(l, c, body, ia, ib, height);
                self.copy(dst, Loc::Const(0));
            }
            Expr::Then(a, b) => {
                self.effect(l, a, ia, height);
                self.into(l, b, ib, dst, height);
            }
            Expr::Litr(_) | Expr::Get(_) => unreachable!("leaves are handled above"),
        }
    }

    /// Emits code for `e`, whose value nobody uses.
    fn effect<L: Lowering<Isa = I>>(&mut self, l: &L, e: &Expr, i: usize, height: usize) {
        if matches!(e, Expr::Litr(_) | Expr::Get(_) | Expr::Arg(_)) {
            return;
        }
        let (ia, ib) = children(&self.facts, i);
        match e {
            // Only the operands' effects remain, in order.
            Expr::Add(a, b) | Expr::Then(a, b) | Expr::Sub(a, b) | Expr::Lt(a, b) => {
                self.effect(l, a, ia, height);
                self.effect(l, b, ib, height);
            }
            Expr::If(c, t, f) => {
                let (ic, it, iff) = self.if_children(i);
                let to_else = self.unless(l, c, ic, height);
                self.effect(l, t, it, height);
                if matches!(**f, Expr::Litr(_) | Expr::Get(_) | Expr::Arg(_)) {
                    self.land(to_else);
                } else {
                    let to_end = self.branch(Pending::Jump);
                    self.land(to_else);
                    self.effect(l, f, iff, height);
                    self.land(to_end);
                }
            }
            Expr::Call(f, args) => {
                self.call(l, *f, args, i, Loc::Acc, height);
            }
            Expr::Let(init, body) => {
                let home = self.home(i);
                self.into(l, init, ia, home, height);
                self.scope.push(home);
                self.effect(l, body, ib, height);
                self.scope.pop();
            }
            Expr::Set(d, v) => self.into(l, v, ia, self.local(*d), height),
            Expr::While(c, body) => self.while_(l, c, body, ia, ib, height),
            Expr::Litr(_) | Expr::Arg(_) | Expr::Get(_) => unreachable!("leaves are handled above"),
        }
    }

    /// `goto test; head: body; test: c; if c > 0 goto head`.
    fn while_<L: Lowering<Isa = I>>(
        &mut self,
        l: &L,
        c: &Expr,
        body: &Expr,
        ic: usize,
        ib: usize,
        height: usize,
    ) {
        let entry = self.emit(Instr::Jump(usize::MAX));
        let head = self.label();
        self.effect(l, body, ib, height);
        let test = self.label();
        let cond = if self.is_leaf(c) {
            self.leaf(c)
        } else {
            self.into(l, c, ic, Loc::Acc, height);
            Loc::Acc
        };
        match l.test(self, cond, head, test) {
            Test::Fused => {}
            // The hook may have rewritten the body's last op: op `test` is
            // the plain test after it.
            Test::Plain | Test::FusedInBody => {
                self.emit(Instr::JumpIfPos(cond, head));
            }
        }
        // Patched last: a hook may have changed where op `test` starts.
        self.patch(entry, Instr::Jump(test));
    }

    /// A body, ending in `ret` of its value: a `Then`/`Let` spine's last
    /// value is returned from where it lives, without a copy, and each way
    /// of an `if` there returns on its own.
    fn body<L: Lowering<Isa = I>>(&mut self, l: &L, e: &Expr, i: usize, ret: fn(Loc) -> Instr) {
        let (ia, ib) = children(&self.facts, i);
        match e {
            Expr::Then(a, b) => {
                self.effect(l, a, ia, 0);
                self.body(l, b, ib, ret);
            }
            Expr::Let(init, body) => {
                let home = self.home(i);
                self.into(l, init, ia, home, 0);
                self.scope.push(home);
                self.body(l, body, ib, ret);
                self.scope.pop();
            }
            Expr::If(c, t, f) => {
                let (ic, it, iff) = self.if_children(i);
                let to_else = self.unless(l, c, ic, 0);
                self.body(l, t, it, ret);
                self.land(to_else);
                self.body(l, f, iff, ret);
            }
            _ if self.is_leaf(e) => {
                let v = self.leaf(e);
                self.emit(ret(v));
            }
            _ => {
                self.into(l, e, i, Loc::Acc, 0);
                if !(self.in_function && l.ret(self)) {
                    self.emit(ret(Loc::Acc));
                }
            }
        }
    }
}

/// The compiled program: a verified tape of instruction set `I` on backend
/// `B` (main's body, then each function's), the frames it runs in, and the
/// functions' names for the listing.
pub struct Code<I: Isa<Word: Family>, B: Backend> {
    tape: Tape<I, B>,
    /// The header's length in main's frame and in a function's: 0 for a
    /// Level-1 program.
    header: usize,
    stack: frame::Stack,
    names: Vec<String>,
}

/// Compiles `program` with hook `l` and verifies it for backend `B`.
pub(crate) fn compile<L: Lowering, B: Backend>(
    program: &Program,
    l: &L,
) -> Result<Code<L::Isa, B>, CompileError> {
    if program.node_count() >= Node::TOO_MANY {
        return Err(CompileError(format!(
            "programs of {} nodes or more are not supported",
            Node::TOO_MANY
        )));
    }
    let mut c = Compiler::<L::Isa>::new(program);
    let header = c.main_header;
    for (k, arg) in c.facts.arg_homes.into_iter().enumerate() {
        if let Some(i) = arg {
            c.emit(Instr::Copy(Loc::Reg(k), Loc::Slot(header + i)));
        }
    }
    c.body(l, program.expr(), 0, Instr::Return);
    let mut bodies = vec![Body {
        first: 0,
        frame_len: c.frame_len(),
    }];
    for (f, function) in program.functions().iter().enumerate() {
        let first = c.len();
        c.start_function(program, f);
        c.body(l, &function.body, 0, Instr::Ret);
        bodies.push(Body {
            first,
            frame_len: c.frame_len(),
        });
    }
    for (at, f, saves, base) in std::mem::take(&mut c.calls) {
        c.patch(at, Instr::Call(saves, bodies[f + 1].first, base));
    }
    let stops = |k| is_stop::<L::Isa>(k) || L::stops(k);
    let fn_header = c.header;
    let tape = Tape::with_bodies(c.code, &bodies, program.arg_count(), fn_header, stops)
        .map_err(CompileError)?;
    Ok(Code {
        tape,
        header,
        stack: frame::Stack::default(),
        names: program.functions().iter().map(|f| f.name.clone()).collect(),
    })
}

/// Whether `k` is a `return` (of any location, from main or from a
/// function): the only ops that never fall through.
fn is_stop<I: Isa<Word: Family, Kind: From<Kind>>>(k: I::Kind) -> bool {
    // Every location kind: `acc`, the registers, a slot, a constant.
    (0..=I::Word::REGS as u8 + 2)
        .any(|v| k == I::Kind::from(Kind::Return(v)) || k == I::Kind::from(Kind::Ret(v)))
}

impl<I: Isa<Word: Family>, B: Backend> Code<I, B> {
    /// Runs the tape.
    ///
    /// # Safety
    ///
    /// `args.len()` must be at least the `arg_count` the tape was built for.
    pub(crate) unsafe fn run(&self, args: &[i64]) -> Result<i64, CallDepthExceeded> {
        let arg_count = self.tape.arg_count();
        debug_assert!(args.len() >= arg_count);
        let main_len = self.tape.frame_len();
        let ip = self.tape.entry();
        if self.header == 0 {
            // Level 1: main's frame alone, as it always was.
            let mut frame = vec![0i64; main_len];
            // Arguments are the frame's first slots.
            frame[..arg_count].copy_from_slice(&args[..arg_count]);
            // SAFETY: `ip` is the first op of a verified tape and the frame
            // has its `frame_len` slots, the first `arg_count` holding the
            // arguments: the handler contract. Every back-edge is a tail
            // call, so the chain returns only from `return`, with its value;
            // a Level-1 program makes no call, so it cannot fail.
            let (_, value) = unsafe { I::Word::enter(ip, frame.as_mut_ptr()) };
            return Ok(value);
        }
        // A return reloads every register from its frame's save area, of
        // which the header holds only the part the program's calls save:
        // the deepest frame's reloads may read past the frames, into this
        // padding (values no caller reads).
        let padding = I::Word::REGS;
        self.stack
            .with(self.tape.stack_words() + padding, main_len, |words| {
                let fp = words.as_mut_ptr();
                let h = self.header;
                words[h..h + arg_count].copy_from_slice(&args[..arg_count]);
                words[frame::DEPTH] = 0;
                // SAFETY: `h + arg_count` is at most main's frame length.
                words[frame::ARGS] = unsafe { fp.add(h) } as i64;
                // SAFETY: as above, and main's frame has the header: the depth
                // of no call, the arguments (copied after the header, where
                // main reads them and whence every call passes the pointer on),
                // and room for `MAX_CALLS` function frames after it.
                let (next, value) = unsafe { I::Word::enter(ip, fp) };
                if failed(next) {
                    Err(CallDepthExceeded)
                } else {
                    Ok(value)
                }
            })
    }

    pub(crate) fn variants() -> Vec<String> {
        Tape::<I, B>::variants()
    }

    pub(crate) fn census(&self) -> Vec<(String, usize)> {
        self.tape.census()
    }

    pub(crate) fn listing(&self) -> String {
        let (h, args, temps) = (self.header, self.tape.arg_count(), self.tape.frame_len());
        let last = I::Word::REGS - 1;
        let header = if h == 0 {
            format!(
                "frame: {temps} slots ([0..{args}) arguments, then locals not in r0-r{last}, then temporaries)"
            )
        } else {
            format!(
                "main's frame: {temps} slots ([0..{h}) header, [{h}..{}) arguments, then locals not in r0-r{last}, then temporaries)",
                h + args
            )
        };
        let fn_header = self.header;
        let bodies = self.tape.bodies();
        self.tape.listing_bodies(&header, |k| match k {
            0 if bodies.len() == 1 => String::new(),
            0 => "main".into(),
            k => format!(
                "fn {}: frame {} slots ([0..{fn_header}) header, then parameters, locals, temporaries)",
                self.names[k - 1],
                bodies[k].frame_len
            ),
        })
    }
}

threaded_engine! {
    RegisterContinuations = "register_continuations", Beyond, Code<RegIsa, Stable>, compile(|_| Plain);
    "register machine with threaded handlers: three-address ops, hot locals in handler arguments";
    conformance: tail_calling
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::engines::threaded::Stable;

    /// The longest function frame header of this family: every register
    /// saved.
    const HEADER: usize = frame::SAVES + REGS;

    pub(crate) fn listing<L: Lowering + Default>(src: &str) -> String {
        let p = crate::front::compile_source("t", src).unwrap();
        compile::<L, Stable>(&p, &L::default()).unwrap().listing()
    }

    #[test]
    fn ops_read_back_as_their_instructions() {
        use Instr::*;
        let all = [
            Add(Loc::Acc, Loc::Reg(2), Loc::Const(i64::MIN)),
            Add(Loc::Slot(7), Loc::Slot(3), Loc::Slot(9)),
            Copy(Loc::Reg(0), Loc::Const(-1)),
            Copy(Loc::Slot(1), Loc::Acc),
            Jump(6),
            JumpIfPos(Loc::Slot(4), 0),
            JumpIfPos(Loc::Const(3), 2),
            Return(Loc::Reg(1)),
        ];
        crate::engines::threaded::tests::reads_back::<RegIsa>(&all);
    }

    /// Verifies `code` as if the compiler had emitted it.
    pub(crate) fn verify<I: Isa<Word = Word, Kind: From<Kind>>>(
        code: &[I::Instr],
        frame_len: usize,
    ) -> Result<(), String> {
        Tape::<I, Stable>::new(Emitter::of(code), frame_len, 0, is_stop::<I>).map(|_| ())
    }

    /// Verifies `code` as main (ops before `split`, a frame of 10 slots)
    /// and one function (from `split`, a frame of `HEADER + 3` slots).
    fn verify_two(code: &[Instr], split: usize) -> Result<(), String> {
        let e = Emitter::<RegIsa>::of(code);
        let bodies = [
            Body {
                first: 0,
                frame_len: 10,
            },
            Body {
                first: split,
                frame_len: HEADER + 3,
            },
        ];
        Tape::<RegIsa, Stable>::with_bodies(e, &bodies, 1, HEADER, is_stop::<RegIsa>).map(|_| ())
    }

    #[test]
    fn verify_checks_calls_returns_and_bodies() {
        use Instr::*;
        let call = |f, base| Call(3, f, base);
        let (main_ret, fn_ret) = (Return(Loc::Acc), Ret(Loc::Slot(HEADER)));
        assert!(verify_two(&[call(2, 10), main_ret, fn_ret], 2).is_ok());
        for (bad, why) in [
            // The target is not a function's first op.
            (vec![call(1, 0), main_ret, fn_ret], "a call into main"),
            (
                vec![call(3, 0), main_ret, Copy(Loc::Acc, Loc::Acc), fn_ret],
                "into a body",
            ),
            // The callee's frame starts past the caller's.
            (vec![call(2, 11), main_ret, fn_ret], "frame base"),
            // Returns and argument reads belong where a call made the frame.
            (vec![Ret(Loc::Acc), main_ret, fn_ret], "ret in main"),
            (vec![GetArg(Loc::Acc, 0), main_ret, fn_ret], "arg in main"),
            (
                vec![main_ret, GetArg(Loc::Acc, 1), fn_ret],
                "arg out of range",
            ),
            (
                vec![main_ret, Return(Loc::Acc), fn_ret],
                "return in a function",
            ),
            // Jumps stay in their body; each body ends with a return.
            (vec![Jump(2), main_ret, fn_ret], "a jump out of main"),
            (
                vec![Copy(Loc::Acc, Loc::Acc), call(2, 0), fn_ret],
                "main falls through",
            ),
            (
                vec![main_ret, Copy(Loc::Slot(HEADER + 3), Loc::Acc), fn_ret],
                "the function's frame",
            ),
        ] {
            // The function is the last op, or the last two.
            let two = [
                "into a body",
                "arg out of range",
                "return in a function",
                "the function's frame",
            ];
            let split = bad.len() - 1 - usize::from(two.contains(&why));
            assert!(verify_two(&bad, split).is_err(), "{why}");
        }
        // A function frame must hold the header a call writes.
        let mut e = Emitter::<RegIsa>::with_capacity(2, 3);
        e.emit(main_ret);
        e.emit(fn_ret);
        let bodies = [
            Body {
                first: 0,
                frame_len: 1,
            },
            Body {
                first: 1,
                frame_len: HEADER - 1,
            },
        ];
        assert!(
            Tape::<RegIsa, Stable>::with_bodies(e, &bodies, 0, HEADER, is_stop::<RegIsa>).is_err()
        );
    }

    fn run(src: &str, args: &[i64]) -> Result<i64, crate::engine::RunError> {
        let p = crate::front::compile_source("t", src).unwrap();
        let code = crate::engine::engine("register_continuations")
            .unwrap()
            .compile(&p)
            .unwrap();
        code.execute(args)
    }

    #[test]
    fn a_call_writes_its_arguments_into_the_callee_frame() {
        let src = "fn fib(n) { if n < 2 { n } else { fib(n - 1) + fib(n - 2) } }\nfib(arg(0))";
        let text = listing::<Plain>(src);
        // The test is one compare-and-branch on the parameter's slot and a
        // literal; `n - 1` is written straight into the callee's parameter
        // slot by the add handler; the first call's frame starts at the
        // temporary its value is wanted in, so no copy follows it.
        // No body of `fib` holds a register, so no call saves one: the
        // header is the core's words alone.
        let h = frame::SAVES;
        let p = h;
        let t = h + 1;
        for op in [
            format!("if [{p}] >= 2 goto"),
            format!("[{}] = [{p}] + -1", t + h),
            format!("call @3 frame [{t}] saving 0"),
            format!("[{}] = [{p}] + -2", t + 1 + h),
            format!("call @3 frame [{}] saving 0", t + 1),
            format!("acc = [{t}] + acc"),
        ] {
            assert!(text.contains(&op), "no `{op}`:\n{text}");
        }
        assert!(!text.contains(&format!("[{t}] = acc")), "{text}");
        assert_eq!(run(src, &[20]), Ok(6765));
    }

    #[test]
    fn calls_save_the_registers_their_caller_holds() {
        // Main's loop keeps `t`, `n` and `arg(1)` in registers; the call
        // saves all three, and the callee's loop has registers of its own.
        let src = "fn f(a, b) { let i = 3; while i { a = a + b; i = i - 1 }; a }\n                   let t = 0; let n = arg(0); while n { t = t + f(n, arg(1)); n = n - 1 }; t";
        let text = listing::<Plain>(src);
        assert!(text.contains("saving 3"), "{text}");
        // sum over n of n + 3 * 5, for n = 1..=4
        assert_eq!(run(src, &[4, 5]), Ok(10 + 4 * 15));
        // Arguments of the run inside a function; deep recursion.
        let src = "fn g(n) { if 0 < n { g(n - 1) + arg(1) } else { arg(2) } }\ng(arg(0))";
        assert_eq!(run(src, &[9999, 2, 7]), Ok(9999 * 2 + 7));
        assert_eq!(
            run(src, &[10000, 2, 7]),
            Err(crate::engine::RunError::CallDepthExceeded)
        );
    }

    #[test]
    fn calls_never_grow_the_native_stack() {
        // 10,000 active calls on a 32 KiB stack: a call handler that made a
        // native call (even one of 16 bytes) would overflow it.
        let src = "fn d(n) { if 1 < n { d(n - 1) + 1 } else { 1 } }\nd(arg(0))";
        let p = crate::front::compile_source("t", src).unwrap();
        for name in ["register_continuations", "register_continuations_fused"] {
            crate::reference::stack::on_stack(format!("{name}: 32 KiB"), 32 << 10, || {
                let code = crate::engine::engine(name).unwrap().compile(&p).unwrap();
                assert_eq!(code.execute(&[10_000]), Ok(10_000), "{name}");
                assert_eq!(
                    code.execute(&[10_001]),
                    Err(crate::engine::RunError::CallDepthExceeded)
                );
            });
        }
    }

    #[test]
    fn verify_rejects_every_operand_out_of_range() {
        use Instr::*;
        let ret = Return(Loc::Acc);
        let ok = [Jump(2), Add(Loc::Slot(9), Loc::Reg(2), Loc::Const(1)), ret];
        assert!(verify::<RegIsa>(&ok, 10).is_ok());
        for bad in [
            Add(Loc::Slot(10), Loc::Acc, Loc::Acc),
            Add(Loc::Acc, Loc::Reg(3), Loc::Acc),
            Add(Loc::Const(1), Loc::Acc, Loc::Acc),
            Copy(Loc::Acc, Loc::Slot(usize::MAX)),
            Jump(0),
            Jump(1),
            Jump(4),
            JumpIfPos(Loc::Acc, 2),
            Return(Loc::Slot(10)),
        ] {
            assert!(
                verify::<RegIsa>(&[Copy(Loc::Acc, Loc::Acc), bad, ret], 10).is_err(),
                "{bad}"
            );
        }
        assert!(
            verify::<RegIsa>(&[Copy(Loc::Acc, Loc::Acc)], 10).is_err(),
            "no return"
        );
    }

    #[test]
    fn hot_locals_and_arguments_get_the_registers() {
        // Four locals; the loop uses `c`, `d` and `arg(1)`, not `a` or `b`.
        let text = listing::<Plain>(
            "let a = 1; let b = 2; let c = 0; let d = arg(0); \
             while d { c = c + arg(1); d = d + -1 }; a + b + c",
        );
        // `c`, `d` and `arg(1)` are in registers, so the loop body reads
        // and writes registers only.
        let body: Vec<_> = text
            .lines()
            .skip_while(|l| !l.contains("goto"))
            .skip(1)
            .collect();
        assert!(
            body[0].ends_with("r1 = r1 + r2") && body[1].ends_with("r0 = r0 + -1"),
            "{text}"
        );
        assert!(
            text.contains("r2 = [1]"),
            "the hot argument is copied in first:\n{text}"
        );
    }

    /// For each op right after one that stores to a slot `[k]`, what it
    /// reads: `(from acc, from [k])`, counted over the listing.
    fn reads_after_slot_stores(text: &str) -> (usize, usize) {
        let ops: Vec<&str> = text
            .lines()
            .skip(1)
            .map(|l| l.trim_start().split_once("  ").map_or(l, |(_, op)| op))
            .collect();
        let (mut from_acc, mut from_slot) = (0, 0);
        for pair in ops.windows(2) {
            let Some(slot) = pair[0]
                .strip_prefix('[')
                .and_then(|r| r.split_once("] = "))
                .map(|(k, _)| format!("[{k}]"))
            else {
                continue;
            };
            // The sources: after `=` for an add or copy, the whole op else.
            let sources = pair[1].split_once(" = ").map_or(pair[1], |(_, s)| s);
            from_acc += sources.contains("acc") as usize;
            from_slot += sources.contains(&slot) as usize;
        }
        (from_acc, from_slot)
    }

    #[test]
    fn a_slot_store_is_read_back_from_acc() {
        // Five locals: two of them live in slots, and `e = e + d` reads the
        // slot `d = d + c` just stored.
        let text = listing::<Plain>(
            "let a = arg(0); let b = 1; let c = 2; let d = 3; let e = 4; \
             while a { a = a + -1; b = b + e; c = c + b; d = d + c; e = e + d }; a + b + c + d + e",
        );
        let (from_acc, from_slot) = reads_after_slot_stores(&text);
        assert!(from_acc >= 1 && from_slot == 0, "{text}");
        // The check fails on code that reads the stored slot back from
        // memory.
        let from_memory = "; header\n 9  [4] = [4] + r2\n10  [5] = [5] + [4]\n";
        assert_eq!(reads_after_slot_stores(from_memory), (0, 1));
    }
}
