//! kube-rs implementations: the pod and node watches as one [`Input`] stream, and
//! [`ApiWriter`] for status patches and events.

use async_trait::async_trait;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::Client;
use serde_json::Value;
use tracing::warn;

use super::{Input, KubeWriter, WriteError};

/// A client like `kube::Client::try_from(config)` but with `TCP_NODELAY` on its connections,
/// as client-go has: a status patch is a small request, and with TLS records written separately
/// Nagle's algorithm plus a delayed ACK can add 40 ms to it (kube's builder offers no way to
/// set it). Keeps TLS, authentication and the base URI; a dead API server connection (a
/// silent network partition) is found by TCP keepalive instead of kube's read timeout.
pub fn build_client(config: kube::Config) -> Result<Client, kube::Error> {
    use kube::client::ConfigExt;
    use tower::ServiceBuilder;
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(config.connect_timeout);
    http.set_keepalive(Some(std::time::Duration::from_secs(30)));
    http.set_keepalive_interval(Some(std::time::Duration::from_secs(10)));
    http.set_keepalive_retries(Some(3));
    let https = config.rustls_https_connector_with_connector(http)?;
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .map_err(tower::BoxError::from)
        .service(
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                // a burst opens a connection per concurrent write; keep only a few idle ones
                // (each holds its buffers)
                .pool_max_idle_per_host(IDLE_CONNECTIONS)
                .pool_idle_timeout(std::time::Duration::from_secs(30))
                .build(https),
        );
    Ok(Client::new(service, config.default_namespace))
}

/// Idle API server connections kept for reuse.
const IDLE_CONNECTIONS: usize = 8;

/// The API server's version (`GET /version`).
pub async fn server_version(client: &Client) -> Result<crate::config::ServerVersion, kube::Error> {
    Ok(super::convert::server_version(
        &client.apiserver_version().await?,
    ))
}

/// Pods bound to `node_name` (field selector `spec.nodeName`) and the Node itself, merged. Watch
/// errors are logged and retried with kube-runtime's default backoff; a `410 Gone` makes the
/// watcher relist (an `Init` … `InitDone` sequence).
pub fn watch_inputs(client: Client, node_name: &str) -> impl Stream<Item = Input> + Send {
    let pods: Api<Pod> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client);
    let pod_config = watcher::Config::default().fields(&format!("spec.nodeName={node_name}"));
    let node_config = watcher::Config::default().fields(&format!("metadata.name={node_name}"));
    let pods = relist_gone_at_once(watcher(pods, pod_config)).filter_map(|e| async move {
        match e {
            Ok(e) => Some(Input::Pod(e)),
            Err(err) => {
                warn!(error = %err, "pod watch failed; retrying with backoff");
                None
            }
        }
    });
    let nodes = relist_gone_at_once(watcher(nodes, node_config)).filter_map(|e| async move {
        match e {
            Ok(e) => Some(Input::Node(e)),
            Err(err) => {
                warn!(error = %err, "node watch failed; retrying with backoff");
                None
            }
        }
    });
    futures::stream::select(pods, nodes)
}

/// `410 Gone`: the watch's resourceVersion is too old; the watcher relists.
fn is_gone(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::WatchError(s) => s.code == 410,
        watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s))
        | watcher::Error::InitialListFailed(kube::Error::Api(s)) => s.code == 410,
        _ => false,
    }
}

/// First delay after a watch error, doubled per consecutive error up to [`BACKOFF_MAX`]
/// (kube-runtime's default backoff).
const BACKOFF_INITIAL: std::time::Duration = std::time::Duration::from_millis(800);
const BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(30);

/// kube-runtime's exponential backoff on watch errors, except that the first `410 Gone` in a
/// row relists at once: it is routine (an expired resourceVersion), and waiting would leave
/// erased resize fields unrepaired for the whole backoff. Consecutive errors of any kind back off.
fn relist_gone_at_once<T, S>(stream: S) -> impl Stream<Item = Result<T, watcher::Error>> + Send
where
    S: Stream<Item = Result<T, watcher::Error>> + Send + 'static,
    T: Send + 'static,
{
    futures::stream::unfold(
        (Box::pin(stream), 0u32),
        |(mut stream, errors)| async move {
            let item = stream.next().await?;
            let errors = match &item {
                Ok(_) => 0,
                Err(e) => {
                    if !(errors == 0 && is_gone(e)) {
                        let delay = BACKOFF_INITIAL
                            .saturating_mul(1 << errors.min(6))
                            .min(BACKOFF_MAX);
                        // jitter: up to +25 %
                        let nanos = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.subsec_nanos());
                        let jitter = delay.mul_f64(f64::from(nanos % 1000) / 4000.0);
                        tokio::time::sleep(delay + jitter).await;
                    }
                    errors + 1
                }
            };
            Some((item, (stream, errors)))
        },
    )
}

/// Client-side rate limit (like client-go's `--kube-api-qps` / `--kube-api-burst`): a token
/// bucket refilled at `qps`, holding at most `burst` tokens.
pub struct RateLimiter {
    qps: f64,
    burst: f64,
    state: tokio::sync::Mutex<(f64, tokio::time::Instant)>,
}

impl RateLimiter {
    pub fn new(qps: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        RateLimiter {
            qps: qps.max(0.001),
            burst,
            state: tokio::sync::Mutex::new((burst, tokio::time::Instant::now())),
        }
    }

    /// Waits for one token.
    pub async fn acquire(&self) {
        let mut st = self.state.lock().await;
        let now = tokio::time::Instant::now();
        let refill = now.duration_since(st.1).as_secs_f64() * self.qps;
        st.0 = (st.0 + refill).min(self.burst);
        st.1 = now;
        if st.0 >= 1.0 {
            st.0 -= 1.0;
            return;
        }
        let wait = std::time::Duration::from_secs_f64((1.0 - st.0) / self.qps);
        tokio::time::sleep(wait).await;
        st.0 = 0.0;
        st.1 = tokio::time::Instant::now();
    }
}

/// Writes through a kube-rs [`Client`], rate limited.
pub struct ApiWriter {
    client: Client,
    field_manager: String,
    /// Pod reads and status writes (`--kube-api-qps`, `--kube-api-burst`).
    limiter: RateLimiter,
    /// Events have their own budget, as the kubelet's (`eventRecordQPS` 50, `eventBurst` 100):
    /// a burst of resizes must not queue status patches behind their events.
    event_limiter: RateLimiter,
}

/// The kubelet's default `eventRecordQPS` and `eventBurst`.
pub const EVENT_QPS: f64 = 50.0;
pub const EVENT_BURST: u32 = 100;

impl ApiWriter {
    pub fn new(client: Client, qps: f64, burst: u32) -> Self {
        ApiWriter {
            client,
            field_manager: "resizelet".into(),
            limiter: RateLimiter::new(qps, burst),
            event_limiter: RateLimiter::new(EVENT_QPS, EVENT_BURST),
        }
    }
}

fn write_error(what: String, e: kube::Error) -> WriteError {
    match e {
        kube::Error::Api(s) if s.code == 409 => WriteError::Conflict { what },
        kube::Error::Api(s) if s.code == 404 => WriteError::NotFound { what },
        kube::Error::Api(s) => WriteError::Api {
            what,
            code: s.code,
            message: s.message,
        },
        other => WriteError::Transport {
            what,
            message: other.to_string(),
        },
    }
}

#[async_trait]
impl KubeWriter for ApiWriter {
    async fn patch_pod_status(
        &self,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Pod, WriteError> {
        self.limiter.acquire().await;
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = PatchParams::default();
        let params = PatchParams {
            field_manager: Some(self.field_manager.clone()),
            ..params
        };
        api.patch_status(name, &params, &Patch::Strategic(patch))
            .await
            .map_err(|e| write_error(format!("pods/{namespace}/{name}/status"), e))
    }

    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Pod, WriteError> {
        self.limiter.acquire().await;
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        api.get(name)
            .await
            .map_err(|e| write_error(format!("pods/{namespace}/{name}"), e))
    }

    async fn create_event(&self, namespace: &str, event: &Event) -> Result<String, WriteError> {
        self.event_limiter.acquire().await;
        let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        let created = api
            .create(&PostParams::default(), event)
            .await
            .map_err(|e| write_error(format!("events in {namespace}"), e))?;
        Ok(created.metadata.name.unwrap_or_default())
    }

    async fn patch_event(
        &self,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<(), WriteError> {
        self.event_limiter.acquire().await;
        let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map(|_| ())
            .map_err(|e| write_error(format!("events/{namespace}/{name}"), e))
    }
}

#[cfg(test)]
mod backoff_tests {
    use super::*;
    use kube::core::Status;

    fn gone() -> watcher::Error {
        watcher::Error::WatchError(Box::new(
            Status::failure("too old resource version", "Expired").with_code(410),
        ))
    }

    async fn timeline(items: Vec<Result<u32, watcher::Error>>) -> Vec<(bool, u128)> {
        let start = tokio::time::Instant::now();
        relist_gone_at_once(futures::stream::iter(items))
            .map(|r| (r.is_ok(), start.elapsed().as_millis()))
            .collect()
            .await
    }

    #[tokio::test(start_paused = true)]
    async fn first_gone_relists_at_once_other_errors_back_off() {
        let t = timeline(vec![Ok(1), Err(gone()), Ok(2)]).await;
        assert_eq!(t, [(true, 0), (false, 0), (true, 0)]);
        let t = timeline(vec![Err(watcher::Error::NoResourceVersion), Ok(1)]).await;
        assert!(t[0].1 >= 800, "{t:?}");
        // a 410 right after another error is not free either
        let t = timeline(vec![Err(gone()), Err(gone()), Ok(1)]).await;
        assert_eq!(t[0].1, 0);
        assert!(t[1].1 >= 800, "{t:?}");
    }
}
