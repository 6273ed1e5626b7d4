//! The connector protocol's requests (gosnowflake `restful.go`): login, query, result polling,
//! abort and chunk downloads, each through the connection's [`Requester`] (throttling and 5xx
//! are retried there), and how Snowflake's answers read as [`SourceError`]s.
//!
//! Every answer of the account is `{"data", "code", "message", "success"}`; `333333` (still
//! running) and `333334` (asynchronous) carry a `getResultUrl` to poll.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Value};

use crate::delivery::http::{classify, excerpt, send, HttpResponse};
use crate::delivery::Requester;
use crate::ports::{SendError, SourceError};

/// Codes of a query that is still running.
const PENDING: [&str; 2] = ["333333", "333334"];
/// Longest pause between result polls (the service also holds each poll for up to 45 s).
const MAX_POLL_PAUSE: Duration = Duration::from_secs(2);

/// A Snowflake answer after the envelope: the data, or the query still running.
pub(crate) enum Answer {
    /// `success: true`.
    Done(Value),
    /// Still running: poll this path.
    Pending(String),
}

/// One connection's HTTP side.
#[derive(Clone)]
pub(crate) struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub requests: Arc<Requester>,
    pub connection: String,
    /// The configured timeout, for the timeout error.
    pub timeout_seconds: Option<u64>,
}

impl Client {
    fn unavailable(&self, e: SendError) -> SourceError {
        SourceError::Unavailable {
            connection: self.connection.clone(),
            message: e.to_string(),
        }
    }

    /// The error an envelope with `success: false` stands for.
    pub(crate) fn failure(&self, envelope: &Value) -> SourceError {
        let code = match &envelope["code"] {
            Value::String(s) => s.clone(),
            Value::Number(n) => format!("{:06}", n.as_u64().unwrap_or(0)),
            _ => envelope["data"]["errorCode"]
                .as_str()
                .unwrap_or("unknown")
                .to_string(),
        };
        let message = envelope["message"]
            .as_str()
            .unwrap_or("no message")
            .to_string();
        let connection = self.connection.clone();
        match code.as_str() {
            // Statement timeout, cancelled statement.
            "000630" | "000604" => SourceError::Timeout {
                connection,
                seconds: self.timeout_seconds.unwrap_or(0),
            },
            // Login and session failures (390xxx), insufficient privileges.
            c if c.starts_with("390") || c == "003001" => SourceError::Auth {
                connection,
                code,
                message,
            },
            // Internal errors and the service being busy.
            "000603" | "000605" | "000625" | "000606" => SourceError::Unavailable {
                connection,
                message: format!("{message} ({code})"),
            },
            _ => SourceError::Query {
                connection,
                code,
                message,
            },
        }
    }

    /// Reads an envelope: data, still running, or the error it reports.
    pub(crate) fn answer(&self, envelope: Value) -> Result<Answer, SourceError> {
        // A running query answers `success: true` with its code: check the code first.
        let code = envelope["code"].as_str().unwrap_or_default();
        if PENDING.contains(&code) {
            let url = envelope["data"]["getResultUrl"].as_str().ok_or_else(|| {
                SourceError::Unavailable {
                    connection: self.connection.clone(),
                    message: format!("Snowflake answered {code} without a getResultUrl"),
                }
            })?;
            return Ok(Answer::Pending(url.to_string()));
        }
        if envelope["success"] == json!(true) {
            return Ok(Answer::Done(envelope["data"].clone()));
        }
        Err(self.failure(&envelope))
    }

    /// A request to the account, retried by the requester on throttling and 5xx; the
    /// envelope of any answer that carries one (Snowflake also answers 401 with one).
    async fn envelope(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Value, SourceError> {
        let resp = self
            .requests
            .call(|| {
                let request = build();
                async move {
                    let resp = send(request).await?;
                    match serde_json::from_str::<Value>(&resp.body) {
                        Ok(v) if v.get("success").is_some() && !retryable(&resp) => Ok(v),
                        _ if resp.status.is_success() => Err(SendError::Fatal {
                            code: "not_json".into(),
                            message: format!(
                                "Snowflake answered without an envelope: {}",
                                excerpt(&resp.body)
                            ),
                        }),
                        _ => Err(failure_of(&resp)),
                    }
                }
            })
            .await;
        resp.map_err(|e| match e {
            SendError::Fatal { ref code, .. } if code == "401" || code == "403" => {
                SourceError::Auth {
                    connection: self.connection.clone(),
                    code: code.clone(),
                    message: e.to_string(),
                }
            }
            other => self.unavailable(other),
        })
    }

    fn post(&self, path: &str, token: Option<&str>, body: &Value) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Accept", "application/snowflake")
            .json(body);
        if let Some(t) = token {
            r = r.header("Authorization", format!("Snowflake Token=\"{t}\""));
        }
        r
    }

    /// `POST path` with `body`, as the session `token` when given.
    pub(crate) async fn post_envelope(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Result<Value, SourceError> {
        self.envelope(|| self.post(path, token, body)).await
    }

    /// Polls `path` (a `getResultUrl`) until the query ends.
    pub(crate) async fn poll(&self, mut path: String, token: String) -> Result<Value, SourceError> {
        let mut pause = Duration::from_millis(50);
        loop {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_POLL_PAUSE);
            let url = format!("{}{path}", self.base);
            let envelope = self
                .envelope(|| {
                    self.http
                        .get(&url)
                        .header("Accept", "application/snowflake")
                        .header("Authorization", format!("Snowflake Token=\"{token}\""))
                })
                .await?;
            match self.answer(envelope)? {
                Answer::Done(data) => return Ok(data),
                Answer::Pending(next) => path = next,
            }
        }
    }

    /// Downloads one result chunk from its (cloud storage) URL with its headers, gunzipped.
    pub(crate) async fn chunk(
        &self,
        url: &str,
        headers: &HeaderMap,
    ) -> Result<Vec<u8>, SourceError> {
        let bytes = self
            .requests
            .call(|| {
                let request = self.http.get(url).headers(headers.clone());
                async move {
                    let resp = request.send().await.map_err(|e| SendError::Transient {
                        code: if e.is_timeout() { "timeout" } else { "network" }.into(),
                        message: e.to_string(),
                        retry_after: None,
                    })?;
                    let status = resp.status();
                    let resp_headers = resp.headers().clone();
                    let bytes = resp.bytes().await.map_err(|e| SendError::Transient {
                        code: "network".into(),
                        message: format!("reading a result chunk failed: {e}"),
                        retry_after: None,
                    })?;
                    if status.is_success() {
                        return Ok(bytes);
                    }
                    let resp = HttpResponse {
                        status,
                        headers: resp_headers,
                        body: String::from_utf8_lossy(&bytes).into_owned(),
                    };
                    Err(classify(
                        &resp,
                        format!("a result chunk download failed: {}", excerpt(&resp.body)),
                    ))
                }
            })
            .await
            .map_err(|e| self.unavailable(e))?;
        gunzip(&bytes).map_err(|m| SourceError::Unavailable {
            connection: self.connection.clone(),
            message: m,
        })
    }
}

/// Throttling and 5xx answers are retried even when they carry an envelope.
fn retryable(resp: &HttpResponse) -> bool {
    resp.status.as_u16() == 429 || resp.status.is_server_error()
}

fn failure_of(resp: &HttpResponse) -> SendError {
    classify(
        resp,
        format!(
            "Snowflake answered {}: {}",
            resp.status,
            excerpt(&resp.body)
        ),
    )
}

/// Chunk files are gzip; storage may already have decoded them (`Content-Encoding: gzip`).
fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Read;
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes.to_vec());
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| format!("a result chunk is not valid gzip: {e}"))?;
    Ok(out)
}

/// The headers a chunk download needs: the response's `chunkHeaders`, or the SSE-C headers
/// derived from `qrmk` when it has none.
pub(crate) fn chunk_headers(data: &Value) -> HeaderMap {
    let mut out = HeaderMap::new();
    let mut add = |k: &str, v: &str| {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
            out.insert(k, v);
        }
    };
    match data["chunkHeaders"].as_object() {
        Some(h) => h
            .iter()
            .for_each(|(k, v)| add(k, v.as_str().unwrap_or_default())),
        None => {
            if let Some(qrmk) = data["qrmk"].as_str() {
                add("x-amz-server-side-encryption-customer-algorithm", "AES256");
                add("x-amz-server-side-encryption-customer-key", qrmk);
            }
        }
    }
    out
}

/// A random UUID (version 4) for `requestId`.
pub(crate) fn request_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_headers_come_from_the_response_or_the_key() {
        let h = chunk_headers(&json!({"chunkHeaders": {"x-amz-a": "1"}, "qrmk": "k"}));
        assert_eq!(h.len(), 1);
        let h = chunk_headers(&json!({"qrmk": "k"}));
        assert_eq!(h["x-amz-server-side-encryption-customer-key"], "k");
        assert!(chunk_headers(&json!({})).is_empty());
    }

    #[test]
    fn gzip_is_decoded_and_plain_bytes_pass() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"[1]").unwrap();
        assert_eq!(gunzip(&enc.finish().unwrap()).unwrap(), b"[1]");
        assert_eq!(gunzip(b"plain").unwrap(), b"plain");
        assert!(gunzip(&[0x1f, 0x8b, 0]).is_err());
    }

    #[test]
    fn request_ids_are_uuids() {
        let id = request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
    }
}
