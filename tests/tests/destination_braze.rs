//! Braze as a destination, through the destination conformance suite against the Braze REST
//! fake (`/users/track`, `/users/delete`; a fresh fake per scenario, users by external id).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use retl_fakes::{BrazeConfig, BrazeFake, Rule};
use retl_tests::destination_suite;
use retl_tests::destination_suite::{DestinationUnderTest, Held, Shape, Write};
use serde_json::Value;

const API_KEY: &str = "braze-rest-api-key";

struct Braze {
    fake: Mutex<Arc<BrazeFake>>,
}

async fn start_fake() -> Arc<BrazeFake> {
    let config = BrazeConfig {
        api_key: API_KEY.into(),
        ..BrazeConfig::default()
    };
    Arc::new(
        BrazeFake::start(config)
            .await
            .expect("the Braze fake starts"),
    )
}

impl Braze {
    async fn start(_check: &str) -> Self {
        Braze {
            fake: Mutex::new(start_fake().await),
        }
    }

    fn fake(&self) -> Arc<BrazeFake> {
        Arc::clone(&self.fake.lock().unwrap())
    }
}

/// Whether `v` is model id `id` (Braze external ids are text; the rule sees what was sent).
fn is_id(v: &Value, id: i64) -> bool {
    v.as_i64() == Some(id) || v.as_str() == Some(id.to_string().as_str())
}

#[async_trait]
impl DestinationUnderTest for Braze {
    fn name(&self) -> &str {
        "braze"
    }

    fn connection(&self, delivery: &str) -> String {
        format!(
            "type: braze, rest_endpoint: \"{}\", api_key_env: BRAZE_API_KEY, delivery: {{ {delivery} }}",
            self.fake().base_url()
        )
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![("BRAZE_API_KEY".into(), API_KEY.into())]
    }

    async fn fresh_object(&self, _label: &str) -> String {
        *self.fake.lock().unwrap() = start_fake().await;
        "users".into()
    }

    fn shape(&self) -> Shape {
        Shape {
            mapping: "{ external_id: id, name: name }".into(),
            ..Shape::default()
        }
    }

    async fn seed(&self, _object: &str, _records: &[(i64, &str)]) -> bool {
        // Braze cannot list its users, so records someone else wrote are unknown to retl.
        false
    }

    async fn holds(&self, _object: &str) -> Held {
        self.fake()
            .users()
            .into_iter()
            .map(|(id, attrs)| {
                let id: i64 = id.parse().expect("a numeric external id");
                (id, attrs["name"].as_str().unwrap_or_default().to_string())
            })
            .collect()
    }

    async fn writes(&self) -> Option<Vec<Write>> {
        let requests = self.fake().requests();
        Some(
            requests
                .iter()
                .filter(|r| r.path.starts_with("/users/"))
                .map(|r| Write {
                    status: r.status,
                    records: r.records_in_batch.unwrap_or(0),
                })
                .collect(),
        )
    }

    async fn clear_log(&self) {
        self.fake().clear_requests();
    }

    async fn throttle_next(&self, n: u32) -> Option<u64> {
        self.fake().faults().burst_429(n);
        Some(1)
    }

    async fn fail_requests(&self, on: bool) -> bool {
        self.fake()
            .faults()
            .set_error_ratio(if on { 1.0 } else { 0.0 });
        true
    }

    async fn reject(&self, _object: &str, id: i64) -> bool {
        self.fake()
            .add_rule(Rule::custom("external_id", move |v| !is_id(v, id)));
        true
    }
}

destination_suite!(Braze::start =>
    worked_examples_in_every_supported_mode,
    unsupported_modes_are_refused,
    throttling_is_waited_out,
    server_errors_are_retried_then_reported,
    rejected_records_are_reported_and_not_retried,
    batches_respect_the_documented_limit,
    no_record_value_in_logs,
);
