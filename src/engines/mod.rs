//! One module per technique, named exactly like the engine, and `peers/`:
//! the real interpreters placed against them. Each begins with a doc
//! comment: what compile produces, where values and locals live at run time,
//! how control flows, the trade-off, and what its `unsafe` code rests on.
//! What they are checked against lives in [`crate::reference`].

pub mod bytecode;
pub mod bytecode_closures;
pub mod closure_continuations;
pub mod closure_stack_continuations;
pub mod closures;
#[cfg(any(feature = "jit", feature = "template_jit"))]
pub mod disassembly;
#[cfg(feature = "jit")]
pub mod jit;
pub mod register_bytecode;
pub mod register_bytecode_fused;
pub mod register_closures;
pub mod register_continuations;
pub mod register_continuations_fused;
#[cfg(feature = "nightly")]
pub mod register_tail_calls;
#[cfg(feature = "nightly")]
pub mod register_tail_calls_fused;
pub mod stack_closures;
#[cfg(feature = "nightly")]
pub mod tail_calls;
pub mod tape_closures;
pub mod tape_continuations;
pub mod tape_continuations_fused;
#[cfg(feature = "template_jit")]
pub mod template_jit;
pub mod threaded;
pub mod walker;

// Engine tests expand `crate::engines::conformance::conformance_tests!`; the
// checks live with the rest of the reference.
#[cfg(test)]
pub(crate) use crate::reference::conformance;

// Peers: real interpreters fed the same validated AST (cargo features).
#[cfg(any(
    feature = "lua54",
    feature = "luajit",
    feature = "wasmi",
    feature = "wasmtime"
))]
pub mod peers;
