//! The admin endpoint (default `127.0.0.1:10258`): `/metrics` (Prometheus text), `/healthz`
//! (alive), `/readyz` (watches synced, runtime reachable, checkpoints loaded, cgroup hierarchies
//! present and writable) and the read-only
//! debug views `resizelet status` and `resizelet explain` render: `/debug/pods` and
//! `/debug/pods/<namespace>/<name>`. Also the small HTTP client those commands use.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1 as client_http1;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

use crate::controller::report::{ControllerStats, PodReport};
use crate::cri::Runtime;

/// How long `/readyz` waits for the runtime's `Version`.
const RUNTIME_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot listen on admin address {address}: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("no resizelet agent answers on {address}: {source} (is `resizelet run` running? point --admin-address or RESIZELET_ADMIN_ADDRESS at its admin endpoint)")]
    Connect {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("reading {path} from the agent at {address}: {detail}")]
    Response {
        address: String,
        path: String,
        detail: String,
    },
    #[error(
        "pod {pod} is not known to the agent on this node (is it bound to this node and running?)"
    )]
    UnknownPod { pod: String },
}

/// What the endpoint reads.
#[derive(Clone)]
pub struct AdminState {
    pub stats: Arc<ControllerStats>,
    pub runtime: Arc<dyn Runtime>,
    /// The cgroup hierarchies pod cgroups are written in (`--cgroup-root` rebased mounts).
    pub cgroup_hierarchies: Vec<std::path::PathBuf>,
}

/// What is wrong with the cgroup hierarchies (empty: each exists, is a directory and is
/// writable): a resize admitted while they are not would be checkpointed and then fail on
/// every pass.
pub fn cgroup_problems(dirs: &[std::path::PathBuf]) -> Vec<String> {
    use nix::unistd::{access, AccessFlags};
    dirs.iter()
        .filter_map(|d| match std::fs::metadata(d) {
            Err(e) => Some(format!(
                "cgroup hierarchy {} is missing ({e}): check --cgroup-mount",
                d.display()
            )),
            Ok(m) if !m.is_dir() => Some(format!(
                "cgroup hierarchy {} is not a directory: check --cgroup-mount",
                d.display()
            )),
            Ok(_) => access(d.as_path(), AccessFlags::W_OK).err().map(|e| {
                format!(
                    "cgroup hierarchy {} is not writable ({}): mount it read-write",
                    d.display(),
                    e.desc()
                )
            }),
        })
        .collect()
}

/// Binds `address`; the listener is returned so the caller can fail early and report it.
pub async fn bind(address: SocketAddr) -> Result<TcpListener, AdminError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| AdminError::Bind { address, source })
}

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, state: AdminState) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                warn!(error = %e, "admin endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, req.method(), req.uri().path()).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                debug!(error = %e, "admin connection");
            }
        });
    }
}

pub(crate) fn reply(
    code: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    Response::builder()
        .status(code)
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .expect("static response parts are valid")
}

const TEXT: &str = "text/plain; charset=utf-8";

async fn handle(state: &AdminState, method: &Method, path: &str) -> Response<Full<Bytes>> {
    if method != Method::GET {
        return reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "only GET is served\n");
    }
    match path {
        "/metrics" => reply(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            state.stats.metrics.render(),
        ),
        "/healthz" => reply(StatusCode::OK, TEXT, "ok\n"),
        "/readyz" => {
            let problems = readiness(state).await;
            if problems.is_empty() {
                reply(StatusCode::OK, TEXT, "ok\n")
            } else {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    TEXT,
                    problems.join("\n") + "\n",
                )
            }
        }
        "/debug/pods" => {
            let pods: Vec<PodReport> = state.stats.pods.lock().unwrap().values().cloned().collect();
            json(StatusCode::OK, &pods)
        }
        p => match p
            .strip_prefix("/debug/pods/")
            .and_then(|r| r.split_once('/'))
        {
            Some((ns, name)) => {
                let pods = state.stats.pods.lock().unwrap();
                match pods.values().find(|r| r.namespace == ns && r.name == name) {
                    Some(r) => json(StatusCode::OK, r),
                    None => reply(
                        StatusCode::NOT_FOUND,
                        TEXT,
                        format!("pod {ns}/{name} is not known to this agent\n"),
                    ),
                }
            }
            None => reply(StatusCode::NOT_FOUND, TEXT, "not found\n"),
        },
    }
}

fn json<T: serde::Serialize>(code: StatusCode, v: &T) -> Response<Full<Bytes>> {
    reply(
        code,
        "application/json",
        serde_json::to_vec(v).unwrap_or_default(),
    )
}

/// Why the agent is not ready (empty: ready). Checkpoints are loaded before the endpoint
/// starts, so they are always ready here.
async fn readiness(state: &AdminState) -> Vec<String> {
    let mut problems = Vec::new();
    if !state.stats.ready.load(std::sync::atomic::Ordering::Relaxed) {
        problems.push("pod and node watches are not synced yet".to_string());
    }
    match tokio::time::timeout(RUNTIME_PROBE_TIMEOUT, state.runtime.version()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => problems.push(format!("container runtime unreachable: {e}")),
        Err(_) => problems.push(format!(
            "container runtime did not answer Version within {RUNTIME_PROBE_TIMEOUT:?}"
        )),
    }
    problems.extend(cgroup_problems(&state.cgroup_hierarchies));
    if let Some(why) = state.stats.stand_down.lock().unwrap().as_ref() {
        // still ready (it is doing the right thing), but say so
        debug!(reason = %why, "standing down");
    }
    problems
}

/// `GET path` from the agent's admin endpoint (hyper's HTTP/1.1 client over one connection);
/// returns the status code and the body.
pub async fn get(address: &str, path: &str) -> Result<(u16, String), AdminError> {
    let response_err = |detail: String| AdminError::Response {
        address: address.to_string(),
        path: path.to_string(),
        detail,
    };
    let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(address))
        .await
        .map_err(|_| AdminError::Connect {
            address: address.to_string(),
            source: std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
        })?
        .map_err(|source| AdminError::Connect {
            address: address.to_string(),
            source,
        })?;
    let request = Request::get(path)
        .header(hyper::header::HOST, address)
        .body(Empty::<Bytes>::new())
        .map_err(|e| response_err(format!("invalid request: {e}")))?;
    let exchange = async {
        let (mut sender, connection) = client_http1::handshake(TokioIo::new(stream)).await?;
        // The connection task ends when `sender` is dropped (or the agent closes).
        tokio::spawn(connection);
        let response = sender.send_request(request).await?;
        let code = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, hyper::Error>((code, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| response_err("timed out".into()))?
        .map_err(|e| response_err(e.to_string()))
}

/// The agent's pod reports (for `resizelet status`).
pub async fn fetch_pods(address: &str) -> Result<Vec<PodReport>, AdminError> {
    let (code, body) = get(address, "/debug/pods").await?;
    parse_report(address, "/debug/pods", code, &body)
}

/// One pod's report (for `resizelet explain`).
pub async fn fetch_pod(
    address: &str,
    namespace: &str,
    name: &str,
) -> Result<PodReport, AdminError> {
    let path = format!("/debug/pods/{namespace}/{name}");
    let (code, body) = get(address, &path).await?;
    if code == 404 {
        return Err(AdminError::UnknownPod {
            pod: format!("{namespace}/{name}"),
        });
    }
    parse_report(address, &path, code, &body)
}

fn parse_report<T: serde::de::DeserializeOwned>(
    address: &str,
    path: &str,
    code: u16,
    body: &str,
) -> Result<T, AdminError> {
    let err = |detail: String| AdminError::Response {
        address: address.to_string(),
        path: path.to_string(),
        detail,
    };
    if code != 200 {
        return Err(err(format!("HTTP {code}: {}", body.trim())));
    }
    serde_json::from_str(body).map_err(|e| err(format!("unexpected answer: {e}")))
}

/// `resizelet status`: one line per container.
pub fn render_status(pods: &[PodReport]) -> String {
    use crate::core::resources::ResourceRequirements;
    fn rr(r: Option<&ResourceRequirements>) -> String {
        let Some(r) = r else { return "-".into() };
        let side = |l: &crate::core::resources::ResourceList| {
            ["cpu", "memory"]
                .iter()
                .map(|k| l.get(*k).map_or("-".to_string(), |q| q.to_string()))
                .collect::<Vec<_>>()
                .join("/")
        };
        format!("{} {}", side(&r.requests), side(&r.limits))
    }
    let mut rows = vec![[
        "POD".to_string(),
        "CONTAINER".into(),
        "DESIRED".into(),
        "ALLOCATED".into(),
        "ACTUATED".into(),
        "ACTUAL".into(),
        "RESIZE".into(),
    ]];
    let mut pods: Vec<&PodReport> = pods.iter().collect();
    pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    for p in pods {
        let resize = match (&p.pending, &p.in_progress) {
            (Some(c), _) => format!("Pending/{}", c.reason),
            (None, Some(c)) if c.reason.is_empty() => "InProgress".into(),
            (None, Some(c)) => format!("InProgress/{}", c.reason),
            (None, None) => "-".into(),
        };
        for c in &p.containers {
            rows.push([
                format!("{}/{}", p.namespace, p.name),
                c.name.clone(),
                rr(Some(&c.desired)),
                rr(Some(&c.allocated)),
                rr(c.actuated.as_ref()),
                rr(c.actual.as_ref()),
                resize.clone(),
            ]);
        }
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::from("# resources as requests cpu/memory limits cpu/memory\n");
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `resizelet explain`: why a resize is pending or in progress.
pub fn render_explain(p: &PodReport) -> String {
    let mut out = format!(
        "pod {}/{} (uid {}), generation {}, last pass {}\n",
        p.namespace, p.name, p.uid, p.generation, p.at
    );
    out.push_str(&format!("decision: {}", p.decision));
    if !p.decision_message.is_empty() {
        out.push_str(&format!(" — {}", p.decision_message));
    }
    out.push('\n');
    match (&p.pending, &p.in_progress) {
        (None, None) => {
            out.push_str("no resize pending or in progress: desired = allocated = actuated\n")
        }
        (pending, in_progress) => {
            if let Some(c) = pending {
                out.push_str(&format!(
                    "PodResizePending: {} (observedGeneration {}): {}\n",
                    c.reason, c.observed_generation, c.message
                ));
            }
            if let Some(c) = in_progress {
                out.push_str(&format!(
                    "PodResizeInProgress: {} (observedGeneration {}){}\n",
                    if c.reason.is_empty() { "-" } else { &c.reason },
                    c.observed_generation,
                    if c.message.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", c.message)
                    }
                ));
            }
        }
    }
    if !p.admission.is_empty() {
        out.push_str("admission (requests):\n");
        for l in &p.admission {
            out.push_str(&format!(
                "  {:<6} allocatable {:>12}  other pods {:>12}  this pod {:>12}\n",
                l.resource,
                l.allocatable.as_deref().unwrap_or("unset"),
                l.other_pods,
                l.this_pod
            ));
        }
    }
    if !p.last_plan.is_empty() {
        out.push_str("last plan:\n");
        for (i, s) in p.last_plan.iter().enumerate() {
            out.push_str(&format!("  {}. {s}\n", i + 1));
        }
    }
    if let Some(e) = &p.last_error {
        out.push_str(&format!("last error: {e}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cri::{CallCode, CallStatus};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One connection answered with `answer`, whatever was asked; returns the address.
    async fn answer_once(answer: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut buf).await.unwrap();
                assert!(n > 0, "request ended early");
                seen.extend_from_slice(&buf[..n]);
            }
            conn.write_all(answer.as_bytes()).await.unwrap();
        });
        addr
    }

    #[tokio::test]
    async fn chunked_bodies_are_joined() {
        let addr = answer_once(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
             5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        )
        .await;
        assert_eq!(
            get(&addr, "/x").await.unwrap(),
            (200, "hello world".to_string())
        );
    }

    #[tokio::test]
    async fn a_garbled_answer_is_a_response_error() {
        let addr = answer_once("SMTP ready\r\n\r\n").await;
        let e = get(&addr, "/debug/pods").await.unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("reading /debug/pods from the agent at {addr}: ")),
            "{e}"
        );
    }

    #[tokio::test]
    async fn the_client_reads_the_served_endpoint() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = AdminState {
            stats: Arc::new(ControllerStats::default()),
            runtime: Arc::new(crate::cri::fake::FakeRuntime::new()),
            cgroup_hierarchies: vec![],
        };
        tokio::spawn(serve(listener, state));
        assert_eq!(get(&addr, "/healthz").await.unwrap().0, 200);
        assert!(fetch_pods(&addr).await.unwrap().is_empty());
        let e = fetch_pod(&addr, "ns", "nope").await.unwrap_err();
        assert!(matches!(e, AdminError::UnknownPod { .. }), "{e}");
    }

    async fn body(r: Response<Full<Bytes>>) -> (u16, String) {
        let code = r.status().as_u16();
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        (code, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn readyz_says_what_is_missing() {
        use crate::cri::fake::{CallKind, FakeRuntime};
        let runtime = Arc::new(FakeRuntime::new());
        let cgroups = tempfile::tempdir().unwrap();
        let mut state = AdminState {
            stats: Arc::new(ControllerStats::default()),
            runtime: runtime.clone(),
            cgroup_hierarchies: vec![cgroups.path().to_path_buf()],
        };
        let get = |path: &'static str| {
            let state = state.clone();
            async move { body(handle(&state, &Method::GET, path).await).await }
        };
        let (code, text) = get("/readyz").await;
        assert_eq!(code, 503);
        assert!(text.contains("watches are not synced"), "{text}");
        state
            .stats
            .ready
            .store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(get("/readyz").await, (200, "ok\n".to_string()));
        runtime.fail_next(
            CallKind::Version,
            CallStatus::new(CallCode::Unavailable, "socket gone"),
        );
        let (code, text) = get("/readyz").await;
        assert_eq!(code, 503);
        assert!(text.contains("container runtime unreachable"), "{text}");
        assert_eq!(get("/healthz").await.0, 200, "alive even when not ready");
        let (code, pods) = get("/debug/pods").await;
        assert_eq!((code, pods.as_str()), (200, "[]"));
        assert_eq!(get("/debug/pods/ns/nope").await.0, 404);
        assert_eq!(
            body(handle(&state, &Method::POST, "/metrics").await)
                .await
                .0,
            405
        );
        // a missing --cgroup-root hierarchy is named
        state.cgroup_hierarchies = vec!["/nonexistent/cg/memory".into()];
        let (code, text) = body(handle(&state, &Method::GET, "/readyz").await).await;
        assert_eq!(code, 503);
        assert!(
            text.contains("cgroup hierarchy /nonexistent/cg/memory is missing"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn nothing_listening_is_a_clear_error() {
        // a port nobody listens on: bind, learn the port, close
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        drop(l);
        let e = fetch_pods(&addr).await.unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("no resizelet agent answers on {addr}")),
            "{e}"
        );
    }
}
