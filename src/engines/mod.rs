//! One module per technique, named exactly like the engine. Each begins with
//! a doc comment: what compile produces, where values and locals live at run
//! time, how control flows, and the trade-off.

pub mod bytecode;
pub mod closures;
pub mod tape_continuations;
pub mod walker;

#[cfg(test)]
pub(crate) mod conformance;

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
