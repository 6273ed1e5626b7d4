use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_redshiftdata::operation::describe_statement::DescribeStatementOutput;
use aws_sdk_redshiftdata::operation::get_statement_result::GetStatementResultOutput;
use aws_sdk_redshiftdata::types::{SqlParameter, StatusString};
use aws_sdk_redshiftdata::Client;
use futures::{stream, TryStreamExt};

use super::fields::{self, Column};
use super::RedshiftConnection;
use crate::connectors::aws_sdk::{
    classify, poll_delay, source_error, AwsClientSettings, AwsSettings,
};
use crate::connectors::sql_ident::quote_ident;
use crate::connectors::{subquery_sql, OpenContext};
use crate::delivery::Requester;
use crate::ports::{Bound, ModelQuery, RowStream, SendError, Source, SourceError};
use crate::record::Values;

/// Where statements run: a Serverless workgroup or a provisioned cluster.
#[derive(Debug, Clone)]
enum Target {
    Workgroup(String),
    Cluster { id: String, db_user: Option<String> },
}

/// A Redshift warehouse read through the Data API: `ExecuteStatement` (the watermark as a
/// named parameter, the statement named `retl:<sync>:<run>`), `DescribeStatement` polling,
/// `GetStatementResult` pages streamed one at a time, `CancelStatement` on timeout or when
/// the run stops. Values map by the declared column type (see `fields`).
#[derive(Debug, Clone)]
pub struct RedshiftSource {
    connection: String,
    client: Client,
    target: Target,
    database: String,
    secret_arn: Option<String>,
    timeout_seconds: Option<u64>,
    requests: Arc<Requester>,
}

/// The Data API client of a connection; the SDK's retries are off (the requester retries).
fn client(aws: AwsClientSettings) -> Client {
    crate::connectors::aws_sdk::sdk_client!(aws_sdk_redshiftdata, aws)
}

/// Cancels a statement that was started but not seen to end, when its reader goes away
/// (the run stopped, or the stream was dropped mid-wait).
struct Running {
    client: Client,
    id: String,
    ended: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let cancel = self.client.cancel_statement().id(self.id.clone()).send();
            rt.spawn(async move {
                let _ = cancel.await;
            });
        }
    }
}

impl RedshiftSource {
    /// Opens the connection: AWS settings, the secret ARN, the client.
    pub async fn open(c: &RedshiftConnection, ctx: &OpenContext<'_>) -> Result<Self, SourceError> {
        let aws = AwsSettings {
            region: c.region.clone(),
            endpoint: c.endpoint.clone(),
            access_key_id_env: c.access_key_id_env.clone(),
            secret_access_key_env: c.secret_access_key_env.clone(),
        }
        .resolve(ctx)
        .await?;
        let secret_arn = match &c.secret_arn_env {
            Some(name) => Some(
                ctx.secret(name)
                    .await
                    .map_err(|m| ctx.source_config_error(m))?,
            ),
            None => None,
        };
        let target = match (&c.workgroup, &c.cluster) {
            (Some(w), None) => Target::Workgroup(w.clone()),
            (None, Some(id)) => Target::Cluster {
                id: id.clone(),
                db_user: c.db_user.clone(),
            },
            _ => {
                return Err(ctx.source_config_error(
                    "give exactly one of `workgroup` (Serverless) and `cluster` (provisioned)",
                ))
            }
        };
        Ok(RedshiftSource {
            connection: ctx.name.to_string(),
            client: client(aws),
            target,
            database: c.database.clone(),
            secret_arn,
            timeout_seconds: c.timeout_seconds,
            requests: ctx.requests.clone(),
        })
    }

    fn fail(&self, e: SendError) -> SourceError {
        source_error(&self.connection, e)
    }

    /// Starts `sql`; the returned guard cancels it unless it is seen to end.
    async fn execute(
        &self,
        sql: &str,
        params: &[SqlParameter],
        tag: &str,
    ) -> Result<Running, SourceError> {
        // One token per model run: a retried ExecuteStatement does not start a second one.
        let token = ulid::Ulid::new().to_string();
        let out = self
            .requests
            .call(|| {
                let mut req = self
                    .client
                    .execute_statement()
                    .sql(sql)
                    .database(&self.database)
                    .statement_name(tag)
                    .client_token(&token)
                    .set_parameters((!params.is_empty()).then(|| params.to_vec()))
                    .set_secret_arn(self.secret_arn.clone());
                req = match &self.target {
                    Target::Workgroup(w) => req.workgroup_name(w),
                    Target::Cluster { id, db_user } => {
                        req.cluster_identifier(id).set_db_user(db_user.clone())
                    }
                };
                let send = req.send();
                async move { send.await.map_err(classify) }
            })
            .await
            .map_err(|e| self.fail(e))?;
        let id = out.id().unwrap_or_default().to_string();
        Ok(Running {
            client: self.client.clone(),
            id,
            ended: false,
        })
    }

    /// Polls until the statement ends; past `timeout_seconds` it is cancelled.
    async fn wait(&self, running: &mut Running) -> Result<DescribeStatementOutput, SourceError> {
        let started = Instant::now();
        let limit = self.timeout_seconds.map(Duration::from_secs);
        for polls in 0u32.. {
            let d = self
                .requests
                .call(|| {
                    let send = self.client.describe_statement().id(&running.id).send();
                    async move { send.await.map_err(classify) }
                })
                .await
                .map_err(|e| self.fail(e))?;
            match d.status() {
                Some(StatusString::Finished) => {
                    running.ended = true;
                    return Ok(d);
                }
                Some(StatusString::Failed) => {
                    running.ended = true;
                    return Err(self.failed(d.error().unwrap_or("the statement failed")));
                }
                Some(StatusString::Aborted) => {
                    running.ended = true;
                    return Err(SourceError::Query {
                        connection: self.connection.clone(),
                        code: "ABORTED".into(),
                        message: "the statement was cancelled in Redshift".into(),
                    });
                }
                _ => {}
            }
            let mut delay = poll_delay(polls);
            if let Some(limit) = limit {
                let elapsed = started.elapsed();
                if elapsed >= limit {
                    return Err(self.cancel(running).await);
                }
                delay = delay.min(limit - elapsed);
            }
            tokio::time::sleep(delay).await;
        }
        unreachable!("the poll loop only ends by returning")
    }

    /// Cancels a statement past its time limit; the timeout error to report.
    async fn cancel(&self, running: &mut Running) -> SourceError {
        let cancelled = self
            .requests
            .call(|| {
                let send = self.client.cancel_statement().id(&running.id).send();
                async move { send.await.map_err(classify) }
            })
            .await;
        // A statement that ended meanwhile cannot be cancelled; either way it no longer runs.
        running.ended = true;
        if let Err(e) = cancelled {
            tracing::warn!(connection = %self.connection, error = %e, "CancelStatement failed");
        }
        SourceError::Timeout {
            connection: self.connection.clone(),
            seconds: self.timeout_seconds.unwrap_or(0),
        }
    }

    /// A FAILED statement's error. The Data API gives the engine's message (`ERROR: ...`)
    /// without a SQLSTATE, so the code is the statement status.
    fn failed(&self, error: &str) -> SourceError {
        let message = error.trim_start_matches("ERROR:").trim().to_string();
        let connection = self.connection.clone();
        let code = "FAILED".to_string();
        let lower = message.to_ascii_lowercase();
        if lower.contains("permission denied") || lower.contains("not authorized") {
            SourceError::Auth {
                connection,
                code,
                message,
            }
        } else {
            SourceError::Query {
                connection,
                code,
                message,
            }
        }
    }

    /// One result page from `next` on.
    async fn page(
        &self,
        id: &str,
        next: Option<String>,
    ) -> Result<GetStatementResultOutput, SourceError> {
        self.requests
            .call(|| {
                let send = self
                    .client
                    .get_statement_result()
                    .id(id)
                    .set_next_token(next.clone())
                    .send();
                async move { send.await.map_err(classify) }
            })
            .await
            .map_err(|e| self.fail(e))
    }

    /// Runs `sql` to the end and reads its first page.
    async fn run(
        &self,
        sql: &str,
        params: &[SqlParameter],
        query: &ModelQuery,
    ) -> Result<(String, GetStatementResultOutput), SourceError> {
        let mut running = self.execute(sql, params, &query.tag()).await?;
        let done = self.wait(&mut running).await?;
        if !done.has_result_set().unwrap_or(false) {
            return Err(SourceError::Query {
                connection: self.connection.clone(),
                code: "NO_RESULT_SET".into(),
                message: "the model SQL returned no rows result (is it a SELECT?)".into(),
            });
        }
        let first = self.page(&running.id, None).await?;
        Ok((running.id.clone(), first))
    }

    fn rows_of(
        &self,
        columns: &[Column],
        page: &GetStatementResultOutput,
    ) -> Result<Vec<Values>, SourceError> {
        page.records()
            .iter()
            .map(|record| {
                let mut row = Values::new();
                for (c, f) in columns.iter().zip(record) {
                    let v = fields::value(c, f).map_err(|message| SourceError::Query {
                        connection: self.connection.clone(),
                        code: "retl_value".into(),
                        message,
                    })?;
                    row.insert(c.name.clone(), v);
                }
                Ok(row)
            })
            .collect()
    }
}

/// The model wrapped as a subquery, filtered by the high watermark when there is one; the
/// bound is the named parameter `:retl_after`, cast to the column's kind.
fn model_sql(query: &ModelQuery) -> (String, Vec<SqlParameter>) {
    let sql = subquery_sql(&query.sql);
    let Some(f) = &query.filter else {
        return (format!("SELECT * FROM ({sql}) AS q"), Vec::new());
    };
    let (ty, text) = match &f.after {
        Bound::Integer(t) => ("DECIMAL(38,0)".to_string(), t.clone()),
        Bound::Decimal(t) => {
            let scale = t.split_once('.').map_or(0, |(_, f)| f.len()).min(37);
            (format!("DECIMAL(38,{scale})"), t.clone())
        }
        Bound::Instant(t) => (
            "TIMESTAMPTZ".into(),
            t.format("%Y-%m-%d %H:%M:%S%.f+00").to_string(),
        ),
        Bound::Naive(t) => (
            "TIMESTAMP".into(),
            t.format("%Y-%m-%d %H:%M:%S%.f").to_string(),
        ),
        Bound::Date(d) => ("DATE".into(), d.format("%Y-%m-%d").to_string()),
        Bound::Text(t) => ("VARCHAR(65535)".into(), t.clone()),
    };
    let column = quote_ident(&f.column);
    if text.is_empty() {
        // The Data API refuses empty parameter values; every non-empty text is above ''.
        return (
            format!("SELECT * FROM ({sql}) AS q WHERE q.{column} > ''"),
            Vec::new(),
        );
    }
    let param = SqlParameter::builder()
        .name("retl_after")
        .value(text)
        .build()
        .expect("name and value are set");
    (
        format!("SELECT * FROM ({sql}) AS q WHERE q.{column} > CAST(:retl_after AS {ty})"),
        vec![param],
    )
}

#[async_trait]
impl Source for RedshiftSource {
    async fn columns(&self, query: &ModelQuery) -> Result<Vec<String>, SourceError> {
        let sql = format!("SELECT * FROM ({}) AS q LIMIT 0", subquery_sql(&query.sql));
        let (_, first) = self.run(&sql, &[], query).await?;
        Ok(fields::columns(first.column_metadata())
            .into_iter()
            .map(|c| c.name)
            .collect())
    }

    async fn rows(&self, query: &ModelQuery) -> Result<RowStream, SourceError> {
        let (sql, params) = model_sql(query);
        let (id, first) = self.run(&sql, &params, query).await?;
        let columns = Arc::new(fields::columns(first.column_metadata()));
        let this = self.clone();
        // One page in memory at a time: the next is fetched when this one is consumed.
        let pages = stream::try_unfold(Some(first), move |page| {
            let this = this.clone();
            let id = id.clone();
            let columns = columns.clone();
            async move {
                let Some(page) = page else {
                    return Ok(None);
                };
                let rows = this.rows_of(&columns, &page)?;
                let next = match page.next_token() {
                    Some(token) => Some(this.page(&id, Some(token.to_string())).await?),
                    None => None,
                };
                Ok(Some((rows, next)))
            }
        });
        let rows = pages
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
    fn the_watermark_is_a_typed_parameter() {
        let mut q = ModelQuery::new("select * from t;", "s", "r");
        q.filter = Some(RowFilter {
            column: "updated_at".into(),
            after: Bound::Text("c' OR '1'='1".into()),
        });
        let (sql, params) = model_sql(&q);
        assert_eq!(
            sql,
            "SELECT * FROM (select * from t) AS q WHERE q.\"updated_at\" > CAST(:retl_after AS VARCHAR(65535))"
        );
        assert_eq!(params[0].value(), "c' OR '1'='1");
        q.filter = Some(RowFilter {
            column: "amount".into(),
            after: Bound::Decimal("1.250".into()),
        });
        assert!(model_sql(&q)
            .0
            .ends_with("CAST(:retl_after AS DECIMAL(38,3))"));
    }
}
