//! The closure family: the program compiled to Rust closures, each
//! technique its own way of passing values, locals and the next step
//! (`closures`, `stack_closures`, `tape_closures`, `register_closures`,
//! `bytecode_closures`, `closure_continuations`,
//! `closure_stack_continuations`). What they share (the environment of
//! locals, the arena closures live in) is in `closures`.

pub mod bytecode_closures;
pub mod closure_continuations;
pub mod closure_stack_continuations;
pub mod closures;
pub mod register_closures;
pub mod stack_closures;
pub mod tape_closures;
