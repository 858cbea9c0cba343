//! # imgflow-cli: the `imgflow` command
//!
//! Operators' and users' tools around the pipeline; none of them is on the data path. The
//! operations themselves (provision, status, dead letters, results) live in
//! `imgflow-operations`, which the console uses too; this crate adds the command line.
//!
//! # Layout
//! - `main.rs`: the commands and their output.
//! - [`cost`]: measured calls per image priced, next to Step Functions + Lambda.
//! - [`errors`]: what to do about a failure, in one line.
//! - [`submit`]: upload files to `incoming/`, optionally waiting for their results.

pub mod cost;
pub mod errors;
pub mod submit;
