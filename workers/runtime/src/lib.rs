//! # imgflow-runtime: what every stage shares
//!
//! Stages are thin: a handler with the stage's logic, generic over the ports below, wired to
//! AWS in `main.rs`. Everything else lives here.
//!
//! # Layout
//! - [`ports`]: the small traits handlers depend on (`Queue`, `Publisher`, `ObjectStore`,
//!   `LabelDetector`, `ImageTable`), with our own types in and out. The console's read
//!   model has its own ports in `imgflow-catalog`.
//! - [`error`]: [`PortError`], the one place retry decisions are made from.
//! - [`consumer`]: the SQS consumer loop: long poll, bounded concurrency, batch delete,
//!   backoff through visibility, dead-lettering, graceful shutdown; `consumer::handler` is
//!   what a stage implements (`Handler`, `HandleError`).
//! - The AWS adapters implementing the ports are in `imgflow-aws` (`workers/aws`); image
//!   checks and decoding in `imgflow-imaging`.
//! - [`ledger`]: the object ledger's rules: each image's fate in its key's history.
//! - [`join`]: the join of the two parallel branches (labels, thumbnail) on the item.
//! - [`config`]: environment variables, read once, and resource names from the prefix.
//! - [`observability`]: Prometheus metrics, `/metrics`, `/healthz`, `/readyz`.
//! - [`usage`]: `--help` (the README's settings table, compiled in) and `--version`.
//! - [`telemetry`], [`shutdown`], [`clock`].
//! - `fakes` (feature `test-util`): in-memory ports for handler tests (`fakes::table`: the
//!   images table with DynamoDB's conditions).

pub mod clock;
pub mod config;
pub mod consumer;
pub mod error;
#[cfg(feature = "test-util")]
pub mod fakes;
pub mod join;
pub mod ledger;
pub mod observability;
pub mod ports;
pub mod shutdown;
pub mod telemetry;
pub mod usage;

pub use error::{PortError, PortErrorKind};
