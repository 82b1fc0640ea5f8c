//! vm-perf: one tiny language, many ways to interpret it, measured fairly.
//!
//! The stages are kept apart: [`front`] (AST, parser, printer, validator),
//! [`engines`] (one module per technique, and the peers), the [`engine`] API
//! and registry, [`reference`] (what every engine is checked against, and
//! how), [`random`] (generated programs), [`workloads`] and their native
//! candles, [`harness`] (the measurement), and [`cli`] on top, which only
//! glues them together. `ARCHITECTURE.md` maps every folder.

// The `become` engines need guaranteed tail calls, and
// `register_preserve_none` the calling convention that passes arguments in
// the callee-saved registers too: nightly features.
#![cfg_attr(
    feature = "nightly",
    feature(explicit_tail_calls, rust_preserve_none_cc, sanitize),
    allow(incomplete_features)
)]

pub mod clock;
pub mod engine;
pub mod engines;
pub mod front;
pub mod guard;
pub mod harness;
pub mod random;
pub mod reference;
pub mod workloads;

pub mod cli;

pub use engine::{
    ArgError, CallDepthExceeded, CompileError, Engine, Executable, RunError, Tier, engine, engines,
};
pub use front::ast::{Expr, Function, Source};
pub use front::program::{Level, MAX_CALLS, MAX_DEPTH, MAX_PARAMS, Program, ValidationError};
