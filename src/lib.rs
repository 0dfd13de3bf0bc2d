//! Lantern: a self-hosted ops and resilience daemon that keeps an online shop taking orders.
#![forbid(unsafe_code)]

pub mod backup;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod health;
pub mod http;
pub mod incident;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod oncall;
pub mod page;
pub mod probe;
pub(crate) mod process_group;
pub mod shutdown;
pub mod status;
pub mod store;
