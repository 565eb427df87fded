//! All integration tests build into this one binary (link time); `common` holds the
//! test cluster and the HTTP client.

mod common;

mod analytics;
mod automations;
mod campaigns;
mod catalog;
mod comms;
mod crm;
mod customers;
mod embedded;
mod events;
mod hostile;
mod http_surface;
mod leads;
mod loyalty;
mod messages;
mod monitoring;
mod outreach;
mod products;
mod prompts;
mod replica;
mod scheduler;
mod seed;
mod tenancy;
mod translation;
mod webhooks;
