//! HubSpot CRM v3 fake: auth, batch endpoints, limits, per-input errors, rate limit.

use std::time::Duration;

use retl_fakes::{BatchErrorMode, HubSpotConfig, HubSpotFake, RateLimit, Rule};
use serde_json::{json, Value};

use crate::common::{client, header_u64};

const TOKEN: &str = "pat-test";

async fn fake() -> HubSpotFake {
    HubSpotFake::start(HubSpotConfig {
        token: TOKEN.into(),
        ..HubSpotConfig::default()
    })
    .await
    .expect("start")
}

async fn call(
    fake: &HubSpotFake,
    action: &str,
    body: Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = client()
        .post(format!(
            "{}/crm/v3/objects/contacts/batch/{action}",
            fake.base_url()
        ))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .expect("send");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

fn upsert_input(email: &str, first: &str) -> Value {
    json!({"id": email, "idProperty": "email", "properties": {"email": email, "firstname": first}})
}

#[tokio::test]
async fn missing_or_wrong_token_gets_documented_401() {
    let fake = fake().await;
    let url = format!("{}/crm/v3/objects/contacts/batch/read", fake.base_url());
    let resp = client()
        .post(&url)
        .json(&json!({"inputs": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["category"], "INVALID_AUTHENTICATION");
    assert_eq!(body["status"], "error");
    assert!(body["correlationId"].is_string());
    let resp = client()
        .post(&url)
        .bearer_auth("nope")
        .json(&json!({"inputs": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let log = fake.requests();
    assert_eq!(log.len(), 2);
    assert_eq!((log[0].status, log[0].records_in_batch), (401, None));
}

#[tokio::test]
async fn upsert_creates_then_updates_by_unique_property() {
    let fake = fake().await;
    let body = json!({"inputs": [upsert_input("a@x.io", "Ann"), upsert_input("b@x.io", "Bob")]});
    let (status, headers, created) = call(&fake, "upsert", body).await;
    assert_eq!(status, 200);
    assert_eq!(created["status"], "COMPLETE");
    let results = created["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert!(results
        .iter()
        .all(|r| r["new"] == json!(true) && r["id"].is_string()));
    assert_eq!(header_u64(&headers, "x-hubspot-ratelimit-max"), Some(190));
    assert_eq!(
        header_u64(&headers, "x-hubspot-ratelimit-remaining"),
        Some(189)
    );
    assert_eq!(
        header_u64(&headers, "x-hubspot-ratelimit-interval-milliseconds"),
        Some(10_000)
    );
    assert!(header_u64(&headers, "x-hubspot-ratelimit-daily-remaining").is_some());

    let body = json!({"inputs": [upsert_input("a@x.io", "Anna")]});
    let (status, _, updated) = call(&fake, "upsert", body).await;
    assert_eq!(status, 200);
    assert_eq!(updated["results"][0]["new"], json!(false));
    assert_eq!(updated["results"][0]["id"], results[0]["id"]);
    let stored = fake.get("contacts", "email", "a@x.io").unwrap();
    assert_eq!(stored["properties"]["firstname"], "Anna");
    assert_eq!(fake.records("0-1").len(), 2);
    assert_eq!(fake.requests()[0].records_in_batch, Some(2));
}

#[tokio::test]
async fn create_read_update_archive_round_trip() {
    let fake = fake().await;
    let (status, _, created) = call(
        &fake,
        "create",
        json!({"inputs": [
            {"properties": {"email": "c@x.io", "lastname": "C"}},
            {"properties": {"email": "d@x.io", "lastname": "D"}},
        ]}),
    )
    .await;
    assert_eq!(status, 201);
    let ids: Vec<String> = created["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();

    let (status, _, updated) = call(
        &fake,
        "update",
        json!({"inputs": [
            {"id": ids[0], "properties": {"lastname": "Changed"}},
            {"id": "d@x.io", "idProperty": "email", "properties": {"lastname": ""}},
        ]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(updated["results"][0]["properties"]["lastname"], "Changed");
    assert!(
        fake.get("contacts", "email", "d@x.io").unwrap()["properties"]
            .get("lastname")
            .is_none()
    );

    let (status, _, read) = call(
        &fake,
        "read",
        json!({"inputs": [{"id": ids[0]}, {"id": "999"}], "properties": ["lastname"]}),
    )
    .await;
    assert_eq!(status, 207);
    assert_eq!(read["results"][0]["properties"]["lastname"], "Changed");
    assert!(read["results"][0]["properties"].get("email").is_none());
    assert_eq!(read["numErrors"], 1);
    assert_eq!(read["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(read["errors"][0]["context"]["ids"], json!(["999"]));

    let (status, _, _) = call(
        &fake,
        "archive",
        json!({"inputs": [{"id": ids[0]}, {"id": "424242"}]}),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(fake.records("contacts").len(), 1);
    assert_eq!(fake.archived("contacts").len(), 1);
    let (status, _, gone) = call(
        &fake,
        "update",
        json!({"inputs": [{"id": ids[0], "properties": {"lastname": "X"}}]}),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(gone["category"], "OBJECT_NOT_FOUND");
}

#[tokio::test]
async fn batch_over_100_inputs_is_a_validation_error() {
    let fake = fake().await;
    let inputs: Vec<Value> = (0..101)
        .map(|i| upsert_input(&format!("u{i}@x.io"), "N"))
        .collect();
    let (status, _, body) = call(&fake, "upsert", json!({"inputs": inputs})).await;
    assert_eq!(status, 400);
    assert_eq!(body["category"], "VALIDATION_ERROR");
    assert!(fake.records("contacts").is_empty());
    assert_eq!(fake.requests()[0].records_in_batch, Some(101));
}

#[tokio::test]
async fn invalid_input_fails_whole_batch_unless_traced() {
    let fake = fake().await;
    fake.add_rule(
        "contacts",
        Rule::contains("email", "@").with_code("INVALID_EMAIL"),
    );
    let inputs = json!([
        upsert_input("ok1@x.io", "A"),
        upsert_input("broken", "B"),
        upsert_input("ok2@x.io", "C")
    ]);
    let (status, _, body) = call(&fake, "upsert", json!({"inputs": inputs})).await;
    assert_eq!(status, 400);
    assert_eq!(body["category"], "VALIDATION_ERROR");
    assert_eq!(body["errors"][0]["in"], "inputs[1].properties.email");
    assert_eq!(body["errors"][0]["code"], "INVALID_EMAIL");
    assert_eq!(body["context"]["ids"], json!(["broken"]));
    assert!(fake.records("contacts").is_empty(), "nothing written");

    let mut traced = inputs.clone();
    for (i, input) in traced.as_array_mut().unwrap().iter_mut().enumerate() {
        input["objectWriteTraceId"] = json!(format!("t{i}"));
    }
    let (status, _, body) = call(&fake, "upsert", json!({"inputs": traced})).await;
    assert_eq!(status, 207);
    assert_eq!(body["numErrors"], 1);
    assert_eq!(body["errors"][0]["status"], "error");
    assert_eq!(body["errors"][0]["category"], "VALIDATION_ERROR");
    assert_eq!(
        body["errors"][0]["context"]["objectWriteTraceId"],
        json!(["t1"])
    );
    assert_eq!(body["results"].as_array().unwrap().len(), 2);
    assert_eq!(body["results"][0]["objectWriteTraceId"], "t0");
    assert_eq!(fake.records("contacts").len(), 2);

    fake.set_error_mode(BatchErrorMode::WholeBatch);
    let (status, _, _) = call(&fake, "upsert", json!({"inputs": traced})).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn conflicts_duplicates_and_non_unique_id_property() {
    let fake = fake().await;
    let existing = fake.insert("contacts", json!({"email": "dup@x.io"}));
    let (status, _, body) = call(
        &fake,
        "create",
        json!({"inputs": [{"properties": {"email": "dup@x.io"}}]}),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(body["category"], "CONFLICT");
    assert_eq!(
        body["message"],
        format!("Contact already exists. Existing ID: {existing}")
    );

    let body = json!({"inputs": [{"id": "Ann", "idProperty": "firstname", "properties": {}}]});
    let (status, _, body) = call(&fake, "upsert", body).await;
    assert_eq!(status, 400);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("non-unique 0-1 property firstname"));

    let body = json!({"inputs": [upsert_input("z@x.io", "A"), upsert_input("z@x.io", "B")]});
    let (status, _, body) = call(&fake, "upsert", body).await;
    assert_eq!(status, 400);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .starts_with("Duplicate IDs found in batch input"));
}

#[tokio::test]
async fn ten_second_rolling_limit_answers_documented_429() {
    let fake = fake().await;
    fake.faults()
        .set_rate_limit(Some(RateLimit::sliding(2, Duration::from_secs(10))));
    for _ in 0..2 {
        assert_eq!(call(&fake, "read", json!({"inputs": []})).await.0, 200);
    }
    let (status, headers, body) = call(&fake, "read", json!({"inputs": []})).await;
    assert_eq!(status, 429);
    assert_eq!(body["errorType"], "RATE_LIMIT");
    assert_eq!(body["policyName"], "TEN_SECONDLY_ROLLING");
    assert!(body["correlationId"].is_string() && body["requestId"].is_string());
    let retry = header_u64(&headers, "retry-after").unwrap();
    assert!((1..=10).contains(&retry));
    assert_eq!(
        header_u64(&headers, "x-hubspot-ratelimit-remaining"),
        Some(0)
    );

    fake.faults().set_send_retry_after(false);
    let (status, headers, _) = call(&fake, "read", json!({"inputs": []})).await;
    assert_eq!(status, 429);
    assert!(headers.get("retry-after").is_none());
    assert_eq!(fake.faults().stats().rate_limited, 2);
}

#[tokio::test]
async fn daily_limit_answers_daily_policy() {
    let fake = HubSpotFake::start(HubSpotConfig {
        token: TOKEN.into(),
        daily_limit: Some(1),
        ..HubSpotConfig::default()
    })
    .await
    .unwrap();
    assert_eq!(call(&fake, "read", json!({"inputs": []})).await.0, 200);
    let (status, headers, body) = call(&fake, "read", json!({"inputs": []})).await;
    assert_eq!(status, 429);
    assert_eq!(body["policyName"], "DAILY");
    assert_eq!(
        header_u64(&headers, "x-hubspot-ratelimit-daily-remaining"),
        Some(0)
    );
}

#[tokio::test]
async fn reversed_results_still_carry_ids() {
    let fake = fake().await;
    fake.set_reverse_results(true);
    let body = json!({"inputs": [upsert_input("r1@x.io", "A"), upsert_input("r2@x.io", "B")]});
    let (_, _, body) = call(&fake, "upsert", body).await;
    assert_eq!(body["results"][0]["properties"]["email"], "r2@x.io");
}
