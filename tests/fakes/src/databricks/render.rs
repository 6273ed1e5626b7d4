//! The `StatementResponse` and `ResultData` shapes: `status`, `manifest` (format, schema,
//! chunks, totals, `truncated`) and `result` (an INLINE chunk's `data_array`, or
//! `external_links` for EXTERNAL_LINKS), with `next_chunk_index` /
//! `next_chunk_internal_link` while chunks remain.

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::formats::json_row;
use super::state::{locked, Chunked, DbxState, Link, Stmt, LINK_PREFIX};
use super::types::DbxType;
use crate::util::alnum;

/// The response of execute / get for statement `id`.
pub(crate) fn statement_response(s: &DbxState, id: &str, st: &Stmt) -> Value {
    let mut status = json!({"state": st.state.as_str()});
    if let Some(e) = &st.error {
        status["error"] = json!({"error_code": e.code, "message": e.message});
        if let Some(code) = &e.sql_state {
            status["sql_state"] = json!(code);
        }
    }
    let mut out = json!({"statement_id": id, "status": status});
    if let Some(result) = &st.result {
        out["manifest"] = manifest(st, result);
        out["result"] = chunk_data(s, id, st, result, 0);
    }
    out
}

fn manifest(st: &Stmt, result: &Chunked) -> Value {
    let columns: Vec<Value> = result
        .columns
        .names
        .iter()
        .enumerate()
        .map(|(i, _)| column_info_at(result, i))
        .collect();
    let chunks: Vec<Value> = result
        .chunks
        .iter()
        .enumerate()
        .map(|(i, (offset, count))| {
            let mut c = json!({"chunk_index": i, "row_offset": offset, "row_count": count});
            if st.external {
                c["byte_count"] = json!(result.bodies[i].len());
            }
            c
        })
        .collect();
    json!({
        "format": st.format.as_str(),
        "schema": {"column_count": columns.len(), "columns": columns},
        "total_chunk_count": result.chunks.len(),
        "chunks": chunks,
        "total_row_count": result.rows.len(),
        "truncated": result.truncated,
    })
}

fn column_info_at(result: &Chunked, i: usize) -> Value {
    let (type_name, type_text) = result.columns.types[i].names();
    let mut info = json!({
        "name": result.columns.names[i],
        "position": i,
        "type_name": type_name,
        "type_text": type_text,
    });
    if let DbxType::Decimal(p, sc) = result.columns.types[i] {
        info["type_precision"] = json!(p);
        info["type_scale"] = json!(sc);
    }
    info
}

/// `ResultData` of chunk `index`: inline rows, or a freshly minted external link.
pub(crate) fn chunk_data(
    s: &DbxState,
    id: &str,
    st: &Stmt,
    result: &Chunked,
    index: usize,
) -> Value {
    let Some((offset, count)) = result.chunks.get(index).copied() else {
        return json!({});
    };
    let mut data = Map::new();
    data.insert("chunk_index".into(), json!(index));
    data.insert("row_offset".into(), json!(offset));
    data.insert("row_count".into(), json!(count));
    if index + 1 < result.chunks.len() {
        data.insert("next_chunk_index".into(), json!(index + 1));
        data.insert(
            "next_chunk_internal_link".into(),
            json!(format!(
                "/api/2.0/sql/statements/{id}/result/chunks/{}",
                index + 1
            )),
        );
    }
    if !st.external {
        let rows: Vec<Value> = result.rows[offset..offset + count]
            .iter()
            .map(|r| json_row(&result.columns, r))
            .collect();
        data.insert("data_array".into(), Value::Array(rows));
        return Value::Object(data);
    }
    data.insert("byte_count".into(), json!(result.bodies[index].len()));
    let (url, expiration) = mint_link(s, id, index);
    data.insert("external_link".into(), json!(url));
    data.insert("expiration".into(), json!(expiration));
    let headers = s.config().link_headers;
    if !headers.is_empty() {
        data.insert("http_headers".into(), json!(headers));
    }
    json!({"external_links": [Value::Object(data)]})
}

/// A new pre-signed-style URL for one chunk, and its expiration as ISO 8601.
fn mint_link(s: &DbxState, id: &str, chunk: usize) -> (String, String) {
    let ttl = s.config().link_ttl;
    let token = alnum(40);
    locked(&s.links).insert(
        token.clone(),
        Link {
            statement: id.to_string(),
            chunk,
            expires: Instant::now() + ttl,
        },
    );
    let expiration = chrono::Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default();
    let base = s.base_url.get().cloned().unwrap_or_default();
    (
        format!(
            "{base}{LINK_PREFIX}{token}?X-Amz-Expires={}&X-Amz-Signature={}",
            ttl.as_secs(),
            alnum(64)
        ),
        expiration.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

/// How long statements wait for their result by default (`wait_timeout` 10s).
pub(crate) const DEFAULT_WAIT: Duration = Duration::from_secs(10);
