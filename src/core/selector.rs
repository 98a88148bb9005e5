//! `--pod-selector`: a Kubernetes label selector in its string form (`labels.Parse` of
//! apimachinery): comma-separated requirements `key`, `!key`, `key=value`, `key==value`,
//! `key!=value`, `key in (a,b)`, `key notin (a,b)`. The empty selector selects everything.

use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectorError {
    #[error("invalid pod selector {selector:?}: {detail}")]
    Invalid { selector: String, detail: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Exists(String),
    DoesNotExist(String),
    Equal(String, String),
    NotEqual(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A parsed label selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    text: String,
    requirements: Vec<Requirement>,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn valid_key(k: &str) -> bool {
    match k.split_once('/') {
        Some((prefix, name)) => {
            !prefix.is_empty()
                && prefix.len() <= 253
                && prefix.split('.').all(|l| {
                    !l.is_empty()
                        && l.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                })
                && valid_name(name)
        }
        None => valid_name(k),
    }
}

fn valid_value(v: &str) -> bool {
    v.is_empty() || valid_name(v)
}

/// Splits at commas outside parentheses.
fn split_requirements(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<LabelSelector, SelectorError> {
        let err = |detail: String| SelectorError::Invalid {
            selector: s.to_string(),
            detail,
        };
        let mut requirements = Vec::new();
        if s.trim().is_empty() {
            return Ok(LabelSelector::default());
        }
        for raw in split_requirements(s) {
            let r = raw.trim();
            let key_ok = |k: &str| -> Result<String, SelectorError> {
                if valid_key(k) {
                    Ok(k.to_string())
                } else {
                    Err(err(format!("invalid label key {k:?}")))
                }
            };
            let value_ok = |v: &str| -> Result<String, SelectorError> {
                if valid_value(v) {
                    Ok(v.to_string())
                } else {
                    Err(err(format!("invalid label value {v:?}")))
                }
            };
            let set = |rest: &str| -> Result<Vec<String>, SelectorError> {
                let inner = rest
                    .trim()
                    .strip_prefix('(')
                    .and_then(|x| x.strip_suffix(')'))
                    .ok_or_else(|| err(format!("{r:?}: a set must be written (a,b)")))?;
                inner.split(',').map(|v| value_ok(v.trim())).collect()
            };
            let req = if let Some(k) = r.strip_prefix('!') {
                Requirement::DoesNotExist(key_ok(k.trim())?)
            } else if let Some((k, v)) = r.split_once("!=") {
                Requirement::NotEqual(key_ok(k.trim())?, value_ok(v.trim())?)
            } else if let Some((k, v)) = r.split_once("==") {
                Requirement::Equal(key_ok(k.trim())?, value_ok(v.trim())?)
            } else if let Some((k, v)) = r.split_once('=') {
                Requirement::Equal(key_ok(k.trim())?, value_ok(v.trim())?)
            } else if let Some((k, rest)) = r.split_once(" notin ") {
                Requirement::NotIn(key_ok(k.trim())?, set(rest)?)
            } else if let Some((k, rest)) = r.split_once(" in ") {
                Requirement::In(key_ok(k.trim())?, set(rest)?)
            } else if r.is_empty() {
                return Err(err("empty requirement".into()));
            } else {
                Requirement::Exists(key_ok(r)?)
            };
            requirements.push(req);
        }
        Ok(LabelSelector {
            text: s.trim().to_string(),
            requirements,
        })
    }

    /// Selects every pod.
    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
            Requirement::Equal(k, v) => labels.get(k) == Some(v),
            Requirement::NotEqual(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
        })
    }
}

impl std::fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_and_matches_like_apimachinery() {
        let s = LabelSelector::parse(
            "resizelet.dev/resize=enabled, tier in (web, api),!legacy,env!=dev,team notin (x),app",
        )
        .unwrap();
        let ok = labels(&[
            ("resizelet.dev/resize", "enabled"),
            ("tier", "web"),
            ("env", "prod"),
            ("app", "a"),
        ]);
        assert!(s.matches(&ok));
        for (k, v) in [("tier", "db"), ("env", "dev"), ("team", "x")] {
            let mut l = ok.clone();
            l.insert(k.into(), v.into());
            assert!(!s.matches(&l), "{k}={v}");
        }
        let mut l = ok.clone();
        l.insert("legacy".into(), "".into());
        assert!(!s.matches(&l));
        let mut l = ok.clone();
        l.remove("app");
        assert!(!s.matches(&l));
        assert!(LabelSelector::parse("").unwrap().is_everything());
        assert!(LabelSelector::parse("").unwrap().matches(&BTreeMap::new()));
        assert!(LabelSelector::parse("a==b")
            .unwrap()
            .matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn bad_selectors_are_clear_errors() {
        for (s, want) in [
            ("a=b,", "empty requirement"),
            ("-a=b", "invalid label key \"-a\""),
            ("a=b c", "invalid label value \"b c\""),
            ("a in b", "a set must be written (a,b)"),
            ("Example.com/a=b", "invalid label key \"Example.com/a\""),
        ] {
            let e = LabelSelector::parse(s).unwrap_err().to_string();
            assert!(e.contains(want), "{s}: {e}");
            assert!(e.starts_with(&format!("invalid pod selector {s:?}")), "{e}");
        }
    }
}
