//! A statement's life after `ExecuteStatement` answered: SUBMITTED, PICKED after the queue
//! delay, STARTED once PostgreSQL runs it, then FINISHED, FAILED (PostgreSQL's message,
//! `ERROR: ` first, as Redshift writes it) or ABORTED (cancelled).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::pg::{self, row_bytes, PgError, PgResult};
use super::state::{RsState, Status};

/// Redshift Data refuses a row larger than 64 KB (troubleshooting guide).
const MAX_ROW_BYTES: usize = 64 * 1024;

/// What to run, and how.
pub(crate) struct Job {
    pub id: String,
    pub sql: String,
    /// An error to fail with instead of running (e.g. an unknown database).
    pub refuse: Option<String>,
}

/// How a statement ended.
enum End {
    Done(PgResult),
    Failed(String),
    Canceled,
}

/// Moves the statement through its states; meant to be spawned.
pub(crate) async fn drive(s: Arc<RsState>, job: Job) {
    let config = s.config();
    tokio::time::sleep(config.queue_delay).await;
    if !advance(&s, &job.id, Status::Picked) {
        return;
    }
    tokio::time::sleep(config.queue_delay).await;
    if let Some(error) = job.refuse {
        finish(&s, &job.id, End::Failed(error));
        return;
    }
    let running = match pg::start(&config.postgres_url, &[], job.sql).await {
        Ok(r) => r,
        Err(e) => return finish(&s, &job.id, End::Failed(format!("ERROR: {e}"))),
    };
    let started = {
        let mut all = s.statements();
        match all.get_mut(&job.id) {
            Some(st) if st.status.active() => {
                st.set_status(Status::Started);
                st.started = Some(Instant::now());
                st.cancel = Some(running.cancel.clone());
                st.pid = Some(running.pid);
                true
            }
            _ => false,
        }
    };
    if !started {
        // Cancelled while connecting: stop the task before (or cancel) its query.
        running.done.abort();
        let _ = running.cancel.cancel_query(tokio_postgres::NoTls).await;
        return;
    }
    let outcome = match running.done.await {
        Ok(Ok(result)) => check_limits(result, config.max_result_bytes),
        Ok(Err(PgError::Canceled)) => End::Canceled,
        Ok(Err(e)) => End::Failed(format!("ERROR: {e}")),
        Err(join) => End::Failed(format!("ERROR: {join}")),
    };
    finish(&s, &job.id, outcome);
}

/// Moves an active statement to `next`; false when it was cancelled meanwhile.
fn advance(s: &RsState, id: &str, next: Status) -> bool {
    match s.statements().get_mut(id) {
        Some(st) if st.status.active() => {
            st.set_status(next);
            true
        }
        _ => false,
    }
}

/// The size limits of the troubleshooting guide, with its wording.
fn check_limits(result: PgResult, max_result_bytes: usize) -> End {
    if result.rows.iter().any(|r| row_bytes(r) > MAX_ROW_BYTES) {
        return End::Failed("Packet for query is too large".into());
    }
    if result.text_bytes() > max_result_bytes {
        return End::Failed("Database response exceeded size limit".into());
    }
    End::Done(result)
}

/// Records the end state; a cancelled statement stays ABORTED whatever PostgreSQL said.
fn finish(s: &RsState, id: &str, outcome: End) {
    let ttl = s.config().result_ttl;
    let mut all = s.statements();
    let Some(st) = all.get_mut(id) else { return };
    st.cancel = None;
    st.duration_ns = Some(st.started.map_or(0, |t| t.elapsed().as_nanos() as i64));
    st.expires = Some(Instant::now() + ttl);
    if st.status == Status::Aborted {
        st.updated_at = SystemTime::now();
        return;
    }
    match outcome {
        End::Done(result) => {
            st.result = Some(Arc::new(result));
            st.set_status(Status::Finished);
        }
        End::Canceled => st.set_status(Status::Aborted),
        End::Failed(e) => {
            st.error = Some(e);
            st.set_status(Status::Failed);
        }
    }
}
