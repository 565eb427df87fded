//! Messages that leave (seeds 000, 002, 003 and 004): templates, the one delivery path
//! (`ops::deliver` queues, `ops::run_due` sends through the tenant's provider), and the
//! providers' status reports coming back (`hooks`).

pub mod graphql;
pub mod hooks;
pub mod model;
pub mod ops;
pub mod providers;
pub mod templates;
