//! Upstream's own unit-test tables, transcribed as data and run against resizelet's pure core.
//! Each table names the upstream repository, file, version and test function it was read from
//! (with the search tool's `read_file`); a case resizelet deviates from on purpose is marked
//! with the spec decision or deviation that explains it, and counted, never silently skipped.
//!
//! The tables are data files in `tests/fixtures/upstream/` (JSON, each table with that
//! provenance), run by one runner per table kind. Where upstream computes an expectation from
//! its helpers or constants, the file names it as upstream does and gives its value (checked
//! against resizelet's conversion where one computes it).
//!
//! Counts (passing / deviations) are printed by each test and listed in docs/ARCHITECTURE.md.

use resizelet::core::container_resources::oom_score_adj;
use resizelet::core::conversions::{
    milli_cpu_to_quota, milli_cpu_to_shares, quota_to_milli_cpu, shares_to_milli_cpu,
    shares_to_weight_linear, shares_to_weight_quadratic,
};
use resizelet::core::node::{CgroupDriver, NodeConfig};
use resizelet::core::plan::{Limit, PodCgroupValues};
use resizelet::core::pod_cgroup::pod_cgroup_values;
use resizelet::core::quantity::Quantity;
use resizelet::core::resources::{Container, PodSpec};
use resizelet::testing::{self, container, list, reqs, sidecar};

/// The kit's pod (uid `u`, `default/p`) with these containers and init containers.
fn pod(containers: Vec<Container>, init: Vec<Container>) -> PodSpec {
    let mut p = testing::pod("u", containers);
    p.name = "p".into();
    p.init_containers = init;
    p
}

fn with_pod_level(mut p: PodSpec, requests: &str, limits: &str) -> PodSpec {
    p.pod_resources = Some(reqs(requests, limits));
    p
}

/// `tests/fixtures/upstream/<name>` (embedded at build time), parsed.
macro_rules! fixture {
    ($name:literal) => {
        serde_json::from_str::<serde_json::Value>(include_str!(concat!(
            "fixtures/upstream/",
            $name
        )))
        .expect($name)
    };
}

/// The table of `file.tables` whose `key` is `value`, as `T`.
fn table<T: serde::de::DeserializeOwned>(file: &serde_json::Value, key: &str, value: &str) -> T {
    let t = file["tables"]
        .as_array()
        .and_then(|tables| tables.iter().find(|t| t[key] == value))
        .unwrap_or_else(|| panic!("no table with {key} {value:?}"));
    serde_json::from_value(t.clone()).unwrap_or_else(|e| panic!("table {value}: {e}"))
}

/// Prints a table's counts of passing cases and named deviations.
fn report(table: &str, passed: usize, deviations: usize) {
    eprintln!("{table}: {passed} cases pass, {deviations} named deviations");
}

// ---------------------------------------------------------------------------------------------
// CPU unit conversions, as data: tests/fixtures/upstream/cpu_conversions.json (each table with
// its repository, file, version and function): kubernetes/kubernetes pkg/kubelet/cm
// helpers_linux_test.go TestMilliCPUToShares, TestSharesToMilliCPU, TestQuotaToMilliCPU,
// TestMilliCPUToQuota; opencontainers/cgroups v0.0.5 and runc's fs2
// TestConvertCPUSharesToCgroupV2Value (quadratic for containers, linear for pod cgroups, §9).

/// A table of one conversion: rows of (inputs..., expected).
#[derive(serde::Deserialize)]
struct ConversionTable {
    repo: String,
    function: String,
    cases: Vec<Vec<i64>>,
    #[serde(default)]
    deviations: Vec<ConversionDeviation>,
}

/// An upstream row resizelet answers differently on purpose: what it answers and why.
#[derive(serde::Deserialize)]
struct ConversionDeviation {
    case: Vec<i64>,
    resizelet: i64,
    why: String,
}

fn conversion(kind: &str, args: &[i64]) -> i64 {
    match kind {
        "milli_cpu_to_shares" => milli_cpu_to_shares(args[0]) as i64,
        "shares_to_milli_cpu" => shares_to_milli_cpu(args[0]),
        "quota_to_milli_cpu" => quota_to_milli_cpu(args[0], args[1]),
        "milli_cpu_to_quota" => milli_cpu_to_quota(args[0], args[1] as u64),
        "shares_to_weight_quadratic" => shares_to_weight_quadratic(args[0] as u64) as i64,
        "shares_to_weight_linear" => shares_to_weight_linear(args[0] as u64) as i64,
        other => panic!("cpu_conversions.json: unknown kind {other:?}"),
    }
}

/// Runs the table of `kind`, asserting every row and that every deviation still deviates.
fn run_conversions(kind: &str) {
    let t: ConversionTable = table(&fixture!("cpu_conversions.json"), "kind", kind);
    for row in &t.cases {
        let (args, want) = row.split_at(row.len() - 1);
        assert_eq!(
            conversion(kind, args),
            want[0],
            "{} {kind}{args:?}",
            t.function
        );
    }
    for d in &t.deviations {
        let args = &d.case[..d.case.len() - 1];
        assert_eq!(conversion(kind, args), d.resizelet, "deviation: {}", d.why);
    }
    report(
        &format!("{} {}", t.repo, t.function),
        t.cases.len(),
        t.deviations.len(),
    );
}

#[test]
fn upstream_milli_cpu_to_shares() {
    run_conversions("milli_cpu_to_shares");
}

#[test]
fn upstream_shares_to_milli_cpu() {
    run_conversions("shares_to_milli_cpu");
}

#[test]
fn upstream_quota_to_milli_cpu() {
    run_conversions("quota_to_milli_cpu");
}

#[test]
fn upstream_milli_cpu_to_quota() {
    run_conversions("milli_cpu_to_quota");
}

#[test]
fn upstream_convert_cpu_shares_to_cgroup_v2_value() {
    run_conversions("shares_to_weight_quadratic");
    run_conversions("shares_to_weight_linear");
}

// ---------------------------------------------------------------------------------------------
// Pod cgroup values, as data: tests/fixtures/upstream/resource_config_for_pod.json
// (kubernetes/kubernetes pkg/kubelet/cm/helpers_linux_test.go, v1.34–v1.36 copy):
// TestResourceConfigForPod and TestResourceConfigForPodWithCustomCPUCFSQuotaPeriod.
// `ResourceConfigForPod(pod, enforceCPULimits, quotaPeriod)` ↔ `pod_cgroup_values(pod, node)`
// with `cpu_cfs_quota = enforceCPULimits`, `cpu_cfs_period_us = quotaPeriod`. −1 quota = max.

/// [name, requests, limits]
type Ctr = (String, String, String);

/// Containers of the kit from `[name, requests, limits]` rows.
fn containers(rows: &[Ctr]) -> Vec<Container> {
    rows.iter().map(|(n, r, l)| container(n, r, l)).collect()
}

/// The pod of a table row: containers, init containers, and `[requests, limits]` of
/// spec.resources when set.
fn table_pod(
    cs: Vec<Container>,
    init: Vec<Container>,
    pod_level: &Option<(String, String)>,
) -> PodSpec {
    let p = pod(cs, init);
    match pod_level {
        Some((r, l)) => with_pod_level(p, r, l),
        None => p,
    }
}

/// One of upstream's named expectations (`burstableShares := MilliCPUToShares(100)`).
#[derive(serde::Deserialize)]
struct NamedValue {
    upstream: String,
    /// The conversion upstream computes it with, checked against resizelet's.
    kind: Option<String>,
    #[serde(default)]
    args: Vec<i64>,
    value: i64,
}

/// Upstream's `ResourceConfig` literal: each field names a value (absent = nil).
#[derive(serde::Deserialize)]
struct RcExpected {
    cpu_shares: Option<String>,
    cpu_quota: Option<String>,
    cpu_period: Option<String>,
    memory: Option<String>,
}

#[derive(serde::Deserialize)]
struct RcCase {
    name: String,
    containers: Vec<Ctr>,
    init_containers: Vec<Ctr>,
    pod_level: Option<(String, String)>,
    enforce_cpu_limits: bool,
    quota_period: String,
    expected: RcExpected,
    /// Why resizelet deliberately differs.
    deviation: Option<String>,
}

#[derive(serde::Deserialize)]
struct RcTable {
    values: std::collections::BTreeMap<String, NamedValue>,
    cases: Vec<RcCase>,
}

/// Runs the table of `function`, asserting every case and that every deviation still deviates.
fn run_resource_config(function: &str) {
    let t: RcTable = table(
        &fixture!("resource_config_for_pod.json"),
        "function",
        function,
    );
    for (name, v) in &t.values {
        if let Some(kind) = &v.kind {
            assert_eq!(
                conversion(kind, &v.args),
                v.value,
                "{function} {name} = {}",
                v.upstream
            );
        }
    }
    let value = |name: &String| {
        t.values
            .get(name)
            .unwrap_or_else(|| panic!("{function}: no value {name}"))
            .value
    };
    let (mut passed, mut deviations) = (0, 0);
    for c in &t.cases {
        let node = NodeConfig {
            cpu_cfs_quota: c.enforce_cpu_limits,
            cpu_cfs_period_us: value(&c.quota_period) as u64,
            cgroup_driver: CgroupDriver::Cgroupfs,
            ..NodeConfig::default()
        };
        let p = table_pod(
            containers(&c.containers),
            containers(&c.init_containers),
            &c.pod_level,
        );
        let e = &c.expected;
        let want = PodCgroupValues {
            cpu_shares: e.cpu_shares.as_ref().map(|n| value(n) as u64),
            cpu_quota: e.cpu_quota.as_ref().map(|n| Limit::from_quota(value(n))),
            cpu_period: e.cpu_period.as_ref().map(|n| value(n) as u64),
            memory_limit: e.memory.as_ref().map(|n| Limit::Value(value(n))),
        };
        let got = pod_cgroup_values(&p, &node);
        if let Some(why) = &c.deviation {
            assert_ne!(
                got, want,
                "{}: marked as a deviation but agrees ({why})",
                c.name
            );
            deviations += 1;
        } else {
            assert_eq!(got, want, "{function} {}", c.name);
            passed += 1;
        }
    }
    report(function, passed, deviations);
}

#[test]
fn upstream_resource_config_for_pod() {
    run_resource_config("TestResourceConfigForPod");
}

#[test]
fn upstream_resource_config_for_pod_with_custom_cpu_cfs_quota_period() {
    run_resource_config("TestResourceConfigForPodWithCustomCPUCFSQuotaPeriod");
}

// ---------------------------------------------------------------------------------------------
// OOM scores, as data: tests/fixtures/upstream/oom_score_adjust.json (kubernetes/kubernetes
// pkg/kubelet/qos/policy_test.go, v1.34–v1.36 copy with podLevelResourcesFeatureEnabled)
// TestGetContainerOOMScoreAdjust. Every container (init ones too) must score within [low, high].

#[test]
fn upstream_get_container_oom_score_adjust() {
    /// [name, requests, limits, restartPolicy]
    type InitCtr = (String, String, String, String);
    #[derive(serde::Deserialize)]
    struct Case {
        name: String,
        containers: Vec<Ctr>,
        init_containers: Vec<InitCtr>,
        pod_level: Option<(String, String)>,
        priority_class_name: Option<String>,
        priority: Option<i32>,
        memory_capacity: i64,
        /// container name → [lowOOMScoreAdj, highOOMScoreAdj]
        low_high: std::collections::BTreeMap<String, (i64, i64)>,
    }
    let cases: Vec<Case> = rows(&fixture!("oom_score_adjust.json"));
    let n = cases.len();
    for c in cases {
        let init = c
            .init_containers
            .iter()
            .map(|(n, r, l, restart)| match restart.as_str() {
                "Always" => sidecar(n, r, l),
                "" => container(n, r, l),
                other => panic!("{}: {n}: restartPolicy {other:?}", c.name),
            })
            .collect();
        let mut p = table_pod(containers(&c.containers), init, &c.pod_level);
        // what k8s::convert derives from spec.priority and spec.priorityClassName
        p.priority = c.priority.unwrap_or(0);
        p.critical = p.priority >= 2_000_000_000;
        p.node_critical =
            p.critical && c.priority_class_name.as_deref() == Some("system-node-critical");
        assert_eq!(
            c.low_high.len(),
            p.init_containers.len() + p.containers.len(),
            "{}: one expectation a container",
            c.name
        );
        for ctr in p.init_containers.iter().chain(&p.containers) {
            let (low, high) = c.low_high[&ctr.name];
            let got = oom_score_adj(&p, ctr, c.memory_capacity);
            assert!(
                (low..=high).contains(&got),
                "{}: {} scored {got}, upstream [{low}, {high}]",
                c.name,
                ctr.name
            );
        }
    }
    report("TestGetContainerOOMScoreAdjust", n, 0);
}

// ---------------------------------------------------------------------------------------------
// kubernetes/kubernetes pkg/apis/core/v1/helper/qos/qos_test.go (v1.34–v1.36 copy with named
// cases; it checks pkg/apis/core/helper/qos ComputePodQOS on the same pods) TestComputePodQOS, as
// data: tests/fixtures/upstream/compute_pod_qos.json.

#[test]
fn upstream_compute_pod_qos() {
    use resizelet::core::resources::{qos_class, QosClass};
    #[derive(serde::Deserialize)]
    struct Case {
        name: String,
        containers: Vec<Ctr>,
        init_containers: Vec<Ctr>,
        /// [requests, limits] of spec.resources
        pod_level: Option<(String, String)>,
        qos: QosClass,
    }
    let cases: Vec<Case> = rows(&fixture!("compute_pod_qos.json"));
    let n = cases.len();
    for c in cases {
        let p = table_pod(
            containers(&c.containers),
            containers(&c.init_containers),
            &c.pod_level,
        );
        assert_eq!(qos_class(&p), c.qos, "{}", c.name);
    }
    report("TestComputePodQOS", n, 0);
}

// ---------------------------------------------------------------------------------------------
// kubernetes/kubernetes pkg/kubelet/kuberuntime/kuberuntime_container_linux_test.go (v1.34–v1.36
// copy with singleProcessOOMKill): TestCalculateLinuxResources, TestGenerateLinuxContainerResources,
// TestGenerateLinuxContainerResourcesWithSwap. `container_linux_resources` builds what
// `generateLinuxContainerResources` (and `calculateLinuxResources` inside it) sends.

use resizelet::core::container_resources::{container_linux_resources, Reduced};
use resizelet::core::node::{CgroupVersion, NodeSwapBehavior};
use resizelet::core::runtime::LinuxResources;

fn linux_tables() -> serde_json::Value {
    fixture!("linux_container_resources.json")
}

fn helpers_tables() -> serde_json::Value {
    fixture!("component_helpers_resources.json")
}

/// `table.cases`, each row a tuple in the table's column order.
fn rows<T: serde::de::DeserializeOwned>(table: &serde_json::Value) -> Vec<T> {
    serde_json::from_value(table["cases"].clone())
        .unwrap_or_else(|e| panic!("{}: {e}", table["function"]))
}

fn linux(p: &PodSpec, name: &str, node: &NodeConfig) -> LinuxResources {
    let c = p.container(name).expect("container");
    container_linux_resources(p, c, Reduced::of(&c.resources), node)
}

/// The cgroup version of a table row's `cgroup_v2`.
fn cgroup_version(v2: bool) -> CgroupVersion {
    if v2 {
        CgroupVersion::V2
    } else {
        CgroupVersion::V1
    }
}

/// What TestCalculateLinuxResources compares.
#[derive(serde::Deserialize, Debug, PartialEq)]
struct CalculatedResources {
    cpu_period: i64,
    cpu_quota: i64,
    cpu_shares: i64,
    memory_limit_in_bytes: i64,
}

#[test]
fn upstream_calculate_linux_resources() {
    #[derive(serde::Deserialize)]
    struct Case {
        name: String,
        /// "" = nil
        cpu_request: String,
        cpu_limit: String,
        memory_limit: String,
        cgroup_v2: bool,
        single_process_oom_kill: bool,
        want: CalculatedResources,
        deviation: Option<String>,
    }
    let cases: Vec<Case> = rows(&linux_tables()["TestCalculateLinuxResources"]);
    let (mut passed, mut deviations) = (0, 0);
    for c in cases {
        let (name, v2, single) = (&c.name, c.cgroup_v2, c.single_process_oom_kill);
        let requests = if c.cpu_request.is_empty() {
            String::new()
        } else {
            format!("cpu={}", c.cpu_request)
        };
        let limits = format!("cpu={},memory={}", c.cpu_limit, c.memory_limit);
        let p = pod(vec![container("c", &requests, &limits)], vec![]);
        let node = NodeConfig {
            cgroup_version: cgroup_version(v2),
            single_process_oom_kill: single,
            machine_memory_bytes: 8 << 30,
            ..NodeConfig::default()
        };
        let r = linux(&p, "c", &node);
        let got = CalculatedResources {
            cpu_period: r.cpu_period,
            cpu_quota: r.cpu_quota,
            cpu_shares: r.cpu_shares,
            memory_limit_in_bytes: r.memory_limit_in_bytes,
        };
        let oom_group = r.unified.get("memory.oom.group").map(String::as_str);
        assert_eq!(
            oom_group,
            (v2 && !single).then_some("1"),
            "{name} v2={v2}: unified"
        );
        assert_eq!(
            r.unified.len(),
            usize::from(v2 && !single),
            "{name}: unified {:?}",
            r.unified
        );
        if let Some(why) = &c.deviation {
            assert_ne!(
                got, c.want,
                "{name}: marked as a deviation but agrees ({why})"
            );
            deviations += 1;
        } else {
            assert_eq!(got, c.want, "{name} v2={v2}");
            passed += 1;
        }
    }
    report("TestCalculateLinuxResources", passed, deviations);
}

#[test]
fn upstream_generate_linux_container_resources() {
    // cpuCFSQuota is off in upstream's test runtime manager: no period/quota.
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Want {
        cpu_shares: i64,
        memory_limit_in_bytes: i64,
        oom_score_adj: i64,
    }
    #[derive(serde::Deserialize)]
    struct Case {
        name: String,
        limits: String,
        requests: String,
        single_process_oom_kill: bool,
        cgroup_v2: bool,
        want: Want,
    }
    let cases: Vec<Case> = rows(&linux_tables()["TestGenerateLinuxContainerResources"]);
    for c in &cases {
        let (name, v2, single) = (&c.name, c.cgroup_v2, c.single_process_oom_kill);
        let p = pod(vec![container("c1", &c.requests, &c.limits)], vec![]);
        let node = NodeConfig {
            cgroup_version: cgroup_version(v2),
            single_process_oom_kill: single,
            cpu_cfs_quota: false,
            machine_memory_bytes: 17_179_860_387,
            ..NodeConfig::default()
        };
        let r = linux(&p, "c1", &node);
        assert_eq!((r.cpu_period, r.cpu_quota), (0, 0), "{name}");
        let got = Want {
            cpu_shares: r.cpu_shares,
            memory_limit_in_bytes: r.memory_limit_in_bytes,
            oom_score_adj: r.oom_score_adj,
        };
        assert_eq!(got, c.want, "{name} v2={v2}");
        let want_unified: Vec<(String, String)> = if v2 && !single {
            vec![("memory.oom.group".into(), "1".into())]
        } else {
            vec![]
        };
        assert_eq!(
            r.unified.clone().into_iter().collect::<Vec<_>>(),
            want_unified,
            "{name}"
        );
        assert_eq!(
            r.memory_swap_limit_in_bytes, 0,
            "{name}: no swap controller"
        );
    }
    report("TestGenerateLinuxContainerResources", cases.len(), 0);
}

#[test]
fn upstream_generate_linux_container_resources_with_swap() {
    use resizelet::core::resources::QosClass;
    const GI: i64 = 1 << 30;
    type Case = (
        String,
        bool,
        QosClass,
        bool,
        bool,
        Option<NodeSwapBehavior>,
        bool,
        bool,
        bool,
        Option<String>,
    );
    let cases: Vec<Case> = rows(&linux_tables()["TestGenerateLinuxContainerResourcesWithSwap"]);
    use NodeSwapBehavior::{LimitedSwap, NoSwap};
    use QosClass::{BestEffort, Burstable, Guaranteed};
    let (mut passed, mut deviations) = (0, 0);
    for (
        name,
        v2,
        qos,
        disabled,
        gate,
        behavior,
        no_requests,
        guaranteed_c2,
        critical,
        deviation,
    ) in cases
    {
        let (c1, c2) = match qos {
            Burstable => (
                container("c1", "memory=1Gi", ""),
                if no_requests {
                    container("c2", "", "")
                } else if guaranteed_c2 {
                    container("c2", "memory=2Gi", "memory=2Gi")
                } else {
                    container("c2", "memory=2Gi", "")
                },
            ),
            Guaranteed => (
                container("c1", "memory=1Gi,cpu=1", "memory=1Gi,cpu=1"),
                container("c2", "memory=2Gi,cpu=1", "memory=2Gi,cpu=1"),
            ),
            BestEffort => (container("c1", "", ""), container("c2", "", "")),
        };
        let mut p = pod(vec![c1, c2], vec![]);
        if critical {
            p.priority = 2_000_000_000;
            p.critical = true;
        }
        let node = NodeConfig {
            cgroup_version: cgroup_version(v2),
            machine_memory_bytes: 40 * GI,
            swap_capacity_bytes: 5 * GI,
            swap_available: !disabled,
            swap_behavior: behavior.unwrap_or(NoSwap),
            single_process_oom_kill: true,
            ..NodeConfig::default()
        };
        let share = |req: i64| (req as f64 / (40 * GI) as f64 * (5 * GI) as f64) as i64;
        let (r1, r2) = (linux(&p, "c1", &node), linux(&p, "c2", &node));
        // upstream's expectation, from its test body
        let no_swap = critical
            || !gate
            || !v2
            || (behavior == Some(LimitedSwap) && qos != Burstable)
            || behavior != Some(LimitedSwap);
        let expected_swap = |r: &LinuxResources, want: Option<i64>| -> bool {
            match (disabled, v2, want) {
                (true, false, _) => r.memory_swap_limit_in_bytes == 0,
                (true, true, _) => !r.unified.contains_key("memory.swap.max"),
                (false, false, None) => r.memory_swap_limit_in_bytes == r.memory_limit_in_bytes,
                (false, true, None) => {
                    r.unified.get("memory.swap.max").map(String::as_str) == Some("0")
                }
                (false, false, Some(s)) => {
                    r.memory_swap_limit_in_bytes == r.memory_limit_in_bytes + s
                }
                (false, true, Some(s)) => r.unified.get("memory.swap.max") == Some(&s.to_string()),
            }
        };
        let (w1, w2) = if no_swap {
            (None, None)
        } else {
            let c2 = if no_requests || guaranteed_c2 {
                0
            } else {
                share(2 * GI)
            };
            (Some(share(GI)), Some(c2))
        };
        let ok = expected_swap(&r1, w1) && expected_swap(&r2, w2);
        if let Some(why) = deviation {
            assert!(!ok, "{name}: marked as a deviation but agrees ({why})");
            deviations += 1;
        } else {
            assert!(
                ok,
                "{name}: c1 {:?} / {}, c2 {:?} / {}",
                r1.unified,
                r1.memory_swap_limit_in_bytes,
                r2.unified,
                r2.memory_swap_limit_in_bytes
            );
            passed += 1;
        }
    }
    // calcSwapForBurstablePods' own table (TestCalcSwapForBurstablePods, same package).
    use resizelet::core::container_resources::swap_for_burstable;
    for (req, total, swap, want) in [
        (GI, 80 * GI, 4 * GI, 53_687_091),
        (2 * GI, 40 * GI, 2 * GI, 107_374_182),
        (5 * GI, 150 * GI, 40 * GI, 1_431_655_765),
    ] {
        assert_eq!(swap_for_burstable(req, total, swap), Some(want));
    }
    report(
        "TestGenerateLinuxContainerResourcesWithSwap",
        passed,
        deviations,
    );
    report("TestCalcSwapForBurstablePods", 3, 0);
}

// ---------------------------------------------------------------------------------------------
// kubernetes/kubernetes staging/src/k8s.io/component-helpers/resource/helpers_test.go (v1.33–
// v1.34-era copy, before hugepages became pod-level resources): TestPodLevelResourceRequests and
// TestAggregateContainerRequestsAndLimits. `PodRequests` ↔ `pod_requests`,
// `AggregateContainerRequests/Limits` ↔ `aggregate_container_requests` / `pod_limits` of a pod
// without pod-level resources or overhead.

#[test]
fn upstream_pod_level_resource_requests() {
    use resizelet::core::resources::pod_requests;
    type Case = (
        String,
        Option<String>,
        Vec<(String, bool)>,
        Vec<String>,
        String,
        Option<String>,
    );
    let cases: Vec<Case> = rows(&helpers_tables()["TestPodLevelResourceRequests"]);
    let (mut passed, mut deviations) = (0, 0);
    for (name, pod_level, init, containers, want, deviation) in cases {
        let init = init
            .iter()
            .enumerate()
            .map(|(i, (r, sc))| {
                let n = format!("i{i}");
                if *sc {
                    sidecar(&n, r, "")
                } else {
                    container(&n, r, "")
                }
            })
            .collect();
        let containers = containers
            .iter()
            .enumerate()
            .map(|(i, r)| container(&format!("c{i}"), r, ""))
            .collect();
        let mut p = pod(containers, init);
        if let Some(r) = pod_level {
            p = with_pod_level(p, &r, "");
        }
        let got = pod_requests(&p);
        if let Some(why) = deviation {
            assert_ne!(
                got,
                list(&want),
                "{name}: marked as a deviation but agrees ({why})"
            );
            deviations += 1;
        } else {
            assert_eq!(got, list(&want), "{name}");
            passed += 1;
        }
    }
    report("TestPodLevelResourceRequests", passed, deviations);
}

#[test]
fn upstream_aggregate_container_requests_and_limits() {
    use resizelet::core::resources::{aggregate_container_requests, pod_limits};
    type Case = (
        String,
        Vec<(String, bool)>,
        Vec<String>,
        bool,
        String,
        String,
    );
    let cases: Vec<Case> = rows(&helpers_tables()["TestAggregateContainerRequestsAndLimits"]);
    let n = cases.len();
    for (name, init, containers, limits, want_req, want_lim) in cases {
        let make = |n: String, r: &str, sc: bool| {
            let (req, lim) = if limits { ("", r) } else { (r, "") };
            if sc {
                sidecar(&n, req, lim)
            } else {
                container(&n, req, lim)
            }
        };
        let init = init
            .iter()
            .enumerate()
            .map(|(i, (r, sc))| make(format!("i{i}"), r, *sc))
            .collect();
        let containers = containers
            .iter()
            .enumerate()
            .map(|(i, r)| make(format!("c{i}"), r, false))
            .collect();
        let p = pod(containers, init);
        assert_eq!(
            aggregate_container_requests(&p),
            list(&want_req),
            "{name}: requests"
        );
        assert_eq!(pod_limits(&p), list(&want_lim), "{name}: limits");
    }
    report("TestAggregateContainerRequestsAndLimits", n, 0);
}

// ---------------------------------------------------------------------------------------------
// Quantities, as data: tests/fixtures/upstream/quantity.json (kubernetes/kubernetes
// staging/src/k8s.io/apimachinery/pkg/api/resource/quantity_test.go, v1.3x copy):
// TestQuantityParse, TestQuantityString (string half), TestQuantityParseEmit, TestJSONWhitespace.

fn quantity_tables() -> serde_json::Value {
    fixture!("quantity.json")
}

/// `table.cases` of `quantity.json` as rows of `T`.
fn quantity_cases<T: serde::de::DeserializeOwned>(table: &str) -> Vec<T> {
    serde_json::from_value(quantity_tables()[table]["cases"].clone())
        .unwrap_or_else(|e| panic!("quantity.json {table}: {e}"))
}

#[test]
fn upstream_quantity_parse() {
    use resizelet::core::quantity::Format;
    const MAX: i64 = i64::MAX;
    // (input, mantissa, exponent, format); exponent i32::MAX = apimachinery's maxAllowed
    let table: Vec<(String, i128, i32, String)> = quantity_cases("TestQuantityParse");
    let mut checked = 0;
    for (input, m, e, format) in &table {
        let format = match format.as_str() {
            "DecimalSI" => Format::DecimalSI,
            "BinarySI" => Format::BinarySI,
            "DecimalExponent" => Format::DecimalExponent,
            other => panic!("quantity.json: {input}: unknown format {other}"),
        };
        for (sign, prefix) in [(1, ""), (-1, "-"), (1, "+")] {
            let spelled = format!("{prefix}{input}");
            let got = Quantity::parse(&spelled).unwrap_or_else(|err| panic!("{spelled}: {err}"));
            if *e == i32::MAX {
                assert_eq!(got.value(), sign * MAX, "{spelled}: capped at maxAllowed");
            } else {
                let want = Quantity::parse(&format!("{}e{e}", sign as i128 * m)).unwrap();
                assert_eq!(got, want, "{spelled}: value");
            }
            assert_eq!(got.format(), format, "{spelled}: format");
            checked += 1;
        }
    }
    let invalid: Vec<String> =
        serde_json::from_value(quantity_tables()["TestQuantityParse"]["invalid"].clone())
            .expect("quantity.json invalid");
    for bad in &invalid {
        assert!(Quantity::parse(bad).is_err(), "{bad:?} parsed");
    }
    report("TestQuantityParse", checked + invalid.len(), 0);
}

#[test]
fn upstream_quantity_string_parse_emit_and_json_whitespace() {
    let strings: Vec<(String, String)> = quantity_cases("TestQuantityString");
    for (expect, alternate) in &strings {
        assert_eq!(
            Quantity::parse(expect).unwrap().to_string(),
            *expect,
            "{expect}"
        );
        if !alternate.is_empty() {
            assert_eq!(
                Quantity::parse(alternate).unwrap().to_string(),
                *expect,
                "{alternate}"
            );
        }
        if expect != "0" {
            let neg = format!("-{expect}");
            assert_eq!(Quantity::parse(&neg).unwrap().to_string(), neg);
        }
    }
    report("TestQuantityString (strings)", strings.len(), 0);

    let emit: Vec<(String, String)> = quantity_cases("TestQuantityParseEmit");
    for (input, want) in &emit {
        assert_eq!(
            Quantity::parse(input).unwrap().to_string(),
            *want,
            "{input}"
        );
        let neg = Quantity::parse(&format!("-{input}")).unwrap();
        assert_eq!(neg.to_string(), format!("-{want}"), "-{input}");
    }
    report("TestQuantityParseEmit", emit.len() * 2, 0);

    let json: Vec<(String, String)> = quantity_cases("TestJSONWhitespace");
    for (input, want) in &json {
        let q: Quantity = serde_json::from_str(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(q.to_string(), *want, "{input}");
    }
    report("TestJSONWhitespace", json.len(), 0);
}
