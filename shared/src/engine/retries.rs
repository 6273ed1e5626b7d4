//! The local host retries a step the way the state machine does: on the same errors, as
//! many times, with a growing pause.

use std::future::Future;
use std::time::Duration;

use super::{EngineError, STEP_ATTEMPTS};

/// Runs `step` until it succeeds, fails with an error that is not retryable, or has been
/// tried [`STEP_ATTEMPTS`] times. Steps can be retried: they rewrite the same objects.
pub(super) async fn retrying<T, F, Fut>(mut step: F) -> Result<T, EngineError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, EngineError>>,
{
    let mut attempt = 1;
    loop {
        match step().await {
            Err(e) if e.is_retryable() && attempt < STEP_ATTEMPTS => {
                tracing::warn!(
                    error_name = e.error_name(),
                    attempt,
                    "step failed; retrying"
                );
                // 2 s, 4 s, 8 s, ... as the state machine's BackoffRate 2.0 from 2 s.
                tokio::time::sleep(Duration::from_secs(1 << attempt.min(5))).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::super::{RETRYABLE, STEP_ATTEMPTS};

    /// Every `Retry` of the state machine that retries `Retl.*` errors retries exactly these,
    /// as often as the local host does.
    #[test]
    fn the_state_machine_retries_the_same_errors() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../infra/statemachine/sync.asl.json"
        );
        let text = std::fs::read_to_string(path).expect("the state machine definition");
        // Substitutions are not JSON until filled in.
        let text = text
            .split("${")
            .enumerate()
            .map(|(i, chunk)| match (i, chunk.split_once('}')) {
                (0, _) | (_, None) => chunk.to_string(),
                (_, Some((_, rest))) => format!("1{rest}"),
            })
            .collect::<String>();
        let asl: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        let mut retriers = Vec::new();
        collect(&asl, &mut retriers);
        let expected: BTreeSet<&str> = RETRYABLE.iter().copied().collect();
        let mut seen = 0;
        for r in retriers {
            let names: BTreeSet<&str> = r["ErrorEquals"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n.as_str())
                .filter(|n| n.starts_with("Retl."))
                .collect();
            if names.is_empty() {
                continue;
            }
            seen += 1;
            assert_eq!(names, expected, "a Retry lists other Retl.* errors: {r}");
            assert_eq!(
                r["MaxAttempts"].as_u64(),
                Some(u64::from(STEP_ATTEMPTS - 1)),
                "{r}"
            );
        }
        assert!(
            seen >= 5,
            "every step of the state machine retries Retl.* errors"
        );
    }

    fn collect<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::Array(rs)) = m.get("Retry") {
                    out.extend(rs);
                }
                m.values().for_each(|x| collect(x, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
            _ => {}
        }
    }
}
