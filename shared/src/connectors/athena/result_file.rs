//! `results_from: s3`: a query's rows read from the CSV file Athena wrote to its output
//! location (`GetQueryExecution`'s `ResultConfiguration.OutputLocation`, `s3://…/<id>.csv`)
//! with S3 `GetObject`, streamed (one download chunk and one record in memory), instead of
//! `GetQueryResults` pages of 1,000 rows: one request for the whole result.

use std::collections::VecDeque;
use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use futures::stream;

use super::cells::{self, Column};
use super::csv::{CsvReader, Record};
use crate::connectors::aws_sdk::{classify, source_error};
use crate::delivery::Requester;
use crate::ports::{RowStream, SourceError};
use crate::record::Values;

/// `s3://bucket/key` as its bucket and key.
pub(super) fn bucket_and_key(location: &str) -> Option<(&str, &str)> {
    let rest = location.strip_prefix("s3://")?;
    let (bucket, key) = rest.split_once('/')?;
    (!bucket.is_empty() && !key.is_empty()).then_some((bucket, key))
}

/// What is left to read of a result file.
struct FileRows {
    connection: String,
    location: String,
    body: ByteStream,
    parser: CsvReader,
    records: VecDeque<Record>,
    columns: Arc<Vec<Column>>,
    header_seen: bool,
    ended: bool,
}

impl FileRows {
    fn error(&self, code: &str, message: String) -> SourceError {
        SourceError::Query {
            connection: self.connection.clone(),
            code: code.into(),
            message: format!("{}: {message}", self.location),
        }
    }

    fn values(&self, record: Record) -> Result<Values, SourceError> {
        if record.len() != self.columns.len() {
            return Err(self.error(
                "retl_result_file",
                format!(
                    "a row has {} values for {} columns",
                    record.len(),
                    self.columns.len()
                ),
            ));
        }
        let mut values = Values::new();
        for (c, cell) in self.columns.iter().zip(&record) {
            let v = cells::value(c, cell.as_deref()).map_err(|m| self.error("retl_value", m))?;
            values.insert(c.name.clone(), v);
        }
        Ok(values)
    }

    /// The next row, reading the next download chunk when the parsed ones are used up.
    async fn next(mut self) -> Result<Option<(Values, FileRows)>, SourceError> {
        loop {
            if let Some(record) = self.records.pop_front() {
                if !self.header_seen {
                    self.header_seen = true;
                    continue;
                }
                let row = self.values(record)?;
                return Ok(Some((row, self)));
            }
            if self.ended {
                return Ok(None);
            }
            let mut out = Vec::new();
            match self.body.next().await {
                Some(Ok(bytes)) => self.parser.feed(&bytes, &mut out),
                Some(Err(e)) => {
                    return Err(SourceError::Unavailable {
                        connection: self.connection.clone(),
                        message: format!("reading {} failed: {e}", self.location),
                    })
                }
                None => {
                    self.ended = true;
                    self.parser.finish(&mut out)
                }
            }
            .map_err(|m| self.error("retl_result_file", m))?;
            self.records.extend(out);
        }
    }
}

/// The rows of the result file at `location`, read by `columns` (from the query's metadata).
pub(super) async fn rows(
    s3: &aws_sdk_s3::Client,
    requests: &Requester,
    connection: &str,
    location: &str,
    columns: Arc<Vec<Column>>,
) -> Result<RowStream, SourceError> {
    let (bucket, key) = bucket_and_key(location).ok_or_else(|| SourceError::Config {
        connection: connection.to_string(),
        message: format!(
            "Athena gave the result location `{location}`, which is not an s3://bucket/key URL; \
             leave `results_from` out to read results with GetQueryResults"
        ),
    })?;
    let out = requests
        .call(|| {
            let send = s3.get_object().bucket(bucket).key(key).send();
            async move { send.await.map_err(classify) }
        })
        .await
        .map_err(|e| source_error(connection, e))?;
    let rows = FileRows {
        connection: connection.to_string(),
        location: location.to_string(),
        body: out.body,
        parser: CsvReader::default(),
        records: VecDeque::new(),
        columns,
        header_seen: false,
        ended: false,
    };
    Ok(Box::pin(stream::try_unfold(rows, FileRows::next)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_locations_split_into_bucket_and_key() {
        assert_eq!(
            bucket_and_key("s3://b/athena/q1.csv"),
            Some(("b", "athena/q1.csv"))
        );
        assert_eq!(bucket_and_key("s3://b/"), None);
        assert_eq!(bucket_and_key("https://b/k"), None);
    }
}
