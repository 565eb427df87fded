//! Signed webhooks: partners register endpoints; every outbox event of a subscribed type
//! becomes a delivery job (POST, HMAC-SHA256 signature over timestamp and raw body, event
//! id for deduplication, exponential backoff, automatic disabling after repeated failures).

pub mod graphql;
pub mod model;
pub mod ops;
pub mod target;
