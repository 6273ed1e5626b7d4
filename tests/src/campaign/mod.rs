//! The fault campaign (issue 8), kept as a bounded, seeded test suite: the machinery its
//! tests share. `RETL_CAMPAIGN_SEED` picks the campaign (a fixed default otherwise); a failed
//! trial prints the seed and trial number that replay it alone (`RETL_CAMPAIGN_TRIAL`).
//!
//! - [`rng`]: the seeded generator.
//! - [`trials`]: the runner (bounded, a few trials at a time, counts trials and held).
//! - [`kill`]: SIGKILL `retl run` at random points, change the model, run again.
//! - [`ledger`] and [`promise`]: what a webhook receiver holds (by event id) and what each
//!   mode promises the destination holds.
//! - [`hostile`]: a receiver that misbehaves at the HTTP level (resets, hangs, cut bodies).
//! - [`mutate`]: seeded mutations of sync files for `retl validate`.
//! - [`races`]: ten starts of one sync at once on any run store, then ten takeovers.

pub mod hostile;
pub mod kill;
pub mod ledger;
pub mod mutate;
pub mod promise;
pub mod races;
pub mod rng;
pub mod trials;

pub use rng::Rng;
pub use trials::{Campaign, Summary, Tags, Trial, TrialResult};
