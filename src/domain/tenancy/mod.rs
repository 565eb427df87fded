//! Tenants and their API keys.

pub mod graphql;
pub mod model;
pub mod ops;
