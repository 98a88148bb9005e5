//! Integer conversions between Kubernetes quantities and cgroup values (spec §9). Integer
//! arithmetic, `/` truncates, exactly as `pkg/kubelet/cm/helpers_linux.go`.

/// `MinShares`: the kernel's minimum `cpu.shares`.
pub const MIN_SHARES: u64 = 2;
/// `MaxShares`.
pub const MAX_SHARES: u64 = 262_144;
/// `SharesPerCPU`.
pub const SHARES_PER_CPU: i64 = 1024;
/// `MilliCPUToCPU`.
pub const MILLI_CPU_TO_CPU: i64 = 1000;
/// `MinQuotaPeriod`: 1 ms, the smallest quota the kubelet writes.
pub const MIN_QUOTA: i64 = 1000;
/// The default CFS period in µs.
pub const DEFAULT_CFS_PERIOD_US: u64 = 100_000;
/// The largest cgroup v2 `cpu.weight`.
pub const MAX_WEIGHT: u64 = 10_000;

/// cpu request (millicores) → `cpu.shares`: `0 → 2`, else `m·1024/1000` clamped to [2, 262144].
pub fn milli_cpu_to_shares(milli: i64) -> u64 {
    if milli == 0 {
        return MIN_SHARES;
    }
    let shares = milli.saturating_mul(SHARES_PER_CPU) / MILLI_CPU_TO_CPU;
    if shares < MIN_SHARES as i64 {
        MIN_SHARES
    } else if shares > MAX_SHARES as i64 {
        MAX_SHARES
    } else {
        shares as u64
    }
}

/// cpu limit (millicores) → CFS quota in µs: `0 → 0` (no limit), else `m·P/1000`, at least 1000.
pub fn milli_cpu_to_quota(milli: i64, period_us: u64) -> i64 {
    if milli == 0 {
        return 0;
    }
    let quota = milli.saturating_mul(period_us as i64) / MILLI_CPU_TO_CPU;
    quota.max(MIN_QUOTA)
}

/// shares → v2 `cpu.weight` as the kubelet writes pod and QoS cgroups (linear):
/// `s ≥ 262144 → 10000`, else `1 + (s−2)·9999/262142`.
pub fn shares_to_weight_linear(shares: u64) -> u64 {
    if shares >= MAX_SHARES {
        return MAX_WEIGHT;
    }
    1 + shares.saturating_sub(2) * 9999 / 262_142
}

/// v2 `cpu.weight` → shares, as the kubelet reads pod cgroups back (lossy):
/// `(w−1)·262142/9999 + 2`.
pub fn weight_to_shares(weight: u64) -> u64 {
    weight.saturating_sub(1) * 262_142 / 9999 + 2
}

/// The shares a pod cgroup reads back after `shares` were written: the same on v1, through the
/// lossy linear weight on v2 (pitfall 2).
pub fn pod_shares_read_back(version: super::node::CgroupVersion, shares: u64) -> u64 {
    match version {
        super::node::CgroupVersion::V1 => shares,
        super::node::CgroupVersion::V2 => weight_to_shares(shares_to_weight_linear(shares)),
    }
}

/// shares → v2 `cpu.weight` as newer OCI runtimes convert container shares (quadratic,
/// opencontainers/runc#4785): `0 → 0`, `s ≤ 2 → 1`, `s ≥ 262144 → 10000`, else
/// `ceil(10^((l² + 125·l)/612 − 7/34))` with `l = log2(s)`.
pub fn shares_to_weight_quadratic(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    if shares <= 2 {
        return 1;
    }
    if shares >= MAX_SHARES {
        return MAX_WEIGHT;
    }
    let l = (shares as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    10f64.powf(exponent).ceil() as u64
}

/// shares → millicores for status (`sharesToMilliCPU`): `s ≥ 2 → ceil(s·1000/1024)`, else 0.
pub fn shares_to_milli_cpu(shares: i64) -> i64 {
    if shares < MIN_SHARES as i64 {
        return 0;
    }
    (shares * MILLI_CPU_TO_CPU + SHARES_PER_CPU - 1) / SHARES_PER_CPU
}

/// quota → millicores for status (`quotaToMilliCPU`): `−1 → 0`, else `q·1000/P` (0 when P is 0).
pub fn quota_to_milli_cpu(quota: i64, period: i64) -> i64 {
    if quota == -1 || period <= 0 {
        return 0;
    }
    quota.saturating_mul(MILLI_CPU_TO_CPU) / period
}

/// The systemd driver's 10 ms rounding of a positive quota (pitfall 4): `u = q·1000000/P`; if
/// `u mod 10000 ≠ 0` round `u` up to the next 10000; `q = u·P/1000000`. Non-positive quotas
/// are returned unchanged.
pub fn systemd_round_quota(quota: i64, period_us: u64) -> i64 {
    if quota <= 0 || period_us == 0 {
        return quota;
    }
    let period = period_us as i64;
    let mut per_sec = quota.saturating_mul(1_000_000) / period;
    if per_sec % 10_000 != 0 {
        per_sec = (per_sec / 10_000 + 1) * 10_000;
    }
    per_sec.saturating_mul(period) / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_shares_read_back_is_lossy_on_v2_only() {
        use crate::core::node::CgroupVersion::{V1, V2};
        // pitfall 2: 62 → weight 3 → 54; 512 → weight 20 → 500
        assert_eq!(pod_shares_read_back(V2, 62), 54);
        assert_eq!(pod_shares_read_back(V2, 512), 500);
        assert_eq!(pod_shares_read_back(V1, 62), 62);
    }

    #[test]
    fn milli_cpu_to_shares_to_weights() {
        // spec §9's chains: 20m → 20 shares → weight 1 / 6; 100m → 102 → 4 / 17; 1000m → 1024 →
        // 39 / 100 (linear / quadratic); and the ends of the range: 0m (and below 3m, and
        // negative) → 2 shares → weight 1, 256 cpus and more → 262144 → 10000 (both formulas)
        for (milli, shares, linear, quadratic) in [
            (0, 2, 1, 1),
            (1, 2, 1, 1),
            (2, 2, 1, 1),
            (3, 3, 1, 2),
            (20, 20, 1, 6),
            (100, 102, 4, 17),
            (1000, 1024, 39, 100),
            (-5, 2, 1, 1),
            (256_000, 262_144, 10_000, 10_000),
            (300_000, 262_144, 10_000, 10_000),
        ] {
            assert_eq!(milli_cpu_to_shares(milli), shares, "milli {milli}");
            assert_eq!(shares_to_weight_linear(shares), linear, "linear {shares}");
            assert_eq!(
                shares_to_weight_quadratic(shares),
                quadratic,
                "quadratic {shares}"
            );
        }
        assert_eq!(shares_to_weight_quadratic(0), 0);
    }

    #[test]
    fn quota_from_milli_cpu() {
        for (milli, period, quota) in [
            (0, 100_000, 0),
            (5, 100_000, 1000),
            (9, 100_000, 1000),
            (10, 100_000, 1000),
            (15, 100_000, 1500),
            (25, 100_000, 2500),
            (1000, 100_000, 100_000),
            (1500, 50_000, 75_000),
        ] {
            assert_eq!(milli_cpu_to_quota(milli, period), quota, "milli {milli}");
        }
    }

    #[test]
    fn weight_readback_is_lossy() {
        // pitfall 2: shares 62 → weight 3 → reads back 54.
        assert_eq!(shares_to_weight_linear(62), 3);
        assert_eq!(weight_to_shares(3), 54);
        assert_eq!(weight_to_shares(1), 2);
        assert_eq!(weight_to_shares(10_000), 262_144);
    }

    #[test]
    fn status_conversions() {
        assert_eq!(shares_to_milli_cpu(2), 2); // 1m request reads back as 2m
        assert_eq!(shares_to_milli_cpu(1), 0);
        assert_eq!(shares_to_milli_cpu(102), 100);
        assert_eq!(shares_to_milli_cpu(1024), 1000);
        assert_eq!(quota_to_milli_cpu(-1, 100_000), 0);
        assert_eq!(quota_to_milli_cpu(1000, 100_000), 10);
        assert_eq!(quota_to_milli_cpu(2500, 100_000), 25);
        assert_eq!(quota_to_milli_cpu(2500, 0), 0);
    }

    #[test]
    fn systemd_rounding() {
        // spec §9: limit 25m → quota 2500 (systemd 3000); 15m → 1500 (2000); 5m → 1000.
        assert_eq!(systemd_round_quota(2500, 100_000), 3000);
        assert_eq!(systemd_round_quota(1500, 100_000), 2000);
        assert_eq!(systemd_round_quota(1000, 100_000), 1000);
        assert_eq!(systemd_round_quota(100_000, 100_000), 100_000);
        assert_eq!(systemd_round_quota(-1, 100_000), -1);
        assert_eq!(systemd_round_quota(0, 100_000), 0);
    }

    proptest::proptest! {
        #[test]
        fn shares_always_in_kernel_range(milli in proptest::num::i64::ANY) {
            let s = milli_cpu_to_shares(milli);
            proptest::prop_assert!((MIN_SHARES..=MAX_SHARES).contains(&s));
        }

        #[test]
        fn linear_weight_in_range_and_monotonic(a in 2u64..300_000, b in 2u64..300_000) {
            let (wa, wb) = (shares_to_weight_linear(a), shares_to_weight_linear(b));
            proptest::prop_assert!((1..=MAX_WEIGHT).contains(&wa));
            if a <= b { proptest::prop_assert!(wa <= wb); }
        }

        #[test]
        fn systemd_quota_is_whole_10ms_per_second(q in 1i64..10_000_000) {
            let r = systemd_round_quota(q, 100_000);
            proptest::prop_assert!(r >= q);
            proptest::prop_assert_eq!(r * 1_000_000 / 100_000 % 10_000, 0);
        }
    }
}
