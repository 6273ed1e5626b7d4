use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::{stream, TryStreamExt};
use reqwest::Method;
use serde_json::{json, Value};

use super::api::{Api, Auth};
use super::text::{self, Column};
use super::{arrow, DatabricksConnection, Disposition};
use crate::connectors::{subquery_sql, OpenContext};
use crate::ports::{Bound, ModelQuery, RowStream, Source, SourceError};
use crate::record::Values;

const STATEMENTS: &str = "/api/2.0/sql/statements";

/// A Databricks SQL warehouse read through the Statement Execution API 2.0: the model is
/// submitted with a short `wait_timeout` and polled; its result chunks (INLINE `JSON_ARRAY`,
/// or `EXTERNAL_LINKS` `ARROW_STREAM` downloaded from their links) are read one at a time
/// along `next_chunk_internal_link`; past `timeout_seconds`, or when the run stops, the
/// statement is cancelled. The watermark is the named parameter `:retl_after`.
#[derive(Debug, Clone)]
pub struct DatabricksSource {
    connection: String,
    api: Api,
    warehouse_id: String,
    catalog: Option<String>,
    schema: Option<String>,
    disposition: Disposition,
    timeout_seconds: Option<u64>,
}

/// Cancels a submitted statement not seen to end when its reader goes away.
struct Running {
    api: Api,
    id: String,
    ended: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let api = self.api.clone();
            let path = format!("{STATEMENTS}/{}/cancel", self.id);
            rt.spawn(async move {
                let _ = api.call(Method::POST, &path, Some(&json!({}))).await;
            });
        }
    }
}

/// How long to wait before the next status poll: quick at first, then once a second.
fn poll_delay(polls: u32) -> Duration {
    Duration::from_millis((50u64 << polls.min(5)).min(1000))
}

/// An identifier as Databricks SQL reads it: plain names as they are, others in backticks.
fn ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("`{}`", name.replace('`', "``"))
    }
}

/// The model wrapped as a subquery, filtered by the watermark parameter when there is one.
fn model_sql(query: &ModelQuery) -> (String, Vec<Value>) {
    let sql = subquery_sql(&query.sql);
    let Some(f) = &query.filter else {
        return (format!("SELECT * FROM ({sql}) AS q"), Vec::new());
    };
    let (ty, value) = match &f.after {
        Bound::Integer(t) => ("DECIMAL(38,0)".to_string(), t.clone()),
        Bound::Decimal(t) => {
            let scale = t.split_once('.').map_or(0, |(_, f)| f.len()).min(38);
            (format!("DECIMAL(38,{scale})"), t.clone())
        }
        Bound::Instant(t) => (
            "TIMESTAMP".into(),
            t.format("%Y-%m-%dT%H:%M:%S%.fZ").to_string(),
        ),
        Bound::Naive(t) => (
            "TIMESTAMP_NTZ".into(),
            t.format("%Y-%m-%dT%H:%M:%S%.f").to_string(),
        ),
        Bound::Date(d) => ("DATE".into(), d.format("%Y-%m-%d").to_string()),
        Bound::Text(t) => ("STRING".into(), t.clone()),
    };
    (
        format!(
            "SELECT * FROM ({sql}) AS q WHERE q.{} > :retl_after",
            ident(&f.column)
        ),
        vec![json!({"name": "retl_after", "value": value, "type": ty})],
    )
}

impl DatabricksSource {
    /// Opens the connection: credentials from secrets, the API client.
    pub async fn open(
        c: &DatabricksConnection,
        ctx: &OpenContext<'_>,
    ) -> Result<Self, SourceError> {
        let secret = |name: &str| {
            let name = name.to_string();
            async move {
                ctx.secret(&name)
                    .await
                    .map_err(|m| ctx.source_config_error(m))
            }
        };
        let auth = match (&c.token_env, &c.client_id, &c.client_secret_env) {
            (Some(t), None, None) => Auth::Token(secret(t).await?),
            (None, Some(id), Some(s)) => Auth::ServicePrincipal {
                client_id: id.clone(),
                client_secret: secret(s).await?,
            },
            (None, None, None) if c.endpoint.is_some() => Auth::None,
            _ => {
                return Err(ctx.source_config_error(
                    "give `token_env` (a personal access token) or `client_id` and \
                     `client_secret_env` (OAuth M2M)",
                ))
            }
        };
        let base = c
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://{}", c.host));
        Ok(DatabricksSource {
            connection: ctx.name.to_string(),
            api: Api::new(ctx.name, &base, auth, ctx.requests.clone()),
            warehouse_id: c.warehouse_id.clone(),
            catalog: c.catalog.clone(),
            schema: c.schema.clone(),
            disposition: c.disposition,
            timeout_seconds: c.timeout_seconds,
        })
    }

    fn request(&self, sql: &str, params: Vec<Value>, query: &ModelQuery) -> Value {
        // The API waits 5 to 50 s (or not at all); a shorter timeout polls from the start.
        let wait = self.timeout_seconds.map_or(10, |t| t.min(10));
        let wait = if wait < 5 { 0 } else { wait };
        let (disposition, format) = match self.disposition {
            Disposition::ExternalLinks => ("EXTERNAL_LINKS", "ARROW_STREAM"),
            Disposition::Inline => ("INLINE", "JSON_ARRAY"),
        };
        let mut body = json!({
            "statement": sql,
            "warehouse_id": self.warehouse_id,
            "wait_timeout": format!("{wait}s"),
            "on_wait_timeout": "CONTINUE",
            "disposition": disposition,
            "format": format,
            "query_tags": [
                {"key": "retl-sync", "value": query.sync},
                {"key": "retl-run", "value": query.run_id},
            ],
        });
        if !params.is_empty() {
            body["parameters"] = Value::Array(params);
        }
        if let Some(c) = &self.catalog {
            body["catalog"] = json!(c);
        }
        if let Some(s) = &self.schema {
            body["schema"] = json!(s);
        }
        body
    }

    /// Submits the statement and polls it to SUCCEEDED; the final answer (manifest, chunk 0).
    async fn run(
        &self,
        sql: &str,
        params: Vec<Value>,
        query: &ModelQuery,
    ) -> Result<Value, SourceError> {
        let started = Instant::now();
        let body = self.request(sql, params, query);
        let mut resp = self.api.call(Method::POST, STATEMENTS, Some(&body)).await?;
        let mut running = Running {
            api: self.api.clone(),
            id: resp["statement_id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            ended: false,
        };
        let limit = self.timeout_seconds.map(Duration::from_secs);
        for polls in 0u32.. {
            let state = resp["status"]["state"].as_str().unwrap_or("PENDING");
            if !matches!(state, "PENDING" | "RUNNING") {
                running.ended = true;
                return match state {
                    "SUCCEEDED" => Ok(resp),
                    _ => Err(self.ended_badly(state, &resp["status"])),
                };
            }
            let mut delay = poll_delay(polls);
            if let Some(limit) = limit {
                let elapsed = started.elapsed();
                if elapsed >= limit {
                    return Err(self.cancel(&mut running).await);
                }
                delay = delay.min(limit - elapsed);
            }
            tokio::time::sleep(delay).await;
            let path = format!("{STATEMENTS}/{}", running.id);
            resp = self.api.call(Method::GET, &path, None).await?;
        }
        unreachable!("the poll loop only ends by returning")
    }

    /// Cancels a statement past its time limit; the timeout error to report.
    async fn cancel(&self, running: &mut Running) -> SourceError {
        let path = format!("{STATEMENTS}/{}/cancel", running.id);
        if let Err(e) = self.api.call(Method::POST, &path, Some(&json!({}))).await {
            tracing::warn!(connection = %self.connection, error = %e, "cancelling the statement failed");
        }
        running.ended = true;
        SourceError::Timeout {
            connection: self.connection.clone(),
            seconds: self.timeout_seconds.unwrap_or(0),
        }
    }

    /// FAILED, CANCELED or CLOSED: the statement's own error, with its SQLSTATE when given.
    fn ended_badly(&self, state: &str, status: &Value) -> SourceError {
        let error_code = status["error"]["error_code"].as_str().unwrap_or(state);
        let code = status["sql_state"]
            .as_str()
            .unwrap_or(error_code)
            .to_string();
        let message = status["error"]["message"]
            .as_str()
            .map_or_else(|| format!("the statement ended {state}"), str::to_string);
        let connection = self.connection.clone();
        if error_code == "PERMISSION_DENIED" || code == "42501" {
            return SourceError::Auth {
                connection,
                code,
                message,
            };
        }
        SourceError::Query {
            connection,
            code,
            message,
        }
    }

    fn bad_value(&self, message: String) -> SourceError {
        SourceError::Query {
            connection: self.connection.clone(),
            code: "retl_value".into(),
            message,
        }
    }

    /// The rows of one `ResultData` (inline rows, or the chunks behind its external links)
    /// and the path of the next chunk.
    async fn chunk(
        &self,
        data: &Value,
        columns: &[Column],
    ) -> Result<(Vec<Values>, Option<String>), SourceError> {
        let mut rows = Vec::new();
        let mut next = data["next_chunk_internal_link"]
            .as_str()
            .map(str::to_string);
        for row in data["data_array"].as_array().into_iter().flatten() {
            let cells = row.as_array().map(Vec::as_slice).unwrap_or_default();
            let mut values = Values::new();
            for (c, cell) in columns.iter().zip(cells) {
                let v = text::value(c.kind, cell).ok_or_else(|| {
                    self.bad_value(format!(
                        "column `{}` ({}) holds a value retl cannot read",
                        c.name, c.type_name
                    ))
                })?;
                values.insert(c.name.clone(), v);
            }
            rows.push(values);
        }
        for link in data["external_links"].as_array().into_iter().flatten() {
            let url = link["external_link"].as_str().unwrap_or_default();
            let headers: Vec<(String, String)> = link["http_headers"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect();
            let body = self.api.download(url, &headers).await?;
            rows.extend(arrow::rows(body, columns).map_err(|m| self.bad_value(m))?);
            if let Some(n) = link["next_chunk_internal_link"].as_str() {
                next = Some(n.to_string());
            }
        }
        Ok((rows, next))
    }
}

#[async_trait]
impl Source for DatabricksSource {
    async fn columns(&self, query: &ModelQuery) -> Result<Vec<String>, SourceError> {
        let sql = format!("SELECT * FROM ({}) AS q LIMIT 0", subquery_sql(&query.sql));
        let resp = self.run(&sql, Vec::new(), query).await?;
        Ok(text::columns(&resp["manifest"])
            .into_iter()
            .map(|c| c.name)
            .collect())
    }

    async fn rows(&self, query: &ModelQuery) -> Result<RowStream, SourceError> {
        let (sql, params) = model_sql(query);
        let resp = self.run(&sql, params, query).await?;
        let columns = Arc::new(text::columns(&resp["manifest"]));
        let first = resp.get("result").cloned().unwrap_or(Value::Null);
        let this = self.clone();
        // One chunk in memory at a time: the next is fetched when this one is consumed.
        let chunks = stream::try_unfold(Some(first), move |data| {
            let this = this.clone();
            let columns = columns.clone();
            async move {
                let Some(data) = data else {
                    return Ok(None);
                };
                let (rows, next) = this.chunk(&data, &columns).await?;
                let next = match next {
                    Some(path) => Some(this.api.call(Method::GET, &path, None).await?),
                    None => None,
                };
                Ok(Some((rows, next)))
            }
        });
        let rows = chunks
            .map_ok(|rows| stream::iter(rows.into_iter().map(Ok)))
            .try_flatten();
        Ok(Box::pin(rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::RowFilter;

    #[test]
    fn the_watermark_is_a_typed_named_parameter() {
        let mut q = ModelQuery::new("select * from t;", "s", "r");
        q.filter = Some(RowFilter {
            column: "updated at".into(),
            after: Bound::Text("c' OR '1'='1".into()),
        });
        let (sql, params) = model_sql(&q);
        assert_eq!(
            sql,
            "SELECT * FROM (select * from t) AS q WHERE q.`updated at` > :retl_after"
        );
        assert_eq!(
            params[0],
            json!({"name": "retl_after", "value": "c' OR '1'='1", "type": "STRING"})
        );
        assert_eq!(ident("seq"), "seq");
    }
}
