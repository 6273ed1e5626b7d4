//! A statement's execution on PostgreSQL after `POST /api/2.0/sql/statements` accepted it:
//! PENDING (queued for the warehouse), RUNNING, then SUCCEEDED with a chunked result,
//! FAILED with `status.error`, or CANCELED.

use std::sync::Arc;
use std::time::Instant;

use super::formats::{chunk_body, json_row, Columns};
use super::state::{Chunked, DbxState, StmtError, StmtState};
use super::types::DbxType;
use crate::redshift_data::pg::{self, PgColumn, PgError, PgResult};

/// What to run and how to shape its result.
pub(crate) struct Job {
    pub id: String,
    /// The SQL with parameters bound, or the error that binding them gave.
    pub sql: Result<String, StmtError>,
    /// `SET search_path` for the request's `schema`.
    pub setup: Vec<String>,
    pub row_limit: Option<usize>,
    pub byte_limit: Option<usize>,
}

/// Runs the job to its end state; meant to be spawned.
pub(crate) async fn drive(s: Arc<DbxState>, mut job: Job) {
    let config = s.config();
    tokio::time::sleep(config.pending_delay).await;
    let sql = match std::mem::replace(&mut job.sql, Ok(String::new())) {
        Ok(sql) => sql,
        Err(e) => return end(&s, &job.id, Err(e)),
    };
    let running = match pg::start(&config.postgres_url, &job.setup, sql.clone()).await {
        Ok(r) => r,
        Err(e) => return end(&s, &job.id, Err(sql_error(&e))),
    };
    let started = match s.statements().get_mut(&job.id) {
        Some(st) if !st.state.terminal() => {
            st.state = StmtState::Running;
            st.cancel = Some(running.cancel.clone());
            true
        }
        _ => false,
    };
    if !started {
        // Cancelled while connecting: stop the task before (or cancel) its query.
        running.done.abort();
        let _ = running.cancel.cancel_query(tokio_postgres::NoTls).await;
        return;
    }
    let outcome = match running.done.await {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(e)) => Err(sql_error(&e)),
        Err(join) => Err(StmtError {
            code: "INTERNAL_ERROR",
            message: join.to_string(),
            sql_state: None,
        }),
    };
    let shaped = outcome.and_then(|r| shape(&s, &job, &sql, r));
    end(&s, &job.id, shaped);
}

/// The `status.error` of a PostgreSQL failure (`error_code` BAD_REQUEST for SQL errors).
fn sql_error(e: &PgError) -> StmtError {
    match e {
        PgError::Sql { code, message } => StmtError {
            code: "BAD_REQUEST",
            message: message.clone(),
            sql_state: Some(code.clone()),
        },
        PgError::Canceled => StmtError {
            code: "CANCELLED",
            message: e.to_string(),
            sql_state: Some("57014".into()),
        },
        PgError::Connect(_) => StmtError {
            code: "TEMPORARILY_UNAVAILABLE",
            message: e.to_string(),
            sql_state: None,
        },
    }
}

/// DML answers with Delta's `num_affected_rows` result; other statements without rows
/// have an empty result.
fn as_result_set(sql: &str, mut result: PgResult) -> PgResult {
    let verb = sql
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    if !result.has_result_set() && matches!(verb.as_str(), "INSERT" | "UPDATE" | "DELETE" | "MERGE")
    {
        result.columns = vec![PgColumn {
            name: "num_affected_rows".into(),
            ty: tokio_postgres::types::Type::INT8,
            typmod: -1,
            schema: None,
            table: None,
            not_null: false,
        }];
        result.rows = vec![vec![Some(result.affected.to_string())]];
    }
    result
}

/// Applies `row_limit`/`byte_limit`, the INLINE size cap, and splits into chunks.
fn shape(s: &DbxState, job: &Job, sql: &str, result: PgResult) -> Result<Chunked, StmtError> {
    let config = s.config();
    let (format, external) = {
        let all = s.statements();
        let st = all.get(&job.id);
        (st.map(|st| st.format), st.is_some_and(|st| st.external))
    };
    let format = format.unwrap_or(super::formats::Format::JsonArray);
    let result = as_result_set(sql, result);
    let columns = Columns {
        names: result.columns.iter().map(|c| c.name.clone()).collect(),
        types: result.columns.iter().map(DbxType::of).collect(),
    };
    let mut rows = result.rows;
    let mut truncated = false;
    if let Some(limit) = job.row_limit.filter(|l| rows.len() > *l) {
        rows.truncate(limit);
        truncated = true;
    }
    if let Some(limit) = job.byte_limit {
        let mut used = 0;
        let keep = rows
            .iter()
            .take_while(|r| {
                used += pg::row_bytes(r);
                used <= limit
            })
            .count();
        truncated |= keep < rows.len();
        rows.truncate(keep);
    }
    if !external {
        let size: usize = rows
            .iter()
            .map(|r| json_row(&columns, r).to_string().len())
            .sum();
        if size > config.inline_limit_bytes {
            return Err(StmtError {
                code: "BAD_REQUEST",
                message: format!("Inline byte limit exceeded. Statements executed with disposition=INLINE can have a result size of at most {} bytes. Please use disposition=EXTERNAL_LINKS for large results.", config.inline_limit_bytes),
                sql_state: None,
            });
        }
    }
    let per = config.rows_per_chunk.max(1);
    let chunks: Vec<(usize, usize)> = (0..rows.len())
        .step_by(per)
        .map(|o| (o, per.min(rows.len() - o)))
        .collect();
    let bodies = if external {
        chunks
            .iter()
            .enumerate()
            .map(|(i, (o, n))| chunk_body(format, &columns, &rows[*o..o + n], i == 0))
            .collect()
    } else {
        Vec::new()
    };
    Ok(Chunked {
        columns,
        rows,
        chunks,
        bodies,
        truncated,
    })
}

/// Records the end state; a statement cancelled meanwhile stays CANCELED.
fn end(s: &DbxState, id: &str, outcome: Result<Chunked, StmtError>) {
    let ttl = s.config().result_ttl;
    let mut all = s.statements();
    let Some(st) = all.get_mut(id) else { return };
    st.cancel = None;
    if st.state == StmtState::Canceled {
        return;
    }
    match outcome {
        Ok(chunked) => {
            st.result = Some(Arc::new(chunked));
            st.state = StmtState::Succeeded;
            st.closes = Some(Instant::now() + ttl);
        }
        Err(e) if e.code == "CANCELLED" => st.state = StmtState::Canceled,
        Err(e) => {
            st.error = Some(e);
            st.state = StmtState::Failed;
        }
    }
}
