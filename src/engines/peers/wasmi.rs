//! `wasmi` — peer: the program as a WebAssembly module
//! ([`super::wasm_module`]) on wasmi, a Wasm interpreter in Rust that
//! translates the module to its own register bytecode, eagerly here so no
//! translation hides in the first run. Its frames live in its own stacks,
//! not on the native one; they are configured to hold every call the
//! language allows (and the trap at the limit) for frames of up to
//! [`STACK_BYTES`] / 10,002 bytes, beyond which the engine declares how
//! many calls it holds.
//!
//! **Unsafe code**: none of its own; wasmi validates the module and runs it
//! behind a safe API.

use super::wasm_module::{frame_cells, wasm_peer};
use crate::front::program::Program;
use wasmi::{CompilationMode, Config, Engine, TrapCode};

pub struct Wasmi;

/// The value stack wasmi may grow to, in bytes.
pub const STACK_BYTES: usize = 256 << 20;
/// Bytes per value-stack cell, with room to spare.
const CELL_BYTES: usize = 16;

/// `run` plus every call up to the one that traps at the limit.
const FRAMES: usize = crate::MAX_CALLS + 2;

fn calls_held(program: &Program) -> Option<usize> {
    let held = STACK_BYTES / (frame_cells(program) * CELL_BYTES).max(1);
    (held < FRAMES).then(|| held.saturating_sub(1))
}

wasm_peer! {
    Wasmi: wasmi,
    summary: "the program as a Wasm module on the wasmi interpreter",
    // Eager, so no translation hides in the first run.
    engine: Engine::new(
        Config::default()
            .compilation_mode(CompilationMode::Eager)
            .set_max_recursion_depth(FRAMES)
            .set_max_stack_height(STACK_BYTES),
    ),
    instantiate: instantiate_and_start,
    calls_held: calls_held,
    depth_trap: |e| e.as_trap_code() == Some(TrapCode::UnreachableCodeReached),
}
