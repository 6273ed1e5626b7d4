//! SOQL reads: `GET /services/data/vXX.X/query?q=...`, followed through `nextRecordsUrl`
//! (<https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_query.htm>).
//! Lookups by key use `WHERE <key> IN ('a', 'b', ...)` in chunks that keep the URL short:
//! Salesforce caps a request's URI and headers at 16,384 bytes and recommends far shorter URIs.

use std::collections::HashMap;

use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::api::Api;
use super::errors::unexpected;
use super::Target;
use crate::ports::SendError;

/// Most URL-encoded characters of the key literals of one query.
const MAX_IN_LIST_CHARS: usize = 4_000;
/// Most keys in one `IN` list.
const MAX_IN_LIST_KEYS: usize = 200;
/// Queries in flight for one lookup.
const LOOKUP_CONCURRENCY: usize = 4;

/// One page of a query result.
pub(crate) struct Page {
    /// Records, `attributes` included.
    pub records: Vec<Map<String, Value>>,
    /// Where the next page is.
    pub next: Option<String>,
}

/// What to read: a query, or the next page of one.
#[derive(Debug, Clone)]
pub(crate) enum PageRequest {
    /// `?q=<SOQL>`.
    Soql(String),
    /// A `nextRecordsUrl`.
    Next(String),
}

#[derive(Deserialize)]
struct QueryBody {
    #[serde(default)]
    records: Vec<Map<String, Value>>,
    #[serde(rename = "nextRecordsUrl", default)]
    next_records_url: Option<String>,
    #[serde(default)]
    done: Option<bool>,
}

/// A SOQL string literal: quotes and backslashes escaped, control characters as their escape
/// sequences (SOQL reference, "Quoted String Escape Sequences").
pub(crate) fn literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn encoded_len(s: &str) -> usize {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .map(str::len)
        .sum()
}

/// Splits literals into `IN` lists within the URL budget.
fn chunks(literals: Vec<String>) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut current = Vec::new();
    let mut size = 0;
    for lit in literals {
        let n = encoded_len(&lit) + 3;
        if !current.is_empty()
            && (size + n > MAX_IN_LIST_CHARS || current.len() >= MAX_IN_LIST_KEYS)
        {
            out.push(std::mem::take(&mut current));
            size = 0;
        }
        size += n;
        current.push(lit);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// A field of a query record, found whatever the case of its name (the API answers with
/// the schema's spelling, which may differ from the sync's).
pub(crate) fn field<'a>(record: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    record.get(name).or_else(|| {
        record
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// The text of a key value, as keys compare.
pub(crate) fn key_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// 15 or 18 letters and digits, the shape of a record id.
pub(crate) fn well_formed_id(id: &str) -> bool {
    (id.len() == 15 || id.len() == 18) && id.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The select list: `fields` without duplicates (SOQL refuses a field selected twice).
pub(crate) fn select_list(fields: &[&str]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for f in fields {
        if !seen.iter().any(|s| s.eq_ignore_ascii_case(f)) {
            seen.push(f);
        }
    }
    seen.join(", ")
}

/// Reads one page.
pub(crate) async fn page(api: &Api, req: &PageRequest) -> Result<Page, SendError> {
    let resp = api
        .read(|t| match req {
            PageRequest::Soql(q) => api
                .http()
                .get(api.data_url(t, "/query"))
                .query(&[("q", q.as_str())]),
            PageRequest::Next(url) => api.http().get(api.instance_url(t, url)),
        })
        .await?;
    let body: QueryBody = serde_json::from_str(&resp.body)
        .map_err(|e| unexpected("the query answer is not a result set", e))?;
    let next = match body.done {
        Some(true) => None,
        _ => body.next_records_url,
    };
    Ok(Page {
        records: body.records,
        next,
    })
}

/// Every record a query returns, all pages.
pub(crate) async fn all(api: &Api, soql: String) -> Result<Vec<Map<String, Value>>, SendError> {
    let mut out = Vec::new();
    let mut req = Some(PageRequest::Soql(soql));
    while let Some(r) = req {
        let p = page(api, &r).await?;
        out.extend(p.records);
        req = p.next.map(PageRequest::Next);
    }
    Ok(out)
}

/// The records whose key field holds one of `keys`, with `fields` selected.
async fn by_keys(
    api: &Api,
    target: &Target<'_>,
    fields: &[&str],
    keys: &[&str],
) -> Result<Vec<Map<String, Value>>, SendError> {
    let literals: Vec<String> = keys
        .iter()
        .filter(|k| !target.key_is_id() || well_formed_id(k))
        .map(|k| literal(k))
        .collect();
    let select = select_list(fields);
    let queries: Vec<String> = chunks(literals)
        .into_iter()
        .map(|c| {
            format!(
                "SELECT {select} FROM {} WHERE {} IN ({})",
                target.sobject,
                target.key_field,
                c.join(", ")
            )
        })
        .collect();
    let pages: Vec<Vec<Map<String, Value>>> = futures::stream::iter(queries)
        .map(|q| all(api, q))
        .buffer_unordered(LOOKUP_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(pages.into_iter().flatten().collect())
}

/// Records matched to the keys asked for: exactly, else case-insensitively (SOQL compares
/// text without case, and a case-insensitive external id matches the same way on upsert);
/// a 15-character id matches its 18-character form.
fn match_keys<'r>(
    target: &Target<'_>,
    keys: &[&str],
    records: &'r [Map<String, Value>],
) -> HashMap<String, Vec<&'r Map<String, Value>>> {
    let mut exact: HashMap<String, Vec<&Map<String, Value>>> = HashMap::new();
    let mut folded: HashMap<String, Vec<&Map<String, Value>>> = HashMap::new();
    for r in records {
        let Some(text) = field(r, target.key_field).and_then(key_text) else {
            continue;
        };
        if target.key_is_id() && text.len() == 18 {
            exact.entry(text[..15].to_string()).or_default().push(r);
        }
        folded.entry(text.to_lowercase()).or_default().push(r);
        exact.entry(text).or_default().push(r);
    }
    let mut out = HashMap::new();
    for k in keys {
        let hits = match exact.get(*k) {
            Some(h) => h.clone(),
            None if target.key_is_id() => Vec::new(),
            None => folded.get(&k.to_lowercase()).cloned().unwrap_or_default(),
        };
        if !hits.is_empty() {
            out.insert(k.to_string(), hits);
        }
    }
    out
}

/// The existing records of `keys`, projected on `fields`; the key field holds the key as it
/// was asked for, so that the engine recognises it.
pub(crate) async fn lookup(
    api: &Api,
    target: &Target<'_>,
    fields: &[&str],
    keys: &[&str],
) -> Result<Vec<Map<String, Value>>, SendError> {
    let mut select = vec![target.key_field];
    select.extend_from_slice(fields);
    let records = by_keys(api, target, &select, keys).await?;
    let matched = match_keys(target, keys, &records);
    let mut out = Vec::with_capacity(matched.len());
    for (key, hits) in matched {
        let Some(first) = hits.first() else { continue };
        let mut values = project(first, fields);
        let stored = values.get(target.key_field).and_then(key_text);
        if stored.as_deref() != Some(key.as_str()) {
            values.insert(target.key_field.to_string(), Value::String(key));
        }
        out.push(values);
    }
    Ok(out)
}

/// What a key resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// The record id.
    One(String),
    /// Several records share the external id.
    Many(usize),
}

/// Record ids of `keys` (by external id through SOQL; a key that is an id stands for
/// itself). Keys without a record are absent from the map.
pub(crate) async fn resolve_ids(
    api: &Api,
    target: &Target<'_>,
    keys: &[&str],
) -> Result<HashMap<String, Resolved>, SendError> {
    if target.key_is_id() {
        return Ok(keys
            .iter()
            .filter(|k| well_formed_id(k))
            .map(|k| (k.to_string(), Resolved::One(k.to_string())))
            .collect());
    }
    let records = by_keys(api, target, &["Id", target.key_field], keys)
        .await
        // The query is ours and the same for every record: a refusal is not about the batch.
        .map_err(|e| match e {
            SendError::BatchRejected { code, message } => SendError::Fatal { code, message },
            other => other,
        })?;
    let matched = match_keys(target, keys, &records);
    Ok(matched
        .into_iter()
        .filter_map(|(k, hits)| {
            let ids: Vec<String> = hits
                .iter()
                .filter_map(|r| field(r, "Id").and_then(key_text))
                .collect();
            match ids.as_slice() {
                [] => None,
                [one] => Some((k, Resolved::One(one.clone()))),
                many => Some((k, Resolved::Many(many.len()))),
            }
        })
        .collect())
}

/// A query record as the sync's destination fields (missing ones are null).
pub(crate) fn project(record: &Map<String, Value>, fields: &[&str]) -> Map<String, Value> {
    fields
        .iter()
        .map(|f| {
            (
                f.to_string(),
                field(record, f).cloned().unwrap_or(Value::Null),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn literals_escape_what_soql_needs() {
        assert_eq!(literal("O'Brien"), r"'O\'Brien'");
        assert_eq!(literal(r"a\b"), r"'a\\b'");
        assert_eq!(literal("l1\nl2"), r"'l1\nl2'");
    }

    #[test]
    fn in_lists_stay_within_the_url_budget() {
        let lits: Vec<String> = (0..1000).map(|i| literal(&format!("key-{i:05}"))).collect();
        let c = chunks(lits);
        assert_eq!(c.iter().map(Vec::len).sum::<usize>(), 1000);
        assert!(c.iter().all(|c| c.len() <= MAX_IN_LIST_KEYS));
        for chunk in &c {
            let len: usize = chunk.iter().map(|l| encoded_len(l) + 3).sum();
            assert!(len <= MAX_IN_LIST_CHARS, "{len}");
        }
    }

    #[test]
    fn keys_match_exactly_then_without_case() {
        let target = Target {
            sobject: "Contact",
            key_field: "Ext__c",
        };
        let recs: Vec<Map<String, Value>> = [
            json!({"Id": "003000000000001AAA", "ext__c": "abc"}),
            json!({"Id": "003000000000002AAA", "ext__c": "ABC"}),
            json!({"Id": "003000000000003AAA", "ext__c": "Xy"}),
        ]
        .into_iter()
        .map(|v| v.as_object().cloned().unwrap_or_default())
        .collect();
        let m = match_keys(&target, &["abc", "xy", "none"], &recs);
        assert_eq!(m["abc"].len(), 1);
        assert_eq!(m["xy"].len(), 1);
        assert!(!m.contains_key("none"));
        let ids = Target {
            sobject: "Contact",
            key_field: "Id",
        };
        let m = match_keys(&ids, &["003000000000002", "003000000000003aaa"], &recs);
        assert!(m.contains_key("003000000000002"));
        assert!(
            !m.contains_key("003000000000003aaa"),
            "ids are case-sensitive"
        );
    }
}
