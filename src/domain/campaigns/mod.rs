//! CRM campaigns (seed 003) and outreach campaigns (seed 001): the delivery funnel of
//! their messages and its metrics.

pub mod analytics;
pub mod graphql;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod prefetch;
pub mod workflow;
