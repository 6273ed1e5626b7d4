//! The request log every fake keeps, so tests can assert what a connector sent (how many
//! requests, which answers, how many records each batch carried).

use std::sync::{Arc, Mutex};

/// One request as the fake saw and answered it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRequest {
    /// HTTP method, upper case.
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Status answered.
    pub status: u16,
    /// Records (inputs, rows, identifiers) the request carried, when a handler parsed a
    /// batch; `None` for requests refused before that (faults, auth) or without a batch.
    pub records_in_batch: Option<usize>,
}

/// Response extension through which a handler reports the size of the batch it parsed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BatchSize(pub usize);

/// Shared, append-only list of [`LoggedRequest`]s.
#[derive(Clone, Debug, Default)]
pub(crate) struct RequestLog(Arc<Mutex<Vec<LoggedRequest>>>);

impl RequestLog {
    pub(crate) fn push(&self, entry: LoggedRequest) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(entry);
    }

    pub(crate) fn all(&self) -> Vec<LoggedRequest> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
