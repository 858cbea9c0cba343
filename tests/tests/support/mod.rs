//! Helpers shared by the test files that read deploy/ (each test file uses a part of them).
#![allow(dead_code)]

pub mod iam;
pub mod template;
