//! What the Lambda functions' handler tests stand on: a stack on moto with the buckets, tables,
//! topics, schedule group and approval runbook the template creates, syncs deployed by `retl deploy`'s own code,
//! a PostgreSQL schema as warehouse and destination, and a state machine standing in for the
//! sync one. No Lambda service runs: each test calls its handler in-process, as the Lambda
//! runtime would with the payload the real state machine sends.
//!
//! The stand-in state machine has one task that waits on a task token posted to an SQS
//! queue, so a test holds a real token of a waiting execution, as the approval step does;
//! moto executes it (the end-to-end tests in `tests/tests/state_machine.rs` run the real
//! definition with the real binaries).

mod events;
mod runs;
mod stack;

pub use runs::ExecutionEnd;
pub use stack::TestStack;

/// moto's account.
pub const ACCOUNT: &str = "123456789012";
/// The region of every test stack.
pub const REGION: &str = "us-east-1";
