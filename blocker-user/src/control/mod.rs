//! The control socket: protocol, server and client.
