//! The Snowflake [`Source`]: one session per model run (logged in with the run's `QUERY_TAG`
//! and statement timeout), the model wrapped as a subquery with the watermark as a bound
//! parameter, the result read chunk by chunk.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use futures::stream;
use reqwest::header::HeaderMap;
use serde_json::{json, Map, Value};

use super::auth::{account_name, Credentials};
use super::client::{chunk_headers, request_id, Answer, Client};
use super::types::{columns, sql_name, Column};
use super::{arrow, json as json_rows, SnowflakeConnection};
use crate::connectors::{subquery_sql, OpenContext};
use crate::delivery::http::client_builder;
use crate::ports::{Bound, ModelQuery, RowStream, Source, SourceError};
use crate::record::Values;

/// A Snowflake warehouse.
pub struct SnowflakeSource {
    client: Client,
    config: SnowflakeConnection,
    credentials: Arc<Credentials>,
}

/// Snowflake's answer to a session token that expired: renew it with the master token.
const SESSION_EXPIRED: &str = "390112";

/// A logged-in session: its session token (renewed in place when it expires, so an abort
/// after a renewal sends the current one) and the master token that renews it.
#[derive(Clone)]
struct Session {
    token: Arc<Mutex<String>>,
    master: Option<String>,
}

impl Session {
    fn token(&self) -> String {
        self.token.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl SnowflakeSource {
    /// The source of `config` with `credentials`.
    pub(crate) fn new(
        config: &SnowflakeConnection,
        ctx: &OpenContext<'_>,
        credentials: Credentials,
    ) -> Self {
        let http = client_builder()
            .connect_timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        SnowflakeSource {
            client: Client {
                http,
                base: config.base_url(),
                requests: ctx.requests.clone(),
                connection: ctx.name.to_string(),
                timeout_seconds: config.timeout_seconds,
            },
            config: config.clone(),
            credentials: Arc::new(credentials),
        }
    }

    fn config_error(&self, message: String) -> SourceError {
        SourceError::Config {
            connection: self.client.connection.clone(),
            message,
        }
    }

    /// Logs in with the query tag and statement timeout as session parameters.
    async fn login(&self, tag: &str) -> Result<Session, SourceError> {
        let c = &self.config;
        let mut params = Map::new();
        params.insert("QUERY_TAG".into(), json!(tag));
        params.insert("TIMEZONE".into(), json!("UTC"));
        if let Some(s) = c.timeout_seconds {
            params.insert("STATEMENT_TIMEOUT_IN_SECONDS".into(), json!(s));
        }
        let mut data = Map::new();
        data.insert("CLIENT_APP_ID".into(), json!("retl"));
        data.insert(
            "CLIENT_APP_VERSION".into(),
            json!(env!("CARGO_PKG_VERSION")),
        );
        data.insert("ACCOUNT_NAME".into(), json!(account_name(&c.account)));
        data.insert("LOGIN_NAME".into(), json!(c.user));
        data.insert("SESSION_PARAMETERS".into(), Value::Object(params));
        self.credentials
            .add_to(&mut data, &c.account, &c.user)
            .map_err(|m| self.config_error(m))?;
        let path = format!("/session/v1/login-request?{}", login_query(c));
        let envelope = self
            .client
            .post_envelope(&path, None, &json!({ "data": data }))
            .await?;
        let data = match self.client.answer(envelope)? {
            Answer::Done(d) => d,
            Answer::Pending(_) => {
                return Err(self.config_error("the login did not complete".into()))
            }
        };
        let token = data["token"]
            .as_str()
            .ok_or_else(|| SourceError::Unavailable {
                connection: self.client.connection.clone(),
                message: "the login answer has no session token".into(),
            })?;
        Ok(Session {
            token: Arc::new(Mutex::new(token.to_string())),
            master: data["masterToken"].as_str().map(str::to_string),
        })
    }

    /// Renews an expired session token with the master token (`/session/token-request`,
    /// as the drivers do on `390112`).
    async fn renew(&self, session: &Session) -> Result<(), SourceError> {
        let Some(master) = &session.master else {
            return Err(SourceError::Auth {
                connection: self.client.connection.clone(),
                code: SESSION_EXPIRED.into(),
                message: "the session expired and the login gave no master token to renew it"
                    .into(),
            });
        };
        let body = json!({"oldSessionToken": session.token(), "requestType": "RENEW"});
        let path = format!("/session/token-request?requestId={}", request_id());
        let envelope = self
            .client
            .post_envelope(&path, Some(master), &body)
            .await?;
        let data = match self.client.answer(envelope)? {
            Answer::Done(d) => d,
            Answer::Pending(_) => {
                return Err(self.config_error("the session renewal did not complete".into()))
            }
        };
        let token = data["sessionToken"]
            .as_str()
            .ok_or_else(|| SourceError::Unavailable {
                connection: self.client.connection.clone(),
                message: "the session renewal answer has no session token".into(),
            })?;
        *session.token.lock().unwrap_or_else(|p| p.into_inner()) = token.to_string();
        tracing::info!(connection = %self.client.connection, "the Snowflake session token was renewed");
        Ok(())
    }

    /// Makes one call with the session token; when Snowflake answers that the session
    /// expired, renews the token and makes the call again once.
    async fn with_session<T, F, Fut>(&self, session: &Session, call: F) -> Result<T, SourceError>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<T, SourceError>>,
    {
        match call(session.token()).await {
            Err(SourceError::Auth { code, .. }) if code == SESSION_EXPIRED => {
                self.renew(session).await?;
                call(session.token()).await
            }
            other => other,
        }
    }

    /// Runs one statement to its result `data`: the query request, polled while running,
    /// aborted when it outlasts `timeout_seconds` or the caller goes away.
    async fn execute(
        &self,
        session: &Session,
        sql: &str,
        bindings: Value,
        tag: &str,
        describe_only: bool,
    ) -> Result<Value, SourceError> {
        let request_id = request_id();
        let body = json!({
            "sqlText": sql,
            "asyncExec": false,
            "sequenceId": 1,
            "querySubmissionTime": chrono::Utc::now().timestamp_millis(),
            "describeOnly": describe_only,
            "parameters": {"QUERY_TAG": tag},
            "bindings": bindings,
        });
        let mut guard = AbortGuard {
            client: self.client.clone(),
            session: session.clone(),
            request_id: request_id.clone(),
            sql: sql.to_string(),
            armed: true,
        };
        let run = async {
            let path = format!("/queries/v1/query-request?requestId={request_id}");
            // A statement sent with an expired token never started: sending it again after
            // the renewal runs it once.
            let answer = self
                .with_session(session, |token| {
                    let (path, body) = (&path, &body);
                    async move {
                        let envelope = self.client.post_envelope(path, Some(&token), body).await?;
                        self.client.answer(envelope)
                    }
                })
                .await?;
            match answer {
                Answer::Done(data) => Ok(data),
                Answer::Pending(url) => {
                    self.with_session(session, |token| self.client.poll(url.clone(), token))
                        .await
                }
            }
        };
        let result = match self.config.timeout_seconds {
            None => run.await,
            Some(secs) => match tokio::time::timeout(Duration::from_secs(secs), run).await {
                Ok(r) => r,
                Err(_) => {
                    guard.armed = false;
                    guard.abort().await;
                    return Err(SourceError::Timeout {
                        connection: self.client.connection.clone(),
                        seconds: secs,
                    });
                }
            },
        };
        guard.armed = false;
        result
    }
}

/// The login URL's query: the session's context and a request id.
fn login_query(c: &SnowflakeConnection) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("databaseName", &c.database),
        ("schemaName", &c.schema),
        ("warehouse", &c.warehouse),
        ("roleName", &c.role),
    ] {
        if let Some(v) = v {
            query.append_pair(k, v);
        }
    }
    query.append_pair("requestId", &request_id());
    query.finish()
}

/// Aborts a query whose caller went away before it ended (a stopped run).
struct AbortGuard {
    client: Client,
    session: Session,
    request_id: String,
    sql: String,
    armed: bool,
}

impl AbortGuard {
    async fn abort(&self) {
        let body = json!({"sqlText": self.sql, "requestId": self.request_id});
        // The query ends either way; a failed abort leaves it to the statement timeout.
        if let Err(e) = self
            .client
            .post_envelope(
                "/queries/v1/abort-request",
                Some(&self.session.token()),
                &body,
            )
            .await
        {
            tracing::warn!(connection = %self.client.connection, error = %e, "aborting the Snowflake query failed");
        }
    }
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let guard = AbortGuard {
            client: self.client.clone(),
            session: self.session.clone(),
            request_id: std::mem::take(&mut self.request_id),
            sql: std::mem::take(&mut self.sql),
            armed: false,
        };
        rt.spawn(async move { guard.abort().await });
    }
}

/// The model wrapped as a subquery, filtered by the watermark when there is one; the bound is
/// the only binding, typed (FIXED, TEXT) or cast from text (decimals, dates, timestamps).
fn model_sql(query: &ModelQuery) -> (String, Value) {
    let sql = subquery_sql(&query.sql);
    let Some(f) = &query.filter else {
        return (format!("SELECT * FROM ({sql}) AS q"), Value::Null);
    };
    let (marker, ty, value) = match &f.after {
        Bound::Integer(t) => ("?".to_string(), "FIXED", t.clone()),
        Bound::Decimal(t) => {
            let scale = t.split_once('.').map_or(0, |(_, f)| f.len()).min(37);
            (
                format!("CAST(? AS DECIMAL(38, {scale}))"),
                "TEXT",
                t.clone(),
            )
        }
        Bound::Instant(t) => (
            "CAST(? AS TIMESTAMP WITH TIME ZONE)".to_string(),
            "TEXT",
            t.format("%Y-%m-%d %H:%M:%S%.f+00:00").to_string(),
        ),
        Bound::Naive(t) => (
            "CAST(? AS TIMESTAMP)".to_string(),
            "TEXT",
            t.format("%Y-%m-%d %H:%M:%S%.f").to_string(),
        ),
        Bound::Date(d) => (
            "CAST(? AS DATE)".to_string(),
            "TEXT",
            d.format("%Y-%m-%d").to_string(),
        ),
        Bound::Text(t) => ("?".to_string(), "TEXT", t.clone()),
    };
    (
        format!(
            "SELECT * FROM ({sql}) AS q WHERE q.{} > {marker}",
            sql_name(&f.column)
        ),
        json!({"1": {"type": ty, "value": value}}),
    )
}

/// What is left to read of a result.
struct Reader {
    client: Client,
    columns: Arc<Vec<Column>>,
    arrow: bool,
    headers: HeaderMap,
    chunks: VecDeque<String>,
    rows: std::vec::IntoIter<Values>,
}

impl Reader {
    fn error(&self, message: String) -> SourceError {
        SourceError::Query {
            connection: self.client.connection.clone(),
            code: "retl_row".into(),
            message,
        }
    }

    fn decode(&self, bytes: &[u8]) -> Result<Vec<Values>, SourceError> {
        let rows = if self.arrow {
            arrow::rows(&self.columns, bytes)
        } else {
            json_rows::chunk_rows(&self.columns, bytes)
        };
        rows.map_err(|m| self.error(m))
    }

    /// The next row, downloading the next chunk when the current one is used up.
    async fn next(mut self) -> Result<Option<(Values, Reader)>, SourceError> {
        loop {
            if let Some(row) = self.rows.next() {
                return Ok(Some((row, self)));
            }
            let Some(url) = self.chunks.pop_front() else {
                return Ok(None);
            };
            let bytes = self.client.chunk(&url, &self.headers).await?;
            self.rows = self.decode(&bytes)?.into_iter();
        }
    }
}

/// A reader of a query's result `data`: its inline first chunk, then the listed chunks.
fn reader(client: &Client, data: &Value) -> Result<Reader, SourceError> {
    let columns = Arc::new(columns(&data["rowtype"]));
    let arrow = data["queryResultFormat"].as_str() == Some("arrow");
    let mut reader = Reader {
        client: client.clone(),
        columns,
        arrow,
        headers: chunk_headers(data),
        chunks: data["chunks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["url"].as_str().map(str::to_string))
            .collect(),
        rows: Vec::new().into_iter(),
    };
    let first = if arrow {
        let encoded = data["rowsetBase64"].as_str().unwrap_or_default();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| reader.error(format!("rowsetBase64 is not base64: {e}")))?;
        reader.decode(&bytes)?
    } else {
        json_rows::rows(&reader.columns, &data["rowset"]).map_err(|m| reader.error(m))?
    };
    reader.rows = first.into_iter();
    Ok(reader)
}

#[async_trait]
impl Source for SnowflakeSource {
    async fn columns(&self, query: &ModelQuery) -> Result<Vec<String>, SourceError> {
        let tag = query.tag();
        let session = self.login(&tag).await?;
        let sql = subquery_sql(&query.sql);
        let data = self.execute(&session, sql, Value::Null, &tag, true).await?;
        Ok(columns(&data["rowtype"])
            .into_iter()
            .map(|c| c.name)
            .collect())
    }

    async fn rows(&self, query: &ModelQuery) -> Result<RowStream, SourceError> {
        let tag = query.tag();
        let session = self.login(&tag).await?;
        let (sql, bindings) = model_sql(query);
        let data = self.execute(&session, &sql, bindings, &tag, false).await?;
        let reader = reader(&self.client, &data)?;
        Ok(Box::pin(stream::try_unfold(reader, Reader::next)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::RowFilter;

    fn filtered(after: Bound) -> (String, Value) {
        let mut q = ModelQuery::new("select * from t;", "s", "r");
        q.filter = Some(RowFilter {
            column: "updated_at".into(),
            after,
        });
        model_sql(&q)
    }

    #[test]
    fn the_watermark_is_a_binding() {
        let (sql, b) = filtered(Bound::Text("c' OR '1'='1".into()));
        assert_eq!(
            sql,
            "SELECT * FROM (select * from t) AS q WHERE q.updated_at > ?"
        );
        assert_eq!(b["1"], json!({"type": "TEXT", "value": "c' OR '1'='1"}));
        let (sql, b) = filtered(Bound::Integer("15".into()));
        assert!(sql.ends_with("> ?"), "{sql}");
        assert_eq!(b["1"]["type"], "FIXED");
        let (sql, _) = filtered(Bound::Decimal("1.25".into()));
        assert!(sql.ends_with("> CAST(? AS DECIMAL(38, 2))"), "{sql}");
        let t = chrono::NaiveDate::from_ymd_opt(2024, 3, 1)
            .unwrap()
            .and_hms_opt(10, 0, 0)
            .unwrap();
        let (sql, b) = filtered(Bound::Naive(t));
        assert!(sql.ends_with("> CAST(? AS TIMESTAMP)"), "{sql}");
        assert_eq!(b["1"]["value"], "2024-03-01 10:00:00");
        let (sql, b) = model_sql(&ModelQuery::new("select 1", "s", "r"));
        assert_eq!(
            (sql.as_str(), b),
            ("SELECT * FROM (select 1) AS q", Value::Null)
        );
    }
}
