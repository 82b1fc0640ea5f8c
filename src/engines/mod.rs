//! One module per technique, named exactly like the engine, grouped by
//! family: `walker` (the reference), `bytecode_vm/`, `closure/`,
//! `threaded/` (the threaded-code core and every engine on it), `native/`
//! (the JITs), and `peers/`: the real interpreters placed against them. Each begins with a doc
//! comment: what compile produces, where values and locals live at run time,
//! how control flows, the trade-off, and what its `unsafe` code rests on.
//! What they are checked against lives in [`crate::reference`].

pub mod bytecode_vm;
pub mod closure;
#[cfg(any(feature = "jit", feature = "template_jit"))]
pub mod native;
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
