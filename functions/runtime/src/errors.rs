//! Errors as Step Functions sees them: a `Diagnostic` whose `errorType` is a stable `Retl.*`
//! name. Payloads are parsed here rather than by the Lambda runtime, whose own parse error is
//! named after a Rust type (`&lambda_runtime::deserializer::DeserializeError`), which is not a
//! name anyone should match on.

use lambda_runtime::Diagnostic;
use retl_shared::engine::EngineError;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The `errorType` of a payload the function cannot act on. Never retried by the state
/// machine: the same payload fails the same way.
pub const BAD_REQUEST: &str = "Retl.BadRequest";

/// A payload the function cannot act on.
pub fn bad_request(message: impl Into<String>) -> Diagnostic {
    Diagnostic {
        error_type: BAD_REQUEST.into(),
        error_message: message.into(),
    }
}

/// The engine's error as Step Functions sees it: `errorType` is its stable name (`Retl.*`).
pub fn diagnostic(e: EngineError) -> Diagnostic {
    tracing::error!(error_name = e.error_name(), error = %e, "step failed");
    Diagnostic {
        error_type: e.error_name().to_string(),
        error_message: e.to_string(),
    }
}

/// The payload as the function's typed request; anything else is a `Retl.BadRequest` that
/// says what was wrong.
pub fn parse<T: DeserializeOwned>(payload: Value) -> Result<T, Diagnostic> {
    serde_json::from_value(payload).map_err(|e| bad_request(format!("bad request: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RunEvent;
    use retl_shared::ports::StoreError;
    use serde_json::json;

    #[test]
    fn a_payload_that_fits_is_parsed_into_the_request() {
        let event: RunEvent = parse(json!({"run_id": "r1", "sync": "people"})).unwrap();
        assert_eq!(
            event,
            RunEvent {
                run_id: "r1".into(),
                sync: "people".into()
            }
        );
    }

    #[test]
    fn a_payload_that_does_not_fit_is_a_bad_request_naming_the_field() {
        let err = parse::<RunEvent>(json!({"run_id": "r1"})).unwrap_err();
        assert_eq!(err.error_type, "Retl.BadRequest");
        assert!(
            err.error_message.contains("`sync`"),
            "{}",
            err.error_message
        );
        let err = parse::<RunEvent>(json!({"run_id": 7, "sync": "s"})).unwrap_err();
        assert_eq!(err.error_type, "Retl.BadRequest");
        assert!(
            err.error_message.contains("invalid type"),
            "{}",
            err.error_message
        );
    }

    #[test]
    fn engine_errors_keep_their_stable_names() {
        let cases = [
            (
                EngineError::Store(StoreError::NotFound("sync x".into())),
                "Retl.NotFound",
            ),
            (
                EngineError::Store(StoreError::Unavailable("throttled".into())),
                "Retl.StoreUnavailable",
            ),
            (EngineError::Paused("x".into()), "Retl.Paused"),
            (EngineError::Corrupt("bad json".into()), "Retl.CorruptData"),
        ];
        for (e, name) in cases {
            let message = e.to_string();
            let d = diagnostic(e);
            assert_eq!(d.error_type, name);
            assert_eq!(d.error_message, message);
        }
    }
}
