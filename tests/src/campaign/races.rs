//! Lock races on a run store: ten callers, each on its own store instance (as ten processes
//! would be), start one sync at once, each after a seeded jitter; then ten take the winner's
//! lock over at once. Exactly one wins each race, the losers are told who won, and only the
//! winners' runs are recorded.

use std::sync::Arc;
use std::time::Duration;

use retl_shared::ports::{LockOutcome, RunRecord, RunStore};

use super::trials::{Trial, TrialResult};
use crate::ensure;

/// Callers per race.
pub const RACERS: usize = 10;

/// One round of both races on a fresh sync of `stores` (one instance per racer).
pub async fn round(mut trial: Trial, stores: Vec<Arc<dyn RunStore>>) -> TrialResult {
    let sync = format!("race{}", trial.index);
    let jitter: Vec<Duration> = (0..stores.len())
        .map(|_| Duration::from_millis(trial.rng.range(0, 15)))
        .collect();
    let starts = stores.iter().zip(&jitter).enumerate().map(|(i, (s, j))| {
        let (s, j, run) = (
            s.clone(),
            *j,
            RunRecord::new(format!("{sync}-start{i}"), &sync, "manual", 1),
        );
        tokio::spawn(async move {
            tokio::time::sleep(j).await;
            s.lock_and_start(&run, &format!("host:{i}")).await
        })
    });
    let mut outcomes = Vec::new();
    for joined in futures::future::join_all(starts).await {
        let out = joined.map_err(|e| format!("a racer panicked: {e}"))?;
        outcomes.push(out.map_err(|e| format!("a racer failed instead of being refused: {e}"))?);
    }
    let store = &stores[0];
    let holder = store
        .lock_holder(&sync)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("nobody holds the lock after the race")?;
    let won = outcomes
        .iter()
        .filter(|o| **o == LockOutcome::Acquired)
        .count();
    ensure!(won == 1, "{won} of {RACERS} starts took the lock");
    for o in &outcomes {
        if let LockOutcome::Held(h) = o {
            ensure!(
                h.run_id == holder.run_id,
                "a loser was told {} holds the lock, but {} does",
                h.run_id,
                holder.run_id
            );
        }
    }
    let recorded = store
        .list_runs(Some(&sync), 50)
        .await
        .map_err(|e| e.to_string())?;
    ensure!(
        recorded.len() == 1 && recorded[0].run_id == holder.run_id,
        "only the winner's run is recorded, found {:?}",
        recorded.iter().map(|r| &r.run_id).collect::<Vec<_>>()
    );

    takeovers(&sync, &stores, &jitter, &holder.run_id).await?;
    Ok(vec![format!(
        "won by racer {}",
        holder.run_id.rsplit("start").next().unwrap_or("?")
    )])
}

/// The winner's process is gone: ten take its lock over at once; exactly one does, and only
/// the winner's and the taker's runs are recorded.
async fn takeovers(
    sync: &str,
    stores: &[Arc<dyn RunStore>],
    jitter: &[Duration],
    from: &str,
) -> Result<(), String> {
    let takeovers = stores.iter().zip(jitter).enumerate().map(|(i, (s, j))| {
        let (s, j, from) = (s.clone(), *j, from.to_string());
        let run = RunRecord::new(format!("{sync}-take{i}"), sync, "manual", 1);
        tokio::spawn(async move {
            tokio::time::sleep(j).await;
            s.take_over_and_start(&from, &run, &format!("host:{i}"))
                .await
        })
    });
    let mut took = 0;
    for joined in futures::future::join_all(takeovers).await {
        let out = joined.map_err(|e| format!("a taker panicked: {e}"))?;
        took += usize::from(out.map_err(|e| format!("a takeover failed: {e}"))?);
    }
    ensure!(took == 1, "{took} of {RACERS} takeovers took the lock");
    let store = &stores[0];
    let now = store
        .lock_holder(sync)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("nobody holds the lock after the takeover")?;
    ensure!(
        now.run_id.starts_with(&format!("{sync}-take")),
        "the lock went to {} after the takeover",
        now.run_id
    );
    let recorded = store
        .list_runs(Some(sync), 50)
        .await
        .map_err(|e| e.to_string())?;
    ensure!(
        recorded.len() == 2,
        "the winner and the taker are recorded, found {}",
        recorded.len()
    );
    Ok(())
}
