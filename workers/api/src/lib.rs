//! # imgflow-api: the HTTP path into the pipeline
//!
//! The tutorial's entry point, without its 256 KB limit: `POST /images` stores an image under
//! `incoming/` (the S3 event then starts the pipeline as for any upload) and answers with the
//! id the pipeline will use; `GET /images/{id}` returns the item.
//!
//! It also serves the web console from the same port: the live pipeline (`/`), a gallery
//! with label search (`/images`), each image with its boxes and timeline (`/images/{id}`),
//! and uploads by drag and drop.
//!
//! # Layout
//! - [`routes`]: the router and handlers, generic over the ports; content negotiation; the
//!   API key check.
//! - [`console`]: the pages, rendered on the server; `assets/` holds the one script and the
//!   styles, compiled in.
//! - [`pipeline`]: what the Pipeline page reads from SQS and the index table.
//! - [`serve`]: the HTTP server with header and shutdown deadlines and a connection limit.
//! - `main.rs`: wiring only.

pub mod console;
pub mod pipeline;
pub mod routes;
pub mod serve;

pub use routes::{router, ApiState};
