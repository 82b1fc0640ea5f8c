//! One module per technique, named exactly like the engine. Each begins with
//! a doc comment: what compile produces, where values and locals live at run
//! time, how control flows, and the trade-off.

pub mod bytecode;
pub mod bytecode_closures;
pub mod closure_continuations;
pub mod closure_stack_continuations;
pub mod closures;
#[cfg(test)]
pub(crate) mod conformance;
#[cfg(any(feature = "jit", feature = "template_jit"))]
pub mod disassembly;
#[cfg(feature = "jit")]
pub mod jit;
pub mod register_bytecode;
pub mod register_bytecode_fused;
pub mod register_closures;
pub mod stack_closures;
#[cfg(feature = "nightly")]
pub mod tail_calls;
pub mod tape_closures;
pub mod tape_continuations;
pub mod tape_continuations_fused;
#[cfg(feature = "template_jit")]
pub mod template_jit;
pub mod walker;

// Peers: real interpreters fed the same validated AST (cargo features).
#[cfg(feature = "lua54")]
pub mod lua54;
#[cfg(any(feature = "lua54", feature = "luajit"))]
pub mod lua_source;
#[cfg(feature = "luajit")]
pub mod luajit;
#[cfg(feature = "luajit")]
pub mod luajit_interp;
#[cfg(any(feature = "wasmi", feature = "wasmtime"))]
pub mod wasm_module;
#[cfg(feature = "wasmi")]
pub mod wasmi;
#[cfg(feature = "wasmtime")]
pub mod wasmtime;

#[cfg(test)]
mod peer_tests;
