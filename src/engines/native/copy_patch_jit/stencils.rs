//! The stencils of `copy_patch_jit`, in ordinary Rust. This file is not a
//! module of the crate: `build.rs` compiles it on its own (`no_std`,
//! `--emit=obj`, opt-level 3, static relocation model, small code model)
//! and turns the object file into the table the engine copies from.
//!
//! Every stencil is an `extern "C"` function with the same signature: the
//! accumulator, the frame pointer and four register locals, which the
//! System V convention passes in `rdi`, `rsi`, `rdx`, `rcx`, `r8`, `r9`.
//! It ends by tail-calling `CONTINUE` with the same signature, which LLVM
//! compiles to a `jmp` with everything still in those registers; the build
//! removes that `jmp` when it is the last instruction, so the next stencil
//! copied after this one runs by falling through.
//!
//! Holes are what the code uses but cannot know: the addresses of the
//! `extern` symbols below. An operand is the *address* of an extern static
//! (`IMM`, `DST`, ...), so the compiler emits it as an immediate or a
//! displacement with a relocation that the engine overwrites with the
//! value; a jump target is an extern function (`TARGET`, `CALLEE`, `FAIL`),
//! so it becomes a `jmp`/`jcc`/`call` with a 32-bit relative relocation.
//!
//! Frame layout (64-bit words): `[0]` free, `[1]` the run's argument
//! pointer (in a function's frame only when some function reads
//! `arg(i)`), then the memory slots (locals past the four registers,
//! temporaries, outgoing call arguments). Every function's frame has the
//! same size, so a frame's offset in the frame stack says how many calls
//! are active.

#![no_std]
#![allow(non_camel_case_types, clippy::missing_safety_doc)]
// `RESUME` is `CONTINUE` seen with dead registers.
#![allow(clashing_extern_declarations)]

use core::mem::MaybeUninit;

/// What a compiled function returns (in `rax:rdx`): its value and its
/// own frame, from which the caller finds its frame again; a null frame
/// when a call past the depth limit stopped the run.
#[repr(C)]
pub struct Out {
    value: i64,
    frame: Frame,
}

type Frame = *mut i64;

/// A register that holds nothing anyone will read: passing one costs no
/// instruction and makes rustc keep nothing for it.
type Dead = MaybeUninit<i64>;
const DEAD: Dead = MaybeUninit::uninit();

unsafe extern "C" {
    /// The next stencil (the build resolves it: the stencil's end).
    fn CONTINUE(acc: i64, frame: Frame, r0: i64, r1: i64, r2: i64, r3: i64) -> Out;
    /// A branch's destination (a loop's top or test, an `if`'s else or end).
    fn TARGET(acc: i64, frame: Frame, r0: i64, r1: i64, r2: i64, r3: i64) -> Out;
    /// The next stencil after a call, which finds only the accumulator
    /// and the frame set (the caller reloads the registers it needs).
    #[link_name = "CONTINUE"]
    fn RESUME(acc: i64, frame: Frame, r0: Dead, r1: Dead, r2: Dead, r3: Dead) -> Out;
    /// The called function's first stencil: only its parameters are set.
    fn CALLEE(acc: Dead, frame: Frame, r0: Dead, r1: Dead, r2: Dead, r3: Dead) -> Out;
    /// The stub that returns "call depth exceeded" (it reads nothing).
    fn FAIL(acc: i64, frame: Frame, r0: Dead, r1: Dead, r2: Dead, r3: Dead) -> Out;
    /// A literal that fits the instruction's 32-bit field.
    safe static IMM: u8;
    /// The low and high halves of any other literal.
    safe static LO: u8;
    safe static HI: u8;
    /// Byte offsets in the frame: a memory operand read, and one written.
    safe static SRC: u8;
    safe static DST: u8;
    /// Byte offset of a run argument from the argument pointer.
    safe static ARG: u8;
    /// Byte offset of a call's first outgoing argument in the frame.
    safe static ARGS: u8;
    /// The caller's frame size in bytes: where the callee's frame starts;
    /// and its negation, from the callee's frame back to the caller's.
    safe static FRAME: u8;
    safe static BACK: u8;
    /// The frame stack starts at a multiple of `MASK + 1`, which exceeds
    /// its size: a frame's offset in it is its address `& MASK`. A callee
    /// frame past offset `LIMIT` would be the call past the depth limit.
    safe static MASK: u8;
    safe static LIMIT: u8;
}

/// A hole's value: the address the engine patched in.
macro_rules! hole {
    ($symbol:ident) => {
        (&raw const $symbol) as usize
    };
}

/// Words before the memory slots.
const HEADER: usize = 2;

/// The machine state a stencil reads and passes on (all in registers).
struct S {
    acc: i64,
    frame: Frame,
    r: [i64; 4],
}

/// Where a source operand lives.
trait Src {
    unsafe fn read(s: &S) -> i64;
}

/// Where a destination lives.
trait Dst {
    unsafe fn load(s: &S) -> i64;
    unsafe fn store(s: &mut S, v: i64);
}

/// The operand locations, named as in the stencils' names.
mod loc {
    pub struct acc;
    pub struct r0;
    pub struct r1;
    pub struct r2;
    pub struct r3;
    /// A memory slot (`SRC` when read as a source, `DST` as a destination).
    pub struct m;
    /// A literal in the instruction (`IMM`).
    pub struct i;
    /// A literal of any width (`LO`, `HI`).
    pub struct w;
    /// A run argument (`ARG`).
    pub struct a;
}
use loc::{a, i, m, w};

impl Src for loc::acc {
    unsafe fn read(s: &S) -> i64 {
        s.acc
    }
}
impl Dst for loc::acc {
    unsafe fn load(s: &S) -> i64 {
        s.acc
    }
    unsafe fn store(s: &mut S, v: i64) {
        s.acc = v
    }
}

macro_rules! register {
    ($($r:ident $k:literal),*) => {$(
        impl Src for loc::$r {
            unsafe fn read(s: &S) -> i64 {
                s.r[$k]
            }
        }
        impl Dst for loc::$r {
            unsafe fn load(s: &S) -> i64 {
                s.r[$k]
            }
            unsafe fn store(s: &mut S, v: i64) {
                s.r[$k] = v
            }
        }
    )*};
}
register!(r0 0, r1 1, r2 2, r3 3);

impl Src for m {
    unsafe fn read(s: &S) -> i64 {
        unsafe { *s.frame.byte_add(hole!(SRC)) }
    }
}
impl Dst for m {
    unsafe fn load(s: &S) -> i64 {
        unsafe { *s.frame.byte_add(hole!(DST)) }
    }
    unsafe fn store(s: &mut S, v: i64) {
        unsafe { *s.frame.byte_add(hole!(DST)) = v }
    }
}
impl Src for i {
    unsafe fn read(_: &S) -> i64 {
        hole!(IMM) as i64
    }
}
impl Src for w {
    unsafe fn read(_: &S) -> i64 {
        (hole!(LO) as u32 as u64 | (hole!(HI) as u32 as u64) << 32) as i64
    }
}
impl Src for a {
    unsafe fn read(s: &S) -> i64 {
        unsafe {
            let args = *s.frame.add(1) as *const i64;
            *args.byte_add(hole!(ARG))
        }
    }
}

/// Defines the stencil `$name`: `$body` updates the state, then control
/// continues with the next stencil.
macro_rules! stencil {
    ($name:expr, |$s:ident| $body:expr) => {
        const _: () = {
            #[unsafe(export_name = $name)]
            unsafe extern "C" fn stencil(
                acc: i64,
                frame: Frame,
                r0: i64,
                r1: i64,
                r2: i64,
                r3: i64,
            ) -> Out {
                let mut $s = S {
                    acc,
                    frame,
                    r: [r0, r1, r2, r3],
                };
                #[allow(unused_unsafe)]
                unsafe {
                    $body;
                    CONTINUE($s.acc, $s.frame, $s.r[0], $s.r[1], $s.r[2], $s.r[3])
                }
            }
        };
    };
}

/// `op_dst_src` for every destination and source.
macro_rules! two_operand {
    ($op:ident, [$($d:ident)*], $srcs:tt, |$s:ident, $x:ident, $y:ident| $f:expr) => {
        $( two_operand!(@row $op, $d, $srcs, |$s, $x, $y| $f); )*
    };
    (@row $op:ident, $d:ident, [$($src:ident)*], |$s:ident, $x:ident, $y:ident| $f:expr) => {
        $(
            stencil!(
                concat!(stringify!($op), "_", stringify!($d), "_", stringify!($src)),
                |$s| {
                    let $x = <loc::$d as Dst>::load(&$s);
                    let $y = <loc::$src as Src>::read(&$s);
                    <loc::$d as Dst>::store(&mut $s, $f)
                }
            );
        )*
    };
}

two_operand!(mov, [acc r0 r1 r2 r3 m], [acc r0 r1 r2 r3 m i w a], |s, _x, y| y);
two_operand!(add, [acc r0 r1 r2 r3 m], [acc r0 r1 r2 r3 m i w a], |s, x, y| x.wrapping_add(y));
two_operand!(sub, [acc], [acc r0 r1 r2 r3 m i w a], |s, x, y| x.wrapping_sub(y));
two_operand!(lt, [acc], [acc r0 r1 r2 r3 m i w a], |s, x, y| i64::from(x < y));
// The right operand is in the accumulator, the left one waited elsewhere.
two_operand!(rsub, [acc], [acc r0 r1 r2 r3 m i w a], |s, x, y| y.wrapping_sub(x));
two_operand!(rlt, [acc], [acc r0 r1 r2 r3 m i w a], |s, x, y| i64::from(y < x));

/// `loop_c` (to `TARGET` if `c > 0`) and `skip_c` (to `TARGET` if not).
macro_rules! branches {
    ($($c:ident)*) => {$(
        const _: () = {
            #[unsafe(export_name = concat!("loop_", stringify!($c)))]
            unsafe extern "C" fn stencil(
                acc: i64, frame: Frame, r0: i64, r1: i64, r2: i64, r3: i64,
            ) -> Out {
                let s = S { acc, frame, r: [r0, r1, r2, r3] };
                unsafe {
                    if <loc::$c as Src>::read(&s) > 0 {
                        TARGET(acc, frame, r0, r1, r2, r3)
                    } else {
                        CONTINUE(acc, frame, r0, r1, r2, r3)
                    }
                }
            }
        };
        const _: () = {
            #[unsafe(export_name = concat!("skip_", stringify!($c)))]
            unsafe extern "C" fn stencil(
                acc: i64, frame: Frame, r0: i64, r1: i64, r2: i64, r3: i64,
            ) -> Out {
                let s = S { acc, frame, r: [r0, r1, r2, r3] };
                // Written as the taken branch first, so that LLVM makes it
                // the `jle` and the fall-through the cut `jmp CONTINUE`.
                unsafe {
                    if <loc::$c as Src>::read(&s) <= 0 {
                        TARGET(acc, frame, r0, r1, r2, r3)
                    } else {
                        CONTINUE(acc, frame, r0, r1, r2, r3)
                    }
                }
            }
        };
    )*};
}
branches!(acc r0 r1 r2 r3 m);

/// `skip_lt_x_y` (to `TARGET` unless `x < y`) and `loop_lt_x_y` (to
/// `TARGET` if `x < y`): a `<` that decides a branch is a compare and a
/// conditional jump, never a 0 or 1. The left operand is read as a
/// destination is (a memory slot at `DST`), the right as a source.
macro_rules! compare_branches {
    ([$($x:ident)*], $ys:tt) => {
        $( compare_branches!(@row $x, $ys); )*
    };
    (@row $x:ident, [$($y:ident)*]) => {$(
        const _: () = {
            #[unsafe(export_name = concat!("skip_lt_", stringify!($x), "_", stringify!($y)))]
            unsafe extern "C" fn stencil(
                acc: i64, frame: Frame, r0: i64, r1: i64, r2: i64, r3: i64,
            ) -> Out {
                let s = S { acc, frame, r: [r0, r1, r2, r3] };
                // The taken branch first, as in `skip_c`.
                unsafe {
                    if <loc::$x as Dst>::load(&s) >= <loc::$y as Src>::read(&s) {
                        TARGET(acc, frame, r0, r1, r2, r3)
                    } else {
                        CONTINUE(acc, frame, r0, r1, r2, r3)
                    }
                }
            }
        };
        const _: () = {
            #[unsafe(export_name = concat!("loop_lt_", stringify!($x), "_", stringify!($y)))]
            unsafe extern "C" fn stencil(
                acc: i64, frame: Frame, r0: i64, r1: i64, r2: i64, r3: i64,
            ) -> Out {
                let s = S { acc, frame, r: [r0, r1, r2, r3] };
                unsafe {
                    if <loc::$x as Dst>::load(&s) < <loc::$y as Src>::read(&s) {
                        TARGET(acc, frame, r0, r1, r2, r3)
                    } else {
                        CONTINUE(acc, frame, r0, r1, r2, r3)
                    }
                }
            }
        };
    )*};
}
compare_branches!([acc r0 r1 r2 r3 m], [acc r0 r1 r2 r3 m i w a]);

#[unsafe(no_mangle)]
unsafe extern "C" fn jump(acc: i64, frame: Frame, r0: i64, r1: i64, r2: i64, r3: i64) -> Out {
    unsafe { TARGET(acc, frame, r0, r1, r2, r3) }
}

/// The end of a function: its value is the accumulator; its frame tells
/// the caller where its own frame is.
#[unsafe(no_mangle)]
unsafe extern "C" fn ret(acc: i64, frame: Frame, _: i64, _: i64, _: i64, _: i64) -> Out {
    Out { value: acc, frame }
}

/// Returns "call depth exceeded"; every active call passes it on.
#[unsafe(no_mangle)]
unsafe extern "C" fn fail(_: i64, _: Frame, _: i64, _: i64, _: i64, _: i64) -> Out {
    Out {
        value: 0,
        frame: core::ptr::null_mut(),
    }
}

/// `call_N`: calls `CALLEE` with `N` arguments. The first four are in
/// the registers already (the pass moved them there), the others at
/// `ARGS` in this frame but the last, which is in the accumulator. The
/// callee's frame starts `FRAME` bytes into this one; its parameters past
/// the fourth go to its memory slots. A native `call`, and nothing else
/// on the native stack: every register but the value and the frame is
/// dead after it (the pass spilled the live register locals before and
/// reloads them after), and the frame is the callee's, returned with its
/// value, moved `BACK`. So rustc saves no register; the native stack
/// holds the return address and an alignment word.
///
/// `call_N_a` also copies the argument pointer into the callee's header,
/// for programs whose functions read `arg(i)`; `call_N` leaves it out.
macro_rules! calls {
    ($($n:literal)*) => {$(
        calls!(@one $n, concat!("call_", stringify!($n)), false);
        calls!(@one $n, concat!("call_", stringify!($n), "_a"), true);
    )*};
    (@one $n:literal, $name:expr, $arguments:expr) => {
        const _: () = {
            #[unsafe(export_name = $name)]
            #[allow(unused_comparisons, unused_variables)]
            unsafe extern "C" fn stencil(
                acc: i64, frame: Frame, r0: i64, r1: i64, r2: i64, r3: i64,
            ) -> Out {
                unsafe {
                    let callee = frame.byte_add(hole!(FRAME));
                    if callee as usize & hole!(MASK) > hole!(LIMIT) {
                        return FAIL(acc, frame, DEAD, DEAD, DEAD, DEAD);
                    }
                    let args = frame.byte_add(hole!(ARGS)) as *const i64;
                    if $arguments {
                        *callee.add(1) = *frame.add(1);
                    }
                    let r = [r0, r1, r2, r3];
                    let mut p = [DEAD; 4];
                    let mut k = 0;
                    while k < $n {
                        if k < 4 {
                            p[k] = MaybeUninit::new(r[k]);
                        } else {
                            let v = if k + 1 == $n { acc } else { *args.add(k) };
                            *callee.add(HEADER + k - 4) = v;
                        }
                        k += 1;
                    }
                    let out = CALLEE(DEAD, callee, p[0], p[1], p[2], p[3]);
                    // Failure or not, the same registers: rustc makes this
                    // `jne CONTINUE; jmp FAIL`, which the build turns into
                    // `je FAIL` and the fall-through.
                    let frame = out.frame.wrapping_byte_add(hole!(BACK));
                    if !out.frame.is_null() {
                        return RESUME(out.value, frame, DEAD, DEAD, DEAD, DEAD);
                    }
                    FAIL(out.value, frame, DEAD, DEAD, DEAD, DEAD)
                }
            }
        };
    };
}
calls!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
