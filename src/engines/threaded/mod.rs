//! The threaded-code core: what every engine whose handlers tail-call each
//! other shares (`tape_continuations`, `tape_continuations_fused`,
//! `tail_calls`, `register_continuations`, `register_continuations_fused`).
//! Not an engine itself.
//!
//! **A tape** is a flat array of words (a family's `Word`). An op is one word holding its
//! handler's address followed by its operand words (a literal, a frame
//! slot, an argument index, a jump distance in bytes). Beside the tape the
//! compiler keeps each op's [`Isa::Kind`] — which handler family and which
//! operand locations, a few bytes — from which the listing is read back
//! ([`Isa::decode`]) and the handler is chosen.
//!
//! **One list per instruction set.** An engine family writes its ops once,
//! in an `isa!` list; the macro generates the typed instruction enum and
//! its `Display` listing, the encoded kind, encode and decode, each op's
//! length and the verifier's handler lookup.
//!
//! **One calling convention per family**, written once by `handlers!`:
//! every handler takes the op's address `ip` and the same scalar state
//! (at most six integer arguments in all, so the System V and AArch64 ABIs
//! keep them in registers and a tail call is a plain jump). A handler body
//! does the op's work on that state and says where control goes as a
//! [`Flow`]; the macro writes the continuation: a call of the next op's
//! handler in tail position, which LLVM turns into a jump from opt-level 1
//! on (stable Rust, [`Stable`]), or `become`, which the language guarantees
//! in every profile (nightly, feature `nightly`, `Become`). The same
//! handler source serves both backends: a handler is generic over its
//! [`Backend`].
//!
//! **Back-edges** are the one choice a family makes: on [`Stable`] a family
//! may *return* the loop head to a driver loop (`tape_continuations`: the
//! call chain only ever moves forward, so its depth is bounded by the tape
//! even where LLVM does not make tail calls) or tail-call it like any other
//! op (`register_continuations`: cheaper, and sound because every profile
//! the tests run in optimises sibling calls, which the stack tests prove).
//! Under `Become` a back-edge is always a tail call.
//!
//! **The verifier** (`Tape::new`) is the single place that hands out
//! handlers: each op gets its handler only from the check of its own kind
//! and operand words ([`Isa::checked_handler`]) against the tape's
//! [`Bounds`]: slots inside the frame, argument indices below the argument
//! count, jump targets the start of an op (a whole number of ops away) in
//! the stated direction, and the last op one that never falls through. The
//! handlers' unchecked reads rest on exactly these checks.

mod isa;

// The engines built on this core.
pub mod register_continuations;
pub mod register_continuations_fused;
#[cfg(feature = "nightly")]
pub mod register_preserve_none;
#[cfg(feature = "nightly")]
pub mod register_preserve_none_fused;
#[cfg(feature = "nightly")]
pub mod register_tail_calls;
#[cfg(feature = "nightly")]
pub mod register_tail_calls_fused;
#[cfg(feature = "nightly")]
pub mod tail_calls;
pub mod tape_continuations;
pub mod tape_continuations_fused;
pub(crate) use isa::{
    ArgIndex, Backward, Callee, Forward, FrameBase, Lit, Operand, Reg, Slot, isa, table,
};
pub use isa::{Bounds, Layout};

use std::fmt;
use std::marker::PhantomData;

/// Where control goes after a handler's body: the core turns it into the
/// continuation of the handler's backend.
pub enum Flow {
    /// The op right after this one.
    Next,
    /// The op `rel` bytes from this op's start (a taken forward branch).
    Jump(isize),
    /// `Jump`, through an out-of-line cold call: for the way a branch takes
    /// once per loop, so that LLVM keeps it a predicted branch instead of
    /// merging both ways into one data-dependent jump.
    JumpCold(isize),
    /// A taken branch to a jump operand's op (forward).
    Goto(Target),
    /// A loop back-edge to a jump operand's op (at or before this op).
    Back(Target),
    /// The program is done; its value.
    Halt(i64),
    /// The run fails: a call would exceed the call depth. In a handler
    /// whose other way is a call of the next op, prefer a `Goto` to an
    /// op that fails: LLVM may make neither a jump when one way returns
    /// a constant (`register_continuations`' `call` does so).
    Fail,
}

/// A jump operand as a handler reads it: on a threaded tape, the address
/// of the target op itself, so a taken branch is a load and a jump.
#[derive(Clone, Copy)]
pub struct Target(pub *const ());

/// How a handler continues: [`Stable`] or `Become`.
pub trait Backend: 'static {
    /// Whether continuations are `become` (else a call in tail position).
    const BECOME: bool;
    /// The name `vm-perf show` prints.
    const NAME: &'static str;
}

/// Continuations are calls in tail position (stable Rust): LLVM's
/// sibling-call optimisation makes them jumps from opt-level 1 on.
pub struct Stable;

impl Backend for Stable {
    const BECOME: bool = false;
    const NAME: &'static str = "tail calls (LLVM sibling calls)";
}

/// Continuations are `become` (nightly Rust): guaranteed jumps in every
/// profile, opt-level 0 included.
#[cfg(feature = "nightly")]
pub struct Become;

#[cfg(feature = "nightly")]
impl Backend for Become {
    const BECOME: bool = true;
    const NAME: &'static str = "guaranteed tail calls (`become`)";
}

/// What a handler returns to whoever called the chain: the op to resume at
/// (a back-edge returned to a driver), null with the program's value, or
/// [`FAILED`] (the call depth was exceeded).
pub type Exit<W> = (*const W, i64);

/// The exit of a run that failed: an address no tape word has (never
/// dereferenced; compare with [`failed`]).
pub const FAILED: *const () = std::ptr::dangling::<u64>().cast();

/// Whether an exit's op is [`FAILED`].
pub fn failed<W>(next: *const W) -> bool {
    next.cast() == FAILED
}

/// The frames of guest calls, in the engine's own memory (never the native
/// stack): every function frame starts with these header words, written by
/// the call op and read by the return op; a family's register saves follow
/// them (a frame's first slots after the header are its parameters). A
/// call is one dispatch (write the header, move `fp`, jump to the entry),
/// a return too (read the header, move `fp` back, jump to the op after the
/// call).
pub mod frame {
    /// The op after the call (where the return continues).
    pub const RET: usize = 0;
    /// The caller's frame pointer.
    pub const CALLER: usize = 1;
    /// How many calls are active with this frame's (main: 0).
    pub const DEPTH: usize = 2;
    /// The run's arguments (a pointer to `arg_count` values).
    pub const ARGS: usize = 3;
    /// Where a family's saved registers start.
    pub const SAVES: usize = 4;

    /// The memory frames live in: main's frame first, then room for
    /// [`MAX_CALLS`](crate::MAX_CALLS) function frames of the largest
    /// size, reused from run to run (a fresh one when another run holds it).
    #[derive(Default)]
    pub struct Stack(std::sync::Mutex<Vec<i64>>);

    impl Stack {
        /// The words for a program whose main frame has `main_len` slots
        /// and whose largest function frame `max_len`: each active call's
        /// frame starts at most its caller's length above its caller's.
        pub fn words(main_len: usize, max_len: usize) -> usize {
            main_len.saturating_add(crate::MAX_CALLS.saturating_mul(max_len))
        }

        /// Runs `f` on at least `len` words, zeroed where main's frame
        /// (the first `main_len`) lies; the rest holds whatever earlier
        /// runs left (every slot is written before it is read).
        pub fn with<R>(&self, len: usize, main_len: usize, f: impl FnOnce(&mut [i64]) -> R) -> R {
            let mut fresh = Vec::new();
            let mut guard = self.0.try_lock().ok();
            let words = guard.as_deref_mut().unwrap_or(&mut fresh);
            if words.len() < len {
                *words = vec![0; len];
            }
            words[..main_len].fill(0);
            f(words)
        }
    }
}

/// Defines a family's tape word and handler type: `convention!(Word,
/// Handler, (fp: *mut i64, acc: i64, …))`. The state list is what every
/// handler receives after `ip`, in argument registers.
///
/// A family may name the handlers' ABI first, `convention!(Word, Handler,
/// extern "rust-preserve-none", (…))`; without one they use Rust's.
macro_rules! convention {
    ($Word:ident, $Handler:ident, ($($s:ident: $sty:ty),* $(,)?)) => {
        $crate::engines::threaded::convention!($Word, $Handler, extern "Rust", ($($s: $sty),*));
    };
    ($Word:ident, $Handler:ident, extern $abi:literal, ($($s:ident: $sty:ty),* $(,)?)) => {
        /// A handler: one op's work, then the continuation to the next.
        ///
        /// # Safety
        ///
        /// The handler contract: `ip` points at an op of a tape that passed
        /// the verifier (`Tape::new` of the threaded-code core) whose
        /// handler is this function, and the state is the one that tape's
        /// driver set up (a frame of the tape's `frame_len` slots, the
        /// arguments it was verified against).
        #[derive(Clone, Copy)]
        #[repr(transparent)]
        pub struct $Handler(
            pub unsafe extern $abi fn(*const $Word, $($sty),*) -> $crate::engines::threaded::Exit<$Word>,
        );

        /// One tape word: an op's handler, or one of its operand words.
        #[derive(Clone, Copy)]
        #[repr(C)]
        pub union $Word {
            pub handler: $Handler,
            pub operand: i64,
            /// A jump operand on a threaded tape: the target op.
            pub target: *const $Word,
        }

        impl $crate::engines::threaded::TapeWord for $Word {
            fn operand(x: i64) -> Self {
                $Word { operand: x }
            }
            fn read(self) -> i64 {
                // SAFETY: every word is written whole, as a handler, an
                // `i64` or a pointer, all 8 plain bytes.
                unsafe { self.operand }
            }
            fn target(p: *const Self) -> Self {
                $Word { target: p }
            }
            fn read_target(self) -> *const Self {
                // SAFETY: as in `read`.
                unsafe { self.target }
            }
        }
    };
}
pub(crate) use convention;

/// A family's tape word, as the generic [`Tape`] needs it.
pub trait TapeWord: Copy {
    fn operand(x: i64) -> Self;
    /// The word's bits as an operand (for decoding and checking).
    fn read(self) -> i64;
    /// A jump operand pointing at `p`, the op it targets.
    fn target(p: *const Self) -> Self;
    /// The word as a jump operand.
    fn read_target(self) -> *const Self;
}

/// Writes a family's handlers once, for every backend. Each entry is
///
/// ```ignore
/// /// doc
/// fn name<const K: u8>(ip) { body returning a Flow }
/// ```
///
/// and becomes `unsafe fn name<B: Backend, const K: u8, const LEN: usize>(ip,
/// state…) -> Exit`. `LEN` is the op's length in words (handler word
/// included), which the `isa!` entry that names the handler computes from
/// its operand roles and hands to each instance, so no handler restates it;
/// the body sees `ip` and the state as mutable locals under the
/// convention's names, and reads its operands with [`word!`]. `park` is what a [`Stable`] back-edge does:
/// `tail` (tail-call the target like any op) or a block that saves the
/// state for a driver (the target is then returned to it, with the block's
/// `i64` value). An `abi: "…", attrs: [...]` after `park` gives the
/// handlers the ABI of the family's [`convention!`] and attributes of
/// their own.
macro_rules! handlers {
    (
        word: $Word:ty, state: $state:tt, park: $park:tt;
        $($rest:tt)*
    ) => {
        $crate::engines::threaded::handlers! {
            word: $Word, state: $state, park: $park, abi: "Rust", attrs: [];
            $($rest)*
        }
    };
    (
        word: $Word:ty, state: $state:tt, park: $park:tt, abi: $abi:literal,
        attrs: $attrs:tt;
        $(
            $(#[$attr:meta])*
            fn $name:ident $(<$(const $c:ident: $cty:ty),*>)? ($ip:ident) $body:block
        )*
    ) => {
        $(
            $crate::engines::threaded::handlers!(
                @one $Word, $state, $park, $abi, $attrs;
                $(#[$attr])* fn $name $(<$(const $c: $cty),*>)? ($ip) $body
            );
        )*
        $crate::engines::threaded::handlers!(@cold $Word, $state, $abi, $attrs);
        $crate::engines::threaded::handlers!(@fail $Word, $state, $abi, $attrs);
    };

    (
        @one $Word:ty, ($($s:ident: $sty:ty),* $(,)?), $park:tt, $abi:literal,
        [$($attr2:meta),*];
        $(#[$attr:meta])*
        fn $name:ident $(<$(const $c:ident: $cty:ty),*>)? ($ip:ident) $body:block
    ) => {
        $(#[$attr])*
        ///
        /// # Safety
        ///
        /// The handler contract of this family's handler type.
        #[allow(unused_mut, unused_variables, unused_assignments, clippy::unnecessary_cast)]
        $(#[$attr2])*
        pub(crate) unsafe extern $abi fn $name<
            B: $crate::engines::threaded::Backend $($(, const $c: $cty)*)?,
            const LEN: usize,
        >(
            $ip: *const $Word,
            $(mut $s: $sty),*
        ) -> $crate::engines::threaded::Exit<$Word> {
            use $crate::engines::threaded::Flow;
            let flow: Flow = $body;
            match flow {
                Flow::Next => {
                    // SAFETY: `LEN` is this op's length, computed by the
                    // same `op_len` as the lengths the verifier laid the
                    // tape out by, and the verifier checked the op after
                    // this one exists (the last op never falls through).
                    let next = unsafe { $ip.byte_offset((LEN as isize) * 8) };
                    $crate::engines::threaded::handlers!(@go B, next, ($($s),*))
                }
                Flow::Jump(rel) => {
                    // SAFETY: the verifier checked this op's fixed jumps land
                    // on ops of the tape.
                    let next = unsafe { $ip.byte_offset(rel) };
                    $crate::engines::threaded::handlers!(@go B, next, ($($s),*))
                }
                Flow::JumpCold(rel) => {
                    // SAFETY: as for `Jump`; `cold` dispatches to it.
                    let next = unsafe { $ip.byte_offset(rel) };
                    $crate::engines::threaded::handlers!(
                        @call B, cold::<B>, next, ($($s),*)
                    )
                }
                Flow::Goto(t) => {
                    let next: *const $Word = t.0.cast();
                    $crate::engines::threaded::handlers!(@go B, next, ($($s),*))
                }
                Flow::Back(t) => {
                    let next: *const $Word = t.0.cast();
                    if B::BECOME {
                        $crate::engines::threaded::handlers!(@go B, next, ($($s),*))
                    } else {
                        $crate::engines::threaded::handlers!(
                            @park $park, B, next, ($($s),*)
                        )
                    }
                }
                Flow::Halt(value) => (std::ptr::null(), value),
                // A call too, so that every way out of a handler that
                // dispatches is a call in tail position (a constant
                // returned beside a tail call can keep LLVM from making
                // that call a jump).
                Flow::Fail => $crate::engines::threaded::handlers!(
                    @call B, fail::<B>, $ip, ($($s),*)
                ),
            }
        }
    };

    (@cold $Word:ty, ($($s:ident: $sty:ty),* $(,)?), $abi:literal, [$($attr2:meta),*]) => {
        /// The continuation of `Flow::JumpCold`, out of line: dispatches to
        /// the op at `ip`.
        ///
        /// # Safety
        ///
        /// The handler contract, for `ip` an op of a verified tape.
        #[cold]
        #[inline(never)]
        // `B` decides the continuation, which only a nightly build reads.
        #[allow(clippy::extra_unused_type_parameters)]
        $(#[$attr2])*
        unsafe extern $abi fn cold<B: $crate::engines::threaded::Backend>(
            ip: *const $Word,
            $($s: $sty),*
        ) -> $crate::engines::threaded::Exit<$Word> {
            $crate::engines::threaded::handlers!(@call B, {
                // SAFETY: `ip` is an op of a verified tape (this function's
                // contract), so its first word is its handler.
                unsafe { (*ip).handler.0 }
            }, ip, ($($s),*))
        }
    };

    // The continuation of `Flow::Fail`.
    (@fail $Word:ty, ($($s:ident: $sty:ty),* $(,)?), $abi:literal, [$($attr2:meta),*]) => {
        /// The end of a run that failed (`Flow::Fail`), out of line.
        ///
        /// # Safety
        ///
        /// None needed: it reads nothing; `unsafe` for the handler type.
        #[cold]
        #[inline(never)]
        #[allow(clippy::extra_unused_type_parameters, unused_variables)]
        $(#[$attr2])*
        unsafe extern $abi fn fail<B: $crate::engines::threaded::Backend>(
            ip: *const $Word,
            $($s: $sty),*
        ) -> $crate::engines::threaded::Exit<$Word> {
            // Opaque, so that the optimiser keeps the call (a call that
            // only returns a constant would be folded into one).
            std::hint::black_box(ip);
            ($crate::engines::threaded::FAILED.cast(), 0)
        }
    };

    // Dispatch to the op at `next`.
    (@go $B:ident, $next:ident, ($($s:ident),*)) => {{
        // SAFETY: `next` is the start of an op of the same verified tape
        // (see the caller), so its first word is its handler; the handler
        // contract passes on unchanged.
        let handler = unsafe { (*$next).handler.0 };
        $crate::engines::threaded::handlers!(@call $B, handler, $next, ($($s),*))
    }};

    // The call in tail position, by backend.
    (@call $B:ident, $f:expr, $ip:expr, ($($s:ident),*)) => {
        $crate::engines::threaded::tail_call!($B, $f, $ip, ($($s),*))
    };

    // A stable back-edge that tail-calls like any op.
    (@park tail, $B:ident, $next:ident, ($($s:ident),*)) => {
        $crate::engines::threaded::handlers!(@go $B, $next, ($($s),*))
    };

    // A stable back-edge that saves the state and returns the target to
    // the driver, with the block's value (what else the driver needs).
    (@park $save:block, $B:ident, $next:ident, ($($s:ident),*)) => {{
        let value: i64 = $save;
        ($next, value)
    }};
}
pub(crate) use handlers;

/// A handler's continuation: `return f(ip, state…)`, a call in tail
/// position, which the [`Stable`] backend leaves to LLVM to make a jump.
// Only defined without the `nightly` feature: the `become` below must not
// even be parsed by a stable compiler.
#[cfg(not(feature = "nightly"))]
macro_rules! tail_call {
    ($B:ident, $f:expr, $ip:expr, ($($s:ident),*)) => {{
        let f = $f;
        // SAFETY: `f` is the handler of the op at `$ip` (see the caller),
        // so calling it with the unchanged state keeps the handler contract.
        return unsafe { f($ip, $($s),*) };
    }};
}

/// A handler's continuation: `become f(ip, state…)` on the `Become`
/// backend, a call in tail position on [`Stable`].
#[cfg(feature = "nightly")]
macro_rules! tail_call {
    ($B:ident, $f:expr, $ip:expr, ($($s:ident),*)) => {{
        let f = $f;
        if $B::BECOME {
            // SAFETY: as below: same contract, same state.
            unsafe { become f($ip, $($s),*) }
        }
        // SAFETY: `f` is the handler of the op at `$ip` (see the caller),
        // so calling it with the unchanged state keeps the handler contract.
        return unsafe { f($ip, $($s),*) };
    }};
}
pub(crate) use tail_call;

/// Defines a threaded engine, its registry type, its `Technique` and its
/// conformance tests: `Engine = "name", Tier, CodeType, compile(hook);
/// "summary"; conformance: <what `conformance_tests!` takes after the
/// engine>`, for a family module whose `compile` takes a lowering hook (made
/// from the program by `hook`) and whose `Code` has `run` (returning
/// `Result<i64, CallDepthExceeded>`: every engine on this core runs Level 2)
/// and `listing`; the backend follows from the code type. Every engine on
/// this core is one of these.
macro_rules! threaded_engine {
    (
        $(#[$m:meta])*
        $Engine:ident = $name:literal, $tier:ident, $Code:ty, $compile:ident($hook:expr);
        $summary:literal;
        conformance: $($checks:tt)*
    ) => {
        #[cfg(test)]
        mod conformance {
            $crate::reference::conformance::conformance_tests!(super::$Engine, $($checks)*);
        }

        $crate::engine::technique! {
            $(#[$m])*
            $Engine = $name, $tier, $Code;
            $summary;
            compile: |program| $compile(program, &($hook)(program)),
            try_execute: <$Code>::run,
            show: <$Code>::listing;
            const LEVEL: $crate::front::program::Level = $crate::front::program::Level::Two;
            // Every handler ends in a tail call to the next.
            const TAIL_CALLS: bool = true;
            fn variants() -> Vec<String> {
                <$Code>::variants()
            }
            fn census(code: &$Code) -> Vec<(String, usize)> {
                code.census()
            }
        }
    };
}
pub(crate) use threaded_engine;

/// A compiler that writes through its tape's `Emitter` (its field `code`):
/// `emit`, `patch`, `len` and `pop` reach the emitter directly.
macro_rules! writes_through_emitter {
    ($Compiler:ident) => {
        impl<I: $crate::engines::threaded::Isa> std::ops::Deref for $Compiler<I> {
            type Target = $crate::engines::threaded::Emitter<I>;
            fn deref(&self) -> &Self::Target {
                &self.code
            }
        }

        impl<I: $crate::engines::threaded::Isa> std::ops::DerefMut for $Compiler<I> {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.code
            }
        }
    };
}
pub(crate) use writes_through_emitter;

/// Operand word `i` (0 = the first after the handler) of the op at `ip`.
macro_rules! word {
    ($ip:expr, $i:expr) => {{
        let at = 1 + $i;
        // SAFETY: by the handler contract `ip` is an op of a verified tape,
        // and the verifier checked the op's length covers its operand words.
        unsafe { (*$ip.add(at)).operand }
    }};
}
pub(crate) use word;

/// Jump operand `i` of the op at `ip`, as the verifier threaded it.
macro_rules! target {
    ($ip:expr, $i:expr) => {{
        let at = 1 + $i;
        // SAFETY: by the handler contract `ip` is an op of a verified tape;
        // the verifier checked operand `i` is a jump to an op of the tape
        // and stored that op's address in it.
        $crate::engines::threaded::Target(unsafe { (*$ip.add(at)).target }.cast())
    }};
}
pub(crate) use target;

/// The most operand words an op may have.
pub const MAX_OPERANDS: usize = 4;

/// An instruction set, as `isa!` generates it.
pub trait Isa: Sized + 'static {
    type Instr: Copy + fmt::Display;
    type Kind: Copy + PartialEq;
    type Word: TapeWord;
    /// The op's length in words, handler word included.
    fn len(kind: Self::Kind) -> usize;
    /// The kind, operand words (at most [`MAX_OPERANDS`]) and length of
    /// `instr`.
    fn encode(instr: Self::Instr, at: &Layout) -> (Self::Kind, [i64; MAX_OPERANDS], usize);
    fn decode(kind: Self::Kind, words: &[i64], at: &Layout) -> Self::Instr;
    /// Which of the op's operand words are jump operands (threaded into
    /// the target op's address).
    fn jumps(kind: Self::Kind) -> [bool; MAX_OPERANDS];
    /// Every kind that has a handler: each op with each combination of its
    /// selectors (operand locations), those of the set it extends included.
    fn kinds() -> Vec<Self::Kind>;
    /// A kind as the coverage test names it: its op and where each field
    /// lives, `Add(acc, r0, const)`.
    fn kind_name(kind: Self::Kind) -> String;
    /// The verifier, one op: its handler on backend `B` if every operand
    /// word is what that handler relies on, with a bit per operand word
    /// that is a jump (to be threaded).
    fn checked_handler<B: Backend>(
        kind: Self::Kind,
        words: &[Self::Word],
        b: &Bounds,
    ) -> Option<(Self::Word, u8)>;
}

/// The tape under construction: the compiler's only way to write code.
pub struct Emitter<I: Isa> {
    words: Vec<I::Word>,
    kinds: Vec<I::Kind>,
    starts: Vec<u32>,
}

/// Placeholder for an op's handler word until the verifier fills it in.
const UNVERIFIED: i64 = 0;

impl<I: Isa> Emitter<I> {
    /// Room for about `ops` ops, so it rarely regrows; unused capacity is
    /// never written, so it costs address space, not memory.
    pub(crate) fn with_capacity(ops: usize, words_per_op: usize) -> Self {
        Emitter {
            words: Vec::with_capacity(ops * words_per_op),
            kinds: Vec::with_capacity(ops),
            starts: Vec::with_capacity(ops),
        }
    }

    /// How many ops so far (the next op's index).
    pub(crate) fn len(&self) -> usize {
        self.kinds.len()
    }

    /// Appends `instr`; its index.
    // Inlined into the compilers' recursion, emitting costs no call; only in
    // optimised builds, where the inlined copies' locals are merged (at
    // opt-level 0 they balloon a recursive compile frame).
    #[cfg_attr(not(debug_assertions), inline(always))]
    pub(crate) fn emit(&mut self, instr: impl Into<I::Instr>) -> usize {
        let instr = instr.into();
        let at = self.kinds.len();
        let start = self.words.len();
        // Op `at` is not in `starts` yet: its position is `end`.
        let layout = Layout {
            at,
            starts: &self.starts,
            end: start,
        };
        let (kind, operands, len) = I::encode(instr, &layout);
        self.starts.push(start as u32);
        self.kinds.push(kind);
        self.words.push(I::Word::operand(UNVERIFIED));
        self.words
            .extend(operands[..len - 1].iter().map(|&x| I::Word::operand(x)));
        at
    }

    /// Rewrites op `at` once its jump target is known; same length.
    pub(crate) fn patch(&mut self, at: usize, instr: impl Into<I::Instr>) {
        let instr = instr.into();
        let layout = Layout {
            at,
            starts: &self.starts,
            end: self.words.len(),
        };
        let (kind, operands, len) = I::encode(instr, &layout);
        assert_eq!(len, I::len(self.kinds[at]), "a patch keeps the op's length");
        let start = self.starts[at] as usize;
        for (w, &x) in self.words[start + 1..start + len].iter_mut().zip(&operands) {
            *w = I::Word::operand(x);
        }
        self.kinds[at] = kind;
    }

    /// Removes the last op.
    pub(crate) fn pop(&mut self) {
        if let Some(start) = self.starts.pop() {
            self.words.truncate(start as usize);
            self.kinds.pop();
        }
    }

    /// The instruction at op `at`, read back.
    pub(crate) fn instr(&self, at: usize) -> I::Instr {
        decode_at::<I>(&self.words, &self.kinds, &self.starts, at, false)
    }

    /// The ops written so far, read back (for tests and listings).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn instrs(&self) -> Vec<I::Instr> {
        (0..self.len()).map(|at| self.instr(at)).collect()
    }
}

/// Op `at` read back. On a threaded tape (`threaded`), jump operands hold
/// their target's address and are turned back into distances.
fn decode_at<I: Isa>(
    words: &[I::Word],
    kinds: &[I::Kind],
    starts: &[u32],
    at: usize,
    threaded: bool,
) -> I::Instr {
    let kind = kinds[at];
    let start = starts[at] as usize;
    let jumps = I::jumps(kind);
    let mut operands = [0i64; MAX_OPERANDS];
    for (i, w) in words[start + 1..start + I::len(kind)].iter().enumerate() {
        operands[i] = if threaded && jumps[i] {
            let op = words.as_ptr().wrapping_add(start) as usize;
            (w.read_target() as usize).wrapping_sub(op) as i64
        } else {
            w.read()
        };
    }
    let layout = Layout {
        at,
        starts,
        end: words.len(),
    };
    I::decode(kind, &operands[..I::len(kind) - 1], &layout)
}

/// A verified tape of instruction set `I` whose handlers continue on
/// backend `B`.
pub struct Tape<I: Isa, B: Backend> {
    /// Threaded: handler words filled in, jump operands as addresses.
    words: Vec<I::Word>,
    kinds: Vec<I::Kind>,
    starts: Vec<u32>,
    /// Main's body first (at op 0), then each function's, in order.
    bodies: Vec<Body>,
    arg_count: usize,
    backend: PhantomData<B>,
}

/// One body on a tape: main or a function, as a run of ops with its frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Body {
    /// Its first op (the function's entry).
    pub first: usize,
    /// Its frame's length in slots (a function's header included).
    pub frame_len: usize,
}

impl<I: Isa, B: Backend> Tape<I, B> {
    /// Verifies what `e` emitted and threads it: every op gets its handler
    /// only from the check of its own kind and operands, and the last op
    /// must be one that never falls through (`ends`), so every op that does
    /// has a successor.
    pub(crate) fn new(
        e: Emitter<I>,
        frame_len: usize,
        arg_count: usize,
        ends: impl Fn(I::Kind) -> bool,
    ) -> Result<Self, String> {
        let main = Body {
            first: 0,
            frame_len,
        };
        Self::with_bodies(e, &[main], arg_count, 0, ends)
    }

    /// [`Tape::new`] for a tape of several bodies: main's from op 0, then
    /// each function's (`bodies`, ascending first ops). Each op is checked
    /// against its own body: slots against its frame, jumps inside it; a
    /// call's target must be a function's first op; each body's last op
    /// must be one that never falls through; and every function's frame
    /// must hold its `header` (the words a call writes at its start).
    pub(crate) fn with_bodies(
        e: Emitter<I>,
        bodies: &[Body],
        arg_count: usize,
        header: usize,
        ends: impl Fn(I::Kind) -> bool,
    ) -> Result<Self, String> {
        let Emitter {
            mut words,
            kinds,
            starts,
        } = e;
        if words.len() > u32::MAX as usize {
            return Err("the tape has more than 2^32 words".into());
        }
        let firsts_ok = bodies.first().is_some_and(|b| b.first == 0)
            && bodies.windows(2).all(|w| w[0].first < w[1].first)
            && bodies.last().is_some_and(|b| b.first < kinds.len());
        if !firsts_ok {
            return Err("the bodies do not split the tape".into());
        }
        if bodies[1..].iter().any(|b| b.frame_len < header) {
            return Err("a function's frame has no room for its header".into());
        }
        // Body `k`'s ops: `firsts[k]..firsts[k + 1]`.
        let firsts: Vec<usize> = bodies
            .iter()
            .map(|b| b.first)
            .chain([kinds.len()])
            .collect();
        for (k, w) in firsts.windows(2).enumerate() {
            if !ends(kinds[w[1] - 1]) {
                return Err(format!("body {k} does not end with an op that stops"));
            }
        }
        let entries: Vec<u32> = bodies[1..].iter().map(|b| starts[b.first]).collect();
        let mut body = 0;
        // One pass: verify each op, then thread it: its handler word filled
        // in and each jump operand turned into its target op's address, in
        // the tape's final allocation. All writes go through `base`, and a
        // `Vec`'s buffer stays put when the `Vec` moves, so the addresses
        // stay valid for the tape's life.
        let total = words.len();
        let base = words.as_mut_ptr();
        let word_at = |op: usize| starts.get(op).map_or(total, |&s| s as usize);
        for (at, (&kind, &start)) in kinds.iter().zip(&starts).enumerate() {
            while at >= firsts[body + 1] {
                body += 1;
            }
            let start = start as usize;
            let end = starts.get(at + 1).map_or(total, |&s| s as usize);
            // SAFETY: `start + 1..end` are this op's operand words, inside
            // the tape; the slice is dropped before anything is written.
            let operands =
                unsafe { std::slice::from_raw_parts(base.add(start + 1), end - start - 1) };
            let b = Bounds {
                at: start,
                starts: &starts,
                frame_len: bodies[body].frame_len,
                arg_count,
                body: (word_at(firsts[body]), word_at(firsts[body + 1])),
                in_function: body > 0,
                entries: &entries,
            };
            let Some((handler, jumps)) = I::checked_handler::<B>(kind, operands, &b) else {
                let instr = decode_at::<I>(&words, &kinds, &starts, at, false);
                return Err(format!("@{at}: `{instr}` is out of range"));
            };
            // SAFETY: `start < total`: this op's first word.
            unsafe { *base.add(start) = handler };
            let count = operands.len();
            for i in (0..count).filter(|i| jumps & (1 << i) != 0) {
                // SAFETY: `start + 1 + i` is an operand word of this op, and
                // the verifier checked its distance lands on an op's start,
                // so `target` is inside the tape too.
                unsafe {
                    let word = base.add(start + 1 + i);
                    let target = (start as i64 + (*word).read() / 8) as usize;
                    *word = I::Word::target(base.add(target));
                }
            }
        }
        Ok(Tape {
            words,
            kinds,
            starts,
            bodies: bodies.to_vec(),
            arg_count,
            backend: PhantomData,
        })
    }

    /// The first op; every handler chain starts here.
    pub(crate) fn entry(&self) -> *const I::Word {
        self.words.as_ptr()
    }

    /// Main's frame length.
    pub(crate) fn frame_len(&self) -> usize {
        self.bodies[0].frame_len
    }

    /// The bodies: main's first, then each function's.
    pub(crate) fn bodies(&self) -> &[Body] {
        &self.bodies
    }

    /// The words a run's frames need ([`frame::Stack::words`]).
    pub(crate) fn stack_words(&self) -> usize {
        let max = self.bodies[1..].iter().map(|b| b.frame_len).max();
        frame::Stack::words(self.frame_len(), max.unwrap_or(0))
    }

    pub(crate) fn arg_count(&self) -> usize {
        self.arg_count
    }

    /// Every variant a tape of this set can hold: each kind, by name.
    pub(crate) fn variants() -> Vec<String> {
        I::kinds().into_iter().map(I::kind_name).collect()
    }

    /// How many ops of each kind the tape holds, by kind name (counted
    /// from the kinds kept beside the tape, not while it runs).
    pub(crate) fn census(&self) -> Vec<(String, usize)> {
        let mut counts: Vec<(I::Kind, usize)> = Vec::new();
        for &k in &self.kinds {
            match counts.iter_mut().find(|(seen, _)| *seen == k) {
                Some((_, n)) => *n += 1,
                None => counts.push((k, 1)),
            }
        }
        counts
            .into_iter()
            .map(|(k, n)| (I::kind_name(k), n))
            .collect()
    }

    /// The instructions, read back from the tape.
    pub(crate) fn instrs(&self) -> impl Iterator<Item = I::Instr> + '_ {
        (0..self.kinds.len())
            .map(|at| decode_at::<I>(&self.words, &self.kinds, &self.starts, at, true))
    }

    /// The listing `vm-perf show` prints: a header, then one op per line.
    pub(crate) fn listing(&self, header: &str) -> String {
        self.listing_bodies(header, |_| String::new())
    }

    /// The listing with a line before each body's first op, `title(k)` for
    /// body `k` (main is 0; an empty title prints no line).
    pub(crate) fn listing_bodies(&self, header: &str, title: impl Fn(usize) -> String) -> String {
        let mut out = format!("; {header}; continuations: {}\n", B::NAME);
        let width = self.kinds.len().to_string().len().max(4);
        let mut next = 0;
        for (at, instr) in self.instrs().enumerate() {
            if self.bodies.get(next).is_some_and(|b| b.first == at) {
                let t = title(next);
                if !t.is_empty() {
                    out.push_str(&format!("; {t}\n"));
                }
                next += 1;
            }
            out.push_str(&format!("{at:>width$}  {instr}\n"));
        }
        out
    }
}

#[cfg(test)]
impl<I: Isa> Emitter<I> {
    /// `code` emitted in order, each op then patched with itself (forward
    /// targets patched once known, as compilers do).
    pub(crate) fn of(code: &[I::Instr]) -> Self {
        let mut e = Emitter::<I>::with_capacity(code.len(), 3);
        for &i in code {
            e.emit(i);
        }
        for (at, &i) in code.iter().enumerate() {
            e.patch(at, i);
        }
        e
    }

    /// Overwrites word `i` of the tape (tests of the verifier).
    pub(crate) fn set_word(&mut self, i: usize, x: i64) {
        self.words[i] = I::Word::operand(x);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::{Emitter, Isa};

    /// Every instruction of `all`, emitted in order (forward targets patched
    /// once known, as compilers do), reads back as itself.
    pub(crate) fn reads_back<I: Isa>(all: &[I::Instr])
    where
        I::Instr: PartialEq + std::fmt::Debug,
    {
        assert_eq!(Emitter::<I>::of(all).instrs(), all);
    }
}
