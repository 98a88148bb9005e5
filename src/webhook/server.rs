//! The webhook's shell: HTTPS (rustls) on `--address` serving `POST /mutate`, the serving
//! certificate and key read from files (a mounted Secret: `tls.crt`, `tls.key`) and re-read every
//! `--cert-reload-interval` (a changed pair is swapped in for new connections; a broken one is
//! logged and counted, the old pair stays), and plain HTTP on `--metrics-address` for
//! `/healthz`, `/readyz` and `/metrics`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use super::{convert, decide, Decision};

/// The largest AdmissionReview accepted (old + new object of a pod near etcd's 1.5 MiB limit).
const MAX_BODY: usize = 4 << 20;
/// A TLS handshake or request that takes longer is dropped (the API server's own timeout for
/// this webhook is shorter).
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Address of the HTTPS endpoint the API server calls (`POST /mutate`).
    #[arg(
        long,
        env = "RESIZELET_WEBHOOK_ADDRESS",
        default_value = "0.0.0.0:8443"
    )]
    pub address: SocketAddr,
    /// PEM certificate chain served (e.g. `tls.crt` of a mounted kubernetes.io/tls Secret).
    #[arg(
        long,
        env = "RESIZELET_WEBHOOK_TLS_CERT_FILE",
        default_value = "/etc/resizelet/webhook-tls/tls.crt"
    )]
    pub tls_cert_file: PathBuf,
    /// PEM private key of that certificate (PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        env = "RESIZELET_WEBHOOK_TLS_KEY_FILE",
        default_value = "/etc/resizelet/webhook-tls/tls.key"
    )]
    pub tls_private_key_file: PathBuf,
    /// How often the certificate files are re-read (a renewed Secret is picked up this late).
    #[arg(long, env = "RESIZELET_WEBHOOK_CERT_RELOAD_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub cert_reload_interval: Duration,
    /// Plain-HTTP address of `/healthz`, `/readyz` and `/metrics`.
    #[arg(
        long,
        env = "RESIZELET_WEBHOOK_METRICS_ADDRESS",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_address: SocketAddr,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "s"), |i| s.split_at(i));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: want e.g. 10s, 500ms, 1m"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        _ => return Err(format!("invalid duration {s:?}: want e.g. 10s, 500ms, 1m")),
    };
    if d.is_zero() {
        return Err(format!("invalid duration {s:?}: must be positive"));
    }
    Ok(d)
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate in it")]
    NoCertificate { path: PathBuf },
    #[error("{path}: no usable PEM private key in it: {detail}")]
    BadKey { path: PathBuf, detail: String },
    #[error("{cert} and {key} do not form a usable pair: {detail}")]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        detail: String,
    },
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The certificate files as read, and the key pair built from them.
struct Loaded {
    raw: (Vec<u8>, Vec<u8>),
    key: Arc<CertifiedKey>,
}

fn read(path: &Path) -> Result<Vec<u8>, WebhookError> {
    std::fs::read(path).map_err(|source| WebhookError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Builds the served key pair from PEM bytes.
fn certified_key(
    cert_path: &Path,
    key_path: &Path,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<CertifiedKey>, WebhookError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(WebhookError::NoCertificate {
            path: cert_path.to_path_buf(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| WebhookError::BadKey {
        path: key_path.to_path_buf(),
        detail: e.to_string(),
    })?;
    let provider = rustls::crypto::ring::default_provider();
    let ck = CertifiedKey::from_der(chain, key, &provider).map_err(|e| WebhookError::Pair {
        cert: cert_path.to_path_buf(),
        key: key_path.to_path_buf(),
        detail: e.to_string(),
    })?;
    Ok(Arc::new(ck))
}

/// The served certificate, swapped when the files change.
#[derive(Debug)]
struct CertStore {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// The webhook's Prometheus metrics.
struct Metrics {
    requests: Family<OutcomeLabels, Counter>,
    carried: Counter,
    duration: Histogram,
    reloads: Family<ResultLabels, Counter>,
    registry: Registry,
}

impl Metrics {
    fn new() -> Metrics {
        let requests = Family::<OutcomeLabels, Counter>::default();
        let carried = Counter::default();
        // 50 µs … ~100 ms
        let duration = Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            0.00005, 2.0, 12,
        ));
        let reloads = Family::<ResultLabels, Counter>::default();
        let mut registry = Registry::default();
        registry.register(
            "resizelet_webhook_requests",
            "AdmissionReview calls by outcome (patched, unchanged, not_applicable, invalid)",
            requests.clone(),
        );
        registry.register(
            "resizelet_webhook_carried_fields",
            "resources/allocatedResources fields put back by the webhook's patches",
            carried.clone(),
        );
        registry.register_with_unit(
            "resizelet_webhook_request_duration",
            "Time from a request's arrival to its answer",
            prometheus_client::registry::Unit::Seconds,
            duration.clone(),
        );
        registry.register(
            "resizelet_webhook_certificate_reloads",
            "Serving-certificate reloads after the files changed, by result",
            reloads.clone(),
        );
        Metrics {
            requests,
            carried,
            duration,
            reloads,
            registry,
        }
    }

    fn render(&self) -> String {
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, &self.registry)
            .expect("writing to a String cannot fail");
        s
    }
}

use crate::admin::reply;

const TEXT: &str = "text/plain; charset=utf-8";

/// Answers one AdmissionReview body: (status code, body, outcome label, fields carried).
fn admit(body: &[u8]) -> (StatusCode, Vec<u8>, &'static str, usize) {
    let req = match convert::parse_review(body) {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("{e}\n").into_bytes(),
                "invalid",
                0,
            )
        }
    };
    let d = decide(&convert::request(&req));
    let (outcome, carried) = match &d {
        Decision::NotApplicable => ("not_applicable", 0),
        Decision::Unchanged => ("unchanged", 0),
        Decision::Carry(c) => ("patched", c.len()),
    };
    if let Decision::Carry(c) = &d {
        debug!(pod = %format!("{}/{}", req.namespace.as_deref().unwrap_or(""), req.name), fields = c.len(), user = ?req.user_info.username, "carrying resize fields over");
    }
    match convert::response(&req, &d) {
        Ok(b) => (StatusCode::OK, b, outcome, carried),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{e}\n").into_bytes(),
            "invalid",
            0,
        ),
    }
}

async fn handle_mutate(metrics: &Metrics, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let started = Instant::now();
    if req.method() != Method::POST || req.uri().path() != "/mutate" {
        return reply(
            StatusCode::NOT_FOUND,
            TEXT,
            "only POST /mutate is served here\n",
        );
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            metrics
                .requests
                .get_or_create(&OutcomeLabels { outcome: "invalid" })
                .inc();
            return reply(
                StatusCode::BAD_REQUEST,
                TEXT,
                format!(
                    "invalid AdmissionReview: reading the body (at most {MAX_BODY} bytes): {e}\n"
                ),
            );
        }
    };
    let (code, out, outcome, carried) = admit(&body);
    metrics
        .requests
        .get_or_create(&OutcomeLabels { outcome })
        .inc();
    metrics.carried.inc_by(carried as u64);
    metrics.duration.observe(started.elapsed().as_secs_f64());
    let ctype = if code == StatusCode::OK {
        "application/json"
    } else {
        TEXT
    };
    reply(code, ctype, out)
}

async fn bind(address: SocketAddr) -> Result<TcpListener, WebhookError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| WebhookError::Bind { address, source })
}

fn load(o: &Options) -> Result<Loaded, WebhookError> {
    let raw = (read(&o.tls_cert_file)?, read(&o.tls_private_key_file)?);
    let key = certified_key(&o.tls_cert_file, &o.tls_private_key_file, &raw.0, &raw.1)?;
    Ok(Loaded { raw, key })
}

/// Re-reads the files every interval; a changed, valid pair replaces the served one.
async fn reload_loop(
    o: Options,
    store: Arc<CertStore>,
    mut last: (Vec<u8>, Vec<u8>),
    m: Arc<Metrics>,
) {
    let mut tick = tokio::time::interval(o.cert_reload_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let o2 = o.clone();
        let loaded = match tokio::task::spawn_blocking(move || {
            let raw = (read(&o2.tls_cert_file)?, read(&o2.tls_private_key_file)?);
            Ok::<_, WebhookError>(raw)
        })
        .await
        {
            Ok(r) => r,
            Err(_) => continue,
        };
        let raw = match loaded {
            Ok(raw) if raw == last => continue,
            Ok(raw) => raw,
            Err(e) => {
                // a Secret update swaps a symlink: a read may race it; the next tick retries
                warn!(error = %e, "webhook certificate: cannot re-read; keeping the current one");
                m.reloads
                    .get_or_create(&ResultLabels { result: "failure" })
                    .inc();
                continue;
            }
        };
        match certified_key(&o.tls_cert_file, &o.tls_private_key_file, &raw.0, &raw.1) {
            Ok(key) => {
                *store.current.write().unwrap_or_else(|e| e.into_inner()) = key;
                m.reloads
                    .get_or_create(&ResultLabels { result: "success" })
                    .inc();
                info!(cert = %o.tls_cert_file.display(), "webhook certificate reloaded");
            }
            Err(e) => {
                m.reloads
                    .get_or_create(&ResultLabels { result: "failure" })
                    .inc();
                warn!(error = %e, "webhook certificate: the new files are unusable; keeping the current one");
            }
        }
        last = raw;
    }
}

async fn serve_metrics(listener: TcpListener, m: Arc<Metrics>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let m = m.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let m = m.clone();
                async move {
                    Ok::<_, Infallible>(match (req.method(), req.uri().path()) {
                        (&Method::GET, "/healthz" | "/readyz") => {
                            reply(StatusCode::OK, TEXT, "ok\n")
                        }
                        (&Method::GET, "/metrics") => reply(
                            StatusCode::OK,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            m.render(),
                        ),
                        _ => reply(
                            StatusCode::NOT_FOUND,
                            TEXT,
                            "GET /healthz, /readyz or /metrics\n",
                        ),
                    })
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Runs the webhook until the process is stopped. Fails early (before serving) on unreadable or
/// unusable certificate files and on addresses that cannot be bound.
pub async fn serve(o: Options) -> Result<(), WebhookError> {
    let first = load(&o)?;
    let store = Arc::new(CertStore {
        current: RwLock::new(first.key),
    });
    let metrics = Arc::new(Metrics::new());
    let tls_listener = bind(o.address).await?;
    let metrics_listener = bind(o.metrics_address).await?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| WebhookError::Pair {
            cert: o.tls_cert_file.clone(),
            key: o.tls_private_key_file.clone(),
            detail: e.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(store.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    info!(address = %o.address, metrics = %o.metrics_address, "resizelet webhook serving");
    tokio::spawn(reload_loop(o.clone(), store, first.raw, metrics.clone()));
    tokio::spawn(serve_metrics(metrics_listener, metrics.clone()));
    loop {
        let (stream, peer) = match tls_listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "webhook: accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(CONNECTION_TIMEOUT, acceptor.accept(stream)).await
            {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    debug!(%peer, error = %e, "webhook: TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let svc = service_fn(move |req: Request<Incoming>| {
                let metrics = metrics.clone();
                async move { Ok::<_, Infallible>(handle_mutate(&metrics, req).await) }
            });
            if let Err(e) = http1::Builder::new()
                .header_read_timeout(CONNECTION_TIMEOUT)
                .timer(hyper_util::rt::TokioTimer::new())
                .serve_connection(TokioIo::new(tls), svc)
                .await
            {
                debug!(%peer, error = %e, "webhook connection");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("1h").is_err());
    }

    #[test]
    fn admit_answers_malformed_bodies_with_400_and_the_reason() {
        let (code, body, outcome, _) = admit(b"{\"apiVersion\": 1}");
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert_eq!(outcome, "invalid");
        assert!(String::from_utf8(body)
            .unwrap()
            .starts_with("invalid AdmissionReview: "));
    }

    #[test]
    fn unusable_certificate_files_are_clear_errors() {
        let p = Path::new("/x/tls.crt");
        let k = Path::new("/x/tls.key");
        let e = certified_key(p, k, b"garbage", b"garbage").unwrap_err();
        assert_eq!(e.to_string(), "/x/tls.crt: no PEM certificate in it");
        let c = rcgen::generate_simple_self_signed(vec!["a".into()]).unwrap();
        let e = certified_key(p, k, c.cert.pem().as_bytes(), b"garbage").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/x/tls.key: no usable PEM private key in it"),
            "{e}"
        );
        let other = rcgen::KeyPair::generate().unwrap();
        let e = certified_key(
            p,
            k,
            c.cert.pem().as_bytes(),
            other.serialize_pem().as_bytes(),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/x/tls.crt and /x/tls.key do not form a usable pair"),
            "{e}"
        );
        assert!(certified_key(
            p,
            k,
            c.cert.pem().as_bytes(),
            c.signing_key.serialize_pem().as_bytes()
        )
        .is_ok());
    }
}
