//! The prompt learning loop (seed 001 §3): prompt variants, A/B tests that assign each
//! subject to one arm by a hash of its key, executions tallied per arm, a winner declared
//! by a two-proportion z-test ([`stats`]) once both arms have their minimum sample, and
//! feedback processed into the variants' scores by the scheduler.

pub mod graphql;
pub mod model;
pub mod ops;
pub mod stats;
