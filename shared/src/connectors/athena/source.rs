use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_athena::operation::get_query_results::GetQueryResultsOutput;
use aws_sdk_athena::types::{QueryExecutionContext, QueryExecutionState, ResultConfiguration};
use aws_sdk_athena::Client;
use futures::{stream, TryStreamExt};

use super::cells::{self, Column};
use super::{result_file, AthenaConnection, ResultsFrom};
use crate::connectors::aws_sdk::{
    classify, poll_delay, source_error, AwsClientSettings, AwsSettings,
};
use crate::connectors::sql_ident::quote_ident;
use crate::connectors::{subquery_sql, values, OpenContext};
use crate::delivery::Requester;
use crate::ports::{Bound, ModelQuery, RowStream, SendError, Source, SourceError};
use crate::record::Values;

/// Rows per `GetQueryResults` page (the API's maximum).
const PAGE_ROWS: i32 = 1000;

/// An Athena workgroup read with `StartQueryExecution` (the watermark as an execution
/// parameter, a client request token, the query named `retl:<sync>:<run>` in a leading
/// comment), `GetQueryExecution` polling and `GetQueryResults` pages streamed one at a time
/// (the first row of the first page is the header); `StopQueryExecution` on timeout or when
/// the run stops. Values map by each column's declared type (see `cells`).
#[derive(Debug, Clone)]
pub struct AthenaSource {
    connection: String,
    client: Client,
    workgroup: String,
    database: String,
    catalog: Option<String>,
    output_location: Option<String>,
    timeout_seconds: Option<u64>,
    requests: Arc<Requester>,
    /// With `results_from: s3`, the client that reads the result files.
    s3: Option<aws_sdk_s3::Client>,
}

/// The Athena client of a connection; the SDK's retries are off (the requester retries).
fn client(aws: AwsClientSettings) -> Client {
    crate::connectors::aws_sdk::sdk_client!(aws_sdk_athena, aws)
}

/// The S3 client of the result files; an endpoint override is addressed path-style (an
/// emulator or a VPC endpoint has no bucket subdomains).
fn s3_client(aws: AwsClientSettings) -> aws_sdk_s3::Client {
    let path_style = aws.endpoint.is_some();
    let client = crate::connectors::aws_sdk::sdk_client!(aws_sdk_s3, aws);
    aws_sdk_s3::Client::from_conf(
        client
            .config()
            .to_builder()
            .force_path_style(path_style)
            .build(),
    )
}

/// Stops a query that was started but not seen to end, when its reader goes away.
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
            let stop = self
                .client
                .stop_query_execution()
                .query_execution_id(self.id.clone())
                .send();
            rt.spawn(async move {
                let _ = stop.await;
            });
        }
    }
}

/// `retl:<sync>:<run>` as a SQL comment: only characters that cannot end the comment.
fn tag_comment(query: &ModelQuery) -> String {
    let tag: String = query
        .tag()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.'))
        .collect();
    format!("-- {tag}\n")
}

/// The watermark as an execution parameter: Athena binds parameters as SQL literals, so the
/// bound is a typed literal, with text quoted and its quotes doubled.
fn literal(bound: &Bound) -> Option<String> {
    let plain = |t: &str| values::decimal(t).is_some();
    Some(match bound {
        Bound::Integer(t) if plain(t) && !t.contains('.') => t.trim().to_string(),
        Bound::Decimal(t) if plain(t) => format!("DECIMAL '{}'", t.trim()),
        Bound::Instant(t) => format!("TIMESTAMP '{} UTC'", t.format("%Y-%m-%d %H:%M:%S%.3f")),
        Bound::Naive(t) => format!("TIMESTAMP '{}'", t.format("%Y-%m-%d %H:%M:%S%.3f")),
        Bound::Date(d) => format!("DATE '{}'", d.format("%Y-%m-%d")),
        Bound::Text(t) => format!("'{}'", t.replace('\'', "''")),
        Bound::Integer(_) | Bound::Decimal(_) => return None,
    })
}

/// The model wrapped as a subquery, filtered by the watermark parameter when there is one.
fn model_sql(query: &ModelQuery) -> Result<(String, Option<String>), String> {
    let sql = subquery_sql(&query.sql);
    let tag = tag_comment(query);
    let Some(f) = &query.filter else {
        return Ok((format!("{tag}SELECT * FROM ({sql}) AS q"), None));
    };
    let param = literal(&f.after)
        .ok_or_else(|| format!("the watermark of `{}` is not a plain number", f.column))?;
    Ok((
        format!(
            "{tag}SELECT * FROM ({sql}) AS q WHERE q.{} > ?",
            quote_ident(&f.column)
        ),
        Some(param),
    ))
}

impl AthenaSource {
    /// Opens the connection: AWS settings and the client.
    pub async fn open(c: &AthenaConnection, ctx: &OpenContext<'_>) -> Result<Self, SourceError> {
        let aws = AwsSettings {
            region: c.region.clone(),
            endpoint: c.endpoint.clone(),
            access_key_id_env: c.access_key_id_env.clone(),
            secret_access_key_env: c.secret_access_key_env.clone(),
        }
        .resolve(ctx)
        .await?;
        let s3 = match c.results_from {
            ResultsFrom::Api => None,
            ResultsFrom::S3 => Some(s3_client(
                AwsSettings {
                    region: c.region.clone(),
                    endpoint: c.s3_endpoint.clone(),
                    access_key_id_env: c.access_key_id_env.clone(),
                    secret_access_key_env: c.secret_access_key_env.clone(),
                }
                .resolve(ctx)
                .await?,
            )),
        };
        Ok(AthenaSource {
            s3,
            connection: ctx.name.to_string(),
            client: client(aws),
            workgroup: c.workgroup.clone(),
            database: c.database.clone(),
            catalog: c.catalog.clone(),
            output_location: c.output_location.clone(),
            timeout_seconds: c.timeout_seconds,
            requests: ctx.requests.clone(),
        })
    }

    fn fail(&self, e: SendError) -> SourceError {
        source_error(&self.connection, e)
    }

    /// Starts `sql`; the guard stops it unless it is seen to end.
    async fn start(&self, sql: &str, param: Option<&str>) -> Result<Running, SourceError> {
        // Athena wants 32 to 128 characters; one token per model run, so a retried start
        // does not run the query twice.
        let token = format!("retl-{}-{}", ulid::Ulid::new(), ulid::Ulid::new());
        let context = QueryExecutionContext::builder()
            .database(&self.database)
            .set_catalog(self.catalog.clone())
            .build();
        let results = ResultConfiguration::builder()
            .set_output_location(self.output_location.clone())
            .build();
        let out = self
            .requests
            .call(|| {
                let send = self
                    .client
                    .start_query_execution()
                    .query_string(sql)
                    .client_request_token(&token)
                    .work_group(&self.workgroup)
                    .query_execution_context(context.clone())
                    .result_configuration(results.clone())
                    .set_execution_parameters(param.map(|p| vec![p.to_string()]))
                    .send();
                async move { send.await.map_err(classify) }
            })
            .await
            .map_err(|e| self.fail(e))?;
        Ok(Running {
            client: self.client.clone(),
            id: out.query_execution_id().unwrap_or_default().to_string(),
            ended: false,
        })
    }

    /// Polls until the query ends (its result file's location, when Athena gives one); past
    /// `timeout_seconds` it is stopped.
    async fn wait(&self, running: &mut Running) -> Result<Option<String>, SourceError> {
        let started = Instant::now();
        let limit = self.timeout_seconds.map(Duration::from_secs);
        for polls in 0u32.. {
            let out = self
                .requests
                .call(|| {
                    let send = self
                        .client
                        .get_query_execution()
                        .query_execution_id(&running.id)
                        .send();
                    async move { send.await.map_err(classify) }
                })
                .await
                .map_err(|e| self.fail(e))?;
            let status = out.query_execution().and_then(|q| q.status());
            match status.and_then(|s| s.state()) {
                Some(QueryExecutionState::Succeeded) => {
                    running.ended = true;
                    let location = out
                        .query_execution()
                        .and_then(|q| q.result_configuration())
                        .and_then(|r| r.output_location());
                    return Ok(location.map(str::to_string));
                }
                Some(QueryExecutionState::Failed) => {
                    running.ended = true;
                    return Err(self.failed(status));
                }
                Some(QueryExecutionState::Cancelled) => {
                    running.ended = true;
                    return Err(SourceError::Query {
                        connection: self.connection.clone(),
                        code: "CANCELLED".into(),
                        message: "the query was cancelled in Athena".into(),
                    });
                }
                _ => {}
            }
            let mut delay = poll_delay(polls);
            if let Some(limit) = limit {
                let elapsed = started.elapsed();
                if elapsed >= limit {
                    return Err(self.stop(running).await);
                }
                delay = delay.min(limit - elapsed);
            }
            tokio::time::sleep(delay).await;
        }
        unreachable!("the poll loop only ends by returning")
    }

    /// Stops a query past its time limit; the timeout error to report.
    async fn stop(&self, running: &mut Running) -> SourceError {
        let stopped = self
            .requests
            .call(|| {
                let send = self
                    .client
                    .stop_query_execution()
                    .query_execution_id(&running.id)
                    .send();
                async move { send.await.map_err(classify) }
            })
            .await;
        running.ended = true;
        if let Err(e) = stopped {
            tracing::warn!(connection = %self.connection, error = %e, "StopQueryExecution failed");
        }
        SourceError::Timeout {
            connection: self.connection.clone(),
            seconds: self.timeout_seconds.unwrap_or(0),
        }
    }

    /// A FAILED query's error: Athena's error name (`TABLE_NOT_FOUND`, the prefix of its
    /// message) as the code; system errors (category 1) may pass on a retry.
    fn failed(&self, status: Option<&aws_sdk_athena::types::QueryExecutionStatus>) -> SourceError {
        let error = status.and_then(|s| s.athena_error());
        let message = error
            .and_then(|e| e.error_message())
            .or_else(|| status.and_then(|s| s.state_change_reason()))
            .unwrap_or("the query failed")
            .to_string();
        let name = message
            .split_once(':')
            .map(|(n, _)| n.trim())
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_uppercase() || c == '_'));
        let code = match (name, error.and_then(|e| e.error_type())) {
            (Some(n), _) => n.to_string(),
            (None, Some(t)) => format!("ErrorType {t}"),
            (None, None) => "FAILED".into(),
        };
        let connection = self.connection.clone();
        if error.and_then(|e| e.error_category()) == Some(1) {
            return SourceError::Unavailable {
                connection,
                message: format!("{message} ({code})"),
            };
        }
        if code == "PERMISSION_DENIED" || message.contains("AccessDenied") {
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

    /// One result page of up to `max` rows from `next` on.
    async fn page(
        &self,
        id: &str,
        next: Option<String>,
        max: i32,
    ) -> Result<GetQueryResultsOutput, SourceError> {
        self.requests
            .call(|| {
                let send = self
                    .client
                    .get_query_results()
                    .query_execution_id(id)
                    .max_results(max)
                    .set_next_token(next.clone())
                    .send();
                async move { send.await.map_err(classify) }
            })
            .await
            .map_err(|e| self.fail(e))
    }

    /// Runs `sql` to the end and reads its first page (of up to `max` rows, the header
    /// included); also the result file's location.
    async fn run(
        &self,
        sql: &str,
        param: Option<&str>,
        max: i32,
    ) -> Result<(String, GetQueryResultsOutput, Option<String>), SourceError> {
        let mut running = self.start(sql, param).await?;
        let location = self.wait(&mut running).await?;
        let first = self.page(&running.id, None, max).await?;
        Ok((running.id.clone(), first, location))
    }

    /// The rows of a page; `skip_header` drops the first page's header row.
    fn rows_of(
        &self,
        columns: &[Column],
        page: &GetQueryResultsOutput,
        skip_header: bool,
    ) -> Result<Vec<Values>, SourceError> {
        let rows = page.result_set().map(|r| r.rows()).unwrap_or_default();
        rows.iter()
            .skip(usize::from(skip_header))
            .map(|row| {
                let mut values = Values::new();
                for (c, d) in columns.iter().zip(row.data()) {
                    let v = cells::value(c, d.var_char_value()).map_err(|message| {
                        SourceError::Query {
                            connection: self.connection.clone(),
                            code: "retl_value".into(),
                            message,
                        }
                    })?;
                    values.insert(c.name.clone(), v);
                }
                Ok(values)
            })
            .collect()
    }
}

/// The columns of a result's metadata.
fn columns_of(page: &GetQueryResultsOutput) -> Vec<Column> {
    page.result_set()
        .and_then(|r| r.result_set_metadata())
        .map(|m| m.column_info())
        .unwrap_or_default()
        .iter()
        .map(|c| Column::new(c.label().unwrap_or(c.name()), c.r#type()))
        .collect()
}

#[async_trait]
impl Source for AthenaSource {
    async fn columns(&self, query: &ModelQuery) -> Result<Vec<String>, SourceError> {
        let sql = format!(
            "{}SELECT * FROM ({}) AS q LIMIT 0",
            tag_comment(query),
            subquery_sql(&query.sql)
        );
        let (_, first, _) = self.run(&sql, None, 1).await?;
        Ok(columns_of(&first).into_iter().map(|c| c.name).collect())
    }

    async fn rows(&self, query: &ModelQuery) -> Result<RowStream, SourceError> {
        let (sql, param) = model_sql(query).map_err(|message| SourceError::Config {
            connection: self.connection.clone(),
            message,
        })?;
        if let Some(s3) = &self.s3 {
            // The column types from a one-row page (the header); the rows from the file.
            let (_, first, location) = self.run(&sql, param.as_deref(), 1).await?;
            let location = location.ok_or_else(|| SourceError::Config {
                connection: self.connection.clone(),
                message: "Athena gave no result file location; set `output_location` (or the \
                          workgroup's), or leave `results_from` out"
                    .into(),
            })?;
            let columns = Arc::new(columns_of(&first));
            return result_file::rows(s3, &self.requests, &self.connection, &location, columns)
                .await;
        }
        let (id, first, _) = self.run(&sql, param.as_deref(), PAGE_ROWS).await?;
        let columns = Arc::new(columns_of(&first));
        let this = self.clone();
        // One page in memory at a time: the next is fetched when this one is consumed.
        let pages = stream::try_unfold(Some((first, true)), move |page| {
            let this = this.clone();
            let id = id.clone();
            let columns = columns.clone();
            async move {
                let Some((page, first)) = page else {
                    return Ok(None);
                };
                let rows = this.rows_of(&columns, &page, first)?;
                let next = match page.next_token() {
                    Some(token) => Some((
                        this.page(&id, Some(token.to_string()), PAGE_ROWS).await?,
                        false,
                    )),
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
    fn the_watermark_is_a_typed_literal_parameter() {
        let mut q = ModelQuery::new("select * from t;", "s", "r1");
        q.filter = Some(RowFilter {
            column: "label".into(),
            after: Bound::Text("c' OR '1'='1".into()),
        });
        let (sql, param) = model_sql(&q).unwrap();
        assert_eq!(
            sql,
            "-- retl:s:r1\nSELECT * FROM (select * from t) AS q WHERE q.\"label\" > ?"
        );
        assert_eq!(param.as_deref(), Some("'c'' OR ''1''=''1'"));
        assert_eq!(literal(&Bound::Integer("15".into())).as_deref(), Some("15"));
        assert_eq!(literal(&Bound::Integer("1; drop".into())), None);
        assert_eq!(
            literal(&Bound::Decimal("1.50".into())).as_deref(),
            Some("DECIMAL '1.50'")
        );
    }
}
