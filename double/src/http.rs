//! The HTTP surface: routing of the REST paths kube-rs uses, JSON responses,
//! metav1 `Status` errors, fault injection and chunked watch streams.

use crate::store::Kind;
use crate::util::{parse_query, FieldSelector, LabelSelector};
use crate::{ApiError, EventType, Fault, Inner, PatchKind, WatchEvent};
use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};

/// A streamed response body fed by a channel (watch streams).
pub struct ChanBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChanBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

type Body = Either<Full<Bytes>, ChanBody>;

pub async fn serve(listener: TcpListener, inner: Arc<Inner>) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let inner = inner.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let inner = inner.clone();
                async move { Ok::<_, Infallible>(handle(inner, req).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn json_response(code: u16, v: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .body(Either::Left(Full::new(Bytes::from(
            serde_json::to_vec(v).unwrap_or_default(),
        ))))
        .expect("response")
}

fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.to_status())
}

/// What a route answers.
enum Reply {
    Json(u16, Value),
    Watch(WatchReq),
}

/// Who sent a request: the bearer token names the user as on a real server; without one the
/// User-Agent.
fn client_of(req: &Request<Incoming>) -> String {
    let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok());
    if let Some(t) = header("authorization").and_then(|a| a.strip_prefix("Bearer ")) {
        return format!("token:{}", t.trim());
    }
    match header("user-agent") {
        Some(ua) => format!("agent:{ua}"),
        None => "anonymous".into(),
    }
}

async fn handle(inner: Arc<Inner>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let client = client_of(&req);
    let accept = req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let path = req.uri().path().to_string();
    let query = parse_query(req.uri().query().unwrap_or(""));
    let ctype = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error_response(&ApiError::bad_request(format!("reading body: {e}"))),
    };
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let is_status_patch = method == Method::PATCH
        && matches!(
            segs.as_slice(),
            ["api", "v1", "namespaces", _, "pods", _, "status"]
        );
    {
        let mut st = inner.store.lock();
        st.stats.requests += 1;
        let pos = st.faults.iter().position(|f| match f {
            Fault::Status(_) => true,
            Fault::Conflict => is_status_patch,
        });
        if let Some(i) = pos {
            let f = st.faults.remove(i).expect("fault");
            st.stats.faults_fired += 1;
            let e = match f {
                Fault::Status(code) => ApiError::from_code(code),
                Fault::Conflict => {
                    st.stats.pod_status_conflicts += 1;
                    ApiError::conflict("pods", segs[5])
                }
            };
            return error_response(&e);
        }
    }
    tracing::debug!(%method, %path, "request");
    let write = matches!(
        method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if write {
        let latency = inner.store.lock().write_latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }
    if let Some(r) = crate::discovery::route(&segs, &accept) {
        return match r {
            Ok((ctype, body)) => Response::builder()
                .status(StatusCode::OK)
                .header("content-type", ctype)
                .body(Either::Left(Full::new(Bytes::from(body))))
                .expect("response"),
            Err(e) => error_response(&e),
        };
    }
    // pods/status writes go through the configured mutating webhooks first (admission.rs)
    let result = match crate::admission::http_status_write(
        &inner,
        &method,
        &segs,
        &ctype,
        &body,
        authorization.as_deref(),
    )
    .await
    {
        Some(r) => r.map(|v| Reply::Json(200, v)),
        None => route(&inner, &method, &segs, &query, &ctype, &body),
    };
    match result {
        Ok(Reply::Json(code, v)) => json_response(code, &v),
        Ok(Reply::Watch(w)) => start_watch(inner, w),
        Err(e) => {
            if write && (400..500).contains(&e.code) && e.code != 404 && e.code != 409 {
                let mut st = inner.store.lock();
                *st.stats.refused_writes.entry(client.clone()).or_default() += 1;
                st.refusals.push_back(crate::Refusal {
                    client,
                    method: method.to_string(),
                    path: path.clone(),
                    code: e.code,
                    message: e.message.clone(),
                });
                while st.refusals.len() > 1000 {
                    st.refusals.pop_front();
                }
                tracing::warn!(%method, %path, code = e.code, message = %e.message, "write refused");
            }
            error_response(&e)
        }
    }
}

fn q<'a>(query: &'a [(String, String)], k: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v.as_str())
}

pub(crate) fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

pub(crate) fn patch_kind(ctype: &str) -> Result<PatchKind, ApiError> {
    let base = ctype.split(';').next().unwrap_or("").trim();
    match base {
        "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
        "application/merge-patch+json" => Ok(PatchKind::Merge),
        "application/json-patch+json" => Ok(PatchKind::Json),
        other => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {other:?})"),
        )),
    }
}

fn method_not_allowed(method: &Method) -> ApiError {
    ApiError::new(
        405,
        "MethodNotAllowed",
        format!("the server does not allow this method on the requested resource ({method})"),
    )
}

fn route(
    inner: &Arc<Inner>,
    method: &Method,
    segs: &[&str],
    query: &[(String, String)],
    ctype: &str,
    body: &Bytes,
) -> Result<Reply, ApiError> {
    let store = &inner.store;
    let ok = |v: Value| Ok(Reply::Json(200, v));
    let created = |v: Value| Ok(Reply::Json(201, v));
    // (kind, namespace, name, subresource, api version of the group)
    let (kind, ns, name, sub, api_version): (Kind, Option<&str>, Option<&str>, Option<&str>, &str) =
        match segs {
            ["version"] => {
                let minor = store.lock().minor_version;
                return ok(json!({
                    "major": "1", "minor": minor.to_string(), "gitVersion": format!("v1.{minor}.0-double"),
                    "gitCommit": "", "gitTreeState": "clean", "buildDate": "",
                    "goVersion": "", "compiler": "gc", "platform": "linux/amd64"
                }));
            }
            ["api", "v1", "pods"] => (Kind::Pod, None, None, None, "v1"),
            ["api", "v1", "events"] => (Kind::Event, None, None, None, "v1"),
            ["apis", "events.k8s.io", "v1", "events"] => {
                (Kind::Event, None, None, None, "events.k8s.io/v1")
            }
            ["api", "v1", "namespaces", ns, res, rest @ ..] if rest.len() <= 2 => {
                let kind = match *res {
                    "pods" => Kind::Pod,
                    "events" => Kind::Event,
                    _ => return Err(not_found_path(segs)),
                };
                (
                    kind,
                    Some(*ns),
                    rest.first().copied(),
                    rest.get(1).copied(),
                    "v1",
                )
            }
            ["apis", "events.k8s.io", "v1", "namespaces", ns, "events", rest @ ..]
                if rest.len() <= 1 =>
            {
                (
                    Kind::Event,
                    Some(*ns),
                    rest.first().copied(),
                    None,
                    "events.k8s.io/v1",
                )
            }
            ["api", "v1", "nodes", rest @ ..] if rest.len() <= 2 => (
                Kind::Node,
                Some(""),
                rest.first().copied(),
                rest.get(1).copied(),
                "v1",
            ),
            _ => return Err(not_found_path(segs)),
        };
    let list_ns = if kind == Kind::Node { None } else { ns };
    match (name, sub) {
        (None, _) => match *method {
            Method::GET => {
                let fs = FieldSelector::parse(q(query, "fieldSelector").unwrap_or(""))
                    .map_err(ApiError::bad_request)?;
                let ls = LabelSelector::parse(q(query, "labelSelector").unwrap_or(""));
                if matches!(q(query, "watch"), Some("true" | "1")) {
                    let from = match q(query, "resourceVersion").unwrap_or("") {
                        "" | "0" => None,
                        s => Some(s.parse::<u64>().map_err(|_| {
                            ApiError::bad_request(format!("invalid resource version: {s}"))
                        })?),
                    };
                    let timeout = q(query, "timeoutSeconds")
                        .and_then(|s| s.parse::<u64>().ok())
                        .filter(|s| *s > 0)
                        .map(Duration::from_secs);
                    let bookmarks = matches!(q(query, "allowWatchBookmarks"), Some("true" | "1"));
                    return Ok(Reply::Watch(WatchReq {
                        kind,
                        ns: list_ns.map(str::to_string),
                        fs,
                        ls,
                        from,
                        bookmarks,
                        timeout,
                        api_version: api_version.to_string(),
                    }));
                }
                if kind != Kind::Event {
                    return ok(store.list(kind, list_ns, &fs, &ls));
                }
                // one storage, both groups: convert, then select on the served fields
                let mut list = store.list(kind, list_ns, &FieldSelector::default(), &ls);
                list["apiVersion"] = api_version.into();
                if let Some(Value::Array(items)) = list.get_mut("items") {
                    *items = items
                        .iter()
                        .map(|i| crate::events::as_version(i, api_version))
                        .filter(|i| fs.matches(i))
                        .collect();
                }
                ok(list)
            }
            Method::POST => {
                let v = parse_body(body)?;
                created(store.create(kind, ns.unwrap_or(""), v, api_version)?)
            }
            _ => Err(method_not_allowed(method)),
        },
        (Some(name), None) => {
            let ns = ns.unwrap_or("");
            match *method {
                Method::GET if kind == Kind::Event => ok(crate::events::as_version(
                    &store.get_or_404(kind, ns, name)?,
                    api_version,
                )),
                Method::GET => ok(store.get_or_404(kind, ns, name)?),
                Method::DELETE => ok(store.delete(kind, ns, name)?),
                Method::PATCH => {
                    let pk = patch_kind(ctype)?;
                    let p = parse_body(body)?;
                    ok(store.patch_object(kind, ns, name, pk, &p)?)
                }
                _ => Err(method_not_allowed(method)),
            }
        }
        (Some(name), Some(sub)) => {
            let ns = ns.unwrap_or("");
            match (sub, kind) {
                ("status", Kind::Pod | Kind::Node) => match *method {
                    Method::GET => ok(store.get_or_404(kind, ns, name)?),
                    Method::PATCH => {
                        let pk = patch_kind(ctype)?;
                        let p = parse_body(body)?;
                        ok(store.patch_status(kind, ns, name, pk, &p)?)
                    }
                    Method::PUT => {
                        let v = parse_body(body)?;
                        ok(store.replace_status(kind, ns, name, &v)?)
                    }
                    _ => Err(method_not_allowed(method)),
                },
                ("resize", Kind::Pod) => match *method {
                    Method::GET => ok(store.get_or_404(kind, ns, name)?),
                    Method::PATCH => {
                        let pk = patch_kind(ctype)?;
                        let p = parse_body(body)?;
                        ok(store.resize(ns, name, pk, &p)?)
                    }
                    _ => Err(method_not_allowed(method)),
                },
                _ => Err(not_found_path(segs)),
            }
        }
    }
}

fn not_found_path(segs: &[&str]) -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        format!(
            "the server could not find the requested resource (/{})",
            segs.join("/")
        ),
    )
}

/// A watch request.
pub struct WatchReq {
    kind: Kind,
    ns: Option<String>,
    fs: FieldSelector,
    ls: LabelSelector,
    from: Option<u64>,
    bookmarks: bool,
    timeout: Option<Duration>,
    api_version: String,
}

impl WatchReq {
    fn matches(&self, o: &Value) -> bool {
        let ns_ok = self.ns.as_deref().is_none_or(|ns| {
            o.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                == ns
        });
        ns_ok && self.fs.matches(o) && self.ls.matches(o)
    }

    /// The line this watcher sees for a store event, if any: objects that
    /// start or stop matching the selector appear as ADDED or DELETED.
    fn render(&self, e: &WatchEvent) -> Option<Bytes> {
        if e.kind != self.kind.name() {
            return None;
        }
        if self.kind == Kind::Event {
            let served = WatchEvent {
                object: crate::events::as_version(&e.object, &self.api_version),
                old_object: e
                    .old_object
                    .as_ref()
                    .map(|o| crate::events::as_version(o, &self.api_version)),
                ..e.clone()
            };
            return self.render_served(&served);
        }
        self.render_served(e)
    }

    fn render_served(&self, e: &WatchEvent) -> Option<Bytes> {
        let new_m = e.event_type != EventType::Deleted && self.matches(&e.object);
        let old_m = e.old_object.as_ref().is_some_and(|o| self.matches(o));
        let (t, obj) = match e.event_type {
            EventType::Added if new_m => ("ADDED", e.object.clone()),
            EventType::Modified => match (old_m, new_m) {
                (true, true) => ("MODIFIED", e.object.clone()),
                (false, true) => ("ADDED", e.object.clone()),
                (true, false) => {
                    let mut old = e.old_object.clone().unwrap_or(Value::Null);
                    old["metadata"]["resourceVersion"] = e.resource_version.to_string().into();
                    ("DELETED", old)
                }
                (false, false) => return None,
            },
            EventType::Deleted if self.matches(&e.object) => ("DELETED", e.object.clone()),
            _ => return None,
        };
        Some(line(&json!({"type": t, "object": obj})))
    }

    fn bookmark(&self, rv: u64) -> Bytes {
        let api_version = match self.kind {
            Kind::Event => self.api_version.as_str(),
            _ => "v1",
        };
        line(&json!({
            "type": "BOOKMARK",
            "object": {"kind": self.kind.name(), "apiVersion": api_version, "metadata": {"resourceVersion": rv.to_string()}}
        }))
    }
}

fn line(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

fn start_watch(inner: Arc<Inner>, w: WatchReq) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Bytes>(1024);
    tokio::spawn(run_watch(inner, w, tx));
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Either::Right(ChanBody(rx)))
        .expect("response")
}

async fn run_watch(inner: Arc<Inner>, w: WatchReq, tx: mpsc::Sender<Bytes>) {
    let store = &inner.store;
    let mut epoch_rx = store.epoch_tx.subscribe();
    let opened = {
        let mut st = store.lock();
        st.stats.watch_streams_opened += 1;
        match w.from {
            Some(r) if r < st.floor => Err(ApiError::new(
                410,
                "Expired",
                format!("too old resource version: {r} ({})", st.floor),
            )),
            _ => {
                let from = w.from.unwrap_or(st.rv);
                let replay: Vec<Bytes> = st
                    .history
                    .iter()
                    .filter(|e| e.resource_version > from)
                    .filter_map(|e| w.render(e))
                    .collect();
                Ok((replay, store.tx.subscribe(), st.epoch, st.bookmark_interval))
            }
        }
    };
    let (replay, mut rx, my_epoch, interval) = match opened {
        Ok(o) => o,
        Err(e) => {
            let _ = tx
                .send(line(&json!({"type": "ERROR", "object": e.to_status()})))
                .await;
            return;
        }
    };
    for l in replay {
        if tx.send(l).await.is_err() {
            return;
        }
    }
    let timeout = tokio::time::sleep(w.timeout.unwrap_or(Duration::from_secs(365 * 86_400)));
    tokio::pin!(timeout);
    let interval = interval.max(Duration::from_millis(1));
    let mut bookmarks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    bookmarks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            r = epoch_rx.changed() => {
                if r.is_err() || *epoch_rx.borrow_and_update() != my_epoch {
                    return;
                }
            }
            _ = tx.closed() => return,
            _ = &mut timeout => return,
            ev = rx.recv() => match ev {
                Ok(e) => {
                    if let Some(l) = w.render(&e) {
                        if tx.send(l).await.is_err() {
                            return;
                        }
                    }
                }
                // lagged or closed: end the stream, the client resumes
                Err(_) => return,
            },
            _ = bookmarks.tick(), if w.bookmarks => {
                let (pending, rv) = {
                    let st = store.lock();
                    if st.epoch != my_epoch {
                        return;
                    }
                    let mut pending = Vec::new();
                    loop {
                        match rx.try_recv() {
                            Ok(e) => pending.push(e),
                            Err(broadcast::error::TryRecvError::Empty) => break,
                            Err(_) => return,
                        }
                    }
                    (pending, st.rv)
                };
                for e in &pending {
                    if let Some(l) = w.render(e) {
                        if tx.send(l).await.is_err() {
                            return;
                        }
                    }
                }
                if tx.send(w.bookmark(rv)).await.is_err() {
                    return;
                }
            }
        }
    }
}
