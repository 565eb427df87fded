//! Growth insights (seed 001 `growth_brain`): one row per tenant, computed from the
//! tenant's live leads (neither deleted nor archived) of a period.

pub mod graphql;
pub mod ops;
