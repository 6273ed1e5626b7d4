//! The shared fault plan through real fakes: 5xx ratio and reproducibility, bursts of 429,
//! latency, hangs, stopping.

use std::time::{Duration, Instant};

use retl_fakes::{BrazeConfig, BrazeFake, FaultPlan, HubSpotConfig, HubSpotFake};
use serde_json::json;

use crate::common::client;

async fn braze(plan: FaultPlan) -> BrazeFake {
    BrazeFake::start(BrazeConfig {
        api_key: "k".into(),
        faults: plan,
        ..BrazeConfig::default()
    })
    .await
    .unwrap()
}

async fn statuses(fake: &BrazeFake, n: usize) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let resp = client()
            .post(format!("{}/users/track", fake.base_url()))
            .bearer_auth("k")
            .json(&json!({"attributes": [{"external_id": format!("u{i}"), "a": i}]}))
            .send()
            .await
            .unwrap();
        out.push(resp.status().as_u16());
    }
    out
}

#[tokio::test]
async fn error_ratio_is_close_to_target_and_reproducible() {
    let plan = FaultPlan {
        error_ratio: 0.25,
        error_seed: 42,
        ..FaultPlan::default()
    };
    let a = braze(plan.clone()).await;
    let b = braze(plan).await;
    let first = statuses(&a, 200).await;
    let second = statuses(&b, 200).await;
    assert_eq!(first, second, "same seed, same failures");
    let failed = first.iter().filter(|s| **s == 503).count();
    assert!((30..=70).contains(&failed), "{failed} of 200 failed");
    assert!(first.iter().all(|s| *s == 503 || *s == 201));
    let stats = a.faults().stats();
    assert_eq!((stats.requests, stats.server_errors), (200, failed as u64));
    assert_eq!(
        a.users().len(),
        200 - failed,
        "failed requests wrote nothing"
    );
    let log = a.requests();
    assert_eq!(log.iter().filter(|r| r.status == 503).count(), failed);
}

#[tokio::test]
async fn burst_of_429_then_normal_service() {
    let fake = braze(FaultPlan::default()).await;
    fake.faults().burst_429(2);
    assert_eq!(statuses(&fake, 3).await, vec![429, 429, 201]);
    assert_eq!(fake.faults().stats().rate_limited, 2);
}

#[tokio::test]
async fn slow_adds_latency_and_timeout_next_hangs_without_processing() {
    let fake = HubSpotFake::start(HubSpotConfig {
        token: "t".into(),
        faults: FaultPlan {
            hang: Duration::from_secs(2),
            ..FaultPlan::default()
        },
        ..HubSpotConfig::default()
    })
    .await
    .unwrap();
    let url = format!("{}/crm/v3/objects/contacts/batch/create", fake.base_url());
    let body = json!({"inputs": [{"properties": {"email": "h@x.io"}}]});

    fake.faults().set_slow(Duration::from_millis(150));
    let started = Instant::now();
    let resp = client()
        .post(&url)
        .bearer_auth("t")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert!(started.elapsed() >= Duration::from_millis(150));
    fake.faults().set_slow(Duration::ZERO);

    fake.faults().timeout_next(1);
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = impatient
        .post(&url)
        .bearer_auth("t")
        .json(&body)
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(fake.faults().stats().timeouts, 1);
    assert_eq!(
        fake.records("contacts").len(),
        1,
        "the hung request changed nothing"
    );

    let body = json!({"inputs": [{"properties": {"email": "next@x.io"}}]});
    let resp = client()
        .post(&url)
        .bearer_auth("t")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "only the next request hangs");

    let base = fake.base_url().to_string();
    fake.stop().await;
    assert!(client()
        .post(format!("{base}/crm/v3/objects/contacts/batch/read"))
        .send()
        .await
        .is_err());
}
