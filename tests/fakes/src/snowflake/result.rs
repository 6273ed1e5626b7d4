//! The `data` of a successful query response: `rowtype`, the first chunk inline (`rowset`
//! for JSON, `rowsetBase64` for Arrow), `total` / `returned`, `queryResultFormat`, and the
//! remaining chunks as `chunks: [{url, rowCount, uncompressedSize, compressedSize}]` with
//! `qrmk` and (AWS-style) `chunkHeaders`, stored gzip-compressed for download.
//!
//! A JSON chunk file holds the rows without the enclosing brackets (`["1","a"],["2","b"]`):
//! gosnowflake's `largeResultSetReader` adds them. An Arrow chunk file is an IPC stream.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use arrow_schema::Schema;
use base64::Engine;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio_postgres::types::Type;

use super::auth::session_parameters;
use super::state::{locked, ChunkFile, Session, SfState, CHUNK_PREFIX};
use super::types::{arrow_column, arrow_field, json_value, rowtype, SfType};
use super::ChunkAuth;
use crate::redshift_data::ipc;
use crate::redshift_data::pg::{PgColumn, PgResult};
use crate::util::alnum;

/// SSE-C header names of a chunk download (gosnowflake `rows.go`).
const SSE_ALGORITHM: &str = "x-amz-server-side-encryption-customer-algorithm";
const SSE_KEY: &str = "x-amz-server-side-encryption-customer-key";
const SSE_KEY_MD5: &str = "x-amz-server-side-encryption-customer-key-md5";

fn synthetic(name: &str, ty: Type) -> PgColumn {
    PgColumn {
        name: name.into(),
        ty,
        typmod: -1,
        schema: None,
        table: None,
        not_null: true,
    }
}

/// Statements without rows answer as Snowflake does: DML with its counts, anything else
/// with a `status` message. Returns the result and its `statementTypeId`.
pub(crate) fn as_rows(sql: &str, result: PgResult) -> (PgResult, i64) {
    if result.has_result_set() {
        return (result, 0x1000);
    }
    let verb = sql
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    let n = result.affected.to_string();
    let (columns, row, kind) = match verb.as_str() {
        "INSERT" => (
            vec![synthetic("number of rows inserted", Type::INT8)],
            vec![Some(n)],
            0x3100,
        ),
        "UPDATE" => (
            vec![
                synthetic("number of rows updated", Type::INT8),
                synthetic("number of multi-joined rows updated", Type::INT8),
            ],
            vec![Some(n), Some("0".into())],
            0x3200,
        ),
        "DELETE" => (
            vec![synthetic("number of rows deleted", Type::INT8)],
            vec![Some(n)],
            0x3300,
        ),
        _ => (
            vec![synthetic("status", Type::TEXT)],
            vec![Some("Statement executed successfully.".into())],
            0x6000,
        ),
    };
    (
        PgResult {
            columns,
            rows: vec![row],
            affected: result.affected,
        },
        kind,
    )
}

fn json_rows(types: &[SfType], rows: &[Vec<Option<String>>]) -> Vec<Value> {
    rows.iter()
        .map(|r| {
            let values = r.iter().zip(types).map(|(v, t)| {
                v.as_deref()
                    .map_or(Value::Null, |x| Value::String(json_value(*t, x)))
            });
            Value::Array(values.collect())
        })
        .collect()
}

fn arrow_bytes(columns: &[PgColumn], types: &[SfType], rows: &[Vec<Option<String>>]) -> Vec<u8> {
    let schema = Arc::new(Schema::new(
        columns.iter().map(arrow_field).collect::<Vec<_>>(),
    ));
    let arrays = types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            arrow_column(
                *t,
                &rows.iter().map(|r| r[i].as_deref()).collect::<Vec<_>>(),
            )
        })
        .collect();
    ipc::stream(schema, arrays)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

/// The headers a chunk download needs for `qrmk`, and what `chunkHeaders` announces.
fn chunk_headers(qrmk: &str, auth: ChunkAuth) -> (BTreeMap<String, String>, Option<Value>) {
    let mut required = BTreeMap::from([
        (SSE_ALGORITHM.to_string(), "AES256".to_string()),
        (SSE_KEY.to_string(), qrmk.to_string()),
    ]);
    match auth {
        ChunkAuth::Qrmk => (required, None),
        ChunkAuth::ChunkHeaders => {
            // An opaque digest of the key: clients echo it, S3 would check it is the key's MD5.
            let digest = &Sha256::digest(qrmk.as_bytes())[..16];
            required.insert(
                SSE_KEY_MD5.to_string(),
                base64::engine::general_purpose::STANDARD.encode(digest),
            );
            let announced = json!(required);
            (required, Some(announced))
        }
    }
}

/// Builds the success `data` and stores the chunk files after the first.
pub(crate) fn success_data(
    s: &SfState,
    session: &Session,
    query_id: &str,
    sql: &str,
    result: PgResult,
    arrow: bool,
) -> Value {
    let config = s.config();
    let (result, statement_type) = as_rows(sql, result);
    let types: Vec<SfType> = result.columns.iter().map(SfType::of).collect();
    let per = config.rows_per_chunk.max(1);
    let first = &result.rows[..per.min(result.rows.len())];
    let mut data = json!({
        "parameters": session_parameters(session),
        "rowtype": result.columns.iter().map(|c| rowtype(c, &session.database, &session.schema)).collect::<Vec<_>>(),
        "total": result.rows.len(),
        "returned": first.len(),
        "queryId": query_id,
        "databaseProvider": null,
        "finalDatabaseName": session.database,
        "finalSchemaName": session.schema,
        "finalWarehouseName": session.warehouse,
        "finalRoleName": session.role,
        "numberOfBinds": 0,
        "arrayBindSupported": false,
        "statementTypeId": statement_type,
        "version": 1,
        "sendResultTime": chrono::Utc::now().timestamp_millis(),
        "queryResultFormat": if arrow { "arrow" } else { "json" },
    });
    if arrow {
        let b64 = if first.is_empty() {
            String::new()
        } else {
            base64::engine::general_purpose::STANDARD.encode(arrow_bytes(
                &result.columns,
                &types,
                first,
            ))
        };
        data["rowsetBase64"] = json!(b64);
    } else {
        data["rowset"] = Value::Array(json_rows(&types, first));
    }
    if result.rows.len() > per {
        store_chunks(s, &mut data, &result, &types, arrow);
    }
    data
}

/// Stores every chunk after the first for download and lists them in `data`.
fn store_chunks(s: &SfState, data: &mut Value, result: &PgResult, types: &[SfType], arrow: bool) {
    let config = s.config();
    let per = config.rows_per_chunk.max(1);
    let qrmk = base64::engine::general_purpose::STANDARD.encode(alnum(32));
    let (required, announced) = chunk_headers(&qrmk, config.chunk_auth);
    let mut chunks = Vec::new();
    for rows in result.rows[per..].chunks(per) {
        let raw = if arrow {
            arrow_bytes(&result.columns, types, rows)
        } else {
            let text: Vec<String> = json_rows(types, rows)
                .iter()
                .map(Value::to_string)
                .collect();
            text.join(",").into_bytes()
        };
        let gzipped = gzip(&raw);
        let token = alnum(32);
        chunks.push(json!({
            "url": format!("{}{CHUNK_PREFIX}{token}?x-amz-expires=21600&x-amz-signature={}", s.base_url(), alnum(64)),
            "rowCount": rows.len(),
            "uncompressedSize": raw.len(),
            "compressedSize": gzipped.len(),
        }));
        let file = ChunkFile {
            gzipped,
            required: required.clone(),
        };
        locked(&s.chunks).insert(token, file);
    }
    data["chunks"] = Value::Array(chunks);
    data["qrmk"] = json!(qrmk);
    if let Some(h) = announced {
        data["chunkHeaders"] = h;
    }
}
