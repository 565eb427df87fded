//! A tenant's CRM (seed 004): the wineries' Commerce7 or Shopify store, where club
//! membership is a discount the CRM applies. `configureCrm` connects one (its credentials
//! sealed with the server's key); the job runner then syncs each enrollment change through
//! the CRM's own API ([`provider::Connectors`]); the CRM's webhooks come back through
//! `POST /hooks/crm/{provider}/{token}` ([`hooks`]).

pub mod commerce7;
pub mod graphql;
pub mod hooks;
pub mod http;
pub mod model;
pub mod ops;
pub mod provider;
pub mod shopify;
