//! `tests/kube_e2e.rs` against the API-server double serving as kube-apiserver 1.32: pods have
//! no `metadata.generation`, the server drops `status.observedGeneration`, and `/resize` sets
//! `status.resize: Proposed` (the version is picked by this binary's name, see
//! `support::cluster::api_version`).

include!("kube_e2e.rs");
