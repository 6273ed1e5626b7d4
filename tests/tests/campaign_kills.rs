//! The fault campaign's random kills (issue 8): `retl run` SIGKILLed at random points in
//! upsert, mirror and append, into PostgreSQL and into a recording webhook receiver, with and
//! without a model change before the rerun. After the rerun the destination holds what the
//! mode promises and no record was created twice (by a real insert in PostgreSQL, by event id
//! at the receiver). Seeded: `RETL_CAMPAIGN_SEED`, and `RETL_CAMPAIGN_TRIAL` to replay one.

use retl_tests::campaign::kill::{self, Target, MODES};
use retl_tests::campaign::Campaign;

/// Every (target, mode, model change) combination twice.
const TRIALS: u64 = 24;
/// Trials at once: each runs `retl` three times, and the machine may have two cores.
const PARALLEL: usize = 3;

#[tokio::test(flavor = "multi_thread")]
async fn killed_runs_resume_to_what_the_mode_promises() {
    let campaign = Campaign::new("kills");
    let summary = campaign
        .run(TRIALS, PARALLEL, |trial| {
            // The combination follows the index, so every one is covered whatever the seed;
            // the kill point and the model change follow the seed.
            let i = trial.index as usize;
            let target = if i.is_multiple_of(2) {
                Target::Postgres
            } else {
                Target::Webhook
            };
            let mode = MODES[(i / 2) % MODES.len()];
            let changes = (i / 6) % 2 == 1;
            kill::trial(trial, target, mode, changes)
        })
        .await;
    assert_eq!(summary.held, summary.trials);
    // The campaign is only worth its time if most kills land mid-apply.
    assert!(
        summary.tagged("killed mid-apply") * 2 >= summary.trials,
        "too few kills landed mid-apply: {summary:?}"
    );
}
