//! A run store that pauses after every call, and five times as long after a call that won
//! the lock: it widens the windows between two store calls of one process, so a race that
//! needs another process to act in between (the lock taken, the run not yet recorded)
//! happens on every try instead of once in forty.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use retl_shared::config::SyncDef;
use retl_shared::ports::{
    ConfigVersion, LockInfo, LockOutcome, RunRecord, RunStore, StoreError, SyncState,
};

/// Delegates to `inner`, sleeping `pause` after each call (`5 × pause` after winning the lock).
pub struct SlowRuns {
    inner: Arc<dyn RunStore>,
    pause: Duration,
}

impl SlowRuns {
    /// `inner`, pausing `pause` after every call.
    pub fn new(inner: Arc<dyn RunStore>, pause: Duration) -> Self {
        SlowRuns { inner, pause }
    }

    async fn after<T>(&self, out: T) -> T {
        tokio::time::sleep(self.pause).await;
        out
    }

    /// The lock's winner is the slowest to go on: every other caller acts meanwhile.
    async fn after_winning<T>(&self, out: T, won: bool) -> T {
        let pause = if won { self.pause * 5 } else { self.pause };
        tokio::time::sleep(pause).await;
        out
    }
}

#[async_trait]
impl RunStore for SlowRuns {
    async fn lock_and_start(
        &self,
        run: &RunRecord,
        owner: &str,
    ) -> Result<LockOutcome, StoreError> {
        let out = self.inner.lock_and_start(run, owner).await;
        let won = matches!(out, Ok(LockOutcome::Acquired));
        self.after_winning(out, won).await
    }
    async fn take_over_and_start(
        &self,
        from_run: &str,
        run: &RunRecord,
        owner: &str,
    ) -> Result<bool, StoreError> {
        let out = self.inner.take_over_and_start(from_run, run, owner).await;
        let won = matches!(out, Ok(true));
        self.after_winning(out, won).await
    }
    async fn heartbeat(&self, sync: &str, run_id: &str) -> Result<bool, StoreError> {
        let out = self.inner.heartbeat(sync, run_id).await;
        self.after(out).await
    }
    async fn unlock(&self, sync: &str, run_id: &str) -> Result<(), StoreError> {
        let out = self.inner.unlock(sync, run_id).await;
        self.after(out).await
    }
    async fn lock_holder(&self, sync: &str) -> Result<Option<LockInfo>, StoreError> {
        let out = self.inner.lock_holder(sync).await;
        self.after(out).await
    }
    async fn put_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        let out = self.inner.put_run(run).await;
        self.after(out).await
    }
    async fn get_run(&self, run_id: &str) -> Result<RunRecord, StoreError> {
        let out = self.inner.get_run(run_id).await;
        self.after(out).await
    }
    async fn list_runs(
        &self,
        sync: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let out = self.inner.list_runs(sync, limit).await;
        self.after(out).await
    }
    async fn sync_state(&self, sync: &str) -> Result<SyncState, StoreError> {
        let out = self.inner.sync_state(sync).await;
        self.after(out).await
    }
    async fn put_sync_state(&self, state: &SyncState) -> Result<(), StoreError> {
        let out = self.inner.put_sync_state(state).await;
        self.after(out).await
    }
    async fn record_version(
        &self,
        def: &SyncDef,
        note: Option<&str>,
        deployed_by: Option<&str>,
    ) -> Result<ConfigVersion, StoreError> {
        let out = self.inner.record_version(def, note, deployed_by).await;
        self.after(out).await
    }
    async fn versions(&self, sync: &str) -> Result<Vec<ConfigVersion>, StoreError> {
        let out = self.inner.versions(sync).await;
        self.after(out).await
    }
}
