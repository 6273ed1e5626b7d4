//! The local adapters of the ports (SQLite, files, environment, terminal): each port's
//! contract suite (`retl_tests::contracts`, the same the AWS adapters run on moto), then what
//! only the local adapters do.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use retl_shared::adapters::local::{
    EnvSecrets, FileObjectStore, SqliteStateStore, TerminalNotifier,
};
use retl_shared::ports::{Notifier, ObjectStore, RunStore, Secrets, StoreError};
use retl_tests::contracts::notifier::{self, NotifierBackend};
use retl_tests::contracts::secrets::{self, SecretsBackend};
use retl_tests::contracts::{keyset, object_store, runs};

#[tokio::test(flavor = "multi_thread")]
async fn file_object_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    object_store::all(&FileObjectStore::new(dir.path().join("objects"))).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_key_set_contract() {
    let dir = tempfile::tempdir().unwrap();
    keyset::all(&SqliteStateStore::open(&dir.path().join("state.db")).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_run_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    runs::all(&|| -> Arc<dyn RunStore> {
        Arc::new(SqliteStateStore::open(&path).expect("open the state"))
    })
    .await;
}

/// Environment variables (the contract's names start with `CONTRACT_`; no other test uses
/// them).
struct Env;

#[async_trait]
impl SecretsBackend for Env {
    fn secrets(&self) -> Arc<dyn Secrets> {
        Arc::new(EnvSecrets)
    }
    async fn set(&self, name: &str, value: &str) {
        // std serializes its own environment access.
        std::env::set_var(name, value);
    }
    fn hint_for(&self, name: &str) -> String {
        format!("export {name}=")
    }
}

#[tokio::test]
async fn env_secrets_contract() {
    secrets::all(&Env).await;
}

struct Terminal {
    lines: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl NotifierBackend for Terminal {
    fn notifier(&self) -> Arc<dyn Notifier> {
        Arc::new(TerminalNotifier::into_buffer(self.lines.clone()))
    }
    async fn delivered(&self, _at_least: usize) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn terminal_notifier_contract() {
    notifier::all(&Terminal {
        lines: Arc::default(),
    })
    .await;
}

/// What only the file store does: keys never leave its folder, locations are paths, and an
/// empty environment variable counts as unset.
#[tokio::test]
async fn files_stay_in_their_folder_and_empty_variables_are_unset() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileObjectStore::new(dir.path());
    for bad in ["../escape", "a/../../b", "a//b", "/abs"] {
        let err = s.put(bad, Bytes::new()).await;
        assert!(matches!(err, Err(StoreError::Other(_))), "{bad}: {err:?}");
    }
    assert_eq!(
        s.location("runs/r1/a.bin"),
        dir.path().join("runs/r1/a.bin").display().to_string()
    );
    std::env::set_var("RETL_CONTRACT_EMPTY", "");
    let err = EnvSecrets.get("RETL_CONTRACT_EMPTY").await;
    assert!(err.is_err(), "{err:?}");
}
