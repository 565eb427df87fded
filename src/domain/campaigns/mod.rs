//! CRM campaigns (seed 003): campaigns and their recipients' delivery funnel.

pub mod graphql;
pub mod model;
pub mod ops;
