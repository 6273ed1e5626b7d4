//! Amazon SQS as a destination, through the destination conformance suite against moto (a
//! queue per scenario): what a queue holds is its messages, folded in order by key.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use retl_tests::destination_suite;
use retl_tests::destination_suite::{DestinationUnderTest, Held, Write};
use retl_tests::moto::Moto;
use serde_json::Value;

struct Sqs {
    moto: Moto,
    client: Client,
    /// The queue of the current scenario.
    url: Mutex<String>,
    /// Per object: its queue, and what its messages said so far.
    queues: Mutex<BTreeMap<String, (String, Held)>>,
    /// The object of the current scenario.
    current: Mutex<String>,
    /// Messages received since the last `clear_log`.
    since_clear: Mutex<usize>,
}

impl Sqs {
    async fn start(_check: &str) -> Self {
        let moto = Moto::start();
        let client = Client::new(&moto.sdk_config().await);
        let url = format!("{}/123456789012/none-yet", moto.endpoint);
        Sqs {
            moto,
            client,
            url: Mutex::new(url),
            queues: Mutex::new(BTreeMap::new()),
            current: Mutex::new(String::new()),
            since_clear: Mutex::new(0),
        }
    }

    /// Every message waiting in `url`, received and deleted.
    async fn drain(&self, url: &str) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let got = self
                .client
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive from moto");
            if got.messages().is_empty() {
                return out;
            }
            for m in got.messages() {
                out.push(serde_json::from_str(m.body().unwrap_or_default()).expect("a JSON body"));
                self.client
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("delete from moto");
            }
        }
    }
}

impl Sqs {
    /// Receives `object`'s waiting messages and folds them into what it holds.
    async fn absorb(&self, object: &str) {
        let url = self.queues.lock().unwrap()[object].0.clone();
        let messages = self.drain(&url).await;
        *self.since_clear.lock().unwrap() += messages.len();
        let mut queues = self.queues.lock().unwrap();
        let held = &mut queues.get_mut(object).expect("a queue of this check").1;
        for m in messages {
            let key = m["key"].as_str().and_then(|k| k.parse().ok());
            let id: i64 = key.expect("a numeric key");
            if m["op"] == "delete" {
                held.remove(&id);
            } else {
                let name = m["fields"]["name"].as_str().unwrap_or_default();
                held.insert(id, name.to_string());
            }
        }
    }
}

#[async_trait]
impl DestinationUnderTest for Sqs {
    fn name(&self) -> &str {
        "sqs"
    }

    fn connection(&self, delivery: &str) -> String {
        format!(
            "type: sqs, queue_url: \"{}\", delivery: {{ {delivery} }}",
            self.url.lock().unwrap()
        )
    }

    fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.moto.endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .to_vec()
    }

    async fn fresh_object(&self, label: &str) -> String {
        let name = format!("people-{}", label.replace('_', "-"));
        let created = self.client.create_queue().queue_name(&name).send().await;
        let url = created
            .expect("create a queue in moto")
            .queue_url()
            .unwrap_or_default()
            .to_string();
        *self.url.lock().unwrap() = url.clone();
        let held = Held::new();
        self.queues
            .lock()
            .unwrap()
            .insert(name.clone(), (url, held));
        *self.current.lock().unwrap() = name.clone();
        name
    }

    async fn seed(&self, _object: &str, _records: &[(i64, &str)]) -> bool {
        false
    }

    async fn holds(&self, object: &str) -> Held {
        self.absorb(object).await;
        self.queues.lock().unwrap()[object].1.clone()
    }

    async fn writes(&self) -> Option<Vec<Write>> {
        // moto keeps no request log: each message received stands for one record sent.
        let current = self.current.lock().unwrap().clone();
        self.absorb(&current).await;
        let n = *self.since_clear.lock().unwrap();
        Some(vec![
            Write {
                status: 200,
                records: 1
            };
            n
        ])
    }

    async fn clear_log(&self) {
        let current = self.current.lock().unwrap().clone();
        self.absorb(&current).await;
        *self.since_clear.lock().unwrap() = 0;
    }

    async fn throttle_next(&self, _n: u32) -> Option<u64> {
        None
    }

    async fn fail_requests(&self, _on: bool) -> bool {
        false
    }

    async fn reject(&self, _object: &str, _id: i64) -> bool {
        false
    }
}

destination_suite!(Sqs::start =>
    worked_examples_in_every_supported_mode,
    unsupported_modes_are_refused,
    no_record_value_in_logs,
);
