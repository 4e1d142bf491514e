//! The agent side of the control socket.

use std::{
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::Arc,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
};

use super::{Request, Response};

/// Answers requests; implemented by the agent (and by fakes in tests).
pub trait Service: Send + Sync + 'static {
    /// May block briefly (map updates); it is run on a blocking thread.
    fn handle(&self, request: Request) -> Response;
}

/// Largest request accepted (a ban of 1M addresses is ~30 MB).
const MAX_REQUEST: usize = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("another blocker agent is already serving {0}")]
    InUse(String),
    #[error("control socket {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Binds the socket: parent directory 0700, socket 0600, stale socket replaced.
pub fn bind(path: &Path) -> Result<UnixListener, ServerError> {
    let io = |source| ServerError::Io { path: path.display().to_string(), source };
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ServerError::InUse(path.display().to_string()));
        }
        std::fs::remove_file(path).map_err(io)?;
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(listener)
}

/// Serves connections until the task is dropped.
pub async fn serve(listener: UnixListener, service: Arc<dyn Service>) {
    let own_uid = nix::unistd::geteuid().as_raw();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept failed");
                continue;
            }
        };
        let allowed = stream.peer_cred().is_ok_and(|c| c.uid() == 0 || c.uid() == own_uid);
        let service = service.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, service, allowed).await {
                tracing::debug!(error = %e, "control connection ended");
            }
        });
    }
}

async fn connection(stream: UnixStream, service: Arc<dyn Service>, allowed: bool) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut lines).take(MAX_REQUEST as u64).read_until(b'\n', &mut line).await?;
        if n == 0 {
            return Ok(());
        }
        let response = if !allowed {
            Response::error("permission denied: the control socket is for root")
        } else {
            match serde_json::from_slice::<Request>(&line) {
                Ok(request) => {
                    let service = service.clone();
                    tokio::task::spawn_blocking(move || service.handle(request))
                        .await
                        .unwrap_or_else(|e| Response::error(format!("internal error: {e}")))
                }
                Err(e) => Response::error(format!("bad request: {e}")),
            }
        };
        let mut out = serde_json::to_vec(&response).unwrap_or_default();
        out.push(b'\n');
        write.write_all(&out).await?;
    }
}

/// Removes the socket file on drop.
pub struct SocketGuard(pub PathBuf);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::client;

    struct Echo;
    impl Service for Echo {
        fn handle(&self, request: Request) -> Response {
            Response::ok(request)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn socket_is_private_and_answers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/blocker.sock");
        let listener = bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777;
        assert_eq!(dmode, 0o700);
        let task = tokio::spawn(serve(listener, Arc::new(Echo)));
        let p = path.clone();
        let reply = tokio::task::spawn_blocking(move || client::call(&p, &Request::Stats)).await.unwrap().unwrap();
        assert!(reply.ok);
        assert_eq!(reply.data["cmd"], "stats");
        // A second agent on the same socket is refused.
        assert!(matches!(bind(&path), Err(ServerError::InUse(_))));
        task.abort();
    }

    #[test]
    fn client_error_names_the_socket() {
        let e = client::call(Path::new("/nonexistent/blocker.sock"), &Request::Stats).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("/nonexistent/blocker.sock"), "{text}");
        assert!(!text.contains('\n'));
    }
}
