//! `template_jit` — a baseline JIT: one pass, one machine-code template per node.
//!
//! **Compile** walks the validated tree once, in evaluation order, and
//! appends a fixed x86-64 template for each node with dynasm-rs (V8's
//! Sparkplug and LuaJIT's DynASM-built code are the tier it models): no IR,
//! no optimiser, no register allocator. The result is one native function
//! `fn(args, frame) -> i64` (at Level 2, main and one function per guest
//! function in one block), copied into executable memory (see `memory`).
//!
//! **Values**: an expression's value ends in `rax`, or is read straight
//! from where a leaf lives (`add rax, [rdi + 8i]` for `Arg(i)`, an
//! immediate for a literal, the local's register for `Get`). **Locals**
//! have a fixed assignment by scope depth: the local bound at depth `k`
//! lives in the `k`-th of 11 registers (caller-saved first), and past them
//! in a frame slot `[rsi + 8j]` the caller provides; the left operand of a
//! non-leaf `+` waits in the next slot after the locals while the right one
//! runs. Templates are chosen by where operands live (declared, as rule 2
//! asks): `+` with a leaf operand adds it directly, and `x = x + leaf` is
//! one `add` into `x`'s slot. `+` wraps because `add` does.
//!
//! **Control**: `While` is `jmp test; top: body; test: cond; jg top` — a
//! native loop, with no stack growth. The callee-saved registers in use
//! are pushed by a prologue emitted last (once the pass knows them).
//!
//! **Calls and branches** (Level 2): each function is lowered after main
//! into the same code block as a native function of its own, and a guest
//! call is a native `call` to its label (never inlined). The convention
//! inside is the engine's own: a callee finds its parameters in its first
//! slots, where the caller's own locals live, so the caller pushes its
//! live slots (the locals in scope and the temporaries holding a value)
//! onto the native stack, moves the argument values into place in one
//! parallel move (a cycle, as in `tak`'s rotated arguments, broken with a
//! `push`/`pop`), `call`s, and pops its slots back; the value comes back
//! in `rax`. A frame is thus what its call site pushes plus the return
//! address (16 and 24 bytes in `fib`), on the native stack: `native_stack`
//! declares the largest call site's frame times `MAX_CALLS`, counted
//! exactly while lowering, plus the entry's. The depth is a register: at
//! Level 2, `r15` leaves the slot registers and counts the calls still
//! allowed; a function begins `sub r15, 1; jb fail` and ends `add r15, 1;
//! ret`. The failing call must not return into its callers (they would run
//! on), so `fail` sets `rsp` back to what the entry saved at `[rsi - 8]`
//! and returns `failed` in `rdx`: every guest frame goes at once, and only
//! this code's own frames lie in between (no Rust frame is skipped, none
//! needs unwinding). A `<` under `if` or `while` is one `cmp` and one
//! `jcc` (to the other arm, or back to the loop's top); only a `<` used as
//! a value makes a 0/1, with `setl`/`movzx`. Operand-location variants:
//! `-` as `+` (a leaf right operand read in place, `x = x - leaf` in
//! place, a constant left operand as `neg` then `add`); `<` compares a
//! leaf right operand in place, and with a constant left operand compares
//! the other way round (`cmp b, a; jg`). A Level-1 program lowers exactly
//! as before: 11 slot registers, no counter, no call.
//!
//! **Code memory** is W^X: a per-thread region mapped twice (a read-write
//! and a read-execute view of the same pages), so a compile makes no
//! system call once its thread has a region (see the `memory` module).
//!
//! Trade-off: compiling visits each node once, keeps no table and makes
//! no decision beyond the node and its children's kinds, so it costs about
//! what building an interpreter's bytecode costs. What it gives up against
//! Cranelift: values make round trips through `rax` and through their slots
//! (no SSA values, no copy removal), nothing is hoisted or folded, and a
//! local's register is fixed by its scope depth, not by how hot it is.
//! Its `unsafe` rests on trusting its own compiler: the templates read only
//! arguments below `arg_count` and frame slots the caller provides.

#[cfg(target_arch = "x86_64")]
pub(super) mod memory;
#[cfg(target_arch = "x86_64")]
mod x64;

use crate::engine::{CallDepthExceeded, CompileError, technique};
use crate::front::program::{Level, MAX_CALLS, Program};

technique! {
    TemplateJit = "template_jit", Beyond, TemplateCode;
    "baseline JIT: one pass, a machine-code template per node, locals in fixed registers";
    compile: compile, try_execute: run, show: show;
    const LEVEL: Level = Level::Two;

    fn native_stack(program: &Program) -> usize {
        native_stack(program)
    }

    fn supports(_program: &Program) -> Result<(), String> {
        if cfg!(target_arch = "x86_64") {
            Ok(())
        } else {
            Err("template_jit emits x86-64 code only".into())
        }
    }
}

/// The compiled function: `args` holds `arg_count` values, `frame` the
/// frame slots the code addresses.
#[cfg(target_arch = "x86_64")]
type Entry = unsafe extern "sysv64" fn(args: *const i64, frame: *mut i64) -> i64;

/// What a Level-2 program returns, in `rax` and `rdx`: its value, and
/// whether a call exceeded the depth (then `value` means nothing).
#[cfg(target_arch = "x86_64")]
#[repr(C)]
struct Returned {
    value: i64,
    failed: i64,
}

/// A Level-2 program's entry: as [`Entry`], and the word below `frame`
/// is free for the code (it keeps the entry's stack pointer there).
#[cfg(target_arch = "x86_64")]
type EntryTwo = unsafe extern "sysv64" fn(args: *const i64, frame: *mut i64) -> Returned;

/// A compiled program: its code in executable memory and its frame size.
pub struct TemplateCode {
    #[cfg(target_arch = "x86_64")]
    memory: memory::CodeMemory,
    #[cfg(target_arch = "x86_64")]
    entry: Entry,
    entry_offset: usize,
    frame_slots: usize,
    slots: usize,
    /// Slot registers (all of `x64::SLOT_REGS` at Level 1, one fewer at 2).
    regs: usize,
    level: Level,
    /// Where main and each function start, for `show`.
    bodies: Vec<(usize, String)>,
}

/// Frames up to this many slots live on the Rust stack.
#[cfg(target_arch = "x86_64")]
const SMALL_FRAME: usize = 32;

#[cfg(target_arch = "x86_64")]
fn compile(program: &Program) -> Result<TemplateCode, CompileError> {
    let e = x64::lower(program).map_err(|e| CompileError(format!("template_jit: {e}")))?;
    let memory = memory::CodeMemory::new(&e.code)
        .map_err(|e| CompileError(format!("template_jit: no executable memory: {e}")))?;
    // SAFETY: `lower` put a function at `entry` that follows the System V
    // convention with the `Entry` signature, and `memory` keeps it mapped
    // executable for as long as the `TemplateCode` holding both lives.
    let entry = unsafe { std::mem::transmute::<*const u8, Entry>(memory.entry().add(e.entry)) };
    Ok(TemplateCode {
        memory,
        entry,
        entry_offset: e.entry,
        frame_slots: e.frame_slots,
        slots: e.slots,
        regs: e.regs,
        level: program.level(),
        bodies: e.bodies,
    })
}

/// Native stack the run takes besides its guest frames: the thread's
/// start, the compile on the same thread (its recursion is the tree's
/// depth) and the way in from Rust.
const RUN_OVERHEAD: usize = 1 << 20;

/// A run's native stack: a guest call is a native `call`, and its frame is
/// what the call site pushes (the caller's live slots and the return
/// address, counted exactly while lowering). With the deepest chain
/// active: the entry, main's call and `MAX_CALLS` calls from functions.
#[cfg(target_arch = "x86_64")]
fn native_stack(program: &Program) -> usize {
    if program.functions().is_empty() {
        return 0;
    }
    match x64::lower(program) {
        Ok(e) => {
            let (main, function) = e.call_frames;
            function
                .saturating_mul(MAX_CALLS)
                .saturating_add(main + x64::ENTRY_FRAME + RUN_OVERHEAD)
        }
        // A program that does not compile never runs.
        Err(_) => 0,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn native_stack(_program: &Program) -> usize {
    0
}

#[cfg(not(target_arch = "x86_64"))]
fn compile(_program: &Program) -> Result<TemplateCode, CompileError> {
    Err(CompileError("template_jit emits x86-64 code only".into()))
}

/// Calls the compiled function with a frame of `frame_slots` slots.
///
/// # Safety
///
/// `args` covers the program's argument count (`Technique::execute`'s contract).
#[cfg(target_arch = "x86_64")]
unsafe fn run(code: &TemplateCode, args: &[i64]) -> Result<i64, CallDepthExceeded> {
    // One more slot in front: Level 2 keeps a word below the frame.
    let mut small = [0i64; SMALL_FRAME + 1];
    let mut large = Vec::new();
    let memory = if code.frame_slots <= SMALL_FRAME {
        &mut small[..]
    } else {
        large.resize(code.frame_slots + 1, 0);
        &mut large[..]
    };
    // SAFETY: `memory` holds at least one slot.
    let frame = unsafe { memory.as_mut_ptr().add(1) };
    if code.level == Level::One {
        // SAFETY: the code reads `args[i]` only for `i < arg_count`, which
        // our caller guarantees `args` holds, and addresses only frame
        // slots below `frame_slots`, which `frame` holds; it preserves
        // what the System V ABI asks (see `x64::lower`).
        return Ok(unsafe { (code.entry)(args.as_ptr(), frame) });
    }
    // SAFETY: as above, and the Level-2 code was lowered with the `EntryTwo`
    // signature (same arguments, `(value, failed)` in `rax`, `rdx`); it
    // also writes the word below `frame` (`memory[0]`). Its native recursion
    // is bounded by its depth counter (`MAX_CALLS` guest frames), which
    // the stack `native_stack` declares holds (the registry's callers run
    // it on such a thread).
    let Returned { value, failed } = unsafe {
        let entry = std::mem::transmute::<Entry, EntryTwo>(code.entry);
        entry(args.as_ptr(), frame)
    };
    if failed == 0 {
        Ok(value)
    } else {
        Err(CallDepthExceeded)
    }
}

/// Never reached: `compile` never succeeds off x86-64.
///
/// # Safety
///
/// As on x86-64.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn run(_code: &TemplateCode, _args: &[i64]) -> Result<i64, CallDepthExceeded> {
    unreachable!("compile never succeeds off x86-64")
}

fn show(code: &TemplateCode) -> String {
    #[cfg(target_arch = "x86_64")]
    let (bytes, regs) = (code.memory.bytes(), &x64::REG_NAMES);
    #[cfg(not(target_arch = "x86_64"))]
    let (bytes, regs): (&[u8], &[&str]) = (&[], &[]);
    let in_regs = code.slots.min(code.regs);
    let assignment: Vec<String> = (0..in_regs)
        .map(|s| format!("s{s}={}", regs[slot_reg(s)]))
        .collect();
    let marks: Vec<(usize, &str)> = match code.level {
        Level::One => vec![(code.entry_offset, "entry")],
        Level::Two => code
            .bodies
            .iter()
            .map(|(at, name)| (*at, name.as_str()))
            .collect(),
    };
    let listing = super::disassembly::disassemble(bytes, &marks).unwrap_or_default();
    let calls = match code.level {
        Level::One => "",
        Level::Two => {
            "; r15 = calls still allowed, [rsi-8] = the entry's rsp; \
             parameters in a function's first slots\n"
        }
    };
    format!(
        "; {} bytes of x86-64 code; rdi = args, rsi = frame, value in rax\n{calls}\
         ; slots (locals by depth, then temporaries): {}{}\n{listing}",
        bytes.len(),
        assignment.join(" "),
        if code.frame_slots > 0 {
            format!(", then {} in the frame", code.frame_slots)
        } else {
            String::new()
        },
    )
}

#[cfg(target_arch = "x86_64")]
fn slot_reg(s: usize) -> usize {
    x64::SLOT_REGS[s] as usize
}

#[cfg(not(target_arch = "x86_64"))]
fn slot_reg(_s: usize) -> usize {
    unreachable!("no code off x86-64")
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::engine::Technique;

    crate::engines::conformance::conformance_tests!(
        TemplateJit,
        extra: [REGISTER_TRICKY, CONTINUATION_TRICKY],
        also: [deep_programs, long_straight_line, far_assignments],
    );

    fn compiled(src: &str) -> TemplateCode {
        TemplateJit::compile(&crate::front::compile_source("t", src).unwrap()).unwrap()
    }

    #[test]
    fn sum_loop_is_four_instructions() {
        let shown = crate::engines::conformance::workload_listing::<TemplateJit>("sum");
        // total += arg(1); count += -1; test; jg: in place, no moves.
        for line in ["add     rdx, [rdi+8]", "add     rcx, -1", "jg "] {
            assert!(shown.contains(line), "{line} in\n{shown}");
        }
        assert!(shown.contains("entry:"), "{shown}");
    }

    #[test]
    fn locals_past_the_registers_live_in_the_frame() {
        // 50 locals, all live, summed: slots 11.. are frame slots.
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
        assert!(code.frame_slots > SMALL_FRAME);
        // SAFETY: the program reads one argument.
        let got = unsafe { TemplateJit::execute(&code, &[5]) };
        assert_eq!(got, Ok(50 * 5 + (0..50).sum::<i64>()));
        assert!(TemplateJit::show(&code).contains("in the frame"));
    }

    #[test]
    fn wide_literals_and_far_arguments_take_the_long_forms() {
        let code = compiled("let x = 1; x = x + 9000000000; x + 9000000000 + arg(3)");
        // SAFETY: four arguments.
        let got = unsafe { TemplateJit::execute(&code, &[0, 0, 0, 7]) };
        assert_eq!(got, Ok(18_000_000_008));
        assert!(TemplateJit::show(&code).contains("mov     r11, "));
    }

    #[test]
    fn many_programs_live_and_die_in_any_order() {
        let programs: Vec<_> = (0..300)
            .map(|i| {
                (
                    i,
                    compiled(&format!(
                        "let n = arg(0); let t = {i}; while n {{ t = t + n; n = n + -1 }}; t"
                    )),
                )
            })
            .collect();
        let (evens, odds): (Vec<_>, Vec<_>) = programs.into_iter().partition(|(i, _)| i % 2 == 0);
        drop(evens);
        let more: Vec<_> = (0..300)
            .map(|i| (i, compiled(&format!("arg(0) + {i}"))))
            .collect();
        for (i, code) in &odds {
            // SAFETY: one argument.
            assert_eq!(unsafe { TemplateJit::execute(code, &[10]) }, Ok(i + 55));
        }
        for (i, code) in &more {
            // SAFETY: one argument.
            assert_eq!(unsafe { TemplateJit::execute(code, &[10]) }, Ok(i + 10));
        }
    }
}
