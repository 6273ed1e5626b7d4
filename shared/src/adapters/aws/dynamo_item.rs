//! Building and reading DynamoDB items. Items come from the network, so every read checks
//! the attribute's presence and type and reports a corrupt item instead of panicking.

use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;

use crate::ports::StoreError;

/// One DynamoDB item.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// A string attribute.
pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A number attribute.
pub(crate) fn n(v: impl Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn corrupt(name: &str, problem: &str) -> StoreError {
    StoreError::Other(format!("corrupt item: attribute `{name}` {problem}"))
}

/// The string attribute `name`.
pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        Some(_) => Err(corrupt(name, "is not a string")),
        None => Err(corrupt(name, "is missing")),
    }
}

/// The number attribute `name`, parsed as `T`.
pub(crate) fn get_n<T: FromStr>(item: &Item, name: &str) -> Result<T, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| corrupt(name, &format!("holds `{v}`, out of range"))),
        Some(_) => Err(corrupt(name, "is not a number")),
        None => Err(corrupt(name, "is missing")),
    }
}

/// The binary attribute `name`.
pub(crate) fn get_b<'a>(item: &'a Item, name: &str) -> Result<&'a [u8], StoreError> {
    match item.get(name) {
        Some(AttributeValue::B(v)) => Ok(v.as_ref()),
        Some(_) => Err(corrupt(name, "is not binary")),
        None => Err(corrupt(name, "is missing")),
    }
}

/// The JSON document in the string attribute `body`.
pub(crate) fn get_body<T: serde::de::DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    serde_json::from_str(get_s(item, "body")?)
        .map_err(|e| StoreError::Other(format!("corrupt state record: {e}")))
}

/// `v` as JSON text for a `body` attribute.
pub(crate) fn body<T: serde::Serialize>(v: &T) -> Result<AttributeValue, StoreError> {
    serde_json::to_string(v)
        .map(AttributeValue::S)
        .map_err(|e| StoreError::Other(e.to_string()))
}

/// Whether a conditional write failed its condition (another writer got there first).
pub(crate) fn lost_condition<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    err.as_service_error()
        .is_some_and(|e| e.code() == Some("ConditionalCheckFailedException"))
}
