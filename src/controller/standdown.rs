//! Decision 6: standing down next to a kubelet that enacts resizes itself.

use tracing::warn;

use crate::k8s::convert::PodView;

use super::Controller;

/// `v1.35.2` → 35.
pub(super) fn kubelet_minor(version: &str) -> Option<u32> {
    let v = version.trim_start_matches('v');
    let mut parts = v.split('.');
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts
        .next()?
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .ok()?;
    (major == 1).then_some(minor)
}

impl Controller {
    /// Decision 6: stop acting on this node (log, metric, Node event, readiness unaffected).
    pub(super) fn stand_down(&mut self, reason: String) {
        let stats = self.shared.stats.clone();
        let mut s = stats.stand_down.lock().unwrap();
        if s.is_none() {
            warn!("{reason}");
            self.node_event = Some(reason.clone());
            stats.metrics.set_stand_down(true);
            *s = Some(reason);
        }
    }

    /// Decision 6 evidence in a pod: the kubelet owns `PodResize*` conditions.
    pub(super) fn check_resizing_kubelet(&mut self, view: &PodView) {
        if view.kubelet_resize_conditions.is_empty() || self.shared.opts.ignore_resizing_kubelet {
            return;
        }
        self.stand_down(format!(
            "the node's kubelet enacts in-place resizes itself: it wrote {} of pod {} (managedFields manager \"kubelet\"); resizelet stands down instead of racing it",
            view.kubelet_resize_conditions.join(" and "),
            view.key()
        ));
    }
}
