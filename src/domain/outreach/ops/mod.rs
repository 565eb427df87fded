//! The operations of prospect discovery and outreach, one file per part: candidates and
//! their form tests ([`candidates`]), the tenant's profile and the prospects like it
//! ([`profile`]), campaigns and their emails ([`campaigns`]), and the funnel events that
//! move an email ([`tracking`]).

mod campaigns;
mod candidates;
mod profile;
mod tracking;

pub use campaigns::*;
pub use candidates::*;
pub use profile::*;
pub use tracking::*;
