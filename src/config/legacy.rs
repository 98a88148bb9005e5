//! `legacy-resize-status`: whether to write the deprecated `status.resize`, from the mode and
//! the API server's version.

use std::fmt;

use serde::Deserialize;

/// `legacy-resize-status`: `auto` decides from the API server's version at start-up; `true` /
/// `false` force it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyMode {
    Auto,
    On,
    Off,
}

impl std::str::FromStr for LegacyMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(LegacyMode::Auto),
            "true" => Ok(LegacyMode::On),
            "false" => Ok(LegacyMode::Off),
            _ => Err(format!("{s:?} is not one of auto, true, false")),
        }
    }
}

impl fmt::Display for LegacyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LegacyMode::Auto => "auto",
            LegacyMode::On => "true",
            LegacyMode::Off => "false",
        })
    }
}

impl<'de> Deserialize<'de> for LegacyMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum BoolOrText {
            Bool(bool),
            Text(String),
        }
        match BoolOrText::deserialize(d)? {
            BoolOrText::Bool(true) => Ok(LegacyMode::On),
            BoolOrText::Bool(false) => Ok(LegacyMode::Off),
            BoolOrText::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// The API server's version, as far as `/version` told (`major`, `minor`, `gitVersion`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVersion {
    pub major: String,
    pub minor: String,
    pub git_version: String,
}

impl ServerVersion {
    /// `(1, 32)` from `major: "1", minor: "32+"` (managed clusters add a `+`), else from
    /// `gitVersion` (`v1.32.6-eks-1`).
    pub fn major_minor(&self) -> Option<(u64, u64)> {
        let digits = |s: &str| -> Option<u64> {
            let d: String = s.chars().take_while(char::is_ascii_digit).collect();
            d.parse().ok()
        };
        match (digits(&self.major), digits(&self.minor)) {
            (Some(a), Some(b)) => Some((a, b)),
            _ => {
                let v = self.git_version.trim_start_matches('v');
                let mut parts = v.split('.');
                Some((digits(parts.next()?)?, digits(parts.next()?)?))
            }
        }
    }
}

/// Whether to write the legacy `status.resize`, and why (one line for the log and `check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyDecision {
    pub on: bool,
    pub reason: String,
}

/// `legacy-resize-status`: forced by `true`/`false`; `auto` is on when the API server is 1.32 or
/// older (it sets `status.resize: Proposed` on every /resize and only the field's writer clears
/// it), off from 1.33 (the field is deprecated and nothing sets it), and on when the version is
/// unknown (a stale `Proposed` is worse than a deprecated field written).
pub fn decide_legacy(mode: LegacyMode, server: Result<&ServerVersion, &str>) -> LegacyDecision {
    let d = |on: bool, reason: String| LegacyDecision { on, reason };
    match mode {
        LegacyMode::On => d(true, "legacy-resize-status = true".into()),
        LegacyMode::Off => d(false, "legacy-resize-status = false".into()),
        LegacyMode::Auto => match server {
            Err(e) => d(
                true,
                format!("auto: the API server's version is unknown ({e}); writing status.resize to be safe"),
            ),
            Ok(v) => match v.major_minor() {
                Some((1, minor)) if minor <= 32 => d(
                    true,
                    format!(
                        "auto: API server {} (<= 1.32) sets status.resize = Proposed on every resize; resizelet clears it when done",
                        v.git_version
                    ),
                ),
                Some(_) => d(
                    false,
                    format!(
                        "auto: API server {} (>= 1.33) reports resizes with pod conditions; status.resize is deprecated and not set",
                        v.git_version
                    ),
                ),
                None => d(
                    true,
                    format!(
                        "auto: cannot parse the API server's version {:?}; writing status.resize to be safe",
                        v.git_version
                    ),
                ),
            },
        },
    }
}
