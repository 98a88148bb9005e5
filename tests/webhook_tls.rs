//! `resizelet webhook` (the binary, over TLS) called by the API-server double the way the API
//! server calls it (AdmissionReview v1, the match conditions shipped in deploy/webhook/), with the
//! gate-off kubelet actor writing: fields kept for unrestarted containers, never for other users,
//! failure policies, malformed requests, the serving certificate reloaded. No containerd needed.

mod support;
mod webhook_support;

use std::time::Duration;

use resizelet_double::{ApiServer, FailurePolicy, PatchKind, UserInfo};
use serde_json::{json, Value};
use support::process::free_port;
use webhook_support::{register, Pki, Webhook};

const PERIOD: Duration = Duration::from_millis(50);

fn pod(name: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "x",
            "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "100m"}}}]},
        "status": {"phase": "Running", "observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "app", "containerID": "containerd://a", "ready": true,
                "restartCount": 0, "state": {"running": {"startedAt": "2026-11-25T00:00:00Z"}},
                "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "100m"}},
                "allocatedResources": {"cpu": "100m"}}]}
    })
}

fn has_fields(api: &ApiServer, name: &str) -> bool {
    let p = api.get_pod("default", name).unwrap();
    let s = &p["status"]["containerStatuses"][0];
    !s["resources"].is_null() && !s["allocatedResources"].is_null()
}

/// A status patch dropping `resources` and `allocatedResources` of the pod's container.
fn dropped() -> Value {
    json!({"status": {"containerStatuses": [{"name": "app", "containerID": "containerd://a", "ready": true}]}})
}

/// [`support::eventually`] of a check that needs no await, with the tests' deadline.
async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    support::eventually(what, Duration::from_secs(20), || std::future::ready(f())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_writes_keep_the_fields_only_for_unrestarted_containers() {
    let (webhook, pki) = Webhook::start_fresh("resizelet-webhook", "10s").await;
    let api = ApiServer::start().await;
    register(&api, &webhook.url(), &pki.ca_pem, FailurePolicy::Fail);
    api.create_pod(pod("web")).unwrap();
    let rv = api.resource_version();
    let kubelet = api.start_gate_off_kubelet("n1", PERIOD);
    // the kubelet reconciles every period (its own status lacks the fields), the webhook turns
    // each patch into a no-op: nothing stored
    eventually("five kubelet patches answered", || {
        (api.admission_stats().patched >= 5).then_some(())
    })
    .await;
    assert!(kubelet.stats().patches_sent >= 5);
    assert!(has_fields(&api, "web"));
    assert_eq!(api.resource_version(), rv, "a kubelet write was stored");
    assert_eq!(api.stats().kubelet_actor_writes, 0);
    let a = api.admission_stats();
    assert!(a.calls >= 5 && a.patched >= 5, "{a:?}");
    assert_eq!(a.failures, 0, "{a:?}");
    let m = webhook.metrics_text().await;
    assert!(
        m.contains("resizelet_webhook_requests_total{outcome=\"patched\"}"),
        "{m}"
    );
    assert!(
        m.contains("resizelet_webhook_request_duration_seconds_count"),
        "{m}"
    );

    // a container restart (new containerID): the kubelet's status wins, the agent re-asserts
    kubelet.set_status(
        "default",
        "web",
        &json!({"containerStatuses": [{"name": "app", "containerID": "containerd://b", "ready": true,
            "restartCount": 1, "state": {"running": {"startedAt": "2026-11-25T00:01:00Z"}}}]}),
    );
    eventually("the restarted container's status stored", || {
        let p = api.get_pod("default", "web").unwrap();
        (p["status"]["containerStatuses"][0]["containerID"] == "containerd://b").then_some(())
    })
    .await;
    assert!(!has_fields(&api, "web"));
    // foreign fields survive the kubelet: resize conditions, observedGeneration
    let p = api.get_pod("default", "web").unwrap();
    assert_eq!(p["status"]["observedGeneration"], 1);
    kubelet.stop();

    // anyone else dropping the fields: the webhook is not even called
    api.create_pod(pod("other")).unwrap();
    let calls = api.admission_stats().calls;
    api.patch_pod_status_as(
        &UserInfo::named("system:serviceaccount:resizelet:resizelet"),
        "default",
        "other",
        PatchKind::Merge,
        &dropped(),
    )
    .await
    .unwrap();
    assert!(!has_fields(&api, "other"));
    assert_eq!(api.admission_stats().calls, calls);
    assert!(api.admission_stats().not_matched >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_is_down_is_ignored_or_refuses_by_failure_policy() {
    let pki = Pki::new("nobody");
    let api = ApiServer::start().await;
    let closed = format!("https://127.0.0.1:{}/mutate", free_port());
    api.create_pod(pod("web")).unwrap();
    let node = UserInfo::named("system:node:n1");
    let dropped = dropped();
    register(&api, &closed, &pki.ca_pem, FailurePolicy::Fail);
    let e = api
        .patch_pod_status_as(&node, "default", "web", PatchKind::Merge, &dropped)
        .await
        .unwrap_err();
    assert_eq!(e.code, 500);
    assert!(
        e.message
            .contains("failed calling webhook \"status-fields.resizelet.dev\""),
        "{e}"
    );
    assert!(has_fields(&api, "web"));
    register(&api, &closed, &pki.ca_pem, FailurePolicy::Ignore);
    api.patch_pod_status_as(&node, "default", "web", PatchKind::Merge, &dropped)
        .await
        .unwrap();
    assert!(!has_fields(&api, "web"), "ignored: the write goes through");
    assert_eq!(api.admission_stats().failures, 2);
}

/// `curl` POSTing `body` to the webhook, trusting `ca`: (HTTP code, body).
fn curl(webhook: &Webhook, ca: &std::path::Path, body: &str) -> (String, String) {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(ca)
        .args([
            "-H",
            "content-type: application/json",
            "--data-binary",
            body,
        ])
        .args(["-w", "\n%{http_code}", &webhook.url()])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    (code.to_string(), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_reviews_get_a_clear_400() {
    let (webhook, pki) = Webhook::start_fresh("resizelet-webhook", "10s").await;
    let ca = webhook.dir.join("ca.crt");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let (code, body) = curl(&webhook, &ca, "{\"kind\": ");
    assert_eq!(code, "400");
    assert!(body.starts_with("invalid AdmissionReview: "), "{body}");
    let (code, body) = curl(
        &webhook,
        &ca,
        r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
    );
    assert_eq!(
        (code.as_str(), body.trim()),
        (
            "400",
            "invalid AdmissionReview: no request in the AdmissionReview"
        )
    );
    // still serving
    let (code, _) = curl(&webhook, &ca, "[]");
    assert_eq!(code, "400");
    let m = webhook.metrics_text().await;
    assert!(
        m.contains("resizelet_webhook_requests_total{outcome=\"invalid\"} 3"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_serving_certificate_is_picked_up_and_a_broken_one_is_not() {
    let (webhook, first) = Webhook::start_fresh("first", "100ms").await;
    let api = ApiServer::start().await;
    api.create_pod(pod("web")).unwrap();
    let node = UserInfo::named("system:node:n1");
    let dropped = dropped();
    let write = || async {
        api.patch_pod_status_as(&node, "default", "web", PatchKind::Merge, &dropped)
            .await
    };
    register(&api, &webhook.url(), &first.ca_pem, FailurePolicy::Fail);
    write().await.expect("served with the first certificate");
    // renewed under a new CA; the API server trusts only the new CA from now on
    let second = Pki::new("second");
    second.install(&webhook.dir);
    register(&api, &webhook.url(), &second.ca_pem, FailurePolicy::Fail);
    let deadline = Duration::from_secs(20);
    support::eventually("the renewed certificate served", deadline, || async {
        write().await.ok()
    })
    .await;
    assert!(has_fields(&api, "web"));
    // a broken renewal: counted, the current certificate stays
    std::fs::write(webhook.dir.join("tls.crt"), "not a certificate").unwrap();
    let m = support::eventually("a failed reload counted", deadline, || async {
        let m = webhook.metrics_text().await;
        m.contains("resizelet_webhook_certificate_reloads_total{result=\"failure\"}")
            .then_some(m)
    })
    .await;
    assert!(
        m.contains("resizelet_webhook_certificate_reloads_total{result=\"success\"} 1"),
        "{m}"
    );
    write()
        .await
        .expect("still served with the second certificate");
}
