//! resizelet: a node agent that enacts Kubernetes in-place pod resizes (KEP-1287).
//!
//! `core` is the functional core (pure, no IO); `cri`, `cgroup` and `checkpoint` are the IO shells,
//! each behind a small trait with a real and an in-memory implementation; `executor` applies a
//! [`core::plan::Plan`] through those traits. See `docs/ARCHITECTURE.md`.

pub mod admin;
pub mod cgroup;
pub mod check;
pub mod checkpoint;
pub mod config;
pub mod controller;
pub mod core;
pub mod cri;
pub mod engine;
pub mod executor;
#[cfg(test)]
mod graph;
pub mod host;
pub mod k8s;
pub mod kubelet_config;
pub mod metrics;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod webhook;
