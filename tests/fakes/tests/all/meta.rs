//! Meta custom audiences fake: add/remove in both encodings, sessions, invalid entries,
//! errors, throttling.

use std::collections::BTreeSet;
use std::time::Duration;

use retl_fakes::{MetaConfig, MetaFake, MetaThrottle, RateLimit};
use serde_json::{json, Value};

use crate::common::{client, hash};

const TOKEN: &str = "meta-token";
const AUDIENCE: &str = "6000000000001";

async fn fake() -> MetaFake {
    MetaFake::start(MetaConfig {
        access_token: TOKEN.into(),
        audiences: vec![AUDIENCE.into()],
        ..MetaConfig::default()
    })
    .await
    .expect("start")
}

fn url(fake: &MetaFake, audience: &str) -> String {
    format!("{}/v21.0/{audience}/users", fake.base_url())
}

async fn form_call(
    fake: &MetaFake,
    method: reqwest::Method,
    payload: &Value,
    session: Option<&Value>,
) -> (u16, Value) {
    let payload = payload.to_string();
    let mut form = vec![("access_token", TOKEN.to_string()), ("payload", payload)];
    if let Some(s) = session {
        form.push(("session", s.to_string()));
    }
    let resp = client()
        .request(method, url(fake, AUDIENCE))
        .form(&form)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn json_call(
    fake: &MetaFake,
    method: reqwest::Method,
    body: Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = client()
        .request(
            method,
            format!("{}?access_token={TOKEN}", url(fake, AUDIENCE)),
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap())
}

fn set(values: &[String]) -> BTreeSet<String> {
    values.iter().cloned().collect()
}

#[tokio::test]
async fn add_with_form_payload_then_remove_with_json_body() {
    let fake = fake().await;
    let payload = json!({"schema": ["EMAIL", "FN"], "data": [[hash(1), hash(11)], [hash(2), ""], [hash(3), hash(13)]]});
    let (status, body) = form_call(&fake, reqwest::Method::POST, &payload, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["audience_id"], AUDIENCE);
    assert_eq!(body["num_received"], 3);
    assert_eq!(body["num_invalid_entries"], 0);
    assert_eq!(body["invalid_entry_samples"], json!({}));
    assert!(body["session_id"].as_str().unwrap().parse::<u64>().is_ok());
    assert_eq!(
        fake.members(AUDIENCE, "EMAIL"),
        set(&[hash(1), hash(2), hash(3)])
    );
    assert_eq!(fake.members(AUDIENCE, "FN"), set(&[hash(11), hash(13)]));

    let remove = json!({"payload": {"schema": "EMAIL_SHA256", "data": [hash(2), hash(3)]}});
    let (status, _, body) = json_call(&fake, reqwest::Method::DELETE, remove).await;
    assert_eq!(status, 200);
    assert_eq!(body["num_received"], 2);
    assert_eq!(fake.members(AUDIENCE, "EMAIL_SHA256"), set(&[hash(1)]));
    assert_eq!(fake.requests()[1].records_in_batch, Some(2));
}

#[tokio::test]
async fn sessions_are_recorded_across_batches() {
    let fake = fake().await;
    for seq in 1..=2u64 {
        let session = json!({"session_id": 9001, "batch_seq": seq, "last_batch_flag": seq == 2, "estimated_num_total": 4});
        let payload = json!({"schema": ["EMAIL"], "data": [[hash(seq as u32 * 10)], [hash(seq as u32 * 10 + 1)]]});
        let (status, body) =
            form_call(&fake, reqwest::Method::POST, &payload, Some(&session)).await;
        assert_eq!(status, 200);
        assert_eq!(body["session_id"], "9001");
    }
    let sessions = fake.sessions(AUDIENCE);
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].batch_seqs, vec![1, 2]);
    assert!(sessions[0].last_batch_received);
    assert_eq!(
        (sessions[0].num_received, sessions[0].estimated_num_total),
        (4, Some(4))
    );
    assert_eq!(fake.audience(AUDIENCE)["EMAIL"].len(), 4);
}

#[tokio::test]
async fn invalid_identifiers_are_counted_and_sampled() {
    let fake = fake().await;
    let upper = hash(5).to_uppercase().replace('0', "A");
    let payload = json!({"schema": ["EMAIL", "EXTERN_ID"], "data": [
        [hash(1), "crm-1"],
        ["plain@example.com", "crm-2"],
        [upper, ""],
        ["", ""],
    ]});
    let (status, body) = form_call(&fake, reqwest::Method::POST, &payload, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["num_received"], 4);
    assert_eq!(body["num_invalid_entries"], 3);
    assert_eq!(body["invalid_entry_samples"]["plain@example.com"], "EMAIL");
    assert_eq!(fake.members(AUDIENCE, "EMAIL"), set(&[hash(1)]));
    assert_eq!(
        fake.members(AUDIENCE, "EXTERN_ID"),
        set(&["crm-1".to_string()])
    );
}

#[tokio::test]
async fn graph_errors_for_auth_audience_schema_and_size() {
    let fake = fake().await;
    let payload = json!({"schema": "EMAIL_SHA256", "data": [hash(1)]}).to_string();
    let resp = client()
        .post(url(&fake, AUDIENCE))
        .form(&[("payload", payload.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], 104);
    assert!(body["error"]["fbtrace_id"].is_string());

    let resp = client()
        .post(url(&fake, AUDIENCE))
        .bearer_auth("wrong")
        .form(&[("payload", payload.as_str())])
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (
            body["error"]["code"].as_u64(),
            body["error"]["type"].as_str()
        ),
        (Some(190), Some("OAuthException"))
    );

    let resp = client()
        .post(url(&fake, "777"))
        .form(&[("access_token", TOKEN), ("payload", payload.as_str())])
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (
            body["error"]["code"].as_u64(),
            body["error"]["error_subcode"].as_u64()
        ),
        (Some(100), Some(33))
    );

    let mismatch = json!({"schema": ["EMAIL", "FN"], "data": [[hash(1)]]});
    let (status, body) = form_call(&fake, reqwest::Method::POST, &mismatch, None).await;
    assert_eq!((status, body["error"]["code"].as_u64()), (400, Some(100)));

    let rows: Vec<Value> = (0..10_001).map(|i| json!([hash(i)])).collect();
    let (status, _, body) = json_call(
        &fake,
        reqwest::Method::POST,
        json!({"payload": {"schema": ["EMAIL"], "data": rows}}),
    )
    .await;
    assert_eq!((status, body["error"]["code"].as_u64()), (400, Some(100)));
    assert!(fake.audience(AUDIENCE).is_empty());
}

#[tokio::test]
async fn throttling_is_http_400_with_a_throttle_code() {
    let fake = fake().await;
    fake.faults()
        .set_rate_limit(Some(RateLimit::sliding(1, Duration::from_secs(300))));
    let body = json!({"payload": {"schema": ["EMAIL"], "data": [[hash(1)]]}});
    let (status, headers, _) = json_call(&fake, reqwest::Method::POST, body.clone()).await;
    assert_eq!(status, 200);
    let usage: Value =
        serde_json::from_str(headers["x-business-use-case-usage"].to_str().unwrap()).unwrap();
    assert_eq!(usage["1234567890"][0]["type"], "custom_audience");
    assert_eq!(usage["1234567890"][0]["call_count"], 100);
    let (status, _, err) = json_call(&fake, reqwest::Method::POST, body.clone()).await;
    assert_eq!(status, 400);
    assert_eq!(
        (
            err["error"]["code"].as_u64(),
            err["error"]["error_subcode"].as_u64()
        ),
        (Some(17), Some(2_446_079))
    );
    assert_eq!(err["error"]["is_transient"], true);
    fake.set_throttle(MetaThrottle::ad_account());
    let (_, _, err) = json_call(&fake, reqwest::Method::POST, body).await;
    assert_eq!(err["error"]["code"], 613);
    assert_eq!(fake.faults().stats().rate_limited, 2);
}
