//! `wasmtime` — peer (opt-in feature): the program as a WebAssembly module
//! ([`super::wasm_module`]) compiled to machine code by wasmtime with
//! Cranelift, the same code generator as our `jit`, behind a Wasm sandbox.
//!
//! **Unsafe code**: none of its own; wasmtime validates the module and runs
//! it behind a safe API.

use super::wasm_module::wasm_peer;

pub struct Wasmtime;

wasm_peer! {
    Wasmtime: wasmtime,
    summary: "the program as a Wasm module, Cranelift-compiled by wasmtime",
    engine: wasmtime::Engine::default(),
    instantiate: instantiate,
}
