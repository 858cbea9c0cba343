//! # imgflow-operations: operating a deployment
//!
//! What an operator does to a running pipeline, shared by the `imgflow` command and the
//! console (`imgflow-api`), so neither depends on the other. None of it is on the data path.
//!
//! # Layout
//! - [`provision`]: create or update every AWS resource, idempotently.
//! - [`backfill`]: send objects that never had an event to ingest.
//! - [`relabel`]: label matching items again (a new model, another detector).
//! - [`status`]: per stage, messages visible, in flight and dead-lettered.
//! - [`dlq`]: inspect, replay and purge dead-letter queues.
//! - [`results`]: recent items, and waiting for images to reach a final status.

pub mod backfill;
pub mod dlq;
pub mod duplicates;
pub mod provision;
pub mod relabel;
pub mod results;
pub mod status;
