//! blocker: an XDP-backed intrusion prevention agent.
//!
//! The modules follow the pipeline: [`source`] (log lines) → [`filter`]
//! (Fail2Ban-style matching) → jails (counting, ban decisions) → [`enforce`]
//! (XDP maps), with [`control`] (socket and CLI) beside it.
pub mod config;
pub mod control;
pub mod enforce;
pub mod filter;
pub mod source;
