//! The CLI side of the control socket.

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::Path,
};

use super::{Request, Response};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the blocker agent at {path}: {source} (is `blocker run` running?)")]
    Connect {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("talking to the blocker agent at {path}: {reason}")]
    Protocol { path: String, reason: String },
}

/// Sends one request and waits for its response.
pub fn call(socket: &Path, request: &Request) -> Result<Response, ClientError> {
    let path = socket.display().to_string();
    let stream = UnixStream::connect(socket).map_err(|source| ClientError::Connect { path: path.clone(), source })?;
    let proto = |reason: String| ClientError::Protocol { path: path.clone(), reason };
    let mut line = serde_json::to_vec(request).map_err(|e| proto(e.to_string()))?;
    line.push(b'\n');
    (&stream).write_all(&line).map_err(|e| proto(e.to_string()))?;
    let mut reply = String::new();
    BufReader::new(&stream).read_line(&mut reply).map_err(|e| proto(e.to_string()))?;
    if reply.is_empty() {
        return Err(proto("the agent closed the connection without answering".into()));
    }
    serde_json::from_str(&reply).map_err(|e| proto(format!("bad response: {e}")))
}
