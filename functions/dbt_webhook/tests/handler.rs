//! The dbt Cloud webhook against a deployed stack on moto: a signed, successful
//! `job.run.completed` puts one `retl.trigger` per sync listing the job on the stack's bus
//! (and the trigger function starts them from those events); a missing or wrong signature is
//! a 401 that puts nothing; other statuses and events start nothing; no log line holds the
//! body, the signature or the secret.

use std::io::Write;
use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use retl_fn_dbt_webhook::{handle, UrlRequest, UrlResponse, SECRET_NAME};
use retl_fn_testkit::TestStack;
use retl_fn_trigger::TriggerRequest;
use retl_shared::aws_host::TriggerOutcome;
use serde_json::{json, Value};
use sha2::Sha256;

const SECRET: &str = "dbt-webhook-secret-key";

/// In every body the webhook receives: it must never reach a log line.
const PLANTED: &str = "planted-job-name-5e2b";

/// What the handler logs (at trace, the dependencies capped as the functions' log setup caps
/// them), in memory, for the current thread (the test's own: a tokio test runs its body there).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .expect("the log buffer")
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let mut filter = tracing_subscriber::EnvFilter::new("trace");
        for quiet in retl_shared::logging::QUIET_DEPENDENCIES {
            filter = filter.add_directive(quiet.parse().expect("a directive"));
        }
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("the log buffer")).into_owned()
    }
}

fn completed(job: &str, status: &str, code: i64) -> String {
    json!({
        "accountId": 1, "webhooksID": "wsu_12345abcde", "eventId": "wev_1",
        "timestamp": "2026-01-31T21:15:20Z", "eventType": "job.run.completed",
        "webhookName": "retl",
        "data": {"jobId": job, "jobName": PLANTED, "runId": "4242", "environmentId": "1",
                 "runStatus": status, "runStatusCode": code, "runStatusMessage": "None"}
    })
    .to_string()
}

fn request(body: &str, authorization: Option<&str>) -> UrlRequest {
    let mut headers = serde_json::Map::new();
    headers.insert("content-type".into(), "application/json".into());
    if let Some(a) = authorization {
        headers.insert("authorization".into(), a.into());
    }
    let event = json!({"version": "2.0", "rawPath": "/", "headers": headers, "body": body,
                       "isBase64Encoded": false,
                       "requestContext": {"http": {"method": "POST", "path": "/"}}});
    serde_json::from_value(event).expect("a function URL event")
}

fn signed(body: &str, key: &str) -> UrlRequest {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(body.as_bytes());
    request(body, Some(&hex::encode(mac.finalize().into_bytes())))
}

fn body(r: &UrlResponse) -> Value {
    serde_json::from_str(&r.body).expect("a JSON body")
}

/// A stack with `people` and `orders` listing dbt Cloud job 12345 and `other` job 999, and a
/// queue receiving the `retl.trigger` events of its bus.
async fn stack_with_dbt_jobs() -> (TestStack, String) {
    let stack = TestStack::start("fn_dbt_webhook").await;
    for sync in ["people", "orders", "other"] {
        stack.tables(sync, &[1], &[]).await;
    }
    stack
        .deploy(&[
            ("people", "upsert", "triggers: [{ dbt_cloud_job: 12345 }]\n"),
            (
                "orders",
                "upsert",
                "triggers:\n  - { after_sync: people }\n  - { dbt_cloud_job: 12345 }\n",
            ),
            ("other", "upsert", "triggers: [{ dbt_cloud_job: 999 }]\n"),
        ])
        .await;
    let events = stack.capture_events("retl.trigger").await;
    (stack, events)
}

/// Hands each event to the trigger function, as the stack's rule does: each starts its run.
async fn start_each(stack: &TestStack, events: &[Value]) {
    for event in events {
        let request: TriggerRequest = serde_json::from_value(event.clone()).expect("a trigger");
        let started = retl_fn_trigger::handle(&stack.host, request)
            .await
            .expect("started");
        match &started.started[..] {
            [TriggerOutcome::Started { run_id, .. }] => {
                assert_eq!(stack.run(run_id).await.trigger, "event");
            }
            other => panic!("expected a started run, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_successful_job_run_triggers_the_syncs_that_list_the_job() {
    let (stack, events) = stack_with_dbt_jobs().await;
    let logs = Captured::default();
    let _logging = logs.install();
    let success = completed("12345", "Success", 10);

    let unreadable = handle(&stack.host, signed(&success, SECRET)).await.unwrap();
    assert_eq!(
        unreadable.status_code, 500,
        "no secret stored yet: {unreadable:?}"
    );
    stack.put_secret(SECRET_NAME, SECRET).await;

    refuses_unsigned_and_missigned(&stack, &success).await;

    let not_json = format!("{{\"eventType\": \"{PLANTED}");
    let answer = handle(&stack.host, signed(&not_json, SECRET))
        .await
        .unwrap();
    assert_eq!(answer.status_code, 400, "{answer:?}");

    let errored = completed("12345", "Errored", 20);
    let answer = handle(&stack.host, signed(&errored, SECRET)).await.unwrap();
    assert_eq!(answer.status_code, 200, "{answer:?}");
    assert_eq!(body(&answer)["triggered"], json!([]));
    assert!(body(&answer)["ignored"]
        .as_str()
        .unwrap()
        .contains("Errored"));
    assert!(
        stack.events_now(&events).await.is_empty(),
        "refused and ignored requests put nothing"
    );

    let answer = handle(&stack.host, signed(&success, SECRET)).await.unwrap();
    assert_eq!(answer.status_code, 200, "{answer:?}");
    assert_eq!(
        body(&answer),
        json!({"job": 12345, "triggered": ["orders", "people"]})
    );
    let put = stack.events_now(&events).await;
    let mut syncs: Vec<&str> = put
        .iter()
        .map(|e| e["detail"]["sync"].as_str().unwrap())
        .collect();
    syncs.sort_unstable();
    assert_eq!(syncs, ["orders", "people"], "{put:?}");
    for event in &put {
        assert_eq!(event["source"], "retl");
        assert_eq!(event["detail"]["stack"], stack.name());
    }
    start_each(&stack, &put).await;

    let logged = logs.text();
    assert!(
        logged.contains("dbt Cloud webhook request refused"),
        "{logged}"
    );
    assert!(
        logged.contains("dbt Cloud job run triggered syncs"),
        "{logged}"
    );
    let signature = signed(&success, SECRET)
        .header("authorization")
        .unwrap()
        .to_string();
    for secret in [PLANTED, SECRET, signature.as_str()] {
        assert!(
            !logged.contains(secret),
            "a log line holds `{secret}`: {logged}"
        );
    }
}

/// No signature, another key's, and a body other than the one signed: each a 401.
async fn refuses_unsigned_and_missigned(stack: &TestStack, success: &str) {
    let missing = handle(&stack.host, request(success, None)).await.unwrap();
    assert_eq!(missing.status_code, 401, "{missing:?}");
    assert!(body(&missing)["error"]
        .as_str()
        .unwrap()
        .contains("no signature"));
    let wrong = handle(&stack.host, signed(success, "another key"))
        .await
        .unwrap();
    assert_eq!(wrong.status_code, 401, "{wrong:?}");
    assert!(
        !wrong.body.contains("12345"),
        "a refusal says nothing of the body"
    );
    let tampered = UrlRequest {
        body: Some(completed("999", "Success", 10)),
        ..signed(success, SECRET)
    };
    let tampered = handle(&stack.host, tampered).await.unwrap();
    assert_eq!(tampered.status_code, 401, "{tampered:?}");
}
