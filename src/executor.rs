//! Applies a [`crate::core::plan::Plan`] through the runtime, cgroup and checkpoint traits.
