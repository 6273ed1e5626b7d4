//! Braze fake: auth, /users/track success and partial failure, limits, /users/delete, 429.

use std::time::Duration;

use retl_fakes::{BrazeConfig, BrazeFake, RateLimit, Rule, TrackLimit};
use serde_json::{json, Value};

use crate::common::{client, header_u64};

const KEY: &str = "rest-key";

async fn fake() -> BrazeFake {
    BrazeFake::start(BrazeConfig {
        api_key: KEY.into(),
        ..BrazeConfig::default()
    })
    .await
    .expect("start")
}

async fn post(
    fake: &BrazeFake,
    path: &str,
    body: Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = client()
        .post(format!("{}{path}", fake.base_url()))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap())
}

#[tokio::test]
async fn wrong_key_is_401() {
    let fake = fake().await;
    let resp = client()
        .post(format!("{}/users/track", fake.base_url()))
        .bearer_auth("other")
        .json(&json!({"attributes": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert!(body["message"].is_string());
}

#[tokio::test]
async fn track_applies_attributes_and_sends_rate_limit_headers() {
    let fake = fake().await;
    let body = json!({"attributes": [
        {"external_id": "u1", "first_name": "Ann", "visits": {"inc": 2}},
        {"external_id": "u2", "email": "b@x.io", "_update_existing_only": false},
    ]});
    let (status, headers, out) = post(&fake, "/users/track", body).await;
    assert_eq!(status, 201);
    assert_eq!(
        out,
        json!({"message": "success", "attributes_processed": 2})
    );
    assert_eq!(header_u64(&headers, "x-ratelimit-limit"), Some(3000));
    assert_eq!(header_u64(&headers, "x-ratelimit-remaining"), Some(2999));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let reset = header_u64(&headers, "x-ratelimit-reset").unwrap();
    assert!(reset >= now && reset <= now + 4);
    assert_eq!(
        fake.user("u1").unwrap(),
        json!({"first_name": "Ann", "visits": 2})
    );
    let (_, _, _) = post(
        &fake,
        "/users/track",
        json!({"attributes": [{"external_id": "u1", "first_name": null, "visits": {"inc": 1}}]}),
    )
    .await;
    assert_eq!(fake.user("u1").unwrap(), json!({"visits": 3}));
    assert_eq!(fake.requests()[0].records_in_batch, Some(2));
}

#[tokio::test]
async fn invalid_objects_are_reported_by_index_and_the_rest_processed() {
    let fake = fake().await;
    fake.add_rule(Rule::contains("email", "@").with_message("Invalid email"));
    let body = json!({
        "attributes": [
            {"external_id": "ok", "email": "ok@x.io"},
            {"first_name": "nobody"},
            {"external_id": "bad", "email": "nope"},
        ],
        "events": [{"external_id": "ok", "name": "signed_up", "time": "2024-01-01T00:00:00Z"}, {"external_id": "ok"}],
    });
    let (status, _, out) = post(&fake, "/users/track", body).await;
    assert_eq!(status, 201);
    assert_eq!(out["message"], "success");
    assert_eq!(out["attributes_processed"], 1);
    assert_eq!(out["events_processed"], 1);
    let errors = out["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 3);
    assert_eq!(
        (
            errors[0]["input_array"].as_str(),
            errors[0]["index"].as_u64()
        ),
        (Some("attributes"), Some(1))
    );
    assert_eq!(errors[1]["type"], "Invalid email");
    assert_eq!(
        (
            errors[2]["input_array"].as_str(),
            errors[2]["index"].as_u64()
        ),
        (Some("events"), Some(1))
    );
    assert_eq!(fake.users().len(), 1);
    assert_eq!(fake.events("ok").len(), 1);
}

#[tokio::test]
async fn more_than_75_objects_combined_is_fatal() {
    let fake = fake().await;
    let attrs: Vec<Value> = (0..40)
        .map(|i| json!({"external_id": format!("u{i}"), "a": i}))
        .collect();
    let events: Vec<Value> = (0..40).map(|i| json!({"external_id": format!("u{i}"), "name": "e", "time": "2024-01-01T00:00:00Z"})).collect();
    let body = json!({"attributes": attrs, "events": events});
    let (status, _, out) = post(&fake, "/users/track", body.clone()).await;
    assert_eq!(status, 400);
    assert_eq!(out["message"], "Max Input Length Exceeded");
    assert!(fake.users().is_empty());
    fake.set_track_limit(TrackLimit::PerArray(75));
    let (status, _, out) = post(&fake, "/users/track", body).await;
    assert_eq!(status, 201);
    assert_eq!(
        (
            out["attributes_processed"].as_u64(),
            out["events_processed"].as_u64()
        ),
        (Some(40), Some(40))
    );
}

#[tokio::test]
async fn delete_by_external_ids_and_its_limits() {
    let fake = fake().await;
    fake.insert_user("d1", json!({"a": 1}));
    fake.insert_user("d2", json!({"a": 2}));
    fake.insert_user("keep", json!({"a": 3}));
    let (status, _, out) = post(
        &fake,
        "/users/delete",
        json!({"external_ids": ["d1", "d2", "unknown"]}),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(out, json!({"deleted": 3, "message": "success"}));
    assert_eq!(fake.deleted(), vec!["d1", "d2"]);
    assert_eq!(fake.users().keys().collect::<Vec<_>>(), vec!["keep"]);

    let ids: Vec<String> = (0..51).map(|i| format!("x{i}")).collect();
    let (status, _, out) = post(&fake, "/users/delete", json!({"external_ids": ids})).await;
    assert_eq!(status, 400);
    assert!(out["message"].as_str().unwrap().contains("max number"));
    let both = json!({"external_ids": ["keep"], "braze_ids": ["b"]});
    assert_eq!(post(&fake, "/users/delete", both).await.0, 400);
    assert!(fake.user("keep").is_some());
}

#[tokio::test]
async fn per_endpoint_budget_answers_429() {
    let fake = fake().await;
    fake.faults().set_bucket_rate_limit(
        "users/track",
        Some(RateLimit::fixed(1, Duration::from_secs(60))),
    );
    let body = json!({"attributes": [{"external_id": "u", "a": 1}]});
    assert_eq!(post(&fake, "/users/track", body.clone()).await.0, 201);
    let (status, headers, out) = post(&fake, "/users/track", body).await;
    assert_eq!(status, 429);
    assert!(out["message"].is_string());
    assert_eq!(header_u64(&headers, "x-ratelimit-remaining"), Some(0));
    assert!(header_u64(&headers, "retry-after").is_some_and(|s| (1..=60).contains(&s)));
    let (status, headers, _) = post(&fake, "/users/delete", json!({"external_ids": ["u"]})).await;
    assert_eq!(status, 201, "the delete bucket is separate");
    assert_eq!(header_u64(&headers, "x-ratelimit-limit"), Some(20_000));
}
