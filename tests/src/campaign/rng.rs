//! The campaign's random numbers: SplitMix64, seeded from `RETL_CAMPAIGN_SEED` (a fixed
//! default otherwise), so a failing trial can be replayed exactly by its printed seed.

/// The seed used when `RETL_CAMPAIGN_SEED` is not set: the suite is deterministic by default.
pub const DEFAULT_SEED: u64 = 0x5EED_2026_0008;

/// The campaign's seed: `RETL_CAMPAIGN_SEED` (decimal, or hex with `0x`), else [`DEFAULT_SEED`].
/// A value that is not a number fails loudly rather than silently running another campaign.
pub fn campaign_seed() -> u64 {
    match std::env::var("RETL_CAMPAIGN_SEED") {
        Ok(text) => parse_seed(&text).unwrap_or_else(|| {
            panic!("RETL_CAMPAIGN_SEED={text:?} is not a number (decimal, or hex with 0x)")
        }),
        Err(_) => DEFAULT_SEED,
    }
}

fn parse_seed(text: &str) -> Option<u64> {
    let t = text.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => t.parse().ok(),
    }
}

/// A small, fast, reproducible generator (SplitMix64): good enough to pick fault points and
/// mutations, and needing no dependency whose stream could change between versions.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator starting at `seed`.
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..hi` (`lo` when the range is empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo)
    }

    /// An index below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.range(0, n as u64) as usize
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.range(0, 100) < percent
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// The seed of the `index`-th child stream: each trial gets its own, so one trial can be
    /// replayed without running the ones before it.
    pub fn derive(seed: u64, index: u64) -> u64 {
        Rng::new(seed ^ index.wrapping_mul(0xA24B_AED4_963E_E407)).next_u64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_stream() {
        let a: Vec<u64> = (0..5)
            .scan(Rng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        let b: Vec<u64> = (0..5)
            .scan(Rng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(Rng::derive(7, 0), Rng::derive(7, 1));
    }

    #[test]
    fn seeds_parse_in_decimal_and_hex() {
        assert_eq!(parse_seed("42"), Some(42));
        assert_eq!(parse_seed("0x2a"), Some(42));
        assert_eq!(parse_seed("forty"), None);
    }

    #[test]
    fn ranges_stay_in_bounds() {
        let mut r = Rng::new(1);
        for _ in 0..1000 {
            let v = r.range(3, 9);
            assert!((3..9).contains(&v));
        }
        assert_eq!(r.range(5, 5), 5);
    }
}
