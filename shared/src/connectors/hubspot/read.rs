//! Reading records back: the listing that seeds a sync's baseline
//! (`GET /crm/v3/objects/{type}?limit=100&properties=...&after=...`, paged by
//! `paging.next.after`) and lookups by key (`POST .../batch/read` with `idProperty`, 100
//! inputs per request). Values are typed by the object's schema (see [`Schema::values`]).

use std::collections::VecDeque;
use std::sync::Arc;

use futures::stream::{self, BoxStream, StreamExt};
use serde_json::{json, Value};

use super::client::Api;
use super::errors::json_body;
use super::schema::{Schema, RECORD_ID};
use crate::ports::DestinationError;
use crate::record::Values;

/// Records per page or lookup request (HubSpot's maximum for both).
pub(super) const PAGE: usize = 100;

fn results(body: &Value) -> impl Iterator<Item = &Value> {
    body.get("results")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The records with these key values, as `fields`.
pub(super) async fn lookup(
    api: &Api,
    schema: &Schema,
    object: &str,
    key: &str,
    fields: &[String],
    keys: &[String],
) -> Result<Vec<Values>, DestinationError> {
    let path = format!("/crm/v3/objects/{object}/batch/read");
    // A record id is a number: other keys cannot exist, and HubSpot may refuse the request.
    let keys: Vec<&String> = keys
        .iter()
        .filter(|k| key != RECORD_ID || (!k.is_empty() && k.bytes().all(|b| b.is_ascii_digit())))
        .collect();
    let mut out = Vec::new();
    for chunk in keys.chunks(PAGE) {
        let inputs: Vec<Value> = chunk.iter().map(|k| json!({"id": k})).collect();
        let mut body = json!({"inputs": inputs, "properties": fields});
        if key != RECORD_ID {
            body["idProperty"] = json!(key);
        }
        let resp = api.read(&path, &[], Some(&body)).await?;
        let body = json_body(&resp);
        out.extend(results(&body).map(|r| schema.values(fields, r)));
    }
    Ok(out)
}

struct Pages {
    api: Arc<Api>,
    schema: Arc<Schema>,
    path: String,
    fields: Vec<String>,
    after: Option<String>,
    done: bool,
    buffer: VecDeque<Values>,
}

impl Pages {
    async fn next_page(&mut self) -> Result<(), DestinationError> {
        let mut query = vec![
            ("limit", PAGE.to_string()),
            ("properties", self.fields.join(",")),
            ("archived", "false".to_string()),
        ];
        if let Some(after) = &self.after {
            query.push(("after", after.clone()));
        }
        let resp = self.api.read(&self.path, &query, None).await?;
        let body = json_body(&resp);
        self.buffer
            .extend(results(&body).map(|r| self.schema.values(&self.fields, r)));
        let next = body
            .get("paging")
            .and_then(|p| p.get("next"))
            .and_then(|n| n.get("after"))
            .and_then(|a| match a {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
        // A cursor that does not move would page forever.
        self.done = next.is_none() || next == self.after;
        self.after = next;
        Ok(())
    }
}

/// Every live record of `object`, as `fields`, page by page.
pub(super) fn list(
    api: Arc<Api>,
    schema: Arc<Schema>,
    object: &str,
    fields: Vec<String>,
) -> BoxStream<'static, Result<Values, DestinationError>> {
    let pages = Pages {
        api,
        schema,
        path: format!("/crm/v3/objects/{object}"),
        fields,
        after: None,
        done: false,
        buffer: VecDeque::new(),
    };
    stream::unfold(Some(pages), |state| async move {
        let mut pages = state?;
        loop {
            if let Some(v) = pages.buffer.pop_front() {
                return Some((Ok(v), Some(pages)));
            }
            if pages.done {
                return None;
            }
            if let Err(e) = pages.next_page().await {
                // The error ends the stream.
                return Some((Err(e), None));
            }
        }
    })
    .boxed()
}
