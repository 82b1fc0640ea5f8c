//! The bytecode family: typed instructions in a `Vec`, verified once, run
//! by a `match` loop (`bytecode` on a value stack; `register_bytecode` and
//! `register_bytecode_fused` on registers).

pub mod bytecode;
pub mod register_bytecode;
pub mod register_bytecode_fused;
