//! HubSpot as a destination, through the destination conformance suite against the HubSpot
//! CRM v3 fake (a fresh fake per scenario: contacts keyed by email, `id@example.com`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use retl_fakes::{HubSpotConfig, HubSpotFake, LoggedRequest, Rule};
use retl_tests::destination_suite;
use retl_tests::destination_suite::{DestinationUnderTest, Held, Shape, Write};
use serde_json::json;

const TOKEN: &str = "pat-na1-test-token";
const DOMAIN: &str = "@example.com";

struct HubSpot {
    fake: Mutex<Arc<HubSpotFake>>,
}

async fn start_fake() -> Arc<HubSpotFake> {
    let config = HubSpotConfig {
        token: TOKEN.into(),
        ..HubSpotConfig::default()
    };
    Arc::new(
        HubSpotFake::start(config)
            .await
            .expect("the HubSpot fake starts"),
    )
}

fn is_write(r: &LoggedRequest) -> bool {
    r.method == "POST"
        && ["create", "update", "upsert", "archive"]
            .iter()
            .any(|a| r.path.ends_with(&format!("/batch/{a}")))
}

/// Makes every request fail with 503 once the run's first request (its schema read) was
/// answered: a run that cannot prepare fails as a whole; the check is about writes.
/// Whether the fault watcher counts request `r`.
fn counted(_r: &&LoggedRequest) -> bool {
    true
}

fn fail_after_prepare(fake: Arc<HubSpotFake>) {
    let seen = fake.requests().iter().filter(counted).count();
    tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if fake.requests().iter().filter(counted).count() > seen {
                fake.faults().set_error_ratio(1.0);
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
}

impl HubSpot {
    async fn start(_check: &str) -> Self {
        HubSpot {
            fake: Mutex::new(start_fake().await),
        }
    }

    fn fake(&self) -> Arc<HubSpotFake> {
        Arc::clone(&self.fake.lock().unwrap())
    }
}

#[async_trait]
impl DestinationUnderTest for HubSpot {
    fn name(&self) -> &str {
        "hubspot"
    }

    fn connection(&self, delivery: &str) -> String {
        format!(
            "type: hubspot, token_env: HUBSPOT_TOKEN, base_url: \"{}\", delivery: {{ {delivery} }}",
            self.fake().base_url()
        )
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![("HUBSPOT_TOKEN".into(), TOKEN.into())]
    }

    async fn fresh_object(&self, _label: &str) -> String {
        *self.fake.lock().unwrap() = start_fake().await;
        "contacts".into()
    }

    fn shape(&self) -> Shape {
        Shape {
            sql: format!("select id || '{DOMAIN}' as email, name from model"),
            primary_key: "email".into(),
            mapping: "{ email: email, firstname: name }".into(),
        }
    }

    fn key(&self, id: i64) -> String {
        format!("{id}{DOMAIN}")
    }

    async fn seed(&self, object: &str, records: &[(i64, &str)]) -> bool {
        let fake = self.fake();
        for (id, name) in records {
            fake.insert(object, json!({"email": self.key(*id), "firstname": name}));
        }
        true
    }

    async fn holds(&self, object: &str) -> Held {
        let mut held = Held::new();
        for r in self.fake().records(object) {
            let p = &r["properties"];
            let email = p["email"].as_str().unwrap_or_default();
            let id: i64 = email
                .strip_suffix(DOMAIN)
                .and_then(|i| i.parse().ok())
                .unwrap_or_else(|| panic!("a contact retl did not write: {r}"));
            let name = p["firstname"].as_str().unwrap_or_default().to_string();
            assert!(
                held.insert(id, name).is_none(),
                "{email} is in HubSpot twice"
            );
        }
        held
    }

    async fn writes(&self) -> Option<Vec<Write>> {
        let writes = self.fake().requests().into_iter().filter(is_write);
        Some(
            writes
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
        // A burst outside any budget window asks for 1 s.
        self.fake().faults().burst_429(n);
        Some(1)
    }

    async fn fail_requests(&self, on: bool) -> bool {
        let fake = self.fake();
        if on {
            fail_after_prepare(fake);
        } else {
            fake.faults().set_error_ratio(0.0);
        }
        true
    }

    async fn reject(&self, object: &str, id: i64) -> bool {
        let email = self.key(id);
        let rule = Rule::custom("email", move |v| v.as_str() != Some(email.as_str()));
        self.fake().add_rule(object, rule);
        true
    }
}

destination_suite!(HubSpot::start =>
    worked_examples_in_every_supported_mode,
    unsupported_modes_are_refused,
    throttling_is_waited_out,
    server_errors_are_retried_then_reported,
    rejected_records_are_reported_and_not_retried,
    batches_respect_the_documented_limit,
    no_record_value_in_logs,
);
