//! # imgflow-runtime: what every stage shares
//!
//! Stages are thin: a handler with the stage's logic, generic over the ports below, wired to
//! AWS in `main.rs`. Everything else lives here.
//!
//! # Layout
//! - [`ports`]: the small traits handlers depend on (`Queue`, `Publisher`, `ObjectStore`,
//!   `LabelDetector`, `ImageTable`, and the console's `ImageCatalog`), with our own types in
//!   and out.
//! - [`error`]: [`PortError`], the one place retry decisions are made from.
//! - [`consumer`]: the SQS consumer loop: long poll, bounded concurrency, batch delete,
//!   backoff through visibility, dead-lettering, graceful shutdown.
//! - The AWS adapters implementing the ports are in `imgflow-aws` (`workers/aws`).
//! - [`config`]: environment variables, read once, and resource names from the prefix.
//! - [`image_probe`]: format and dimensions from the first bytes of a file, without decoding.
//! - [`observability`]: Prometheus metrics, `/metrics`, `/healthz`, `/readyz`.
//! - [`throughput`]: completed messages per stage and minute, for the console.
//! - [`telemetry`], [`shutdown`], [`clock`].
//! - `fakes` (feature `test-util`): in-memory ports for handler tests.

pub mod clock;
pub mod config;
pub mod consumer;
pub mod error;
#[cfg(feature = "test-util")]
pub mod fakes;
pub mod image_probe;
pub mod observability;
pub mod ports;
pub mod shutdown;
pub mod telemetry;
pub mod throughput;

pub use error::{PortError, PortErrorKind};
