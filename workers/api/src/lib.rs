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
//! - [`routes`]: the router, the state, the read handlers and content negotiation; all
//!   generic over the ports.
//! - [`auth`]: the API key, loopback host names, same-origin posts.
//! - [`upload`]: `POST /images`, with ingest's image check.
//! - [`thumbnail`]: an image's bytes and its thumbnail.
//! - [`errors`]: the one error shape.
//! - [`console`]: the pages, rendered on the server; `assets/` holds the one script and the
//!   styles, compiled in.
//! - [`pipeline`]: what the Pipeline page reads from SQS and the index table.
//! - [`serve`]: the HTTP server with header and shutdown deadlines and a connection limit.
//! - `main.rs`: wiring only.

pub mod auth;
pub mod console;
pub mod dead_letters;
pub mod duplicates;
pub mod errors;
pub mod pipeline;
pub mod routes;
pub mod serve;
pub mod thumbnail;
pub mod upload;

pub use routes::{router, ApiState};
