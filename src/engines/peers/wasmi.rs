//! `wasmi` — peer: the program as a WebAssembly module
//! ([`super::wasm_module`]) on wasmi, a Wasm interpreter in Rust that
//! translates the module to its own register bytecode, eagerly here so no
//! translation hides in the first run.
//!
//! **Unsafe code**: none of its own; wasmi validates the module and runs it
//! behind a safe API.

use super::wasm_module::wasm_peer;
use wasmi::{CompilationMode, Config, Engine};

pub struct Wasmi;

wasm_peer! {
    Wasmi: wasmi,
    summary: "the program as a Wasm module on the wasmi interpreter",
    // Eager, so no translation hides in the first run.
    engine: Engine::new(Config::default().compilation_mode(CompilationMode::Eager)),
    instantiate: instantiate_and_start,
}
