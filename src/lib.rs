//! vm-perf: one tiny language, many ways to interpret it, measured fairly.
//!
//! The stages are kept apart: [`front`] (AST, parser, printer, validator),
//! [`engines`] (one module per technique), the [`engine`] API and registry,
//! [`workloads`] and their native candles, and the harness and CLI on top.

// `tail_calls` needs guaranteed tail calls (`become`), a nightly feature.
#![cfg_attr(
    feature = "nightly",
    feature(explicit_tail_calls),
    allow(incomplete_features)
)]

pub mod engine;
pub mod engines;
pub mod front;
pub mod guard;
pub mod harness;
pub mod oracle;
pub mod random;
pub mod workloads;

pub use engine::{ArgError, CompileError, Engine, Executable, Tier, engine, engines};
pub use front::ast::Expr;
pub use front::program::{MAX_DEPTH, Program, ValidationError};
pub mod check;
pub mod cli;
