//! The contract of [`KeySetStore`]: per-sync key sets split in shards, moved only by
//! applied changes. Every backend runs every function here.

use std::collections::BTreeMap;

use retl_shared::ports::{KeyChange, KeyEntry, KeyOrigin, KeySetStore, KeyState};
use retl_shared::record::shard_of;

fn entry(hash: u128, state: KeyState, origin: KeyOrigin, updated_at: i64) -> KeyEntry {
    KeyEntry {
        hash,
        state,
        origin,
        updated_at,
    }
}

/// Every entry of a key set, checking each key comes from its own shard and only one.
pub async fn load_all(
    ks: &dyn KeySetStore,
    keyset: &str,
    shards: u32,
) -> BTreeMap<String, KeyEntry> {
    let mut all = BTreeMap::new();
    for shard in 0..shards {
        for (key, e) in ks.load_shard(keyset, shard, shards).await.unwrap() {
            assert_eq!(
                shard_of(&key, shards),
                shard,
                "{key} loaded from the wrong shard"
            );
            assert!(all.insert(key, e).is_none(), "a key in two shards");
        }
    }
    all
}

fn puts(range: std::ops::Range<u32>, expected: &mut BTreeMap<String, KeyEntry>) -> Vec<KeyChange> {
    range
        .map(|i| {
            let e = entry(
                u128::from(i).wrapping_mul(0x0123_4567_89ab_cdef_0fed_cba9_8765_4321),
                KeyState::Present,
                KeyOrigin::Synced,
                1_700_000_000 + i64::from(i),
            );
            expected.insert(format!("k{i}"), e);
            KeyChange::Put {
                key: format!("k{i}"),
                entry: e,
            }
        })
        .collect()
}

/// Puts land in their shards with every field kept (full 128-bit hashes, both states and
/// origins); overwrites, removals and a key changed twice in one apply (the last change
/// wins); removing a key never there is fine; an empty apply is fine.
pub async fn applies_and_loads(ks: &dyn KeySetStore) {
    let (set, shards) = ("people@abc", 4);
    assert!(load_all(ks, set, shards).await.is_empty());
    ks.apply(set, shards, &[]).await.unwrap();

    let mut expected = BTreeMap::new();
    ks.apply(set, shards, &puts(0..60, &mut expected))
        .await
        .unwrap();
    assert_eq!(load_all(ks, set, shards).await, expected);
    for shard in 0..shards {
        assert!(
            !ks.load_shard(set, shard, shards).await.unwrap().is_empty(),
            "shard {shard} empty"
        );
    }

    let mut changes = Vec::new();
    for i in 0..10 {
        let e = entry(u128::MAX, KeyState::Deleted, KeyOrigin::Baseline, 42);
        expected.insert(format!("k{i}"), e);
        changes.push(KeyChange::Put {
            key: format!("k{i}"),
            entry: e,
        });
    }
    for i in 10..20 {
        expected.remove(&format!("k{i}"));
        changes.push(KeyChange::Remove {
            key: format!("k{i}"),
        });
    }
    let zero = entry(0, KeyState::Present, KeyOrigin::Baseline, 7);
    changes.push(KeyChange::Put {
        key: "k20".into(),
        entry: zero,
    });
    changes.push(KeyChange::Remove { key: "k20".into() });
    expected.remove("k20");
    changes.push(KeyChange::Remove { key: "k21".into() });
    changes.push(KeyChange::Put {
        key: "k21".into(),
        entry: zero,
    });
    expected.insert("k21".into(), zero);
    changes.push(KeyChange::Remove {
        key: "never-there".into(),
    });
    ks.apply(set, shards, &changes).await.unwrap();
    assert_eq!(load_all(ks, set, shards).await, expected);
}

/// Keys as the engine writes them: canonical numbers, composite keys (JSON arrays), unicode,
/// quotes and separators come back byte for byte.
pub async fn keeps_keys_verbatim(ks: &dyn KeySetStore) {
    let (set, shards) = ("odd@keys", 16);
    let keys = [
        "2",
        "-0.5",
        "[\"a\",1]",
        "ünïcödé ✓",
        "with 'quotes' and \"doubles\"",
        "a#0001",
        "slash/and\\back",
        "tab\tnewline\n",
    ];
    let e = entry(5, KeyState::Present, KeyOrigin::Synced, 1);
    let changes: Vec<KeyChange> = keys
        .iter()
        .map(|k| KeyChange::Put {
            key: (*k).to_string(),
            entry: e,
        })
        .collect();
    ks.apply(set, shards, &changes).await.unwrap();
    let loaded = load_all(ks, set, shards).await;
    let mut want: Vec<&str> = keys.to_vec();
    want.sort_unstable();
    assert_eq!(loaded.keys().map(String::as_str).collect::<Vec<_>>(), want);
}

/// One apply of more changes than any backend writes per request (DynamoDB: 25) is whole.
pub async fn applies_many_changes_at_once(ks: &dyn KeySetStore) {
    let (set, shards) = ("many@keys", 16);
    let mut expected = BTreeMap::new();
    ks.apply(set, shards, &puts(0..1000, &mut expected))
        .await
        .unwrap();
    assert_eq!(load_all(ks, set, shards).await, expected);
    let removes: Vec<KeyChange> = (0..500)
        .map(|i| {
            expected.remove(&format!("k{i}"));
            KeyChange::Remove {
                key: format!("k{i}"),
            }
        })
        .collect();
    ks.apply(set, shards, &removes).await.unwrap();
    assert_eq!(load_all(ks, set, shards).await, expected);
}

/// Key sets are separate: clearing one leaves the others, and the same key in two sets is
/// two entries.
pub async fn clears_one_key_set_only(ks: &dyn KeySetStore) {
    let shards = 4;
    let a = entry(1, KeyState::Present, KeyOrigin::Synced, 1);
    let b = entry(2, KeyState::Deleted, KeyOrigin::Baseline, 2);
    let put = |e| {
        [KeyChange::Put {
            key: "k1".into(),
            entry: e,
        }]
    };
    ks.apply("mine@x", shards, &put(a)).await.unwrap();
    ks.apply("other@y", shards, &put(b)).await.unwrap();
    assert_eq!(load_all(ks, "mine@x", shards).await["k1"], a);
    assert_eq!(load_all(ks, "other@y", shards).await["k1"], b);
    ks.clear("mine@x", shards).await.unwrap();
    assert!(load_all(ks, "mine@x", shards).await.is_empty());
    assert_eq!(load_all(ks, "other@y", shards).await.len(), 1);
    ks.clear("never@used", shards).await.unwrap();
}

/// Counts are per shard of the shard count asked for, count present and deleted entries,
/// follow puts, overwrites and removals, are zero for a cleared or never used key set, and
/// see only their own key set: what the plan's state-loss check relies on.
pub async fn counts_entries_per_shard(ks: &dyn KeySetStore) {
    let (set, shards) = ("counted@abc", 4);
    assert_eq!(ks.counts(set, shards).await.unwrap(), vec![0; 4]);
    let mut expected = BTreeMap::new();
    ks.apply(set, shards, &puts(0..50, &mut expected))
        .await
        .unwrap();
    ks.apply("neighbour@abc", shards, &puts(0..7, &mut BTreeMap::new()))
        .await
        .unwrap();
    let per_shard = |keys: &BTreeMap<String, KeyEntry>| {
        let mut c = vec![0u64; shards as usize];
        for k in keys.keys() {
            c[shard_of(k, shards) as usize] += 1;
        }
        c
    };
    assert_eq!(ks.counts(set, shards).await.unwrap(), per_shard(&expected));
    let mut changes = vec![KeyChange::Put {
        key: "k1".into(),
        entry: entry(9, KeyState::Deleted, KeyOrigin::Synced, 9),
    }];
    for i in 10..20 {
        expected.remove(&format!("k{i}"));
        changes.push(KeyChange::Remove {
            key: format!("k{i}"),
        });
    }
    ks.apply(set, shards, &changes).await.unwrap();
    let now = ks.counts(set, shards).await.unwrap();
    assert_eq!(now, per_shard(&expected));
    assert_eq!(now.iter().sum::<u64>(), 40, "a deleted entry still counts");
    ks.clear(set, shards).await.unwrap();
    assert_eq!(ks.counts(set, shards).await.unwrap(), vec![0; 4]);
    assert_eq!(
        ks.counts("neighbour@abc", shards)
            .await
            .unwrap()
            .iter()
            .sum::<u64>(),
        7
    );
    assert!(ks.counts("never@used", 2).await.unwrap() == vec![0, 0]);
}

/// Compaction changes nothing a load returns: over applies big enough to fill several
/// packed buckets per shard, overwrites and removals of some keys, every key of a range
/// removed, and a compaction with nothing to fold; counts follow.
pub async fn compaction_keeps_what_loads(ks: &dyn KeySetStore) {
    let (set, shards) = ("folded@abc", 4);
    ks.compact(set, shards).await.unwrap();
    assert!(load_all(ks, set, shards).await.is_empty());
    let mut expected = BTreeMap::new();
    for chunk in (0..12_000u32).collect::<Vec<_>>().chunks(3000) {
        let range = chunk[0]..chunk[chunk.len() - 1] + 1;
        ks.apply(set, shards, &puts(range, &mut expected))
            .await
            .unwrap();
    }
    assert_eq!(load_all(ks, set, shards).await, expected);
    ks.compact(set, shards).await.unwrap();
    assert_eq!(load_all(ks, set, shards).await, expected);

    // Overwrites spread over every bucket, then a run of keys removed outright.
    let mut changes = Vec::new();
    for i in (0..12_000u32).step_by(7) {
        let e = entry(u128::from(i), KeyState::Deleted, KeyOrigin::Baseline, 9);
        expected.insert(format!("k{i}"), e);
        changes.push(KeyChange::Put {
            key: format!("k{i}"),
            entry: e,
        });
    }
    for i in 1000..4000u32 {
        expected.remove(&format!("k{i}"));
        changes.push(KeyChange::Remove {
            key: format!("k{i}"),
        });
    }
    ks.apply(set, shards, &changes).await.unwrap();
    ks.apply(set, shards, &puts(20_000..20_500, &mut expected))
        .await
        .unwrap();
    assert_eq!(load_all(ks, set, shards).await, expected, "before the fold");
    ks.compact(set, shards).await.unwrap();
    assert_eq!(load_all(ks, set, shards).await, expected, "after the fold");
    ks.compact(set, shards).await.unwrap();
    assert_eq!(
        load_all(ks, set, shards).await,
        expected,
        "after a fold of nothing"
    );
    let counts = ks.counts(set, shards).await.unwrap();
    assert_eq!(counts.iter().sum::<u64>(), expected.len() as u64);
    ks.clear(set, shards).await.unwrap();
    assert!(load_all(ks, set, shards).await.is_empty());
}

/// Every function above, in order.
pub async fn all(ks: &dyn KeySetStore) {
    applies_and_loads(ks).await;
    compaction_keeps_what_loads(ks).await;
    keeps_keys_verbatim(ks).await;
    applies_many_changes_at_once(ks).await;
    clears_one_key_set_only(ks).await;
    counts_entries_per_shard(ks).await;
}
