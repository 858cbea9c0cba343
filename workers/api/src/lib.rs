//! # imgflow-api: the HTTP path into the pipeline
//!
//! The tutorial's entry point, without its 256 KB limit: `POST /images` stores an image under
//! `incoming/` (the S3 event then starts the pipeline as for any upload) and answers with the
//! id the pipeline will use; `GET /images/{id}` returns the item.
//!
//! # Layout
//! - [`routes`]: the router and handlers, generic over the ports.
//! - `main.rs`: wiring only.

pub mod routes;

pub use routes::{router, ApiState};
