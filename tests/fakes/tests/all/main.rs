//! Drives each fake over real HTTP with reqwest and checks the documented shapes.

mod braze;
mod common;
mod databricks;
mod faults;
mod hubspot;
mod meta;
mod redshift_data;
mod salesforce;
mod snowflake;
