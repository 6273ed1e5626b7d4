//! Meta custom audiences as a destination, through the destination conformance suite against
//! the Meta Marketing API fake (an audience per scenario; people by `EXTERN_ID`, the name
//! sent as `MADID`, one of the two identifiers Meta takes unhashed, so it can be read back).

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use retl_fakes::{MetaConfig, MetaFake, Rule};
use retl_tests::destination_suite;
use retl_tests::destination_suite::{DestinationUnderTest, Held, Shape, Write};

const TOKEN: &str = "meta-test-token";

struct Meta {
    fake: MetaFake,
    next: AtomicU64,
}

impl Meta {
    async fn start(_check: &str) -> Self {
        let fake = MetaFake::start(MetaConfig {
            access_token: TOKEN.into(),
            audiences: Vec::new(),
            ..MetaConfig::default()
        })
        .await
        .expect("the Meta fake starts");
        Meta {
            fake,
            next: AtomicU64::new(23_850_000_000_000_001),
        }
    }
}

#[async_trait]
impl DestinationUnderTest for Meta {
    fn name(&self) -> &str {
        "meta_audience"
    }

    fn connection(&self, delivery: &str) -> String {
        format!(
            "type: meta_audience, access_token_env: META_TOKEN, base_url: \"{}\", \
             api_version: v21.0, delivery: {{ {delivery} }}",
            self.fake.base_url()
        )
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![("META_TOKEN".into(), TOKEN.into())]
    }

    async fn fresh_object(&self, _label: &str) -> String {
        let audience = self.next.fetch_add(1, Ordering::SeqCst).to_string();
        self.fake.create_audience(&audience);
        audience
    }

    fn shape(&self) -> Shape {
        Shape {
            mapping: "{ EXTERN_ID: id, MADID: name }".into(),
            ..Shape::default()
        }
    }

    fn stored(&self, name: &str) -> String {
        // MADID is normalised to lowercase.
        name.trim().to_lowercase()
    }

    async fn seed(&self, _object: &str, _records: &[(i64, &str)]) -> bool {
        // Audience membership cannot be read back, so retl never knows of people it did
        // not add.
        false
    }

    async fn holds(&self, object: &str) -> Held {
        self.fake
            .people(object)
            .into_iter()
            .map(|p| {
                let id: i64 = p["EXTERN_ID"].parse().expect("a numeric EXTERN_ID");
                (id, p.get("MADID").cloned().unwrap_or_default())
            })
            .collect()
    }

    async fn writes(&self) -> Option<Vec<Write>> {
        let requests = self.fake.requests();
        Some(
            requests
                .iter()
                .filter(|r| r.path.ends_with("/users"))
                .map(|r| Write {
                    status: r.status,
                    records: r.records_in_batch.unwrap_or(0),
                })
                .collect(),
        )
    }

    async fn clear_log(&self) {
        self.fake.clear_requests();
    }

    async fn throttle_next(&self, n: u32) -> Option<u64> {
        // Meta answers throttling as HTTP 400 with a code. Without a budget window the
        // fake's answer says `Retry-After: 1` (with one, the seconds until the window frees).
        self.fake.faults().set_rate_limit(None);
        self.fake.faults().burst_429(n);
        Some(1)
    }

    async fn fail_requests(&self, on: bool) -> bool {
        self.fake
            .faults()
            .set_error_ratio(if on { 1.0 } else { 0.0 });
        true
    }

    async fn reject(&self, _object: &str, id: i64) -> bool {
        let id = id.to_string();
        self.fake.add_rule(Rule::custom("EXTERN_ID", move |v| {
            v.as_str() != Some(id.as_str())
        }));
        true
    }
}

destination_suite!(Meta::start =>
    worked_examples_in_every_supported_mode,
    unsupported_modes_are_refused,
    throttling_is_waited_out,
    server_errors_are_retried_then_reported,
    rejected_records_are_reported_and_not_retried,
    batches_respect_the_documented_limit,
    no_record_value_in_logs,
);
