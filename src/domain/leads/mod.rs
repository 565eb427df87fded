//! Leads (seed 001): AI-enriched inbound leads.

pub mod analytics;
pub mod graphql;
pub mod model;
pub mod ops;
pub mod prefetch;
