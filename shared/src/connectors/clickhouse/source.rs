//! The ClickHouse [`Source`]: requests to the HTTP interface through the connection's
//! [`Requester`] (transient failures retried there), the body read chunk by chunk and split
//! into TSV lines (bounded memory), and `KILL QUERY WHERE query_id = ...` when the run stops
//! reading or the timeout passes.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use flate2::write::GzDecoder;
use tokio::time::Instant;

use super::error::{self, ServerError};
use super::sql::{describe_sql, model_sql, quote_string};
use super::types::{self, ChType};
use super::{ChCompression, ClickHouseConnection};
use crate::connectors::OpenContext;
use crate::delivery::{http::client_builder, Requester};
use crate::ports::{
    ExportReader, ExportTarget, ModelQuery, RowStream, SendError, Source, SourceError,
};
use crate::record::Values;

/// How long after `timeout_seconds` the source kills a query the server did not stop itself.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// A ClickHouse warehouse.
#[derive(Clone)]
pub struct ClickHouseSource {
    pub(super) connection: String,
    base: String,
    user: Option<String>,
    password: Option<String>,
    database: Option<String>,
    timeout_seconds: Option<u64>,
    pub(super) export: Option<super::ChExport>,
    settings: Vec<(String, String)>,
    compression: ChCompression,
    http: reqwest::Client,
    requests: Arc<Requester>,
}

impl std::fmt::Debug for ClickHouseSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password stays out of logs.
        f.debug_struct("ClickHouseSource")
            .field("connection", &self.connection)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// The query id of a run: `retl-<sync>-<run>`, in the server's `system.processes` and
/// `system.query_log`.
pub(super) fn query_id(query: &ModelQuery) -> String {
    format!("retl-{}-{}", query.sync, query.run_id)
}

impl ClickHouseSource {
    /// A source for the interface at `base`.
    pub fn new(
        ctx: &OpenContext<'_>,
        config: &ClickHouseConnection,
        base: &str,
        password: Option<String>,
    ) -> Result<Self, SourceError> {
        let mut builder = client_builder();
        if let Some(path) = &config.ca_file {
            for cert in
                root_certificates(&ctx.resolve(path)).map_err(|m| ctx.source_config_error(m))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| ctx.source_config_error(format!("cannot build an HTTP client: {e}")))?;
        Ok(ClickHouseSource {
            connection: ctx.name.to_string(),
            base: base.to_string(),
            user: config.user.clone(),
            password,
            database: config.database.clone(),
            timeout_seconds: config.timeout_seconds,
            export: config.export.clone(),
            settings: config.settings.clone().into_iter().collect(),
            compression: config.compression,
            http,
            requests: Arc::clone(&ctx.requests),
        })
    }

    fn server_error(&self, e: ServerError) -> SourceError {
        error::classify(&self.connection, self.timeout_seconds, e)
    }

    /// The model cannot be run as retl wraps it (its watermark column is missing, say).
    pub(super) fn model_error(&self, message: String) -> SourceError {
        SourceError::Query {
            connection: self.connection.clone(),
            code: "retl_model".into(),
            message,
        }
    }

    fn timeout_error(&self) -> SourceError {
        SourceError::Timeout {
            connection: self.connection.clone(),
            seconds: self.timeout_seconds.unwrap_or(0),
        }
    }

    /// A POST of `sql` with the connection's settings, database, credentials and `id`;
    /// `compress` asks for a gzip answer (with `compression: gzip`).
    fn request(&self, sql: &str, id: &str, compress: bool) -> reqwest::RequestBuilder {
        let mut params = self.settings.clone();
        params.push(("query_id".into(), id.to_string()));
        let gzip = compress && self.compression == ChCompression::Gzip;
        if gzip {
            params.push(("enable_http_compression".into(), "1".into()));
        }
        if let Some(db) = &self.database {
            params.push(("database".into(), db.clone()));
        }
        if let Some(s) = self.timeout_seconds {
            params.push(("max_execution_time".into(), s.to_string()));
        }
        let mut request = self
            .http
            .post(&self.base)
            .query(&params)
            .body(sql.to_string());
        if let Some(u) = &self.user {
            request = request.header("X-ClickHouse-User", u);
        }
        if let Some(p) = &self.password {
            request = request.header("X-ClickHouse-Key", p);
        }
        if gzip {
            request = request.header(reqwest::header::ACCEPT_ENCODING, "gzip");
        }
        request
    }

    /// One attempt: a 200 answer (its body not read yet), the server's error, or a transient
    /// failure for the requester to retry.
    async fn attempt(
        &self,
        sql: &str,
        id: &str,
        compress: bool,
    ) -> Result<Result<reqwest::Response, SourceError>, SendError> {
        let response = match self.request(sql, id, compress).send().await {
            Ok(r) => r,
            Err(e) => {
                let message = error_chain(&e.without_url());
                // A certificate the roots do not vouch for stays refused: no retry.
                if message.contains("certificate") {
                    return Ok(Err(SourceError::Unavailable {
                        connection: self.connection.clone(),
                        message: format!(
                            "TLS with the server failed: {message}; if the server's certificate \
                             comes from a private CA, give its PEM file as `ca_file`"
                        ),
                    }));
                }
                return Err(SendError::Transient {
                    code: "network".into(),
                    message,
                    retry_after: None,
                });
            }
        };
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Ok(Ok(response));
        }
        let gzip = is_gzip(&response);
        let body = response.bytes().await.unwrap_or_default();
        let body = if gzip {
            gunzip_all(&body).unwrap_or_default()
        } else {
            body.to_vec()
        };
        let body = String::from_utf8_lossy(&body).into_owned();
        let e = match error::parse(&body) {
            Some(e) => self.server_error(e),
            None => error::from_status(&self.connection, status, &body),
        };
        match e {
            SourceError::Unavailable { message, .. } => Err(SendError::Transient {
                code: status.to_string(),
                message,
                retry_after: None,
            }),
            other => Ok(Err(other)),
        }
    }

    /// Sends `sql` through the requester (`compress`: see [`Self::request`]).
    pub(super) async fn send(
        &self,
        sql: &str,
        id: &str,
        compress: bool,
    ) -> Result<reqwest::Response, SourceError> {
        match self.requests.call(|| self.attempt(sql, id, compress)).await {
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

    /// The model's columns and their types, from `DESCRIBE TABLE (<model>)`.
    pub(super) async fn describe(
        &self,
        query: &ModelQuery,
    ) -> Result<Vec<(String, ChType)>, SourceError> {
        let id = format!("{}-describe", query_id(query));
        let body = self
            .send(&describe_sql(query), &id, false)
            .await?
            .bytes()
            .await
            .map_err(|e| SourceError::Unavailable {
                connection: self.connection.clone(),
                message: format!("reading DESCRIBE failed: {}", e.without_url()),
            })?;
        let mut columns = Vec::new();
        for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let mut fields = line.split(|b| *b == b'\t').map(types::unescape_tsv);
            let name = String::from_utf8_lossy(&fields.next().unwrap_or_default()).into_owned();
            let ty = String::from_utf8_lossy(&fields.next().unwrap_or_default()).into_owned();
            columns.push((name, types::parse_type(&ty)));
        }
        Ok(columns)
    }

    /// Stops query `id` (best effort: the server's `max_execution_time` still ends it).
    async fn kill(&self, id: &str) {
        let sql = format!("KILL QUERY WHERE query_id = {}", quote_string(id));
        let kill_id = format!("{id}-kill");
        if self.send(&sql, &kill_id, false).await.is_err() {
            tracing::warn!(connection = %self.connection, query_id = id, "could not KILL QUERY the model's query");
        }
    }
}

/// Kills the query when dropped while it may still run (the run stopped reading).
struct KillOnDrop {
    source: ClickHouseSource,
    id: String,
    armed: bool,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let (source, id) = (self.source.clone(), std::mem::take(&mut self.id));
            handle.spawn(async move { source.kill(&id).await });
        }
    }
}

/// An error with its causes (`error sending request: ... invalid peer certificate: ...`).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}

/// Whether the server compressed the answer (`Content-Encoding: gzip`).
fn is_gzip(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(reqwest::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"))
}

/// A whole gzip body decoded (error answers, which are short).
pub(super) fn gunzip_all(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut decoder = GzDecoder::new(Vec::new());
    decoder
        .write_all(bytes)
        .and_then(|()| decoder.try_finish())
        .map_err(|e| format!("the answer is not valid gzip: {e}"))?;
    Ok(std::mem::take(decoder.get_mut()))
}

/// The certificates of a PEM file (one or a bundle).
fn root_certificates(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path).map_err(|e| {
        format!(
            "cannot read `ca_file` {}: {e}; give a PEM file of CA certificates",
            path.display()
        )
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        format!(
            "`ca_file` {} is not a PEM certificate file: {e}",
            path.display()
        )
    })?;
    if certs.is_empty() {
        return Err(format!(
            "`ca_file` {} holds no certificate; give a PEM file with `-----BEGIN CERTIFICATE-----` blocks",
            path.display()
        ));
    }
    Ok(certs)
}

/// The state of one result being read.
struct Reader {
    response: reqwest::Response,
    /// Decodes a gzip answer chunk by chunk (its output taken after each chunk).
    decoder: Option<GzDecoder<Vec<u8>>>,
    buffer: Vec<u8>,
    /// Where the next line starts in `buffer`.
    start: usize,
    names: Vec<String>,
    types: Vec<ChType>,
    /// Header lines (names, types) still to skip.
    header: usize,
    deadline: Option<Instant>,
    guard: KillOnDrop,
    ended: bool,
}

impl Reader {
    fn source(&self) -> &ClickHouseSource {
        &self.guard.source
    }

    /// The next complete line, from the buffer or the body; `None` at the end.
    async fn line(&mut self) -> Result<Option<Vec<u8>>, SourceError> {
        loop {
            // Lines are taken from `start` on and the buffer compacted only when it holds no
            // whole line: splitting the rest off each line copied a chunk per row.
            let pending = &self.buffer[self.start..];
            if let Some(i) = pending.iter().position(|b| *b == b'\n') {
                let line = pending[..i].to_vec();
                self.start += i + 1;
                return Ok(Some(line));
            }
            self.buffer.drain(..self.start);
            self.start = 0;
            let chunk = self.response.chunk();
            let chunk = match self.deadline {
                Some(d) => tokio::time::timeout_at(d, chunk)
                    .await
                    .map_err(|_| self.source().timeout_error())?,
                None => chunk.await,
            };
            let chunk = match (chunk, self.decoder.as_mut()) {
                (Ok(Some(bytes)), Some(d)) => d
                    .write_all(&bytes)
                    .map(|()| Some(bytes::Bytes::from(std::mem::take(d.get_mut()))))
                    .map_err(|e| self.bad_gzip(e)),
                (Ok(None), Some(d)) => match d.try_finish() {
                    Ok(()) => {
                        let rest = std::mem::take(d.get_mut());
                        self.decoder = None;
                        Ok((!rest.is_empty()).then(|| bytes::Bytes::from(rest)))
                    }
                    Err(e) => Err(self.bad_gzip(e)),
                },
                (Ok(c), None) => Ok(c),
                (Err(e), _) => Err(SourceError::Unavailable {
                    connection: self.source().connection.clone(),
                    message: format!("the answer broke off: {}", e.without_url()),
                }),
            };
            match chunk {
                Ok(Some(bytes)) => self.buffer.extend_from_slice(&bytes),
                Ok(None) if self.buffer.is_empty() => return Ok(None),
                Ok(None) => return Ok(Some(std::mem::take(&mut self.buffer))),
                Err(e) => return Err(e),
            }
        }
    }

    fn bad_gzip(&self, e: std::io::Error) -> SourceError {
        SourceError::Unavailable {
            connection: self.source().connection.clone(),
            message: format!("the compressed answer is not valid gzip: {e}"),
        }
    }

    /// One row of the body, or the error the server wrote in its place.
    fn row(&self, line: &[u8]) -> Result<Values, SourceError> {
        let fields = line.split(|b| *b == b'\t').count();
        // An error after rows were sent ends a 200 body as a line of its own; a row of as
        // many fields as columns is data (a one-column row could only be mistaken if it
        // spelled a ClickHouse exception word for word).
        if fields != self.names.len() || self.names.len() == 1 {
            if let Some(e) =
                error::parse(&String::from_utf8_lossy(line)).filter(|_| line.starts_with(b"Code: "))
            {
                return Err(self.source().server_error(e));
            }
        }
        if fields != self.names.len() {
            return Err(self.bad_value(format!(
                "a row has {fields} fields for {} columns",
                self.names.len()
            )));
        }
        let values = types::row(&self.types, line)
            .map_err(|p| self.bad_value(p.describe(|i| format!("`{}`", self.names[i]))))?;
        Ok(self.names.iter().cloned().zip(values).collect())
    }

    fn bad_value(&self, message: String) -> SourceError {
        SourceError::Query {
            connection: self.source().connection.clone(),
            code: "retl_value".into(),
            message,
        }
    }

    /// The next row; the header's type line replaces the described types (the server's own
    /// word on what it sent).
    async fn next(&mut self) -> Option<Result<Values, SourceError>> {
        if self.ended {
            return None;
        }
        let result = loop {
            match self.line().await {
                Ok(Some(_)) if self.header == 2 => self.header -= 1,
                Ok(Some(line)) if self.header == 1 => {
                    self.header -= 1;
                    self.types = types::type_line(&line);
                }
                Ok(Some(line)) => break Some(self.row(&line)),
                Ok(None) => break None,
                Err(e) => break Some(Err(e)),
            }
        };
        match &result {
            None => self.guard.armed = false,
            Some(Err(SourceError::Timeout { .. })) | Some(Ok(_)) => {}
            // The server ended the query (its error) or the connection broke.
            Some(Err(_)) => self.guard.armed = false,
        }
        if !matches!(result, Some(Ok(_))) {
            self.ended = true;
        }
        result
    }
}

#[async_trait]
impl Source for ClickHouseSource {
    async fn columns(&self, query: &ModelQuery) -> Result<Vec<String>, SourceError> {
        Ok(self
            .describe(query)
            .await?
            .into_iter()
            .map(|(n, _)| n)
            .collect())
    }

    async fn rows(&self, query: &ModelQuery) -> Result<RowStream, SourceError> {
        let columns = self.describe(query).await?;
        let sql = model_sql(query, &columns).map_err(|m| self.model_error(m))?;
        let id = query_id(query);
        let deadline = self
            .timeout_seconds
            .map(|s| Instant::now() + Duration::from_secs(s) + KILL_GRACE);
        let guard = KillOnDrop {
            source: self.clone(),
            id: id.clone(),
            armed: true,
        };
        let sent = self.send(&sql, &id, true);
        let response = match deadline {
            Some(d) => tokio::time::timeout_at(d, sent)
                .await
                .map_err(|_| self.timeout_error())?,
            None => sent.await,
        };
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                let mut guard = guard;
                guard.armed = matches!(e, SourceError::Timeout { .. });
                return Err(e);
            }
        };
        let (names, types) = columns.into_iter().unzip();
        let decoder = is_gzip(&response).then(|| GzDecoder::new(Vec::new()));
        let reader = Reader {
            response,
            decoder,
            buffer: Vec::new(),
            start: 0,
            names,
            types,
            header: 2,
            deadline,
            guard,
            ended: false,
        };
        let rows = futures::stream::unfold(reader, |mut r| async move {
            r.next().await.map(|item| (item, r))
        });
        Ok(Box::pin(rows))
    }

    async fn export(
        &self,
        query: &ModelQuery,
        target: &ExportTarget,
    ) -> Result<Option<Arc<dyn ExportReader>>, SourceError> {
        super::export::export(self, query, target).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_files_that_cannot_be_used_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let missing = root_certificates(&dir.path().join("none.pem")).unwrap_err();
        assert!(missing.contains("cannot read `ca_file`"), "{missing}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = root_certificates(&empty).unwrap_err();
        assert!(e.contains("holds no certificate"), "{e}");
    }

    #[test]
    fn gzip_error_bodies_are_decoded() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"Code: 60, e.displayText() = DB::Exception")
            .unwrap();
        let body = enc.finish().unwrap();
        assert_eq!(
            gunzip_all(&body).unwrap(),
            b"Code: 60, e.displayText() = DB::Exception"
        );
        assert!(gunzip_all(b"plain").is_err());
    }
}
