//! Arrow IPC streams (schema message, one record batch, end-of-stream marker), the body of
//! Databricks `ARROW_STREAM` chunks and of Snowflake `rowsetBase64` / Arrow result chunks.

use arrow_array::{ArrayRef, RecordBatch};
use arrow_ipc::writer::StreamWriter;
use arrow_schema::SchemaRef;

/// One record batch of `arrays` under `schema`, as an IPC stream; empty when the arrays do
/// not fit the schema (a bug in the caller, not bad input).
pub(crate) fn stream(schema: SchemaRef, arrays: Vec<ArrayRef>) -> Vec<u8> {
    let write = || -> Result<Vec<u8>, arrow_schema::ArrowError> {
        let batch = RecordBatch::try_new(schema.clone(), arrays)?;
        let mut writer = StreamWriter::try_new(Vec::new(), &schema)?;
        writer.write(&batch)?;
        writer.finish()?;
        writer.into_inner()
    };
    write().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Array, Int64Array};
    use arrow_ipc::reader::StreamReader;
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn stream_reads_back() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let bytes = stream(
            schema,
            vec![Arc::new(Int64Array::from(vec![Some(1), None]))],
        );
        let mut reader = StreamReader::try_new(bytes.as_slice(), None).unwrap();
        let batch = reader.next().unwrap().unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert!(batch.column(0).is_null(1));
    }
}
