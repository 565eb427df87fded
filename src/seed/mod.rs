//! Data loaders: the demo tenant (`seed --demo`, and the embedded default on an empty
//! database).

pub mod demo;
