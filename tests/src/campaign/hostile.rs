//! A webhook receiver that misbehaves at every level, on a raw TCP socket so it can do what a
//! framework would not: reset the connection, hang past retl's timeout, cut its answer short.
//! It de-duplicates by `event_id` (storing each change once, as the contract asks) and,
//! optionally, by `Idempotency-Key` (answering `200 {}` to a request it already processed).
//! What it stored is the truth the campaign checks retl's accounting against.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::rng::Rng;

/// One way of answering a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Answer {
    /// Store every record, answer `ok` for each (or `{}`).
    Normal,
    /// 500, nothing stored.
    ServerError,
    /// 429 with `Retry-After: 1`, nothing stored.
    TooManyRequests,
    /// No answer within retl's timeout, nothing stored.
    HangBeforeStoring,
    /// Store every record, then no answer within retl's timeout.
    HangAfterStoring,
    /// Reset the connection (RST) before storing.
    ResetBeforeStoring,
    /// Store every record, then reset the connection.
    ResetAfterStoring,
    /// Store every record, then close mid-body (a `Content-Length` longer than what is sent).
    CutBody,
    /// Store the first half, answer `200` with a results body that is not valid JSON.
    MalformedResults,
    /// Store nothing, answer a status word the contract does not define.
    UnknownStatus,
    /// Store every record, answer `ok` with numeric keys.
    NumericKeys,
    /// Store every other record, answer results only for those.
    PartialResults,
    /// Store nothing, answer `failed` for every record.
    AllFailed,
    /// Store all but one record, answer `rejected` for that one (and for that key ever after).
    RejectOne,
}

impl Answer {
    /// The misbehaviours, drawn at random per request.
    pub const FAULTS: [Answer; 13] = [
        Answer::ServerError,
        Answer::TooManyRequests,
        Answer::HangBeforeStoring,
        Answer::HangAfterStoring,
        Answer::ResetBeforeStoring,
        Answer::ResetAfterStoring,
        Answer::CutBody,
        Answer::MalformedResults,
        Answer::UnknownStatus,
        Answer::NumericKeys,
        Answer::PartialResults,
        Answer::AllFailed,
        Answer::RejectOne,
    ];

    fn hangs(self) -> bool {
        matches!(self, Answer::HangBeforeStoring | Answer::HangAfterStoring)
    }
}

/// How long a hang lasts: well past the `timeout_seconds: 1` the campaign configures.
const HANG: Duration = Duration::from_millis(2500);

#[derive(Default)]
struct State {
    rng: Option<Rng>,
    fault_percent: u64,
    faults_left: u32,
    hangs_left: u32,
    dedupe_idempotency: bool,
    seen_idempotency: HashSet<String>,
    events: HashSet<String>,
    /// key → the distinct event ids stored for it.
    stored: BTreeMap<String, BTreeSet<String>>,
    rejected: BTreeSet<String>,
    answers: Vec<Answer>,
}

impl State {
    fn choose(&mut self) -> Answer {
        let Some(rng) = self.rng.as_mut() else {
            return Answer::Normal;
        };
        if self.faults_left == 0 || !rng.chance(self.fault_percent) {
            return Answer::Normal;
        }
        self.faults_left -= 1;
        let mut a = *rng.pick(&Answer::FAULTS);
        if a.hangs() {
            if self.hangs_left == 0 {
                a = Answer::ServerError;
            } else {
                self.hangs_left -= 1;
            }
        }
        a
    }

    fn store(&mut self, rec: &Value) {
        let key = text(&rec["key"]);
        let event = text(&rec["event_id"]);
        if self.events.insert(event.clone()) {
            self.stored.entry(key).or_default().insert(event);
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The receiver; it serves until the test's runtime ends.
#[derive(Clone)]
pub struct HostileReceiver {
    /// The URL to POST to.
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl HostileReceiver {
    /// Starts a receiver that answers `fault_percent` % of requests with a misbehaviour drawn
    /// by `rng`, at most `max_faults` times (each costs retl a backoff), at most `max_hangs`
    /// of them hangs (each costs a timeout): the trial's time stays bounded.
    pub async fn start(rng: Rng, fault_percent: u64, max_faults: u32, max_hangs: u32) -> Self {
        let state = Arc::new(Mutex::new(State {
            rng: Some(rng),
            fault_percent,
            faults_left: max_faults,
            hangs_left: max_hangs,
            ..State::default()
        }));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let url = format!(
            "http://{}/ingest",
            listener.local_addr().expect("local addr")
        );
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(serve(sock, shared.clone()));
            }
        });
        HostileReceiver { url, state }
    }

    /// Also drop requests whose `Idempotency-Key` it already processed, answering `200 {}`.
    pub fn dedupe_by_idempotency_key(&self) {
        self.state.lock().unwrap().dedupe_idempotency = true;
    }

    /// Stops misbehaving (rejections of keys already rejected stay).
    pub fn calm(&self) {
        self.state.lock().unwrap().rng = None;
    }

    /// key → distinct event ids stored.
    pub fn stored(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.state.lock().unwrap().stored.clone()
    }

    /// Keys it answered `rejected` for.
    pub fn rejected(&self) -> BTreeSet<String> {
        self.state.lock().unwrap().rejected.clone()
    }

    /// Every answer given, in order.
    pub fn answers(&self) -> Vec<Answer> {
        self.state.lock().unwrap().answers.clone()
    }
}

/// Reads one HTTP/1.1 request: its headers (lower-cased names) and body.
async fn read_request(sock: &mut TcpStream) -> Option<(BTreeMap<String, String>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let headers: BTreeMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((headers, body))
}

async fn respond(sock: &mut TcpStream, status: &str, extra: &str, body: &str) {
    let text = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n{extra}\r\n{body}",
        body.len()
    );
    let _ = sock.write_all(text.as_bytes()).await;
    let _ = sock.shutdown().await;
}

/// Closes with a TCP reset instead of an orderly close.
fn reset(sock: TcpStream) {
    let _ = sock.set_zero_linger();
    drop(sock);
}

/// What the receiver did with a request's records before answering.
struct Handled {
    answer: Answer,
    /// Records stored and answered `ok`.
    ok: Vec<Value>,
    /// Records answered `rejected`.
    rejected: Vec<Value>,
}

/// Picks the answer, stores what it stores (each event id once), and remembers the
/// `Idempotency-Key` of a request it processed. `None`: a repeat a de-duplicating receiver
/// drops.
fn handle(state: &Mutex<State>, records: &[Value], idem: Option<&String>) -> Option<Handled> {
    let mut s = state.lock().unwrap();
    if let (true, Some(k)) = (s.dedupe_idempotency, idem) {
        if s.seen_idempotency.contains(k) {
            s.answers.push(Answer::Normal);
            return None;
        }
    }
    let answer = s.choose();
    s.answers.push(answer);
    let all: Vec<&Value> = records.iter().collect();
    let stores: Vec<&Value> = match answer {
        Answer::Normal
        | Answer::HangAfterStoring
        | Answer::ResetAfterStoring
        | Answer::CutBody
        | Answer::NumericKeys => all.clone(),
        Answer::MalformedResults => all[..all.len() / 2].to_vec(),
        Answer::PartialResults => all.iter().step_by(2).copied().collect(),
        Answer::RejectOne => all.iter().skip(1).copied().collect(),
        _ => Vec::new(),
    };
    let mut handled = Handled {
        answer,
        ok: Vec::new(),
        rejected: Vec::new(),
    };
    if answer == Answer::RejectOne {
        if let Some(first) = all.first() {
            s.rejected.insert(text(&first["key"]));
            handled.rejected.push((*first).clone());
        }
    }
    for r in &stores {
        // A key it rejected once, it keeps rejecting.
        if s.rejected.contains(&text(&r["key"])) {
            handled.rejected.push((*r).clone());
        } else {
            s.store(r);
            handled.ok.push((*r).clone());
        }
    }
    if !stores.is_empty() {
        if let Some(k) = idem {
            s.seen_idempotency.insert(k.clone());
        }
    }
    Some(handled)
}

/// The results body: `ok` for the stored records (numeric keys if asked), `rejected` for the
/// refused ones.
fn results_body(h: &Handled, numeric: bool) -> String {
    let mut list = results(&h.ok, "ok", numeric);
    for r in &h.rejected {
        list.push(
            json!({"key": r["key"], "status": "rejected", "code": "refused",
                         "error": "the receiver refuses this record"}),
        );
    }
    json!({ "results": list }).to_string()
}

fn results(records: &[Value], status: &str, numeric: bool) -> Vec<Value> {
    records
        .iter()
        .map(|r| {
            let key = match r["key"].as_str().and_then(|k| k.parse::<i64>().ok()) {
                Some(n) if numeric => Value::from(n),
                _ => r["key"].clone(),
            };
            json!({"key": key, "status": status})
        })
        .collect()
}

async fn serve(mut sock: TcpStream, state: Arc<Mutex<State>>) {
    let Some((headers, body)) = read_request(&mut sock).await else {
        return;
    };
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let records: Vec<Value> = parsed["records"].as_array().cloned().unwrap_or_default();
    let Some(h) = handle(&state, &records, headers.get("idempotency-key")) else {
        return respond(&mut sock, "200 OK", "", "{}").await;
    };
    let every = |status: &str| json!({ "results": results(&records, status, false) }).to_string();
    match h.answer {
        Answer::Normal | Answer::PartialResults | Answer::RejectOne => {
            respond(&mut sock, "200 OK", "", &results_body(&h, false)).await
        }
        Answer::NumericKeys => respond(&mut sock, "200 OK", "", &results_body(&h, true)).await,
        Answer::ServerError => respond(&mut sock, "500 Internal Server Error", "", "{}").await,
        Answer::TooManyRequests => {
            respond(
                &mut sock,
                "429 Too Many Requests",
                "Retry-After: 1\r\n",
                "{}",
            )
            .await
        }
        Answer::HangBeforeStoring | Answer::HangAfterStoring => tokio::time::sleep(HANG).await,
        Answer::ResetBeforeStoring | Answer::ResetAfterStoring => reset(sock),
        Answer::CutBody => {
            let body = results_body(&h, false);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len() + 100
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(&body.as_bytes()[..body.len() / 2]).await;
            reset(sock);
        }
        Answer::MalformedResults => {
            let body = results_body(&h, false);
            respond(&mut sock, "200 OK", "", &body[..body.len() - 3]).await
        }
        Answer::UnknownStatus => respond(&mut sock, "200 OK", "", &every("error")).await,
        Answer::AllFailed => respond(&mut sock, "200 OK", "", &every("failed")).await,
    }
}
