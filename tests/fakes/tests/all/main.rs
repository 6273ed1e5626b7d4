//! Drives each fake over real HTTP with reqwest and checks the documented shapes.
// Scenario tests read top to bottom; the 80-line bound is for the code they test.
#![allow(clippy::too_many_lines)]

mod braze;
mod common;
mod databricks;
mod faults;
mod hubspot;
mod meta;
mod redshift_data;
mod salesforce;
mod snowflake;
