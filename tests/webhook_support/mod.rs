//! The `resizelet webhook` binary for tests: a throwaway CA and serving certificate (rcgen), the
//! binary as a child process on loopback ports, and the double configured to call it with the
//! match conditions shipped in `deploy/webhook/`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use resizelet_double::{ApiServer, FailurePolicy, MutatingWebhook};

use crate::support::eventually;
use crate::support::process::{child_stderr, free_port, KillOnDrop};

/// A CA and a serving certificate for 127.0.0.1 signed by it, as PEM.
pub struct Pki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Pki {
    pub fn new(cn: &str) -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{cn} CA"));
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn.to_string());
        let cert = params.signed_by(&key, &issuer).unwrap();
        Pki {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Writes `tls.crt`/`tls.key` into `dir` the way the kubelet updates a mounted Secret: new
    /// files, then one rename.
    pub fn install(&self, dir: &Path) {
        let tmp = dir.join(".tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::write(tmp.join("tls.crt"), &self.cert_pem).unwrap();
        std::fs::write(tmp.join("tls.key"), &self.key_pem).unwrap();
        std::fs::rename(tmp.join("tls.key"), dir.join("tls.key")).unwrap();
        std::fs::rename(tmp.join("tls.crt"), dir.join("tls.crt")).unwrap();
    }
}

/// `resizelet webhook` as a child process; killed on drop.
pub struct Webhook {
    child: KillOnDrop,
    pub address: String,
    pub metrics: String,
    /// Where `tls.crt`/`tls.key` are (a renewal installs there).
    pub dir: PathBuf,
    /// The temp dir of [`Webhook::start_fresh`], removed with the webhook.
    _tmp: Option<tempfile::TempDir>,
}

impl Webhook {
    /// Starts the binary serving the certificate of `pki` (files in `dir`) and waits for
    /// `/healthz`.
    pub async fn start(pki: &Pki, dir: &Path, reload: &str) -> Webhook {
        pki.install(dir);
        let address = format!("127.0.0.1:{}", free_port());
        let metrics = format!("127.0.0.1:{}", free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_resizelet"))
            .arg("webhook")
            .args(["--address", &address, "--metrics-address", &metrics])
            .arg("--tls-cert-file")
            .arg(dir.join("tls.crt"))
            .arg("--tls-private-key-file")
            .arg(dir.join("tls.key"))
            .args(["--cert-reload-interval", reload])
            .env("RESIZELET_LOG", "resizelet=debug,info")
            .stdout(Stdio::null())
            .stderr(child_stderr())
            .spawn()
            .expect("spawn resizelet webhook");
        let w = Webhook {
            child: KillOnDrop::new(child),
            address,
            metrics,
            dir: dir.to_path_buf(),
            _tmp: None,
        };
        eventually(
            "resizelet webhook's /healthz",
            Duration::from_secs(20),
            || async {
                let healthz = resizelet::admin::get(&w.metrics, "/healthz").await;
                matches!(healthz, Ok((200, _))).then_some(())
            },
        )
        .await;
        w
    }

    /// [`Webhook::start`] with a fresh certificate for `cn` in a temp dir of its own: the
    /// webhook and its PKI.
    pub async fn start_fresh(cn: &str, reload: &str) -> (Webhook, Pki) {
        let tmp = tempfile::tempdir().expect("a temp dir");
        let pki = Pki::new(cn);
        let mut w = Webhook::start(&pki, tmp.path(), reload).await;
        w._tmp = Some(tmp);
        (w, pki)
    }

    pub fn url(&self) -> String {
        format!("https://{}/mutate", self.address)
    }

    /// `/metrics` of the binary.
    pub async fn metrics_text(&self) -> String {
        resizelet::admin::get(&self.metrics, "/metrics")
            .await
            .expect("webhook metrics")
            .1
    }

    pub fn kill(&mut self) {
        self.child.kill();
    }
}

/// The match conditions of `deploy/webhook/mutatingwebhookconfiguration.yaml`.
pub fn shipped_match_conditions() -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/webhook/mutatingwebhookconfiguration.yaml");
    let v: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["webhooks"][0]["matchConditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["expression"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Registers the webhook with the double as `deploy/webhook/` registers it with a cluster.
pub fn register(api: &ApiServer, url: &str, ca_pem: &str, policy: FailurePolicy) {
    api.set_mutating_webhook(Some(MutatingWebhook {
        name: "status-fields.resizelet.dev".into(),
        url: url.into(),
        ca_bundle: ca_pem.as_bytes().to_vec(),
        match_conditions: shipped_match_conditions(),
        failure_policy: policy,
        timeout: Duration::from_secs(2),
    }))
    .expect("webhook configuration accepted");
}

/// p-quantile (0..=1) of `d` (sorted in place).
pub fn quantile(d: &mut [Duration], q: f64) -> Duration {
    if d.is_empty() {
        return Duration::ZERO;
    }
    d.sort();
    let i = ((d.len() - 1) as f64 * q).round() as usize;
    d[i]
}
