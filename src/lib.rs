//! growthgraph: a multi-tenant GraphQL API server for a customer-growth platform.

pub mod app;
pub mod auth;
pub mod commands;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod events;
pub mod graphql;
pub mod http;
pub mod jobs;
pub mod observed;
pub mod scheduler;
pub mod secrets;
pub mod seed;
pub mod speed;
pub mod telemetry;
