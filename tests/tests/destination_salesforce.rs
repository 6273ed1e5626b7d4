//! Salesforce as a destination, through the destination conformance suite against the
//! Salesforce fake (JWT bearer flow, sObject Collections and SOQL; a fresh org per scenario,
//! Contacts keyed by the external id `Ext__c`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use retl_fakes::{JwtClient, LoggedRequest, Rule, SalesforceConfig, SalesforceFake};
use retl_tests::destination_suite;
use retl_tests::destination_suite::{DestinationUnderTest, Held, Shape, Write};
use serde_json::{json, Value};

const PRIVATE: &str = include_str!("../fakes/tests/fixtures/jwt_private.pem");
const PUBLIC: &str = include_str!("../fakes/tests/fixtures/jwt_public.pem");
const CLIENT_ID: &str = "retl-connected-app";
const USERNAME: &str = "sync@example.com";

struct Salesforce {
    fake: Mutex<Arc<SalesforceFake>>,
}

async fn start_org() -> Arc<SalesforceFake> {
    let config = SalesforceConfig {
        jwt: Some(JwtClient {
            client_id: CLIENT_ID.into(),
            username: USERNAME.into(),
            public_key_pem: PUBLIC.into(),
        }),
        unique_fields: vec![("Contact".into(), "Ext__c".into())],
        required_fields: vec![("Contact".into(), "LastName".into())],
        ..SalesforceConfig::default()
    };
    let fake = SalesforceFake::start(config)
        .await
        .expect("the Salesforce fake starts");
    // The connector derives the JWT audience from the login URL, here the fake itself.
    fake.add_jwt_audience(fake.base_url());
    Arc::new(fake)
}

/// Makes every request fail with 503 once the run's first request (its describe of the sObject; the token endpoint is never faulted) was
/// answered: a run that cannot prepare fails as a whole; the check is about writes.
/// Whether the fault watcher counts request `r`.
fn counted(r: &&LoggedRequest) -> bool {
    r.path.starts_with("/services/data/")
}

fn fail_after_prepare(fake: Arc<SalesforceFake>) {
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

impl Salesforce {
    async fn start(_check: &str) -> Self {
        Salesforce {
            fake: Mutex::new(start_org().await),
        }
    }

    fn fake(&self) -> Arc<SalesforceFake> {
        Arc::clone(&self.fake.lock().unwrap())
    }
}

/// An external id as the model id it came from (the fake keeps what was sent).
fn model_id(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().expect("a numeric external id"),
        other => other.as_i64().expect("a numeric external id"),
    }
}

#[async_trait]
impl DestinationUnderTest for Salesforce {
    fn name(&self) -> &str {
        "salesforce"
    }

    fn connection(&self, delivery: &str) -> String {
        format!(
            "type: salesforce, login_url: \"{}\", api_version: \"60.0\", client_id: {CLIENT_ID}, \
             username: {USERNAME}, private_key_env: SF_PRIVATE_KEY, delivery: {{ {delivery} }}",
            self.fake().base_url()
        )
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![("SF_PRIVATE_KEY".into(), PRIVATE.into())]
    }

    async fn fresh_object(&self, _label: &str) -> String {
        *self.fake.lock().unwrap() = start_org().await;
        "Contact".into()
    }

    fn shape(&self) -> Shape {
        // Ext__c is a text field: the model sends its id as text, as Salesforce lists it.
        Shape {
            sql: "select cast(id as text) as id, name from model".into(),
            primary_key: "id".into(),
            mapping: "{ Ext__c: id, LastName: name }".into(),
        }
    }

    async fn seed(&self, object: &str, records: &[(i64, &str)]) -> bool {
        let fake = self.fake();
        for (id, name) in records {
            fake.insert(object, json!({"Ext__c": id.to_string(), "LastName": name}));
        }
        true
    }

    async fn holds(&self, object: &str) -> Held {
        let mut held = Held::new();
        for r in self.fake().records(object) {
            let id = model_id(&r["Ext__c"]);
            let name = r["LastName"].as_str().unwrap_or_default().to_string();
            assert!(
                held.insert(id, name).is_none(),
                "Ext__c {id} is in the org twice"
            );
        }
        held
    }

    async fn writes(&self) -> Option<Vec<Write>> {
        let requests = self.fake().requests();
        Some(
            requests
                .iter()
                .filter(|r| r.method != "GET" && r.path.starts_with("/services/data/"))
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
        // Salesforce's throttled answer is 403 REQUEST_LIMIT_EXCEEDED; the fake adds
        // Retry-After: 1.
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
        let rule = Rule::custom("Ext__c", move |v| {
            v.as_i64() != Some(id) && v.as_str() != Some(id.to_string().as_str())
        });
        self.fake().add_rule(object, rule);
        true
    }
}

destination_suite!(Salesforce::start =>
    worked_examples_in_every_supported_mode,
    unsupported_modes_are_refused,
    throttling_is_waited_out,
    server_errors_are_retried_then_reported,
    rejected_records_are_reported_and_not_retried,
    batches_respect_the_documented_limit,
    no_record_value_in_logs,
);
