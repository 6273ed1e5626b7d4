//! The approval request as a person reads it at the moment of decision: the sync and run, the
//! rule that stopped it, the planned counts, and the records it would delete with their
//! current values, in at most [`MESSAGE_LIMIT`] characters (the longest Message Systems
//! Manager's `aws:approve` sends), ending with where the whole preview is. Built when the plan
//! is summarised, so the approval step only reads it.

use super::preview::DeletionPreview;
use crate::ports::Counts;

/// The longest message an `aws:approve` step takes, in characters.
pub const MESSAGE_LIMIT: usize = 4096;

/// A field value is cut to this many characters (the record stays one line).
const VALUE_CHARS: usize = 60;

/// What the message is about.
#[derive(Debug, Clone, Copy)]
pub struct ApprovalSubject<'a> {
    /// The sync.
    pub sync: &'a str,
    /// The run waiting.
    pub run_id: &'a str,
    /// Why it waits (the safety rule crossed).
    pub reason: &'a str,
    /// Planned counts.
    pub counts: &'a Counts,
    /// Records the destination held when planned.
    pub existing: u64,
    /// The records to delete, the first ones with their values.
    pub preview: &'a DeletionPreview,
    /// Where the whole preview is (a console link on AWS, a path locally).
    pub full_preview: &'a str,
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut short: String = text.chars().take(max.saturating_sub(3)).collect();
    short.push_str("...");
    short
}

/// One record to delete, on one line: its key, then each field and value.
fn record_line(entry: &super::preview::DeletePreviewEntry) -> String {
    let key = cut(&entry.key, VALUE_CHARS);
    match &entry.values {
        None => format!("- {key} (the destination cannot show its current values)\n"),
        Some(values) => {
            let fields: Vec<String> = values
                .iter()
                .map(|(field, value)| {
                    let shown = match value {
                        serde_json::Value::String(s) => format!("{:?}", cut(s, VALUE_CHARS)),
                        other => cut(&other.to_string(), VALUE_CHARS),
                    };
                    format!("{}={shown}", cut(field, VALUE_CHARS))
                })
                .collect();
            format!("- {key}: {}\n", fields.join(", "))
        }
    }
}

/// The message, at most [`MESSAGE_LIMIT`] characters: as many records as fit, then how many
/// more there are.
pub fn approval_message(s: &ApprovalSubject<'_>) -> String {
    let c = s.counts;
    let head = format!(
        "retl: run {run} of sync `{sync}` waits for approval before it writes.\n\
         Why: {reason}\n\
         Planned: {deletes} deletes, {creates} creates, {updates} updates, {unchanged} unchanged \
         ({existing} records in the destination).\n\n\
         Records to be deleted:\n",
        run = s.run_id,
        sync = s.sync,
        reason = cut(s.reason, 600),
        deletes = c.deletes,
        creates = c.creates,
        updates = c.updates,
        unchanged = c.unchanged,
        existing = s.existing,
    );
    let foot = format!(
        "\nFull preview ({} records): {}\n\
         Approve applies exactly this plan; Deny ends the run without writing.\n",
        s.preview.total,
        cut(s.full_preview, 1000)
    );
    // Room kept for the "and K more" line, whose number has at most 20 digits.
    let more_room = "... and 18446744073709551615 more\n".len();
    let budget = MESSAGE_LIMIT - head.chars().count() - foot.chars().count() - more_room;
    let mut body = String::new();
    let mut used = 0;
    let mut shown = 0u64;
    for entry in &s.preview.entries {
        let line = record_line(entry);
        let len = line.chars().count();
        if used + len > budget {
            break;
        }
        body.push_str(&line);
        used += len;
        shown += 1;
    }
    let left = s.preview.total.saturating_sub(shown);
    if left > 0 {
        body.push_str(&format!("... and {left} more\n"));
    }
    format!("{head}{body}{foot}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::preview::DeletePreviewEntry;
    use serde_json::json;

    fn entry(id: u64, name: &str) -> DeletePreviewEntry {
        let values = json!({"id": id, "name": name});
        DeletePreviewEntry {
            key: id.to_string(),
            values: values.as_object().cloned(),
        }
    }

    fn message(preview: &DeletionPreview) -> String {
        let counts = Counts {
            deletes: preview.total,
            unchanged: 1,
            ..Counts::default()
        };
        approval_message(&ApprovalSubject {
            sync: "purge",
            run_id: "01JRUN",
            reason: "3 deletes of 4 records (75%) pass the delete threshold of 50%",
            counts: &counts,
            existing: preview.total + 1,
            preview,
            full_preview: "https://console.aws.amazon.com/s3/object/b?region=us-east-1&prefix=plan/01JRUN/deletes-preview.jsonl",
        })
    }

    #[test]
    fn a_small_delete_shows_every_record_with_its_values() {
        let preview = DeletionPreview {
            total: 2,
            entries: vec![entry(2, "old 2"), entry(3, "old \"3\"")],
        };
        let text = message(&preview);
        assert!(
            text.contains("- 2: id=2, name=\"old 2\"\n- 3: id=3, name=\"old \\\"3\\\"\"\n"),
            "{text}"
        );
        assert!(text.contains("Why: 3 deletes of 4 records (75%)"), "{text}");
        assert!(text.contains("Planned: 2 deletes, 0 creates"), "{text}");
        assert!(
            text.contains("Full preview (2 records): https://console"),
            "{text}"
        );
        assert!(!text.contains("more"), "{text}");
    }

    #[test]
    fn a_large_delete_fits_the_limit_and_says_how_many_more() {
        let long = "x".repeat(500);
        let entries: Vec<_> = (0..10_000).map(|i| entry(i, &long)).collect();
        let preview = DeletionPreview {
            total: 250_000,
            entries,
        };
        let text = message(&preview);
        assert!(text.chars().count() <= MESSAGE_LIMIT, "{}", text.len());
        let shown = text.lines().filter(|l| l.starts_with("- ")).count() as u64;
        assert!(shown > 10, "{text}");
        assert!(
            text.contains(&format!("... and {} more\n", 250_000 - shown)),
            "{text}"
        );
        assert!(
            text.contains(&format!("name=\"{}...\"", "x".repeat(57))),
            "{text}"
        );
        assert!(
            text.ends_with("Deny ends the run without writing.\n"),
            "{text}"
        );
    }

    #[test]
    fn records_without_values_say_so() {
        let preview = DeletionPreview {
            total: 1,
            entries: vec![DeletePreviewEntry {
                key: "k1".into(),
                values: None,
            }],
        };
        assert!(message(&preview).contains("- k1 (the destination cannot show its current values)"));
    }
}
