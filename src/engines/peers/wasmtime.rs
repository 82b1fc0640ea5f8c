//! `wasmtime` — peer (opt-in feature): the program as a WebAssembly module
//! ([`super::wasm_module`]) compiled to machine code by wasmtime with
//! Cranelift, the same code generator as our `jit`, behind a Wasm sandbox.
//! Its frames are native frames on the calling thread, within wasmtime's
//! default 512 KiB Wasm stack: the engine declares how many calls of each
//! program that holds (from a generous bound on a frame's size) and is
//! exempt from deeper runs.
//!
//! **Unsafe code**: none of its own; wasmtime validates the module and runs
//! it behind a safe API.

use super::wasm_module::{frame_cells, wasm_peer};
use crate::front::program::Program;

pub struct Wasmtime;

/// wasmtime's default Wasm stack, less room for the host's own frames.
const STACK_BYTES: usize = (512 - 64) << 10;

fn calls_held(program: &Program) -> Option<usize> {
    if program.functions().is_empty() {
        return None;
    }
    // Every cell spilled, plus the frame's link and saved registers.
    let held = STACK_BYTES / (64 + 8 * frame_cells(program));
    (held <= crate::MAX_CALLS).then_some(held)
}

wasm_peer! {
    Wasmtime: wasmtime,
    summary: "the program as a Wasm module, Cranelift-compiled by wasmtime",
    engine: wasmtime::Engine::default(),
    instantiate: instantiate,
    calls_held: calls_held,
    depth_trap: |e| e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::UnreachableCodeReached),
}
