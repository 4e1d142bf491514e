//! The control socket: a Unix socket (mode 0600, root only) speaking one
//! JSON request and one JSON response per line.

pub mod client;
pub mod protocol;
pub mod server;

pub use protocol::{Request, Response, TargetList};
