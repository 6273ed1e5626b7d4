//! The MySQL / MariaDB [`Source`]: one connection per model run, opened through the
//! connection's [`Requester`] (transient connection failures are retried there), the model run
//! as a prepared statement whose rows a task reads one by one into a small channel (bounded
//! memory), and `KILL QUERY` from a second connection when the run stops reading or the
//! timeout passes.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, DriverError, Opts, OptsBuilder, Params, Row, SslOpts, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::error::classify;
use super::sql::{model_sql, Flavour};
use super::types::{self, Kind};
use super::{MySqlConnection, MySqlTls};
use crate::connectors::{subquery_sql, OpenContext};
use crate::delivery::Requester;
use crate::ports::{ModelQuery, RowStream, SendError, Source, SourceError};
use crate::record::Values;

/// Rows read ahead of the run: the only rows in memory.
const ROW_BUFFER: usize = 256;
/// How long after `timeout_seconds` the source kills a statement the server did not stop
/// itself (the server's own limit normally answers first, with its own error).
const KILL_GRACE: Duration = Duration::from_secs(2);
/// Longest wait for `KILL QUERY` and for closing the connection after it.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

type Item = Result<Values, SourceError>;

/// How the task reading a result ended.
enum Outcome {
    /// The result was read to its end (or the server ended it with an error, already sent).
    Finished,
    /// The statement is still running but nobody reads it: the run stopped, or a value could
    /// not be converted.
    Abandoned,
    /// The timeout passed.
    TimedOut,
}

/// A MySQL or MariaDB warehouse.
#[derive(Clone)]
pub struct MySqlSource {
    connection: String,
    opts: Opts,
    /// Without TLS: the fallback of `tls: preferred` when the server offers none.
    plain: Option<Opts>,
    timeout_seconds: Option<u64>,
    requests: Arc<Requester>,
}

impl std::fmt::Debug for MySqlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The options hold the password.
        f.debug_struct("MySqlSource")
            .field("connection", &self.connection)
            .finish_non_exhaustive()
    }
}

/// `host:port` or `mysql://host:port` as its parts (checked by `check()`).
fn endpoint_parts(endpoint: &str) -> Option<(String, u16)> {
    let rest = endpoint
        .strip_prefix("mysql://")
        .or_else(|| endpoint.strip_prefix("mariadb://"))
        .unwrap_or(endpoint)
        .trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':')?;
    Some((
        host.trim_matches(['[', ']']).to_string(),
        port.parse().ok()?,
    ))
}

/// The TLS options of a mode; `None` for plain TCP.
fn ssl_opts(config: &MySqlConnection, ctx: &OpenContext<'_>) -> Option<SslOpts> {
    let opts = match config.tls {
        MySqlTls::Disabled => return None,
        MySqlTls::Preferred | MySqlTls::Required => {
            SslOpts::default().with_danger_accept_invalid_certs(true)
        }
        MySqlTls::VerifyCa => SslOpts::default().with_danger_skip_domain_validation(true),
        MySqlTls::VerifyIdentity => SslOpts::default(),
    };
    // The driver builds its TLS config from the process's default provider; install ring
    // (what every TLS client of retl uses) unless one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Some(match &config.ca_file {
        Some(path) => opts.with_root_certs(vec![ctx.resolve(path).into()]),
        None => opts,
    })
}

impl MySqlSource {
    /// A source for `url` with the connection's endpoint, TLS and timeout.
    pub fn new(
        ctx: &OpenContext<'_>,
        config: &MySqlConnection,
        url: &str,
    ) -> Result<Self, SourceError> {
        let url = match url.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None => url.to_string(),
        };
        // The driver's URL errors name parameters, never the password.
        let opts = Opts::from_url(&url).map_err(|e| {
            ctx.source_config_error(format!(
                "the connection URL is not valid ({e}); write mysql://user:password@host:3306/database"
            ))
        })?;
        let mut builder = OptsBuilder::from_opts(opts)
            // Otherwise the driver switches to the server's Unix socket on localhost.
            .prefer_socket(false)
            // TIMESTAMP values and bounds in UTC.
            .init(vec!["SET time_zone = '+00:00'"])
            .tcp_keepalive(Some(Duration::from_secs(60)));
        if let Some(endpoint) = &config.endpoint {
            let (host, port) = endpoint_parts(endpoint).ok_or_else(|| {
                ctx.source_config_error(format!("endpoint `{endpoint}` is not host:port"))
            })?;
            builder = builder.ip_or_hostname(host).tcp_port(port);
        }
        let tls = ssl_opts(config, ctx);
        let plain =
            (config.tls == MySqlTls::Preferred).then(|| Opts::from(builder.clone().ssl_opts(None)));
        Ok(MySqlSource {
            connection: ctx.name.to_string(),
            opts: Opts::from(builder.ssl_opts(tls)),
            plain,
            timeout_seconds: config.timeout_seconds,
            requests: Arc::clone(&ctx.requests),
        })
    }

    fn error(&self, e: mysql_async::Error) -> SourceError {
        classify(&self.connection, self.timeout_seconds, e)
    }

    /// A connection, with TLS when the mode asks for it (plain when `preferred` and the
    /// server offers none).
    async fn open(&self) -> Result<Conn, SourceError> {
        let first = Conn::new(self.opts.clone()).await;
        let conn = match (first, &self.plain) {
            (Err(mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer)), Some(p)) => {
                Conn::new(p.clone()).await
            }
            (other, _) => other,
        };
        conn.map_err(|e| self.error(e))
    }

    /// A connection and the server's flavour, retried through the requester while the server
    /// is unreachable or busy.
    async fn connect(&self) -> Result<(Conn, Flavour), SourceError> {
        let attempt = || async {
            let result = async {
                let mut conn = self.open().await?;
                let version: Option<String> = conn
                    .query_first("SELECT VERSION()")
                    .await
                    .map_err(|e| self.error(e))?;
                Ok((conn, Flavour::of_version(version.as_deref().unwrap_or(""))))
            }
            .await;
            match result {
                Err(SourceError::Unavailable { message, .. }) => Err(SendError::Transient {
                    code: "unavailable".into(),
                    message,
                    retry_after: None,
                }),
                other => Ok(other),
            }
        };
        match self.requests.call(attempt).await {
            Ok(result) => result,
            Err(e) => Err(SourceError::Unavailable {
                connection: self.connection.clone(),
                message: match e {
                    SendError::Transient { message, .. } => message,
                    other => other.to_string(),
                },
            }),
        }
    }

    /// Stops statement `id` from a second connection; a failure is logged (the server's own
    /// timeout, or closing the connection, still ends it).
    async fn kill(&self, id: u32) {
        let attempt = async {
            let mut conn = self.open().await.ok()?;
            conn.query_drop(format!("KILL QUERY {id}")).await.ok()?;
            conn.disconnect().await.ok()
        };
        if tokio::time::timeout(KILL_TIMEOUT, attempt)
            .await
            .ok()
            .flatten()
            .is_none()
        {
            tracing::warn!(connection = %self.connection, id, "could not KILL QUERY the model's statement");
        }
    }

    /// One row as retl values; the column kinds are read from the first row's metadata.
    fn convert(&self, kinds: &mut Option<Vec<(String, Kind)>>, row: Row) -> Item {
        let kinds = kinds.get_or_insert_with(|| {
            row.columns_ref()
                .iter()
                .map(|c| (c.name_str().into_owned(), types::kind(c)))
                .collect()
        });
        let mut out = Values::new();
        for ((name, kind), v) in kinds.iter().zip(row.unwrap_raw()) {
            let v =
                types::value(*kind, v.unwrap_or(Value::NULL)).map_err(|m| SourceError::Query {
                    connection: self.connection.clone(),
                    code: "retl_value".into(),
                    message: format!("column `{name}`: {m}"),
                })?;
            out.insert(name.clone(), v);
        }
        Ok(out)
    }

    /// Runs the statement, answers `started` (its error, or that rows follow), then sends
    /// the rows.
    async fn read_rows(
        &self,
        conn: &mut Conn,
        (sql, params): (String, Vec<Value>),
        tx: &mpsc::Sender<Item>,
        started: &mut Option<oneshot::Sender<Result<(), SourceError>>>,
    ) -> Outcome {
        let params = if params.is_empty() {
            Params::Empty
        } else {
            Params::Positional(params)
        };
        let mut result = match conn.exec_iter(sql.as_str(), params).await {
            Ok(r) => r,
            Err(e) => {
                if let Some(s) = started.take() {
                    let _ = s.send(Err(self.error(e)));
                }
                return Outcome::Finished;
            }
        };
        if let Some(s) = started.take() {
            if s.send(Ok(())).is_err() {
                return Outcome::Abandoned;
            }
        }
        let mut kinds = None;
        loop {
            let (item, outcome) = match result.next().await {
                Ok(None) => return Outcome::Finished,
                Ok(Some(row)) => match self.convert(&mut kinds, row) {
                    Ok(values) => (Ok(values), None),
                    Err(e) => (Err(e), Some(Outcome::Abandoned)),
                },
                Err(e) => (Err(self.error(e)), Some(Outcome::Finished)),
            };
            if tx.send(item).await.is_err() {
                return Outcome::Abandoned;
            }
            if let Some(o) = outcome {
                return o;
            }
        }
    }

    /// The task behind a row stream: reads the rows, and stops the statement in the server
    /// when the stream is dropped or the timeout passes.
    async fn pump(
        self,
        mut conn: Conn,
        statement: (String, Vec<Value>),
        tx: mpsc::Sender<Item>,
        started: oneshot::Sender<Result<(), SourceError>>,
    ) {
        let id = conn.id();
        let mut started = Some(started);
        let deadline = self
            .timeout_seconds
            .map(|s| Instant::now() + Duration::from_secs(s) + KILL_GRACE);
        let outcome = {
            let work = self.read_rows(&mut conn, statement, &tx, &mut started);
            let limited = async {
                match deadline {
                    Some(d) => tokio::time::timeout_at(d, work)
                        .await
                        .unwrap_or(Outcome::TimedOut),
                    None => work.await,
                }
            };
            tokio::select! {
                o = limited => o,
                () = tx.closed() => Outcome::Abandoned,
            }
        };
        if !matches!(outcome, Outcome::Finished) {
            self.kill(id).await;
        }
        if let Outcome::TimedOut = outcome {
            let e = SourceError::Timeout {
                connection: self.connection.clone(),
                seconds: self.timeout_seconds.unwrap_or(0),
            };
            match started.take() {
                Some(s) => drop(s.send(Err(e))),
                None => drop(tx.send(Err(e)).await),
            }
        }
        // Closing reads what is left of a killed result (its error): bounded, then dropped.
        let _ = tokio::time::timeout(KILL_TIMEOUT, conn.disconnect()).await;
    }
}

#[async_trait]
impl Source for MySqlSource {
    async fn columns(&self, query: &ModelQuery) -> Result<Vec<String>, SourceError> {
        let (mut conn, _) = self.connect().await?;
        let stmt = conn
            .prep(subquery_sql(&query.sql))
            .await
            .map_err(|e| self.error(e))?;
        let names = stmt
            .columns()
            .iter()
            .map(|c| c.name_str().into_owned())
            .collect();
        let _ = conn.close(stmt).await;
        let _ = conn.disconnect().await;
        Ok(names)
    }

    async fn rows(&self, query: &ModelQuery) -> Result<RowStream, SourceError> {
        let (conn, flavour) = self.connect().await?;
        let statement = model_sql(query, flavour, self.timeout_seconds);
        let (tx, rx) = mpsc::channel(ROW_BUFFER);
        let (started_tx, started_rx) = oneshot::channel();
        tokio::spawn(self.clone().pump(conn, statement, tx, started_tx));
        match started_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(SourceError::Unavailable {
                    connection: self.connection.clone(),
                    message: "the connection ended before the statement answered".into(),
                })
            }
        }
        let rows = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(Box::pin(rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_give_host_and_port() {
        assert_eq!(
            endpoint_parts("mysql://db.internal:3307/"),
            Some(("db.internal".into(), 3307))
        );
        assert_eq!(
            endpoint_parts("127.0.0.1:3306"),
            Some(("127.0.0.1".into(), 3306))
        );
        assert_eq!(endpoint_parts("[::1]:3306"), Some(("::1".into(), 3306)));
        assert_eq!(endpoint_parts("db"), None);
    }
}
