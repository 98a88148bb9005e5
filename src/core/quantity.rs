//! Kubernetes resource quantities, parsed and formatted exactly like apimachinery's
//! `resource.Quantity` (`staging/src/k8s.io/apimachinery/pkg/api/resource/quantity.go`).

use std::fmt;
use std::str::FromStr;

/// The suffix family a quantity is formatted with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `Ki`, `Mi`, ... `Ei`
    BinarySI,
    /// `n`, `u`, `m`, ``, `k`, `M`, ... `E`
    DecimalSI,
    /// `e3`, `E6`, ...
    DecimalExponent,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {value:?}")]
    Format { value: String },
    #[error("unable to parse quantity's suffix: {value:?}")]
    Suffix { value: String },
    #[error("quantity {value:?} is out of range")]
    Range { value: String },
}

/// A fixed-point decimal quantity. Equality and ordering are semantic (by value, not by format).
#[derive(Debug, Clone, Copy)]
pub struct Quantity {
    // filled in by the quantity implementation
    _todo: (),
}

impl Quantity {
    pub fn parse(_s: &str) -> Result<Self, QuantityError> {
        todo!()
    }
    /// `m` millis, formatted DecimalSI (cpu).
    pub fn from_milli(_m: i64) -> Self {
        todo!()
    }
    /// `b` units, formatted BinarySI (memory bytes).
    pub fn from_bytes(_b: i64) -> Self {
        todo!()
    }
    /// `v` units, formatted DecimalSI.
    pub fn from_int(_v: i64) -> Self {
        todo!()
    }
    pub fn zero() -> Self {
        todo!()
    }
    /// apimachinery `Value()`: rounded up to an integer, saturating at i64 bounds.
    pub fn value(&self) -> i64 {
        todo!()
    }
    /// apimachinery `MilliValue()`: value·1000 rounded up, saturating.
    pub fn milli_value(&self) -> i64 {
        todo!()
    }
    pub fn is_zero(&self) -> bool {
        todo!()
    }
    pub fn format(&self) -> Format {
        todo!()
    }
    /// Exact sum, keeping `self`'s format (apimachinery `Add`).
    pub fn add(&self, _other: &Quantity) -> Quantity {
        todo!()
    }
    /// Exact difference, keeping `self`'s format (apimachinery `Sub`).
    pub fn sub(&self, _other: &Quantity) -> Quantity {
        todo!()
    }
}

impl PartialEq for Quantity {
    fn eq(&self, _other: &Self) -> bool {
        todo!()
    }
}
impl Eq for Quantity {}
impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Quantity {
    fn cmp(&self, _other: &Self) -> std::cmp::Ordering {
        todo!()
    }
}
impl FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}
/// Canonical form, as apimachinery `String()`.
impl fmt::Display for Quantity {
    fn fmt(&self, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
        todo!()
    }
}
impl serde::Serialize for Quantity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de> serde::Deserialize<'de> for Quantity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Quantity::parse(&s).map_err(serde::de::Error::custom)
    }
}
