//! The fault campaign's hostile receivers (issue 8): a webhook receiver that answers at random
//! with 500s, 429 + Retry-After, hangs past the timeout, connection resets (before and after
//! storing), answers cut short, malformed results, unknown status words, numeric keys, partial
//! results, every record failed, and rejections; some trials also drop requests whose
//! `Idempotency-Key` they already processed. Every record must end stored exactly once (one
//! event id) or reported failed or rejected by `retl errors`, never counted delivered while
//! the receiver lacks it; a second run against a calm receiver delivers what failed.

use std::collections::BTreeSet;

use retl_tests::campaign::hostile::{Answer, HostileReceiver};
use retl_tests::campaign::{Campaign, Rng, Trial, TrialResult};
use retl_tests::ensure;
use retl_tests::fixtures::set_model;
use retl_tests::Project;
use serde_json::Value;

const TRIALS: u64 = 16;
const PARALLEL: usize = 4;
const ROWS: i64 = 60;

fn project(url: &str, mode: &str) -> Project {
    let p = Project::new();
    p.write(
        "retl.yaml",
        &format!(
            "connections:\n  warehouse: {{ type: sqlite, path: warehouse.db }}\n  \
             hook: {{ type: webhook, url: \"{url}\", delivery: {{ batch_size: 10, concurrency: 2, \
             timeout_seconds: 1, max_attempts: 4 }} }}\n"
        ),
    );
    p.write(
        "syncs/people.yaml",
        &format!(
            "name: people\nsource: {{ connection: warehouse, sql: \"select id, name from model\" }}\n\
             primary_key: id\ndestination: {{ connection: hook, object: people }}\n\
             mapping: {{ id: id, name: name }}\nmode: {mode}\n"
        ),
    );
    let rows: Vec<(i64, String)> = (1..=ROWS).map(|i| (i, format!("person {i}"))).collect();
    let refs: Vec<(i64, &str)> = rows.iter().map(|(i, n)| (*i, n.as_str())).collect();
    set_model(&p, &refs);
    p
}

/// The keys `retl errors` lists for a run, by outcome.
async fn reported(p: &Project, run: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    let (_, errors) = p
        .run_json(&["errors", run["run_id"].as_str().unwrap_or_default()])
        .await;
    let mut rejected = BTreeSet::new();
    let mut failed = BTreeSet::new();
    for e in errors["errors"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or_default().to_string();
        if e["outcome"] == "rejected" {
            rejected.insert(key);
        } else {
            failed.insert(key);
        }
    }
    (rejected, failed)
}

async fn trial(mut trial: Trial) -> TrialResult {
    let mode = *trial.rng.pick(&["upsert", "append"]);
    let dedupe = trial.rng.chance(50);
    let rng = Rng::new(trial.rng.next_u64());
    let hook = HostileReceiver::start(rng, 40, 6, 2).await;
    if dedupe {
        hook.dedupe_by_idempotency_key();
    }
    let p = project(&hook.url, mode);
    let what = format!("{mode}, de-duplicating by Idempotency-Key: {dedupe}");

    let out = p.run(&["--json", "run", "people"]).await;
    ensure!(
        out.code != 101 && !out.stderr.contains("panicked"),
        "{what}: retl panicked: {}",
        out.stderr
    );
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap_or_default();
    let answers = hook.answers();
    let what = format!("{what}, answers {answers:?}");
    ensure!(v["run_id"].is_string(), "{what}: no run: {}", out.stderr);
    let (rejected, failed) = reported(&p, &v).await;
    let stored = hook.stored();
    // Nothing silently lost: a record the receiver lacks was reported.
    let lost: Vec<i64> = (1..=ROWS)
        .filter(|i| {
            let k = i.to_string();
            !stored.contains_key(&k) && !rejected.contains(&k) && !failed.contains(&k)
        })
        .collect();
    ensure!(
        lost.is_empty(),
        "{what}: counted delivered but not stored: {lost:?} (run {v})"
    );
    let receiver_rejected = hook.rejected();
    let invented: Vec<&String> = rejected.difference(&receiver_rejected).collect();
    ensure!(
        invented.is_empty(),
        "{what}: reported rejected but the receiver never rejected them: {invented:?}"
    );
    let delivered = v["creates"].as_u64().unwrap_or(0) + v["updates"].as_u64().unwrap_or(0);
    ensure!(
        delivered as usize <= stored.len(),
        "{what}: {delivered} counted delivered, {} stored",
        stored.len()
    );

    // A calm receiver: the next run delivers what failed; every record ends stored once or
    // rejected.
    hook.calm();
    let (code, again) = p.run_json(&["run", "people"]).await;
    ensure!(
        again["failed"] == 0 && (code == 0 || again["status"] == "partially_failed"),
        "{what}: the calm rerun did not settle (exit {code}): {again}"
    );
    let stored = hook.stored();
    let receiver_rejected = hook.rejected();
    for i in 1..=ROWS {
        let k = i.to_string();
        let ids = stored.get(&k).map_or(0, BTreeSet::len);
        ensure!(
            ids == 1 || (ids == 0 && receiver_rejected.contains(&k)),
            "{what}: key {k} stored under {ids} event id(s)"
        );
    }
    let mut tags: Vec<String> = answers
        .iter()
        .filter(|a| **a != Answer::Normal)
        .map(|a| format!("{a:?}"))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if dedupe {
        tags.push("dedupe by Idempotency-Key".into());
    }
    Ok(tags)
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_receivers_lose_nothing_and_store_each_record_once() {
    let campaign = Campaign::new("receivers");
    let summary = campaign.run(TRIALS, PARALLEL, trial).await;
    // Every misbehaviour was met by some trial that held.
    for a in Answer::FAULTS {
        assert!(
            summary.tagged(&format!("{a:?}")) > 0,
            "no trial met {a:?}: {summary:?}"
        );
    }
}
