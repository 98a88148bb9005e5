//! The functional core: pure functions and data, no tokio, tonic, kube or `std::fs`.

pub mod admission;
pub mod allocation;
pub mod container_resources;
pub mod conversions;
pub mod node;
pub mod plan;
pub mod pod_cgroup;
pub mod pod_status;
pub mod quantity;
pub mod queue;
pub mod resources;
pub mod runtime;
pub mod seed;
pub mod selector;
pub mod state;
pub mod status;
pub mod validate;
