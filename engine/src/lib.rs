//! fillcast engine: the core model, config, allocation tables, sizing, risk, order
//! state and the pipeline. Knows no concrete venue (see `port` for the boundary).

pub mod accounting;
pub mod clock;
pub mod codes;
pub mod config;
pub mod core;
pub mod event;
pub mod ids;
pub mod model;
pub mod order;
pub mod outputs;
pub mod pipeline;
pub mod port;
pub mod risk;
pub mod sizing;
pub mod units;
