//! Growth automations (seed 000): testimonials shown by the embeddable widget.

pub mod graphql;
pub mod model;
pub mod ops;
