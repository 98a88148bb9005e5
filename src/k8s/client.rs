//! kube-rs implementations: the pod and node watches as one [`Input`] stream, and
//! [`ApiWriter`] for status patches and events.

use async_trait::async_trait;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::utils::{Backoff, StreamBackoff};
use kube::runtime::watcher;
use kube::Client;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tracing::warn;

use super::convert::{self, PodView};
use super::{EventRecord, Input, KubeWriter, SeriesUpdate, StatusPatch, WriteError};

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

/// Pods bound to `node_name` (field selector `spec.nodeName`) and the Node itself, merged, each
/// event converted here, at the stream's edge (`convert::pod_input` / `convert::node_input`).
/// Watch errors are logged and retried with kube-runtime's default backoff; a `410 Gone` makes
/// the watcher relist (an `Init` … `InitDone` sequence).
pub fn watch_inputs(client: Client, node_name: &str) -> impl Stream<Item = Input> + Send {
    let pods: Api<Pod> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client);
    let pod_config = watcher::Config::default().fields(&format!("spec.nodeName={node_name}"));
    let node_config = watcher::Config::default().fields(&format!("metadata.name={node_name}"));
    let pods = watched(watcher(pods, pod_config), convert::pod_input, "pod");
    let nodes = watched(watcher(nodes, node_config), convert::node_input, "node");
    futures::stream::select(pods, nodes)
}

/// One watcher's events as [`Input`]s (`convert`), its errors logged (they are retried with
/// backoff).
fn watched<K, S>(
    stream: S,
    convert: fn(watcher::Event<K>) -> Option<Input>,
    what: &'static str,
) -> impl Stream<Item = Input> + Send
where
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    K: Send + 'static,
{
    relist_gone_at_once(stream).filter_map(move |e| async move {
        match e {
            Ok(e) => convert(e),
            Err(err) => {
                warn!(error = %err, "{what} watch failed; retrying with backoff");
                None
            }
        }
    })
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

/// kube-runtime's default watch backoff ([`watcher::DefaultBackoff`] through
/// [`StreamBackoff`], as `WatchStreamExt::default_backoff` applies it), except that the first
/// `410 Gone` in a row relists at once: it is routine (an expired resourceVersion), and waiting
/// would leave erased resize fields unrepaired for the whole backoff. Consecutive errors of any
/// kind back off.
fn relist_gone_at_once<T, S>(stream: S) -> impl Stream<Item = Result<T, watcher::Error>> + Send
where
    S: Stream<Item = Result<T, watcher::Error>> + Send + 'static,
    T: Send + 'static,
{
    let free = Arc::new(AtomicBool::new(false));
    let mut errors = 0u32;
    let flag = free.clone();
    // runs as the item passes, before StreamBackoff asks the backoff for its delay
    let marked = stream.inspect(move |item| match item {
        Ok(_) => errors = 0,
        Err(e) => {
            flag.store(errors == 0 && is_gone(e), Ordering::Relaxed);
            errors += 1;
        }
    });
    StreamBackoff::new(
        marked,
        GoneAtOnce {
            free,
            inner: watcher::DefaultBackoff::default(),
        },
    )
}

/// [`watcher::DefaultBackoff`], but no delay for an error marked free.
struct GoneAtOnce {
    free: Arc<AtomicBool>,
    inner: watcher::DefaultBackoff,
}

impl Iterator for GoneAtOnce {
    type Item = std::time::Duration;

    fn next(&mut self) -> Option<std::time::Duration> {
        if self.free.swap(false, Ordering::Relaxed) {
            return Some(std::time::Duration::ZERO);
        }
        self.inner.next()
    }
}

impl Backoff for GoneAtOnce {
    fn reset(&mut self) {
        self.inner.reset();
    }
}

/// Client-side rate limit (like client-go's `--kube-api-qps` / `--kube-api-burst`): a token
/// bucket refilled at `qps`, holding at most `burst` tokens. `governor`'s GCRA: no lock is held
/// while a caller waits, so waiters do not queue behind one another's sleep.
pub struct RateLimiter {
    inner: governor::DefaultDirectRateLimiter,
}

impl RateLimiter {
    pub fn new(qps: f64, burst: u32) -> Self {
        let period = std::time::Duration::from_secs_f64(1.0 / qps.max(0.001));
        let burst = std::num::NonZeroU32::new(burst.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
        let quota = governor::Quota::with_period(period)
            .unwrap_or_else(|| governor::Quota::per_second(std::num::NonZeroU32::MAX))
            .allow_burst(burst);
        RateLimiter {
            inner: governor::RateLimiter::direct(quota),
        }
    }

    /// Waits for one token.
    pub async fn acquire(&self) {
        self.inner.until_ready().await;
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
    async fn patch_pod_status(&self, patch: &StatusPatch) -> Result<Option<PodView>, WriteError> {
        self.limiter.acquire().await;
        let (namespace, name) = (&patch.namespace, &patch.name);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = PatchParams {
            field_manager: Some(self.field_manager.clone()),
            ..PatchParams::default()
        };
        api.patch_status(name, &params, &Patch::Strategic(&patch.body))
            .await
            .map(|pod| convert::pod_view(&pod).ok())
            .map_err(|e| write_error(format!("pods/{namespace}/{name}/status"), e))
    }

    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<PodView>, WriteError> {
        self.limiter.acquire().await;
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        api.get(name)
            .await
            .map(|pod| convert::pod_view(&pod).ok())
            .map_err(|e| write_error(format!("pods/{namespace}/{name}"), e))
    }

    async fn create_event(&self, event: &EventRecord) -> Result<String, WriteError> {
        self.event_limiter.acquire().await;
        let namespace = &event.namespace;
        let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        let created = api
            .create(&PostParams::default(), &convert::event_object(event))
            .await
            .map_err(|e| write_error(format!("events in {namespace}"), e))?;
        Ok(created.metadata.name.unwrap_or_default())
    }

    async fn update_series(&self, series: &SeriesUpdate) -> Result<(), WriteError> {
        self.event_limiter.acquire().await;
        let (namespace, name) = (&series.namespace, &series.name);
        let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        let patch = convert::series_patch(series);
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| write_error(format!("events/{namespace}/{name}"), e))
    }
}

#[cfg(test)]
mod limiter_tests {
    use super::RateLimiter;
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn a_burst_passes_at_once_then_tokens_come_at_qps() {
        let limiter = RateLimiter::new(20.0, 3);
        let start = Instant::now();
        for _ in 0..3 {
            limiter.acquire().await;
        }
        assert!(
            start.elapsed() < Duration::from_millis(30),
            "the burst waited"
        );
        // 4 more at 20 per second: about 200 ms
        let waiters: Vec<_> = (0..4).map(|_| limiter.acquire()).collect();
        futures::future::join_all(waiters).await;
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(190) && took < Duration::from_secs(2),
            "{took:?}"
        );
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

    /// The time of each item is when the watcher was polled for it: the delay after an error
    /// is the wait before the next watch attempt.
    #[tokio::test(start_paused = true)]
    async fn first_gone_relists_at_once_other_errors_back_off() {
        let t = timeline(vec![Ok(1), Err(gone()), Ok(2)]).await;
        assert_eq!(t, [(true, 0), (false, 0), (true, 0)]);
        let t = timeline(vec![Err(watcher::Error::NoResourceVersion), Ok(1)]).await;
        assert!(t[1].1 >= 800, "{t:?}");
        // a 410 right after another error is not free either
        let t = timeline(vec![Err(gone()), Err(gone()), Ok(1)]).await;
        assert_eq!((t[0].1, t[1].1), (0, 0), "{t:?}");
        assert!(t[2].1 >= 800, "{t:?}");
        // kube's backoff doubles on consecutive errors and resets on success
        let t = timeline(vec![
            Err(watcher::Error::NoResourceVersion),
            Err(watcher::Error::NoResourceVersion),
            Ok(1),
            Err(gone()),
            Ok(2),
        ])
        .await;
        assert!(t[2].1 - t[1].1 >= 1600, "{t:?}");
        assert_eq!(t[4].1, t[2].1, "a first 410 after a success is free: {t:?}");
    }
}
