//! # imgflow-cli: the `imgflow` command
//!
//! Operators' and users' tools around the pipeline; none of them is on the data path.
//!
//! # Layout
//! - [`cost`]: measured calls per image priced, next to Step Functions + Lambda.
//! - [`dlq`]: inspect, replay and purge dead-letter queues.
//! - [`provision`]: create or update every AWS resource, idempotently.
//! - [`submit`]: upload files to `incoming/`, optionally waiting for their results.
//! - [`results`]: recent items as a table.
//! - [`status`]: per stage, messages visible, in flight and dead-lettered.

pub mod cost;
pub mod dlq;
pub mod provision;
pub mod results;
pub mod status;
pub mod submit;
