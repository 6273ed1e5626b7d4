//! The binary form of packed key-set items: many entries (a bucket), many changes (a journal
//! item) or the bucket list of a shard (its manifest) in one deflated blob.
//!
//! A blob is a version byte, then a deflate stream of records. An entry record is the key
//! (LEB128 length, UTF-8 bytes), a flags byte (bit 0 deleted, bit 1 synced, bit 2 removed),
//! and, unless removed, the 16-byte big-endian hash and the zigzag LEB128 `updated_at`.
//! Hashes are random, so they are most of a packed entry's ~20 bytes; keys and times
//! compress well.
//!
//! Blobs come from the network: decoding checks every length and byte and reports a corrupt
//! item rather than panicking.

use std::io::{Read, Write};

use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use flate2::Compression;

use crate::ports::{KeyChange, KeyEntry, KeyOrigin, KeyState, StoreError};

/// The format version written first in every blob.
const VERSION: u8 = 1;
const DELETED: u8 = 1;
const SYNCED: u8 = 2;
const REMOVED: u8 = 4;

/// Writes records into one blob.
pub(super) struct BlobWriter {
    out: DeflateEncoder<Vec<u8>>,
    /// Bytes of records written, before compression.
    raw: usize,
    /// The record being written, kept between records so none allocates.
    rec: Vec<u8>,
}

impl BlobWriter {
    /// An empty blob.
    pub(super) fn new() -> Self {
        BlobWriter {
            out: DeflateEncoder::new(vec![VERSION], Compression::default()),
            raw: 0,
            rec: Vec::new(),
        }
    }

    /// Bytes of records written so far, uncompressed.
    pub(super) fn raw_len(&self) -> usize {
        self.raw
    }

    /// One entry.
    pub(super) fn entry(&mut self, key: &str, entry: &KeyEntry) {
        let mut flags = 0;
        if entry.state == KeyState::Deleted {
            flags |= DELETED;
        }
        if entry.origin == KeyOrigin::Synced {
            flags |= SYNCED;
        }
        self.record(|rec| {
            put_bytes(rec, key.as_bytes());
            rec.push(flags);
            rec.extend_from_slice(&entry.hash.to_be_bytes());
            put_varint(rec, zigzag(entry.updated_at));
        });
    }

    /// One change: a put is written as its entry, a removal as the key alone.
    pub(super) fn change(&mut self, change: &KeyChange) {
        match change {
            KeyChange::Put { key, entry } => self.entry(key, entry),
            KeyChange::Remove { key } => self.record(|rec| {
                put_bytes(rec, key.as_bytes());
                rec.push(REMOVED);
            }),
        }
    }

    /// One bucket of a manifest: its id, its entry count and its first key.
    pub(super) fn bucket(&mut self, id: u64, entries: u64, first_key: &str) {
        self.record(|rec| {
            put_varint(rec, id);
            put_varint(rec, entries);
            put_bytes(rec, first_key.as_bytes());
        });
    }

    fn record(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        self.rec.clear();
        write(&mut self.rec);
        self.raw += self.rec.len();
        // Writing into a Vec cannot fail.
        self.out
            .write_all(&self.rec)
            .expect("deflating into memory does not fail");
    }

    /// The finished blob.
    pub(super) fn finish(self) -> Vec<u8> {
        self.out
            .finish()
            .expect("deflating into memory does not fail")
    }
}

/// Reads the records of one blob.
pub(super) struct BlobReader {
    data: Vec<u8>,
    at: usize,
}

impl BlobReader {
    /// The records of `blob`; `what` names the item in errors.
    pub(super) fn new(blob: &[u8], what: &str) -> Result<Self, StoreError> {
        let (version, body) = blob
            .split_first()
            .ok_or_else(|| corrupt(what, "is empty"))?;
        if *version != VERSION {
            return Err(corrupt(
                what,
                &format!("has format version {version} (this build reads {VERSION}): written by a newer retl?"),
            ));
        }
        let mut data = Vec::with_capacity(body.len() * 3);
        DeflateDecoder::new(body)
            .read_to_end(&mut data)
            .map_err(|e| corrupt(what, &format!("does not inflate: {e}")))?;
        Ok(BlobReader { data, at: 0 })
    }

    /// Whether every record was read.
    pub(super) fn done(&self) -> bool {
        self.at == self.data.len()
    }

    /// The next record as a change (an entry, or a removal).
    pub(super) fn change(&mut self) -> Result<(String, Option<KeyEntry>), StoreError> {
        let key = self.string()?;
        let flags = self.byte()?;
        if flags & !(DELETED | SYNCED | REMOVED) != 0 {
            return Err(self.corrupt(&format!("unknown flags {flags:#x}")));
        }
        if flags & REMOVED != 0 {
            return Ok((key, None));
        }
        let hash: [u8; 16] = self
            .take(16)?
            .try_into()
            .expect("take returns the length asked for");
        let updated_at = unzigzag(self.varint()?);
        Ok((
            key,
            Some(KeyEntry {
                hash: u128::from_be_bytes(hash),
                state: if flags & DELETED != 0 {
                    KeyState::Deleted
                } else {
                    KeyState::Present
                },
                origin: if flags & SYNCED != 0 {
                    KeyOrigin::Synced
                } else {
                    KeyOrigin::Baseline
                },
                updated_at,
            }),
        ))
    }

    /// The next record as an entry; a removal is corrupt here.
    pub(super) fn entry(&mut self) -> Result<(String, KeyEntry), StoreError> {
        match self.change()? {
            (key, Some(entry)) => Ok((key, entry)),
            (_, None) => Err(self.corrupt("a removal in a bucket")),
        }
    }

    /// The next record as a manifest bucket: (id, entries, first key).
    pub(super) fn bucket(&mut self) -> Result<(u64, u64, String), StoreError> {
        let id = self.varint()?;
        let entries = self.varint()?;
        Ok((id, entries, self.string()?))
    }

    fn corrupt(&self, problem: &str) -> StoreError {
        corrupt(
            "a packed key-set item",
            &format!("{problem} at byte {}", self.at),
        )
    }

    fn byte(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }

    fn take(&mut self, n: usize) -> Result<&[u8], StoreError> {
        if self.data.len() - self.at < n {
            return Err(self.corrupt("a record cut short"));
        }
        self.at += n;
        Ok(&self.data[self.at - n..self.at])
    }

    fn varint(&mut self) -> Result<u64, StoreError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.corrupt("a number longer than 64 bits"))
    }

    fn string(&mut self) -> Result<String, StoreError> {
        let len = usize::try_from(self.varint()?).map_err(|_| self.corrupt("a huge length"))?;
        let bytes = self.take(len)?.to_vec();
        String::from_utf8(bytes).map_err(|_| self.corrupt("a key that is not UTF-8"))
    }
}

fn corrupt(what: &str, problem: &str) -> StoreError {
    StoreError::Other(format!("corrupt item: {what} {problem}"))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(hash: u128, state: KeyState, origin: KeyOrigin, updated_at: i64) -> KeyEntry {
        KeyEntry {
            hash,
            state,
            origin,
            updated_at,
        }
    }

    #[test]
    fn entries_changes_and_buckets_round_trip() {
        let a = e(u128::MAX, KeyState::Deleted, KeyOrigin::Synced, -5);
        let b = e(0, KeyState::Present, KeyOrigin::Baseline, i64::MAX);
        let mut w = BlobWriter::new();
        w.entry("ünï ✓", &a);
        w.change(&KeyChange::Remove { key: "gone".into() });
        w.change(&KeyChange::Put {
            key: String::new(),
            entry: b,
        });
        w.bucket(u64::MAX, 3, "first");
        assert!(w.raw_len() > 0);
        let blob = w.finish();
        let mut r = BlobReader::new(&blob, "test").unwrap();
        assert_eq!(r.entry().unwrap(), ("ünï ✓".to_string(), a));
        assert_eq!(r.change().unwrap(), ("gone".to_string(), None));
        assert_eq!(r.change().unwrap(), (String::new(), Some(b)));
        assert_eq!(r.bucket().unwrap(), (u64::MAX, 3, "first".to_string()));
        assert!(r.done());
        for t in [0, 1, -1, i64::MIN, i64::MAX, 1_700_000_000] {
            assert_eq!(unzigzag(zigzag(t)), t);
        }
    }

    #[test]
    fn damaged_blobs_are_errors_not_panics() {
        let mut w = BlobWriter::new();
        w.entry("key", &e(7, KeyState::Present, KeyOrigin::Synced, 1));
        let blob = w.finish();
        assert!(BlobReader::new(&[], "x").is_err());
        assert!(BlobReader::new(&[9, 1, 2], "x").is_err(), "unknown version");
        assert!(BlobReader::new(&[VERSION, 0xff, 0xff], "x").is_err());
        // Every truncation of the inflated records is an error.
        let full = BlobReader::new(&blob, "x").unwrap().data;
        for cut in 0..full.len() {
            let mut r = BlobReader {
                data: full[..cut].to_vec(),
                at: 0,
            };
            assert!(r.entry().is_err(), "cut at {cut}");
        }
        let mut removal = BlobWriter::new();
        removal.change(&KeyChange::Remove { key: "k".into() });
        let mut r = BlobReader::new(&removal.finish(), "x").unwrap();
        assert!(r.entry().is_err(), "a removal is not an entry");
    }

    /// What a packed entry costs, for the capacity arithmetic in docs/aws.md.
    #[test]
    fn a_packed_entry_is_about_twenty_bytes() {
        let mut w = BlobWriter::new();
        let n = 50_000u32;
        for i in 0..n {
            let hash = u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
            w.entry(
                &(1_000_000 + i).to_string(),
                &e(hash, KeyState::Present, KeyOrigin::Synced, 1_764_000_000),
            );
        }
        let per_entry = w.finish().len() as f64 / f64::from(n);
        assert!((16.0..22.0).contains(&per_entry), "{per_entry} bytes");
    }
}
