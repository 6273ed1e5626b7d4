//! Delivery benchmark: how close the delivery framework gets to a destination's rate limit.
//!
//! A fake destination allows `LIMIT` requests per second (sliding one-second window), answers
//! 429 with `Retry-After: 1` past it, and takes 10 ms per request. The webhook connector sends
//! 100-record batches through the shared framework, in two set-ups:
//! - the connection's `rate_per_second` set to the documented limit (the normal case);
//! - no client-side limit at all, so only 429s, Retry-After and adaptive concurrency hold it.
//!
//! `cargo bench -p retl-tests --bench delivery` prints records/s as a share of the limit and
//! the number of 429s received. `LIMIT` and `SECONDS` change the set-up.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use futures::StreamExt;
use retl_shared::config::{DeliverySettings, SafetyConfig, SyncDef, SyncMode};
use retl_shared::connectors::webhook::{WebhookConnection, WebhookDestination};
use retl_shared::connectors::DestinationConnector;
use retl_shared::delivery::{Deliverer, DeliveryConfig, Requester};
use retl_shared::ports::{Destination, OutRecord, RecordOutcome, WriteOp};
use serde_json::json;

struct Limiter {
    limit: usize,
    window: Mutex<VecDeque<Instant>>,
}

async fn ingest(State(l): State<Arc<Limiter>>) -> Response {
    tokio::time::sleep(Duration::from_millis(10)).await;
    let now = Instant::now();
    let allowed = {
        let mut w = l.window.lock().unwrap();
        while w
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            w.pop_front();
        }
        if w.len() < l.limit {
            w.push_back(now);
            true
        } else {
            false
        }
    };
    if allowed {
        (StatusCode::OK, "{}").into_response()
    } else {
        let mut r = (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response();
        r.headers_mut().insert("retry-after", "1".parse().unwrap());
        r
    }
}

fn sync() -> SyncDef {
    SyncDef {
        name: "bench".into(),
        description: None,
        source_connection: "w".into(),
        sql: "select 1".into(),
        incremental: None,
        primary_key: vec!["id".into()],
        key_fields: vec!["id".into()],
        destination_connection: "hook".into(),
        object: "people".into(),
        mapping: [
            ("id".to_string(), "id".to_string()),
            ("email".to_string(), "email".to_string()),
        ]
        .into(),
        mode: SyncMode::Upsert,
        delete_scope: Default::default(),
        safety: SafetyConfig::default(),
        alerts: Default::default(),
        schedule: None,
        triggers: vec![],
        shards: 1,
    }
}

async fn scenario(name: &str, url: &str, limit: usize, seconds: u64, rate: Option<f64>) {
    let dest: Arc<dyn Destination> = Arc::new(
        WebhookDestination::new("hook", url.to_string(), None, Default::default())
            .expect("webhook"),
    );
    let settings = DeliverySettings {
        batch_size: Some(100),
        concurrency: Some(8),
        rate_per_second: rate,
        max_attempts: Some(20),
        retry_budget: Some(100_000),
        timeout_seconds: Some(10.0),
    };
    let connection = WebhookConnection {
        url: url.to_string(),
        secret_env: None,
        headers: Default::default(),
        delivery: settings.clone(),
    };
    let cfg = DeliveryConfig::resolve(&connection.delivery_defaults(), &settings);
    let requests = Arc::new(Requester::new(cfg.policy));
    let deliverer = Deliverer::new(dest, Arc::new(sync()), cfg.limits, Vec::new(), requests);
    let total = limit as u64 * 100 * seconds;
    let records: Vec<OutRecord> = (0..total)
        .map(|i| OutRecord {
            key: i.to_string(),
            values: json!({"id": i, "email": format!("user{i}@example.com")})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            event_id: i.to_string(),
        })
        .collect();
    let start = Instant::now();
    let mut delivered = 0u64;
    let mut stream = Box::pin(deliverer.deliver(WriteOp::Upsert, records));
    while let Some(done) = stream.next().await {
        delivered += done
            .results
            .iter()
            .filter(|(_, o)| *o == RecordOutcome::Delivered)
            .count() as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    let stats = deliverer.stats();
    let ceiling = limit as f64 * 100.0;
    println!(
        "{name}: {delivered}/{total} records in {secs:.2}s = {:.0} records/s, {:.1}% of the limit ({:.0} records/s); \
         {} requests, {} answered 429",
        delivered as f64 / secs,
        100.0 * delivered as f64 / secs / ceiling,
        ceiling,
        stats.requests,
        stats.rate_limited
    );
}

#[tokio::main]
async fn main() {
    let limit: usize = std::env::var("LIMIT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let seconds: u64 = std::env::var("SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    for (name, rate) in [
        ("rate set to the documented limit", Some(limit as f64)),
        ("no client-side limit (429s only)", None),
    ] {
        // A fresh destination per scenario, so one's window does not leak into the other.
        let state = Arc::new(Limiter {
            limit,
            window: Mutex::new(VecDeque::new()),
        });
        let app = Router::new()
            .route("/ingest", post(ingest))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/ingest", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        scenario(name, &url, limit, seconds, rate).await;
        server.abort();
    }
}
