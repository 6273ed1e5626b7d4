//! The task token of each run waiting for approval, in the approval-tokens table (`run` = run
//! id, `token`, `execution` = the automation execution asking its approvers, `expires` = a
//! DynamoDB TTL). Only the approval function's role is granted this table, so reading run
//! records (or the runs table) never gives anyone what resumes an execution.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use crate::adapters::aws::error::store_error;
use crate::ports::StoreError;

/// A waiting run's token and the automation execution that asks for its approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingToken {
    /// The Step Functions task token of the waiting execution.
    pub token: String,
    /// The automation execution started for it, once started.
    pub execution: Option<String>,
}

/// The approval-tokens table.
#[derive(Debug, Clone)]
pub struct ApprovalTokens {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl ApprovalTokens {
    /// The table `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        ApprovalTokens {
            client,
            table: table.into(),
        }
    }

    /// Stores (or replaces: a retried request brings a new token) the token of `run_id`,
    /// kept until a day after `expires`.
    pub async fn put(
        &self,
        run_id: &str,
        waiting: &WaitingToken,
        expires: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let ttl = (expires + chrono::Duration::days(1)).timestamp();
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("run", AttributeValue::S(run_id.to_string()))
            .item("token", AttributeValue::S(waiting.token.clone()))
            .item("expires", AttributeValue::N(ttl.to_string()));
        if let Some(execution) = &waiting.execution {
            put = put.item("execution", AttributeValue::S(execution.clone()));
        }
        put.send()
            .await
            .map_err(|e| store_error(&format!("store the task token of run {run_id}"), e))?;
        Ok(())
    }

    /// The token of `run_id`, if it waits.
    pub async fn get(&self, run_id: &str) -> Result<Option<WaitingToken>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("run", AttributeValue::S(run_id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(&format!("read the task token of run {run_id}"), e))?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        let text = |name: &str| match item.get(name) {
            Some(AttributeValue::S(s)) => Some(s.clone()),
            _ => None,
        };
        let token = text("token").ok_or_else(|| {
            StoreError::Other(format!(
                "the task token item of run {run_id} holds no token"
            ))
        })?;
        Ok(Some(WaitingToken {
            token,
            execution: text("execution"),
        }))
    }

    /// Forgets the token of `run_id` (its execution took the decision).
    pub async fn delete(&self, run_id: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("run", AttributeValue::S(run_id.to_string()))
            .send()
            .await
            .map_err(|e| store_error(&format!("forget the task token of run {run_id}"), e))?;
        Ok(())
    }
}
