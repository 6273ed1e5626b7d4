//! The test harness: temporary projects, the `retl` binary, a PostgreSQL schema per test, and
//! HTTP servers standing in for destinations. A missing service fails the test loudly.

pub mod approvals;
pub mod aws_stack;
pub mod bench;
pub mod campaign;
pub mod contracts;
pub mod destination_suite;
pub mod fixtures;
pub mod http;
pub mod iam_stack;
pub mod lambda;
pub mod moto;
pub mod pg;
pub mod project;
pub mod source_suite;
pub mod warehouses;

pub use pg::Pg;
pub use project::{Project, RetlOutput};
