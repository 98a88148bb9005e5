//! Small helpers: timestamps, random identifiers, quantities, selectors and
//! query-string decoding.

use serde_json::Value;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// RFC 3339 UTC timestamp with second precision, as metav1.Time renders.
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// A random version-4 UUID string.
pub fn uuid() -> String {
    let a = random_u64();
    let b = random_u64();
    let a = (a & !0xf000) | 0x4000; // version 4 in the time_hi field
    let b = (b & !(0xc000 << 48)) | (0x8000 << 48); // variant
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// The five-character suffix the real server appends to `generateName`.
pub fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut r = random_u64();
    (0..5)
        .map(|_| {
            let c = ALPHABET[(r % ALPHABET.len() as u64) as usize] as char;
            r /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// Parses a Kubernetes quantity ("100m", "1.5Gi", "2e3") to a number.
pub fn parse_quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse().ok()?),
        _ => return None,
    };
    Some(n * mult)
}

/// Parses a quantity as apimachinery's `ParseQuantity` accepts it
/// (`^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$` with a known suffix).
pub fn parse_quantity_strict(s: &str) -> Result<f64, ()> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let split = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (num, suffix) = body.split_at(split);
    if !num.bytes().any(|c| c.is_ascii_digit()) || num.matches('.').count() > 1 {
        return Err(());
    }
    let known = matches!(
        suffix,
        "" | "n"
            | "u"
            | "m"
            | "k"
            | "M"
            | "G"
            | "T"
            | "P"
            | "E"
            | "Ki"
            | "Mi"
            | "Gi"
            | "Ti"
            | "Pi"
            | "Ei"
    ) || suffix.strip_prefix(['e', 'E']).is_some_and(|e| {
        let d = e.strip_prefix(['+', '-']).unwrap_or(e);
        !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit())
    });
    if !known {
        return Err(());
    }
    parse_quantity(s).ok_or(())
}

/// Decodes an `application/x-www-form-urlencoded` query string.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A field selector: `a=b`, `a==b`, `a!=b`, comma-joined (AND).
#[derive(Debug, Clone, Default)]
pub struct FieldSelector(Vec<(String, String, bool)>);

impl FieldSelector {
    pub fn parse(s: &str) -> Result<FieldSelector, String> {
        let mut terms = Vec::new();
        for t in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (k, v, eq) = if let Some((k, v)) = t.split_once("!=") {
                (k, v, false)
            } else if let Some((k, v)) = t.split_once("==") {
                (k, v, true)
            } else if let Some((k, v)) = t.split_once('=') {
                (k, v, true)
            } else {
                return Err(format!("invalid selector: '{s}'; can't understand '{t}'"));
            };
            terms.push((k.trim().to_string(), v.trim().to_string(), eq));
        }
        Ok(FieldSelector(terms))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(k, v, eq)| {
            let mut cur = obj;
            for seg in k.split('.') {
                cur = cur.get(seg).unwrap_or(&Value::Null);
            }
            let actual = match cur {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (actual == *v) == *eq
        })
    }
}

/// An equality-based label selector (`a=b`, `a!=b`, `a`, `!a`). Set-based
/// selectors (`in`, `notin`) are not understood and match everything.
#[derive(Debug, Clone, Default)]
pub struct LabelSelector(Vec<(String, Option<String>, bool)>);

impl LabelSelector {
    pub fn parse(s: &str) -> LabelSelector {
        if s.contains('(') {
            return LabelSelector::default();
        }
        let mut terms = Vec::new();
        for t in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if let Some((k, v)) = t.split_once("!=") {
                terms.push((k.trim().into(), Some(v.trim().into()), false));
            } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                terms.push((k.trim().into(), Some(v.trim().into()), true));
            } else if let Some(k) = t.strip_prefix('!') {
                terms.push((k.trim().into(), None, false));
            } else {
                terms.push((t.into(), None, true));
            }
        }
        LabelSelector(terms)
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        self.0.iter().all(|(k, v, pos)| {
            let actual = labels.and_then(|l| l.get(k)).and_then(Value::as_str);
            match v {
                Some(v) => (actual == Some(v.as_str())) == *pos,
                None => actual.is_some() == *pos,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("1"), parse_quantity("1000m"));
        assert_eq!(parse_quantity("1Gi"), parse_quantity("1024Mi"));
        assert_ne!(parse_quantity("1G"), parse_quantity("1Gi"));
        assert_eq!(parse_quantity("2e3"), Some(2000.0));
        assert_eq!(parse_quantity("x"), None);
        for ok in ["1", "100m", "1.5Gi", "2e3", "+1", "-1", ".5", "1E-3"] {
            assert!(parse_quantity_strict(ok).is_ok(), "{ok}");
        }
        for bad in ["", "x", "1x", "1.2.3", "1Kb", "m", "1e", "1 Gi"] {
            assert!(parse_quantity_strict(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn selectors_and_query() {
        let q =
            parse_query("fieldSelector=spec.nodeName%3Dn1%2Cmetadata.name%21%3Dp&watch=true&x=a+b");
        assert_eq!(
            q[0],
            (
                "fieldSelector".into(),
                "spec.nodeName=n1,metadata.name!=p".into()
            )
        );
        assert_eq!(q[2].1, "a b");
        let fs = FieldSelector::parse(&q[0].1).unwrap();
        assert!(fs.matches(&json!({"spec": {"nodeName": "n1"}, "metadata": {"name": "q"}})));
        assert!(!fs.matches(&json!({"spec": {"nodeName": "n1"}, "metadata": {"name": "p"}})));
        assert!(!fs.matches(&json!({"metadata": {"name": "q"}})));
        let ls = LabelSelector::parse("app=web,!gone");
        assert!(ls.matches(&json!({"metadata": {"labels": {"app": "web"}}})));
        assert!(!ls.matches(&json!({"metadata": {"labels": {"app": "web", "gone": "1"}}})));
    }

    #[test]
    fn timestamps_and_ids() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_000), (2024, 10, 4));
        assert_eq!(now_rfc3339().len(), 20);
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_ne!(u, uuid());
        assert_eq!(name_suffix().len(), 5);
    }
}
