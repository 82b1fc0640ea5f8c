//! Peers: real interpreters and VMs people would embed instead, fed the same
//! validated [`Program`](crate::Program) as every technique (cargo features,
//! `Tier::Peer`). They are placed against our engines, not written here: each
//! module translates the program into the peer's own input and runs it
//! there. The Lua peers share one translator ([`lua_source`]), the Wasm peers
//! one module builder ([`wasm_module`]). Their checks against `walker` are in
//! `tests/peers.rs` (library) and `tests/peers_cli.rs` (command line).

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
