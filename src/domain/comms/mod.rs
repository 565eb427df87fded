//! Communication channels (seeds 002 and 004): the message log, preferences live with
//! customers.

pub mod graphql;
pub mod model;
