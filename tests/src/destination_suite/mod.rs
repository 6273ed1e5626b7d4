//! The destination conformance suite: what every destination connector must do, run through
//! the `retl` CLI against the destination's real server or protocol fake (vector's sink
//! compliance harness is the model). A destination implements [`DestinationUnderTest`] (how
//! to configure it in `retl.yaml`, how to read back what it holds, what its request log says,
//! how to make it throttle, fail or reject); the suite fixes what retl must do. The modes a
//! destination is checked in come from its connector's capabilities through
//! [`retl_shared::modes::supported_modes`], never from the test.
//!
//! Each `tests/tests/destination_<name>.rs` lists the checks its server can be told to take
//! part in with [`destination_suite!`](crate::destination_suite!): a real PostgreSQL cannot
//! be told to answer 429, so its file leaves that check out, and a check whose server cannot
//! do what it needs fails loudly instead of passing without asserting.

mod delivery;
mod harness;
mod modes;

use std::collections::BTreeMap;

use async_trait::async_trait;

pub use delivery::{
    batches_respect_the_documented_limit, no_record_value_in_logs,
    rejected_records_are_reported_and_not_retried, server_errors_are_retried_then_reported,
    throttling_is_waited_out,
};
pub use harness::Harness;
pub use modes::{unsupported_modes_are_refused, worked_examples_in_every_supported_mode};

/// What a destination holds for one object: model id → name.
pub type Held = BTreeMap<i64, String>;

/// One write request in a destination's request log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Write {
    /// The status answered (the vendor's own throttling status included).
    pub status: u16,
    /// Records the request carried (0 when the server refused it before reading them).
    pub records: usize,
}

/// How a sync reads the suite's model `model(id INTEGER, name TEXT)` for this destination.
#[derive(Debug, Clone)]
pub struct Shape {
    /// The source SQL over `model`.
    pub sql: String,
    /// The sync's `primary_key`.
    pub primary_key: String,
    /// The sync's `mapping`, as a YAML flow mapping.
    pub mapping: String,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            sql: "select id, name from model".into(),
            primary_key: "id".into(),
            mapping: "{ id: id, name: name }".into(),
        }
    }
}

/// A destination the suite runs against: one server (or fake) per check.
#[async_trait]
pub trait DestinationUnderTest: Send + Sync {
    /// The connector's `type:`.
    fn name(&self) -> &str;

    /// The connection's entry in `retl.yaml` without braces (`type: webhook, url: ...`), with
    /// `delivery` (e.g. `max_attempts: 2`, possibly empty) as its `delivery:` block.
    fn connection(&self, delivery: &str) -> String;

    /// Environment variables the connection reads (tokens, endpoints).
    fn env(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// A fresh, empty destination object for one scenario (`label` is unique in the check);
    /// its name goes into the sync's `destination.object`.
    async fn fresh_object(&self, label: &str) -> String;

    /// How the sync reads the model; the default maps `id` and `name` as they are.
    fn shape(&self) -> Shape {
        Shape::default()
    }

    /// How the destination stores the model's `name` (a hashed or normalised form), as
    /// [`holds`](Self::holds) reads it back; the default keeps it as it is.
    fn stored(&self, name: &str) -> String {
        name.to_string()
    }

    /// The record key retl reports for model id `id` (in `retl errors`).
    fn key(&self, id: i64) -> String {
        id.to_string()
    }

    /// Writes `records` into `object` as if someone else had; `false` when the destination
    /// holds nothing retl did not send (a queue, a webhook), and the suite then creates them
    /// with an `upsert` run instead.
    async fn seed(&self, object: &str, records: &[(i64, &str)]) -> bool;

    /// What `object` holds now.
    async fn holds(&self, object: &str) -> Held;

    /// The write requests since the last [`clear_log`](Self::clear_log); `None` for a real
    /// server that keeps no log (the suite then checks what the destination holds).
    async fn writes(&self) -> Option<Vec<Write>>;

    /// Forgets the request log.
    async fn clear_log(&self);

    /// Makes the next `n` requests answer the vendor's throttling answer with `Retry-After`;
    /// returns the seconds it asks for, or `None` when the server cannot be told.
    async fn throttle_next(&self, n: u32) -> Option<u64>;

    /// Makes every request answer 5xx (`on`) or be served again (`!on`); `false` when the
    /// server cannot be told.
    async fn fail_requests(&self, on: bool) -> bool;

    /// Makes `object` refuse model id `id` per record with the vendor's 4xx error shape;
    /// `false` when it cannot be told.
    async fn reject(&self, object: &str, id: i64) -> bool;
}

/// One `#[tokio::test]` per listed check, each with its own destination from
/// `$start(check_name).await`.
#[macro_export]
macro_rules! destination_suite {
    ($start:path => $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread")]
            async fn $check() {
                let destination = $start(stringify!($check)).await;
                $crate::destination_suite::$check(&destination).await;
            }
        )+
    };
}
