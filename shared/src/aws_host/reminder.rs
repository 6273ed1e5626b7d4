//! The reminder of a run waiting for approval: a one-time EventBridge Scheduler schedule
//! (`remind-<run id>` in the stack's group, deleted by Scheduler once it ran) that invokes the
//! approval function with `{"action": "remind", "run_id"}` before the request expires.

use aws_sdk_scheduler::types::{
    ActionAfterCompletion, FlexibleTimeWindow, FlexibleTimeWindowMode, Target,
};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::host::AwsHost;

/// A wait shorter than this gets no reminder: the request itself is recent enough.
const SHORTEST_REMINDED_WAIT_MINUTES: i64 = 30;

/// When to remind the approvers of a request made at `requested` that expires at `expires`:
/// when three quarters of the wait have passed, and at least 10 minutes before it expires.
pub fn reminder_time(requested: DateTime<Utc>, expires: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let wait = expires - requested;
    if wait < Duration::minutes(SHORTEST_REMINDED_WAIT_MINUTES) {
        return None;
    }
    let at = requested + wait * 3 / 4;
    Some(at.min(expires - Duration::minutes(10)))
}

/// The schedule's name for `run_id`.
pub fn reminder_name(run_id: &str) -> String {
    format!("remind-{run_id}")
}

/// Creates the reminder of `run_id` at `at` (an existing one, from a retried request, is kept).
pub async fn schedule_reminder(
    host: &AwsHost,
    run_id: &str,
    at: DateTime<Utc>,
) -> Result<(), String> {
    let target = Target::builder()
        .arn(&host.names.approval_function_arn)
        .role_arn(&host.names.scheduler_role_arn)
        .input(json!({"action": "remind", "run_id": run_id}).to_string())
        .build()
        .map_err(|e| e.to_string())?;
    let window = FlexibleTimeWindow::builder()
        .mode(FlexibleTimeWindowMode::Off)
        .build()
        .map_err(|e| e.to_string())?;
    let created = host
        .scheduler
        .create_schedule()
        .name(reminder_name(run_id))
        .group_name(&host.names.schedule_group)
        .schedule_expression(format!("at({})", at.format("%Y-%m-%dT%H:%M:%S")))
        .schedule_expression_timezone("UTC")
        .flexible_time_window(window)
        .target(target)
        .action_after_completion(ActionAfterCompletion::Delete)
        .description(format!("retl: remind the approvers of run {run_id}"))
        .send()
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_conflict_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(aws_sdk_scheduler::error::DisplayErrorContext(e).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reminder_comes_before_the_request_expires() {
        let t0 = Utc::now();
        let day = reminder_time(t0, t0 + Duration::hours(24)).unwrap();
        assert_eq!(day, t0 + Duration::hours(18));
        let hour = reminder_time(t0, t0 + Duration::hours(1)).unwrap();
        assert_eq!(hour, t0 + Duration::minutes(45));
        let short = reminder_time(t0, t0 + Duration::minutes(35)).unwrap();
        assert_eq!(short, t0 + Duration::minutes(25));
        assert_eq!(reminder_time(t0, t0 + Duration::seconds(2)), None);
    }
}
