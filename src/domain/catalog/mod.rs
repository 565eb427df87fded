//! The wineries' catalogue (seed 004): products (wine type, vintage, varietal, price,
//! inventory) and discounts, as their CRMs hold them.

pub mod graphql;
pub mod model;
pub mod ops;
