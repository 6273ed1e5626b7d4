//! Key sets in a DynamoDB table, packed: a shard's entries live in a few bucket items and
//! applied changes in a journal, so a run reads and writes kilobyte-sized items instead of
//! one item per key (DynamoDB charges every item at least a whole unit).
//!
//! Table: partition key `ks` (S), sort key `k` (S), binary attribute `d` (packing.rs).
//! - `{keyset}#p{shard:04}`: the shard's manifest (`k` = `m`; `v` its version, `nx` the next
//!   bucket id, `d` the bucket list) and its buckets (`k` = `b#{id:016x}`, `d` the entries).
//! - `{keyset}#j{0..3}`: the journal: each apply writes its changes, in order, as items keyed
//!   by a ULID (four partitions share the write rate, which DynamoDB caps per partition),
//!   with a `ttl` 35 days out.
//! - `{keyset}#f`: `k` = `f`, `through`: the last journal id folded into every shard.
//! - `{keyset}#{shard:04}`: the layout before packing, one item per key (`h`, `st`, `o`,
//!   `t`); read while a shard has no manifest, moved into buckets by its first fold.
//!
//! A shard is its buckets with the journal after `through` replayed over them, in ULID
//! order. `compact` (when a run plans and when it ends) folds that journal into the buckets,
//! then moves `through` past it. Folded journal items are not deleted: DynamoDB bills a
//! deletion like a write of the item, and TTL removes them for nothing. Replaying a journal
//! over buckets that already hold it gives the same entries, so a fold stopped anywhere
//! loses nothing. Only a run killed before any fold, then no run of its sync for 35 days,
//! would let its journal expire unfolded: the next run then sends those records again.

mod buckets;
mod capacity;
mod packing;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, KeysAndAttributes, PutRequest, WriteRequest,
};
use futures::{StreamExt, TryStreamExt};
use ulid::Ulid;

use self::buckets::{decode_bucket, fold, in_range, plan_fold, Folded, Manifest};
pub use self::capacity::CapacityUsed;
use self::capacity::{item_size, CapacityMeter};
use self::packing::{BlobReader, BlobWriter};
use super::dynamo_batch::batch_write;
use super::dynamo_item::{get_b, get_n, get_s, lost_condition, n, s, Item};
use super::error::{build_error, store_error};
use crate::ports::{KeyChange, KeyEntry, KeyOrigin, KeySetStore, KeyState, StoreError};
use crate::record::shard_of;

/// The longest record key stored (the limit of the per-key layout, kept so every key set
/// that worked before still does).
const MAX_KEY_BYTES: usize = 1024;
/// Uncompressed bytes of changes per journal item: well under DynamoDB's 400 KB item limit
/// once deflated, whatever the keys.
const JOURNAL_BYTES: usize = 256 * 1024;
/// Journal partitions.
const JOURNAL_PARTITIONS: u128 = 4;
/// How long a journal item outlives its write (DynamoDB's TTL deletes it, unbilled); every
/// run folds the journal well before.
const JOURNAL_TTL_SECS: i64 = 35 * 24 * 3600;
/// Shards folded at once by `compact`.
const FOLDS_IN_FLIGHT: usize = 4;
/// DynamoDB's limit on keys per BatchGetItem.
const BATCH_GET: usize = 100;

/// A [`KeySetStore`] on one DynamoDB table (layout in the module docs).
#[derive(Clone)]
pub struct DynamoKeySetStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// The last journal id this process handed out: ids grow in the order it applied its
    /// changes, also within a millisecond.
    last_id: Arc<Mutex<Ulid>>,
    meter: Arc<CapacityMeter>,
}

/// Which items of a partition a Query reads.
#[derive(Clone, Copy)]
enum SortKeys<'a> {
    All,
    /// Sort keys from the first to the second, inclusive.
    Between(&'a str, &'a str),
    /// Sort keys after this one.
    After(&'a str),
}

/// One journal item, decoded.
struct JournalItem {
    id: Ulid,
    changes: Vec<(String, Option<KeyEntry>)>,
}

impl std::fmt::Debug for DynamoKeySetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoKeySetStore")
            .field("table", &self.table)
            .field("capacity_used", &self.meter.used())
            .finish_non_exhaustive()
    }
}

impl DynamoKeySetStore {
    /// A store on `table`, which must exist with the key schema above.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoKeySetStore {
            client,
            table: table.into(),
            last_id: Arc::new(Mutex::new(Ulid::nil())),
            meter: Arc::default(),
        }
    }

    /// The read and write units this store's requests have cost so far, from the items'
    /// sizes (capacity.rs).
    pub fn capacity_used(&self) -> CapacityUsed {
        self.meter.used()
    }

    /// Every item of a partition with its sort key in `range`, strongly consistent: a plan
    /// must see every commit of the previous apply.
    async fn query(
        &self,
        partition: &str,
        range: SortKeys<'_>,
        what: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_names("#ks", "ks")
            .expression_attribute_values(":ks", s(partition))
            .consistent_read(true);
        query = match range {
            SortKeys::All => query.key_condition_expression("#ks = :ks"),
            SortKeys::Between(lo, hi) => query
                .key_condition_expression("#ks = :ks AND #k BETWEEN :lo AND :hi")
                .expression_attribute_names("#k", "k")
                .expression_attribute_values(":lo", s(lo))
                .expression_attribute_values(":hi", s(hi)),
            SortKeys::After(v) => query
                .key_condition_expression("#ks = :ks AND #k > :v")
                .expression_attribute_names("#k", "k")
                .expression_attribute_values(":v", s(v)),
        };
        let mut pages = query.into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| store_error(what, e))?;
            self.meter.read_page(page.items());
            out.extend(page.items.unwrap_or_default());
        }
        Ok(out)
    }

    /// One item, strongly consistent, if it exists.
    async fn get(
        &self,
        partition: &str,
        sort_key: &str,
        what: &str,
    ) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("ks", s(partition))
            .key("k", s(sort_key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(what, e))?;
        self.meter.read_page(out.item());
        Ok(out.item)
    }

    /// The last journal id folded into every shard of `keyset`, if any was.
    async fn folded_through(&self, keyset: &str) -> Result<Option<Ulid>, StoreError> {
        let what = format!("reading the folded journal mark of {keyset}");
        self.get(&marker_partition(keyset), "f", &what)
            .await?
            .map(|item| parse_ulid(get_s(&item, "through")?, &what))
            .transpose()
    }

    /// The journal of `keyset` not folded yet, oldest first.
    async fn journal(&self, keyset: &str) -> Result<Vec<JournalItem>, StoreError> {
        let what = format!("reading the key-set journal of {keyset}");
        let through = self.folded_through(keyset).await?.map(|u| u.to_string());
        let range = through.as_deref().map_or(SortKeys::All, SortKeys::After);
        let mut out = Vec::new();
        for p in 0..JOURNAL_PARTITIONS {
            let partition = journal_partition(keyset, p);
            for item in self.query(&partition, range, &what).await? {
                let mut r = BlobReader::new(get_b(&item, "d")?, "a key-set journal item")?;
                let mut changes = Vec::new();
                while !r.done() {
                    changes.push(r.change()?);
                }
                out.push(JournalItem {
                    id: parse_ulid(get_s(&item, "k")?, &what)?,
                    changes,
                });
            }
        }
        out.sort_by_key(|item| item.id);
        Ok(out)
    }

    /// The manifest of a shard, if it has been folded before.
    async fn manifest(&self, partition: &str) -> Result<Option<Manifest>, StoreError> {
        let what = format!("reading the key-set manifest {partition}");
        self.get(partition, "m", &what)
            .await?
            .as_ref()
            .map(parse_manifest)
            .transpose()
    }

    /// A shard's entries in key order, before the journal: its buckets, or its per-key
    /// items while it has no manifest.
    async fn base_entries(
        &self,
        keyset: &str,
        shard: u32,
    ) -> Result<Vec<(String, KeyEntry)>, StoreError> {
        let partition = shard_partition(keyset, shard);
        let what = format!("reading key-set shard {partition}");
        let mut manifest = None;
        let mut blobs = HashMap::new();
        for item in self.query(&partition, SortKeys::All, &what).await? {
            match get_s(&item, "k")? {
                "m" => manifest = Some(parse_manifest(&item)?),
                k => {
                    if let Some(id) = bucket_id(k) {
                        blobs.insert(id, item);
                    }
                }
            }
        }
        let Some(manifest) = manifest else {
            return self.legacy_entries(keyset, shard).await;
        };
        let mut out = Vec::with_capacity(manifest.entries() as usize);
        for (i, b) in manifest.buckets.iter().enumerate() {
            let item = blobs
                .get(&b.id)
                .ok_or_else(|| missing_bucket(&partition, b.id))?;
            let entries = decode_bucket(get_b(item, "d")?)?;
            out.extend(in_range(entries, &manifest, i));
        }
        Ok(out)
    }

    /// A shard's per-key items of the layout before packing, in key order.
    async fn legacy_entries(
        &self,
        keyset: &str,
        shard: u32,
    ) -> Result<Vec<(String, KeyEntry)>, StoreError> {
        let partition = legacy_partition(keyset, shard);
        let what = format!("reading key-set shard {partition}");
        self.query(&partition, SortKeys::All, &what)
            .await?
            .iter()
            .map(parse_legacy_entry)
            .collect()
    }

    /// A shard's entries: its base with the journal's changes to it replayed in order.
    async fn shard_entries(
        &self,
        keyset: &str,
        shard: u32,
        shards: u32,
        journal: &[JournalItem],
    ) -> Result<Vec<(String, KeyEntry)>, StoreError> {
        let base = self.base_entries(keyset, shard).await?;
        let changes = changes_by_shard(journal, shards, |s| s == shard).swap_remove(shard as usize);
        if changes.is_empty() {
            return Ok(base);
        }
        Ok(fold(base, &mut changes.into_iter().peekable(), None))
    }

    /// Buckets by id, read with BatchGetItem (strongly consistent): entries and item size.
    async fn buckets(
        &self,
        partition: &str,
        ids: &[u64],
    ) -> Result<HashMap<u64, (Vec<(String, KeyEntry)>, usize)>, StoreError> {
        let what = format!("reading buckets of key-set shard {partition}");
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH_GET) {
            let mut keys: Vec<Item> = chunk
                .iter()
                .map(|id| {
                    HashMap::from([
                        ("ks".to_string(), s(partition)),
                        ("k".to_string(), s(bucket_key(*id))),
                    ])
                })
                .collect();
            // Unprocessed keys (throttling) are asked for again; the SDK backs off per call.
            for _ in 0..8 {
                if keys.is_empty() {
                    break;
                }
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut keys)))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| build_error(&what, e))?;
                let got = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| store_error(&what, e))?;
                for item in got
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default()
                {
                    self.meter.read_item(&item);
                    let id = bucket_id(get_s(&item, "k")?)
                        .ok_or_else(|| StoreError::Other(format!("{what}: not a bucket")))?;
                    out.insert(id, (decode_bucket(get_b(&item, "d")?)?, item_size(&item)));
                }
                keys = got
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
            }
            if !keys.is_empty() {
                return Err(StoreError::Unavailable(format!(
                    "{what}: {} buckets still unprocessed (throttled)",
                    keys.len()
                )));
            }
        }
        if let Some(id) = ids.iter().find(|id| !out.contains_key(id)) {
            return Err(missing_bucket(partition, *id));
        }
        Ok(out)
    }

    /// Folds `changes` (and, for a shard without a manifest, its per-key items) into the
    /// shard's buckets. A changed bucket is rewritten in place (DynamoDB bills a replaced
    /// item once, a new item and a deletion twice); what no longer fits goes to new buckets,
    /// written before the manifest that lists them, and the bucket it came from is rewritten
    /// after: until then its old entries past its new range are ignored (`in_range`).
    async fn fold_shard(
        &self,
        keyset: &str,
        shard: u32,
        changes: Folded,
    ) -> Result<(), StoreError> {
        let partition = shard_partition(keyset, shard);
        let what = format!("folding key-set shard {partition}");
        let old = self.manifest(&partition).await?;
        let (legacy, current) = match &old {
            Some(m) => (Vec::new(), m.clone()),
            None => (
                self.legacy_entries(keyset, shard).await?,
                Manifest::default(),
            ),
        };
        if changes.is_empty() && legacy.is_empty() {
            return Ok(());
        }
        // Buckets a stopped fold wrote but never listed carry ids from `next_id` on.
        let orphans = self
            .query(
                &partition,
                SortKeys::Between(&bucket_key(current.next_id), &bucket_key(u64::MAX)),
                &what,
            )
            .await?;
        let orphans = sized_keys(&orphans)?;
        let touched: BTreeSet<usize> = if current.buckets.is_empty() {
            BTreeSet::new()
        } else {
            changes.keys().map(|k| current.bucket_for(k)).collect()
        };
        let ids: Vec<u64> = touched.iter().map(|i| current.buckets[*i].id).collect();
        let read = self.buckets(&partition, &ids).await?;

        // A per-key item is well under 1 KB: one unit to delete.
        let legacy_keys: Vec<(String, usize)> =
            legacy.iter().map(|(k, _)| (k.clone(), 1)).collect();
        let plan = plan_fold(&current, legacy, read, &touched, changes);
        let item = |(id, blob, replaced)| (bucket_item(&partition, id, blob), replaced);
        let added = plan.added.into_iter().map(item).collect();
        let rewritten = plan.rewritten.into_iter().map(item).collect();
        let next = plan.next;

        self.delete(&partition, orphans, &what).await?;
        self.put_all(added, &what).await?;
        self.put_manifest(&partition, old.as_ref(), &next, &what)
            .await?;
        self.put_all(rewritten, &what).await?;
        self.delete(&legacy_partition(keyset, shard), legacy_keys, &what)
            .await
    }

    /// Writes `items` with BatchWriteItem, each with the size of the item it replaces (0 for
    /// none): DynamoDB bills a replacement by the larger of the two.
    async fn put_all(&self, items: Vec<(Item, usize)>, what: &str) -> Result<(), StoreError> {
        let requests = items
            .into_iter()
            .map(|(item, replaced)| {
                self.meter.write(item_size(&item).max(replaced));
                PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map(|p| WriteRequest::builder().put_request(p).build())
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| build_error(what, e))?;
        batch_write(&self.client, &self.table, requests, what).await
    }

    /// Writes `next` over `old` (or where there was none); another fold in between is a
    /// conflict, and the buckets this one wrote stay unlisted until the next fold.
    async fn put_manifest(
        &self,
        partition: &str,
        old: Option<&Manifest>,
        next: &Manifest,
        what: &str,
    ) -> Result<(), StoreError> {
        let item = HashMap::from([
            ("ks".to_string(), s(partition)),
            ("k".to_string(), s("m")),
            ("v".to_string(), n(next.version)),
            ("nx".to_string(), n(next.next_id)),
            ("d".to_string(), AttributeValue::B(Blob::new(next.encode()))),
        ]);
        self.meter.write(item_size(&item));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let put = match old {
            Some(old) => put
                .condition_expression("#v = :v")
                .expression_attribute_names("#v", "v")
                .expression_attribute_values(":v", n(old.version)),
            None => put
                .condition_expression("attribute_not_exists(#k)")
                .expression_attribute_names("#k", "k"),
        };
        match put.send().await {
            Ok(_) => Ok(()),
            Err(e) if lost_condition(&e) => Err(StoreError::Conflict(format!(
                "{what}: another fold changed the shard meanwhile"
            ))),
            Err(e) => Err(store_error(what, e)),
        }
    }

    /// Deletes items of `partition` by sort key; each comes with its size (DynamoDB bills a
    /// deletion by the size of the item deleted).
    async fn delete(
        &self,
        partition: &str,
        items: Vec<(String, usize)>,
        what: &str,
    ) -> Result<(), StoreError> {
        let requests = items
            .into_iter()
            .map(|(k, size)| {
                self.meter.write(size);
                DeleteRequest::builder()
                    .key("ks", s(partition))
                    .key("k", s(k))
                    .build()
                    .map(|d| WriteRequest::builder().delete_request(d).build())
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| build_error(what, e))?;
        batch_write(&self.client, &self.table, requests, what).await
    }

    /// Deletes every item of a partition.
    async fn delete_partition(&self, partition: &str, what: &str) -> Result<(), StoreError> {
        let items = self.query(partition, SortKeys::All, what).await?;
        self.delete(partition, sized_keys(&items)?, what).await
    }

    /// The next journal id: after the last one this process handed out and after `floor`
    /// (the folded mark), whatever this machine's clock says.
    fn next_id(&self, floor: Option<Ulid>) -> Result<Ulid, StoreError> {
        let mut last = self
            .last_id
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut id = Ulid::new();
        for bound in [Some(*last), floor].into_iter().flatten() {
            if id <= bound {
                id = bound
                    .increment()
                    .ok_or_else(|| StoreError::Other("journal ids ran out".into()))?;
            }
        }
        *last = id;
        Ok(id)
    }

    fn journal_item(&self, keyset: &str, id: Ulid, blob: Vec<u8>) -> Item {
        let expires = chrono::Utc::now().timestamp() + JOURNAL_TTL_SECS;
        HashMap::from([
            (
                "ks".to_string(),
                s(journal_partition(keyset, id.random() % JOURNAL_PARTITIONS)),
            ),
            ("k".to_string(), s(id.to_string())),
            ("d".to_string(), AttributeValue::B(Blob::new(blob))),
            ("ttl".to_string(), n(expires)),
        ])
    }

    /// Moves the folded mark to `through`, never back (a fold that read less than one before
    /// it changes nothing).
    async fn mark_folded(&self, keyset: &str, through: Ulid) -> Result<(), StoreError> {
        let what = format!("marking the journal of {keyset} folded");
        let item = HashMap::from([
            ("ks".to_string(), s(marker_partition(keyset))),
            ("k".to_string(), s("f")),
            ("through".to_string(), s(through.to_string())),
        ]);
        self.meter.write(item_size(&item));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#t) OR #t < :t")
            .expression_attribute_names("#t", "through")
            .expression_attribute_values(":t", s(through.to_string()));
        match put.send().await {
            Ok(_) => Ok(()),
            Err(e) if lost_condition(&e) => Ok(()),
            Err(e) => Err(store_error(&what, e)),
        }
    }
}

fn shard_partition(keyset: &str, shard: u32) -> String {
    format!("{keyset}#p{shard:04}")
}

fn marker_partition(keyset: &str) -> String {
    format!("{keyset}#f")
}

fn journal_partition(keyset: &str, n: u128) -> String {
    format!("{keyset}#j{n}")
}

fn legacy_partition(keyset: &str, shard: u32) -> String {
    format!("{keyset}#{shard:04}")
}

fn bucket_key(id: u64) -> String {
    format!("b#{id:016x}")
}

fn bucket_id(sort_key: &str) -> Option<u64> {
    sort_key
        .strip_prefix("b#")
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
}

fn missing_bucket(partition: &str, id: u64) -> StoreError {
    StoreError::Other(format!(
        "corrupt key set: shard {partition} lists bucket {id} which is missing"
    ))
}

fn bucket_item(partition: &str, id: u64, blob: Vec<u8>) -> Item {
    HashMap::from([
        ("ks".to_string(), s(partition)),
        ("k".to_string(), s(bucket_key(id))),
        ("d".to_string(), AttributeValue::B(Blob::new(blob))),
    ])
}

/// The sort keys of `items` with their sizes, for [`DynamoKeySetStore::delete`].
fn sized_keys(items: &[Item]) -> Result<Vec<(String, usize)>, StoreError> {
    items
        .iter()
        .map(|item| Ok((get_s(item, "k")?.to_string(), item_size(item))))
        .collect()
}

fn parse_manifest(item: &Item) -> Result<Manifest, StoreError> {
    Manifest::decode(get_n(item, "v")?, get_n(item, "nx")?, get_b(item, "d")?)
}

/// The last change of each key in `journal`, by shard (`shards` long, each in key order), for
/// the shards `wanted` names: one pass over the journal however many shards are folded.
fn changes_by_shard(
    journal: &[JournalItem],
    shards: u32,
    wanted: impl Fn(u32) -> bool,
) -> Vec<Folded> {
    let mut out = vec![BTreeMap::new(); shards as usize];
    for item in journal {
        for (key, change) in &item.changes {
            let shard = shard_of(key, shards);
            if wanted(shard) {
                out[shard as usize].insert(key.clone(), *change);
            }
        }
    }
    out
}

/// A ULID sort key or attribute; anything else is a corrupt item.
fn parse_ulid(text: &str, what: &str) -> Result<Ulid, StoreError> {
    Ulid::from_string(text)
        .map_err(|_| StoreError::Other(format!("corrupt item: {what}: `{text}` is not a ULID")))
}

/// One item of the per-key layout.
fn parse_legacy_entry(item: &Item) -> Result<(String, KeyEntry), StoreError> {
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

/// Keys are refused plainly when empty or longer than the per-key layout took, rather than
/// stored where an older retl could not read them. The key itself is not quoted: it may be
/// personal.
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
        shards: u32,
    ) -> Result<Vec<(String, KeyEntry)>, StoreError> {
        let journal = self.journal(sync).await?;
        self.shard_entries(sync, shard, shards, &journal).await
    }

    /// Appends `changes` to the journal, in order, in as few items as their size allows.
    async fn apply(
        &self,
        sync: &str,
        _shards: u32,
        changes: &[KeyChange],
    ) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let what = format!("writing key set {sync}");
        let mut blobs = Vec::new();
        let mut w = BlobWriter::new();
        for c in changes {
            check_key(c.key())?;
            w.change(c);
            if w.raw_len() >= JOURNAL_BYTES {
                blobs.push(std::mem::replace(&mut w, BlobWriter::new()).finish());
            }
        }
        if w.raw_len() > 0 {
            blobs.push(w.finish());
        }
        // Ids after the folded mark, so a fold never passes over these changes.
        let floor = self.folded_through(sync).await?;
        let items = blobs
            .into_iter()
            .map(|blob| Ok((self.journal_item(sync, self.next_id(floor)?, blob), 0)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.put_all(items, &what).await
    }

    /// A shard's manifest count, or its entries counted when the journal or the per-key
    /// layout holds some of them.
    async fn counts(&self, sync: &str, shards: u32) -> Result<Vec<u64>, StoreError> {
        let journal = self.journal(sync).await?;
        let mut counts = Vec::with_capacity(shards as usize);
        for shard in 0..shards {
            let manifest = match journal.is_empty() {
                true => self.manifest(&shard_partition(sync, shard)).await?,
                false => None,
            };
            let n = match manifest {
                Some(m) => m.entries(),
                None => self
                    .shard_entries(sync, shard, shards, &journal)
                    .await?
                    .len() as u64,
            };
            counts.push(n);
        }
        Ok(counts)
    }

    /// Deletes every item of shards `0..shards` (both layouts) and the journal.
    async fn clear(&self, sync: &str, shards: u32) -> Result<(), StoreError> {
        let what = format!("clearing key set {sync}");
        for shard in 0..shards {
            self.delete_partition(&shard_partition(sync, shard), &what)
                .await?;
            self.delete_partition(&legacy_partition(sync, shard), &what)
                .await?;
        }
        for p in 0..JOURNAL_PARTITIONS {
            self.delete_partition(&journal_partition(sync, p), &what)
                .await?;
        }
        self.delete_partition(&marker_partition(sync), &what).await
    }

    /// Folds the journal into the shards' buckets, a few shards at a time, then marks it
    /// folded; shards still in the per-key layout are moved into buckets.
    async fn compact(&self, sync: &str, shards: u32) -> Result<(), StoreError> {
        let journal = self.journal(sync).await?;
        let folds = changes_by_shard(&journal, shards, |_| true)
            .into_iter()
            .zip(0..)
            .map(|(changes, shard)| self.fold_shard(sync, shard, changes));
        futures::stream::iter(folds)
            .buffer_unordered(FOLDS_IN_FLIGHT)
            .try_collect::<Vec<()>>()
            .await?;
        match journal.last() {
            Some(last) => self.mark_folded(sync, last.id).await,
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::buckets::BucketRef;
    use super::*;

    fn e() -> KeyEntry {
        KeyEntry {
            hash: 1,
            state: KeyState::Present,
            origin: KeyOrigin::Synced,
            updated_at: 1,
        }
    }

    /// A bucket split by a fold that stopped before rewriting it: the keys its new neighbour
    /// took over are read from the neighbour only.
    #[test]
    fn a_bucket_is_read_within_its_range() {
        let bucket = |id, first_key: &str| BucketRef {
            id,
            entries: 0,
            first_key: first_key.into(),
        };
        let manifest = Manifest {
            version: 2,
            next_id: 3,
            buckets: vec![bucket(0, "c"), bucket(1, "h"), bucket(2, "m")],
        };
        let entries = |keys: &[&str]| -> Vec<(String, KeyEntry)> {
            keys.iter().map(|k| ((*k).to_string(), e())).collect()
        };
        let keys = |v: Vec<(String, KeyEntry)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(
            keys(in_range(entries(&["a", "d", "h"]), &manifest, 0)),
            ["a", "d"]
        );
        assert_eq!(
            keys(in_range(entries(&["g", "h", "k", "m", "p"]), &manifest, 1)),
            ["h", "k"]
        );
        assert_eq!(
            keys(in_range(entries(&["l", "m", "z"]), &manifest, 2)),
            ["m", "z"]
        );
        assert_eq!(manifest.bucket_for("a"), 0);
        assert_eq!(manifest.bucket_for("k"), 1);
        assert_eq!(bucket_id(&bucket_key(0xabc)), Some(0xabc));
        assert_eq!(bucket_id("m"), None);
    }

    /// Journal ids grow in the order they are handed out and pass the folded mark even
    /// when it is ahead of this machine's clock.
    #[test]
    fn journal_ids_pass_the_folded_mark() {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .build();
        let ks = DynamoKeySetStore::new(aws_sdk_dynamodb::Client::from_conf(config), "t");
        let a = ks.next_id(None).unwrap();
        let b = ks.next_id(None).unwrap();
        assert!(b > a);
        let ahead = Ulid::from_parts(a.timestamp_ms() + 3_600_000, 0);
        let c = ks.next_id(Some(ahead)).unwrap();
        assert!(c > ahead);
        assert!(
            ks.next_id(None).unwrap() > c,
            "later ids follow, clock or not"
        );
    }
}
