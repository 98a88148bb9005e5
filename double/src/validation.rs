//! What the real API server validates in the objects a node agent writes, answered as the
//! server answers: a 422 `Invalid` metav1 `Status` with `details.causes`.
//!
//! Followed (kubernetes/kubernetes):
//! - `staging/src/k8s.io/apimachinery/pkg/api/validation/objectmeta.go` (`ValidateObjectMeta`,
//!   `ValidateObjectMetaUpdate`, `NameIsDNSSubdomain` with `maskTrailingDash`),
//! - `staging/src/k8s.io/apimachinery/pkg/util/validation/validation.go` (`IsDNS1123Subdomain`,
//!   `IsDNS1123Label`, `IsQualifiedName`, `IsValidLabelValue`),
//! - `staging/src/k8s.io/apimachinery/pkg/util/validation/field/errors.go` (rendering),
//! - `staging/src/k8s.io/apimachinery/pkg/api/errors/errors.go` (`NewInvalid`),
//! - `pkg/apis/core/validation/events.go` (`ValidateEventCreate`, `ValidateEventUpdate`),
//! - `pkg/apis/core/validation/validation.go` (`ValidatePodStatusUpdate`, `ValidateNodeUpdate`,
//!   `validatePodConditions`, `ValidateResourceQuantityValue`).
//!
//! Field types (a quantity that does not parse, a string where a number belongs) fail the
//! server's decoding of the patched object, which it answers with 422 too; here they are
//! reported as `Invalid` on the offending field's path.

use crate::util::parse_quantity_strict;
use crate::ApiError;
use serde_json::{json, Value};

/// `field.ErrorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    Required,
    Invalid,
    Forbidden,
    TooLong,
    NotSupported,
}

impl ErrorType {
    fn cause(self) -> &'static str {
        match self {
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::NotSupported => "FieldValueNotSupported",
        }
    }

    fn text(self) -> &'static str {
        match self {
            ErrorType::Required => "Required value",
            ErrorType::Invalid => "Invalid value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::TooLong => "Too long",
            ErrorType::NotSupported => "Unsupported value",
        }
    }
}

/// One `field.Error`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub kind: ErrorType,
    /// The bad value (`Invalid`, `NotSupported`); rendered like Go's `%#v`.
    pub value: Option<Value>,
    pub detail: String,
}

impl FieldError {
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            kind: ErrorType::Required,
            value: None,
            detail: detail.into(),
        }
    }

    pub fn invalid(
        field: impl Into<String>,
        value: Value,
        detail: impl Into<String>,
    ) -> FieldError {
        FieldError {
            field: field.into(),
            kind: ErrorType::Invalid,
            value: Some(value),
            detail: detail.into(),
        }
    }

    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            kind: ErrorType::Forbidden,
            value: None,
            detail: detail.into(),
        }
    }

    /// `ErrorBody()`: the message without the field path.
    pub fn body(&self) -> String {
        let mut s = self.kind.text().to_string();
        if let (Some(v), ErrorType::Invalid | ErrorType::NotSupported) = (&self.value, self.kind) {
            s.push_str(": ");
            s.push_str(&go_value(v));
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// Go's `%#v` of a JSON value as far as it matters here (strings quoted, numbers plain).
fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

/// `errors.NewInvalid(kind, name, errs)`: 422 with `details.causes`. `group` "" is the core group.
pub fn invalid(group: &str, kind: &str, name: &str, errs: &[FieldError]) -> ApiError {
    let qualified = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    let message = match errs {
        [] => format!("{qualified} {name:?} is invalid"),
        [e] => format!("{qualified} {name:?} is invalid: {e}"),
        many => format!(
            "{qualified} {name:?} is invalid: [{}]",
            many.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let causes: Vec<Value> = errs
        .iter()
        .map(|e| json!({"reason": e.kind.cause(), "message": e.body(), "field": e.field}))
        .collect();
    let mut details = json!({"name": name, "kind": kind, "causes": causes});
    if !group.is_empty() {
        details["group"] = group.into();
    }
    ApiError::new(422, "Invalid", message).with_details(details)
}

// ---- apimachinery/pkg/util/validation ----

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

fn regex_error(msg: &str, regex: &str, examples: &[&str]) -> String {
    let ex = examples
        .iter()
        .map(|e| format!("'{e}'"))
        .collect::<Vec<_>>()
        .join(", or ");
    format!("{msg} (e.g. {ex}, regex used for validation is '{regex}')")
}

fn is_lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
fn dns1123_label_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && is_lower_alnum(b[0])
        && is_lower_alnum(b[b.len() - 1])
        && b.iter().all(|c| is_lower_alnum(*c) || *c == b'-')
}

pub fn is_dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !dns1123_label_ok(s) {
        errs.push(regex_error(
            DNS1123_LABEL_MSG,
            "[a-z0-9]([-a-z0-9]*[a-z0-9])?",
            &["my-name", "123-abc"],
        ));
    }
    errs
}

pub fn is_dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if !s.split('.').all(dns1123_label_ok) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_MSG,
            "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
            &["example.com"],
        ));
    }
    errs
}

/// `objectmeta.go` `NameIsDNSSubdomain`: as a prefix (`generateName`) only a trailing `-` is
/// masked (`maskTrailingDash`); a trailing `.` stays invalid.
pub fn name_is_dns_subdomain(name: &str, prefix: bool) -> Vec<String> {
    if prefix && name.len() > 1 && name.ends_with('-') {
        let masked = format!("{}a", &name[..name.len() - 1]);
        return is_dns1123_subdomain(&masked);
    }
    is_dns1123_subdomain(name)
}

fn qualified_name_part_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// `IsQualifiedName`: `[prefix/]name`, name ≤ 63 characters.
pub fn is_qualified_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    is_dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "{} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    &format!("a qualified name {QUALIFIED_NAME_MSG}"),
                    "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]",
                    &["MyName", "my.name", "123-abc"],
                )
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".to_string());
    }
    if !name.is_empty() && !qualified_name_part_ok(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_MSG,
                "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]",
                &["MyName", "my.name", "123-abc"],
            )
        ));
    }
    errs
}

pub fn is_valid_label_value(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !s.is_empty() && !qualified_name_part_ok(s) {
        errs.push(regex_error(
            LABEL_VALUE_MSG,
            "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?",
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

// ---- objectmeta.go ----

/// What names an object kind allows.
#[derive(Debug, Clone, Copy)]
pub struct MetaRules {
    pub namespaced: bool,
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// `ValidateObjectMeta` with `NameIsDNSSubdomain` (pods, nodes, events.k8s.io/v1 events).
pub fn validate_object_meta(meta: &Value, rules: MetaRules) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = str_at(meta, "name").unwrap_or("");
    let generate = str_at(meta, "generateName").unwrap_or("");
    if !generate.is_empty() {
        for m in name_is_dns_subdomain(generate, true) {
            errs.push(FieldError::invalid(
                "metadata.generateName",
                generate.into(),
                m,
            ));
        }
    }
    if name.is_empty() {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for m in name_is_dns_subdomain(name, false) {
            errs.push(FieldError::invalid("metadata.name", name.into(), m));
        }
    }
    let ns = str_at(meta, "namespace").unwrap_or("");
    if rules.namespaced {
        if ns.is_empty() {
            errs.push(FieldError::required("metadata.namespace", ""));
        } else {
            for m in is_dns1123_label(ns) {
                errs.push(FieldError::invalid("metadata.namespace", ns.into(), m));
            }
        }
    } else if !ns.is_empty() {
        errs.push(FieldError::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }
    if let Some(g) = meta.get("generation").and_then(Value::as_i64) {
        if g < 0 {
            errs.push(FieldError::invalid(
                "metadata.generation",
                g.into(),
                "must be greater than or equal to 0",
            ));
        }
    }
    errs.extend(validate_labels(meta.get("labels")));
    errs.extend(validate_annotations(meta.get("annotations")));
    errs
}

/// `ValidateObjectMetaUpdate`: identity fields are immutable, the rest as on create.
pub fn validate_object_meta_update(new: &Value, old: &Value, rules: MetaRules) -> Vec<FieldError> {
    let mut errs = validate_object_meta(new, rules);
    for f in ["name", "namespace", "uid", "creationTimestamp"] {
        if new.get(f) != old.get(f) {
            errs.push(FieldError::invalid(
                format!("metadata.{f}"),
                new.get(f).cloned().unwrap_or(Value::Null),
                "field is immutable",
            ));
        }
    }
    errs
}

fn validate_labels(labels: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(Value::Object(m)) = labels else {
        return errs;
    };
    for (k, v) in m {
        for msg in is_qualified_name(k) {
            errs.push(FieldError::invalid(
                "metadata.labels",
                k.as_str().into(),
                msg,
            ));
        }
        let v = v.as_str().unwrap_or("");
        for msg in is_valid_label_value(v) {
            errs.push(FieldError::invalid("metadata.labels", v.into(), msg));
        }
    }
    errs
}

/// `ValidateAnnotations`: keys are qualified names (lower-cased), total size ≤ 256 KiB.
fn validate_annotations(annotations: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(Value::Object(m)) = annotations else {
        return errs;
    };
    let mut total = 0;
    for (k, v) in m {
        for msg in is_qualified_name(&k.to_lowercase()) {
            errs.push(FieldError::invalid(
                "metadata.annotations",
                k.as_str().into(),
                msg,
            ));
        }
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > 256 * 1024 {
        errs.push(FieldError {
            field: "metadata.annotations".into(),
            kind: ErrorType::TooLong,
            value: None,
            detail: format!("may not be more than {} bytes", 256 * 1024),
        });
    }
    errs
}

// ---- events.go ----

const REPORTING_INSTANCE_LIMIT: usize = 128;
const ACTION_LIMIT: usize = 128;
const REASON_LIMIT: usize = 128;
const NOTE_LIMIT: usize = 1024;

/// An Event in the internal (core) shape: events.k8s.io/v1 `regarding`/`note`/
/// `deprecated*` map onto `involvedObject`/`message`/... as the server's conversion does.
struct CoreEvent<'a> {
    v: &'a Value,
    events_v1: bool,
}

impl CoreEvent<'_> {
    fn field(&self, core: &str, v1: &str) -> Option<&Value> {
        self.v
            .get(if self.events_v1 { v1 } else { core })
            .filter(|v| !v.is_null())
    }
    fn str(&self, core: &str, v1: &str) -> &str {
        self.field(core, v1).and_then(Value::as_str).unwrap_or("")
    }
    fn namespace(&self) -> &str {
        self.v
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
    fn involved_namespace(&self) -> &str {
        self.field("involvedObject", "regarding")
            .and_then(|o| o.get("namespace"))
            .and_then(Value::as_str)
            .unwrap_or("")
    }
    fn event_time_set(&self) -> bool {
        self.v
            .get("eventTime")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    }
}

/// `legacyValidateEvent`.
fn legacy_validate_event(e: &CoreEvent<'_>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ns = e.namespace();
    let inv_ns = e.involved_namespace();
    let mismatch = || {
        FieldError::invalid(
            "involvedObject.namespace",
            inv_ns.into(),
            "does not match event.namespace",
        )
    };
    if !e.event_time_set() {
        if inv_ns.is_empty() {
            if !ns.is_empty() && ns != "default" {
                errs.push(mismatch());
            }
        } else if ns != inv_ns {
            errs.push(mismatch());
        }
    } else {
        if inv_ns.is_empty() && ns != "default" && ns != "kube-system" {
            errs.push(mismatch());
        }
        let rc = e.str("reportingComponent", "reportingController");
        if rc.is_empty() {
            errs.push(FieldError::required("reportingController", ""));
        }
        for m in is_qualified_name(rc) {
            errs.push(FieldError::invalid("reportingController", rc.into(), m));
        }
        let ri = e.str("reportingInstance", "reportingInstance");
        if ri.is_empty() {
            errs.push(FieldError::required("reportingInstance", ""));
        }
        if ri.len() > REPORTING_INSTANCE_LIMIT {
            errs.push(FieldError::invalid(
                "reportingInstance",
                "".into(),
                format!("can have at most {REPORTING_INSTANCE_LIMIT} characters"),
            ));
        }
        for (field, value, limit) in [
            ("action", e.str("action", "action"), ACTION_LIMIT),
            ("reason", e.str("reason", "reason"), REASON_LIMIT),
        ] {
            if value.is_empty() {
                errs.push(FieldError::required(field, ""));
            }
            if value.len() > limit {
                errs.push(FieldError::invalid(
                    field,
                    "".into(),
                    format!("can have at most {limit} characters"),
                ));
            }
        }
        if e.str("message", "note").len() > NOTE_LIMIT {
            errs.push(FieldError::invalid(
                "message",
                "".into(),
                format!("can have at most {NOTE_LIMIT} characters"),
            ));
        }
    }
    for m in is_dns1123_subdomain(ns) {
        errs.push(FieldError::invalid("namespace", ns.into(), m));
    }
    errs
}

fn validate_series(e: &CoreEvent<'_>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(s) = e.field("series", "series") {
        if s.get("count").and_then(Value::as_i64).unwrap_or(0) < 2 {
            errs.push(FieldError::invalid(
                "series.count",
                "".into(),
                "should be at least 2",
            ));
        }
        if s.get("lastObservedTime")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            errs.push(FieldError::required("series.lastObservedTime", ""));
        }
    }
    errs
}

/// `ValidateEventCreate`; `events_v1` for events.k8s.io/v1 (strict), else core v1 (legacy only).
pub fn validate_event_create(ev: &Value, events_v1: bool) -> Vec<FieldError> {
    let e = CoreEvent { v: ev, events_v1 };
    let mut errs = legacy_validate_event(&e);
    if !events_v1 {
        return errs;
    }
    let meta = ev.get("metadata").cloned().unwrap_or_else(|| json!({}));
    errs.extend(validate_object_meta(&meta, MetaRules { namespaced: true }));
    errs.extend(validate_series(&e));
    if !e.event_time_set() {
        errs.push(FieldError::required("eventTime", ""));
    }
    let t = e.str("type", "type");
    if t != "Normal" && t != "Warning" {
        errs.push(FieldError::invalid(
            "type",
            "".into(),
            format!("has invalid value: {t}"),
        ));
    }
    for (core, v1) in [
        ("firstTimestamp", "deprecatedFirstTimestamp"),
        ("lastTimestamp", "deprecatedLastTimestamp"),
    ] {
        if e.field(core, v1).is_some() {
            errs.push(FieldError::invalid(core, "".into(), "needs to be unset"));
        }
    }
    if e.field("count", "deprecatedCount")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        != 0
    {
        errs.push(FieldError::invalid("count", "".into(), "needs to be unset"));
    }
    if e.field("source", "deprecatedSource").is_some_and(|s| {
        str_at(s, "component").is_some_and(|c| !c.is_empty())
            || str_at(s, "host").is_some_and(|h| !h.is_empty())
    }) {
        errs.push(FieldError::invalid(
            "source",
            "".into(),
            "needs to be unset",
        ));
    }
    errs
}

/// `ValidateEventUpdate`.
pub fn validate_event_update(new: &Value, old: &Value, events_v1: bool) -> Vec<FieldError> {
    let n = CoreEvent { v: new, events_v1 };
    let o = CoreEvent { v: old, events_v1 };
    let mut errs = legacy_validate_event(&n);
    if !events_v1 {
        return errs;
    }
    errs.extend(validate_object_meta_update(
        &new["metadata"],
        &old["metadata"],
        MetaRules { namespaced: true },
    ));
    if n.field("series", "series") != o.field("series", "series") {
        errs.extend(validate_series(&n));
    }
    for (core, v1) in [
        ("involvedObject", "regarding"),
        ("reason", "reason"),
        ("message", "note"),
        ("source", "deprecatedSource"),
        ("firstTimestamp", "deprecatedFirstTimestamp"),
        ("lastTimestamp", "deprecatedLastTimestamp"),
        ("count", "deprecatedCount"),
        ("type", "type"),
        ("eventTime", "eventTime"),
        ("action", "action"),
        ("related", "related"),
        ("reportingComponent", "reportingController"),
        ("reportingInstance", "reportingInstance"),
    ] {
        let (a, b) = (n.field(core, v1), o.field(core, v1));
        if a != b {
            let field = if core == "reportingComponent" {
                "reportingController"
            } else {
                core
            };
            errs.push(FieldError::invalid(
                field,
                a.cloned().unwrap_or(Value::Null),
                "field is immutable",
            ));
        }
    }
    errs
}

// ---- field types (decoding) and validation.go status rules ----

/// A value checker for one JSON shape.
enum Shape {
    Str,
    Int,
    Bool,
    /// RFC 3339 (`metav1.Time`, `MicroTime`).
    Time,
    /// A map of resource name → quantity.
    Resources,
    /// `ResourceRequirements`.
    Requirements,
    /// An object whose listed fields have these shapes (others are not checked).
    Obj(&'static [(&'static str, Shape)]),
    List(&'static Shape),
}

const CONDITION: Shape = Shape::Obj(&[
    ("type", Shape::Str),
    ("status", Shape::Str),
    ("reason", Shape::Str),
    ("message", Shape::Str),
    ("observedGeneration", Shape::Int),
    ("lastProbeTime", Shape::Time),
    ("lastTransitionTime", Shape::Time),
    ("lastHeartbeatTime", Shape::Time),
]);

const CONTAINER_STATUS: Shape = Shape::Obj(&[
    ("name", Shape::Str),
    ("image", Shape::Str),
    ("imageID", Shape::Str),
    ("containerID", Shape::Str),
    ("ready", Shape::Bool),
    ("started", Shape::Bool),
    ("restartCount", Shape::Int),
    ("allocatedResources", Shape::Resources),
    ("resources", Shape::Requirements),
]);

const POD_STATUS: Shape = Shape::Obj(&[
    ("phase", Shape::Str),
    ("qosClass", Shape::Str),
    ("resize", Shape::Str),
    ("observedGeneration", Shape::Int),
    ("conditions", Shape::List(&CONDITION)),
    ("containerStatuses", Shape::List(&CONTAINER_STATUS)),
    ("initContainerStatuses", Shape::List(&CONTAINER_STATUS)),
    ("startTime", Shape::Time),
]);

const NODE_STATUS: Shape = Shape::Obj(&[
    ("capacity", Shape::Resources),
    ("allocatable", Shape::Resources),
    ("conditions", Shape::List(&CONDITION)),
    ("nodeInfo", Shape::Obj(&[("kubeletVersion", Shape::Str)])),
]);

fn is_rfc3339(s: &str) -> bool {
    // YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || !matches!(b[10], b'T' | b't')
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match &s[i..] {
        "Z" | "z" => true,
        tz => {
            let t = tz.as_bytes();
            t.len() == 6
                && matches!(t[0], b'+' | b'-')
                && t[1..3].iter().all(u8::is_ascii_digit)
                && t[3] == b':'
                && t[4..6].iter().all(u8::is_ascii_digit)
        }
    }
}

fn type_error(path: &str, v: &Value, want: &str) -> FieldError {
    FieldError::invalid(
        path,
        v.clone(),
        format!("cannot decode {} as {want}", json_type(v)),
    )
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check_resources(path: &str, v: &Value, errs: &mut Vec<FieldError>) {
    let Value::Object(m) = v else {
        errs.push(type_error(path, v, "a map of quantities"));
        return;
    };
    for (k, q) in m {
        let p = format!("{path}[{k}]");
        match q {
            Value::String(s) => match parse_quantity_strict(s) {
                Ok(n) if n < 0.0 => errs.push(FieldError::invalid(
                    p,
                    q.clone(),
                    "must be greater than or equal to 0",
                )),
                Ok(_) => {}
                Err(()) => errs.push(FieldError::invalid(
                    p,
                    q.clone(),
                    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                )),
            },
            Value::Number(n) if n.as_f64().is_some_and(|f| f >= 0.0) => {}
            other => errs.push(type_error(&p, other, "a quantity")),
        }
    }
}

fn check(shape: &Shape, path: &str, v: &Value, errs: &mut Vec<FieldError>) {
    if v.is_null() {
        return;
    }
    match shape {
        Shape::Str if !v.is_string() => errs.push(type_error(path, v, "string")),
        Shape::Int if !(v.is_i64() || v.is_u64()) => errs.push(type_error(path, v, "int64")),
        Shape::Bool if !v.is_boolean() => errs.push(type_error(path, v, "bool")),
        Shape::Time => match v.as_str() {
            Some(s) if is_rfc3339(s) => {}
            _ => errs.push(type_error(path, v, "an RFC 3339 time")),
        },
        Shape::Resources => check_resources(path, v, errs),
        Shape::Requirements => match v {
            Value::Object(m) => {
                for (k, list) in m {
                    match k.as_str() {
                        "requests" | "limits" => {
                            check_resources(&format!("{path}.{k}"), list, errs)
                        }
                        _ => {}
                    }
                }
            }
            other => errs.push(type_error(path, other, "ResourceRequirements")),
        },
        Shape::Obj(fields) => match v {
            Value::Object(m) => {
                for (name, s) in fields.iter() {
                    if let Some(x) = m.get(*name) {
                        check(s, &format!("{path}.{name}"), x, errs);
                    }
                }
            }
            other => errs.push(type_error(path, other, "an object")),
        },
        Shape::List(inner) => match v {
            Value::Array(items) => {
                for (i, x) in items.iter().enumerate() {
                    check(inner, &format!("{path}[{i}]"), x, errs);
                }
            }
            other => errs.push(type_error(path, other, "a list")),
        },
        _ => {}
    }
}

/// The resource requirements of a pod spec, as `validateResourceRequirements` (through
/// `ValidateContainerResourceRequirements` for each container and `validatePodResourceRequirements`
/// for `spec.resources`) checks them on create and on `/resize`: each limit, then each request,
/// not negative (`ValidateResourceQuantityValue` → `ValidateNonnegativeQuantity`: `Invalid`,
/// the quantity as a string, `must be greater than or equal to 0`), and a request not above
/// its limit (`Invalid` on the `requests` path itself). Containers before init containers,
/// as `ValidatePodSpec` walks them; keys in sorted order (Go's map order is random).
/// Values are quoted as written, not canonicalised (`-0.5` stays `-0.5`, Go says `-500m`).
/// Quantities that do not parse are left to the decoder (a 400 on the real server).
pub fn validate_pod_spec_resources(spec: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut check = |path: String, r: &Value| {
        let list = |section: &str| -> Vec<(String, String, f64)> {
            r.get(section)
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| {
                    let s = v.as_str()?;
                    Some((k.clone(), s.to_string(), parse_quantity_strict(s).ok()?))
                })
                .collect()
        };
        let (limits, requests) = (list("limits"), list("requests"));
        for (section, entries) in [("limits", &limits), ("requests", &requests)] {
            for (k, s, q) in entries {
                if *q < 0.0 {
                    errs.push(FieldError::invalid(
                        format!("{path}.{section}[{k}]"),
                        Value::String(s.clone()),
                        "must be greater than or equal to 0",
                    ));
                }
                if section == "requests" {
                    if let Some((_, ls, l)) = limits.iter().find(|(lk, _, _)| lk == k) {
                        if q > l {
                            errs.push(FieldError::invalid(
                                format!("{path}.requests"),
                                Value::String(s.clone()),
                                format!("must be less than or equal to {k} limit of {ls}"),
                            ));
                        }
                    }
                }
            }
        }
    };
    for list in ["containers", "initContainers"] {
        for (i, c) in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(r) = c.get("resources").filter(|r| r.is_object()) {
                check(format!("spec.{list}[{i}].resources"), r);
            }
        }
    }
    if let Some(r) = spec.get("resources").filter(|r| r.is_object()) {
        check("spec.resources".into(), r);
    }
    errs
}

/// `validatePodConditions` / node conditions: type a qualified name, status True/False/Unknown
/// (pod conditions' status is validated only for the types the API knows; resize conditions
/// are known from 1.33), unique per type.
fn validate_conditions(path: &str, conds: Option<&Value>, errs: &mut Vec<FieldError>) {
    let Some(Value::Array(list)) = conds else {
        return;
    };
    let mut seen = std::collections::BTreeSet::new();
    for (i, c) in list.iter().enumerate() {
        let t = str_at(c, "type").unwrap_or("");
        let p = format!("{path}[{i}]");
        if t.is_empty() {
            errs.push(FieldError::required(
                format!("{p}.type"),
                "must be specified",
            ));
        }
        for m in is_qualified_name(t) {
            if !t.is_empty() {
                errs.push(FieldError::invalid(format!("{p}.type"), t.into(), m));
            }
        }
        if !seen.insert(t.to_string()) {
            errs.push(FieldError {
                field: format!("{p}.type"),
                kind: ErrorType::Invalid,
                value: Some(t.into()),
                detail: "duplicate condition type".into(),
            });
        }
        let s = str_at(c, "status").unwrap_or("");
        if !matches!(s, "True" | "False" | "Unknown") {
            errs.push(FieldError {
                field: format!("{p}.status"),
                kind: ErrorType::NotSupported,
                value: Some(s.into()),
                detail: "supported values: \"False\", \"True\", \"Unknown\"".into(),
            });
        }
        if let Some(g) = c.get("observedGeneration").and_then(Value::as_i64) {
            if g < 0 {
                errs.push(FieldError::invalid(
                    format!("{p}.observedGeneration"),
                    g.into(),
                    "must be greater than or equal to 0",
                ));
            }
        }
    }
}

/// `ValidatePodStatusUpdate` for what a node agent writes: field types, quantities, conditions,
/// `observedGeneration` ≥ 0 (any other value, even a regression, is allowed: KEP-5067),
/// `resize` values, container statuses matching spec containers by name.
pub fn validate_pod_status(pod: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let status = pod.get("status").cloned().unwrap_or(Value::Null);
    check(&POD_STATUS, "status", &status, &mut errs);
    if !errs.is_empty() {
        return errs;
    }
    validate_conditions("status.conditions", status.get("conditions"), &mut errs);
    if let Some(g) = status.get("observedGeneration").and_then(Value::as_i64) {
        if g < 0 {
            errs.push(FieldError::invalid(
                "status.observedGeneration",
                g.into(),
                "must be greater than or equal to 0",
            ));
        }
    }
    if let Some(r) = status.get("resize").and_then(Value::as_str) {
        if !matches!(
            r,
            "" | "Proposed" | "InProgress" | "Deferred" | "Infeasible"
        ) {
            errs.push(FieldError {
                field: "status.resize".into(),
                kind: ErrorType::NotSupported,
                value: Some(r.into()),
                detail:
                    "supported values: \"Deferred\", \"InProgress\", \"Infeasible\", \"Proposed\""
                        .into(),
            });
        }
    }
    for (list, spec_list) in [
        ("containerStatuses", "containers"),
        ("initContainerStatuses", "initContainers"),
    ] {
        let names: Vec<&str> = pod
            .pointer(&format!("/spec/{spec_list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| str_at(c, "name"))
            .collect();
        for (i, cs) in status
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let n = str_at(cs, "name").unwrap_or("");
            if !names.contains(&n) {
                errs.push(FieldError {
                    field: format!("status.{list}[{i}].name"),
                    kind: ErrorType::NotSupported,
                    value: Some(n.into()),
                    detail: format!("must be the name of a container in spec.{spec_list}"),
                });
            }
        }
    }
    errs
}

/// Node status: field types and quantities (`ValidateNodeUpdate` → `ValidateResourceQuantityValue`).
pub fn validate_node_status(node: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let status = node.get("status").cloned().unwrap_or(Value::Null);
    check(&NODE_STATUS, "status", &status, &mut errs);
    if errs.is_empty() {
        validate_conditions("status.conditions", status.get("conditions"), &mut errs);
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_name_masks_only_a_trailing_dash() {
        assert!(name_is_dns_subdomain("web-", true).is_empty());
        let e = name_is_dns_subdomain("acc-g1-78974.", true);
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("a lowercase RFC 1123 subdomain"), "{e:?}");
        assert!(!name_is_dns_subdomain("web-", false).is_empty());
        assert!(name_is_dns_subdomain("web.187d0c29351e0d15", false).is_empty());
        assert!(!name_is_dns_subdomain("Web", false).is_empty());
        assert!(!name_is_dns_subdomain(&"a".repeat(254), false).is_empty());
    }

    #[test]
    fn the_issue_message_is_reproduced() {
        let meta = json!({"name": "acc-g1-78974.l6crw", "generateName": "acc-g1-78974.", "namespace": "default"});
        let errs = validate_object_meta(&meta, MetaRules { namespaced: true });
        let e = invalid("events.k8s.io", "Event", "acc-g1-78974.l6crw", &errs);
        assert_eq!(e.code, 422);
        assert!(
            e.message.starts_with("Event.events.k8s.io \"acc-g1-78974.l6crw\" is invalid: metadata.generateName: Invalid value: \"acc-g1-78974.\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"),
            "{}",
            e.message
        );
        let st = e.to_status();
        assert_eq!(st["reason"], "Invalid");
        assert_eq!(st["details"]["causes"][0]["field"], "metadata.generateName");
        assert_eq!(st["details"]["causes"][0]["reason"], "FieldValueInvalid");
        assert_eq!(st["details"]["group"], "events.k8s.io");
    }

    #[test]
    fn qualified_names_and_labels() {
        assert!(is_qualified_name("resizelet.dev/resizelet").is_empty());
        assert!(is_qualified_name("kubelet").is_empty());
        assert!(!is_qualified_name("a/b/c").is_empty());
        assert!(!is_qualified_name("-x").is_empty());
        assert!(!is_qualified_name("Bad_Prefix/x").is_empty());
        assert!(is_valid_label_value("").is_empty());
        assert!(!is_valid_label_value("a b").is_empty());
    }

    fn good_event() -> Value {
        json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web.187d0c29351e0d15", "namespace": "ns"},
            "eventTime": "2026-12-01T08:00:00.123456Z",
            "reportingController": "resizelet.dev/resizelet",
            "reportingInstance": "resizelet-n1",
            "action": "Resize", "reason": "ResizeStarted", "type": "Normal", "note": "x",
            "regarding": {"kind": "Pod", "namespace": "ns", "name": "web"}
        })
    }

    #[test]
    fn event_create_rules() {
        assert_eq!(validate_event_create(&good_event(), true), vec![]);
        type Mutate = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, Mutate)> = vec![
            ("eventTime", Box::new(|e| e["eventTime"] = Value::Null)),
            (
                "reportingController",
                Box::new(|e| e["reportingController"] = "".into()),
            ),
            (
                "reportingController",
                Box::new(|e| e["reportingController"] = "a b".into()),
            ),
            (
                "reportingInstance",
                Box::new(|e| e["reportingInstance"] = "x".repeat(129).into()),
            ),
            ("action", Box::new(|e| e["action"] = "".into())),
            ("reason", Box::new(|e| e["reason"] = "r".repeat(129).into())),
            ("type", Box::new(|e| e["type"] = "Info".into())),
            ("message", Box::new(|e| e["note"] = "n".repeat(1025).into())),
            (
                "series.count",
                Box::new(|e| {
                    e["series"] = json!({"count": 1, "lastObservedTime": "2026-12-01T08:00:00Z"})
                }),
            ),
            (
                "series.lastObservedTime",
                Box::new(|e| e["series"] = json!({"count": 2})),
            ),
            (
                "involvedObject.namespace",
                Box::new(|e| e["regarding"]["namespace"] = "".into()),
            ),
            (
                "metadata.name",
                Box::new(|e| e["metadata"]["name"] = "web.".into()),
            ),
            (
                "deprecatedCount",
                Box::new(|e| e["deprecatedCount"] = 3.into()),
            ),
        ];
        for (field, f) in cases {
            let mut e = good_event();
            f(&mut e);
            let errs = validate_event_create(&e, true);
            let want = if field == "deprecatedCount" {
                "count"
            } else {
                field
            };
            assert!(errs.iter().any(|x| x.field == want), "{field}: {errs:?}");
        }
        // core v1: legacy rules only
        let core = json!({
            "metadata": {"name": "web.", "namespace": "ns"},
            "eventTime": "2026-12-01T08:00:00.123456Z", "reportingComponent": "c",
            "reportingInstance": "i", "action": "A", "reason": "R", "type": "Info",
            "involvedObject": {"kind": "Pod", "namespace": "ns", "name": "web"}
        });
        assert_eq!(validate_event_create(&core, false), vec![]);
    }

    #[test]
    fn event_update_rules() {
        let old = good_event();
        let mut new = old.clone();
        new["series"] = json!({"count": 2, "lastObservedTime": "2026-12-01T08:00:01.000000Z"});
        assert_eq!(validate_event_update(&new, &old, true), vec![]);
        new["reason"] = "Other".into();
        let errs = validate_event_update(&new, &old, true);
        assert!(errs.iter().any(|e| e.field == "reason"), "{errs:?}");
    }

    #[test]
    fn pod_status_types() {
        let pod = |status: Value| json!({"metadata": {"generation": 2}, "spec": {"containers": [{"name": "c"}]}, "status": status});
        let ok = pod(json!({
            "observedGeneration": 2,
            "conditions": [{"type": "PodResizeInProgress", "status": "True", "observedGeneration": 2,
                            "lastProbeTime": "2026-12-01T08:00:00Z", "lastTransitionTime": "2026-12-01T08:00:00Z"}],
            "containerStatuses": [{"name": "c", "allocatedResources": {"cpu": "100m", "memory": "64Mi"},
                                   "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "64Mi"}}}]
        }));
        assert_eq!(validate_pod_status(&ok), vec![]);
        let cases = [
            (
                json!({"observedGeneration": "2"}),
                "status.observedGeneration",
            ),
            (
                json!({"observedGeneration": -1}),
                "status.observedGeneration",
            ),
            (
                json!({"containerStatuses": [{"name": "c", "allocatedResources": {"cpu": "1x"}}]}),
                "status.containerStatuses[0].allocatedResources[cpu]",
            ),
            (
                json!({"containerStatuses": [{"name": "c", "resources": {"limits": {"memory": 5.5e-3}}}]}),
                "",
            ),
            (
                json!({"containerStatuses": [{"name": "c", "resources": {"limits": {"memory": true}}}]}),
                "status.containerStatuses[0].resources.limits[memory]",
            ),
            (
                json!({"containerStatuses": [{"name": "d"}]}),
                "status.containerStatuses[0].name",
            ),
            (
                json!({"conditions": [{"type": "X", "status": "Yes"}]}),
                "status.conditions[0].status",
            ),
            (
                json!({"conditions": [{"type": "X", "status": "True", "lastProbeTime": "yesterday"}]}),
                "status.conditions[0].lastProbeTime",
            ),
            (json!({"resize": "Done"}), "status.resize"),
        ];
        for (status, field) in cases {
            let errs = validate_pod_status(&pod(status.clone()));
            if field.is_empty() {
                assert_eq!(errs, vec![], "{status}");
            } else {
                assert!(errs.iter().any(|e| e.field == field), "{status}: {errs:?}");
            }
        }
    }

    #[test]
    fn rfc3339() {
        for ok in [
            "2026-12-01T08:00:00Z",
            "2026-12-01T08:00:00.123456Z",
            "2026-12-01T08:00:00+01:00",
        ] {
            assert!(is_rfc3339(ok), "{ok}");
        }
        for bad in [
            "2026-12-01",
            "2026-12-01T08:00:00",
            "2026-12-01T08:00:00.Z",
            "x",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }
}
