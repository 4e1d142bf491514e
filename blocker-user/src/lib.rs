//! blocker: an XDP-backed intrusion prevention agent.
//!
//! The modules follow the pipeline: [`source`] (log lines) → [`filter`]
//! (Fail2Ban-style matching) → jails (counting, ban decisions) → [`enforce`]
//! (XDP maps), with [`control`] (socket and CLI) and [`agent`] (the daemon)
//! beside it, and [`state`] (the SQLite database that survives restarts).
pub mod agent;
pub mod cli;
pub mod config;
pub mod control;
pub mod dist;
pub mod enforce;
pub mod filter;
pub mod http;
pub mod jail;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod service;
pub mod share;
pub mod source;
pub mod state;
