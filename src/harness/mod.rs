//! The measurement harness: everything `vm-perf bench` and `vm-perf scale`
//! do, kept in stages.
//!
//! - [`bench`]: `vm-perf bench` in one call, from the user's request to
//!   the written reports;
//! - [`case`]: what is measured (a workload or a user's program, with the
//!   value every execution must produce);
//! - [`suite`]: the program files and folders a user names, each file with
//!   its arguments;
//! - [`preflight`]: a user's program run once per engine before anything is
//!   measured, under `--timeout`;
//! - [`settings`]: how long and how carefully to measure;
//! - [`runner`]: interleaved, verified timing in one process → [`results`];
//! - [`timing`]: the execute and compile spans, on one clock, for `bench`
//!   and `scale` alike (peers in a helper process time them there);
//! - [`stats`]: medians, confidence intervals, geometric means;
//! - [`table`] and [`report`]: the terminal table and the report files
//!   (JSON, CSV, Markdown, HTML with SVG charts, the ladder), plus the
//!   README's generated blocks and `docs/RESULTS.md`;
//! - [`instructions`]: instruction counts of the execute stage (callgrind),
//!   kept in the results beside the times ([`counts`]);
//! - [`compare`]: two runs' `results.json` side by side (`vm-perf compare`);
//! - [`scale`]: compile time against program size, execute time against
//!   iteration count, and whether each grows linearly.
//!
//! Nothing here is a pass/fail timing test: the numbers are reported, and
//! the only failure is a wrong result.

pub mod bench;
pub mod case;
pub mod compare;
pub mod counts;
pub mod instructions;
pub mod machine;
pub mod preflight;
pub mod report;
pub mod results;
pub mod runner;
pub mod scale;
pub mod settings;
pub mod stats;
pub mod suite;
pub mod table;
pub mod timing;

pub use case::Case;
pub use results::Results;
pub use runner::run;
pub use settings::{Clock, Settings};
