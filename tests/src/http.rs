//! A real HTTP server standing in for a webhook receiver: records what it receives, checks
//! signatures, and answers from a script (429 with Retry-After, 5xx, per-record rejections).

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

/// One scripted answer, used before normal processing.
#[derive(Debug, Clone, Copy)]
pub enum Scripted {
    /// Answer this status, with `Retry-After` seconds when given.
    Status(u16, Option<u64>),
}

/// A request the receiver accepted or refused.
#[derive(Debug, Clone)]
pub struct Received {
    /// When it arrived.
    pub at: Instant,
    /// The status answered.
    pub status: u16,
    /// The parsed body.
    pub body: Value,
    /// The `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
    /// The positions of the records the receiver processed (stored).
    pub processed: Vec<usize>,
}

/// Builds the answer body to a batch's records (tests of the results contract).
pub type Responder = fn(&[Value]) -> Value;

#[derive(Default)]
struct Inner {
    script: VecDeque<Scripted>,
    received: Vec<Received>,
    reject_keys: HashSet<String>,
    fail_keys: HashSet<String>,
    poison_keys: HashSet<String>,
    dedupe: bool,
    seen_idempotency_keys: HashSet<String>,
    responder: Option<Responder>,
    delay: Duration,
    secret: Option<String>,
    bad_signatures: u64,
    unavailable: bool,
}

/// The receiver; dropping it does not stop the server (it ends with the test runtime).
#[derive(Clone)]
pub struct WebhookReceiver {
    /// URL to POST to.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

fn verify(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let (Some(ts), Some(sig)) = (
        headers.get("x-retl-timestamp"),
        headers.get("x-retl-signature"),
    ) else {
        return false;
    };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    sig.as_bytes() == want.as_bytes()
}

/// What the receiver records of each request, and answers.
struct Request {
    parsed: Value,
    idem: Option<String>,
}

impl Inner {
    fn record(&mut self, req: Request, status: u16, processed: Vec<usize>) {
        self.received.push(Received {
            at: Instant::now(),
            status,
            body: req.parsed,
            idempotency_key: req.idem,
            processed,
        });
    }

    /// A scripted, poisoned or already-seen request's answer, if it gets one.
    fn refusal(&mut self, req: &Request) -> Option<(u16, Option<u64>, &'static str)> {
        if let Some(Scripted::Status(code, retry)) = self.script.pop_front() {
            return Some((code, retry, "scripted"));
        }
        if self.unavailable {
            return Some((503, None, "unavailable"));
        }
        let poisoned = req.parsed["records"].as_array().is_some_and(|rs| {
            rs.iter().any(|r| {
                self.poison_keys
                    .contains(r["key"].as_str().unwrap_or_default())
            })
        });
        if poisoned {
            return Some((400, None, "batch contains an invalid record"));
        }
        // A receiver that drops a request whose Idempotency-Key it has seen, answering 200
        // with nothing (what the header invites).
        if let (true, Some(k)) = (self.dedupe, &req.idem) {
            if !self.seen_idempotency_keys.insert(k.clone()) {
                return Some((200, None, "{}"));
            }
        }
        None
    }

    /// The per-record results of a processed batch, and the records stored.
    fn results(&self, records: &[Value]) -> (Value, Vec<usize>) {
        if let Some(respond) = self.responder {
            let body = respond(records);
            let processed = processed_by(records, &body);
            return (body, processed);
        }
        let mut results = Vec::new();
        let mut processed = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let key = r["key"].as_str().unwrap_or_default().to_string();
            let event = r["event_id"].clone();
            if self.reject_keys.contains(&key) {
                results.push(json!({"key": key, "event_id": event, "status": "rejected", "code": "invalid_email", "error": "email is not valid"}));
            } else if self.fail_keys.contains(&key) {
                results.push(json!({"key": key, "event_id": event, "status": "failed", "code": "busy", "error": "try again"}));
            } else {
                processed.push(i);
                results.push(json!({"key": key, "event_id": event, "status": "ok"}));
            }
        }
        (json!({ "results": results }), processed)
    }
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let delay = inner.lock().unwrap().delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let req = Request {
        parsed: serde_json::from_slice(&body).unwrap_or(Value::Null),
        idem: headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    let mut s = inner.lock().unwrap();
    if let Some(secret) = s.secret.clone() {
        if !verify(&secret, &headers, &body) {
            s.bad_signatures += 1;
            s.record(req, 401, Vec::new());
            return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
        }
    }
    if let Some((code, retry, text)) = s.refusal(&req) {
        s.record(req, code, Vec::new());
        let mut resp = (StatusCode::from_u16(code).expect("valid status"), text).into_response();
        if let Some(r) = retry {
            resp.headers_mut()
                .insert("retry-after", r.to_string().parse().expect("header"));
        }
        return resp;
    }
    let records: Vec<Value> = req.parsed["records"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let (answer, processed) = s.results(&records);
    s.record(req, 200, processed);
    (StatusCode::OK, axum::Json(answer)).into_response()
}

/// The records a custom answer says were stored (status `ok`, matched by text key).
fn processed_by(records: &[Value], body: &Value) -> Vec<usize> {
    let ok: HashSet<String> = body["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["status"] == "ok")
        .map(|r| match &r["key"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    records
        .iter()
        .enumerate()
        .filter(|(_, r)| ok.contains(r["key"].as_str().unwrap_or_default()))
        .map(|(i, _)| i)
        .collect()
}

impl WebhookReceiver {
    /// Starts a receiver on a free loopback port.
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/ingest", post(handle))
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        WebhookReceiver {
            url: format!("http://{addr}/ingest"),
            inner,
        }
    }

    /// Requires this HMAC secret on every request.
    pub fn require_secret(&self, secret: &str) {
        self.inner.lock().unwrap().secret = Some(secret.to_string());
    }

    /// Answers the next requests from `script`, in order.
    pub fn script(&self, script: &[Scripted]) {
        self.inner
            .lock()
            .unwrap()
            .script
            .extend(script.iter().copied());
    }

    /// Rejects these record keys (per-record results).
    pub fn reject(&self, keys: &[&str]) {
        self.inner
            .lock()
            .unwrap()
            .reject_keys
            .extend(keys.iter().map(|k| k.to_string()));
    }

    /// Stops rejecting records (the receiver was fixed).
    pub fn clear_rejections(&self) {
        self.inner.lock().unwrap().reject_keys.clear();
    }

    /// Refuses with 400 any whole batch that contains one of these keys.
    pub fn poison(&self, keys: &[&str]) {
        self.inner
            .lock()
            .unwrap()
            .poison_keys
            .extend(keys.iter().map(|k| k.to_string()));
    }

    /// Answers every request 503 (`on`) until called with `false`.
    pub fn unavailable(&self, on: bool) {
        self.inner.lock().unwrap().unavailable = on;
    }

    /// Waits this long before answering each request.
    pub fn delay(&self, d: Duration) {
        self.inner.lock().unwrap().delay = d;
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    /// Requests refused for a bad signature.
    pub fn bad_signatures(&self) -> u64 {
        self.inner.lock().unwrap().bad_signatures
    }

    /// Answers `failed` for these record keys (per-record results).
    pub fn fail(&self, keys: &[&str]) {
        self.inner
            .lock()
            .unwrap()
            .fail_keys
            .extend(keys.iter().map(|k| k.to_string()));
    }

    /// Stops failing records.
    pub fn clear_failures(&self) {
        self.inner.lock().unwrap().fail_keys.clear();
    }

    /// Drops requests whose `Idempotency-Key` was seen before, answering 200 with no results.
    pub fn dedupe_by_idempotency_key(&self) {
        self.inner.lock().unwrap().dedupe = true;
    }

    /// Answers every batch with the body `respond` builds from its records.
    pub fn respond_with(&self, respond: Responder) {
        self.inner.lock().unwrap().responder = Some(respond);
    }

    /// Records the receiver stored: (op, key, fields).
    pub fn accepted(&self) -> Vec<(String, String, Value)> {
        self.stored()
            .into_iter()
            .map(|(op, rec)| {
                let key = rec["key"].as_str().unwrap_or_default().to_string();
                (op, key, rec["fields"].clone())
            })
            .collect()
    }

    /// The event ids of the records the receiver stored, once per time it stored them.
    pub fn accepted_events(&self) -> Vec<String> {
        self.stored()
            .into_iter()
            .map(|(_, rec)| rec["event_id"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    fn stored(&self) -> Vec<(String, Value)> {
        let s = self.inner.lock().unwrap();
        let mut out = Vec::new();
        for r in &s.received {
            let op = r.body["op"].as_str().unwrap_or_default().to_string();
            let records = r.body["records"].as_array().cloned().unwrap_or_default();
            for i in &r.processed {
                out.push((op.clone(), records[*i].clone()));
            }
        }
        out
    }
}
