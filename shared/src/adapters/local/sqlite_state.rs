use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{
    params, Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
};

use crate::config::SyncDef;
use crate::ports::{
    ConfigVersion, KeyChange, KeyEntry, KeyOrigin, KeySetStore, KeyState, LockInfo, LockOutcome,
    RunRecord, RunStore, StoreError, SyncState,
};
use crate::record::shard_of;

/// How long a process waits for another one's write to the state file before it says the
/// store is unavailable.
const BUSY_WAIT: Duration = Duration::from_secs(10);

/// Runs `open` again while SQLite answers busy, up to [`BUSY_WAIT`]. SQLite skips its busy
/// handler where waiting could deadlock: ten processes opening a new file at once all switch
/// it to WAL, and all but one are told `database is locked` at once, not after a wait.
fn opened_when_free(
    open: impl Fn() -> Result<Connection, StateError>,
) -> Result<Connection, StateError> {
    let deadline = Instant::now() + BUSY_WAIT;
    let mut pause = Duration::from_millis(5);
    loop {
        match open() {
            Err(StateError::Sqlite(e)) if is_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            done => return done,
        }
    }
}

/// Whether SQLite's error says another connection holds the lock.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
}

/// Read connections kept for reuse beside the writer (one per core is what planning uses).
const READERS: usize = 4;

/// Key sets, runs, locks, sync state and config versions in one SQLite file.
#[derive(Clone)]
pub struct SqliteStateStore {
    conn: Arc<Mutex<Connection>>,
    /// Read-only connections beside the writer: in WAL mode they read at once, so plan
    /// shards load their key sets in parallel instead of queueing on the writer's lock.
    readers: Arc<Mutex<Vec<Connection>>>,
    path: Arc<PathBuf>,
}

/// A failure inside the store, before it is said with the file's name ([`damaged`]).
#[derive(Debug, thiserror::Error)]
enum StateError {
    /// SQLite refused or could not read what it found.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// Anything else the store reports.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored record that does not read back (garbage in a JSON body).
    #[error("{0}")]
    Damaged(String),
}

/// Whether SQLite's error means the file itself is damaged: not a database, a malformed
/// image (garbage bytes, a truncated file), or a value of the wrong type in a column.
fn is_damage(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode;
    match e {
        rusqlite::Error::SqliteFailure(f, msg) => {
            matches!(f.code, ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
                || msg
                    .as_deref()
                    .is_some_and(|m| m.contains("no such column") || m.contains("malformed"))
        }
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnName(_)
        | rusqlite::Error::InvalidColumnIndex(_) => true,
        _ => false,
    }
}

/// The message for a damaged state file: which file, what was found, and what to do.
fn damaged(path: &Path, what: &str) -> StoreError {
    let p = path.display();
    StoreError::Other(format!(
        "the local state file {p} is damaged ({what}), so retl cannot read its runs and key sets. \
         Move it aside (`mv {p} {p}.damaged`) and run again: each sync then starts over, \
         rebuilding its key set from the destination where the destination can list its \
         records (`retl verify SYNC` compares them); the run history starts over too"
    ))
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS keyset (
    sync TEXT NOT NULL,
    shard INTEGER NOT NULL,
    key TEXT NOT NULL,
    hash BLOB NOT NULL,
    state INTEGER NOT NULL,
    origin INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (sync, shard, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    sync TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_sync ON runs (sync, run_id);
CREATE TABLE IF NOT EXISTS locks (
    sync TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    acquired_at TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sync_state (
    sync TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    sync TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (sync, version)
);
"#;

impl SqliteStateStore {
    /// Opens (and creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let opened = || -> Result<Connection, StateError> {
            let conn = Connection::open(path)?;
            conn.busy_timeout(BUSY_WAIT)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            // IMMEDIATE takes the write lock first: schema statements that read and then
            // write would otherwise fail at once when another process wrote in between.
            conn.execute_batch(&format!("BEGIN IMMEDIATE;{SCHEMA}COMMIT;"))?;
            Ok(conn)
        };
        let conn = opened_when_free(opened).map_err(|e| match e {
            StateError::Sqlite(e) if !is_damage(&e) => {
                let said = e.to_string();
                match StoreError::from(e) {
                    busy @ StoreError::Unavailable(_) => busy,
                    _ => StoreError::Other(format!(
                        "cannot open the local state file {}: {said}",
                        path.display()
                    )),
                }
            }
            e => named(path, e),
        })?;
        Ok(SqliteStateStore {
            conn: Arc::new(Mutex::new(conn)),
            readers: Arc::new(Mutex::new(Vec::new())),
            path: Arc::new(path.to_path_buf()),
        })
    }

    /// Runs a read on a read-only connection of the pool (opened when none is free), off
    /// the async workers, with a damaged file reported as [`Self::guard`] does.
    async fn read<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Connection) -> Result<T, StateError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = this.pool().pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => this.guard(|| {
                    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                    let conn = Connection::open_with_flags(this.path.as_path(), flags)?;
                    conn.busy_timeout(BUSY_WAIT)?;
                    Ok(conn)
                })?,
            };
            let out = this.guard(|| op(&conn));
            let mut pool = this.pool();
            if pool.len() < READERS {
                pool.push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::Other(format!("a state read stopped: {e}")))?
    }

    fn pool(&self) -> MutexGuard<'_, Vec<Connection>> {
        self.readers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs one store operation; a damaged file is reported with its name and the fix.
    fn guard<T>(&self, op: impl FnOnce() -> Result<T, StateError>) -> Result<T, StoreError> {
        op().map_err(|e| named(&self.path, e))
    }

    fn db(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll
        // back), so a poisoned mutex is safe to reuse.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Other(e.to_string()))
}

fn parse<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StateError> {
    serde_json::from_str(s)
        .map_err(|e| StateError::Damaged(format!("a stored record does not read back: {e}")))
}

/// A store error, with the file named when the failure means it is damaged.
fn named(path: &Path, e: StateError) -> StoreError {
    match e {
        StateError::Sqlite(e) if is_damage(&e) => damaged(path, &e.to_string()),
        StateError::Sqlite(e) => e.into(),
        StateError::Store(e) => e,
        StateError::Damaged(what) => damaged(path, &what),
    }
}

fn state_code(s: KeyState) -> i64 {
    match s {
        KeyState::Present => 0,
        KeyState::Deleted => 1,
    }
}

fn origin_code(o: KeyOrigin) -> i64 {
    match o {
        KeyOrigin::Baseline => 0,
        KeyOrigin::Synced => 1,
    }
}

#[async_trait]
impl KeySetStore for SqliteStateStore {
    async fn load_shard(
        &self,
        sync: &str,
        shard: u32,
        _shards: u32,
    ) -> Result<Vec<(String, KeyEntry)>, StoreError> {
        let sync = sync.to_string();
        self.read(move |db| {
            let mut stmt = db.prepare_cached(
                "SELECT key, hash, state, origin, updated_at FROM keyset WHERE sync = ?1 AND shard = ?2",
            )?;
            let rows = stmt.query_map(params![sync, shard], |r| {
                // Read in place: a million keys cost no allocation for their hashes.
                let hash = r.get_ref(1)?.as_blob()?;
                let mut h = [0u8; 16];
                if hash.len() == 16 {
                    h.copy_from_slice(hash);
                }
                Ok((
                    r.get::<_, String>(0)?,
                    KeyEntry {
                        hash: u128::from_be_bytes(h),
                        state: if r.get::<_, i64>(2)? == 1 {
                            KeyState::Deleted
                        } else {
                            KeyState::Present
                        },
                        origin: if r.get::<_, i64>(3)? == 1 {
                            KeyOrigin::Synced
                        } else {
                            KeyOrigin::Baseline
                        },
                        updated_at: r.get(4)?,
                    },
                ))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn apply(
        &self,
        sync: &str,
        shards: u32,
        changes: &[KeyChange],
    ) -> Result<(), StoreError> {
        self.guard(|| {
            let mut db = self.db();
            let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut put = tx.prepare_cached(
                    "INSERT INTO keyset (sync, shard, key, hash, state, origin, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (sync, shard, key) DO UPDATE SET
                       hash = excluded.hash, state = excluded.state,
                       origin = excluded.origin, updated_at = excluded.updated_at",
                )?;
                let mut del = tx.prepare_cached(
                    "DELETE FROM keyset WHERE sync = ?1 AND shard = ?2 AND key = ?3",
                )?;
                for c in changes {
                    let shard = shard_of(c.key(), shards);
                    match c {
                        KeyChange::Put { key, entry } => {
                            put.execute(params![
                                sync,
                                shard,
                                key,
                                entry.hash.to_be_bytes().to_vec(),
                                state_code(entry.state),
                                origin_code(entry.origin),
                                entry.updated_at
                            ])?;
                        }
                        KeyChange::Remove { key } => {
                            del.execute(params![sync, shard, key])?;
                        }
                    }
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    async fn counts(&self, sync: &str, shards: u32) -> Result<Vec<u64>, StoreError> {
        let sync = sync.to_string();
        self.read(move |db| {
            let mut stmt = db.prepare_cached(
                "SELECT shard, COUNT(*) FROM keyset WHERE sync = ?1 GROUP BY shard",
            )?;
            let rows = stmt.query_map(params![sync], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })?;
            let mut counts = vec![0u64; shards as usize];
            for row in rows {
                let (shard, n) = row?;
                // Rows written with more shards than asked for are not in any of `0..shards`:
                // they are not counted, so a changed shard count shows as entries gone.
                if let Some(c) = usize::try_from(shard).ok().and_then(|i| counts.get_mut(i)) {
                    *c = u64::try_from(n).unwrap_or(0);
                }
            }
            Ok(counts)
        })
        .await
    }

    async fn clear(&self, sync: &str, _shards: u32) -> Result<(), StoreError> {
        self.guard(|| {
            self.db()
                .execute("DELETE FROM keyset WHERE sync = ?1", params![sync])?;
            Ok(())
        })
    }
}

fn upsert_run(tx: &Transaction<'_>, run: &RunRecord, body: &str) -> Result<(), StateError> {
    tx.execute(
        "INSERT INTO runs (run_id, sync, body) VALUES (?1, ?2, ?3)
         ON CONFLICT (run_id) DO UPDATE SET body = excluded.body",
        params![run.run_id, run.sync, body],
    )?;
    Ok(())
}

fn lock_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, String, String, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn to_lock(row: (String, String, String, String, String)) -> Result<LockInfo, StateError> {
    let t = |s: &str| -> Result<DateTime<Utc>, StateError> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .map_err(|e| StateError::Damaged(format!("a lock's time does not read back: {e}")))
    };
    Ok(LockInfo {
        sync: row.0,
        run_id: row.1,
        owner: row.2,
        acquired_at: t(&row.3)?,
        heartbeat_at: t(&row.4)?,
    })
}

#[async_trait]
impl RunStore for SqliteStateStore {
    /// One IMMEDIATE transaction: the lock row and the run row are written together or not
    /// at all, and no other process writes between the check and the write.
    async fn lock_and_start(
        &self,
        run: &RunRecord,
        owner: &str,
    ) -> Result<LockOutcome, StoreError> {
        self.guard(|| {
            let body = json(run)?;
            let mut db = self.db();
            let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let row = tx
                .query_row(
                    "SELECT sync, run_id, owner, acquired_at, heartbeat_at FROM locks WHERE sync = ?1",
                    params![run.sync],
                    lock_row,
                )
                .optional()?;
            match row.map(to_lock).transpose()? {
                // Dropping the transaction rolls it back: nothing was written.
                Some(holder) if holder.run_id != run.run_id => return Ok(LockOutcome::Held(holder)),
                Some(_) => {}
                None => {
                    tx.execute(
                        "INSERT INTO locks (sync, run_id, owner, acquired_at, heartbeat_at)
                         VALUES (?1, ?2, ?3, ?4, ?4)",
                        params![run.sync, run.run_id, owner, Utc::now().to_rfc3339()],
                    )?;
                }
            }
            upsert_run(&tx, run, &body)?;
            tx.commit()?;
            Ok(LockOutcome::Acquired)
        })
    }

    async fn take_over_and_start(
        &self,
        from_run: &str,
        run: &RunRecord,
        owner: &str,
    ) -> Result<bool, StoreError> {
        self.guard(|| {
            let body = json(run)?;
            let mut db = self.db();
            let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "UPDATE locks SET run_id = ?3, owner = ?4, acquired_at = ?5, heartbeat_at = ?5
                 WHERE sync = ?1 AND run_id = ?2",
                params![
                    run.sync,
                    from_run,
                    run.run_id,
                    owner,
                    Utc::now().to_rfc3339()
                ],
            )?;
            if n != 1 {
                return Ok(false);
            }
            upsert_run(&tx, run, &body)?;
            tx.commit()?;
            Ok(true)
        })
    }

    async fn heartbeat(&self, sync: &str, run_id: &str) -> Result<bool, StoreError> {
        self.guard(|| {
            let now = Utc::now().to_rfc3339();
            let n = self.db().execute(
                "UPDATE locks SET heartbeat_at = ?3 WHERE sync = ?1 AND run_id = ?2",
                params![sync, run_id, now],
            )?;
            Ok(n == 1)
        })
    }

    async fn unlock(&self, sync: &str, run_id: &str) -> Result<(), StoreError> {
        self.guard(|| {
            self.db().execute(
                "DELETE FROM locks WHERE sync = ?1 AND run_id = ?2",
                params![sync, run_id],
            )?;
            Ok(())
        })
    }

    async fn lock_holder(&self, sync: &str) -> Result<Option<LockInfo>, StoreError> {
        self.guard(|| {
            let row = self
                .db()
                .query_row(
                    "SELECT sync, run_id, owner, acquired_at, heartbeat_at FROM locks WHERE sync = ?1",
                    params![sync],
                    lock_row,
                )
                .optional()?;
            row.map(to_lock).transpose()
        })
    }

    async fn put_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        self.guard(|| {
            let body = json(run)?;
            let mut db = self.db();
            let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
            upsert_run(&tx, run, &body)?;
            tx.commit()?;
            Ok(())
        })
    }

    async fn get_run(&self, run_id: &str) -> Result<RunRecord, StoreError> {
        self.guard(|| {
            let body: Option<String> = self
                .db()
                .query_row(
                    "SELECT body FROM runs WHERE run_id = ?1",
                    params![run_id],
                    |r| r.get(0),
                )
                .optional()?;
            match body {
                Some(b) => parse(&b),
                None => Err(StoreError::NotFound(format!("run {run_id}")).into()),
            }
        })
    }

    async fn list_runs(
        &self,
        sync: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError> {
        self.guard(|| {
            let db = self.db();
            let bodies: Vec<String> = match sync {
                Some(s) => {
                    let mut stmt = db.prepare(
                        "SELECT body FROM runs WHERE sync = ?1 ORDER BY run_id DESC LIMIT ?2",
                    )?;
                    let rows = stmt.query_map(params![s, limit as i64], |r| r.get(0))?;
                    rows.collect::<Result<_, _>>()?
                }
                None => {
                    let mut stmt =
                        db.prepare("SELECT body FROM runs ORDER BY run_id DESC LIMIT ?1")?;
                    let rows = stmt.query_map(params![limit as i64], |r| r.get(0))?;
                    rows.collect::<Result<_, _>>()?
                }
            };
            bodies.iter().map(|b| parse(b)).collect()
        })
    }

    async fn sync_state(&self, sync: &str) -> Result<SyncState, StoreError> {
        self.guard(|| {
            let body: Option<String> = self
                .db()
                .query_row(
                    "SELECT body FROM sync_state WHERE sync = ?1",
                    params![sync],
                    |r| r.get(0),
                )
                .optional()?;
            match body {
                Some(b) => parse(&b),
                None => Ok(SyncState {
                    sync: sync.to_string(),
                    ..SyncState::default()
                }),
            }
        })
    }

    async fn put_sync_state(&self, state: &SyncState) -> Result<(), StoreError> {
        self.guard(|| {
            let body = json(state)?;
            self.db().execute(
                "INSERT INTO sync_state (sync, body) VALUES (?1, ?2)
                 ON CONFLICT (sync) DO UPDATE SET body = excluded.body",
                params![state.sync, body],
            )?;
            Ok(())
        })
    }

    async fn record_version(
        &self,
        def: &SyncDef,
        note: Option<&str>,
        deployed_by: Option<&str>,
    ) -> Result<ConfigVersion, StoreError> {
        self.guard(|| {
            let mut db = self.db();
            // IMMEDIATE: a deferred transaction that read an older snapshot fails at its first
            // write with "database is locked" at once, whatever the busy timeout.
            let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let latest: Option<String> = tx
                .query_row(
                    "SELECT body FROM versions WHERE sync = ?1 ORDER BY version DESC LIMIT 1",
                    params![def.name],
                    |r| r.get(0),
                )
                .optional()?;
            let latest: Option<ConfigVersion> = latest.map(|b| parse(&b)).transpose()?;
            let hash = def.config_hash();
            if let Some(v) = &latest {
                if v.config_hash == hash {
                    if note.is_none() {
                        return Ok(v.clone());
                    }
                    // Same definition saved again with a note: keep the note on the version.
                    let mut v = v.clone();
                    v.note = note.map(str::to_string);
                    if let Some(by) = deployed_by {
                        v.deployed_by = Some(by.to_string());
                    }
                    tx.execute(
                        "UPDATE versions SET body = ?3 WHERE sync = ?1 AND version = ?2",
                        params![def.name, v.version, json(&v)?],
                    )?;
                    tx.commit()?;
                    return Ok(v);
                }
            }
            let v = ConfigVersion {
                sync: def.name.clone(),
                version: latest.map(|v| v.version + 1).unwrap_or(1),
                config_hash: hash,
                definition: def.clone(),
                note: note.map(str::to_string),
                deployed_by: deployed_by.map(str::to_string),
                created_at: Utc::now(),
            };
            tx.execute(
                "INSERT INTO versions (sync, version, body) VALUES (?1, ?2, ?3)",
                params![def.name, v.version, json(&v)?],
            )?;
            tx.commit()?;
            Ok(v)
        })
    }

    async fn versions(&self, sync: &str) -> Result<Vec<ConfigVersion>, StoreError> {
        self.guard(|| {
            let db = self.db();
            let mut stmt =
                db.prepare("SELECT body FROM versions WHERE sync = ?1 ORDER BY version")?;
            let rows = stmt.query_map(params![sync], |r| r.get::<_, String>(0))?;
            let bodies: Vec<String> = rows.collect::<Result<_, _>>()?;
            bodies.iter().map(|b| parse(b)).collect()
        })
    }
}
