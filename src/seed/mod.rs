//! Data loaders: the demo tenant (`seed --demo`, and the embedded default on an empty
//! database) and synthetic scale data (`seed --scale`).

pub mod demo;
pub mod scale;
