//! Key sets in a DynamoDB table, one item per key.
//!
//! Table: partition key `ks` (S) = `{keyset}#{shard:04}`, sort key `k` (S) = the record key.
//! Attributes: `h` (B, the 16-byte big-endian value hash), `st` (N, 0 present / 1 deleted),
//! `o` (N, 0 baseline / 1 synced), `t` (N, unix seconds of the last change).
//!
//! One item per key means a run writes only the keys that changed (a no-change run writes
//! nothing), and a shard is one partition read with a single paginated Query.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::query::paginator::QueryPaginator;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, Select, WriteRequest};

use super::dynamo_batch::batch_write;
use super::dynamo_item::{get_b, get_n, get_s, n, s, Item};
use super::error::{build_error, store_error};
use crate::ports::{KeyChange, KeyEntry, KeyOrigin, KeySetStore, KeyState, StoreError};
use crate::record::shard_of;

/// DynamoDB's limit on the size of a sort key value.
const MAX_KEY_BYTES: usize = 1024;

/// A [`KeySetStore`] on one DynamoDB table (layout in the module docs).
#[derive(Debug, Clone)]
pub struct DynamoKeySetStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoKeySetStore {
    /// A store on `table`, which must exist with the key schema above.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoKeySetStore {
            client,
            table: table.into(),
        }
    }

    /// Pages of one shard's partition. Reads are strongly consistent: a plan must see every
    /// commit of the previous apply.
    fn shard_pages(&self, partition: &str, keys_only: bool) -> QueryPaginator {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#ks = :ks")
            .expression_attribute_names("#ks", "ks")
            .expression_attribute_values(":ks", s(partition))
            .consistent_read(true);
        let query = if keys_only {
            query
                .projection_expression("#ks, #k")
                .expression_attribute_names("#k", "k")
        } else {
            query
        };
        query.into_paginator()
    }
}

fn partition(keyset: &str, shard: u32) -> String {
    format!("{keyset}#{shard:04}")
}

fn entry_item(partition: String, key: &str, entry: &KeyEntry) -> Item {
    let state = match entry.state {
        KeyState::Present => 0,
        KeyState::Deleted => 1,
    };
    let origin = match entry.origin {
        KeyOrigin::Baseline => 0,
        KeyOrigin::Synced => 1,
    };
    HashMap::from([
        ("ks".to_string(), s(partition)),
        ("k".to_string(), s(key)),
        (
            "h".to_string(),
            AttributeValue::B(Blob::new(entry.hash.to_be_bytes())),
        ),
        ("st".to_string(), n(state)),
        ("o".to_string(), n(origin)),
        ("t".to_string(), n(entry.updated_at)),
    ])
}

fn parse_entry(item: &Item) -> Result<(String, KeyEntry), StoreError> {
    let hash: [u8; 16] = get_b(item, "h")?
        .try_into()
        .map_err(|_| StoreError::Other("corrupt item: attribute `h` is not 16 bytes".into()))?;
    let state = match get_n::<u8>(item, "st")? {
        0 => KeyState::Present,
        1 => KeyState::Deleted,
        other => return Err(StoreError::Other(format!("corrupt item: `st` is {other}"))),
    };
    let origin = match get_n::<u8>(item, "o")? {
        0 => KeyOrigin::Baseline,
        1 => KeyOrigin::Synced,
        other => return Err(StoreError::Other(format!("corrupt item: `o` is {other}"))),
    };
    Ok((
        get_s(item, "k")?.to_string(),
        KeyEntry {
            hash: u128::from_be_bytes(hash),
            state,
            origin,
            updated_at: get_n(item, "t")?,
        },
    ))
}

/// DynamoDB refuses empty and over-long sort keys; say so plainly rather than relay a
/// ValidationException for the whole batch. The key itself is not quoted: it may be personal.
fn check_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(StoreError::Other(format!(
            "a record key of {} bytes cannot be stored in DynamoDB (1 to {MAX_KEY_BYTES} bytes)",
            key.len()
        )));
    }
    Ok(())
}

#[async_trait]
impl KeySetStore for DynamoKeySetStore {
    async fn load_shard(
        &self,
        sync: &str,
        shard: u32,
        _shards: u32,
    ) -> Result<Vec<(String, KeyEntry)>, StoreError> {
        let part = partition(sync, shard);
        let what = format!("reading key-set shard {part}");
        let mut pages = self.shard_pages(&part, false).send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| store_error(&what, e))?;
            for item in page.items() {
                out.push(parse_entry(item)?);
            }
        }
        Ok(out)
    }

    /// Applies `changes` with BatchWriteItem. A key changed twice keeps its last change, as if
    /// the changes were applied in order.
    async fn apply(
        &self,
        sync: &str,
        shards: u32,
        changes: &[KeyChange],
    ) -> Result<(), StoreError> {
        let what = format!("writing key set {sync}");
        let mut last: HashMap<&str, &KeyChange> = HashMap::with_capacity(changes.len());
        for c in changes {
            check_key(c.key())?;
            last.insert(c.key(), c);
        }
        let requests = last
            .into_values()
            .map(|c| {
                let part = partition(sync, shard_of(c.key(), shards));
                match c {
                    KeyChange::Put { key, entry } => PutRequest::builder()
                        .set_item(Some(entry_item(part, key, entry)))
                        .build()
                        .map(|p| WriteRequest::builder().put_request(p).build()),
                    KeyChange::Remove { key } => DeleteRequest::builder()
                        .key("ks", s(part))
                        .key("k", s(key))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build()),
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| build_error(&what, e))?;
        batch_write(&self.client, &self.table, requests, &what).await
    }

    /// One `Select=COUNT` Query per shard partition (strongly consistent, paginated).
    async fn counts(&self, sync: &str, shards: u32) -> Result<Vec<u64>, StoreError> {
        let mut counts = Vec::with_capacity(shards as usize);
        for shard in 0..shards {
            let part = partition(sync, shard);
            let what = format!("counting key-set shard {part}");
            let mut pages = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#ks = :ks")
                .expression_attribute_names("#ks", "ks")
                .expression_attribute_values(":ks", s(&part))
                .consistent_read(true)
                .select(Select::Count)
                .into_paginator()
                .send();
            let mut n = 0u64;
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| store_error(&what, e))?;
                n += u64::try_from(page.count()).unwrap_or(0);
            }
            counts.push(n);
        }
        Ok(counts)
    }

    /// Deletes every item of shards `0..shards`, one page at a time.
    async fn clear(&self, sync: &str, shards: u32) -> Result<(), StoreError> {
        let what = format!("clearing key set {sync}");
        for shard in 0..shards {
            // Deleting page by page keeps memory flat; the next page starts after the last
            // key read, so deleting what was read does not disturb the paging.
            let mut pages = self.shard_pages(&partition(sync, shard), true).send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| store_error(&what, e))?;
                let requests = page
                    .items
                    .unwrap_or_default()
                    .into_iter()
                    .map(|key| {
                        DeleteRequest::builder()
                            .set_key(Some(key))
                            .build()
                            .map(|d| WriteRequest::builder().delete_request(d).build())
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| build_error(&what, e))?;
                batch_write(&self.client, &self.table, requests, &what).await?;
            }
        }
        Ok(())
    }
}
