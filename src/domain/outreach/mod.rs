//! Prospect discovery and outreach (seed 001 sections 4 and 5): prospect candidates and
//! their form tests scored by one documented rule (`prospect_need_score`), outreach
//! campaigns whose emails are generated from a template, approved by a person, sent
//! through the delivery path and followed up until a reply, and the funnel each email
//! moves — its campaign's metrics and its industry's performance — counted once per step
//! in the transaction that records it.

pub mod graphql;
pub mod model;
pub mod ops;
