//! How a destination's requests behave under the delivery framework: throttling waited out
//! as the server asks, server errors retried then reported, per-record rejections reported
//! and not sent again, batches within the connector's documented limit, and no record value
//! in retl's own output.

use std::time::{Duration, Instant};

use retl_shared::modes::SyncMode;
use serde_json::Value;

use super::harness::{count, defaults, held, Harness};
use super::modes::MODEL;
use super::DestinationUnderTest;

/// Attempts per batch in the server-error check.
const ATTEMPTS: u32 = 2;

fn delivered_all(d: &dyn DestinationUnderTest, v: &Value, what: &str) {
    assert_eq!(
        count(v, "creates"),
        MODEL.len() as u64,
        "{}: {what}: {v}",
        d.name()
    );
}

/// The server throttles the next requests with `Retry-After`: the run waits at least that
/// long (the framework's shared pause), then delivers everything.
pub async fn throttling_is_waited_out(d: &dyn DestinationUnderTest) {
    let h = Harness::new(d, "throttled", "").await;
    h.model(MODEL);
    let throttled = 2;
    let secs = d
        .throttle_next(throttled)
        .await
        .unwrap_or_else(|| panic!("{}: the server cannot be told to throttle", d.name()));
    let started = Instant::now();
    let v = h.run_ok("throttled").await;
    let took = started.elapsed();
    delivered_all(d, &v, "throttled");
    let pause = Duration::from_secs(secs * u64::from(throttled));
    assert!(
        took + Duration::from_millis(50) >= pause,
        "{}: Retry-After {secs}s twice was not honoured: the run took {took:?}",
        d.name()
    );
    assert_eq!(h.d.holds(&h.object).await, held(d, MODEL), "{}", d.name());
}

/// Every request fails with 5xx: each batch is attempted `max_attempts` times, then its
/// records are failed and listed by `retl errors`; the next run delivers them. A first run
/// delivers Alice, so the failing run's requests are its writes (no first-run listing).
pub async fn server_errors_are_retried_then_reported(d: &dyn DestinationUnderTest) {
    let h = Harness::new(d, "failing", &format!("max_attempts: {ATTEMPTS}")).await;
    let name = d.name();
    h.model(&MODEL[..1]);
    h.run_ok("before the server fails").await;
    d.clear_log().await;
    assert!(
        d.fail_requests(true).await,
        "{name}: the server cannot be told to fail"
    );
    h.model(MODEL);
    let (code, v) = h.run().await;
    let new = &MODEL[1..];
    assert_eq!(code, 1, "{name}: {v}");
    assert_eq!(v["status"], "partially_failed", "{name}: {v}");
    assert_eq!(count(&v, "failed"), new.len() as u64, "{name}: {v}");
    assert_eq!(count(&v, "creates"), 0, "{name}: {v}");
    if let Some(writes) = d.writes().await {
        assert!(
            writes.len() >= ATTEMPTS as usize && writes.iter().all(|w| w.status >= 500),
            "{name}: the batch was attempted {ATTEMPTS} times: {writes:?}"
        );
    }
    let mut keys: Vec<String> = Vec::new();
    for e in h.errors(&v).await {
        assert_eq!(e["outcome"], "failed", "{name}: {e}");
        keys.push(e["key"].as_str().unwrap_or_default().to_string());
    }
    keys.sort();
    let mut want: Vec<String> = new.iter().map(|(i, _)| d.key(*i)).collect();
    want.sort();
    assert_eq!(keys, want, "{name}: retl errors lists every failed record");
    d.fail_requests(false).await;
    let v = h.run_ok("after the server recovered").await;
    assert_eq!(count(&v, "creates"), new.len() as u64, "{name}: {v}");
    assert_eq!(h.d.holds(&h.object).await, held(d, MODEL), "{name}");
}

/// One record is refused by the destination (4xx per record): it is rejected, listed by
/// `retl errors` with the destination's reason, sent once only, and the others delivered.
pub async fn rejected_records_are_reported_and_not_retried(d: &dyn DestinationUnderTest) {
    let h = Harness::new(d, "rejecting", "").await;
    let name = d.name();
    let bad = MODEL[1].0;
    assert!(
        d.reject(&h.object, bad).await,
        "{name}: the server cannot be told to reject"
    );
    h.model(MODEL);
    let (code, v) = h.run().await;
    assert_eq!(code, 1, "{name}: {v}");
    assert_eq!(v["status"], "partially_failed", "{name}: {v}");
    assert_eq!(count(&v, "rejected"), 1, "{name}: {v}");
    assert_eq!(count(&v, "failed"), 0, "{name}: {v}");
    assert_eq!(count(&v, "creates"), MODEL.len() as u64 - 1, "{name}: {v}");
    let errors = h.errors(&v).await;
    assert_eq!(errors.len(), 1, "{name}: {errors:?}");
    assert_eq!(errors[0]["outcome"], "rejected", "{name}: {errors:?}");
    assert_eq!(errors[0]["key"], d.key(bad).as_str(), "{name}: {errors:?}");
    assert!(
        !errors[0]["message"].as_str().unwrap_or_default().is_empty(),
        "{name}: the destination's reason: {errors:?}"
    );
    if let Some(writes) = d.writes().await {
        // A batch refused whole may be split to isolate the record; a record is never
        // re-sent once the destination named it.
        let good: usize = writes
            .iter()
            .filter(|w| w.status < 300)
            .map(|w| w.records)
            .sum();
        assert!(
            good <= MODEL.len(),
            "{name}: records were sent again after the destination answered: {writes:?}"
        );
    }
    let want: Vec<(i64, &str)> = MODEL.iter().copied().filter(|(i, _)| *i != bad).collect();
    assert_eq!(h.d.holds(&h.object).await, held(d, &want), "{name}");
}

/// A run of twice the documented batch size plus one: no request carries more records than
/// the connector's documented limit, and every record arrives.
pub async fn batches_respect_the_documented_limit(d: &dyn DestinationUnderTest) {
    let name = d.name();
    let h = Harness::new(d, "batches", "").await;
    let probe = defaults(d, 1).limits.max_records;
    let n = probe * 2 + 1;
    let limit = defaults(d, n as u64).limits.max_records;
    let names: Vec<(i64, String)> = (1..=n as i64).map(|i| (i, format!("person {i}"))).collect();
    let rows: Vec<(i64, &str)> = names.iter().map(|(i, s)| (*i, s.as_str())).collect();
    h.model(&rows);
    let v = h.run_ok("a large run").await;
    assert_eq!(count(&v, "creates"), n as u64, "{name}: {v}");
    let writes = d
        .writes()
        .await
        .unwrap_or_else(|| panic!("{name}: the batch check needs a request log"));
    let sizes: Vec<usize> = writes.iter().map(|w| w.records).collect();
    assert!(
        sizes.iter().all(|s| *s <= limit),
        "{name}: a request above the documented {limit} records: {sizes:?}"
    );
    assert_eq!(
        sizes.iter().sum::<usize>(),
        n,
        "{name}: every record once: {sizes:?}"
    );
    assert_eq!(h.d.holds(&h.object).await.len(), n, "{name}");
}

/// retl's output of a run at debug level, a failing one included, names no record value.
pub async fn no_record_value_in_logs(d: &dyn DestinationUnderTest) {
    let name = d.name();
    let h = Harness::new(d, "logs", "").await;
    let secret = "Zqx-personal-7731";
    let rows = [(1, secret), (2, "Wlv-personal-0042")];
    h.model(&rows);
    let debug = [("RETL_LOG", "debug")];
    let out = h.retl_env(&["run", super::harness::SYNC], &debug).await;
    assert_eq!(out.code, 0, "{name}: {out:?}");
    // Case-blind: a destination may normalise values (lowercase) before anything logs them.
    for text in [&out.stdout, &out.stderr] {
        let text = text.to_lowercase();
        for (_, value) in rows {
            let value = value.to_lowercase();
            assert!(
                !text.contains(&value),
                "{name}: a record value in the output: {text}"
            );
        }
    }
    assert!(
        out.stderr.contains("run started"),
        "{name}: the logs were written: {}",
        out.stderr
    );
    h.set_mode(SyncMode::Upsert);
    let changed = [(1, "Qpr-personal-5510"), (2, "Wlv-personal-0042")];
    h.model(&changed);
    let out = h
        .retl_env(&["--json", "run", super::harness::SYNC], &debug)
        .await;
    assert_eq!(out.code, 0, "{name}: {out:?}");
    let text = format!("{}{}", out.stdout, out.stderr).to_lowercase();
    assert!(
        !text.contains(&changed[0].1.to_lowercase()),
        "{name}: {out:?}"
    );
}
