//! Customers and their 360: profile, activity timeline, orders, communication preferences
//! (seed 004 customers merged with seed 003 customer_360).

pub mod analytics;
pub mod graphql;
pub mod model;
pub mod ops;
pub mod prefetch;
