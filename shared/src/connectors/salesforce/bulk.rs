//! Bulk API 2.0 ingest jobs for large batches: create the job, upload the CSV, mark it
//! `UploadComplete`, poll until it ends, then read `successfulResults/`, `failedResults/` and
//! `unprocessedrecords/` and give every record its outcome
//! (<https://developer.salesforce.com/docs/platform/api-asynch/guide/create-job.html>,
//! `upload-job-data`, `close-job`, `get-job-info` and the three result pages).
//!
//! Result rows come in no promised order, so they are matched to the batch by the column
//! that identifies a record in the uploaded CSV: the external id for upsert and insert, `Id`
//! for update and delete (whose ids are first looked up by key with SOQL, as for
//! Collections).

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;

use super::api::Api;
use super::collections::unresolved;
use super::csv;
use super::errors::{record_outcome, unexpected, RecordError};
use super::query::{resolve_ids, Resolved};
use super::Target;
use crate::ports::{OutRecord, RecordOutcome, SendError, WriteOp};

/// Largest upload: 150 MB once base64-encoded, i.e. 100 MB of CSV.
const MAX_UPLOAD_BYTES: usize = 100_000_000;
/// First wait between polls of a job; grows by half each time up to [`MAX_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(500);
const MAX_POLL: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
struct JobInfo {
    id: String,
    #[serde(default)]
    state: String,
    #[serde(rename = "contentUrl", default)]
    content_url: Option<String>,
    #[serde(rename = "numberRecordsProcessed", default)]
    processed: Option<u64>,
    #[serde(rename = "errorMessage", default)]
    error_message: Option<String>,
}

/// The CSV of a batch and which record each row stands for.
struct Upload {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    record_of_row: Vec<usize>,
    /// The column matching result rows to uploaded rows.
    match_column: String,
}

/// Writes one batch as one ingest job; `deadline` bounds the wait for the job to end.
pub(crate) async fn send(
    api: &Api,
    target: &Target<'_>,
    op: WriteOp,
    records: &[OutRecord],
    deadline: Duration,
) -> Result<Vec<RecordOutcome>, SendError> {
    let started = Instant::now();
    let mut out: Vec<Option<RecordOutcome>> = vec![None; records.len()];
    let upload = match op {
        WriteOp::Upsert | WriteOp::Create => by_key(target, records),
        WriteOp::Update | WriteOp::Delete => {
            let keys: Vec<&str> = records.iter().map(|r| r.key.as_str()).collect();
            let found = resolve_ids(api, target, &keys).await?;
            by_id(op, target, records, &found, &mut out)
        }
    };
    if !upload.rows.is_empty() {
        let data = csv::write(&upload.header, &upload.rows);
        if data.len() > MAX_UPLOAD_BYTES {
            return Err(SendError::BatchRejected {
                code: "upload_too_large".into(),
                message: format!(
                    "{} bytes of CSV exceed the {MAX_UPLOAD_BYTES}-byte upload limit",
                    data.len()
                ),
            });
        }
        let job = run_job(api, target, op, data, started + deadline).await?;
        assign(api, &job, op, target, &upload, &mut out).await?;
    }
    Ok(out
        .into_iter()
        .map(|o| {
            o.unwrap_or(RecordOutcome::Failed {
                code: "BULK_NOT_REPORTED".into(),
                message: "the ingest job reported nothing for this record".into(),
            })
        })
        .collect())
}

fn columns(records: &[&OutRecord]) -> Vec<String> {
    let mut cols: Vec<String> = Vec::new();
    for r in records {
        for k in r.values.keys() {
            if !k.eq_ignore_ascii_case("id") && !cols.contains(k) {
                cols.push(k.clone());
            }
        }
    }
    cols
}

fn by_key(target: &Target<'_>, records: &[OutRecord]) -> Upload {
    let all: Vec<&OutRecord> = records.iter().collect();
    let header = columns(&all);
    let rows = records
        .iter()
        .map(|r| {
            header
                .iter()
                .map(|h| r.values.get(h).map(csv::cell).unwrap_or_default())
                .collect()
        })
        .collect();
    Upload {
        header,
        rows,
        record_of_row: (0..records.len()).collect(),
        match_column: target.key_field.to_string(),
    }
}

fn by_id(
    op: WriteOp,
    target: &Target<'_>,
    records: &[OutRecord],
    found: &HashMap<String, Resolved>,
    out: &mut [Option<RecordOutcome>],
) -> Upload {
    let mut pending: Vec<(usize, &str)> = Vec::new();
    for (i, r) in records.iter().enumerate() {
        match found.get(&r.key) {
            Some(Resolved::One(id)) => pending.push((i, id)),
            other => out[i] = Some(unresolved(op, target, other)),
        }
    }
    let fields = if op == WriteOp::Update {
        let sent: Vec<&OutRecord> = pending.iter().map(|(i, _)| &records[*i]).collect();
        columns(&sent)
    } else {
        Vec::new()
    };
    let mut header = vec!["Id".to_string()];
    header.extend(fields.iter().cloned());
    let rows = pending
        .iter()
        .map(|(i, id)| {
            let mut row = vec![id.to_string()];
            row.extend(
                fields
                    .iter()
                    .map(|f| records[*i].values.get(f).map(csv::cell).unwrap_or_default()),
            );
            row
        })
        .collect();
    Upload {
        header,
        rows,
        record_of_row: pending.iter().map(|(i, _)| *i).collect(),
        match_column: "Id".into(),
    }
}

fn operation(op: WriteOp) -> &'static str {
    match op {
        WriteOp::Upsert => "upsert",
        WriteOp::Create => "insert",
        WriteOp::Update => "update",
        WriteOp::Delete => "delete",
    }
}

/// Creates, fills, closes and waits for a job; aborts it when the deadline passes.
async fn run_job(
    api: &Api,
    target: &Target<'_>,
    op: WriteOp,
    data: String,
    deadline: Instant,
) -> Result<JobInfo, SendError> {
    let mut spec = json!({
        "object": target.sobject,
        "operation": operation(op),
        "contentType": "CSV",
        "lineEnding": "LF",
        "columnDelimiter": "COMMA",
    });
    if op == WriteOp::Upsert {
        spec["externalIdFieldName"] = json!(target.key_field);
    }
    let created = api
        .call_ok(|t| api.http().post(api.data_url(t, "/jobs/ingest")).json(&spec))
        .await
        // A job refused at creation is refused for its settings (object, operation, external
        // id field), which splitting the batch cannot fix.
        .map_err(|e| match e {
            SendError::BatchRejected { code, message } => SendError::Fatal { code, message },
            other => other,
        })?;
    let job: JobInfo = serde_json::from_str(&created.body)
        .map_err(|e| unexpected("the job answer has no id", e))?;
    let content_url = job.content_url.clone().unwrap_or_else(|| {
        format!(
            "services/data/{}/jobs/ingest/{}/batches",
            api.version(),
            job.id
        )
    });
    let body = bytes::Bytes::from(data);
    let uploaded = api
        .paced(|t| {
            api.http()
                .put(api.instance_url(t, &content_url))
                .header("content-type", "text/csv")
                .body(body.clone())
        })
        .await;
    if let Err(e) = uploaded {
        abort(api, &job.id).await;
        return Err(e);
    }
    let closed = api
        .paced(|t| {
            api.http()
                .patch(api.data_url(t, &format!("/jobs/ingest/{}", job.id)))
                .json(&json!({ "state": "UploadComplete" }))
        })
        .await;
    if let Err(e) = closed {
        abort(api, &job.id).await;
        return Err(e);
    }
    wait(api, &job.id, deadline).await
}

/// Polls the job until it ends; past the deadline, aborts it so that what it did not
/// process is reported unprocessed (and re-sent) instead of being written later unseen.
async fn wait(api: &Api, id: &str, deadline: Instant) -> Result<JobInfo, SendError> {
    let mut pause = FIRST_POLL;
    loop {
        let polled = api
            .paced(|t| {
                api.http()
                    .get(api.data_url(t, &format!("/jobs/ingest/{id}")))
            })
            .await;
        match polled {
            Ok(resp) => {
                let info: JobInfo = serde_json::from_str(&resp.body)
                    .map_err(|e| unexpected("the job info is unreadable", e))?;
                if matches!(info.state.as_str(), "JobComplete" | "Failed" | "Aborted") {
                    return Ok(info);
                }
            }
            Err(e @ (SendError::Fatal { .. } | SendError::BatchRejected { .. })) => return Err(e),
            // Throttled or transient polls are simply polled again.
            Err(_) => {}
        }
        let now = Instant::now();
        if now + pause >= deadline {
            abort(api, id).await;
            let resp = api
                .read(|t| {
                    api.http()
                        .get(api.data_url(t, &format!("/jobs/ingest/{id}")))
                })
                .await?;
            let info: JobInfo = serde_json::from_str(&resp.body)
                .map_err(|e| unexpected("the job info is unreadable", e))?;
            if matches!(info.state.as_str(), "JobComplete" | "Failed" | "Aborted") {
                return Ok(info);
            }
            return Err(SendError::Transient {
                code: "bulk_job_timeout".into(),
                message: format!("ingest job {id} did not finish in time ({})", info.state),
                retry_after: None,
            });
        }
        tokio::time::sleep(pause).await;
        pause = pause.mul_f64(1.5).min(MAX_POLL);
    }
}

async fn abort(api: &Api, id: &str) {
    let aborted = api
        .paced(|t| {
            api.http()
                .patch(api.data_url(t, &format!("/jobs/ingest/{id}")))
                .json(&json!({ "state": "Aborted" }))
        })
        .await;
    if let Err(e) = aborted {
        tracing::warn!(job = %id, error = %e, "could not abort a Salesforce ingest job");
    }
}

/// Reads the job's result files and records each row's outcome.
async fn assign(
    api: &Api,
    job: &JobInfo,
    op: WriteOp,
    target: &Target<'_>,
    upload: &Upload,
    out: &mut [Option<RecordOutcome>],
) -> Result<(), SendError> {
    if job.state == "Failed" && job.processed.unwrap_or(0) == 0 {
        let message = job.error_message.clone().unwrap_or_default();
        let kind = message.split(':').next().unwrap_or_default().trim();
        // A job that failed before processing anything for its settings or data file will
        // fail again; anything else is reported per record as transient below.
        if matches!(kind, "InvalidBatch" | "InvalidJob" | "ClientInputError") {
            return Err(SendError::Fatal {
                code: "BULK_JOB_FAILED".into(),
                message: format!("ingest job {} failed: {message}", job.id),
            });
        }
    }
    let mut unassigned: HashMap<&str, Vec<usize>> = HashMap::new();
    let col = upload
        .header
        .iter()
        .position(|h| h.eq_ignore_ascii_case(&upload.match_column));
    for (row_index, row) in upload.rows.iter().enumerate() {
        let key = col
            .and_then(|c| row.get(c))
            .map(String::as_str)
            .unwrap_or("");
        unassigned.entry(key).or_default().push(row_index);
    }
    let mut place = |key: &str, outcome: RecordOutcome| {
        if let Some(rows) = unassigned.get_mut(key) {
            if let Some(row_index) = rows.pop() {
                out[upload.record_of_row[row_index]] = Some(outcome);
            }
        }
    };
    for (resource, kind) in [
        ("successfulResults", Kind::Success),
        ("failedResults", Kind::Failure),
        ("unprocessedrecords", Kind::Unprocessed),
    ] {
        let text = result_file(api, &job.id, resource).await?;
        let (header, rows) =
            csv::parse(&text).map_err(|e| unexpected("a result file is not CSV", e))?;
        let key_col = header
            .iter()
            .position(|h| h.eq_ignore_ascii_case(&upload.match_column));
        let error_col = header.iter().position(|h| h == "sf__Error");
        for row in rows {
            let key = key_col
                .and_then(|c| row.get(c))
                .map(String::as_str)
                .unwrap_or("");
            let outcome = match kind {
                Kind::Success => RecordOutcome::Delivered,
                Kind::Failure => {
                    let error = error_col
                        .and_then(|c| row.get(c))
                        .map(String::as_str)
                        .unwrap_or("");
                    record_outcome(op, target.key_field, &[parse_error(error)])
                }
                Kind::Unprocessed => RecordOutcome::Failed {
                    code: "BULK_UNPROCESSED".into(),
                    message: format!("ingest job {} ended before this record", job.id),
                },
            };
            place(key, outcome);
        }
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Kind {
    Success,
    Failure,
    Unprocessed,
}

async fn result_file(api: &Api, id: &str, resource: &str) -> Result<String, SendError> {
    let resp = api
        .read(|t| {
            api.http()
                .get(api.data_url(t, &format!("/jobs/ingest/{id}/{resource}/")))
                .header("accept", "text/csv")
        })
        .await?;
    Ok(resp.body)
}

/// `sf__Error` is `STATUS_CODE:message:fields --`; the message may itself hold colons.
fn parse_error(text: &str) -> RecordError {
    let text = text.trim().trim_end_matches("--").trim_end();
    let (code, rest) = text.split_once(':').unwrap_or((text, ""));
    let (message, fields) = rest.rsplit_once(':').unwrap_or((rest, ""));
    RecordError {
        status_code: code.trim().to_string(),
        message: message.trim().to_string(),
        fields: fields
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    #[test]
    fn parses_bulk_error_cells() {
        let e = parse_error(
            "REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --",
        );
        assert_eq!(e.status_code, "REQUIRED_FIELD_MISSING");
        assert_eq!(e.message, "Required fields are missing: [LastName]");
        assert_eq!(e.fields, ["LastName"]);
        let e = parse_error("UNABLE_TO_LOCK_ROW:unable to obtain exclusive access: --");
        assert_eq!(e.status_code, "UNABLE_TO_LOCK_ROW");
        assert!(e.fields.is_empty());
    }

    #[test]
    fn uploads_by_key_keep_every_field_once() {
        let rec = |k: &str, extra: bool| {
            let mut values = Map::new();
            values.insert("Ext__c".into(), json!(k));
            values.insert("Id".into(), json!("ignored"));
            if extra {
                values.insert("Phone".into(), json!(null));
            }
            OutRecord {
                key: k.into(),
                values,
                event_id: String::new(),
            }
        };
        let target = Target {
            sobject: "Contact",
            key_field: "Ext__c",
        };
        let u = by_key(&target, &[rec("a", false), rec("b", true)]);
        assert_eq!(u.header, ["Ext__c", "Phone"]);
        assert_eq!(u.rows[0], ["a", ""]);
        assert_eq!(u.rows[1], ["b", "#N/A"]);
    }
}
