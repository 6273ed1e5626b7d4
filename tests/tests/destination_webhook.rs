//! The webhook destination, through the destination conformance suite against the test
//! receiver (`tests/src/http.rs`): what it holds is the records it stored, folded in order.

use std::sync::Mutex;

use async_trait::async_trait;
use retl_tests::destination_suite;
use retl_tests::destination_suite::{DestinationUnderTest, Held, Write};
use retl_tests::http::{Scripted, WebhookReceiver};

/// Seconds of `Retry-After` the receiver answers 429 with.
const RETRY_AFTER: u64 = 1;

struct Webhook {
    hook: WebhookReceiver,
    /// Requests received before the last `clear_log`.
    seen: Mutex<usize>,
}

impl Webhook {
    async fn start(_check: &str) -> Self {
        Webhook {
            hook: WebhookReceiver::start().await,
            seen: Mutex::new(0),
        }
    }
}

#[async_trait]
impl DestinationUnderTest for Webhook {
    fn name(&self) -> &str {
        "webhook"
    }

    fn connection(&self, delivery: &str) -> String {
        format!(
            "type: webhook, url: \"{}\", delivery: {{ {delivery} }}",
            self.hook.url
        )
    }

    async fn fresh_object(&self, label: &str) -> String {
        format!("people_{label}")
    }

    async fn seed(&self, _object: &str, _records: &[(i64, &str)]) -> bool {
        false
    }

    async fn holds(&self, object: &str) -> Held {
        let mut held = Held::new();
        for r in self.hook.received() {
            if r.body["object"] != object {
                continue;
            }
            let op = r.body["op"].as_str().unwrap_or_default();
            let records = r.body["records"].as_array().cloned().unwrap_or_default();
            for i in r.processed {
                let rec = &records[i];
                let id: i64 = rec["key"]
                    .as_str()
                    .and_then(|k| k.parse().ok())
                    .expect("a numeric key");
                if op == "delete" {
                    held.remove(&id);
                } else {
                    let name = rec["fields"]["name"].as_str().unwrap_or_default();
                    held.insert(id, name.to_string());
                }
            }
        }
        held
    }

    async fn writes(&self) -> Option<Vec<Write>> {
        let seen = *self.seen.lock().unwrap();
        Some(
            self.hook.received()[seen..]
                .iter()
                .map(|r| Write {
                    status: r.status,
                    records: r.body["records"].as_array().map_or(0, Vec::len),
                })
                .collect(),
        )
    }

    async fn clear_log(&self) {
        *self.seen.lock().unwrap() = self.hook.received().len();
    }

    async fn throttle_next(&self, n: u32) -> Option<u64> {
        let script = vec![Scripted::Status(429, Some(RETRY_AFTER)); n as usize];
        self.hook.script(&script);
        Some(RETRY_AFTER)
    }

    async fn fail_requests(&self, on: bool) -> bool {
        self.hook.unavailable(on);
        true
    }

    async fn reject(&self, _object: &str, id: i64) -> bool {
        self.hook.reject(&[&id.to_string()]);
        true
    }
}

destination_suite!(Webhook::start =>
    worked_examples_in_every_supported_mode,
    unsupported_modes_are_refused,
    throttling_is_waited_out,
    server_errors_are_retried_then_reported,
    rejected_records_are_reported_and_not_retried,
    batches_respect_the_documented_limit,
    no_record_value_in_logs,
);
