//! resizelet-bench rows for issue 12: coexisting with a gate-off kubelet, with and without the
//! `pods/status` webhook. The scenario is `tests/webhook_support/coexist.rs` (the one
//! `tests/webhook_e2e.rs` asserts on): the API-server double calling the real `resizelet
//! webhook` binary over TLS, the gate-off kubelet actor, real containerd and `resizelet run`.
//!
//! Full mode: 50 pods, the kubelet's real 10 s reconcile period, 3 rounds of 50 simultaneous
//! `/resize`s, 60 s at rest. Short mode: 20 pods, a 500 ms period and 6 s at rest (per-minute
//! rates are then ~20× a real node's; the row says which period was used).

#[path = "../../tests/webhook_support/coexist.rs"]
mod coexist;
#[path = "../../tests/webhook_support/mod.rs"]
mod webhook_support;

use std::time::Duration;

use coexist::{scenario, Scale, Summary};

use crate::{ms, row, Row};

fn secs(s: Option<f64>) -> String {
    match s {
        Some(v) if v.is_finite() => format!("≤ {:.2} ms", v * 1e3),
        Some(_) => "> 102 ms (last bucket)".into(),
        None => "-".into(),
    }
}

pub async fn coexistence(short: bool, rows: &mut Vec<Row>) {
    let s = if short {
        Scale {
            pods: 20,
            rounds: 3,
            period: Duration::from_millis(500),
            rest: Duration::from_secs(6),
        }
    } else {
        Scale {
            pods: 50,
            rounds: 3,
            period: Duration::from_secs(10),
            rest: Duration::from_secs(60),
        }
    };
    eprintln!(
        "coexistence (issue 12): {} pods, kubelet period {:?}, {} rounds, {:?} at rest",
        s.pods, s.period, s.rounds, s.rest
    );
    for with in [true, false] {
        let name = if with {
            "with webhook"
        } else {
            "without webhook"
        };
        let mut o = scenario(with, &s).await;
        let m: Summary = coexist::report(name, &mut o, &s);
        let at = format!(
            "{} pods, period {:?}, {:?} at rest",
            s.pods, s.period, s.rest
        );
        row(
            rows,
            &format!("coexistence [{name}]: refused /resize per 1,000"),
            if with { "0" } else { "-" },
            format!(
                "{:.1} ({}/{} resizes)",
                m.refusals_per_1000, o.refusals, o.resizes
            ),
            Some(o.refusals == 0).filter(|_| with),
        );
        row(
            rows,
            &format!("coexistence [{name}]: agent status patches / pod / min at rest"),
            if with { "0" } else { "-" },
            format!("{:.2} ({at})", m.agent_patches),
            Some(o.agent_patches_at_rest == 0).filter(|_| with),
        );
        row(
            rows,
            &format!("coexistence [{name}]: kubelet status writes / pod / min at rest"),
            if with { "stored 0" } else { "-" },
            format!(
                "sent {:.2}, stored {:.2}; all stored pod writes {:.2}",
                m.kubelet_sent, m.kubelet_stored, m.stored_pod_writes
            ),
            Some(o.stored_pod_writes_at_rest == 0).filter(|_| with),
        );
        if with {
            row(
                rows,
                "coexistence [with webhook]: webhook latency p50 / p99",
                "-",
                format!(
                    "{} / {} as the API server sees it ({} calls, {} failed); webhook's histogram p50 {}, p99 {}",
                    ms(m.p50),
                    ms(m.p99),
                    m.calls,
                    o.webhook_failures,
                    secs(m.server_p50),
                    secs(m.server_p99)
                ),
                None,
            );
        }
    }
}
