//! First-start seeding (spec §6.1): a pod resizelet has no checkpoint for gets its actuated state
//! from what the runtime reports, and its allocation from that, so resizes requested before
//! resizelet started still go through admission and enactment.

use std::collections::BTreeMap;

use super::allocation::PodResourceState;
use super::conversions::{
    milli_cpu_to_quota, milli_cpu_to_shares, quota_to_milli_cpu, shares_to_milli_cpu,
};
use super::node::NodeConfig;
use super::quantity::Quantity;
use super::resources::{PodSpec, ResourceRequirements, CPU, MEMORY};
use super::runtime::LinuxResources;

/// The resources a running container was started with, as far as the runtime's `LinuxResources`
/// tell, expressed against the desired spec: a desired value that converts to exactly what the
/// runtime reports is kept verbatim (so `100m` stays `100m` although the runtime only knows
/// 102 shares); a value that differs is replaced by the runtime's (converted back, §9). Memory
/// requests are never reported by CRI and stay as desired; so do resources other than cpu and
/// memory.
pub fn seed_container(
    desired: &ResourceRequirements,
    actual: &LinuxResources,
    node: &NodeConfig,
) -> ResourceRequirements {
    let mut seeded = desired.clone();
    let period = if actual.cpu_period > 0 {
        actual.cpu_period as u64
    } else {
        node.cpu_cfs_period_us
    };

    let desired_req = desired.requests.get(CPU).map_or(0, Quantity::milli_value);
    if actual.cpu_shares > 0 && milli_cpu_to_shares(desired_req) as i64 != actual.cpu_shares {
        set(
            &mut seeded.requests,
            CPU,
            Quantity::from_milli(shares_to_milli_cpu(actual.cpu_shares)),
        );
    }

    if node.cpu_cfs_quota {
        let desired_lim = desired.limits.get(CPU).map_or(0, Quantity::milli_value);
        let desired_quota = milli_cpu_to_quota(desired_lim, period);
        let actual_quota = actual.cpu_quota.max(0); // −1 and 0 both mean "no limit"
        if desired_quota != actual_quota {
            if actual_quota == 0 {
                seeded.limits.remove(CPU);
            } else {
                let milli = quota_to_milli_cpu(actual_quota, period as i64);
                set(&mut seeded.limits, CPU, Quantity::from_milli(milli));
            }
        }
    }

    let desired_mem = desired.limits.get(MEMORY).map_or(0, Quantity::value);
    let actual_mem = actual.memory_limit_in_bytes.max(0);
    if desired_mem != actual_mem {
        if actual_mem == 0 {
            seeded.limits.remove(MEMORY);
        } else {
            set(&mut seeded.limits, MEMORY, Quantity::from_bytes(actual_mem));
        }
    }
    seeded
}

fn set(list: &mut BTreeMap<String, Quantity>, name: &str, q: Quantity) {
    list.insert(name.to_string(), q);
}

/// Seeds a pod's state from the runtime: `actual` maps container names to the resources the
/// runtime reports (`None` when it reports none, or the container does not run — then the desired
/// resources are taken as actuated, which costs at most one redundant update).
/// Returns the state used as both allocated and actuated.
pub fn seed_pod(
    desired: &PodSpec,
    actual: &BTreeMap<String, Option<LinuxResources>>,
    node: &NodeConfig,
) -> PodResourceState {
    let container_resources = desired
        .resizable_containers()
        .map(|c| {
            let seeded = match actual.get(&c.name) {
                Some(Some(linux)) => seed_container(&c.resources, linux, node),
                _ => c.resources.clone(),
            };
            (c.name.clone(), seeded)
        })
        .collect();
    PodResourceState {
        container_resources,
        pod_level_resources: desired.pod_resources.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::reqs;

    fn linux(shares: i64, quota: i64, memory: i64) -> LinuxResources {
        LinuxResources {
            cpu_period: 100_000,
            cpu_quota: quota,
            cpu_shares: shares,
            memory_limit_in_bytes: memory,
            ..LinuxResources::default()
        }
    }

    #[test]
    fn matching_runtime_keeps_desired_verbatim() {
        let desired = reqs("cpu=100m,memory=64Mi", "cpu=200m,memory=128Mi");
        let seeded = seed_container(
            &desired,
            &linux(102, 20_000, 128 << 20),
            &NodeConfig::default(),
        );
        assert_eq!(seeded, desired);
        // 1m requests read back as 2 shares, which is what 1m converts to: still a match.
        let tiny = reqs("cpu=1m", "");
        assert_eq!(
            seed_container(&tiny, &linux(2, -1, 0), &NodeConfig::default()),
            tiny
        );
    }

    #[test]
    fn differing_runtime_values_replace_desired() {
        // The user asked for more while resizelet was not running; the runtime still has the old values.
        let desired = reqs("cpu=500m,memory=64Mi", "cpu=1,memory=256Mi");
        let seeded = seed_container(
            &desired,
            &linux(102, 20_000, 128 << 20),
            &NodeConfig::default(),
        );
        assert_eq!(
            seeded,
            reqs("cpu=100m,memory=64Mi", "cpu=200m,memory=128Mi")
        );
    }

    #[test]
    fn runtime_without_limits_drops_them() {
        let desired = reqs("cpu=100m", "cpu=1,memory=1Gi");
        let seeded = seed_container(&desired, &linux(102, -1, 0), &NodeConfig::default());
        assert_eq!(seeded, reqs("cpu=100m", ""));
    }
}
