//! `tape_continuations` — direct-threaded code: every op on the tape calls
//! the next op itself, with an accumulator and two local registers carried
//! in handler arguments.
//!
//! **Compile** lowers the tree straight onto a tape of the threaded-code
//! core ([`crate::engines::threaded`]): each op is its handler's address and
//! one operand word (16 bytes), with its kind kept beside it for the
//! listing. The instruction set is the one list [`TapeIsa`]; the verifier
//! then hands every op its handler from the check of its own kind and
//! operand. The compiler takes a lowering hook (`Lowering`) that sees
//! every node first, which is how `tape_continuations_fused` adds its
//! superinstructions without this module knowing them.
//!
//! **Calling convention** (six scalar arguments, kept in registers by the
//! x86-64 and AArch64 ABIs):
//!
//! | arg | meaning |
//! |---|---|
//! | `ip` | this op on the tape; its operand is the word after the handler |
//! | `fp` | the frame: `[save r0, save r1, locals…, temporaries…]`, sized at compile time |
//! | `args` | the program's arguments |
//! | `acc` | the accumulator: the value of the expression just evaluated |
//! | `r0`, `r1` | the two innermost locals (`REGS`) |
//!
//! **Values**: every expression leaves its value in `acc`. `Add` saves its
//! left value in a temporary frame slot (`push [slot]`) whose index follows
//! from the static operand-stack height, so no stack pointer exists at run
//! time. A value nobody uses (the left of `;`, a loop body) is not computed
//! at all if it is a leaf, and `Set`/`While` produce their 0 only if used.
//! **Locals**: a `Let` at scope level `k` lives in register `k % REGS` while it
//! is one of the `REGS` innermost locals; a deeper `Let` spills the register's
//! previous owner to that owner's home slot (`bind … spill`) and reloads it when
//! the inner scope ends (`unbind`). So registers never shift, and any number of
//! locals works: locals further out than `REGS` are read from their home slot.
//!
//! **Control**: every handler ends by calling the next op in tail position,
//! which LLVM compiles to a jump from opt-level 1 on; forward jumps
//! (`jump_if_not_pos` to the loop exit) are tail calls too. The backward
//! edges, `loop` and `loop_if_pos` (loops are rotated so the condition is
//! tested at the bottom), instead store `r0`/`r1` in the frame and *return*
//! the loop head to the driver (`Code::run`), which reloads them and calls
//! again. So a chain of calls only ever moves forward: its depth is bounded
//! by the tape length even where tail calls are not optimised (opt-level 0),
//! and never by the number of iterations. The same handlers built for the
//! `become` backend are the `tail_calls` engine, whose back-edges are jumps.
//!
//! **Calls, returns and branches** (Level 2). Main and each function are
//! bodies of one tape, each with its own frame layout and length. A frame
//! lives on one stack in the engine's own memory, never on the native
//! stack: a called function's frame starts just above its caller's live
//! temporaries, under three *link words* (depth, return op, caller's frame)
//! that lie in the caller's frame. The caller evaluates the arguments left
//! to right and `push`es each straight to where the callee reads its
//! parameter: the last two into the callee's save slots, the others into
//! their home slots. `call` is one dispatch: check the depth, save the
//! caller's `r0`/`r1` in its save slots (registers are the only locals a
//! call could clobber), write the link words, move `fp`, load the
//! callee's `r0`/`r1` (its last two parameters) and jump to the entry.
//! `ret` is one dispatch too: read the link words, move `fp` back, reload
//! the caller's registers and jump to the op after the call, `acc` holding
//! the value. Both are tail calls like any op, so a guest call grows no
//! native stack wherever sibling calls are made (every profile the tests
//! run in; the stack tests prove it at the call limit on 256 KiB); only
//! loops keep the driver round trip. That round trip now has to know the
//! frame it left: a back-edge inside a function returns its `fp` with the
//! loop head, and a tape with functions runs under a driver that takes it
//! (a Level-1 tape keeps the old driver, with its one fixed frame). `if`
//! is `c; unless c @else; t; jump @end; else: e`, the `jump` left out when
//! `e` emits nothing and turned into the `ret` (or `halt`) it would reach.
//! A condition that is a `<` becomes compare-and-branch (`a; push; b;
//! jump_if_not_lt [slot]`), no 0/1 is made; so does a `while` on a `<`,
//! then top-tested (`jump_if_not_lt` to the exit, `loop` back). `-` and a
//! `<` whose value is used work like `add`: `sub [slot]`, `lt [slot]`.
//! This tier declares no operand-location variants: a literal right operand
//! of `-` or `<` is pushed like any other, as for `+`. The cost: a call is
//! about six stores and four loads beyond its arguments, and each argument
//! costs its own dispatch beside its expression's.
//!
//! **Unsafe** code rests on the verifier: handlers read frame slots,
//! arguments and the next op unchecked because the verifier checked them.
//! A call's frame offset is checked to leave the link words in the caller's
//! frame and the callee's frame at most the caller's length above it, so
//! the stack the driver sizes for `MAX_CALLS` frames holds every frame the
//! depth check lets in; a call's target must be a function's first op and
//! `ret` only appears in functions' bodies, whose link words a call wrote.
//!
//! Trade-off: the cheapest dispatch of the original techniques (one indirect
//! jump per node, operands next to the handler, the hot locals never touch
//! memory) for a compiler with an allocator and unsafe handlers. Without
//! superinstructions, `a + b` still costs two dispatches of its own (`push`,
//! `add`) beside its operands'.

use crate::engine::{CallDepthExceeded, CompileError};
use crate::engines::threaded::{
    ArgIndex, Backend, Backward, Body, Bounds, Callee, Emitter, Forward, Isa, Layout, Lit, Operand,
    Reg, Slot, Stable, Tape, Target, convention, failed, frame, isa, target, threaded_engine, word,
    writes_through_emitter,
};
use crate::front::ast::Expr;
use crate::front::program::{MAX_CALLS, Program};

/// How many innermost locals live in handler arguments. Two, because the
/// calling convention has six register arguments and `ip`, `fp`, `args` and
/// `acc` take the other four; a seventh argument would go to the stack and
/// stop the tail calls from being plain jumps.
pub(crate) const REGS: usize = 2;

/// Frame slots `0..REGS` hold `r0`, `r1` while the driver is between calls.
pub(crate) const SAVE_BASE: usize = 0;
/// Home slots of locals start here, indexed by scope level.
const LOCALS_BASE: usize = SAVE_BASE + REGS;

/// The link words just below a called function's frame, written by `call`
/// and read by `ret` (slots of the caller's frame, under its arguments).
const LINK: usize = 3;
/// `fp[-DEPTH]`: how many calls are active with this frame's.
const DEPTH: usize = 3;
/// `fp[-RETURN_TO]`: the op after the call.
const RETURN_TO: usize = 2;
/// `fp[-CALLER]`: the caller's frame.
const CALLER: usize = 1;

/// Where a call's frame starts, in slots from the caller's: at least
/// [`LINK`] (the link words lie in the caller's frame) and at most the
/// caller's frame length ([`Bounds::frame_base`]), so `MAX_CALLS` nested
/// frames fit the stack `run_calls` makes.
pub struct FrameOffset;

impl Operand for FrameOffset {
    type Value = usize;
    const WORDS: u64 = 1;
    fn encode(off: usize, _: &Layout) -> (u8, Option<i64>) {
        (0, Some(off as i64))
    }
    fn decode(_: u8, off: i64, _: &Layout) -> usize {
        off as usize
    }
    fn check(_: u8, off: i64, b: &Bounds) -> bool {
        off >= LINK as i64 && b.frame_base(off)
    }
    fn location(_: u8) -> String {
        "frame".into()
    }
}

convention!(Word, Handler, (fp: *mut i64, args: *const i64, acc: i64, r0: i64, r1: i64));

isa! {
    /// The tape's instruction set: every op is a handler and one word.
    pub isa TapeIsa { word: Word, handler: Handler, instr: Instr, kind: Kind, min_len: 2 }
    /// `acc = n`
    Lit(n: i64 as Lit) "lit {n}" => lit;
    /// `acc = args[i]`
    Arg(i: usize as ArgIndex) "arg {i}" => arg;
    /// `acc = r[k]`
    GetReg(k: usize as Reg) "get r{k}" => get_reg<k in [0, 1]>;
    /// `acc = frame[slot]` (a spilled local)
    GetSlot(s: usize as Slot) "get [{s}]" => get_slot;
    /// `r[k] = acc`
    SetReg(k: usize as Reg) "set r{k}" => set_reg<k in [0, 1]>;
    /// `frame[slot] = acc` (a spilled local)
    SetSlot(s: usize as Slot) "set [{s}]" => set_slot;
    /// `frame[slot] = acc` (save an `Add`'s left operand)
    Push(s: usize as Slot) "push [{s}]" => set_slot;
    /// `acc = frame[slot] + acc` (wrapping)
    AddPop(s: usize as Slot) "add [{s}]" => add_pop;
    /// `acc = frame[slot] - acc` (wrapping)
    SubPop(s: usize as Slot) "sub [{s}]" => sub_pop;
    /// `acc = 1` if `frame[slot] < acc`, else `0`
    LtPop(s: usize as Slot) "lt [{s}]" => lt_pop;
    /// `r[k] = acc`: a new local whose register had no owner
    Bind(k: usize as Reg) "bind r{k}" => set_reg<k in [0, 1]>;
    /// `frame[slot] = r[k]; r[k] = acc`: a new local evicts an outer one
    BindSpill(k: usize as Reg, s: usize as Slot) "bind r{k} spill [{s}]" => bind_spill<k in [0, 1]>;
    /// `r[k] = frame[slot]`: the scope ended, the evicted local comes back
    Unbind(k: usize as Reg, s: usize as Slot) "unbind r{k} reload [{s}]" => unbind<k in [0, 1]>;
    /// if `acc <= 0` continue at the target (forward)
    JumpIfNotPos(t: usize as Forward) "jump_if_not_pos @{t}" => jump_if_not_pos;
    /// back-edge (to the driver on the stable backend)
    Loop(t: usize as Backward) "loop @{t}" => loop_back;
    /// back-edge if `acc > 0`, else continue with the next op
    LoopIfPos(t: usize as Backward) "loop_if_pos @{t}" => loop_if_pos;
    /// unless `frame[slot] < acc` continue at the target (forward)
    JumpIfNotLt(s: usize as Slot, t: usize as Forward) "jump_if_not_lt [{s}] @{t}"
        => jump_if_not_lt;
    /// continue at the target (forward: the end of an `if`)
    Jump(t: usize as Forward) "jump @{t}" => jump;
    /// call the function whose first op is `f`, its frame `off` slots
    /// above this one
    Call(f: usize as Callee, off: usize as FrameOffset) "call @{f} frame +{off}" => call;
    /// return `acc` to the op after the call (in a function's body)
    Ret() "ret" => ret if |b: &Bounds| b.in_function();
    /// the program's value is `acc`
    Halt() "halt" => halt;
}

/// Register `K`'s value.
#[inline(always)]
pub(crate) fn get<const K: u8>(r0: i64, r1: i64) -> i64 {
    if K == 0 { r0 } else { r1 }
}

/// Register `K`, to write.
#[inline(always)]
pub(crate) fn reg_mut<'a, const K: u8>(r0: &'a mut i64, r1: &'a mut i64) -> &'a mut i64 {
    if K == 0 { r0 } else { r1 }
}

/// Frame slot `s`, which the verifier checked for the op being run.
macro_rules! slot {
    ($fp:expr, $s:expr) => {{
        let s = $s as usize;
        // SAFETY: the verifier checked this op's slot operand is below the
        // frame's `frame_len` slots, and by the handler contract `fp` is
        // such a frame.
        unsafe { &mut *$fp.add(s) }
    }};
}
pub(crate) use slot;

/// Argument `i`, which the verifier checked for the op being run.
macro_rules! argument {
    ($args:expr, $i:expr) => {{
        let i = $i as usize;
        // SAFETY: the verifier checked this op's argument index is below the
        // tape's `arg_count`, and by the handler contract `args` holds that
        // many values.
        unsafe { *$args.add(i) }
    }};
}
pub(crate) use argument;

/// Writes handlers with this family's calling convention (this module's
/// and `tape_continuations_fused`'s). The invocation names the state, so
/// that the handler bodies it also writes can use those names.
macro_rules! tape_handlers {
    (state($fp:ident, $args:ident, $acc:ident, $r0:ident, $r1:ident); $($body:tt)*) => {
        $crate::engines::threaded::handlers! {
            word: $crate::engines::threaded::tape_continuations::Word,
            state: ($fp: *mut i64, $args: *const i64, $acc: i64, $r0: i64, $r1: i64),
            // The stable back-edge saves the registers and returns to `run`,
            // with the frame it runs in (a called function's, if any).
            park: {
                // SAFETY: `Code::new` checked the frame has the save slots.
                unsafe {
                    *$fp.add($crate::engines::threaded::tape_continuations::SAVE_BASE) = $r0;
                    *$fp.add($crate::engines::threaded::tape_continuations::SAVE_BASE + 1) = $r1;
                }
                $fp as i64
            };
            $($body)*
        }
    };
}
pub(crate) use tape_handlers;

tape_handlers! {
    state(fp, args, acc, r0, r1);
    fn lit(ip) {
        acc = word!(ip, 0);
        Flow::Next
    }
    fn arg(ip) {
        acc = argument!(args, word!(ip, 0));
        Flow::Next
    }
    fn get_reg<const K: u8>(ip) {
        acc = get::<K>(r0, r1);
        Flow::Next
    }
    fn get_slot(ip) {
        acc = *slot!(fp, word!(ip, 0));
        Flow::Next
    }
    fn set_reg<const K: u8>(ip) {
        *reg_mut::<K>(&mut r0, &mut r1) = acc;
        Flow::Next
    }
    fn set_slot(ip) {
        *slot!(fp, word!(ip, 0)) = acc;
        Flow::Next
    }
    fn add_pop(ip) {
        acc = slot!(fp, word!(ip, 0)).wrapping_add(acc);
        Flow::Next
    }
    fn sub_pop(ip) {
        acc = slot!(fp, word!(ip, 0)).wrapping_sub(acc);
        Flow::Next
    }
    fn lt_pop(ip) {
        acc = i64::from(*slot!(fp, word!(ip, 0)) < acc);
        Flow::Next
    }
    fn jump_if_not_lt(ip) {
        if *slot!(fp, word!(ip, 0)) < acc { Flow::Next } else { Flow::Goto(target!(ip, 1)) }
    }
    fn jump(ip) {
        Flow::Goto(target!(ip, 0))
    }
    fn call(ip) {
        let off = word!(ip, 1) as usize;
        // SAFETY: for every access below: the verifier checked `LINK <= off <=
        // frame_len`, so the link words `callee[-LINK..0]` are slots of
        // this frame and the callee's frame starts at most one frame length
        // above this one's. `run_calls` made the stack for `MAX_CALLS` such
        // frames above main's, and the depth checked here keeps at most that
        // many active. This frame's own link words (`fp[-LINK..0]`) were
        // written by the call that made it, or by `run_calls` for main's,
        // and no op writes below its own frame, so the depth read is the one
        // written.
        let depth = unsafe { *fp.sub(DEPTH) };
        if depth as usize >= MAX_CALLS {
            Flow::Fail
        } else {
            // SAFETY: see above.
            unsafe {
                let callee = fp.add(off);
                // The caller's registers stay in its frame during the call.
                *fp.add(SAVE_BASE) = r0;
                *fp.add(SAVE_BASE + 1) = r1;
                *callee.sub(DEPTH) = depth + 1;
                let back = ip.byte_offset(LEN as isize * 8);
                callee.sub(RETURN_TO).cast::<*const Word>().write(back);
                callee.sub(CALLER).cast::<*mut i64>().write(fp);
                fp = callee;
                // The caller left the last two arguments in the callee's
                // save slots: its innermost locals start in the registers.
                r0 = *fp.add(SAVE_BASE);
                r1 = *fp.add(SAVE_BASE + 1);
            }
            Flow::Goto(target!(ip, 0))
        }
    }
    fn ret(ip) {
        // SAFETY: the verifier let `ret` only into functions' bodies, whose
        // frames a `call` made, so `fp[-LINK..0]` are this frame's link
        // words as that call wrote them (the op after the call, which
        // exists since a body's last op never falls through, and the
        // caller's frame): no op writes below its own frame.
        unsafe {
            let back = fp.sub(RETURN_TO).cast::<*const Word>().read();
            fp = fp.sub(CALLER).cast::<*mut i64>().read();
            r0 = *fp.add(SAVE_BASE);
            r1 = *fp.add(SAVE_BASE + 1);
            Flow::Goto(Target(back.cast()))
        }
    }
    fn bind_spill<const K: u8>(ip) {
        let r = reg_mut::<K>(&mut r0, &mut r1);
        *slot!(fp, word!(ip, 0)) = *r;
        *r = acc;
        Flow::Next
    }
    fn unbind<const K: u8>(ip) {
        *reg_mut::<K>(&mut r0, &mut r1) = *slot!(fp, word!(ip, 0));
        Flow::Next
    }
    fn jump_if_not_pos(ip) {
        if acc > 0 { Flow::Next } else { Flow::Goto(target!(ip, 0)) }
    }
    fn loop_back(ip) {
        Flow::Back(target!(ip, 0))
    }
    fn loop_if_pos(ip) {
        if acc > 0 { Flow::Back(target!(ip, 0)) } else { Flow::Next }
    }
    fn halt(ip) {
        Flow::Halt(acc)
    }
}

/// The compiled program: a verified tape of instruction set `I` (the plain
/// set or a fused one over the same convention) on backend `B`.
pub struct Code<I: Isa<Word = Word>, B: Backend> {
    /// Main's body, then each function's.
    tape: Tape<I, B>,
    /// The memory a run's frames live in, when the tape has functions.
    stack: frame::Stack,
    /// Each function's name, for the listing.
    names: Vec<String>,
}

impl<I: Isa<Word = Word, Kind: From<Kind>>, B: Backend> Code<I, B> {
    /// Verifies and threads what a compiler emitted.
    pub(crate) fn new(c: Compiler<I>, arg_count: usize) -> Result<Self, CompileError> {
        let main = Body {
            first: 0,
            frame_len: c.main_len.unwrap_or_else(|| c.frame_len()),
        };
        if main.frame_len < LOCALS_BASE {
            return Err(CompileError(
                "the frame has no room for the saved registers".into(),
            ));
        }
        let halt = |k| k == I::Kind::from(Kind::Halt());
        let tape = if c.bodies.is_empty() {
            Tape::new(c.code, main.frame_len, arg_count, halt)
        } else {
            let bodies: Vec<Body> = std::iter::once(main).chain(c.bodies).collect();
            // Every function's frame has the save slots too; `halt` ends
            // main, `ret` a function.
            let stops = |k| halt(k) || k == I::Kind::from(Kind::Ret());
            Tape::with_bodies(c.code, &bodies, arg_count, LOCALS_BASE, stops)
        }
        .map_err(CompileError)?;
        Ok(Code {
            tape,
            stack: frame::Stack::default(),
            names: c.names,
        })
    }

    /// Runs the tape.
    ///
    /// # Safety
    ///
    /// `args.len()` must be at least the `arg_count` the tape was built for.
    pub(crate) unsafe fn run(&self, args: &[i64]) -> Result<i64, CallDepthExceeded> {
        if self.tape.bodies().len() > 1 {
            // SAFETY: this function's contract.
            unsafe { self.run_calls(args) }
        } else {
            // SAFETY: this function's contract; without a function the
            // verifier let no `call` in.
            Ok(unsafe { self.run_flat(args) })
        }
    }

    /// The driver of a tape without calls (every Level-1 program): one
    /// frame, which stable back-edges return to with the registers saved.
    ///
    /// # Safety
    ///
    /// As for [`Code::run`], for a tape that holds no `call`.
    unsafe fn run_flat(&self, args: &[i64]) -> i64 {
        debug_assert!(args.len() >= self.tape.arg_count());
        let mut frame = vec![0i64; self.tape.frame_len()];
        let fp = frame.as_mut_ptr();
        let mut ip = self.tape.entry();
        let (mut r0, mut r1) = (0, 0);
        loop {
            // SAFETY: `ip` is the tape's first op or a back-edge target
            // inside it; the tape passed the verifier; `fp` has `frame_len`
            // slots; and the caller guarantees `args` holds `arg_count`
            // values. This is the handler contract.
            let (next, value) = unsafe { ((*ip).handler.0)(ip, fp, args.as_ptr(), 0, r0, r1) };
            if next.is_null() {
                return value;
            }
            ip = next;
            // SAFETY: the save slots are inside the frame (checked in `new`).
            unsafe {
                r0 = *fp.add(SAVE_BASE);
                r1 = *fp.add(SAVE_BASE + 1);
            }
        }
    }

    /// The driver of a tape with functions: main's frame and the frames
    /// of up to `MAX_CALLS` active calls on one stack in this engine's
    /// memory, each above its link words. A stable back-edge returns with
    /// the frame it ran in.
    ///
    /// # Safety
    ///
    /// As for [`Code::run`].
    unsafe fn run_calls(&self, args: &[i64]) -> Result<i64, CallDepthExceeded> {
        debug_assert!(args.len() >= self.tape.arg_count());
        // Main's frame lies above its own link words (of which only the
        // depth is read), each call's at most its caller's frame length
        // above its caller's (`FrameOffset`).
        let main_len = LINK + self.tape.frame_len();
        let words = LINK + self.tape.stack_words();
        self.stack.with(words, main_len, |stack| {
            // SAFETY: the stack has `LINK` words and more; main's link
            // words say no call is active (zeroed by `with`).
            let mut fp = unsafe { stack.as_mut_ptr().add(LINK) };
            let mut ip = self.tape.entry();
            let (mut r0, mut r1) = (0, 0);
            loop {
                // SAFETY: `ip` is the tape's first op or a back-edge target
                // inside it; the tape passed the verifier; `fp` is main's
                // frame or one a `call` made, on a stack with room for
                // `MAX_CALLS` function frames above main's; `args` holds
                // `arg_count` values. This is the handler contract.
                let (next, value) = unsafe { ((*ip).handler.0)(ip, fp, args.as_ptr(), 0, r0, r1) };
                if next.is_null() {
                    return Ok(value);
                }
                if failed(next) {
                    return Err(CallDepthExceeded);
                }
                ip = next;
                fp = value as *mut i64;
                // SAFETY: a back-edge returned the frame it ran in, whose
                // save slots it wrote.
                unsafe {
                    r0 = *fp.add(SAVE_BASE);
                    r1 = *fp.add(SAVE_BASE + 1);
                }
            }
        })
    }

    pub(crate) fn variants() -> Vec<String> {
        Tape::<I, B>::variants()
    }

    pub(crate) fn census(&self) -> Vec<(String, usize)> {
        self.tape.census()
    }

    /// The listing, one instruction per line, with the frame layout and
    /// each function's entry.
    pub(crate) fn listing(&self) -> String {
        let mut header = format!(
            "frame: {} slots ([0..{LOCALS_BASE}] saved r0/r1, then locals, then temporaries)",
            self.tape.frame_len()
        );
        if self.names.is_empty() {
            return self.tape.listing(&header);
        }
        header.push_str(&format!(
            "; a function's frame (its own length) lies above {LINK} link words \
             (depth, return op, caller's frame), its parameters in its locals"
        ));
        self.tape.listing_bodies(&header, |k| match k {
            0 => String::new(),
            k => format!("fn {}", self.names[k - 1]),
        })
    }
}

/// Whether `e` contains a `While` (searched without recursion).
pub(crate) fn has_loop(e: &Expr) -> bool {
    let mut todo = vec![e];
    while let Some(e) = todo.pop() {
        if let Expr::While(..) = e {
            return true;
        }
        todo.extend(e.children());
    }
    false
}

/// Where a local lives at some program point.
pub(crate) enum Place {
    Reg(usize),
    Slot(usize),
}

/// Where local `d` lives, seen from a point with `scope` locals in scope.
pub(crate) fn place(scope: usize, d: usize) -> Place {
    let level = scope - 1 - d;
    if d < REGS {
        Place::Reg(level % REGS)
    } else {
        Place::Slot(LOCALS_BASE + level)
    }
}

/// A hook that sees every node before the plain compiler does: how a fused
/// tier adds superinstructions to this compiler without it naming them.
pub(crate) trait Lowering {
    /// The instruction set the compiler writes: the plain one or one that
    /// extends it.
    type Isa: Isa<Word = Word, Instr: From<Instr>, Kind: From<Kind>>;
    /// Emits `e` its own way if it has one of the hook's shapes (arguments
    /// as for [`Compiler::expr`]); `false` leaves it to the plain compiler.
    fn lower(
        &self,
        c: &mut Compiler<Self::Isa>,
        e: &Expr,
        scope: usize,
        height: usize,
        want: bool,
    ) -> bool;
    /// Stores `e`, a call's argument, in frame slot `slot` its own way if
    /// it has one of the hook's shapes; `false` leaves it to the plain
    /// compiler (`e`, then `push`).
    fn store(&self, _c: &mut Compiler<Self::Isa>, _e: &Expr, _scope: usize, _slot: usize) -> bool {
        false
    }
    /// Emits condition `c` up to its branch its own way if it has one of
    /// the hook's shapes, and says how to branch on it; `None` leaves it to
    /// the plain compiler.
    fn test(
        &self,
        _c: &mut Compiler<Self::Isa>,
        _cond: &Expr,
        _scope: usize,
        _height: usize,
    ) -> Option<Test<Self::Isa>> {
        None
    }
}

/// How to branch on a condition whose code was just emitted: the op that
/// continues at a (forward) target when the condition is false, and, if
/// the set has one, the op that goes back to a target when it is true (a
/// rotated loop's test).
pub(crate) struct Test<I: Isa> {
    pub(crate) unless: Box<dyn Fn(usize) -> I::Instr>,
    pub(crate) back_if: Option<Box<dyn Fn(usize) -> I::Instr>>,
}

/// The plain compiler's hook: no shapes of its own.
pub(crate) struct Plain;

impl Lowering for Plain {
    type Isa = TapeIsa;
    fn lower(&self, _: &mut Compiler<TapeIsa>, _: &Expr, _: usize, _: usize, _: bool) -> bool {
        false
    }
}

/// Lowers the tree onto a tape of instruction set `I`.
pub(crate) struct Compiler<I: Isa> {
    code: Emitter<I>,
    /// First frame slot of the operand temporaries (of the body being
    /// compiled).
    temp_base: usize,
    /// Operand-stack height reached so far (in the body being compiled).
    max_temps: usize,
    /// Main's frame length, once main is compiled.
    main_len: Option<usize>,
    /// Each function's body, once compiled.
    bodies: Vec<Body>,
    /// Each `call` op, the function it calls and its frame offset, to patch
    /// in the entries.
    calls: Vec<(usize, usize, usize)>,
    /// Each function's name.
    names: Vec<String>,
    /// The `jump`s that end the `then` branches of the body being
    /// compiled, with their targets.
    jumps: Vec<(usize, usize)>,
}

writes_through_emitter!(Compiler);

impl<I: Isa> Compiler<I> {
    /// The frame length the body being compiled needs so far.
    fn frame_len(&self) -> usize {
        self.temp_base + self.max_temps
    }
}

impl<I: Isa<Word = Word, Instr: From<Instr>>> Compiler<I> {
    /// Compiles the whole program with hook `l`: main, ending in `halt`,
    /// then each function, ending in `ret`.
    pub(crate) fn compile<L: Lowering<Isa = I>>(program: &Program, l: &L) -> Compiler<I> {
        let mut c = Compiler {
            // Most nodes emit one op, `Then` none, `Add`, `Let` and `Set`
            // up to two: this rarely regrows.
            code: Emitter::with_capacity(2 * program.node_count() + 1, 2),
            temp_base: LOCALS_BASE + program.max_locals(),
            max_temps: 0,
            main_len: None,
            bodies: Vec::new(),
            calls: Vec::new(),
            names: Vec::new(),
            jumps: Vec::new(),
        };
        c.expr(l, program.expr(), 0, 0, true);
        c.end_body(Instr::Halt());
        if program.functions().is_empty() {
            return c;
        }
        c.main_len = Some(c.frame_len());
        for (f, facts) in program.functions().iter().zip(program.function_facts()) {
            let first = c.len();
            c.temp_base = LOCALS_BASE + facts.max_locals;
            c.max_temps = 0;
            // The parameters are the body's first locals, in scope.
            c.expr(l, &f.body, f.arity(), 0, true);
            c.end_body(Instr::Ret());
            let frame_len = c.frame_len();
            c.bodies.push(Body { first, frame_len });
            c.names.push(f.name.clone());
        }
        for (at, f, off) in std::mem::take(&mut c.calls) {
            let entry = c.bodies[f].first;
            c.patch(at, Instr::Call(entry, off));
        }
        c
    }

    /// Ends a body with `stop` (`halt` or `ret`), which also replaces each
    /// `jump` that would only reach it: a `then` branch ends by returning.
    fn end_body(&mut self, stop: Instr) {
        let mut stops = vec![self.emit(stop)];
        // Innermost last: a nested `if`'s jump may reach an outer one's.
        for (at, target) in std::mem::take(&mut self.jumps).into_iter().rev() {
            if stops.contains(&target) {
                self.patch(at, stop);
                stops.push(at);
            }
        }
    }

    fn temp(&mut self, height: usize) -> usize {
        self.max_temps = self.max_temps.max(height + 1);
        self.temp_base + height
    }

    /// Emits condition `cond` up to its branch (compare-and-branch for a
    /// `<`, a test of `acc` otherwise).
    pub(crate) fn test<L: Lowering<Isa = I>>(
        &mut self,
        l: &L,
        cond: &Expr,
        scope: usize,
        height: usize,
    ) -> Test<I> {
        if let Some(t) = l.test(self, cond, scope, height) {
            return t;
        }
        if let Expr::Lt(a, b) = cond {
            self.expr(l, a, scope, height, true);
            let t = self.temp(height);
            self.emit(Instr::Push(t));
            self.expr(l, b, scope, height + 1, true);
            Test {
                unless: Box::new(move |to| Instr::JumpIfNotLt(t, to).into()),
                back_if: None,
            }
        } else {
            self.expr(l, cond, scope, height, true);
            Test {
                unless: Box::new(|to| Instr::JumpIfNotPos(to).into()),
                back_if: Some(Box::new(|to| Instr::LoopIfPos(to).into())),
            }
        }
    }

    /// Emits `e`, evaluated with `scope` locals in scope and `height`
    /// temporaries live. Only if `want` is the value left in `acc`.
    pub(crate) fn expr<L: Lowering<Isa = I>>(
        &mut self,
        l: &L,
        e: &Expr,
        scope: usize,
        height: usize,
        want: bool,
    ) {
        if l.lower(self, e, scope, height, want) {
            return;
        }
        match e {
            Expr::Sub(a, b) | Expr::Lt(a, b) => {
                if want {
                    self.expr(l, a, scope, height, true);
                    let t = self.temp(height);
                    self.emit(Instr::Push(t));
                    self.expr(l, b, scope, height + 1, true);
                    self.emit(match e {
                        Expr::Sub(..) => Instr::SubPop(t),
                        _ => Instr::LtPop(t),
                    });
                } else {
                    self.expr(l, a, scope, height, false);
                    self.expr(l, b, scope, height, false);
                }
            }
            // `c; unless c @else; t; jump @end; else: e; end:`, without the
            // jump when `e` emits nothing.
            Expr::If(c, t, f) => {
                let test = self.test(l, c, scope, height);
                let unless = self.emit((test.unless)(usize::MAX));
                self.expr(l, t, scope, height, want);
                let jump = self.emit(Instr::Jump(usize::MAX));
                let other = self.len();
                self.expr(l, f, scope, height, want);
                if self.len() == other {
                    self.pop();
                    let end = self.len();
                    self.patch(unless, (test.unless)(end));
                } else {
                    let end = self.len();
                    self.patch(jump, Instr::Jump(end));
                    self.jumps.push((jump, end));
                    self.patch(unless, (test.unless)(other));
                }
            }
            // The arguments go where the callee reads its parameters: its
            // frame starts `LINK` slots above the live temporaries, the last
            // two in its save slots (from which `call` loads its registers),
            // the others in their home slots; they are evaluated above all
            // that, so a call among them cannot overwrite one.
            Expr::Call(f, args) => {
                let arity = args.len();
                let area = LINK + LOCALS_BASE + arity.saturating_sub(REGS);
                self.temp(height + area - 1);
                let off = self.temp_base + height + LINK;
                for (j, a) in args.iter().enumerate() {
                    let slot = off
                        + if j + REGS >= arity {
                            SAVE_BASE + j % REGS
                        } else {
                            LOCALS_BASE + j
                        };
                    if !l.store(self, a, scope, slot) {
                        self.expr(l, a, scope, height + area, true);
                        self.emit(Instr::Push(slot));
                    }
                }
                let at = self.emit(Instr::Call(usize::MAX, off));
                self.calls.push((at, *f, off));
            }
            Expr::Litr(n) => {
                if want {
                    self.emit(Instr::Lit(*n));
                }
            }
            Expr::Arg(i) => {
                if want {
                    self.emit(Instr::Arg(*i));
                }
            }
            Expr::Get(d) => {
                if want {
                    self.emit(match place(scope, *d) {
                        Place::Reg(k) => Instr::GetReg(k),
                        Place::Slot(s) => Instr::GetSlot(s),
                    });
                }
            }
            Expr::Add(a, b) => {
                if want {
                    self.expr(l, a, scope, height, true);
                    let t = self.temp(height);
                    self.emit(Instr::Push(t));
                    self.expr(l, b, scope, height + 1, true);
                    self.emit(Instr::AddPop(t));
                } else {
                    self.expr(l, a, scope, height, false);
                    self.expr(l, b, scope, height, false);
                }
            }
            Expr::Let(init, body) => {
                self.expr(l, init, scope, height, true);
                let k = scope % REGS;
                // The local evicted from register `k`, if any, is the one
                // at level `scope - REGS`: spill it to its home slot.
                let evicted = scope.checked_sub(REGS).map(|level| LOCALS_BASE + level);
                self.emit(match evicted {
                    Some(home) => Instr::BindSpill(k, home),
                    None => Instr::Bind(k),
                });
                self.expr(l, body, scope + 1, height, want);
                if let Some(home) = evicted {
                    self.emit(Instr::Unbind(k, home));
                }
            }
            Expr::Set(d, v) => {
                self.expr(l, v, scope, height, true);
                self.emit(match place(scope, *d) {
                    Place::Reg(k) => Instr::SetReg(k),
                    Place::Slot(s) => Instr::SetSlot(s),
                });
                if want {
                    self.emit(Instr::Lit(0));
                }
            }
            // Rotated: `c; jump_if_not_pos exit; head: body; c; loop_if_pos
            // head; exit:` runs one dispatch fewer per iteration than
            // `top: c; jump_if_not_pos exit; body; loop top`, but emits the
            // condition twice. A condition that itself contains a loop keeps
            // the plain form, so nested conditions cannot double repeatedly;
            // so does a `<` (compare-and-branch forward only: one op fewer).
            Expr::While(c, body) => {
                let top = self.len();
                let test = self.test(l, c, scope, height);
                let exit = self.emit((test.unless)(usize::MAX));
                let head = self.len();
                self.expr(l, body, scope, height, false);
                match test.back_if {
                    Some(_) if !has_loop(c) => {
                        let again = self.test(l, c, scope, height);
                        let back_if = again.back_if.expect("the same condition, the same test");
                        self.emit(back_if(head));
                    }
                    _ => {
                        self.emit(Instr::Loop(top));
                    }
                }
                let end = self.len();
                self.patch(exit, (test.unless)(end));
                if want {
                    self.emit(Instr::Lit(0));
                }
            }
            Expr::Then(a, b) => {
                self.expr(l, a, scope, height, false);
                self.expr(l, b, scope, height, want);
            }
        }
    }
}

/// Compiles `program` with hook `l` and verifies it for backend `B`.
pub(crate) fn compile<L: Lowering, B: Backend>(
    program: &Program,
    l: &L,
) -> Result<Code<L::Isa, B>, CompileError>
where
    <L::Isa as Isa>::Instr: From<Instr>,
{
    Code::new(Compiler::compile(program, l), program.arg_count())
}

threaded_engine! {
    TapeContinuations = "tape_continuations", Original, Code<TapeIsa, Stable>, compile(|_| Plain);
    "direct threading: each op's handler tail-calls the next, acc + 2 local registers";
    conformance: extra: [CONTINUATION_TRICKY], also: [deep_programs, long_straight_line, far_assignments]
}

/// Verifies `code` as if a compiler had emitted it (tests of the verifier).
#[cfg(test)]
pub(crate) fn verify<I: Isa<Word = Word, Instr: From<Instr>, Kind: From<Kind>>>(
    code: &[I::Instr],
    frame_len: usize,
    arg_count: usize,
) -> Result<(), String> {
    let c = Compiler::<I> {
        code: Emitter::of(code),
        temp_base: frame_len,
        max_temps: 0,
        main_len: None,
        bodies: Vec::new(),
        calls: Vec::new(),
        names: Vec::new(),
        jumps: Vec::new(),
    };
    Code::<I, Stable>::new(c, arg_count)
        .map(|_| ())
        .map_err(|e| e.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Technique;

    #[test]
    fn ops_read_back_as_their_instructions() {
        use Instr::*;
        let all = [
            Lit(-7),
            Lit(i64::MIN),
            Arg(3),
            GetReg(1),
            GetSlot(9),
            SetReg(0),
            SetSlot(4),
            Push(5),
            AddPop(5),
            Bind(1),
            BindSpill(0, 2),
            Unbind(1, 3),
            JumpIfNotPos(16),
            Loop(2),
            LoopIfPos(0),
            Halt(),
            Lit(1),
        ];
        crate::engines::threaded::tests::reads_back::<TapeIsa>(&all);
    }

    #[test]
    fn verify_rejects_every_operand_out_of_range() {
        use Instr::*;
        let ok = [GetReg(1), GetSlot(9), Arg(0), JumpIfNotPos(4), Halt()];
        assert!(verify::<TapeIsa>(&ok, 10, 1).is_ok());
        let bad = [
            GetReg(2),
            SetReg(300),
            BindSpill(2, 3),
            Unbind(0, 10),
            GetSlot(10),
            Push(usize::MAX),
            Arg(1),
            JumpIfNotPos(usize::MAX),
            JumpIfNotPos(0),
            JumpIfNotPos(1),
            Loop(5),
        ];
        for instr in bad {
            assert!(
                verify::<TapeIsa>(&[Lit(0), instr, Halt()], 10, 1).is_err(),
                "{instr}"
            );
        }
        assert!(verify::<TapeIsa>(&[Lit(0)], 10, 1).is_err(), "no halt");
        assert!(verify::<TapeIsa>(&[Halt()], 1, 1).is_err(), "no save slots");
    }

    #[test]
    fn verify_rejects_a_jump_into_the_middle_of_an_op() {
        use Instr::*;
        // A hand-made tape whose jump lands on an operand word.
        let mut e = Emitter::<TapeIsa>::with_capacity(3, 2);
        e.emit(JumpIfNotPos(2));
        e.emit(Lit(5));
        e.emit(Halt());
        e.set_word(1, 24); // 1.5 ops forward
        let c = Compiler {
            code: e,
            temp_base: 10,
            max_temps: 0,
            main_len: None,
            bodies: Vec::new(),
            calls: Vec::new(),
            names: Vec::new(),
            jumps: Vec::new(),
        };
        assert!(Code::<TapeIsa, Stable>::new(c, 0).is_err());
    }

    #[test]
    fn show_lists_every_function_and_calls_are_one_op() {
        let src = "fn fib(n) { if n < 2 { n } else { fib(n - 1) + fib(n - 2) } } fib(arg(0))";
        let p = crate::front::compile_source("s", src).unwrap();
        let code = crate::engine::engine(TapeContinuations::NAME)
            .unwrap()
            .compile(&p)
            .unwrap();
        let text = code.show();
        for op in ["; fn fib", "call @", "jump_if_not_lt [", "sub [", "ret"] {
            assert!(text.contains(op), "{op}\n{text}");
        }
        // The then-branch returns instead of jumping to the `ret`.
        assert!(!text.contains("jump @"), "{text}");
        assert_eq!(code.execute(&[20]), Ok(6765));
    }

    #[test]
    fn verify_rejects_calls_and_returns_out_of_place() {
        use Instr::*;
        let verify_bodies = |code: &[Instr], fn_at: usize| {
            let e = Emitter::<TapeIsa>::of(code);
            let bodies = [
                Body {
                    first: 0,
                    frame_len: 8,
                },
                Body {
                    first: fn_at,
                    frame_len: 4,
                },
            ];
            let stops = |k| k == Kind::Halt() || k == Kind::Ret();
            Tape::<TapeIsa, Stable>::with_bodies(e, &bodies, 1, LOCALS_BASE, stops).map(|_| ())
        };
        assert!(verify_bodies(&[Call(2, 5), Halt(), Lit(1), Ret()], 2).is_ok());
        for bad in [
            // the frame offset below the link words or past the frame
            [Call(2, 2), Halt(), Lit(1), Ret()],
            [Call(2, 9), Halt(), Lit(1), Ret()],
            // a target that is not a function's first op
            [Call(3, 5), Halt(), Lit(1), Ret()],
            // `ret` in main
            [Ret(), Halt(), Lit(1), Ret()],
        ] {
            assert!(verify_bodies(&bad, 2).is_err(), "{:?}", bad);
        }
    }

    #[test]
    fn show_lists_the_tape() {
        let p =
            crate::front::compile_source("s", "let n = arg(0); while n { n = n + -1 }; n").unwrap();
        let code = crate::engine::engine(TapeContinuations::NAME)
            .unwrap()
            .compile(&p)
            .unwrap();
        let text = code.show();
        assert!(
            text.contains("loop_if_pos @") && text.contains("jump_if_not_pos"),
            "{text}"
        );
    }
}
