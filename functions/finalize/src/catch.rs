//! The error a state machine `Catch` hands to finalize (`ResultPath: $.error`), read into the
//! name and message recorded on the run.

use serde::{Deserialize, Serialize};

/// The name recorded when a Catch carries none.
pub const UNNAMED_ERROR: &str = "Retl.Error";

/// A Catch's error: `{"Error": name, "Cause": text}`. Either part may be null (a task failure
/// sent without a cause).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepError {
    /// The error name (`Retl.*` from the functions, `States.*` from Step Functions).
    #[serde(rename = "Error", default)]
    pub error: Option<String>,
    /// The cause: for a Lambda error, its JSON `{"errorType", "errorMessage"}`.
    #[serde(rename = "Cause", default)]
    pub cause: Option<String>,
}

/// The cause a Lambda function's error carries.
#[derive(Deserialize)]
struct LambdaErrorCause {
    #[serde(rename = "errorMessage")]
    error_message: String,
}

impl StepError {
    /// The name and the readable message to record on the run.
    pub fn failure(&self) -> (String, String) {
        let name = self.error.clone().unwrap_or_else(|| UNNAMED_ERROR.into());
        (name, self.message())
    }

    /// The Lambda error's message when the cause is one, else the cause as it is, else the
    /// error name.
    fn message(&self) -> String {
        let cause = self.cause.clone().unwrap_or_default();
        match serde_json::from_str::<LambdaErrorCause>(&cause) {
            Ok(lambda) => lambda.error_message,
            Err(_) if cause.is_empty() => self.error.clone().unwrap_or_default(),
            Err(_) => cause,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn step_error(v: serde_json::Value) -> StepError {
        serde_json::from_value(v).expect("a Catch error")
    }

    #[test]
    fn a_lambda_error_is_recorded_with_its_own_message() {
        let e = step_error(json!({
            "Error": "Retl.SourceUnavailable",
            "Cause": "{\"errorType\":\"Retl.SourceUnavailable\",\"errorMessage\":\"connection refused\"}"
        }));
        assert_eq!(
            e.failure(),
            ("Retl.SourceUnavailable".into(), "connection refused".into())
        );
    }

    #[test]
    fn other_causes_are_kept_as_they_are_and_missing_parts_are_filled_in() {
        let states = step_error(json!({"Error": "States.Timeout", "Cause": "the task timed out"}));
        assert_eq!(
            states.failure(),
            ("States.Timeout".into(), "the task timed out".into())
        );
        let no_cause = step_error(json!({"Error": "Retl.StalePlan", "Cause": null}));
        assert_eq!(
            no_cause.failure(),
            ("Retl.StalePlan".into(), "Retl.StalePlan".into())
        );
        let nothing = step_error(json!({}));
        assert_eq!(nothing.failure(), ("Retl.Error".into(), String::new()));
    }
}
