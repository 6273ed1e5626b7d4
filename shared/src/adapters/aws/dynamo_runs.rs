//! Runs, locks, sync state and config versions in one DynamoDB table (`pk` S, `sk` S).
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | run | `RUN#{run_id}` | `RUN` | `sync`, `body` (the run as JSON) |
//! | run, listed by sync | `SYNC#{sync}` | `RUN#{run_id}` | `body` |
//! | run, listed across syncs | `RUNS` | `{run_id}` | `body` |
//! | lock | `SYNC#{sync}` | `LOCK` | `sync`, `run_id`, `owner`, `acquired_at`, `heartbeat_at` |
//! | sync state | `SYNC#{sync}` | `STATE` | `body` |
//! | config version | `SYNC#{sync}` | `VERSION#{version:06}` | `body` |
//!
//! Starting a run writes the lock and the run's three items in one `TransactWriteItems`
//! conditioned on the lock (free, or held by the run for a takeover), so the lock is never
//! seen without its run.
//!
//! Run ids sort by time, so listings are Queries in descending sort-key order. The listing
//! copies avoid GSIs, whose reads are only eventually consistent. Runs are few (one per sync
//! per schedule tick), so the single `RUNS` partition stays far below DynamoDB's limits.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, PutRequest, TransactWriteItem, Update, WriteRequest,
};
use chrono::{DateTime, Utc};

use super::dynamo_batch::batch_write;
use super::dynamo_item::{body, get_body, get_s, lost_condition, s, Item};
use super::error::{build_error, store_error};
use crate::config::SyncDef;
use crate::ports::{
    ConfigVersion, LockInfo, LockOutcome, RunRecord, RunStore, StoreError, SyncState,
};

/// Rounds of "write conditionally, re-read on conflict" before reporting a conflict.
const CONDITIONAL_ATTEMPTS: usize = 5;

/// A [`RunStore`] on one DynamoDB table (layout in the module docs).
#[derive(Debug, Clone)]
pub struct DynamoRunStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

fn sync_pk(sync: &str) -> String {
    format!("SYNC#{sync}")
}

fn key(pk: String, sk: impl Into<String>) -> Item {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

fn item(pk: String, sk: impl Into<String>, attrs: Vec<(&str, AttributeValue)>) -> Item {
    let mut item = key(pk, sk);
    item.extend(attrs.into_iter().map(|(k, v)| (k.to_string(), v)));
    item
}

/// The run's item and its two listing copies.
fn run_items(run: &RunRecord) -> Result<[Item; 3], StoreError> {
    let b = body(run)?;
    Ok([
        item(
            format!("RUN#{}", run.run_id),
            "RUN",
            vec![("sync", s(&run.sync)), ("body", b.clone())],
        ),
        item(
            sync_pk(&run.sync),
            format!("RUN#{}", run.run_id),
            vec![("body", b.clone())],
        ),
        item("RUNS".into(), &run.run_id, vec![("body", b)]),
    ])
}

/// How a conditional transaction ended.
enum Transact {
    /// Every item was written.
    Written,
    /// The lock's condition failed: nothing was written.
    ConditionFailed,
    /// Another transaction touched the same items at once: nothing was written; try again.
    Conflict,
}

fn parse_time(item: &Item, name: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(get_s(item, name)?)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| StoreError::Other(format!("corrupt item: attribute `{name}`: {e}")))
}

fn parse_lock(item: &Item) -> Result<LockInfo, StoreError> {
    Ok(LockInfo {
        sync: get_s(item, "sync")?.to_string(),
        run_id: get_s(item, "run_id")?.to_string(),
        owner: get_s(item, "owner")?.to_string(),
        acquired_at: parse_time(item, "acquired_at")?,
        heartbeat_at: parse_time(item, "heartbeat_at")?,
    })
}

impl DynamoRunStore {
    /// A store on `table`, which must exist with string keys `pk` and `sk`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoRunStore {
            client,
            table: table.into(),
        }
    }

    /// One item, read strongly consistent (a lock or state just written must be seen).
    async fn get_item(&self, key: Item, what: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(what, e))?;
        Ok(out.item)
    }

    async fn put_item(&self, item: Item, what: &str) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| store_error(what, e))?;
        Ok(())
    }

    /// Writes `item` only if no item has its key; false if one does.
    async fn put_new(&self, item: Item, what: &str) -> Result<bool, StoreError> {
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if lost_condition(&e) => Ok(false),
            Err(e) => Err(store_error(what, e)),
        }
    }

    /// Bodies of the items of partition `pk` whose sort key starts with `prefix` (any when
    /// `None`), in sort-key order (descending when `newest_first`), at most `limit`.
    async fn query_bodies<T: serde::de::DeserializeOwned>(
        &self,
        pk: String,
        prefix: Option<&str>,
        newest_first: bool,
        limit: usize,
        what: &str,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        while out.len() < limit {
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":pk", s(pk.clone()))
                .scan_index_forward(!newest_first)
                // No limit past i32: the query then pages through everything.
                .set_limit(i32::try_from(limit - out.len()).ok())
                .consistent_read(true)
                .set_exclusive_start_key(start.take());
            let query = match prefix {
                Some(p) => query
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":prefix", s(p)),
                None => query.key_condition_expression("pk = :pk"),
            };
            let page = query.send().await.map_err(|e| store_error(what, e))?;
            for item in page.items() {
                out.push(get_body(item)?);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Writes `lock` (a conditional lock write) and `run`'s items in one transaction.
    async fn transact(
        &self,
        lock: TransactWriteItem,
        run: &RunRecord,
        what: &str,
    ) -> Result<Transact, StoreError> {
        let mut items = vec![lock];
        for i in run_items(run)? {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(i))
                .build()
                .map_err(|e| build_error(what, e))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        let res = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let err = match res {
            Ok(_) => return Ok(Transact::Written),
            Err(e) => e,
        };
        if let Some(TransactWriteItemsError::TransactionCanceledException(c)) =
            err.as_service_error()
        {
            // The first reason is the lock's (its item comes first).
            let first = c.cancellation_reasons().first().and_then(|r| r.code());
            let message = c.message().unwrap_or_default();
            if first == Some("ConditionalCheckFailed")
                || (first.is_none() && message.contains("ConditionalCheckFailed"))
            {
                return Ok(Transact::ConditionFailed);
            }
            let conflict = c
                .cancellation_reasons()
                .iter()
                .any(|r| r.code() == Some("TransactionConflict"));
            if conflict || message.contains("TransactionConflict") {
                return Ok(Transact::Conflict);
            }
        }
        Err(store_error(what, err))
    }

    fn version_item(v: &ConfigVersion) -> Result<Item, StoreError> {
        Ok(item(
            sync_pk(&v.sync),
            format!("VERSION#{:06}", v.version),
            vec![("body", body(v)?)],
        ))
    }
}

#[async_trait]
impl RunStore for DynamoRunStore {
    /// Re-starting the run that holds the lock succeeds and rewrites its record, as locally.
    async fn lock_and_start(
        &self,
        run: &RunRecord,
        owner: &str,
    ) -> Result<LockOutcome, StoreError> {
        let what = format!("starting run {} of sync {}", run.run_id, run.sync);
        let now = s(Utc::now().to_rfc3339());
        let lock = item(
            sync_pk(&run.sync),
            "LOCK",
            vec![
                ("sync", s(&run.sync)),
                ("run_id", s(&run.run_id)),
                ("owner", s(owner)),
                ("acquired_at", now.clone()),
                ("heartbeat_at", now),
            ],
        );
        let take = Put::builder()
            .table_name(&self.table)
            .set_item(Some(lock))
            .condition_expression("attribute_not_exists(pk) OR #run = :run")
            .expression_attribute_names("#run", "run_id")
            .expression_attribute_values(":run", s(&run.run_id))
            .build()
            .map_err(|e| build_error(&what, e))?;
        let take = TransactWriteItem::builder().put(take).build();
        for _ in 0..CONDITIONAL_ATTEMPTS {
            match self.transact(take.clone(), run, &what).await? {
                Transact::Written => return Ok(LockOutcome::Acquired),
                Transact::Conflict => continue,
                Transact::ConditionFailed => {}
            }
            match self.lock_holder(&run.sync).await? {
                Some(holder) if holder.run_id != run.run_id => {
                    return Ok(LockOutcome::Held(holder))
                }
                // Released (or ours) between our write and our read: try again.
                _ => continue,
            }
        }
        Err(StoreError::Conflict(format!(
            "the lock of sync `{}` kept changing hands",
            run.sync
        )))
    }

    async fn take_over_and_start(
        &self,
        from_run: &str,
        run: &RunRecord,
        owner: &str,
    ) -> Result<bool, StoreError> {
        let what = format!("taking over the lock of sync {}", run.sync);
        let now = s(Utc::now().to_rfc3339());
        let take = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(sync_pk(&run.sync), "LOCK")))
            .update_expression("SET #run = :to, #owner = :owner, #acq = :now, #hb = :now")
            .condition_expression("#run = :from")
            .expression_attribute_names("#run", "run_id")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#acq", "acquired_at")
            .expression_attribute_names("#hb", "heartbeat_at")
            .expression_attribute_values(":to", s(&run.run_id))
            .expression_attribute_values(":from", s(from_run))
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":now", now)
            .build()
            .map_err(|e| build_error(&what, e))?;
        let take = TransactWriteItem::builder().update(take).build();
        for _ in 0..CONDITIONAL_ATTEMPTS {
            match self.transact(take.clone(), run, &what).await? {
                Transact::Written => return Ok(true),
                Transact::ConditionFailed => return Ok(false),
                Transact::Conflict => continue,
            }
        }
        Err(StoreError::Conflict(format!(
            "{what}: other writers kept the lock busy"
        )))
    }

    async fn heartbeat(&self, sync: &str, run_id: &str) -> Result<bool, StoreError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(sync_pk(sync), "LOCK")))
            .update_expression("SET #hb = :now")
            .condition_expression("#run = :run")
            .expression_attribute_names("#run", "run_id")
            .expression_attribute_names("#hb", "heartbeat_at")
            .expression_attribute_values(":run", s(run_id))
            .expression_attribute_values(":now", s(Utc::now().to_rfc3339()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if lost_condition(&e) => Ok(false),
            Err(e) => Err(store_error(&format!("heartbeat of sync {sync}"), e)),
        }
    }

    /// A no-op when `run_id` does not hold the lock, as locally.
    async fn unlock(&self, sync: &str, run_id: &str) -> Result<(), StoreError> {
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(sync_pk(sync), "LOCK")))
            .condition_expression("#run = :run")
            .expression_attribute_names("#run", "run_id")
            .expression_attribute_values(":run", s(run_id))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if lost_condition(&e) => Ok(()),
            Err(e) => Err(store_error(&format!("unlocking sync {sync}"), e)),
        }
    }

    async fn lock_holder(&self, sync: &str) -> Result<Option<LockInfo>, StoreError> {
        self.get_item(
            key(sync_pk(sync), "LOCK"),
            &format!("reading the lock of sync {sync}"),
        )
        .await?
        .as_ref()
        .map(parse_lock)
        .transpose()
    }

    /// Writes the run and its two listing copies in one BatchWriteItem.
    async fn put_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        let what = format!("writing run {}", run.run_id);
        let requests = run_items(run)?
            .into_iter()
            .map(|i| {
                PutRequest::builder()
                    .set_item(Some(i))
                    .build()
                    .map(|p| WriteRequest::builder().put_request(p).build())
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| build_error(&what, e))?;
        batch_write(&self.client, &self.table, requests, &what).await
    }

    async fn get_run(&self, run_id: &str) -> Result<RunRecord, StoreError> {
        let found = self
            .get_item(
                key(format!("RUN#{run_id}"), "RUN"),
                &format!("reading run {run_id}"),
            )
            .await?;
        match found {
            Some(item) => get_body(&item),
            None => Err(StoreError::NotFound(format!("run {run_id}"))),
        }
    }

    async fn list_runs(
        &self,
        sync: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError> {
        match sync {
            Some(sync) => {
                self.query_bodies(sync_pk(sync), Some("RUN#"), true, limit, "listing runs")
                    .await
            }
            None => {
                self.query_bodies("RUNS".into(), None, true, limit, "listing runs")
                    .await
            }
        }
    }

    async fn sync_state(&self, sync: &str) -> Result<SyncState, StoreError> {
        let found = self
            .get_item(
                key(sync_pk(sync), "STATE"),
                &format!("reading the state of sync {sync}"),
            )
            .await?;
        match found {
            Some(item) => get_body(&item),
            None => Ok(SyncState {
                sync: sync.to_string(),
                ..SyncState::default()
            }),
        }
    }

    async fn put_sync_state(&self, state: &SyncState) -> Result<(), StoreError> {
        let item = item(sync_pk(&state.sync), "STATE", vec![("body", body(state)?)]);
        self.put_item(item, &format!("writing the state of sync {}", state.sync))
            .await
    }

    /// Safe against concurrent callers: a new version is written only if its number is free;
    /// the loser re-reads and either finds its definition recorded or takes the next number.
    async fn record_version(
        &self,
        def: &SyncDef,
        note: Option<&str>,
        deployed_by: Option<&str>,
    ) -> Result<ConfigVersion, StoreError> {
        let what = format!("recording a version of sync {}", def.name);
        let hash = def.config_hash();
        for _ in 0..CONDITIONAL_ATTEMPTS {
            let latest: Option<ConfigVersion> = self
                .query_bodies(sync_pk(&def.name), Some("VERSION#"), true, 1, &what)
                .await?
                .pop();
            if let Some(v) = latest.as_ref().filter(|v| v.config_hash == hash) {
                if note.is_none() {
                    return Ok(v.clone());
                }
                // Same definition saved again with a note: keep the note on the version.
                let mut v = v.clone();
                v.note = note.map(str::to_string);
                if let Some(by) = deployed_by {
                    v.deployed_by = Some(by.to_string());
                }
                self.put_item(Self::version_item(&v)?, &what).await?;
                return Ok(v);
            }
            let v = ConfigVersion {
                sync: def.name.clone(),
                version: latest.map_or(1, |v| v.version + 1),
                config_hash: hash.clone(),
                definition: def.clone(),
                note: note.map(str::to_string),
                deployed_by: deployed_by.map(str::to_string),
                created_at: Utc::now(),
            };
            if self.put_new(Self::version_item(&v)?, &what).await? {
                return Ok(v);
            }
        }
        Err(StoreError::Conflict(format!(
            "{what}: other writers kept taking the next version number"
        )))
    }

    async fn versions(&self, sync: &str) -> Result<Vec<ConfigVersion>, StoreError> {
        self.query_bodies(
            sync_pk(sync),
            Some("VERSION#"),
            false,
            usize::MAX,
            &format!("listing versions of sync {sync}"),
        )
        .await
    }
}
