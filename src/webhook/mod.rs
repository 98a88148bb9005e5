//! `resizelet webhook`: a stateless mutating admission webhook for `pods/status` that keeps a
//! gate-off kubelet from erasing the resize fields.
//!
//! A v1.32 kubelet with `InPlacePodVerticalScaling` off reconciles every pod whose API status
//! differs from its own every 10 s (`syncBatch` → `needsReconcile`), and its patch carries the
//! whole atomic `containerStatuses` list without `resources`/`allocatedResources`. When such a
//! write would drop those fields for a container that has not restarted (same `containerID`),
//! this webhook answers with a JSON patch that carries them over from the old object, so the
//! write changes nothing: the API server stores nothing and sends no watch event. Nothing else
//! is ever changed; a restarted container (new `containerID`) is left to the agent.
//!
//! [`decide`] is the pure decision; `convert.rs` maps AdmissionReview JSON to and from it;
//! `server.rs` is the TLS server (certificate reloaded from files), health and metrics.

pub mod convert;
pub mod server;

pub use server::{serve, Options, WebhookError};

use serde_json::Value;

/// The two status lists whose entries carry resize fields (sidecars are resizable too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusList {
    Containers,
    InitContainers,
}

impl StatusList {
    pub const ALL: [StatusList; 2] = [StatusList::Containers, StatusList::InitContainers];

    pub fn field(self) -> &'static str {
        match self {
            StatusList::Containers => "containerStatuses",
            StatusList::InitContainers => "initContainerStatuses",
        }
    }
}

/// A resize field of a container status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Resources,
    AllocatedResources,
}

impl Field {
    pub const ALL: [Field; 2] = [Field::Resources, Field::AllocatedResources];

    pub fn name(self) -> &'static str {
        match self {
            Field::Resources => "resources",
            Field::AllocatedResources => "allocatedResources",
        }
    }
}

/// One container status as the decision sees it. The field values are kept as opaque JSON: they
/// are carried over verbatim, never interpreted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatusEntry {
    pub name: String,
    pub container_id: Option<String>,
    pub resources: Option<Value>,
    pub allocated_resources: Option<Value>,
}

impl StatusEntry {
    pub fn get(&self, f: Field) -> Option<&Value> {
        match f {
            Field::Resources => self.resources.as_ref(),
            Field::AllocatedResources => self.allocated_resources.as_ref(),
        }
    }
}

/// The container status lists of one pod object, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodStatuses {
    pub containers: Vec<StatusEntry>,
    pub init_containers: Vec<StatusEntry>,
}

impl PodStatuses {
    pub fn list(&self, l: StatusList) -> &[StatusEntry] {
        match l {
            StatusList::Containers => &self.containers,
            StatusList::InitContainers => &self.init_containers,
        }
    }
}

/// The parts of an admission request the decision reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub username: String,
    /// `UPDATE` for both PUT and PATCH.
    pub operation: String,
    /// `group/version/resource`'s resource, e.g. `pods`.
    pub resource: String,
    pub sub_resource: String,
    pub old: Option<PodStatuses>,
    pub new: Option<PodStatuses>,
}

/// One field to put back: `/status/<list>/<index>/<field>` = `value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Carry {
    pub list: StatusList,
    pub index: usize,
    pub field: Field,
    pub value: Value,
}

/// What the webhook answers (always "allowed": it never refuses a write).
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Not an UPDATE of `pods/status` by a node (`system:node:*`): not this webhook's business.
    NotApplicable,
    /// A node's write that drops no resize field of an unrestarted container.
    Unchanged,
    /// Put these fields back (in list, index, field order).
    Carry(Vec<Carry>),
}

/// The user-name prefix of node credentials (the node authorizer's `system:node:<name>`).
pub const NODE_USER_PREFIX: &str = "system:node:";

/// The decision: for an UPDATE of `pods/status` by a node user, every container status in the new
/// object that lacks `resources` or `allocatedResources` while the old object's status of the
/// same container (same name, same non-empty `containerID`) has it gets it back.
pub fn decide(r: &Request) -> Decision {
    if !r.username.starts_with(NODE_USER_PREFIX)
        || r.username.len() == NODE_USER_PREFIX.len()
        || r.operation != "UPDATE"
        || r.resource != "pods"
        || r.sub_resource != "status"
    {
        return Decision::NotApplicable;
    }
    let (Some(old), Some(new)) = (&r.old, &r.new) else {
        return Decision::Unchanged;
    };
    let mut carry = Vec::new();
    for list in StatusList::ALL {
        for (index, n) in new.list(list).iter().enumerate() {
            let Some(id) = n.container_id.as_deref().filter(|id| !id.is_empty()) else {
                continue;
            };
            let Some(o) = old
                .list(list)
                .iter()
                .find(|o| o.name == n.name && o.container_id.as_deref() == Some(id))
            else {
                continue;
            };
            for field in Field::ALL {
                if let (None, Some(v)) = (n.get(field), o.get(field)) {
                    carry.push(Carry {
                        list,
                        index,
                        field,
                        value: v.clone(),
                    });
                }
            }
        }
    }
    if carry.is_empty() {
        Decision::Unchanged
    } else {
        Decision::Carry(carry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(name: &str, id: &str, fields: bool) -> StatusEntry {
        StatusEntry {
            name: name.into(),
            container_id: (!id.is_empty()).then(|| id.to_string()),
            resources: fields.then(|| json!({"requests": {"cpu": "100m"}})),
            allocated_resources: fields.then(|| json!({"cpu": "100m"})),
        }
    }

    fn request(user: &str, old: Vec<StatusEntry>, new: Vec<StatusEntry>) -> Request {
        Request {
            username: user.into(),
            operation: "UPDATE".into(),
            resource: "pods".into(),
            sub_resource: "status".into(),
            old: Some(PodStatuses {
                containers: old,
                init_containers: vec![],
            }),
            new: Some(PodStatuses {
                containers: new,
                init_containers: vec![],
            }),
        }
    }

    /// A write by `user` that drops both resize fields of the unrestarted container `app`.
    fn dropping_both(user: &str) -> Request {
        let id = "containerd://a";
        request(
            user,
            vec![entry("app", id, true)],
            vec![entry("app", id, false)],
        )
    }

    const NODE: &str = "system:node:worker-1";

    #[test]
    fn carries_both_fields_over_when_a_node_drops_them() {
        let r = dropping_both(NODE);
        assert_eq!(
            decide(&r),
            Decision::Carry(vec![
                Carry {
                    list: StatusList::Containers,
                    index: 0,
                    field: Field::Resources,
                    value: json!({"requests": {"cpu": "100m"}})
                },
                Carry {
                    list: StatusList::Containers,
                    index: 0,
                    field: Field::AllocatedResources,
                    value: json!({"cpu": "100m"})
                },
            ])
        );
    }

    #[test]
    fn carries_only_the_missing_field_at_the_new_index() {
        let mut kept = entry("b", "containerd://b", false);
        kept.resources = Some(json!({"limits": {"cpu": "1"}}));
        let r = request(
            NODE,
            vec![
                entry("a", "containerd://a", true),
                entry("b", "containerd://b", true),
            ],
            vec![kept, entry("a", "containerd://a", true)],
        );
        assert_eq!(
            decide(&r),
            Decision::Carry(vec![Carry {
                list: StatusList::Containers,
                index: 0,
                field: Field::AllocatedResources,
                value: json!({"cpu": "100m"})
            }])
        );
    }

    #[test]
    fn sidecar_statuses_are_carried_too() {
        let mut r = request(NODE, vec![], vec![]);
        r.old.as_mut().unwrap().init_containers = vec![entry("s", "containerd://s", true)];
        r.new.as_mut().unwrap().init_containers = vec![entry("s", "containerd://s", false)];
        match decide(&r) {
            Decision::Carry(c) => {
                assert_eq!(c.len(), 2);
                assert!(c.iter().all(|c| c.list == StatusList::InitContainers));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn never_for_non_node_users() {
        for user in [
            "system:serviceaccount:resizelet:resizelet",
            "kubernetes-admin",
            "system:node:",
            "system:nodes",
            "",
        ] {
            let r = dropping_both(user);
            assert_eq!(decide(&r), Decision::NotApplicable, "{user}");
        }
    }

    #[test]
    fn never_outside_pods_status_updates() {
        let base = dropping_both(NODE);
        for (op, res, sub) in [
            ("CREATE", "pods", "status"),
            ("DELETE", "pods", "status"),
            ("UPDATE", "pods", ""),
            ("UPDATE", "pods", "resize"),
            ("UPDATE", "nodes", "status"),
        ] {
            let mut r = base.clone();
            r.operation = op.into();
            r.resource = res.into();
            r.sub_resource = sub.into();
            assert_eq!(decide(&r), Decision::NotApplicable, "{op} {res}/{sub}");
        }
    }

    #[test]
    fn unchanged_unless_an_unrestarted_container_drops_a_field() {
        let (a, old, new) = ("containerd://a", "containerd://old", "containerd://new");
        for (before, after) in [
            // restarted: a new container ID
            (entry("app", old, true), entry("app", new, false)),
            // a container without an ID (waiting) has nothing to keep
            (entry("app", "", true), entry("app", "", false)),
            // nothing dropped, or nothing was there
            (entry("app", a, true), entry("app", a, true)),
            (entry("app", a, false), entry("app", a, false)),
            // a new container name or a container gone from the new object
            (entry("app", a, true), entry("other", a, false)),
        ] {
            let case = format!("{before:?} -> {after:?}");
            let r = request(NODE, vec![before], vec![after]);
            assert_eq!(decide(&r), Decision::Unchanged, "{case}");
        }
        let mut r = request(NODE, vec![], vec![]);
        r.old = None;
        assert_eq!(decide(&r), Decision::Unchanged, "no old object");
    }
}
