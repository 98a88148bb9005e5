//! [`CriClient`]: the [`Runtime`] over a CRI v1 unix socket (containerd, CRI-O).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};

use super::convert;
use super::proto;
use super::proto::image_service_client::ImageServiceClient;
use super::proto::runtime_service_client::RuntimeServiceClient;
use super::{CallCode, CriError, Runtime, RuntimeVersion};
use crate::core::runtime::{LinuxResources, RuntimeContainer, RuntimeContainerStatus};

/// Deadline of one CRI call unless configured otherwise.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(2);

const ENDPOINT_HINT: &str =
    "set --container-runtime-endpoint to the runtime's socket, e.g. unix:///run/containerd/containerd.sock";

/// CRI client over a unix socket with a deadline on every call.
#[derive(Debug, Clone)]
pub struct CriClient {
    endpoint: String,
    socket: PathBuf,
    channel: Channel,
    call_timeout: Duration,
}

/// The socket path of a CRI endpoint: `unix:///path` or a plain absolute path.
pub fn socket_path(endpoint: &str) -> Result<PathBuf, CriError> {
    let bad = |reason: String| CriError::Endpoint {
        endpoint: endpoint.to_string(),
        reason,
    };
    let path = if let Some(rest) = endpoint.strip_prefix("unix://") {
        rest
    } else if let Some((scheme, _)) = endpoint.split_once("://") {
        return Err(bad(format!(
            "unsupported scheme {scheme:?}, only unix sockets are supported; {ENDPOINT_HINT}"
        )));
    } else {
        endpoint
    };
    if path.is_empty() {
        return Err(bad(format!("empty socket path; {ENDPOINT_HINT}")));
    }
    if !path.starts_with('/') {
        return Err(bad(format!(
            "socket path {path:?} is not absolute; {ENDPOINT_HINT}"
        )));
    }
    Ok(PathBuf::from(path))
}

/// What `path` is when it exists but is not a socket ("a regular file", "a directory", ...).
fn not_a_socket(path: &std::path::Path) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let t = std::fs::metadata(path).ok()?.file_type();
    if t.is_socket() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_file() {
        Some("a regular file")
    } else {
        Some("neither a socket nor a regular file")
    }
}

impl CriClient {
    /// Connects with [`DEFAULT_CALL_TIMEOUT`] per call.
    pub async fn connect(endpoint: &str) -> Result<Self, CriError> {
        Self::connect_with_timeout(endpoint, DEFAULT_CALL_TIMEOUT).await
    }

    /// Connects eagerly (so a wrong endpoint fails here, not at the first call); `call_timeout`
    /// bounds every later call (and this connection attempt).
    pub async fn connect_with_timeout(
        endpoint: &str,
        call_timeout: Duration,
    ) -> Result<Self, CriError> {
        let socket = socket_path(endpoint)?;
        if !socket.exists() {
            return Err(CriError::Endpoint {
                endpoint: endpoint.to_string(),
                reason: format!(
                    "socket {} does not exist (is the container runtime running?); {ENDPOINT_HINT}",
                    socket.display()
                ),
            });
        }
        if let Some(kind) = not_a_socket(&socket) {
            return Err(CriError::Endpoint {
                endpoint: endpoint.to_string(),
                reason: format!(
                    "{} is not a socket but {kind}; {ENDPOINT_HINT}",
                    socket.display()
                ),
            });
        }
        // Probe once ourselves: tonic's transport error hides the io::Error we want to report.
        let connect_err = |source: std::io::Error| CriError::Connect {
            endpoint: endpoint.to_string(),
            source: std::io::Error::new(
                source.kind(),
                format!("{}: {source}; {ENDPOINT_HINT}", socket.display()),
            ),
        };
        match tokio::time::timeout(call_timeout, tokio::net::UnixStream::connect(&socket)).await {
            Ok(Ok(_probe)) => {}
            Ok(Err(e)) => return Err(connect_err(e)),
            Err(_) => {
                return Err(CriError::Timeout {
                    call: "connect",
                    timeout_ms: millis(call_timeout),
                })
            }
        }
        let connector_path = socket.clone();
        // The URI is required by tonic but unused: the connector always dials the socket.
        let channel = Endpoint::from_static("http://cri.invalid")
            .connect_timeout(call_timeout)
            .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                let path = connector_path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(stream))
                }
            }))
            .await
            .map_err(|e| connect_err(std::io::Error::other(e)))?;
        Ok(CriClient {
            endpoint: endpoint.to_string(),
            socket,
            channel,
            call_timeout,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    /// The generated `RuntimeService` client on this connection (for calls outside [`Runtime`],
    /// e.g. creating sandboxes in tests or recreating containers in standalone mode). Wrap calls in
    /// [`CriClient::call`] to get the deadline and error mapping.
    pub fn runtime_service(&self) -> RuntimeServiceClient<Channel> {
        RuntimeServiceClient::new(self.channel.clone())
    }

    /// The generated `ImageService` client on this connection.
    pub fn image_service(&self) -> ImageServiceClient<Channel> {
        ImageServiceClient::new(self.channel.clone())
    }

    /// Runs one CRI call under the configured deadline.
    pub async fn call<T, F>(&self, call: &'static str, fut: F) -> Result<T, CriError>
    where
        F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call_within(call, self.call_timeout, fut).await
    }

    /// Runs one CRI call under an explicit deadline.
    pub async fn call_within<T, F>(
        &self,
        call: &'static str,
        timeout: Duration,
        fut: F,
    ) -> Result<T, CriError>
    where
        F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(resp)) => Ok(resp.into_inner()),
            Ok(Err(status)) => Err(CriError::Call {
                call,
                status: convert::call_status(&status),
            }),
            Err(_) => Err(CriError::Timeout {
                call,
                timeout_ms: millis(timeout),
            }),
        }
    }

    /// A request carrying the deadline as `grpc-timeout`, so the runtime gives up too.
    fn request<M>(&self, msg: M, timeout: Duration) -> tonic::Request<M> {
        let mut req = tonic::Request::new(msg);
        req.set_timeout(timeout);
        req
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A per-container call's error: gRPC `NotFound` becomes [`CriError::NotFound`] (shared with the
/// fake so both report a vanished container the same way).
pub(crate) fn not_found_as(id: &str, err: CriError) -> CriError {
    match err {
        CriError::Call { status, .. } if status.code == CallCode::NotFound => {
            CriError::NotFound { id: id.to_string() }
        }
        other => other,
    }
}

#[async_trait]
impl Runtime for CriClient {
    async fn version(&self) -> Result<RuntimeVersion, CriError> {
        let req = self.request(
            proto::VersionRequest {
                version: "v1".into(),
            },
            self.call_timeout,
        );
        let resp = self
            .call("Version", self.runtime_service().version(req))
            .await?;
        Ok(convert::runtime_version(resp))
    }

    async fn list_containers(
        &self,
        pod_uid: Option<&str>,
    ) -> Result<Vec<RuntimeContainer>, CriError> {
        let filter = pod_uid.map(|uid| proto::ContainerFilter {
            label_selector: [(convert::LABEL_POD_UID.to_string(), uid.to_string())].into(),
            ..Default::default()
        });
        let req = self.request(proto::ListContainersRequest { filter }, self.call_timeout);
        let resp = self
            .call(
                "ListContainers",
                self.runtime_service().list_containers(req),
            )
            .await?;
        resp.containers
            .into_iter()
            .map(convert::runtime_container)
            .collect()
    }

    async fn container_status(&self, id: &str) -> Result<RuntimeContainerStatus, CriError> {
        let req = self.request(
            proto::ContainerStatusRequest {
                container_id: id.to_string(),
                verbose: false,
            },
            self.call_timeout,
        );
        let resp = self
            .call(
                "ContainerStatus",
                self.runtime_service().container_status(req),
            )
            .await
            .map_err(|e| not_found_as(id, e))?;
        let status = resp.status.ok_or_else(|| CriError::Malformed {
            call: "ContainerStatus",
            reason: format!("no status for container {id}"),
        })?;
        Ok(convert::runtime_container_status(status))
    }

    async fn update_container_resources(
        &self,
        id: &str,
        resources: &LinuxResources,
    ) -> Result<(), CriError> {
        let req = self.request(
            proto::UpdateContainerResourcesRequest {
                container_id: id.to_string(),
                linux: Some(convert::linux_resources_to_proto(resources)),
                windows: None,
                annotations: Default::default(),
            },
            self.call_timeout,
        );
        self.call(
            "UpdateContainerResources",
            self.runtime_service().update_container_resources(req),
        )
        .await
        .map_err(|e| not_found_as(id, e))?;
        Ok(())
    }

    /// The deadline is the grace period plus the call timeout (the runtime waits up to
    /// `timeout_seconds` before SIGKILL).
    async fn stop_container(&self, id: &str, timeout_seconds: i64) -> Result<(), CriError> {
        let grace = Duration::from_secs(u64::try_from(timeout_seconds).unwrap_or(0));
        let deadline = grace + self.call_timeout;
        let req = self.request(
            proto::StopContainerRequest {
                container_id: id.to_string(),
                timeout: timeout_seconds,
            },
            deadline,
        );
        self.call_within(
            "StopContainer",
            deadline,
            self.runtime_service().stop_container(req),
        )
        .await
        .map_err(|e| not_found_as(id, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_forms() {
        assert_eq!(
            socket_path("unix:///run/containerd/containerd.sock").unwrap(),
            PathBuf::from("/run/containerd/containerd.sock")
        );
        assert_eq!(
            socket_path("/run/crio/crio.sock").unwrap(),
            PathBuf::from("/run/crio/crio.sock")
        );
        for bad in [
            "tcp://127.0.0.1:1234",
            "unix://",
            "",
            "relative.sock",
            "unix://rel.sock",
        ] {
            let err = socket_path(bad).unwrap_err();
            assert!(matches!(err, CriError::Endpoint { .. }), "{bad}: {err}");
            assert!(
                err.to_string().contains("--container-runtime-endpoint"),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn missing_socket_names_path_and_flag() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("nope.sock");
        let endpoint = format!("unix://{}", sock.display());
        let err = CriClient::connect(&endpoint).await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, CriError::Endpoint { .. }), "{msg}");
        assert!(msg.contains(&sock.display().to_string()), "{msg}");
        assert!(msg.contains("--container-runtime-endpoint"), "{msg}");
    }

    #[tokio::test]
    async fn socket_without_listener_is_a_connect_error() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("dead.sock");
        // Bind then drop the listener: the file stays, nobody accepts.
        drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
        let err = CriClient::connect(sock.to_str().unwrap())
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, CriError::Connect { .. }), "{msg}");
        assert!(msg.contains(&sock.display().to_string()), "{msg}");
        assert!(msg.contains("--container-runtime-endpoint"), "{msg}");
    }
}
