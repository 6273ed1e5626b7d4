//! Deployed sync definitions: one item per sync in the config table, holding the validated
//! definition and the connections it uses (secrets stay in Secrets Manager, by name).

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use crate::adapters::aws::error::store_error;
use crate::config::SyncDef;
use crate::connectors::ConnectionConfig;
use crate::ports::StoreError;

const PK: &str = "SYNC";

/// A sync as deployed: its definition and its two connections.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployedSync {
    /// The definition.
    pub def: SyncDef,
    /// The source and destination connections, by name.
    pub connections: BTreeMap<String, ConnectionConfig>,
    /// Config hash at deploy time.
    pub config_hash: String,
    /// When deployed (RFC 3339).
    pub deployed_at: String,
}

/// The config table (`pk` = `SYNC`, `sk` = sync name, `body` = JSON).
#[derive(Debug, Clone)]
pub struct ConfigTable {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl ConfigTable {
    /// The table `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        ConfigTable {
            client,
            table: table.into(),
        }
    }

    /// Writes (or replaces) a deployed sync.
    pub async fn put(&self, sync: &DeployedSync) -> Result<(), StoreError> {
        let body = serde_json::to_string(sync).map_err(|e| StoreError::Other(e.to_string()))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(PK.into()))
            .item("sk", AttributeValue::S(sync.def.name.clone()))
            .item("body", AttributeValue::S(body))
            .send()
            .await
            .map_err(|e| store_error("writing a sync definition", e))?;
        Ok(())
    }

    /// One deployed sync.
    pub async fn get(&self, name: &str) -> Result<DeployedSync, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(PK.into()))
            .key("sk", AttributeValue::S(name.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("reading a sync definition", e))?;
        let item = out.item.ok_or_else(|| {
            StoreError::NotFound(format!(
                "sync `{name}` (deploy it with `retl deploy --aws`)"
            ))
        })?;
        parse(&item)
    }

    /// Every deployed sync.
    pub async fn list(&self) -> Result<Vec<DeployedSync>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(PK.into()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("listing sync definitions", e))?;
            for item in page.items.unwrap_or_default() {
                out.push(parse(&item)?);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Removes a deployed sync.
    pub async fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(PK.into()))
            .key("sk", AttributeValue::S(name.to_string()))
            .send()
            .await
            .map_err(|e| store_error("deleting a sync definition", e))?;
        Ok(())
    }
}

fn parse(
    item: &std::collections::HashMap<String, AttributeValue>,
) -> Result<DeployedSync, StoreError> {
    let body = item
        .get("body")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| StoreError::Other("sync definition item without body".into()))?;
    serde_json::from_str(body)
        .map_err(|e| StoreError::Other(format!("corrupt sync definition: {e}")))
}
