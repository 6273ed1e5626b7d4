//! What the benchmarks under `tests/benches/` share: their size from the environment and
//! the machine's load, printed beside every figure.

/// The count in the environment variable `name` (`1_000_000` and `1000000` alike), else
/// `default`.
pub fn env_count(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// The one-minute load average (`/proc/loadavg`); NaN where there is none.
pub fn load() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}
