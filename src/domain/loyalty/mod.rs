//! Wine club and loyalty (seed 004): club stages and enrollments, the points ledger,
//! rewards and redemptions.

pub mod analytics;
pub mod graphql;
pub mod model;
pub mod ops;
