//! The model written to S3 by the server: `INSERT INTO FUNCTION s3(<named collection>, ...)
//! PARTITION BY rand() % <slices>` writes `slices` gzip-compressed
//! `TabSeparatedWithNamesAndTypes` files at once, from the same `SELECT` the streamed rows
//! come from, so the files hold the same text the stream would, read by the same value
//! parser: a run that exports plans the same hashes as one that streams.
//!
//! The credentials the server writes with are its own (a named collection), never in the
//! query text that `system.query_log` keeps.

use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;

use flate2::read::MultiGzDecoder;

use super::source::{query_id, ClickHouseSource};
use super::sql::{quote_ident, quote_string, select_sql};
use super::types::{self, ChType};
use crate::ports::{
    ExportBatches, ExportReader, ExportTarget, ModelQuery, RowBatch, SourceError, ROWS_PER_BATCH,
};

/// The statement writing `select` into `slices` files under `url`.
fn export_sql(collection: &str, url: &str, slices: u32, select: &str) -> String {
    let files = format!("{url}slice-{{_partition_id}}.tsv.gz");
    format!(
        "INSERT INTO FUNCTION s3({}, url = {}, format = 'TabSeparatedWithNamesAndTypes', \
         compression_method = 'gzip') PARTITION BY rand() % {slices} {select} \
         SETTINGS s3_truncate_on_insert = 1",
        quote_ident(collection),
        quote_string(&files),
    )
}

/// Runs the export when the connection has `export`; `None` otherwise.
pub(super) async fn export(
    source: &ClickHouseSource,
    query: &ModelQuery,
    target: &ExportTarget,
) -> Result<Option<Arc<dyn ExportReader>>, SourceError> {
    let Some(settings) = &source.export else {
        return Ok(None);
    };
    let columns = source.describe(query).await?;
    let select = select_sql(query, &columns).map_err(|m| source.model_error(m))?;
    let sql = export_sql(
        &settings.named_collection,
        &target.url,
        settings.slices,
        &select,
    );
    let id = format!("{}-export", query_id(query));
    // The answer of an INSERT is empty; an error is the status and the body, which `send`
    // turns into the source's error.
    let response = source.send(&sql, &id, false).await?;
    response
        .bytes()
        .await
        .map_err(|e| SourceError::Unavailable {
            connection: source.connection.clone(),
            message: format!("the export's answer broke off: {}", e.without_url()),
        })?;
    Ok(Some(Arc::new(TsvExport {
        connection: source.connection.clone(),
        width: columns.len(),
    })))
}

/// Reads the server's export files.
struct TsvExport {
    connection: String,
    width: usize,
}

impl TsvExport {
    fn bad(&self, message: String) -> SourceError {
        SourceError::Query {
            connection: self.connection.clone(),
            code: "retl_value".into(),
            message: format!("an export file: {message}"),
        }
    }
}

impl ExportReader for TsvExport {
    fn batches(&self, body: bytes::Bytes) -> Result<ExportBatches, SourceError> {
        let gzip = body.starts_with(&[0x1f, 0x8b]);
        let input: Box<dyn Read + Send> = if gzip {
            Box::new(MultiGzDecoder::new(std::io::Cursor::new(body)))
        } else {
            Box::new(std::io::Cursor::new(body))
        };
        let mut lines = TsvLines {
            input: BufReader::with_capacity(1 << 16, input),
            line: Vec::new(),
        };
        // The header: the names (the expressions of the SELECT: values go by position),
        // then the types the server wrote, which the values are parsed by.
        let names = lines.next().map_err(|m| self.bad(m))?;
        let types_line = lines.next().map_err(|m| self.bad(m))?;
        let (Some(names), Some(types_line)) = (names, types_line) else {
            return Ok(Box::new(std::iter::empty()));
        };
        let types = types::type_line(&types_line);
        let width = names.split(|b| *b == b'\t').count();
        if width != self.width || types.len() != self.width {
            return Err(self.bad(format!(
                "the header has {width} columns for the model's {}",
                self.width
            )));
        }
        Ok(Box::new(Batches {
            reader: TsvExport {
                connection: self.connection.clone(),
                width: self.width,
            },
            lines,
            types,
            done: false,
        }))
    }
}

/// Lines of the decompressed file (a newline inside a value is written `\n`).
struct TsvLines {
    input: BufReader<Box<dyn Read + Send>>,
    line: Vec<u8>,
}

impl TsvLines {
    fn next(&mut self) -> Result<Option<Vec<u8>>, String> {
        self.line.clear();
        let n = self
            .input
            .read_until(b'\n', &mut self.line)
            .map_err(|e| format!("cannot be decompressed: {e}"))?;
        if n == 0 {
            return Ok(None);
        }
        if self.line.last() == Some(&b'\n') {
            self.line.pop();
        }
        Ok(Some(std::mem::take(&mut self.line)))
    }
}

struct Batches {
    reader: TsvExport,
    lines: TsvLines,
    types: Vec<ChType>,
    done: bool,
}

impl Batches {
    fn batch(&mut self) -> Result<Option<RowBatch>, SourceError> {
        let mut batch = RowBatch::with_capacity(self.types.len(), ROWS_PER_BATCH);
        while batch.len() < ROWS_PER_BATCH {
            let Some(line) = self.lines.next().map_err(|m| self.reader.bad(m))? else {
                break;
            };
            let values = types::row(&self.types, &line)
                .map_err(|p| self.reader.bad(p.describe(|i| (i + 1).to_string())))?;
            batch.push_row(values);
        }
        Ok((!batch.is_empty()).then_some(batch))
    }
}

impl Iterator for Batches {
    type Item = Result<RowBatch, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.batch().transpose();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn the_statement_names_the_collection_and_quotes_the_url() {
        let sql = export_sql(
            "retl_s3",
            "https://b.s3.us-east-1.amazonaws.com/x'/",
            4,
            "SELECT 1",
        );
        assert_eq!(
            sql,
            "INSERT INTO FUNCTION s3(`retl_s3`, url = 'https://b.s3.us-east-1.amazonaws.com/x\\'/\
             slice-{_partition_id}.tsv.gz', format = 'TabSeparatedWithNamesAndTypes', \
             compression_method = 'gzip') PARTITION BY rand() % 4 SELECT 1 \
             SETTINGS s3_truncate_on_insert = 1"
        );
    }

    fn gzip(text: &str) -> bytes::Bytes {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(text.as_bytes()).unwrap();
        bytes::Bytes::from(enc.finish().unwrap())
    }

    #[test]
    fn files_read_by_their_header_types() {
        let reader = TsvExport {
            connection: "ch".into(),
            width: 3,
        };
        let body = gzip(
            "q.`id`\tq.`name`\tq.`amount`\nUInt64\tNullable(String)\tDecimal(10, 2)\n\
             18446744073709551615\ta\\tb\t1.50\n2\t\\N\t-3.00\n",
        );
        let batches: Vec<RowBatch> = reader
            .batches(body)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let rows: Vec<Vec<String>> = batches
            .iter()
            .flat_map(|b| b.rows().map(|r| r.iter().map(|v| v.to_string()).collect()))
            .collect();
        assert_eq!(
            rows,
            vec![
                vec!["18446744073709551615", "\"a\\tb\"", "1.50"],
                vec!["2", "null", "-3.00"],
            ]
        );
        let short = gzip("a\tb\tc\nUInt8\tUInt8\tUInt8\n1\t2\n");
        let e = reader
            .batches(short)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap_err();
        assert!(
            e.to_string().contains("a row has 2 fields for 3 columns"),
            "{e}"
        );
        assert!(reader.batches(gzip("a\nUInt8\n")).is_err());
        assert_eq!(reader.batches(bytes::Bytes::new()).unwrap().count(), 0);
    }
}
