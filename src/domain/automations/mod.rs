//! Growth automations (seed 000): the testimonial widget, email sequences, viral demo
//! sessions.

pub mod audience;
pub mod demo;
pub mod graphql;
pub mod model;
pub mod ops;
