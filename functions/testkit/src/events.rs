//! What reaches the stack's event bus, captured by a rule whose target is an SQS queue.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{TestStack, ACCOUNT, REGION};

impl TestStack {
    /// Sends every event of `detail_type` on the stack's bus to a new queue; returns its URL.
    pub async fn capture_events(&self, detail_type: &str) -> String {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let name = format!("{}-events", self.name());
        let queue = sqs.create_queue().queue_name(&name).send().await;
        let url = queue
            .expect("create the event queue")
            .queue_url()
            .unwrap()
            .to_string();
        let pattern = json!({"detail-type": [detail_type]}).to_string();
        let rule = self
            .host
            .events
            .put_rule()
            .event_bus_name(&self.host.names.event_bus)
            .name(&name)
            .event_pattern(pattern);
        rule.send().await.expect("create the capture rule");
        let target = aws_sdk_eventbridge_target(&name);
        let targets = self.host.events.put_targets();
        let bus = &self.host.names.event_bus;
        let targets = targets.event_bus_name(bus).rule(&name).targets(target);
        targets.send().await.expect("target the queue");
        url
    }

    /// The next event on `queue` (from [`TestStack::capture_events`]), waiting up to 10 s.
    pub async fn next_event(&self, queue: &str) -> Value {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let received = sqs.receive_message().queue_url(queue).wait_time_seconds(1);
            let received = received.send().await.expect("receive an event");
            if let Some(message) = received.messages().first() {
                let body = message.body().unwrap_or_default();
                return serde_json::from_str(body).expect("EventBridge delivers JSON");
            }
        }
        panic!("no event reached {queue} within 10 s")
    }

    /// Every event on `queue` now (moto delivers an event before PutEvents returns, so what
    /// was put is there), taken off the queue.
    pub async fn events_now(&self, queue: &str) -> Vec<Value> {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let mut events = Vec::new();
        loop {
            let received = sqs
                .receive_message()
                .queue_url(queue)
                .max_number_of_messages(10);
            let received = received.send().await.expect("receive events");
            if received.messages().is_empty() {
                return events;
            }
            for message in received.messages() {
                let body = message.body().unwrap_or_default();
                events.push(serde_json::from_str(body).expect("EventBridge delivers JSON"));
                let handle = message.receipt_handle().unwrap_or_default();
                let deleted = sqs.delete_message().queue_url(queue).receipt_handle(handle);
                deleted.send().await.expect("delete a received event");
            }
        }
    }
}

fn aws_sdk_eventbridge_target(queue_name: &str) -> aws_sdk_eventbridge::types::Target {
    aws_sdk_eventbridge::types::Target::builder()
        .id("capture")
        .arn(format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{queue_name}"))
        .build()
        .expect("a target")
}
