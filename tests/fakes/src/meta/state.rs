//! The Meta fake's shared state, the Graph error envelope, and how its guard answers:
//! throttling as HTTP 400 with a throttling `code`, and `X-Business-Use-Case-Usage`
//! (<https://developers.facebook.com/docs/graph-api/guides/error-handling>,
//! <https://developers.facebook.com/docs/graph-api/overview/rate-limiting>).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{MetaConfig, SessionRecord};
use crate::faults::{Faults, RateInfo, Throttle};
use crate::guard::Guarded;
use crate::log::RequestLog;
use crate::rules::Rule;
use crate::util::alnum;

/// One matched person: canonical key -> identifier.
pub(crate) type Member = BTreeMap<String, String>;

/// Keys that name a person on their own; the others (names, birth dates, places) only
/// qualify a match.
const IDENTIFYING: [&str; 6] = ["EMAIL", "PHONE", "MADID", "EXTERN_ID", "UID", "APPUID"];

/// Members and upload sessions of one audience.
#[derive(Debug, Default)]
pub(crate) struct Audience {
    /// Members by an internal number.
    pub members: BTreeMap<u64, Member>,
    /// Identifying (key, value) -> the members holding it, so that large uploads match fast.
    index: HashMap<(String, String), BTreeSet<u64>>,
    next: u64,
    pub sessions: Vec<SessionRecord>,
}

impl Audience {
    /// The members `row` describes: those sharing an identifying value with it, or, for a
    /// row without one, those holding every value of the row.
    fn matching(&self, row: &Member) -> BTreeSet<u64> {
        let strong: Vec<(String, String)> = row
            .iter()
            .filter(|(k, _)| IDENTIFYING.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if strong.is_empty() {
            return self
                .members
                .iter()
                .filter(|(_, m)| row.iter().all(|(k, v)| m.get(k) == Some(v)))
                .map(|(id, _)| *id)
                .collect();
        }
        strong
            .iter()
            .filter_map(|kv| self.index.get(kv))
            .flatten()
            .copied()
            .collect()
    }

    fn drop_member(&mut self, id: u64) {
        let Some(member) = self.members.remove(&id) else {
            return;
        };
        for kv in member.into_iter() {
            if let Some(ids) = self.index.get_mut(&kv) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.index.remove(&kv);
                }
            }
        }
    }

    /// Adds a row: it replaces the members it matches (the upload is the person's current
    /// data), else it becomes a new member.
    pub(crate) fn add(&mut self, row: Member) {
        for id in self.matching(&row) {
            self.drop_member(id);
        }
        let id = self.next;
        self.next += 1;
        for (k, v) in &row {
            if IDENTIFYING.contains(&k.as_str()) {
                self.index
                    .entry((k.clone(), v.clone()))
                    .or_default()
                    .insert(id);
            }
        }
        self.members.insert(id, row);
    }

    /// Removes the members a row matches, with all their identifiers.
    pub(crate) fn remove(&mut self, row: &Member) {
        for id in self.matching(row) {
            self.drop_member(id);
        }
    }

    /// Identifiers per key over all members.
    pub(crate) fn by_key(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for m in self.members.values() {
            for (k, v) in m {
                out.entry(k.clone()).or_default().insert(v.clone());
            }
        }
        out
    }
}

pub(crate) struct MtState {
    pub config: Mutex<MetaConfig>,
    pub audiences: Mutex<BTreeMap<String, Audience>>,
    pub rules: Mutex<Vec<Rule>>,
    pub faults: Faults,
    pub log: RequestLog,
}

impl MtState {
    pub(crate) fn config(&self) -> MetaConfig {
        self.config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn audiences(&self) -> MutexGuard<'_, BTreeMap<String, Audience>> {
        self.audiences.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn rules(&self) -> Vec<Rule> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// One Graph error answer.
pub(crate) struct GraphError<'a> {
    pub status: StatusCode,
    pub message: &'a str,
    pub kind: &'a str,
    pub code: u32,
    pub subcode: Option<u32>,
    pub transient: bool,
}

impl GraphError<'_> {
    /// 400 `OAuthException` with `code` (most errors of this API).
    pub(crate) fn bad(message: &str, code: u32) -> GraphError<'_> {
        GraphError {
            status: StatusCode::BAD_REQUEST,
            message,
            kind: "OAuthException",
            code,
            subcode: None,
            transient: false,
        }
    }

    /// `{"error": {message, type, code, error_subcode?, is_transient, fbtrace_id}}`.
    pub(crate) fn response(&self) -> Response {
        let mut error = json!({
            "message": self.message,
            "type": self.kind,
            "code": self.code,
            "is_transient": self.transient,
            "fbtrace_id": alnum(11),
        });
        if let Some(sub) = self.subcode {
            error["error_subcode"] = json!(sub);
        }
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}

impl Guarded for MtState {
    fn faults(&self) -> &Faults {
        &self.faults
    }

    fn log(&self) -> &RequestLog {
        &self.log
    }

    fn throttled(&self, _throttle: &Throttle) -> Response {
        let t = self.config().throttle;
        GraphError {
            status: StatusCode::BAD_REQUEST,
            message: &t.message,
            kind: "OAuthException",
            code: t.code,
            subcode: t.subcode,
            transient: true,
        }
        .response()
    }

    fn server_error(&self, status: StatusCode) -> Response {
        let (code, message) = if status == StatusCode::SERVICE_UNAVAILABLE {
            (2, "Service temporarily unavailable")
        } else {
            (1, "An unknown error occurred")
        };
        GraphError {
            status,
            message,
            kind: "OAuthException",
            code,
            subcode: None,
            transient: true,
        }
        .response()
    }

    /// `X-Business-Use-Case-Usage: {"<ad account>": [{"type": "custom_audience",
    /// "call_count": %, "total_cputime": %, "total_time": %, "estimated_time_to_regain_access": min}]}`.
    fn decorate(&self, info: Option<&RateInfo>, resp: &mut Response) {
        let Some(info) = info else {
            return;
        };
        let used = u64::from(info.limit - info.remaining);
        let pct = (used * 100)
            .checked_div(u64::from(info.limit))
            .unwrap_or(100);
        let regain = if info.remaining == 0 {
            info.reset_in.as_secs().div_ceil(60)
        } else {
            0
        };
        let usage = json!({
            self.config().ad_account_id: [{
                "type": "custom_audience",
                "call_count": pct,
                "total_cputime": pct,
                "total_time": pct,
                "estimated_time_to_regain_access": regain,
            }]
        });
        if let Ok(v) = HeaderValue::from_str(&usage.to_string()) {
            resp.headers_mut().insert("x-business-use-case-usage", v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, &str)]) -> Member {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn rows_replace_and_remove_the_people_they_identify() {
        let mut a = Audience::default();
        a.add(row(&[("EMAIL", "e1"), ("FN", "john")]));
        a.add(row(&[("EMAIL", "e2"), ("FN", "john")]));
        a.add(row(&[("EMAIL", "e1"), ("FN", "jon")]));
        assert_eq!(a.members.len(), 2, "e1 was replaced, not added");
        assert_eq!(
            a.by_key()["FN"],
            ["john", "jon"].iter().map(|s| s.to_string()).collect()
        );
        a.remove(&row(&[("EMAIL", "e2")]));
        assert_eq!(
            a.by_key(),
            BTreeMap::from([
                ("EMAIL".to_string(), BTreeSet::from(["e1".to_string()])),
                ("FN".to_string(), BTreeSet::from(["jon".to_string()])),
            ])
        );
        a.add(row(&[("FN", "ann"), ("ZIP", "z")]));
        a.remove(&row(&[("FN", "ann")]));
        assert_eq!(
            a.members.len(),
            1,
            "a row without identifiers matches on all its values"
        );
    }
}
