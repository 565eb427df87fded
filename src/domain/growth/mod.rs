//! Growth insights (seed 001 `growth_brain`): one row per tenant, computed from the
//! tenant's live leads (neither deleted nor archived) of a period; and the AI layer's own
//! records (`intelligence`: feedback, the translation cache) and translation (`translation`).

pub mod graphql;
pub mod intelligence;
pub mod monitoring;
pub mod ops;
pub mod translation;
