//! `copy_patch_jit` — a copy-and-patch JIT: its templates are written in
//! Rust and compiled by rustc, then copied and patched.
//!
//! **Stencils** (`stencils.rs`) are ordinary Rust functions, one per
//! operation and operand location (`add_r1_m`: `+=` into register local 1
//! from a memory slot; `loop_acc`; `call_2`), all with one signature:
//! `extern "C" fn(acc, frame, r0, r1, r2, r3)`, which System V passes in
//! `rdi rsi rdx rcx r8 r9`. `build.rs` compiles that file with the same
//! rustc cargo uses (`--emit=obj`, opt-level 3, `no_std`, panic=abort,
//! static relocation model, small code model) and reads the object file
//! with the `object` crate into a table of bytes and holes, so a compile
//! never parses an object file.
//!
//! **Holes** are what a stencil cannot know: it takes the *address* of an
//! `extern` static as its operand (`IMM`, a literal; `SRC`/`DST`, frame
//! offsets; `ARG`), so rustc leaves a 32-bit immediate or displacement with
//! a relocation, which the engine overwrites with the value. A literal that
//! the field cannot hold takes the stencil's `w` form (two halves).
//! **Continuation** is a tail call to `extern fn CONTINUE` with the same
//! arguments, which rustc emits as a `jmp rel32` with everything still in
//! its register; the build cuts that `jmp` when it ends the stencil (the
//! next stencil is copied right after it, so control falls through) and
//! resolves any other jump to `CONTINUE` to the stencil's end; a stencil
//! that rustc ends with `jcc CONTINUE; jmp X` becomes `jncc X`, and the
//! next stencil follows. Branches call `TARGET` (a `jg`/`jmp rel32`
//! patched to a label), calls `CALLEE`.
//!
//! **Compile** walks each body once in evaluation order, as `template_jit`
//! does, and copies the stencil each node needs into the buffer, patching
//! its operand holes; jump targets, callee entries and frame sizes are
//! patched once the whole program is copied, then the code goes into
//! `template_jit`'s W^X memory. The buffers (code, labels, pending holes)
//! are kept per thread from one compile to the next, so a compile
//! allocates only what the result keeps. **Values** end in the
//! accumulator (`rdi`) unless a leaf is read where it lives. **Locals**
//! have fixed places: four slots (locals, then temporaries) are the
//! stencils' register arguments, the rest frame words `[rsi + 8k]`. By
//! scope depth, as in `template_jit`, except in a main with more than
//! four locals, where the four most used (each use weighted by 16 per
//! enclosing loop, and by 4 when the value lives from one iteration to
//! the next) take the registers: with four registers, not eleven, the
//! inner loop's counters must be among them. That choice is one extra
//! walk over main into a table on the native stack, and a top-four pick.
//! **Control**: `While` is `jump test; top: body; test: loop_c top`, a
//! native loop; `If` is `skip_c else; then; jump end; else: …; end:`. A
//! `<` that decides a branch and whose right operand is a leaf is one
//! compare and one conditional jump (`skip_lt_x_y`, `loop_lt_x_y`, by
//! both operands' places), as in `template_jit`; only a `<` used as a
//! value makes a 0 or 1. Operand-location variants besides the places
//! themselves: `a - n` with a literal `n` is an `add` of `-n` (so
//! `x = x - n` is made in place, like `x = x + leaf`), and a literal
//! that a 32-bit field cannot hold takes the `w` form.
//!
//! **Calls**: a frame is a run of words in the engine's frame stack
//! (`[0]` free, `[1]` the argument pointer, then the memory slots), the
//! callee's right after its caller's; the argument pointer is copied into
//! a callee's frame (`call_N_a` rather than `call_N`) only in programs
//! where some function reads `arg(i)`, which one walk over the functions
//! finds. Every function's frame has the largest one's size, and the
//! frame stack starts at a multiple of a power of two above its size, so
//! a frame's address `&` a patched mask is its offset, and the offset
//! says how many calls are active: the depth check is an `and` and a
//! compare with a patched limit, with no count in memory. The arguments run left to right
//! into memory slots of the caller's frame (the last into the
//! accumulator), except one of the first four that is a local already in
//! its parameter's register with nothing after it that could store to a
//! local: it stays where it is. Then `mov` stencils store the register
//! slots that hold a value (the locals in scope and the temporaries
//! holding an operand, not a local the call's value will overwrite) to
//! the caller's frame and move the first four arguments into the
//! registers, and `call_N` checks the depth and makes a native `call` to
//! the callee's first stencil. It passes
//! the registers the callee does not read as `MaybeUninit` and treats
//! every register but the value as dead afterwards, so rustc saves
//! nothing around the call: the native stack holds the return address
//! and one alignment word per active call (`native_stack` declares twice
//! that). The callee returns its value and its own frame in `rax:rdx`;
//! the caller's frame is that less a patched constant, and `mov` stencils
//! reload the saved registers. A call past the limit jumps to the `fail`
//! stub, which returns a null frame; every active `call_N` passes it on
//! with one conditional jump. A native `call`/`ret` pair per guest call
//! keeps the return-address predictor right, which a jump through a
//! frame word would not.
//!
//! Trade-off against `template_jit`'s hand-written templates: nobody
//! writes machine code — a stencil is a line of Rust and LLVM chooses the
//! instructions (`lea` for an add, a conditional tail call for a loop) —
//! and adding an operation or an operand location is a line in
//! `stencils.rs`. What it gives up: only the six argument registers carry
//! state between stencils (four locals against `template_jit`'s eleven),
//! values pass through the accumulator between stencils where a template
//! would use any register, the stencils are fixed at build time (no
//! choice of encoding by value beyond the `i`/`w` forms), and a call pays
//! for what the convention does not know: a store and a reload per live
//! register local, the frame coming back with the value, and frames as
//! large as the largest function's (a frame stack up to twice as large,
//! for its alignment). Compile time is the same kind of work: one pass, a
//! `memcpy` and a few stores per node (and the register walk in a main
//! with many locals).
//! Its `unsafe` rests on the build's checks (every relocation is a known
//! hole) and on the pass: the code reads arguments below `arg_count` and
//! frame words below each body's frame size, in a frame stack sized and
//! aligned for `MAX_CALLS` active calls.

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod lower;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod patch;

use crate::engine::{CallDepthExceeded, CompileError, technique};
use crate::front::program::{Level, MAX_CALLS, Program};

technique! {
    CopyPatchJit = "copy_patch_jit", Beyond, PatchedCode;
    "copy-and-patch JIT: stencils written in Rust, compiled by rustc at build time, copied and patched";
    compile: compile, try_execute: run, show: show;
    const LEVEL: Level = Level::Two;

    fn supports(_program: &Program) -> Result<(), String> {
        if cfg!(all(target_arch = "x86_64", target_os = "linux")) {
            Ok(())
        } else {
            Err("copy_patch_jit's stencils are built for x86-64 Linux only".into())
        }
    }

    fn native_stack(program: &Program) -> usize {
        if program.functions().is_empty() {
            0
        } else {
            MAX_CALLS * NATIVE_CALL_BYTES + RUN_OVERHEAD
        }
    }
}

/// Native stack per active guest call: `call_N`'s frame, measured at 16
/// bytes (a return address and an alignment word; the stencils are built
/// at opt-level 3 in every profile), doubled for a margin.
const NATIVE_CALL_BYTES: usize = 32;
/// The run's own frames and the thread's start.
const RUN_OVERHEAD: usize = 64 * 1024;

/// What a compiled body returns (`rax:rdx`): its value and its frame, or
/// a null frame when a call past the depth limit stopped the run.
#[repr(C)]
struct Out {
    value: i64,
    frame: *mut i64,
}

/// Every stencil's signature, and so the entry's: accumulator, frame,
/// four register slots.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
type Entry = unsafe extern "C" fn(i64, *mut i64, i64, i64, i64, i64) -> Out;

/// A compiled program: its code in executable memory, and what `show`
/// and the frame stack need.
pub struct PatchedCode {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    memory: super::template_jit::memory::CodeMemory,
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    entry: Entry,
    /// Words of frame stack a run needs: main's frame, and room for
    /// `MAX_CALLS` of the largest function frame when there are calls.
    stack_words: usize,
    /// What the frame stack's start must be a multiple of, in bytes (0
    /// without functions): the depth check reads a frame's offset from
    /// its address.
    align: usize,
    /// For `show`: where each copied stencil starts and its name, where
    /// each body starts (main last) and the failure stub, the functions'
    /// names.
    parts: Vec<(usize, &'static str)>,
    entries: Vec<usize>,
    fail: usize,
    names: Vec<String>,
}

thread_local! {
    /// The frame stack of runs too large for `SMALL_STACK`: one per
    /// thread, grown to the largest run's and kept (code never leaves its
    /// thread, and a run never starts another).
    static STACK: std::cell::RefCell<Vec<i64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Frame stacks up to this many words live on the Rust stack.
const SMALL_STACK: usize = 32;

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
thread_local! {
    /// The compile buffers, kept from one compile to the next.
    static PATCHER: std::cell::RefCell<patch::Patcher> =
        std::cell::RefCell::new(patch::Patcher::default());
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn compile(program: &Program) -> Result<PatchedCode, CompileError> {
    PATCHER.with_borrow_mut(|p| {
        let lowered = lower::lower(p, program)
            .map_err(|lower::TooFar(what)| CompileError(format!("copy_patch_jit: {what}")))?;
        let memory = super::template_jit::memory::CodeMemory::new(&p.code)
            .map_err(|e| CompileError(format!("copy_patch_jit: no executable memory: {e}")))?;
        let main = program.functions().len();
        // SAFETY: `lower` put main's body at `entries[main]`: stencils that
        // follow the `Entry` signature and convention, ending in `ret`;
        // `memory` keeps it mapped executable while the `PatchedCode` lives.
        let entry =
            unsafe { std::mem::transmute::<*const u8, Entry>(memory.entry().add(p.entries[main])) };
        let calls = if main == 0 {
            0
        } else {
            MAX_CALLS * lowered.function_words
        };
        Ok(PatchedCode {
            memory,
            entry,
            stack_words: lowered.main_words + calls,
            align: lowered.align,
            parts: p.parts.clone(),
            entries: p.entries.clone(),
            fail: p.fail,
            names: program.functions().iter().map(|f| f.name.clone()).collect(),
        })
    })
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn compile(_program: &Program) -> Result<PatchedCode, CompileError> {
    Err(CompileError(
        "copy_patch_jit's stencils are built for x86-64 Linux only".into(),
    ))
}

/// Runs main with a frame stack of `stack_words` words.
///
/// # Safety
///
/// `args` covers the program's argument count (`Technique::execute`'s contract).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
unsafe fn run(code: &PatchedCode, args: &[i64]) -> Result<i64, CallDepthExceeded> {
    if code.stack_words <= SMALL_STACK && code.align == 0 {
        let mut small = [0i64; SMALL_STACK];
        // SAFETY: `small` holds `stack_words` words; our caller's promise;
        // without functions no depth check reads the stack's alignment.
        unsafe { run_on(code, args, &mut small) }
    } else {
        STACK.with_borrow_mut(|stack| {
            // Room to start the frame stack at a multiple of `align`.
            let words = code.stack_words + code.align / 8;
            if stack.len() < words {
                stack.resize(words, 0);
            }
            let skip = match code.align {
                0 => 0,
                align => stack.as_ptr().align_offset(align),
            };
            // SAFETY: as above, with `stack_words` words in `stack` after
            // `skip`, where the frame stack starts at a multiple of `align`
            // (`align_offset` of an `i64` pointer to a power of two is at
            // most `align / 8` words).
            unsafe { run_on(code, args, &mut stack[skip..skip + code.stack_words]) }
        })
    }
}

/// Runs main with `stack` as the frame stack.
///
/// # Safety
///
/// `args` covers the program's argument count, and `stack` holds at
/// least `code.stack_words` words.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
unsafe fn run_on(
    code: &PatchedCode,
    args: &[i64],
    stack: &mut [i64],
) -> Result<i64, CallDepthExceeded> {
    stack[1] = args.as_ptr() as i64;
    // SAFETY: the code reads `args[i]` only for `i < arg_count`, which our
    // caller guarantees `args` holds; each body addresses only its own
    // frame's words, and a call's frame starts after its caller's and is
    // made only while its offset from the start of `stack` (a multiple of
    // `align`, above every offset) leaves room for a whole function frame
    // before `stack_words` words, that is while fewer than `MAX_CALLS`
    // calls are active; the stencils keep what the System V convention
    // asks (rustc compiled them as such functions).
    let out = unsafe { (code.entry)(0, stack.as_mut_ptr(), 0, 0, 0, 0) };
    if out.frame.is_null() {
        Err(CallDepthExceeded)
    } else {
        Ok(out.value)
    }
}

/// Never reached: `compile` never succeeds off x86-64 Linux.
///
/// # Safety
///
/// As on x86-64.
#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
unsafe fn run(_code: &PatchedCode, _args: &[i64]) -> Result<i64, CallDepthExceeded> {
    unreachable!("compile never succeeds here")
}

fn show(code: &PatchedCode) -> String {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    let bytes = code.memory.bytes();
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    let bytes: &[u8] = &[];
    let bodies: Vec<String> = code
        .names
        .iter()
        .map(|n| format!("fn {n}"))
        .chain(["main".to_string()])
        .collect();
    let stencils: Vec<String> = code.parts.iter().map(|(_, n)| format!("  {n}")).collect();
    // A body's name, then the failure stub's, before its first stencil's.
    let marks: Vec<(usize, &str)> = (code.entries.iter().zip(&bodies))
        .map(|(&at, n)| (at, n.as_str()))
        .chain([(code.fail, "failure stub")])
        .chain(
            code.parts
                .iter()
                .zip(&stencils)
                .map(|(&(at, _), n)| (at, n.as_str())),
        )
        .collect();
    let listing = super::disassembly::disassemble(bytes, &marks).unwrap_or_default();
    format!(
        "; {} bytes of x86-64 code copied from {} stencils (each named above its code)\n\
         ; rdi = accumulator, rsi = frame, rdx rcx r8 r9 = r0-r3 (four slots: locals,\n\
         ; then temporaries); m = a slot at [rsi+16+8k]; [rsi+8] -> arguments;\n\
         ; a body returns its value in rax and its frame in rdx (null: depth exceeded)\n{listing}",
        bytes.len(),
        code.parts.len(),
    )
}

#[cfg(all(test, target_arch = "x86_64", target_os = "linux"))]
mod tests {
    use super::*;
    use crate::engine::Technique;

    crate::engines::conformance::conformance_tests!(
        CopyPatchJit,
        extra: [REGISTER_TRICKY, CONTINUATION_TRICKY, LITERAL_OPERANDS],
        also: [deep_programs, long_straight_line, far_assignments],
    );

    fn compiled(src: &str) -> PatchedCode {
        CopyPatchJit::compile(&crate::front::compile_source("t", src).unwrap()).unwrap()
    }

    #[test]
    fn sum_loop_is_the_stencils_own_instructions() {
        let shown = crate::engines::conformance::workload_listing::<CopyPatchJit>("sum");
        // total += arg(1) (through the argument pointer); count += -1
        // (a `lea`, as LLVM chose); the loop test is a conditional jump.
        for line in ["  add_r0_a:", "  add_r1_i:", "  loop_r1:", "jg ", "main:"] {
            assert!(shown.contains(line), "{line} in\n{shown}");
        }
        // No stencil's continuation jump is left: one `jmp` (to the test).
        assert_eq!(shown.matches("jmp ").count(), 1, "{shown}");
    }

    #[test]
    fn listing_names_every_function_and_stencil() {
        let shown = crate::engines::conformance::workload_listing::<CopyPatchJit>("fib_recursive");
        for line in [
            "fn fib:",
            "main:",
            "  call_1:",
            "  ret:",
            "failure stub:",
            "call ",
        ] {
            assert!(shown.contains(line), "{line} in\n{shown}");
        }
    }

    #[test]
    fn locals_past_the_registers_live_in_the_frame() {
        let mut src = String::new();
        for i in 0..50 {
            src.push_str(&format!("let v{i} = arg(0) + {i};\n"));
        }
        src.push_str(
            &(0..50)
                .map(|i| format!("v{i}"))
                .collect::<Vec<_>>()
                .join(" + "),
        );
        let code = compiled(&src);
        assert!(code.stack_words > SMALL_STACK);
        assert!(code.names.is_empty());
        // SAFETY: the program reads one argument.
        let got = unsafe { CopyPatchJit::execute(&code, &[5]) };
        assert_eq!(got, Ok(50 * 5 + (0..50).sum::<i64>()));
    }

    #[test]
    fn main_keeps_its_most_used_locals_in_the_registers() {
        // Six locals; the inner loop uses `n` and `t` (slots 4 and 5): they
        // get registers, the outer loop's `sum` and `reps` live in memory.
        let shown = crate::engines::conformance::workload_listing::<CopyPatchJit>("fib");
        for line in ["  add_r2_i:", "  loop_r2:", "  add_m_r0:", "  add_m_i:"] {
            assert!(shown.contains(line), "{line} in\n{shown}");
        }
    }

    #[test]
    fn wide_literals_take_the_two_halves() {
        let code =
            compiled("let x = -1; x = x + 9000000000; x + -9000000000 + arg(3) + 4294967295");
        // SAFETY: four arguments.
        let got = unsafe { CopyPatchJit::execute(&code, &[0, 0, 0, 7]) };
        assert_eq!(got, Ok(-1 + 7 + 4294967295));
        let shown = CopyPatchJit::show(&code);
        assert!(shown.contains("  add_r0_w:"), "{shown}");
        assert!(shown.contains("  mov_r0_w:"), "{shown}");
    }

    #[test]
    fn a_call_takes_the_native_stack_it_declares() {
        use iced_x86::{Code, Decoder, DecoderOptions, Mnemonic};
        let stencils = &*lower::STENCILS;
        let _ = stencils;
        let arities = 0..=crate::front::program::MAX_PARAMS;
        for name in arities.flat_map(|n| [format!("call_{n}"), format!("call_{n}_a")]) {
            let s = patch::stencil(&name).unwrap();
            let mut bytes = 8; // the return address
            let mut decoder = Decoder::new(64, s.code, DecoderOptions::NONE);
            for i in decoder.iter() {
                if i.mnemonic() == Mnemonic::Push {
                    bytes += 8;
                }
                if matches!(i.code(), Code::Sub_rm64_imm8 | Code::Sub_rm64_imm32)
                    && i.op0_register() == iced_x86::Register::RSP
                {
                    bytes += i.immediate(1) as usize;
                }
            }
            assert!(bytes * 2 <= NATIVE_CALL_BYTES, "{name}: {bytes} bytes");
            // No register is saved: the one push only aligns the stack.
            let pushes = Decoder::new(64, s.code, DecoderOptions::NONE)
                .iter()
                .filter(|i| i.mnemonic() == Mnemonic::Push)
                .count();
            assert!(pushes <= 1, "{name} pushes {pushes} registers");
        }
    }

    /// Main's part of a listing.
    fn main_of(shown: &str) -> &str {
        &shown[shown.find("main:").expect("main")..]
    }

    #[test]
    fn a_call_saves_only_the_registers_still_needed_and_moves_no_argument_in_place() {
        // `total = mix(total, n, arg(1))` in a loop: `total` is the first
        // argument and in the first register (no move), and the call's
        // value overwrites it (not saved); `n` is saved and reloaded; the
        // last argument comes through the accumulator.
        let shown = crate::engines::conformance::workload_listing::<CopyPatchJit>("leaf_calls");
        let main = main_of(&shown);
        assert_eq!(main.matches("  mov_m_r1:").count(), 1, "{main}");
        assert_eq!(main.matches("  mov_r1_m:").count(), 1, "{main}");
        for absent in ["  mov_m_r0:", "  mov_r0_m:"] {
            assert!(!main.contains(absent), "{absent} in\n{main}");
        }
        assert!(main.contains("  mov_r2_acc:"), "{main}");
    }

    #[test]
    fn functions_that_read_arguments_get_the_argument_pointer() {
        let shown = crate::engines::conformance::workload_listing::<CopyPatchJit>("fib_recursive");
        assert!(
            shown.contains("  call_1:") && !shown.contains("call_1_a"),
            "{shown}"
        );
        let code = compiled("fn f(n) { if n < 1 { arg(1) } else { f(n - 1) + 1 } } f(arg(0))");
        let shown = CopyPatchJit::show(&code);
        assert!(shown.contains("  call_1_a:"), "{shown}");
        // SAFETY: two arguments.
        assert_eq!(unsafe { CopyPatchJit::execute(&code, &[5, 100]) }, Ok(105));
    }

    #[test]
    fn a_later_store_keeps_an_argument_from_staying_in_its_register() {
        // `f(x, { x = 5; x })`: the first argument is `x` as it was (1),
        // read before the second argument stores to `x`.
        let src = "fn f(a, b) { a - b } let x = 1; f(x, { x = 5; x }) + x";
        let code = compiled(src);
        // SAFETY: no argument is read.
        assert_eq!(unsafe { CopyPatchJit::execute(&code, &[]) }, Ok(1 - 5 + 5));
    }

    #[test]
    fn a_comparison_that_decides_a_branch_makes_no_boolean() {
        let shown = crate::engines::conformance::workload_listing::<CopyPatchJit>("fib_recursive");
        assert!(shown.contains("  skip_lt_r0_i:"), "{shown}");
        assert!(!shown.contains("  lt_acc_"), "{shown}");
        assert!(!shown.contains("setl"), "{shown}");
        // `fib(n - 1)` subtracts by adding -1.
        assert!(shown.contains("  add_acc_i:") && !shown.contains("  sub_acc_i:"));
    }

    #[test]
    fn many_programs_live_and_die_in_any_order() {
        let programs: Vec<_> = (0..200)
            .map(|i| {
                let src =
                    format!("let n = arg(0); let t = {i}; while n {{ t = t + n; n = n + -1 }}; t");
                (i, compiled(&src))
            })
            .collect();
        for (i, code) in &programs {
            // SAFETY: one argument.
            assert_eq!(unsafe { CopyPatchJit::execute(code, &[10]) }, Ok(i + 55));
        }
    }
}
