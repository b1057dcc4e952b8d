//! Coercion of input values (JSON values, CSV fields) to SQL column types, per spec §2.3.
//!
//! A coerced value is a [`Cell`]: a small `Copy` value that either holds the result or
//! points at its text (in the record itself, or in a per-batch scratch buffer), so a
//! record's cells can be staged and then either committed to the column builders or
//! thrown away when another column of the same record fails.

use crate::time::{Millis, parse_timestamp};
use crate::types::SqlType;

use super::json::{Doc, Kind, unescape_into};

/// How values are coerced into one column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Target {
    Int {
        min: i64,
        max: i64,
    },
    Decimal {
        precision: u8,
        scale: i8,
    },
    Real,
    Double,
    /// CHAR/VARCHAR: truncated to `max` characters; CHAR is blank-padded to `max`.
    Text {
        max: usize,
        pad: bool,
    },
    Bool,
    Date,
    Time,
    Timestamp,
    /// BINARY/VARBINARY: truncated to `max` bytes; BINARY is zero-padded to `max`.
    Binary {
        max: usize,
        pad: bool,
    },
}

impl Target {
    pub fn of(t: &SqlType) -> Result<Target, String> {
        Ok(match t {
            SqlType::TinyInt => Target::Int {
                min: i8::MIN as i64,
                max: i8::MAX as i64,
            },
            SqlType::SmallInt => Target::Int {
                min: i16::MIN as i64,
                max: i16::MAX as i64,
            },
            SqlType::Integer => Target::Int {
                min: i32::MIN as i64,
                max: i32::MAX as i64,
            },
            SqlType::BigInt => Target::Int {
                min: i64::MIN,
                max: i64::MAX,
            },
            SqlType::Decimal { precision, scale } => {
                if *precision == 0 || *precision > 38 || *scale < 0 || *scale as u8 > *precision {
                    return Err(format!("invalid type {t}: need 0 <= scale <= precision <= 38"));
                }
                Target::Decimal {
                    precision: *precision,
                    scale: *scale,
                }
            }
            SqlType::Real => Target::Real,
            SqlType::Double => Target::Double,
            SqlType::Char(n) => Target::Text {
                max: *n as usize,
                pad: true,
            },
            SqlType::Varchar(n) => Target::Text {
                max: *n as usize,
                pad: false,
            },
            SqlType::Boolean => Target::Bool,
            SqlType::Date => Target::Date,
            SqlType::Time => Target::Time,
            SqlType::Timestamp => Target::Timestamp,
            SqlType::Binary(n) => Target::Binary {
                max: *n as usize,
                pad: true,
            },
            SqlType::Varbinary(n) => Target::Binary {
                max: *n as usize,
                pad: false,
            },
        })
    }

    pub fn is_text(&self) -> bool {
        matches!(self, Target::Text { .. })
    }
}

/// A coerced value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Cell {
    Null,
    /// Integers of every width, DATE (days), TIME (ms of day), TIMESTAMP (ms).
    Int(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    /// DECIMAL: the unscaled value.
    Dec(i128),
    /// Text: a byte range of the record's own text.
    Src(u32, u32),
    /// Text: a byte range of [`Scratch::text`].
    Txt(u32, u32),
    /// Bytes: a byte range of [`Scratch::bin`].
    Bin(u32, u32),
}

/// Buffers for values that are not slices of the record (unescaped, padded, decoded).
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    pub text: String,
    pub bin: Vec<u8>,
    pub tmp: String,
}

impl Scratch {
    pub fn clear(&mut self) {
        self.text.clear();
        self.bin.clear();
    }
}

// ---------------------------------------------------------------------------------------
// Exact decimal numbers
// ---------------------------------------------------------------------------------------

/// An exact decimal `(-1)^neg * mant * 10^exp`; `mant` has no trailing zeros (or is 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Dec {
    pub neg: bool,
    pub mant: u128,
    pub exp: i64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum NumErr {
    Syntax,
    /// More than 38 significant digits: out of range for every exact type.
    TooManyDigits,
}

/// Checks the decimal number syntax accepted in strings (a superset of JSON numbers):
/// `[+-]? (d+ (. d*)? | . d+) ([eE] [+-]? d+)?`.
fn decimal_syntax(b: &[u8]) -> bool {
    let mut i = 0;
    if let Some(b'+' | b'-') = b.first() {
        i = 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - int_start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let f = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        digits += i - f;
    }
    if digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        let e = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == e {
            return false;
        }
    }
    i == b.len()
}

pub(crate) fn parse_decimal(s: &str) -> Result<Dec, NumErr> {
    let b = s.as_bytes();
    if !decimal_syntax(b) {
        return Err(NumErr::Syntax);
    }
    let mut i = 0;
    let neg = match b.first() {
        Some(b'-') => {
            i = 1;
            true
        }
        Some(b'+') => {
            i = 1;
            false
        }
        _ => false,
    };
    let mut mant: u128 = 0;
    let mut ndig: u32 = 0;
    let mut zeros: i64 = 0;
    let mut frac: i64 = 0;
    let mut in_frac = false;
    while i < b.len() {
        let c = b[i];
        if c == b'.' {
            in_frac = true;
        } else if c.is_ascii_digit() {
            if in_frac {
                frac += 1;
            }
            let d = (c - b'0') as u128;
            if d == 0 {
                if mant != 0 {
                    zeros += 1;
                }
            } else {
                let need = zeros as u32 + 1;
                if ndig + need > 38 {
                    return Err(NumErr::TooManyDigits);
                }
                mant = mant * 10u128.pow(need) + d;
                ndig += need;
                zeros = 0;
            }
        } else {
            break;
        }
        i += 1;
    }
    let mut exp: i64 = 0;
    if i < b.len() {
        // The exponent (syntax already checked).
        i += 1;
        let eneg = b.get(i) == Some(&b'-');
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        for &c in &b[i..] {
            exp = (exp * 10 + (c - b'0') as i64).min(1_000_000_000);
        }
        if eneg {
            exp = -exp;
        }
    }
    if mant == 0 {
        return Ok(Dec { neg, mant: 0, exp: 0 });
    }
    Ok(Dec {
        neg,
        mant,
        exp: exp + zeros - frac,
    })
}

impl Dec {
    fn to_int(self, min: i64, max: i64) -> Result<i64, &'static str> {
        if self.mant == 0 {
            return Ok(0);
        }
        if self.exp < 0 {
            return Err("has a fractional part");
        }
        if self.exp > 38 {
            return Err("out of range");
        }
        let v = self
            .mant
            .checked_mul(10u128.pow(self.exp as u32))
            .ok_or("out of range")?;
        let v = i128::try_from(v).map_err(|_| "out of range")?;
        let v = if self.neg { -v } else { v };
        if v < min as i128 || v > max as i128 {
            return Err("out of range");
        }
        Ok(v as i64)
    }

    /// The unscaled value at `scale`. Fractional digits beyond the scale are rounded
    /// half away from zero, not rejected: KDA (SQLstream's JSON ingestion rules) rejects
    /// a number for a DECIMAL column only when it is beyond the type's range, so `12.99`
    /// into a bare DECIMAL (scale 0) is 13.
    fn to_decimal(self, precision: u8, scale: i8) -> Result<i128, &'static str> {
        if self.mant == 0 {
            return Ok(0);
        }
        let e = self.exp + scale as i64;
        if e > 38 {
            return Err("out of range");
        }
        let v = if e >= 0 {
            self.mant.checked_mul(10u128.pow(e as u32)).ok_or("out of range")?
        } else if e < -38 {
            // mant < 10^38: less than half a unit of the scale.
            0
        } else {
            let unit = 10u128.pow((-e) as u32);
            let (whole, rest) = (self.mant / unit, self.mant % unit);
            // rest < unit <= 10^38, so 2 * rest fits in u128.
            whole + u128::from(2 * rest >= unit)
        };
        if v >= 10u128.pow(precision as u32) {
            return Err("out of range");
        }
        let v = v as i128;
        Ok(if self.neg { -v } else { v })
    }
}

// ---------------------------------------------------------------------------------------
// Text → value
// ---------------------------------------------------------------------------------------

/// Numbers: fast path for plain integers, then exact decimal conversion.
fn int_from_number_text(s: &str, min: i64, max: i64) -> Result<i64, &'static str> {
    if let Ok(v) = s.parse::<i64>() {
        return if v < min || v > max { Err("out of range") } else { Ok(v) };
    }
    match parse_decimal(s) {
        Ok(d) => d.to_int(min, max),
        Err(NumErr::TooManyDigits) => Err("out of range"),
        Err(NumErr::Syntax) => Err("is not a number"),
    }
}

fn decimal_from_number_text(s: &str, precision: u8, scale: i8) -> Result<i128, &'static str> {
    match parse_decimal(s) {
        Ok(d) => d.to_decimal(precision, scale),
        Err(NumErr::TooManyDigits) => Err("out of range"),
        Err(NumErr::Syntax) => Err("is not a number"),
    }
}

/// Java's names for the special values (Double.toString / parseDouble). KDA's Java
/// engine read them, but SQL has no such numbers: DataFusion orders NaN above every
/// number (so `NaN > 10` holds) where Java says false, and JSON has no way to write
/// them back. sluice refuses them at the input, so the record goes to `error_stream`
/// with the reason instead of flowing on with a value no comparison treats alike.
fn special_float(s: &str) -> Option<&'static str> {
    match s {
        "NaN" => Some("is NaN, which SQL has no number for"),
        "Infinity" | "+Infinity" | "-Infinity" => Some("is infinite, which SQL has no number for"),
        _ => None,
    }
}

fn f64_from_text(s: &str) -> Result<f64, &'static str> {
    if let Some(why) = special_float(s) {
        return Err(why);
    }
    if !decimal_syntax(s.as_bytes()) {
        return Err("is not a number");
    }
    let v: f64 = s.parse().map_err(|_| "is not a number")?;
    if v.is_infinite() {
        Err("out of range for DOUBLE")
    } else {
        Ok(v)
    }
}

fn f32_from_text(s: &str) -> Result<f32, &'static str> {
    if let Some(why) = special_float(s) {
        return Err(why);
    }
    if !decimal_syntax(s.as_bytes()) {
        return Err("is not a number");
    }
    let v: f32 = s.parse().map_err(|_| "is not a number")?;
    if v.is_infinite() {
        Err("out of range for REAL")
    } else {
        Ok(v)
    }
}

const MS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 {
                29
            } else {
                28
            }
        }
    }
}

#[inline]
fn digits_at(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let mut v = 0u32;
    for &c in b.get(at..at + n)? {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u32;
    }
    Some(v)
}

/// Fast path for the canonical forms `yyyy-MM-dd` and `yyyy-MM-dd[ T]HH:mm:ss[.f{1,9}][Z]`;
/// None means "not canonical", and the caller falls back to [`parse_timestamp`], whose
/// results this matches exactly on every input it accepts.
fn fast_timestamp(s: &str) -> Option<Millis> {
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y = digits_at(b, 0, 4)? as i64;
    let m = digits_at(b, 5, 2)?;
    let d = digits_at(b, 8, 2)?;
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    let day_ms = days_from_civil(y, m, d) * MS_PER_DAY;
    let b = b.strip_suffix(b"Z").unwrap_or(b);
    if b.len() == 10 {
        return Some(day_ms);
    }
    if b.len() < 19 || (b[10] != b' ' && b[10] != b'T') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let hh = digits_at(b, 11, 2)?;
    let mi = digits_at(b, 14, 2)?;
    let ss = digits_at(b, 17, 2)?;
    if hh > 23 || mi > 59 || ss > 59 {
        return None;
    }
    let mut ms = 0i64;
    if b.len() > 19 {
        if b[19] != b'.' {
            return None;
        }
        let frac = &b[20..];
        if frac.is_empty() || frac.len() > 9 || !frac.iter().all(u8::is_ascii_digit) {
            return None;
        }
        for (i, &c) in frac.iter().take(3).enumerate() {
            ms += (c - b'0') as i64 * 10i64.pow(2 - i as u32);
        }
    }
    Some(day_ms + (hh as i64 * 3600 + mi as i64 * 60 + ss as i64) * 1000 + ms)
}

pub(crate) fn timestamp_from_text(s: &str) -> Option<Millis> {
    fast_timestamp(s).or_else(|| parse_timestamp(s))
}

fn date_from_text(s: &str) -> Option<i64> {
    let ms = timestamp_from_text(s)?;
    let days = ms.div_euclid(MS_PER_DAY);
    i32::try_from(days).ok().map(|d| d as i64)
}

fn time_from_text(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    // HH:mm[:ss[.f...]]
    if b.len() >= 5 && b[2] == b':' {
        let hh = digits_at(b, 0, 2)?;
        let mi = digits_at(b, 3, 2)?;
        let mut ms = 0i64;
        let mut ss = 0;
        if b.len() > 5 {
            if b.len() < 8 || b[5] != b':' {
                return None;
            }
            ss = digits_at(b, 6, 2)?;
            if b.len() > 8 {
                if b[8] != b'.' {
                    return None;
                }
                let frac = &b[9..];
                if frac.is_empty() || frac.len() > 9 || !frac.iter().all(u8::is_ascii_digit) {
                    return None;
                }
                for (i, &c) in frac.iter().take(3).enumerate() {
                    ms += (c - b'0') as i64 * 10i64.pow(2 - i as u32);
                }
            }
        }
        if hh > 23 || mi > 59 || ss > 59 {
            return None;
        }
        return Some((hh as i64 * 3600 + mi as i64 * 60 + ss as i64) * 1000 + ms);
    }
    // A full timestamp: keep its time of day.
    timestamp_from_text(s).map(|ms| ms.rem_euclid(MS_PER_DAY))
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// `X'3F67'` (even number of hex digits) or standard base64 (spec §2.1).
fn binary_from_text(s: &str, out: &mut Vec<u8>) -> Result<(), &'static str> {
    let b = s.as_bytes();
    if b.len() >= 3 && (b[0] == b'X' || b[0] == b'x') && b[1] == b'\'' && b[b.len() - 1] == b'\'' {
        let hex = &b[2..b.len() - 1];
        if !hex.len().is_multiple_of(2) {
            return Err("is not a valid binary literal (odd number of hex digits)");
        }
        for pair in hex.chunks(2) {
            match (hex_digit(pair[0]), hex_digit(pair[1])) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => return Err("is not a valid binary literal"),
            }
        }
        return Ok(());
    }
    base64_decode(b, out).ok_or("is neither an X'..' literal nor base64")
}

fn base64_decode(b: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let b = b.strip_suffix(b"==").or_else(|| b.strip_suffix(b"=")).unwrap_or(b);
    if b.len() % 4 == 1 {
        return None;
    }
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    for chunk in b.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(())
}

/// The byte length of the first `max` characters of `s`.
#[inline]
fn truncated_len(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    match s.char_indices().nth(max) {
        Some((i, _)) => i,
        None => s.len(),
    }
}

/// Text for a CHAR/VARCHAR column. `src` is the offset of `s` in the record's text when
/// `s` is a slice of it (then no copy is made unless CHAR padding is needed).
fn text_cell(s: &str, src: Option<u32>, max: usize, pad: bool, sc: &mut Scratch) -> Cell {
    let len = truncated_len(s, max);
    let s = &s[..len];
    if pad {
        let chars = if s.is_ascii() { s.len() } else { s.chars().count() };
        if chars < max {
            let start = sc.text.len() as u32;
            sc.text.push_str(s);
            sc.text.extend(std::iter::repeat_n(' ', max - chars));
            return Cell::Txt(start, sc.text.len() as u32);
        }
    }
    match src {
        Some(off) => Cell::Src(off, off + len as u32),
        None => {
            let start = sc.text.len() as u32;
            sc.text.push_str(s);
            Cell::Txt(start, sc.text.len() as u32)
        }
    }
}

fn bin_cell(start: usize, max: usize, pad: bool, sc: &mut Scratch) -> Cell {
    sc.bin.truncate(start + max.min(sc.bin.len() - start));
    if pad && sc.bin.len() - start < max {
        sc.bin.resize(start + max, 0);
    }
    Cell::Bin(start as u32, sc.bin.len() as u32)
}

/// Coerces a string value (a JSON string or a CSV field) per the "string" row of §2.3.
/// The error is the reason; the caller names the column and the value.
pub(crate) fn coerce_str(t: Target, s: &str, src: Option<u32>, sc: &mut Scratch) -> Result<Cell, &'static str> {
    Ok(match t {
        Target::Text { max, pad } => text_cell(s, src, max, pad, sc),
        // Java's Boolean.parseBoolean: "true" in any case, everything else false.
        Target::Bool => Cell::Bool(s.eq_ignore_ascii_case("true")),
        Target::Int { min, max } => Cell::Int(int_from_number_text(s.trim(), min, max)?),
        Target::Decimal { precision, scale } => Cell::Dec(decimal_from_number_text(s.trim(), precision, scale)?),
        Target::Real => Cell::F32(f32_from_text(s.trim())?),
        Target::Double => Cell::F64(f64_from_text(s.trim())?),
        Target::Timestamp => Cell::Int(timestamp_from_text(s).ok_or("is not a recognised timestamp")?),
        Target::Date => Cell::Int(date_from_text(s.trim()).ok_or("is not a recognised date")?),
        Target::Time => Cell::Int(time_from_text(s.trim()).ok_or("is not a recognised time")?),
        Target::Binary { max, pad } => {
            let start = sc.bin.len();
            if let Err(e) = binary_from_text(s.trim(), &mut sc.bin) {
                sc.bin.truncate(start);
                return Err(e);
            }
            bin_cell(start, max, pad, sc)
        }
    })
}

/// Coerces a CSV field: an empty field is NULL for every type but CHAR/VARCHAR.
#[inline]
pub(crate) fn coerce_field(t: Target, s: &str, src: u32, sc: &mut Scratch) -> Result<Cell, &'static str> {
    if s.is_empty() && !t.is_text() {
        return Ok(Cell::Null);
    }
    coerce_str(t, s, Some(src), sc)
}

/// Coerces the JSON value at `node` (None: the path matched nothing → NULL).
pub(crate) fn coerce_json(
    t: Target,
    doc: &Doc,
    node: Option<u32>,
    text: &str,
    sc: &mut Scratch,
) -> Result<Cell, &'static str> {
    let Some(i) = node else { return Ok(Cell::Null) };
    let n = *doc.node(i);
    let raw = text.get(n.start as usize..n.end as usize).unwrap_or("");
    match n.kind {
        Kind::Null => Ok(Cell::Null),
        Kind::True | Kind::False => {
            let v = n.kind == Kind::True;
            Ok(match t {
                Target::Int { .. } => Cell::Int(v as i64),
                Target::Decimal { precision, scale } => {
                    let d = Dec {
                        neg: false,
                        mant: v as u128,
                        exp: 0,
                    };
                    Cell::Dec(d.to_decimal(precision, scale)?)
                }
                Target::Real => Cell::F32(v as u8 as f32),
                Target::Double => Cell::F64(v as u8 as f64),
                Target::Bool => Cell::Bool(v),
                Target::Text { max, pad } => text_cell(if v { "true" } else { "false" }, None, max, pad, sc),
                Target::Binary { max, pad } => {
                    let start = sc.bin.len();
                    sc.bin.push(v as u8);
                    bin_cell(start, max, pad, sc)
                }
                Target::Date | Target::Time | Target::Timestamp => return Err("is a boolean"),
            })
        }
        Kind::Number => Ok(match t {
            Target::Int { min, max } => Cell::Int(int_from_number_text(raw, min, max)?),
            Target::Decimal { precision, scale } => Cell::Dec(decimal_from_number_text(raw, precision, scale)?),
            Target::Real => Cell::F32(f32_from_text(raw)?),
            Target::Double => Cell::F64(f64_from_text(raw)?),
            Target::Bool => Cell::Bool(match parse_decimal(raw) {
                Ok(d) => d.mant != 0,
                Err(_) => true,
            }),
            Target::Text { max, pad } => text_cell(raw, Some(n.start), max, pad, sc),
            Target::Binary { .. } => return Err("is a number"),
            Target::Date | Target::Time | Target::Timestamp => return Err("is a number"),
        }),
        Kind::String => {
            if !n.escaped {
                return coerce_str(t, raw, Some(n.start), sc);
            }
            let mut tmp = std::mem::take(&mut sc.tmp);
            tmp.clear();
            unescape_into(raw, &mut tmp);
            let r = coerce_str(t, &tmp, None, sc);
            sc.tmp = tmp;
            r
        }
        Kind::Array | Kind::Object => match t {
            Target::Text { max, pad } => Ok(text_cell(raw, Some(n.start), max, pad, sc)),
            _ => Err(if n.kind == Kind::Array {
                "is an array"
            } else {
                "is an object"
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_decimals() {
        assert_eq!(
            parse_decimal("123.40").unwrap(),
            Dec {
                neg: false,
                mant: 1234,
                exp: -1
            }
        );
        assert_eq!(
            parse_decimal("-0.000").unwrap(),
            Dec {
                neg: true,
                mant: 0,
                exp: 0
            }
        );
        assert_eq!(
            parse_decimal("1e3").unwrap(),
            Dec {
                neg: false,
                mant: 1,
                exp: 3
            }
        );
        assert_eq!(
            parse_decimal("+1200").unwrap(),
            Dec {
                neg: false,
                mant: 12,
                exp: 2
            }
        );
        assert_eq!(
            parse_decimal(".5").unwrap(),
            Dec {
                neg: false,
                mant: 5,
                exp: -1
            }
        );
        assert_eq!(
            parse_decimal("5.").unwrap(),
            Dec {
                neg: false,
                mant: 5,
                exp: 0
            }
        );
        assert_eq!(
            parse_decimal("1.5E-2").unwrap(),
            Dec {
                neg: false,
                mant: 15,
                exp: -3
            }
        );
        assert_eq!(
            parse_decimal("0000000000000000000000000000000000000000001")
                .unwrap()
                .mant,
            1
        );
        assert_eq!(
            parse_decimal("1.0000000000000000000000000000000000000000").unwrap(),
            Dec {
                neg: false,
                mant: 1,
                exp: 0
            }
        );
        assert_eq!(
            parse_decimal("123456789012345678901234567890123456789"),
            Err(NumErr::TooManyDigits)
        );
        for bad in ["", ".", "-", "1e", "e5", "1.2.3", "12a", "--1", " 1", "0x10", "NaN"] {
            assert_eq!(parse_decimal(bad), Err(NumErr::Syntax), "{bad:?}");
        }
    }

    #[test]
    fn integer_conversion_checks_range_and_precision() {
        let i8r = (i8::MIN as i64, i8::MAX as i64);
        assert_eq!(int_from_number_text("127", i8r.0, i8r.1), Ok(127));
        assert_eq!(int_from_number_text("-128", i8r.0, i8r.1), Ok(-128));
        assert!(int_from_number_text("128", i8r.0, i8r.1).is_err());
        assert!(int_from_number_text("-129", i8r.0, i8r.1).is_err());
        assert_eq!(int_from_number_text("1.0e2", i8r.0, i8r.1), Ok(100));
        assert_eq!(
            int_from_number_text("123.4", i64::MIN, i64::MAX),
            Err("has a fractional part")
        );
        assert_eq!(
            int_from_number_text("9223372036854775807", i64::MIN, i64::MAX),
            Ok(i64::MAX)
        );
        assert_eq!(
            int_from_number_text("-9223372036854775808", i64::MIN, i64::MAX),
            Ok(i64::MIN)
        );
        assert!(int_from_number_text("9223372036854775808", i64::MIN, i64::MAX).is_err());
        assert!(int_from_number_text("1e30", i64::MIN, i64::MAX).is_err());
        assert!(int_from_number_text("1e999999999999", i64::MIN, i64::MAX).is_err());
        assert_eq!(
            int_from_number_text("1e-999999999999", i64::MIN, i64::MAX),
            Err("has a fractional part")
        );
        assert_eq!(int_from_number_text("0e999999", i64::MIN, i64::MAX), Ok(0));
    }

    #[test]
    fn decimal_conversion() {
        assert_eq!(decimal_from_number_text("123.45", 5, 2), Ok(12345));
        assert_eq!(decimal_from_number_text("-1.5", 5, 2), Ok(-150));
        assert_eq!(decimal_from_number_text("1.500", 5, 2), Ok(150));
        // More fractional digits than the scale: rounded half away from zero.
        assert_eq!(decimal_from_number_text("1.005", 5, 2), Ok(101));
        assert_eq!(decimal_from_number_text("1.0049", 5, 2), Ok(100));
        assert_eq!(decimal_from_number_text("-1.005", 5, 2), Ok(-101));
        assert_eq!(decimal_from_number_text("12.99", 18, 0), Ok(13));
        assert_eq!(decimal_from_number_text("12.49", 18, 0), Ok(12));
        assert_eq!(decimal_from_number_text("-0.5", 18, 0), Ok(-1));
        assert_eq!(decimal_from_number_text("0.4", 18, 0), Ok(0));
        assert_eq!(decimal_from_number_text("1.5e-40", 18, 0), Ok(0));
        assert_eq!(decimal_from_number_text("5e-39", 38, 38), Ok(1));
        assert_eq!(decimal_from_number_text("1234.5678e-2", 4, 1), Ok(123));
        // Rounding may carry into one more digit than the precision allows.
        assert_eq!(decimal_from_number_text("999.995", 5, 2), Err("out of range"));
        assert_eq!(decimal_from_number_text("999.994", 5, 2), Ok(99999));
        assert!(decimal_from_number_text("1000", 5, 2).is_err());
        assert_eq!(decimal_from_number_text("999.99", 5, 2), Ok(99999));
        assert_eq!(
            decimal_from_number_text("99999999999999999999999999999999999999", 38, 0),
            Ok(99999999999999999999999999999999999999)
        );
    }

    #[test]
    fn floats() {
        assert_eq!(f32_from_text("0.1"), Ok(0.1f32));
        assert_eq!(f64_from_text("-2.5e-3"), Ok(-0.0025));
        assert!(f32_from_text("1e39").is_err());
        assert!(f64_from_text("1e400").is_err());
        // NaN and the infinities are refused (issue 13's decision, see special_float).
        assert_eq!(f64_from_text("NaN"), Err("is NaN, which SQL has no number for"));
        assert_eq!(f32_from_text("NaN"), Err("is NaN, which SQL has no number for"));
        assert_eq!(
            f64_from_text("-Infinity"),
            Err("is infinite, which SQL has no number for")
        );
        assert!(f64_from_text("inf").is_err());
        assert!(f64_from_text("abc").is_err());
    }

    #[test]
    fn fast_timestamps_match_the_reference_parser() {
        for s in [
            "2024-03-01 12:00:09.999",
            "2024-03-01T12:00:09.999123",
            "2024-03-01T12:00:09.9991Z",
            "2024-03-01",
            "2024-02-29",
            "1992-02-14 18:35:44.0",
            "1969-12-31 23:59:59.999",
            "0001-01-01 00:00:00",
            "9999-12-31 23:59:59.999999999",
            "2000-02-29 00:00:00.1",
            "1900-03-01T00:00:00",
            "2024-03-01Z",
        ] {
            assert_eq!(fast_timestamp(s), parse_timestamp(s), "{s}");
            assert!(fast_timestamp(s).is_some(), "{s}");
        }
        for s in [
            "2023-02-29",
            "2024-13-01",
            "2024-03-01 24:00:00",
            "2024-03-01 12:00",
            " 2024-03-01",
            "2024-03-01 12:00:00.",
        ] {
            assert_eq!(fast_timestamp(s), None, "{s}");
        }
        assert_eq!(
            timestamp_from_text("2024-03-01 12:00"),
            parse_timestamp("2024-03-01 12:00")
        );
        assert!(timestamp_from_text("2023-02-29").is_none());
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(date_from_text("1970-01-02"), Some(1));
        assert_eq!(date_from_text("1969-12-31 23:00:00"), Some(-1));
        assert_eq!(time_from_text("01:02:03.5"), Some(3_723_500));
        assert_eq!(time_from_text("01:02"), Some(3_720_000));
        assert_eq!(time_from_text("2024-01-01 00:00:01.000"), Some(1000));
        assert_eq!(time_from_text("25:00:00"), None);
        assert_eq!(time_from_text("1:2:3"), None);
    }

    #[test]
    fn binaries() {
        let mut out = Vec::new();
        binary_from_text("X'3F67'", &mut out).unwrap();
        assert_eq!(out, vec![0x3f, 0x67]);
        out.clear();
        assert!(binary_from_text("X'3F6'", &mut out).is_err());
        out.clear();
        binary_from_text("aGVsbG8=", &mut out).unwrap();
        assert_eq!(out, b"hello");
        out.clear();
        binary_from_text("aGk", &mut out).unwrap();
        assert_eq!(out, b"hi");
        out.clear();
        assert!(binary_from_text("not base64!", &mut out).is_err());
    }

    #[test]
    fn text_truncation_counts_characters() {
        let mut sc = Scratch::default();
        assert_eq!(text_cell("héllo", Some(10), 3, false, &mut sc), Cell::Src(10, 14));
        assert_eq!(text_cell("ab", Some(0), 4, true, &mut sc), Cell::Txt(0, 4));
        assert_eq!(&sc.text, "ab  ");
        assert_eq!(text_cell("abcdef", None, 0, false, &mut sc), Cell::Txt(4, 4));
    }

    proptest::proptest! {
        #[test]
        fn fast_timestamp_never_disagrees(s in "[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,10})?)?Z?") {
            if let Some(v) = fast_timestamp(&s) {
                proptest::prop_assert_eq!(Some(v), parse_timestamp(&s), "{}", s);
            }
        }

        #[test]
        fn integer_parse_agrees_with_i64(v in proptest::prelude::any::<i64>()) {
            proptest::prop_assert_eq!(parse_decimal(&v.to_string()).unwrap().to_int(i64::MIN, i64::MAX), Ok(v));
        }
    }
}
