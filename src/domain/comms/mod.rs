//! Communication channels (seeds 002 and 004): the message log (preferences live with
//! customers), and the voice agents' calls, appointments and support tickets.

pub mod graphql;
pub mod model;
pub mod ops;
