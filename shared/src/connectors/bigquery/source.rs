//! The BigQuery [`Source`]: `jobs.query` (labelled with the sync and run, the watermark as a
//! named query parameter), `jobs.getQueryResults` while the job runs (`jobComplete: false`)
//! and page by page after (`pageToken`), `jobs.cancel` when it outlasts `timeout_seconds` or
//! the run stops.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::auth::Tokens;
use super::cells::{self, Field};
use super::BigQueryConnection;
use crate::connectors::{subquery_sql, OpenContext};
use crate::delivery::http::{client_builder, excerpt, retry_after, send, HttpResponse};
use crate::delivery::Requester;
use crate::ports::{Bound, ModelQuery, RowStream, SendError, Source, SourceError};
use crate::record::Values;

/// Rows per page asked for.
const PAGE_ROWS: u32 = 10_000;
/// Longest wait BigQuery is asked to hold one request for a running job.
const MAX_WAIT_MS: u64 = 10_000;

/// A BigQuery project.
pub struct BigQuerySource {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: String,
    project: String,
    location: Option<String>,
    maximum_bytes_billed: Option<u64>,
    timeout_seconds: Option<u64>,
    requests: Arc<Requester>,
    connection: String,
    tokens: Option<Tokens>,
}

/// A job and where it runs.
#[derive(Clone)]
struct Job {
    id: String,
    location: Option<String>,
}

impl BigQuerySource {
    /// The source of `config`, authenticated by `tokens` (none for an emulator).
    pub(crate) fn new(
        config: &BigQueryConnection,
        ctx: &OpenContext<'_>,
        tokens: Option<Tokens>,
    ) -> Self {
        let http = client_builder()
            .connect_timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        BigQuerySource {
            inner: Arc::new(Inner {
                http,
                base: config.base_url(),
                project: config.project.clone(),
                location: config.location.clone(),
                maximum_bytes_billed: config.maximum_bytes_billed,
                timeout_seconds: config.timeout_seconds,
                requests: ctx.requests.clone(),
                connection: ctx.name.to_string(),
                tokens,
            }),
        }
    }
}

impl Inner {
    fn url(&self, path: &str) -> String {
        format!("{}/bigquery/v2/projects/{}{path}", self.base, self.project)
    }

    /// A request to the API with the access token; transient answers are retried by the
    /// requester, the others read as [`SourceError`]s.
    async fn call(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Value, SourceError> {
        let token = match &self.tokens {
            Some(t) => Some(
                t.token(&self.http, &self.requests, &self.connection)
                    .await?,
            ),
            None => None,
        };
        let answer = self
            .requests
            .call(|| {
                let mut request = build();
                if let Some(t) = &token {
                    request = request.bearer_auth(t);
                }
                async move {
                    let resp = send(request).await?;
                    if resp.status.is_success() {
                        return Ok(Ok(resp));
                    }
                    match transient(&resp) {
                        Some(e) => Err(e),
                        None => Ok(Err(resp)),
                    }
                }
            })
            .await
            .map_err(|e| SourceError::Unavailable {
                connection: self.connection.clone(),
                message: e.to_string(),
            })?;
        let resp = answer.map_err(|resp| self.refused(&resp))?;
        serde_json::from_str(&resp.body).map_err(|e| SourceError::Unavailable {
            connection: self.connection.clone(),
            message: format!(
                "BigQuery answered with non-JSON ({e}): {}",
                excerpt(&resp.body)
            ),
        })
    }

    /// The error of a permanent failure answer (`{"error": {"code", "message", "errors":
    /// [{"reason"}]}}`).
    fn refused(&self, resp: &HttpResponse) -> SourceError {
        let body: Value = serde_json::from_str(&resp.body).unwrap_or(Value::Null);
        let error = &body["error"];
        let reason = error["errors"][0]["reason"]
            .as_str()
            .or(error["status"].as_str())
            .unwrap_or("http_error")
            .to_string();
        let message = error["message"]
            .as_str()
            .map_or_else(|| excerpt(&resp.body), str::to_string);
        self.error(resp.status.as_u16(), reason, message)
    }

    fn error(&self, status: u16, reason: String, message: String) -> SourceError {
        let connection = self.connection.clone();
        match (status, reason.as_str()) {
            (401, _)
            | (_, "authError" | "accessDenied" | "UNAUTHENTICATED" | "PERMISSION_DENIED") => {
                SourceError::Auth {
                    connection,
                    code: reason,
                    message,
                }
            }
            (_, "timeout" | "stopped") => SourceError::Timeout {
                connection,
                seconds: self.timeout_seconds.unwrap_or(0),
            },
            (_, "backendError" | "internalError") => SourceError::Unavailable {
                connection,
                message: format!("{message} ({reason})"),
            },
            _ => SourceError::Query {
                connection,
                code: reason,
                message,
            },
        }
    }

    /// The error a completed job's `errors` report, if any.
    fn job_errors(&self, answer: &Value) -> Option<SourceError> {
        let first = answer["errors"].as_array()?.first()?;
        Some(
            self.error(
                200,
                first["reason"]
                    .as_str()
                    .unwrap_or("invalidQuery")
                    .to_string(),
                first["message"]
                    .as_str()
                    .unwrap_or("the query failed")
                    .to_string(),
            ),
        )
    }

    fn wait_ms(&self, deadline: Option<Instant>) -> u64 {
        deadline.map_or(MAX_WAIT_MS, |d| {
            (d.saturating_duration_since(Instant::now()).as_millis() as u64).clamp(1, MAX_WAIT_MS)
        })
    }

    /// `jobs.query`, then `getQueryResults` until the job completes: its first page.
    async fn run(
        &self,
        body: Value,
        deadline: Option<Instant>,
        job: &std::sync::Mutex<Option<Job>>,
    ) -> Result<(Job, Value), SourceError> {
        let url = self.url("/queries");
        let mut answer = self.call(|| self.http.post(&url).json(&body)).await?;
        loop {
            let reference = &answer["jobReference"];
            let current = Job {
                id: reference["jobId"].as_str().unwrap_or_default().to_string(),
                location: reference["location"]
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| self.location.clone()),
            };
            *job.lock().unwrap_or_else(|p| p.into_inner()) = Some(current.clone());
            if answer["jobComplete"] != json!(false) {
                if let Some(e) = self.job_errors(&answer) {
                    return Err(e);
                }
                return Ok((current, answer));
            }
            answer = self.results(&current, None, self.wait_ms(deadline)).await?;
        }
    }

    /// `jobs.getQueryResults`: one page, or the job still running after `wait_ms`.
    async fn results(
        &self,
        job: &Job,
        page: Option<&str>,
        wait_ms: u64,
    ) -> Result<Value, SourceError> {
        let url = self.url(&format!("/queries/{}", job.id));
        let mut params = vec![
            ("maxResults", PAGE_ROWS.to_string()),
            ("timeoutMs", wait_ms.to_string()),
            ("formatOptions.useInt64Timestamp", "true".to_string()),
        ];
        if let Some(l) = &job.location {
            params.push(("location", l.clone()));
        }
        if let Some(p) = page {
            params.push(("pageToken", p.to_string()));
        }
        self.call(|| self.http.get(&url).query(&params)).await
    }

    /// `jobs.cancel`; a failure leaves the job to end on its own.
    async fn cancel(&self, job: &Job) {
        let url = self.url(&format!("/jobs/{}/cancel", job.id));
        let location: Vec<(&str, &str)> = job
            .location
            .iter()
            .map(|l| ("location", l.as_str()))
            .collect();
        if let Err(e) = self.call(|| self.http.post(&url).query(&location)).await {
            tracing::warn!(connection = %self.connection, error = %e, "cancelling the BigQuery job failed");
        }
    }
}

/// Throttling, 5xx and BigQuery's rate-limit reasons are worth another attempt.
fn transient(resp: &HttpResponse) -> Option<SendError> {
    let status = resp.status.as_u16();
    let rate_limited = status == 429
        || (status == 403
            && (resp.body.contains("rateLimitExceeded")
                || resp.body.contains("\"quotaExceeded\"")));
    if rate_limited {
        return Some(SendError::RateLimited {
            message: excerpt(&resp.body),
            retry_after: retry_after(&resp.headers),
        });
    }
    (status == 408 || resp.status.is_server_error()).then(|| SendError::Transient {
        code: status.to_string(),
        message: excerpt(&resp.body),
        retry_after: retry_after(&resp.headers),
    })
}

/// A label value: lower-case letters, digits, `_` and `-`, at most 63 characters.
fn label(value: &str) -> String {
    value
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect()
}

/// The watermark as a named query parameter.
fn parameter(bound: &Bound) -> Value {
    let (ty, value) = match bound {
        Bound::Integer(t) if t.parse::<i64>().is_ok() => ("INT64", t.clone()),
        Bound::Integer(t) | Bound::Decimal(t) => ("BIGNUMERIC", t.clone()),
        Bound::Instant(t) => (
            "TIMESTAMP",
            t.format("%Y-%m-%d %H:%M:%S%.6f+00:00").to_string(),
        ),
        Bound::Naive(t) => ("DATETIME", t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()),
        Bound::Date(d) => ("DATE", d.format("%Y-%m-%d").to_string()),
        Bound::Text(t) => ("STRING", t.clone()),
    };
    json!({"name": "retl_watermark", "parameterType": {"type": ty}, "parameterValue": {"value": value}})
}

/// The `jobs.query` body of a model.
fn query_body(inner: &Inner, query: &ModelQuery, deadline: Option<Instant>) -> Value {
    let sql = subquery_sql(&query.sql);
    let mut body = json!({
        "query": format!("SELECT * FROM ({sql}) AS q"),
        "useLegacySql": false,
        "maxResults": PAGE_ROWS,
        "timeoutMs": inner.wait_ms(deadline),
        "formatOptions": {"useInt64Timestamp": true},
        "labels": {"retl-sync": label(&query.sync), "retl-run": label(&query.run_id)},
        "requestId": ulid::Ulid::new().to_string(),
    });
    if let Some(f) = &query.filter {
        body["query"] = json!(format!(
            "SELECT * FROM ({sql}) AS q WHERE q.`{}` > @retl_watermark",
            f.column.replace('\\', "\\\\").replace('`', "\\`")
        ));
        body["parameterMode"] = json!("NAMED");
        body["queryParameters"] = json!([parameter(&f.after)]);
    }
    if let Some(l) = &inner.location {
        body["location"] = json!(l);
    }
    if let Some(b) = inner.maximum_bytes_billed {
        body["maximumBytesBilled"] = json!(b.to_string());
    }
    body
}

/// Cancels a job whose caller went away before it completed (a stopped run).
struct CancelGuard {
    inner: Arc<Inner>,
    job: Arc<std::sync::Mutex<Option<Job>>>,
    armed: bool,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        let job = self.job.lock().unwrap_or_else(|p| p.into_inner()).take();
        let (true, Some(job), Ok(rt)) = (self.armed, job, tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let inner = self.inner.clone();
        rt.spawn(async move { inner.cancel(&job).await });
    }
}

/// What is left to read of a result.
struct Pages {
    inner: Arc<Inner>,
    job: Job,
    fields: Arc<Vec<Field>>,
    rows: VecDeque<Value>,
    next: Option<String>,
}

impl Pages {
    fn take(&mut self, page: &Value) {
        self.rows = page["rows"].as_array().cloned().unwrap_or_default().into();
        self.next = page["pageToken"].as_str().map(str::to_string);
    }

    async fn next(mut self) -> Result<Option<(Values, Pages)>, SourceError> {
        loop {
            if let Some(r) = self.rows.pop_front() {
                let row = cells::row(&self.fields, &r).map_err(|m| SourceError::Query {
                    connection: self.inner.connection.clone(),
                    code: "retl_row".into(),
                    message: m,
                })?;
                return Ok(Some((row, self)));
            }
            let Some(token) = self.next.take() else {
                return Ok(None);
            };
            let page = self
                .inner
                .results(&self.job, Some(&token), MAX_WAIT_MS)
                .await?;
            self.take(&page);
        }
    }
}

impl BigQuerySource {
    /// Runs the model to its first page, cancelling it when it outlasts the timeout.
    async fn first_page(
        &self,
        body: Value,
        deadline: Option<Instant>,
    ) -> Result<(Job, Value), SourceError> {
        let inner = &self.inner;
        let mut guard = CancelGuard {
            inner: inner.clone(),
            job: Arc::new(std::sync::Mutex::new(None)),
            armed: true,
        };
        let run = inner.run(body, deadline, &guard.job);
        let result = match deadline {
            None => run.await,
            Some(d) => match tokio::time::timeout_at(d, run).await {
                Ok(r) => r,
                Err(_) => {
                    guard.armed = false;
                    let job = guard.job.lock().unwrap_or_else(|p| p.into_inner()).take();
                    if let Some(job) = job {
                        inner.cancel(&job).await;
                    }
                    return Err(SourceError::Timeout {
                        connection: inner.connection.clone(),
                        seconds: inner.timeout_seconds.unwrap_or(0),
                    });
                }
            },
        };
        guard.armed = false;
        result
    }
}

#[async_trait]
impl Source for BigQuerySource {
    async fn columns(&self, query: &ModelQuery) -> Result<Vec<String>, SourceError> {
        let mut body = query_body(
            &self.inner,
            &ModelQuery {
                filter: None,
                ..query.clone()
            },
            None,
        );
        body["dryRun"] = json!(true);
        let url = self.inner.url("/queries");
        let dry_run = self.inner.call(|| self.inner.http.post(&url).json(&body));
        // A dry run costs nothing in BigQuery; an emulator may run the query, so it is bounded too.
        let answer = match self.inner.timeout_seconds {
            None => dry_run.await?,
            Some(s) => tokio::time::timeout(Duration::from_secs(s), dry_run)
                .await
                .map_err(|_| SourceError::Timeout {
                    connection: self.inner.connection.clone(),
                    seconds: s,
                })??,
        };
        if let Some(e) = self.inner.job_errors(&answer) {
            return Err(e);
        }
        Ok(cells::names(&cells::fields(&answer["schema"])))
    }

    async fn rows(&self, query: &ModelQuery) -> Result<RowStream, SourceError> {
        let deadline = self
            .inner
            .timeout_seconds
            .map(|s| Instant::now() + Duration::from_secs(s));
        let body = query_body(&self.inner, query, deadline);
        let (job, first) = self.first_page(body, deadline).await?;
        let mut pages = Pages {
            inner: self.inner.clone(),
            job,
            fields: Arc::new(cells::fields(&first["schema"])),
            rows: VecDeque::new(),
            next: None,
        };
        pages.take(&first);
        Ok(Box::pin(stream::try_unfold(pages, Pages::next)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_what_bigquery_allows() {
        assert_eq!(label("Daily Users"), "daily_users");
        assert_eq!(label("01HX-ABC"), "01hx-abc");
        assert_eq!(label(&"x".repeat(80)).len(), 63);
    }

    #[test]
    fn watermarks_are_typed_parameters() {
        assert_eq!(
            parameter(&Bound::Integer("15".into()))["parameterType"]["type"],
            "INT64"
        );
        assert_eq!(
            parameter(&Bound::Integer("99999999999999999999".into()))["parameterType"]["type"],
            "BIGNUMERIC"
        );
        let t = chrono::NaiveDate::from_ymd_opt(2024, 3, 1)
            .unwrap()
            .and_hms_opt(10, 0, 0)
            .unwrap();
        let p = parameter(&Bound::Naive(t));
        assert_eq!(p["parameterType"]["type"], "DATETIME");
        assert_eq!(p["parameterValue"]["value"], "2024-03-01 10:00:00.000000");
        let p = parameter(&Bound::Text("c' OR '1'='1".into()));
        assert_eq!(p["parameterValue"]["value"], "c' OR '1'='1");
    }
}
