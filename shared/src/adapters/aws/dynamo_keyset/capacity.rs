//! The read and write units a key-set store's requests cost, worked out from the items' sizes
//! by DynamoDB's published rules (emulators answer made-up figures), so a benchmark or a log
//! line can say what a run costs before the bill does.
//!
//! Item size: each attribute's name plus its value (strings and binaries by length, numbers
//! one byte per two significant digits plus one). Writes: 1 unit per KB of each item written
//! or deleted, at least 1. Strongly consistent reads: 1 unit per 4 KB, summed over a Query
//! page and rounded up once, per item for GetItem and BatchGetItem.

use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::types::AttributeValue;

use crate::adapters::aws::dynamo_item::Item;

/// Read and write units counted so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapacityUsed {
    /// Read capacity units (strongly consistent reads).
    pub read_units: u64,
    /// Write capacity units.
    pub write_units: u64,
}

/// Counts units as requests are made.
#[derive(Debug, Default)]
pub(super) struct CapacityMeter {
    read: AtomicU64,
    write: AtomicU64,
}

impl CapacityMeter {
    /// What was counted.
    pub(super) fn used(&self) -> CapacityUsed {
        CapacityUsed {
            read_units: self.read.load(Ordering::Relaxed),
            write_units: self.write.load(Ordering::Relaxed),
        }
    }

    /// One Query page (or one GetItem when `items` is that item or nothing).
    pub(super) fn read_page<'a>(&self, items: impl IntoIterator<Item = &'a Item>) {
        let bytes: usize = items.into_iter().map(item_size).sum();
        self.read
            .fetch_add(bytes.div_ceil(4096).max(1) as u64, Ordering::Relaxed);
    }

    /// An item read on its own (BatchGetItem).
    pub(super) fn read_item(&self, item: &Item) {
        self.read_page([item]);
    }

    /// An item written or deleted, of `bytes` bytes.
    pub(super) fn write(&self, bytes: usize) {
        self.write
            .fetch_add(bytes.div_ceil(1024).max(1) as u64, Ordering::Relaxed);
    }
}

/// An item's size as DynamoDB counts it.
pub(super) fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, v)| name.len() + value_size(v))
        .sum()
}

fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::N(n) => {
            let digits = n
                .trim_start_matches(['-', '0'])
                .chars()
                .filter(char::is_ascii_digit)
                .count();
            digits.div_ceil(2) + 1
        }
        // The key-set items hold only strings, binaries and numbers; the rest as DynamoDB's
        // minimum, should one appear.
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::aws::dynamo_item::{n, s};
    use aws_sdk_dynamodb::primitives::Blob;

    #[test]
    fn sizes_and_units_follow_the_published_rules() {
        let item: Item = [
            ("ks".to_string(), s("a#p0001")),
            ("k".to_string(), s("m")),
            ("v".to_string(), n(12345)),
            ("d".to_string(), AttributeValue::B(Blob::new(vec![0; 3000]))),
        ]
        .into_iter()
        .collect();
        assert_eq!(item_size(&item), (2 + 7) + (1 + 1) + (1 + 4) + (1 + 3000));
        let meter = CapacityMeter::default();
        meter.read_page([&item, &item]);
        meter.read_page([]);
        meter.write(item_size(&item));
        meter.write(10);
        assert_eq!(
            meter.used(),
            CapacityUsed {
                read_units: 2 + 1,
                write_units: 3 + 1
            }
        );
    }
}
