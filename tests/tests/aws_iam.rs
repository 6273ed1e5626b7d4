//! template.yaml's IAM, proven offline: the stack is created from the template itself (SAM
//! translated by aws-sam-translator, roles and policies as declared), moto enforces IAM, and
//! every function's handler runs with credentials of that function's own role through a whole
//! run (trigger, extract, plan, summarize, apply, finalize), an approval and a dbt Cloud
//! webhook delivery. Removing one action a function needs from its policy makes that
//! function's call fail with AccessDenied.

use hmac::{Hmac, Mac};
use retl_fn_apply::ApplyRequest;
use retl_fn_approval::ApprovalRequest;
use retl_fn_extract::ExtractRequest;
use retl_fn_finalize::{FinalizeEvent, FinalizeOutput, FinalizeRequest};
use retl_fn_plan::{PlanRequest, PlanResponse};
use retl_fn_trigger::{TriggerKind, TriggerRequest};
use retl_shared::adapters::aws::SnsNotifier;
use retl_shared::aws_host::{
    deploy, emit_run_completed, emit_triggers, reminder_name, write_definitions, AlertCheck,
    AwsHost, DeployedSync, TriggerOutcome,
};
use retl_shared::config::{load_project, Project, SyncMode};
use retl_shared::engine::steps::{Decision, SummaryStep};
use retl_shared::ports::{Notification, Notifier, RunStatus, RunStore};
use retl_tests::approvals::{decided, user_arn};
use retl_tests::iam_stack::IamStack;
use retl_tests::moto::{sns_envelopes, subscribe_queue};
use retl_tests::Pg;
use serde_json::json;

/// The stack, its warehouse and destination (one PostgreSQL schema), a deployed project.
struct World {
    stack: IamStack,
    pg: Pg,
    _project: tempfile::TempDir,
}

/// The dbt Cloud webhook's secret key in the IAM tests.
const DBT_SECRET: &str = "iam-test-webhook-key";

/// Creates the stack from template.yaml (minus `without`), deploys, as an administrator,
/// `people` (upsert: 3 new rows; triggered by dbt Cloud job 42) and `purge` (mirror: 3 of 4
/// existing rows would be deleted, so it stops for approval), then turns IAM enforcement on.
async fn world(name: &str, without: &[&str]) -> World {
    let stack = IamStack::start(&name.replace('_', "-"), without).await;
    let pg = Pg::new(name).await;
    for (table, ids, existing) in [
        ("people", &[1, 2, 3][..], &[][..]),
        ("purge", &[1], &[1, 2, 3, 4]),
    ] {
        pg.exec(&format!(
            "CREATE TABLE {table}_model (id integer, name text);
             CREATE TABLE {table}_dest (id integer PRIMARY KEY, name text NOT NULL);"
        ))
        .await;
        for id in ids {
            pg.exec(&format!(
                "INSERT INTO {table}_model VALUES ({id}, 'person {id}')"
            ))
            .await;
        }
        for id in existing {
            pg.exec(&format!(
                "INSERT INTO {table}_dest VALUES ({id}, 'old {id}')"
            ))
            .await;
        }
    }
    let secret = stack
        .admin
        .clients
        .secrets
        .create_secret()
        .name("retl/PG_URL");
    secret
        .secret_string(&pg.url)
        .send()
        .await
        .expect("store PG_URL");
    let secret = stack.admin.clients.secrets.create_secret();
    let secret = secret.name(format!("retl/{}", retl_fn_dbt_webhook::SECRET_NAME));
    let stored = secret.secret_string(DBT_SECRET).send().await;
    stored.expect("store the dbt Cloud webhook's secret");
    // `purge` never delivers before the periodic check: its no_success rule (under a second)
    // fires there.
    let (project, loaded) = project(
        &pg,
        &[
            ("people", "upsert", "triggers: [{ dbt_cloud_job: 42 }]\n"),
            (
                "purge",
                "mirror",
                "alerts: { no_success_for_hours: 0.0001 }\n",
            ),
        ],
    );
    deploy(&stack.admin, &loaded, Some("iam test"), &user_arn("admin"))
        .await
        .unwrap_or_else(|e| panic!("deploy as the administrator: {e}"));
    stack.enforce().await;
    World {
        stack,
        pg,
        _project: project,
    }
}

/// A project of syncs `(name, mode, extra YAML)`, each reading `<name>_model` into
/// `<name>_dest`; its folder (kept while the project is used) and the project loaded.
fn project(pg: &Pg, syncs: &[(&str, &str, &str)]) -> (tempfile::TempDir, Project) {
    let project = tempfile::tempdir().expect("a project folder");
    let dir = project.path();
    std::fs::create_dir_all(dir.join("syncs")).expect("syncs folder");
    std::fs::write(
        dir.join("retl.yaml"),
        "connections:\n  wh: { type: postgres, url_env: PG_URL }\n  app_db: { type: postgres, url_env: PG_URL }\n",
    )
    .expect("write retl.yaml");
    for (sync, mode, extra) in syncs {
        let text = format!(
            "name: {sync}\nsource: {{ connection: wh, sql: \"select id, name from {model}\" }}\n\
             primary_key: id\ndestination: {{ connection: app_db, object: {dest} }}\n\
             mapping: {{ id: id, name: name }}\nmode: {mode}\n{extra}",
            model = pg.table(&format!("{sync}_model")),
            dest = pg.table(&format!("{sync}_dest")),
        );
        std::fs::write(dir.join(format!("syncs/{sync}.yaml")), text).expect("write a sync");
    }
    let loaded = load_project(dir).unwrap_or_else(|e| panic!("the test project: {e}"));
    (project, loaded)
}

/// A handler's failure, as text (the Lambda error it would return).
type Failed = String;

fn failed(step: &str, e: impl std::fmt::Debug) -> Failed {
    format!("{step}: {e:?}")
}

/// The trigger, with the trigger's role: the run it started.
async fn trigger(w: &World, sync: &str) -> Result<String, Failed> {
    let request = TriggerRequest::Start {
        sync: sync.into(),
        trigger: TriggerKind::Manual,
        stack: None,
    };
    let answer = retl_fn_trigger::handle(w.stack.function("trigger"), request).await;
    match answer.map_err(|e| failed("trigger", e))?.started.as_slice() {
        [TriggerOutcome::Started { run_id, .. }] => Ok(run_id.clone()),
        other => Err(failed("trigger", other)),
    }
}

/// Extract, the plan of every shard and the summary, each with its function's role.
async fn plan(w: &World, sync: &str, run_id: &str) -> Result<SummaryStep, Failed> {
    let event: ExtractRequest = serde_json::from_value(json!({"run_id": run_id, "sync": sync}))
        .expect("the state machine's extract payload");
    let extracted = retl_fn_extract::handle(w.stack.function("extract"), event).await;
    let extracted = extracted.map_err(|e| failed("extract", e))?;
    let planner = w.stack.function("plan");
    for shard in 0..extracted.shards {
        let request = PlanRequest::Shard {
            run_id: run_id.into(),
            sync: sync.into(),
            shard,
        };
        let planned = retl_fn_plan::handle(planner, request).await;
        planned.map_err(|e| failed("plan shard", e))?;
    }
    let request = PlanRequest::Summarize {
        run_id: run_id.into(),
        sync: sync.into(),
    };
    match retl_fn_plan::handle(planner, request).await {
        Ok(PlanResponse::Summary(summary)) => Ok(summary),
        other => Err(failed("summarize", other)),
    }
}

/// Every apply unit, then finalize, each with its function's role.
async fn apply_and_finalize(
    w: &World,
    sync: &str,
    run_id: &str,
    units: usize,
) -> Result<RunStatus, Failed> {
    for unit in 0..units {
        let request = ApplyRequest {
            run_id: run_id.into(),
            sync: sync.into(),
            unit,
            retry: 0,
        };
        let applied = retl_fn_apply::handle(w.stack.function("apply"), 1, request).await;
        applied.map_err(|e| failed("apply", e))?;
    }
    let request: FinalizeRequest =
        serde_json::from_value(json!({"run_id": run_id, "sync": sync, "ending": "applied"}))
            .expect("the state machine's finalize payload");
    let done = retl_fn_finalize::handle(w.stack.function("finalize"), request).await;
    Ok(done.map_err(|e| failed("finalize", e))?.status)
}

/// The approval function keeps the (stand-in) task token and starts the approval runbook;
/// the admin (the stack's approver) approves in Systems Manager; the function takes that
/// decision and sends it to Step Functions (moto runs no execution here, so any token is
/// taken). The runbook's own hand-over to the function fails here (no Lambda service runs),
/// so the test hands it over with the function's role.
async fn approve(w: &World, sync: &str, run_id: &str) -> Result<(), Failed> {
    let host = w.stack.function("approval");
    let request = ApprovalRequest::Request {
        run_id: run_id.into(),
        sync: sync.into(),
        task_token: format!("offline-token-{run_id}"),
    };
    retl_fn_approval::handle(host, request)
        .await
        .map_err(|e| failed("approval request", e))?;
    let reminder = w.stack.admin.scheduler.get_schedule();
    let reminder = reminder
        .group_name(&w.stack.names.stack)
        .name(reminder_name(run_id));
    reminder
        .send()
        .await
        .map_err(|e| failed("approval request schedules the reminder", e))?;
    let run = w.stack.admin.runs().get_run(run_id).await.expect("the run");
    let execution = run
        .approval
        .and_then(|a| a.automation_execution_id)
        .expect("the approvers are asked");
    let admin = &w.stack.admin.automation;
    admin
        .signal(&execution, true, Some("checked"))
        .await
        .map_err(|e| failed("the approver's signal", e))?;
    decided(admin, &execution).await;
    let decision = ApprovalRequest::Decided {
        run_id: run_id.into(),
        automation_execution_id: execution,
    };
    retl_fn_approval::handle(host, decision)
        .await
        .map_err(|e| failed("approval decision", e))?;
    Ok(())
}

/// What finalize and the approval function do that a handler only logs when it fails:
/// publish on the alerts topic, and (finalize) the run-completed event.
async fn side_channels(w: &World, run_id: &str) -> Result<(), Failed> {
    let run = w
        .stack
        .admin
        .runs()
        .get_run(run_id)
        .await
        .map_err(|e| failed("read run", e))?;
    let alert = Notification::Alert {
        sync: run.sync.clone(),
        run_id: Some(run.run_id.clone()),
        status: Some(run.status.as_str().to_string()),
        error_name: None,
        fired: Vec::new(),
    };
    for function in ["approval", "finalize"] {
        let host: &AwsHost = w.stack.function(function);
        let notifier = SnsNotifier::new(host.clients.sns.clone(), host.names.topic_arn.clone());
        let sent = notifier.notify(&alert).await;
        sent.map_err(|e| failed(&format!("{function} publishes on the topic"), e))?;
    }
    let finalize = w.stack.function("finalize");
    emit_run_completed(&finalize.events, &finalize.names, &run)
        .await
        .map_err(|e| failed("finalize puts the run-completed event", e))
}

/// A signed, successful run of dbt Cloud job 42, as the webhook's function URL receives it.
fn dbt_delivery() -> retl_fn_dbt_webhook::UrlRequest {
    let body = json!({"eventType": "job.run.completed",
                      "data": {"jobId": "42", "runId": "7", "runStatus": "Success", "runStatusCode": 10}})
    .to_string();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(DBT_SECRET.as_bytes()).expect("a key");
    mac.update(body.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    serde_json::from_value(json!({"headers": {"authorization": signature}, "body": body}))
        .expect("a function URL request")
}

/// The schedule's periodic alert check, with the finalize function's role: every deployed
/// sync's runs read, and the `no_success` alert of `purge` published.
async fn alert_check(w: &World) -> Result<AlertCheck, Failed> {
    let event: FinalizeEvent =
        serde_json::from_value(json!({"action": "check_alerts", "every_minutes": 15}))
            .expect("the schedule's payload");
    match retl_fn_finalize::handle_event(w.stack.function("finalize"), event).await {
        Ok(FinalizeOutput::Checked(check)) => Ok(check),
        other => Err(failed("alert check", other)),
    }
}

/// The periodic check, with finalize's role, finds `purge` stale and publishes its
/// `no_success` alert on the topic.
async fn periodic_check_publishes_the_stale_alert(w: &World) {
    let admin = &w.stack.admin;
    let (sqs, queue) = subscribe_queue(
        &w.stack.admin_sdk,
        &admin.clients.sns,
        &admin.names.topic_arn,
        "alerts",
    )
    .await;
    let check = alert_check(w).await.expect("the periodic alert check");
    let purge = check.syncs.iter().find(|h| h.sync == "purge");
    assert!(purge.is_some_and(|h| h.stale && h.alerted), "{check:?}");
    let published: Vec<serde_json::Value> = sns_envelopes(&sqs, &queue, 1)
        .await
        .iter()
        .map(|e| serde_json::from_str(e["Message"].as_str().unwrap_or("{}")).unwrap_or_default())
        .collect();
    assert!(
        published.iter().any(|m| m["kind"] == "alert"
            && m["sync"] == "purge"
            && m["fired"][0]["rule"] == "no_success"),
        "the finalize role published the alert: {published:?}"
    );
}

fn assert_denied(result: Result<impl std::fmt::Debug, Failed>, step: &str, action: &str) {
    let error = match result {
        Ok(v) => panic!("{step} succeeded without {action}: {v:?}"),
        Err(e) => e,
    };
    assert!(
        error.starts_with(step),
        "expected {step} to fail, got: {error}"
    );
    assert!(
        error.contains("AccessDenied")
            || error.contains("HTTP 403")
            || error.contains("not authorized"),
        "{step} failed, but not for want of {action}: {error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_runs_with_its_own_role_from_template_yaml() {
    let w = world("iam_all", &[]).await;
    let names = &w.stack.names;
    assert_eq!(w.stack.resource("ArtifactsBucket"), names.bucket);
    assert_eq!(w.stack.resource("RunsTable"), names.runs_table);
    assert_eq!(w.stack.resource("KeySetTable"), names.keyset_table);
    assert_eq!(w.stack.resource("ConfigTable"), names.config_table);
    assert_eq!(
        w.stack.function_names(),
        [
            "apply",
            "approval",
            "dbt_webhook",
            "extract",
            "finalize",
            "plan",
            "trigger"
        ]
    );

    let run_id = trigger(&w, "people")
        .await
        .expect("the trigger starts a run");
    let summary = plan(&w, "people", &run_id).await.expect("extract and plan");
    assert_eq!(summary.decision, Decision::Proceed, "{summary:?}");
    let status = apply_and_finalize(&w, "people", &run_id, summary.units).await;
    assert_eq!(status.expect("apply and finalize"), RunStatus::Succeeded);
    let delivered =
        w.pg.count(&format!(
            "SELECT count(*) FROM {}",
            w.pg.table("people_dest")
        ))
        .await;
    assert_eq!(delivered, 3);
    side_channels(&w, &run_id)
        .await
        .expect("topic and event bus");
    // The webhook reads its secret and the deployed syncs, and puts the trigger on the bus.
    let answer = retl_fn_dbt_webhook::handle(w.stack.function("dbt_webhook"), dbt_delivery()).await;
    let answer = answer.expect("the webhook answers");
    assert_eq!(answer.status_code, 200, "{answer:?}");
    assert_eq!(
        answer.body,
        json!({"job": 42, "triggered": ["people"]}).to_string()
    );
    periodic_check_publishes_the_stale_alert(&w).await;

    let run_id = trigger(&w, "purge")
        .await
        .expect("the trigger starts a run");
    let summary = plan(&w, "purge", &run_id).await.expect("extract and plan");
    assert_eq!(summary.decision, Decision::NeedsApproval, "{summary:?}");
    approve(&w, "purge", &run_id)
        .await
        .expect("the approval is recorded and sent");
    let status = apply_and_finalize(&w, "purge", &run_id, summary.units).await;
    assert_eq!(status.expect("apply and finalize"), RunStatus::Succeeded);
    let left =
        w.pg.count(&format!(
            "SELECT count(*) FROM {}",
            w.pg.table("purge_dest")
        ))
        .await;
    assert_eq!(left, 1, "the approved deletes were applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trigger_is_denied_without_put_item_on_the_runs_table() {
    // The run starts with one TransactWriteItems (lock and run record together), which IAM
    // authorizes item by item as the action each item performs: PutItem for the run record.
    let w = world("iam_no_put_item", &["TriggerFunction=dynamodb:PutItem"]).await;
    assert_denied(trigger(&w, "people").await, "trigger", "dynamodb:PutItem");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extract_is_denied_without_s3_put_object() {
    let w = world("iam_no_put", &["ExtractFunction=s3:PutObject"]).await;
    let run_id = trigger(&w, "people")
        .await
        .expect("the trigger keeps its grants");
    assert_denied(plan(&w, "people", &run_id).await, "extract", "s3:PutObject");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approval_request_is_denied_without_start_automation_execution() {
    let w = world(
        "iam_no_ssm",
        &["ApprovalFunction=ssm:StartAutomationExecution"],
    )
    .await;
    let run_id = trigger(&w, "purge")
        .await
        .expect("the trigger keeps its grants");
    let summary = plan(&w, "purge", &run_id)
        .await
        .expect("extract and plan keep their grants");
    assert_eq!(summary.decision, Decision::NeedsApproval, "{summary:?}");
    assert_denied(
        approve(&w, "purge", &run_id).await,
        "approval request",
        "ssm:StartAutomationExecution",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approval_is_denied_without_send_task_success() {
    let w = world("iam_no_task", &["ApprovalFunction=states:SendTaskSuccess"]).await;
    let run_id = trigger(&w, "purge")
        .await
        .expect("the trigger keeps its grants");
    let summary = plan(&w, "purge", &run_id)
        .await
        .expect("extract and plan keep their grants");
    assert_eq!(summary.decision, Decision::NeedsApproval, "{summary:?}");
    assert_denied(
        approve(&w, "purge", &run_id).await,
        "approval decision",
        "states:SendTaskSuccess",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dbt_webhook_is_denied_without_put_events_on_the_bus() {
    let w = world("iam_no_events", &["DbtWebhookFunction=events:PutEvents"]).await;
    let host = w.stack.function("dbt_webhook");
    let answer = retl_fn_dbt_webhook::handle(host, dbt_delivery()).await;
    assert_eq!(
        answer.expect("answered").status_code,
        500,
        "the bus refused it"
    );
    let put = emit_triggers(&host.events, &host.names, &["people".to_string()]).await;
    assert_denied(
        put.map_err(|e| failed("dbt_webhook puts the trigger", e)),
        "dbt_webhook puts the trigger",
        "events:PutEvents",
    );
}

/// Seed 004, enforced by IAM: a deployer holding DeployerPolicy alone deploys a sync that
/// deletes nothing, but not a deleting mode (nothing is written); a deleting definition it
/// writes straight into the config table is refused by the trigger, with the trigger's own
/// role; the lead (DeployerPolicy and SafetyDeployerPolicy) deploys it, the trigger starts it,
/// and its config version names the lead's ARN; the deployer then raising its threshold is
/// refused again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_safety_deployers_let_a_sync_delete() {
    let w = world("iam_safety", &[]).await;
    let (deployer_arn, deployer) = w.stack.operator("deployer");
    let (lead_arn, lead) = w.stack.operator("lead");
    let (_upsert_dir, upsert) = project(&w.pg, &[("people", "upsert", "")]);
    let report = write_definitions(deployer, &upsert, Some("rename"), deployer_arn).await;
    let report = report.unwrap_or_else(|e| panic!("the deployer deploys an upsert sync: {e}"));
    assert!(report.granted.is_empty(), "{report:?}");

    let (_mirror_dir, mirror) = project(&w.pg, &[("people", "mirror", "")]);
    let refused = write_definitions(deployer, &mirror, None, deployer_arn).await;
    let refused = refused.expect_err("a deployer cannot grant a deleting mode");
    assert_eq!(refused.error_name(), "Retl.SafetyNotGranted", "{refused}");
    assert!(
        refused.to_string().contains("iam-safety-safety-deployer"),
        "names the policy it needs: {refused}"
    );
    let kept = w.stack.admin.config.get("people").await.expect("people");
    assert_eq!(kept.def.mode, SyncMode::Upsert, "nothing was written");

    let def = mirror.syncs[0].clone();
    let forged = DeployedSync {
        connections: kept.connections.clone(),
        config_hash: def.config_hash(),
        def,
        deployed_at: chrono::Utc::now().to_rfc3339(),
    };
    deployer
        .config
        .put(&forged)
        .await
        .expect("DeployerPolicy writes definitions");
    let started = trigger(&w, "people").await;
    let refused = started.expect_err("the trigger refuses a deleting sync without a grant");
    assert!(refused.contains("Retl.SafetyNotGranted"), "{refused}");

    let report = write_definitions(lead, &mirror, Some("mirror"), lead_arn).await;
    let report = report.unwrap_or_else(|e| panic!("the lead deploys a mirror sync: {e}"));
    assert_eq!(report.granted, ["people"]);
    trigger(&w, "people")
        .await
        .expect("the trigger starts a granted sync");
    let versions = w
        .stack
        .admin
        .runs()
        .versions("people")
        .await
        .expect("versions");
    let last = versions.last().expect("a version");
    assert_eq!(last.deployed_by.as_deref(), Some(lead_arn), "{versions:?}");
    assert_eq!(last.definition.mode, SyncMode::Mirror);
    let first = versions.first().expect("the admin's version");
    assert_eq!(first.deployed_by, Some(user_arn("admin")), "{versions:?}");

    let (_looser_dir, looser) = project(
        &w.pg,
        &[("people", "mirror", "safety: { delete_threshold_pct: 90 }\n")],
    );
    let refused = write_definitions(deployer, &looser, None, deployer_arn).await;
    let refused = refused.expect_err("a deployer cannot raise the threshold");
    assert_eq!(refused.error_name(), "Retl.SafetyNotGranted", "{refused}");
}
