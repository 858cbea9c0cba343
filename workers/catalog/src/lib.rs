//! # imgflow-catalog: the console's read model
//!
//! What the gallery, label search and throughput chart read, apart from the pipeline that
//! writes it: the store stage keeps the label index through [`ports::LabelIndex`], every stage
//! counts its throughput through [`ports::ThroughputLog`], and the API and `imgflow results`
//! list through [`ports::ImageCatalog`]. The DynamoDB implementations are in `imgflow-aws`
//! (`dynamodb::{index, catalog}`); they and the fakes derive every key from [`keys`].
//!
//! # Layout
//! - [`keys`]: pure key rules: gallery keys (`day`, `status_day`, `received_key`), label-index
//!   entries, page cursors, throughput minutes.
//! - [`ports`]: `ImageCatalog`, `LabelIndex`, `ThroughputLog`.
//! - [`throughput`]: a stage's completed messages per minute, written every few seconds.
//! - `fakes` (feature `test-util`): the label index and catalog in memory.

#[cfg(feature = "test-util")]
pub mod fakes;
pub mod keys;
pub mod ports;
pub mod throughput;
