//! The dbt Cloud webhook payload, as far as the webhook acts on it: the event type, and the
//! job, run and status of a completed run.

use serde::Deserialize;
use serde_json::Value;

/// The event type of a finished run (succeeded or not).
pub const RUN_COMPLETED: &str = "job.run.completed";

/// `runStatusCode` of a successful run.
const SUCCESS_CODE: i64 = 10;

/// One webhook delivery.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DbtEvent {
    /// `job.run.started`, `job.run.completed` or `job.run.errored`.
    pub event_type: String,
    /// The run.
    #[serde(default)]
    pub data: RunData,
}

/// The run an event is about. dbt Cloud sends ids as strings; numbers are taken too.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunData {
    /// The job (`"123"`).
    #[serde(default)]
    pub job_id: Option<Value>,
    /// The run (`"12345"`).
    #[serde(default)]
    pub run_id: Option<Value>,
    /// `Success`, `Errored`, `Cancelled`, ...
    #[serde(default)]
    pub run_status: Option<String>,
    /// 10 for success, 20 errored, 30 cancelled.
    #[serde(default)]
    pub run_status_code: Option<i64>,
}

/// What the webhook does with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A successful run of this job: trigger the syncs that list it.
    Succeeded {
        /// The dbt Cloud job id.
        job: u64,
    },
    /// Nothing to do, and why.
    Ignored(String),
}

fn id(v: Option<&Value>) -> Option<u64> {
    let v = v?;
    v.as_u64().or_else(|| v.as_str()?.trim().parse().ok())
}

impl DbtEvent {
    /// The run's id as text, for logs and answers.
    pub fn run_id(&self) -> String {
        match &self.data.run_id {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        }
    }

    /// Whether this is a successful run of a job, and which.
    pub fn verdict(&self) -> Result<Verdict, String> {
        if self.event_type != RUN_COMPLETED {
            return Ok(Verdict::Ignored(format!(
                "event type `{}`: only {RUN_COMPLETED} starts syncs",
                self.event_type
            )));
        }
        let succeeded = match (self.data.run_status_code, &self.data.run_status) {
            (Some(code), _) => code == SUCCESS_CODE,
            (None, Some(status)) => status.eq_ignore_ascii_case("success"),
            (None, None) => false,
        };
        if !succeeded {
            let status = self.data.run_status.as_deref().unwrap_or("unknown");
            return Ok(Verdict::Ignored(format!(
                "run status `{status}`: only a successful run starts syncs"
            )));
        }
        let job = id(self.data.job_id.as_ref())
            .ok_or("a job.run.completed event needs data.jobId, a positive integer")?;
        Ok(Verdict::Succeeded { job })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(v: Value) -> DbtEvent {
        serde_json::from_value(v).expect("a dbt event")
    }

    /// The shape of dbt Cloud's documented `job.run.completed` example.
    #[test]
    fn a_successful_completed_run_names_its_job() {
        let e = event(json!({
            "accountId": 1, "webhooksID": "wsu_12345abcde", "eventId": "wev_2L6ZDoilyiWzKkSA59Gmc2d7FDD",
            "timestamp": "2023-01-31T21:15:20.419714619Z", "eventType": "job.run.completed",
            "webhookName": "test",
            "data": {"jobId": "123", "jobName": "Daily Job (dbt build)", "runId": "12345",
                     "environmentId": "1234", "runStatus": "Success", "runStatusCode": 10,
                     "runStatusMessage": "None", "runReason": "Kicked off from UI"}
        }));
        assert_eq!(e.verdict(), Ok(Verdict::Succeeded { job: 123 }));
        assert_eq!(e.run_id(), "12345");
        let numeric = event(json!({"eventType": "job.run.completed",
                                   "data": {"jobId": 7, "runStatus": "Success"}}));
        assert_eq!(numeric.verdict(), Ok(Verdict::Succeeded { job: 7 }));
    }

    #[test]
    fn other_events_and_statuses_start_nothing() {
        let errored = event(json!({"eventType": "job.run.completed",
                                   "data": {"jobId": "1", "runStatus": "Errored", "runStatusCode": 20}}));
        assert!(matches!(errored.verdict(), Ok(Verdict::Ignored(why)) if why.contains("Errored")));
        let started = event(json!({"eventType": "job.run.started", "data": {"jobId": "1"}}));
        assert!(
            matches!(started.verdict(), Ok(Verdict::Ignored(why)) if why.contains("job.run.started"))
        );
        let no_job =
            event(json!({"eventType": "job.run.completed", "data": {"runStatusCode": 10}}));
        assert!(no_job.verdict().unwrap_err().contains("data.jobId"));
    }
}
