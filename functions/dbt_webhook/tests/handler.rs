//! The dbt Cloud webhook against a deployed stack on moto: a signed, successful
//! `job.run.completed` puts one `retl.trigger` per sync listing the job on the stack's bus
//! (and the trigger function starts them from those events); a missing or wrong signature is
//! a 401 that puts nothing; other statuses and events start nothing.

use hmac::{Hmac, Mac};
use retl_fn_dbt_webhook::{handle, UrlRequest, UrlResponse, SECRET_NAME};
use retl_fn_testkit::TestStack;
use retl_fn_trigger::TriggerRequest;
use retl_shared::aws_host::TriggerOutcome;
use serde_json::{json, Value};
use sha2::Sha256;

const SECRET: &str = "dbt-webhook-secret-key";

fn completed(job: &str, status: &str, code: i64) -> String {
    json!({
        "accountId": 1, "webhooksID": "wsu_12345abcde", "eventId": "wev_1",
        "timestamp": "2026-01-31T21:15:20Z", "eventType": "job.run.completed",
        "webhookName": "retl",
        "data": {"jobId": job, "jobName": "Daily build", "runId": "4242", "environmentId": "1",
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
    let success = completed("12345", "Success", 10);

    let unreadable = handle(&stack.host, signed(&success, SECRET)).await.unwrap();
    assert_eq!(
        unreadable.status_code, 500,
        "no secret stored yet: {unreadable:?}"
    );
    stack.put_secret(SECRET_NAME, SECRET).await;

    let missing = handle(&stack.host, request(&success, None)).await.unwrap();
    assert_eq!(missing.status_code, 401, "{missing:?}");
    assert!(body(&missing)["error"]
        .as_str()
        .unwrap()
        .contains("no signature"));
    let wrong = handle(&stack.host, signed(&success, "another key"))
        .await
        .unwrap();
    assert_eq!(wrong.status_code, 401, "{wrong:?}");
    assert!(
        !wrong.body.contains("12345"),
        "a refusal says nothing of the body"
    );
    let tampered = UrlRequest {
        body: Some(completed("999", "Success", 10)),
        ..signed(&success, SECRET)
    };
    let tampered = handle(&stack.host, tampered).await.unwrap();
    assert_eq!(tampered.status_code, 401, "{tampered:?}");

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
}
