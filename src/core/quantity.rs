//! Kubernetes resource quantities, parsed and formatted exactly like apimachinery's
//! `resource.Quantity` (`staging/src/k8s.io/apimachinery/pkg/api/resource/quantity.go`).
//!
//! Representation: the exact value in nano-units (`i128`) plus the format. Like apimachinery,
//! parsing rounds values finer than 1n up (away from zero) to 1n, and caps BinarySI values at
//! 2^63−1. Values beyond 10^27 are refused (`Range`) instead of being carried as arbitrary
//! precision decimals.

use std::fmt;
use std::hash::{Hash, Hasher};
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

const NANO: i128 = 1_000_000_000;
/// Largest magnitude accepted, in nano-units (10^27 units).
const MAX_NANOS: i128 = 1_000_000_000_000_000_000_000_000_000_000_000_000;
/// apimachinery caps BinarySI quantities at `maxAllowed` = 2^63−1.
const MAX_BINARY_NANOS: i128 = (i64::MAX as i128) * NANO;

/// A fixed-point decimal quantity. Equality and ordering are semantic (by value, not by format).
#[derive(Debug, Clone, Copy)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

fn pow10(e: u32) -> Option<i128> {
    10i128.checked_pow(e)
}

/// `n / d` rounded away from zero (`inf.RoundUp`).
fn div_away(n: i128, d: i128) -> i128 {
    let q = n / d;
    if n % d != 0 {
        q + n.signum()
    } else {
        q
    }
}

fn saturate_i64(v: i128) -> i64 {
    v.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// Suffix → (base, exponent, format), as apimachinery's `suffixHandler.interpret`.
fn interpret_suffix(suffix: &str) -> Option<(u32, i32, Format)> {
    let dec = |e| Some((10, e, Format::DecimalSI));
    let bin = |e| Some((2, e, Format::BinarySI));
    match suffix {
        "" => dec(0),
        "n" => dec(-9),
        "u" => dec(-6),
        "m" => dec(-3),
        "k" => dec(3),
        "M" => dec(6),
        "G" => dec(9),
        "T" => dec(12),
        "P" => dec(15),
        "E" => dec(18),
        "Ki" => bin(10),
        "Mi" => bin(20),
        "Gi" => bin(30),
        "Ti" => bin(40),
        "Pi" => bin(50),
        "Ei" => bin(60),
        s if s.len() > 1 && (s.starts_with('e') || s.starts_with('E')) => {
            let e: i32 = s[1..].parse().ok()?;
            Some((10, e, Format::DecimalExponent))
        }
        _ => None,
    }
}

/// Splits like apimachinery's `parseQuantityString`: (negative, integer digits, fraction
/// digits, suffix).
fn split(s: &str) -> Option<(bool, &str, &str, &str)> {
    let b = s.as_bytes();
    let mut pos = 0;
    let mut negative = false;
    if let Some(&c) = b.first() {
        if c == b'-' || c == b'+' {
            negative = c == b'-';
            pos = 1;
        }
    }
    let digits = |from: usize| {
        b[from..]
            .iter()
            .position(|c| !c.is_ascii_digit())
            .map_or(b.len(), |p| from + p)
    };
    let int_end = digits(pos);
    let int = &s[pos..int_end];
    let mut frac = "";
    let mut end = int_end;
    if b.get(end) == Some(&b'.') {
        let frac_end = digits(end + 1);
        frac = &s[end + 1..frac_end];
        end = frac_end;
    }
    // resizelet refuses a number without any digit ("", "-", "."), which apimachinery reads as 0.
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    // suffix: letters from "eEinumkKMGTP", an optional sign, then digits only
    let suffix = &s[end..];
    let sb = suffix.as_bytes();
    let mut i = sb
        .iter()
        .position(|c| !b"eEinumkKMGTP".contains(c))
        .unwrap_or(sb.len());
    if i < sb.len() && (sb[i] == b'-' || sb[i] == b'+') {
        i += 1;
    }
    if sb[i..].iter().any(|c| !c.is_ascii_digit()) {
        return None;
    }
    Some((negative, int, frac, suffix))
}

impl Quantity {
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        let format_err = || QuantityError::Format {
            value: s.to_string(),
        };
        let range_err = || QuantityError::Range {
            value: s.to_string(),
        };
        let (negative, int, frac, suffix) = split(s).ok_or_else(format_err)?;
        let (base, exp, mut format) =
            interpret_suffix(suffix).ok_or_else(|| QuantityError::Suffix {
                value: s.to_string(),
            })?;
        // The digits as one integer N, value = N / 10^len(frac).
        let digits = format!("{int}{frac}");
        let digits = digits.trim_start_matches('0');
        if digits.len() > 38 {
            return Err(range_err());
        }
        let n: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| range_err())?
        };
        let frac_len = frac.len() as i64;
        // magnitude in nano-units
        let mut nanos = match base {
            10 => {
                let k = exp as i64 + 9 - frac_len;
                if n == 0 {
                    0
                } else if k >= 0 {
                    pow10(u32::try_from(k).map_err(|_| range_err())?)
                        .and_then(|p| n.checked_mul(p))
                        .ok_or_else(range_err)?
                } else {
                    match pow10(u32::try_from(-k).unwrap_or(u32::MAX)) {
                        Some(p) => div_away(n, p),
                        None => 1, // finer than anything representable: rounds up to 1n
                    }
                }
            }
            _ => {
                let scaled = n
                    .checked_mul(1i128 << exp)
                    .and_then(|v| v.checked_mul(NANO))
                    .ok_or_else(range_err)?;
                let p = pow10(frac_len as u32).ok_or_else(range_err)?;
                div_away(scaled, p)
            }
        };
        if format == Format::BinarySI {
            nanos = nanos.min(MAX_BINARY_NANOS);
            if nanos > 0 && nanos < NANO {
                format = Format::DecimalSI;
            }
        }
        if nanos > MAX_NANOS {
            return Err(range_err());
        }
        Ok(Quantity {
            nanos: if negative { -nanos } else { nanos },
            format,
        })
    }

    /// The text of a JSON quantity as apimachinery's `UnmarshalJSON` reads it: surrounding
    /// whitespace is trimmed before [`Quantity::parse`] (`" 1"` is 1; `"1 Mi"` stays an error).
    /// Bare JSON numbers arrive here as their decimal text.
    pub fn parse_json_text(s: &str) -> Result<Self, QuantityError> {
        Quantity::parse(s.trim())
    }

    /// `m` millis, formatted DecimalSI (cpu).
    pub fn from_milli(m: i64) -> Self {
        Quantity {
            nanos: m as i128 * 1_000_000,
            format: Format::DecimalSI,
        }
    }

    /// `b` units, formatted BinarySI (memory bytes).
    pub fn from_bytes(b: i64) -> Self {
        Quantity {
            nanos: b as i128 * NANO,
            format: Format::BinarySI,
        }
    }

    /// `v` units, formatted DecimalSI.
    pub fn from_int(v: i64) -> Self {
        Quantity {
            nanos: v as i128 * NANO,
            format: Format::DecimalSI,
        }
    }

    pub fn zero() -> Self {
        Quantity::from_int(0)
    }

    /// apimachinery `Value()`: rounded up (away from zero) to an integer, saturating.
    pub fn value(&self) -> i64 {
        saturate_i64(div_away(self.nanos, NANO))
    }

    /// apimachinery `MilliValue()`: value·1000 rounded up (away from zero), saturating.
    pub fn milli_value(&self) -> i64 {
        saturate_i64(div_away(self.nanos, 1_000_000))
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// Exact sum keeping `self`'s format; a zero `self` takes `other`'s (apimachinery `Add`).
    pub fn add(&self, other: &Quantity) -> Quantity {
        self.combined(other, self.nanos.saturating_add(other.nanos))
    }

    /// Exact difference keeping `self`'s format; a zero `self` takes `other`'s (apimachinery `Sub`).
    pub fn sub(&self, other: &Quantity) -> Quantity {
        self.combined(other, self.nanos.saturating_sub(other.nanos))
    }

    /// `nanos` in `self`'s format, or `other`'s when `self` is zero (apimachinery's `Add`/`Sub`).
    fn combined(&self, other: &Quantity, nanos: i128) -> Quantity {
        Quantity {
            nanos,
            format: if self.is_zero() {
                other.format
            } else {
                self.format
            },
        }
    }

    /// Canonical (number, suffix), as apimachinery `CanonicalizeBytes`.
    fn canonical(&self) -> (i128, String) {
        if self.nanos == 0 {
            return (0, String::new());
        }
        let mut format = self.format;
        if format == Format::BinarySI && (self.nanos.abs() < 1024 * NANO || self.nanos % NANO != 0)
        {
            // small or fractional binary values are shown in DecimalSI to avoid rounding
            format = Format::DecimalSI;
        }
        if format == Format::BinarySI {
            let mut amount = self.nanos / NANO;
            let mut exp = 0;
            while exp < 6 && amount % 1024 == 0 {
                amount /= 1024;
                exp += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][exp];
            return (amount, suffix.to_string());
        }
        let mut mantissa = self.nanos;
        let mut exp: i32 = -9;
        while mantissa % 10 == 0 {
            mantissa /= 10;
            exp += 1;
        }
        let r = exp.rem_euclid(3);
        mantissa *= 10i128.pow(r as u32);
        exp -= r;
        let suffix = match (format, exp) {
            (Format::DecimalSI, -9) => "n".to_string(),
            (Format::DecimalSI, -6) => "u".to_string(),
            (Format::DecimalSI, -3) => "m".to_string(),
            (_, 0) => String::new(),
            (Format::DecimalSI, 3) => "k".to_string(),
            (Format::DecimalSI, 6) => "M".to_string(),
            (Format::DecimalSI, 9) => "G".to_string(),
            (Format::DecimalSI, 12) => "T".to_string(),
            (Format::DecimalSI, 15) => "P".to_string(),
            (Format::DecimalSI, 18) => "E".to_string(),
            (_, e) => format!("e{e}"),
        };
        (mantissa, suffix)
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}
impl Eq for Quantity {}
impl Hash for Quantity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.nanos.hash(state)
    }
}
impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.nanos.cmp(&other.nanos)
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
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (number, suffix) = self.canonical();
        write!(f, "{number}{suffix}")
    }
}
impl serde::Serialize for Quantity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
/// Like apimachinery's `UnmarshalJSON`: a JSON string (surrounding whitespace trimmed) or a bare
/// JSON number.
impl<'de> serde::Deserialize<'de> for Quantity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quantity string or number")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Quantity, E> {
                Quantity::parse_json_text(v).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Quantity, E> {
                Quantity::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Quantity, E> {
                Quantity::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Quantity, E> {
                Quantity::parse(&v.to_string()).map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn canonical_strings() {
        // (input, canonical) — from apimachinery's quantity_test.go tables where they apply.
        for (input, want) in [
            ("0", "0"),
            ("0m", "0"),
            ("0Ki", "0"),
            ("1", "1"),
            ("100m", "100m"),
            ("1000m", "1"),
            ("0.5", "500m"),
            ("1.5", "1500m"),
            ("1000", "1k"),
            ("1k", "1k"),
            ("1001", "1001"),
            ("1e3", "1e3"),
            ("1E3", "1e3"),
            ("1e-3", "1e-3"),
            ("12E-3", "12e-3"),
            ("1Ki", "1Ki"),
            ("1024Ki", "1Mi"),
            ("1.5Gi", "1536Mi"),
            ("1500Mi", "1500Mi"),
            ("1Gi", "1Gi"),
            ("0.5Ki", "512"),
            ("1.5Ki", "1536"),
            ("1023", "1023"),
            ("100Mi", "100Mi"),
            ("129M", "129M"),
            ("129e6", "129e6"),
            ("0.1n", "1n"),
            ("1n", "1n"),
            ("1u", "1u"),
            ("1.001m", "1001u"),
            ("-1", "-1"),
            ("-100m", "-100m"),
            ("-1Gi", "-1Gi"),
            ("+5", "5"),
            ("007", "7"),
            ("1.", "1"),
            (".5", "500m"),
            ("1E", "1E"),
            ("4Ei", "4Ei"),
        ] {
            assert_eq!(q(input).to_string(), *want, "input {input}");
        }
        // BinarySI is capped at 2^63-1, which is no longer a whole multiple of 1024.
        assert_eq!(q("9Ei").value(), i64::MAX);
        assert_eq!(q("9Ei").to_string(), "9223372036854775807");
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            "", "-", ".", "1.2.3", "Mi", "1 Mi", "1mi", "1Gb", "--1", "1e", "1i", "1ki", "abc",
            "1Mii", "1e3e", "1,5", " 1",
        ] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} parsed");
        }
        assert!(matches!(
            Quantity::parse("1Mii"),
            Err(QuantityError::Suffix { .. })
        ));
        assert!(matches!(
            Quantity::parse("1 Mi"),
            Err(QuantityError::Format { .. })
        ));
        assert!(matches!(
            Quantity::parse("1Gb"),
            Err(QuantityError::Format { .. })
        ));
        assert!(Quantity::parse("1e40").is_err());
    }

    #[test]
    fn semantic_equality_and_values() {
        assert_eq!(q("1Gi"), q("1024Mi"));
        assert_eq!(q("1"), q("1000m"));
        assert_eq!(q("1e3"), q("1k"));
        assert!(q("1Gi") > q("1G"));
        assert_eq!(q("100m").milli_value(), 100);
        assert_eq!(q("100m").value(), 1); // rounds up
        assert_eq!(q("-100m").value(), -1); // away from zero
        assert_eq!(q("1.5Gi").value(), 1_610_612_736);
        assert_eq!(q("1n").milli_value(), 1);
        assert_eq!(Quantity::from_milli(1500).to_string(), "1500m");
        assert_eq!(Quantity::from_bytes(128 << 20).to_string(), "128Mi");
        assert_eq!(Quantity::from_bytes(100).to_string(), "100");
        assert_eq!(Quantity::from_int(2000).to_string(), "2k");
        assert!(Quantity::zero().is_zero());
        assert_eq!(q("1Gi").format(), Format::BinarySI);
        assert_eq!(q("0.5Ki").format(), Format::BinarySI);
        assert_eq!(q("1e3").format(), Format::DecimalExponent);
    }

    #[test]
    fn arithmetic_keeps_format() {
        let sum = q("1Gi").add(&q("512Mi"));
        assert_eq!(sum.to_string(), "1536Mi");
        let diff = q("1").sub(&q("250m"));
        assert_eq!(diff.to_string(), "750m");
        // a zero takes the other's format
        assert_eq!(Quantity::zero().add(&q("1Gi")).to_string(), "1Gi");
    }

    #[test]
    fn serde_round_trip() {
        let v: Quantity = serde_json::from_str("\"1536Mi\"").unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"1536Mi\"");
        assert!(serde_json::from_str::<Quantity>("\"1 Gi\"").is_err());
        // apimachinery's UnmarshalJSON: surrounding spaces trimmed, bare numbers accepted.
        for (json, want) in [
            ("\" 1\"", "1"),
            ("\"1 \"", "1"),
            ("1", "1"),
            ("-1", "-1"),
            ("1.5", "1500m"),
        ] {
            let v: Quantity = serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(v.to_string(), want, "{json}");
        }
    }

    fn arb_quantity() -> impl proptest::strategy::Strategy<Value = Quantity> {
        use proptest::prelude::*;
        (
            -10_000_000i64..10_000_000,
            prop::sample::select(vec![
                "", "m", "k", "M", "G", "Ki", "Mi", "Gi", "n", "u", "e3", "e-2",
            ]),
        )
            .prop_map(|(n, suffix)| Quantity::parse(&format!("{n}{suffix}")).unwrap())
    }

    proptest::proptest! {
        #[test]
        fn format_round_trips(a in arb_quantity()) {
            let s = a.to_string();
            let b = Quantity::parse(&s).unwrap();
            proptest::prop_assert_eq!(a, b);
            proptest::prop_assert_eq!(b.to_string(), s);
        }

        #[test]
        fn order_matches_milli_values(a in arb_quantity(), b in arb_quantity()) {
            if a.milli_value() < b.milli_value() {
                proptest::prop_assert!(a < b);
            }
            proptest::prop_assert_eq!(a.add(&b).sub(&b), a);
        }
    }
}
