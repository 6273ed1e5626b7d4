//! A shard's packed entries: buckets of sorted entries, the manifest that lists them, and
//! folding changes into them. No I/O here: the store reads and writes what these compute.
//!
//! Bucket `i` holds the keys from its first key up to the next bucket's first key (the first
//! bucket also holds every key below its own first key), so a change lands in exactly one
//! bucket and folding a few changes rewrites only the buckets they fall in.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::packing::{BlobReader, BlobWriter};
use crate::ports::{KeyEntry, StoreError};

/// Uncompressed bytes of entries per bucket (~22 KB deflated: rewriting one bucket is ~22
/// write units, and a no-change run reads the whole shard in 4 KB read units at ~20 bytes a
/// key).
const BUCKET_BYTES: usize = 32 * 1024;

/// One bucket as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BucketRef {
    /// Its item's id (sort key `b#{id:016x}`); ids are never reused within a shard.
    pub(super) id: u64,
    /// Entries in it.
    pub(super) entries: u64,
    /// Its smallest key.
    pub(super) first_key: String,
}

/// What a shard holds: its buckets in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Manifest {
    /// Bumped by every fold; a fold writes the manifest only over the version it read.
    pub(super) version: u64,
    /// The next bucket id to hand out.
    pub(super) next_id: u64,
    /// The buckets, in key order.
    pub(super) buckets: Vec<BucketRef>,
}

impl Manifest {
    /// Entries in the shard.
    pub(super) fn entries(&self) -> u64 {
        self.buckets.iter().map(|b| b.entries).sum()
    }

    /// The bucket list as a blob.
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut w = BlobWriter::new();
        for b in &self.buckets {
            w.bucket(b.id, b.entries, &b.first_key);
        }
        w.finish()
    }

    /// A manifest from its attributes.
    pub(super) fn decode(version: u64, next_id: u64, blob: &[u8]) -> Result<Self, StoreError> {
        let mut r = BlobReader::new(blob, "a key-set manifest")?;
        let mut buckets = Vec::new();
        while !r.done() {
            let (id, entries, first_key) = r.bucket()?;
            if id >= next_id {
                return Err(StoreError::Other(format!(
                    "corrupt item: a key-set manifest lists bucket {id} but hands out ids from {next_id}"
                )));
            }
            buckets.push(BucketRef {
                id,
                entries,
                first_key,
            });
        }
        Ok(Manifest {
            version,
            next_id,
            buckets,
        })
    }

    /// The index of the bucket `key` belongs in (0 when there are no buckets).
    pub(super) fn bucket_for(&self, key: &str) -> usize {
        self.buckets
            .partition_point(|b| b.first_key.as_str() <= key)
            .saturating_sub(1)
    }
}

/// The entries of one bucket blob, in key order.
pub(super) fn decode_bucket(blob: &[u8]) -> Result<Vec<(String, KeyEntry)>, StoreError> {
    let mut r = BlobReader::new(blob, "a key-set bucket")?;
    let mut out = Vec::new();
    while !r.done() {
        out.push(r.entry()?);
    }
    Ok(out)
}

/// The last change of each key, in key order: `None` removes the key.
pub(super) type Folded = BTreeMap<String, Option<KeyEntry>>;

/// `entries` (sorted by key) with `changes` applied, sorted by key.
pub(super) fn fold(
    entries: Vec<(String, KeyEntry)>,
    changes: &mut std::iter::Peekable<impl Iterator<Item = (String, Option<KeyEntry>)>>,
    below: Option<&str>,
) -> Vec<(String, KeyEntry)> {
    let mut out = Vec::with_capacity(entries.len());
    let mut entries = entries.into_iter().peekable();
    loop {
        let next_change = changes
            .peek()
            .filter(|(k, _)| below.is_none_or(|b| k.as_str() < b));
        match (entries.peek(), next_change) {
            (None, None) => break,
            (Some(_), None) => out.extend(entries.by_ref()),
            (Some((ek, _)), Some((ck, _))) if ek < ck => out.extend(entries.next()),
            (e, Some(_)) => {
                let (key, change) = changes.next().expect("peeked");
                if e.is_some_and(|(ek, _)| *ek == key) {
                    entries.next();
                }
                if let Some(entry) = change {
                    out.push((key, entry));
                }
            }
        }
    }
    out
}

/// Sorted entries cut into bucket blobs of about [`BUCKET_BYTES`] each:
/// (blob, entries, first key).
pub(super) fn pack(entries: &[(String, KeyEntry)]) -> Vec<(Vec<u8>, u64, String)> {
    let mut out = Vec::new();
    let mut w = BlobWriter::new();
    let mut count = 0u64;
    let mut first: Option<&str> = None;
    for (key, entry) in entries {
        w.entry(key, entry);
        count += 1;
        let first_key = *first.get_or_insert(key);
        if w.raw_len() >= BUCKET_BYTES {
            out.push((
                std::mem::replace(&mut w, BlobWriter::new()).finish(),
                count,
                first_key.to_string(),
            ));
            count = 0;
            first = None;
        }
    }
    if let Some(first_key) = first {
        out.push((w.finish(), count, first_key.to_string()));
    }
    out
}

/// The entries of bucket `i` inside its range: a bucket split by a fold that stopped before
/// rewriting it still holds the entries its new neighbour took over.
pub(super) fn in_range(
    mut entries: Vec<(String, KeyEntry)>,
    manifest: &Manifest,
    i: usize,
) -> Vec<(String, KeyEntry)> {
    if let Some(next) = manifest.buckets.get(i + 1) {
        entries.retain(|(k, _)| *k < next.first_key);
    }
    if i > 0 {
        let start = &manifest.buckets[i].first_key;
        entries.retain(|(k, _)| k >= start);
    }
    entries
}

/// What a fold writes, as (bucket id, blob, bytes of the item it replaces).
pub(super) struct FoldPlan {
    /// The manifest naming the buckets after the fold.
    pub(super) next: Manifest,
    /// New buckets, written before the manifest.
    pub(super) added: Vec<(u64, Vec<u8>, usize)>,
    /// Buckets rewritten in place, after the manifest.
    pub(super) rewritten: Vec<(u64, Vec<u8>, usize)>,
}

/// Folds `changes` into the buckets of `current` they fall in (`touched`, read into `read`:
/// entries and item size), or, for a shard with no buckets yet, into `base` (its per-key
/// entries, if any). A changed bucket keeps its id and its range's start, even when emptied;
/// what outgrows it goes to new buckets after it.
pub(super) fn plan_fold(
    current: &Manifest,
    base: Vec<(String, KeyEntry)>,
    mut read: HashMap<u64, (Vec<(String, KeyEntry)>, usize)>,
    touched: &BTreeSet<usize>,
    changes: Folded,
) -> FoldPlan {
    let mut plan = FoldPlan {
        next: Manifest {
            version: current.version + 1,
            next_id: current.next_id,
            buckets: Vec::with_capacity(current.buckets.len() + 1),
        },
        added: Vec::new(),
        rewritten: Vec::new(),
    };
    let add = |plan: &mut FoldPlan, chunks: &mut dyn Iterator<Item = (Vec<u8>, u64, String)>| {
        for (blob, count, first_key) in chunks {
            let id = plan.next.next_id;
            plan.next.next_id += 1;
            plan.added.push((id, blob, 0));
            plan.next.buckets.push(BucketRef {
                id,
                entries: count,
                first_key,
            });
        }
    };
    let mut changes = changes.into_iter().peekable();
    if current.buckets.is_empty() {
        add(
            &mut plan,
            &mut pack(&fold(base, &mut changes, None)).into_iter(),
        );
    }
    for (i, bucket) in current.buckets.iter().enumerate() {
        if !touched.contains(&i) {
            plan.next.buckets.push(bucket.clone());
            continue;
        }
        let below = current.buckets.get(i + 1).map(|b| b.first_key.as_str());
        let (entries, size) = read.remove(&bucket.id).unwrap_or_default();
        let entries = in_range(entries, current, i);
        let mut chunks = pack(&fold(entries, &mut changes, below)).into_iter();
        let (blob, count) = chunks
            .next()
            .map_or_else(|| (BlobWriter::new().finish(), 0), |(b, n, _)| (b, n));
        plan.rewritten.push((bucket.id, blob, size));
        plan.next.buckets.push(BucketRef {
            id: bucket.id,
            entries: count,
            first_key: bucket.first_key.clone(),
        });
        add(&mut plan, &mut chunks);
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{KeyOrigin, KeyState};

    fn e(hash: u128) -> KeyEntry {
        KeyEntry {
            hash,
            state: KeyState::Present,
            origin: KeyOrigin::Synced,
            updated_at: 1,
        }
    }

    fn sorted(keys: &[(&str, u128)]) -> Vec<(String, KeyEntry)> {
        keys.iter()
            .map(|(k, h)| ((*k).to_string(), e(*h)))
            .collect()
    }

    #[test]
    fn fold_applies_puts_overwrites_and_removals_in_key_order() {
        let entries = sorted(&[("b", 1), ("d", 2), ("f", 3)]);
        let changes: Folded = [
            ("a".to_string(), Some(e(10))),
            ("d".to_string(), None),
            ("e".to_string(), Some(e(11))),
            ("f".to_string(), Some(e(12))),
            ("z".to_string(), None),
        ]
        .into_iter()
        .collect();
        let mut it = changes.into_iter().peekable();
        let out = fold(entries, &mut it, None);
        assert_eq!(out, sorted(&[("a", 10), ("b", 1), ("e", 11), ("f", 12)]));
        assert!(it.next().is_none());
    }

    #[test]
    fn fold_stops_at_the_next_bucket() {
        let changes: Folded = [("a".to_string(), Some(e(1))), ("m".to_string(), Some(e(2)))]
            .into_iter()
            .collect();
        let mut it = changes.into_iter().peekable();
        assert_eq!(fold(vec![], &mut it, Some("m")), sorted(&[("a", 1)]));
        assert_eq!(fold(vec![], &mut it, None), sorted(&[("m", 2)]));
    }

    #[test]
    fn buckets_cover_every_key_once() {
        let entries: Vec<(String, KeyEntry)> = (0..5000u32)
            .map(|i| (format!("{i:06}"), e(u128::from(i))))
            .collect();
        let packed = pack(&entries);
        assert!(packed.len() > 2, "{} buckets", packed.len());
        let mut manifest = Manifest::default();
        let mut back = Vec::new();
        for (i, (blob, n, first)) in packed.iter().enumerate() {
            let got = decode_bucket(blob).unwrap();
            assert_eq!(got.len() as u64, *n);
            assert_eq!(&got[0].0, first);
            back.extend(got);
            manifest.buckets.push(BucketRef {
                id: i as u64,
                entries: *n,
                first_key: first.clone(),
            });
        }
        manifest.next_id = packed.len() as u64;
        assert_eq!(back, entries);
        assert_eq!(manifest.entries(), 5000);
        for (i, b) in manifest.buckets.iter().enumerate() {
            assert_eq!(manifest.bucket_for(&b.first_key), i);
        }
        assert_eq!(manifest.bucket_for(""), 0, "below every bucket: the first");
        assert_eq!(manifest.bucket_for("~"), packed.len() - 1);
        let again = Manifest::decode(3, manifest.next_id, &manifest.encode()).unwrap();
        assert_eq!(again.buckets, manifest.buckets);
        assert!(
            Manifest::decode(3, 1, &manifest.encode()).is_err(),
            "ids past next_id"
        );
    }
}
