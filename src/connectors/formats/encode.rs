//! Encoding output rows as KDA delivers them (spec §5.7, decision A12).
//!
//! JSON: one object per row, keyed by the stored column names, newline-terminated.
//! CSV: values in column order separated by the delimiter, newline-terminated; a value
//! holding the delimiter, a quote or a line break is quoted RFC-4180 style.
//!
//! Rendering: NULL → `null` / empty field; TIMESTAMP → `yyyy-MM-dd HH:mm:ss.SSS`;
//! DATE → `yyyy-MM-dd`; TIME → `HH:mm:ss.SSS`; REAL/DOUBLE → the shortest text that
//! round-trips in the column's own width (NaN/±∞ → JSON `null`, CSV `NaN`/`Infinity`);
//! DECIMAL → exact number text; BOOLEAN → `true`/`false`; BINARY → base64.

use std::io::Write;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Date64Array, Decimal128Array, Float32Array,
    Float64Array, Int8Array, Int16Array, Int32Array, Int64Array, LargeBinaryArray, LargeStringArray, RecordBatch,
    StringArray, StringViewArray, Time32MillisecondArray, UInt8Array, UInt16Array, UInt32Array, UInt64Array,
};
use datafusion::arrow::datatypes::{
    DataType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::error::SluiceError;
use crate::time::{Millis, format_timestamp};
use crate::types::ROWTIME;

/// Appends one JSON object per row (newline-terminated) keyed by the stored column names.
/// `batch` has the stream's declared columns and ROWTIME as its last column; ROWTIME is
/// NOT written unless `include_rowtime` is true (then it is written first, key "ROWTIME").
pub fn encode_json_lines(batch: &RecordBatch, include_rowtime: bool, out: &mut Vec<u8>) -> crate::Result<()> {
    let cols = columns(batch, include_rowtime)?;
    let keys: Vec<Vec<u8>> = cols
        .iter()
        .map(|(name, _)| {
            let mut k = serde_json::to_vec(name).unwrap_or_else(|_| b"\"\"".to_vec());
            k.push(b':');
            k
        })
        .collect();
    for row in 0..batch.num_rows() {
        out.push(b'{');
        for (i, ((_, col), key)) in cols.iter().zip(&keys).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(key);
            col.write_json(row, out)?;
        }
        out.extend_from_slice(b"}\n");
    }
    Ok(())
}

/// Values in column order, separated by `delimiter`, newline-terminated; ROWTIME
/// excluded unless `include_rowtime` (then it is the first field).
pub fn encode_csv(batch: &RecordBatch, delimiter: &str, include_rowtime: bool, out: &mut Vec<u8>) -> crate::Result<()> {
    if delimiter.is_empty() {
        return Err(SluiceError::config("the CSV output delimiter is empty"));
    }
    let cols = columns(batch, include_rowtime)?;
    let delim = delimiter.as_bytes();
    let mut tmp = Vec::with_capacity(64);
    for row in 0..batch.num_rows() {
        for (i, (_, col)) in cols.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(delim);
            }
            tmp.clear();
            col.write_text(row, &mut tmp)?;
            if needs_quotes(&tmp, delim) {
                out.push(b'"');
                for &b in &tmp {
                    if b == b'"' {
                        out.push(b'"');
                    }
                    out.push(b);
                }
                out.push(b'"');
            } else {
                out.extend_from_slice(&tmp);
            }
        }
        out.push(b'\n');
    }
    Ok(())
}

fn needs_quotes(v: &[u8], delim: &[u8]) -> bool {
    if v.iter().any(|&b| b == b'"' || b == b'\n' || b == b'\r') {
        return true;
    }
    if delim.len() == 1 {
        v.contains(&delim[0])
    } else {
        v.windows(delim.len()).any(|w| w == delim)
    }
}

/// The columns to write, in order, with their names.
fn columns(batch: &RecordBatch, include_rowtime: bool) -> crate::Result<Vec<(&str, Col<'_>)>> {
    let schema = batch.schema_ref();
    let n = batch.num_columns();
    let has_rowtime = n > 0 && schema.field(n - 1).name().eq_ignore_ascii_case(ROWTIME);
    if include_rowtime && !has_rowtime {
        return Err(SluiceError::runtime(
            "cannot write ROWTIME: the batch has no ROWTIME column",
        ));
    }
    let declared = if has_rowtime { n - 1 } else { n };
    let mut cols = Vec::with_capacity(n);
    if include_rowtime {
        cols.push((ROWTIME, Col::new(batch.column(n - 1))?));
    }
    for i in 0..declared {
        cols.push((schema.field(i).name().as_str(), Col::new(batch.column(i))?));
    }
    Ok(cols)
}

/// A typed view of one column.
enum Col<'a> {
    Null,
    Bool(&'a BooleanArray),
    I8(&'a Int8Array),
    I16(&'a Int16Array),
    I32(&'a Int32Array),
    I64(&'a Int64Array),
    U8(&'a UInt8Array),
    U16(&'a UInt16Array),
    U32(&'a UInt32Array),
    U64(&'a UInt64Array),
    F32(&'a Float32Array),
    F64(&'a Float64Array),
    Dec(&'a Decimal128Array, i8),
    Str(&'a StringArray),
    LargeStr(&'a LargeStringArray),
    View(&'a StringViewArray),
    Date32(&'a Date32Array),
    Date64(&'a Date64Array),
    Time(&'a Time32MillisecondArray),
    /// Timestamps of any unit: values and the divisor (or multiplier, if negative) to ms.
    Ts(&'a dyn Array, TimeUnit),
    Bin(&'a BinaryArray),
    LargeBin(&'a LargeBinaryArray),
    Other(&'a dyn Array, ArrayFormatter<'a>),
}

impl<'a> Col<'a> {
    fn new(a: &'a ArrayRef) -> crate::Result<Col<'a>> {
        macro_rules! dc {
            ($v:ident, $t:ty) => {
                a.as_any().downcast_ref::<$t>().map(Col::$v)
            };
        }
        let col = match a.data_type() {
            DataType::Null => Some(Col::Null),
            DataType::Boolean => dc!(Bool, BooleanArray),
            DataType::Int8 => dc!(I8, Int8Array),
            DataType::Int16 => dc!(I16, Int16Array),
            DataType::Int32 => dc!(I32, Int32Array),
            DataType::Int64 => dc!(I64, Int64Array),
            DataType::UInt8 => dc!(U8, UInt8Array),
            DataType::UInt16 => dc!(U16, UInt16Array),
            DataType::UInt32 => dc!(U32, UInt32Array),
            DataType::UInt64 => dc!(U64, UInt64Array),
            DataType::Float32 => dc!(F32, Float32Array),
            DataType::Float64 => dc!(F64, Float64Array),
            DataType::Decimal128(_, s) => a.as_any().downcast_ref::<Decimal128Array>().map(|d| Col::Dec(d, *s)),
            DataType::Utf8 => dc!(Str, StringArray),
            DataType::LargeUtf8 => dc!(LargeStr, LargeStringArray),
            DataType::Utf8View => dc!(View, StringViewArray),
            DataType::Date32 => dc!(Date32, Date32Array),
            DataType::Date64 => dc!(Date64, Date64Array),
            DataType::Time32(TimeUnit::Millisecond) => dc!(Time, Time32MillisecondArray),
            DataType::Timestamp(unit, _) => Some(Col::Ts(a.as_ref(), *unit)),
            DataType::Binary => dc!(Bin, BinaryArray),
            DataType::LargeBinary => dc!(LargeBin, LargeBinaryArray),
            _ => None,
        };
        match col {
            Some(c) => Ok(c),
            None => {
                let f = ArrayFormatter::try_new(a.as_ref(), &FormatOptions::default())?;
                Ok(Col::Other(a.as_ref(), f))
            }
        }
    }

    fn is_null(&self, row: usize) -> bool {
        match self {
            Col::Null => true,
            Col::Bool(a) => a.is_null(row),
            Col::I8(a) => a.is_null(row),
            Col::I16(a) => a.is_null(row),
            Col::I32(a) => a.is_null(row),
            Col::I64(a) => a.is_null(row),
            Col::U8(a) => a.is_null(row),
            Col::U16(a) => a.is_null(row),
            Col::U32(a) => a.is_null(row),
            Col::U64(a) => a.is_null(row),
            Col::F32(a) => a.is_null(row),
            Col::F64(a) => a.is_null(row),
            Col::Dec(a, _) => a.is_null(row),
            Col::Str(a) => a.is_null(row),
            Col::LargeStr(a) => a.is_null(row),
            Col::View(a) => a.is_null(row),
            Col::Date32(a) => a.is_null(row),
            Col::Date64(a) => a.is_null(row),
            Col::Time(a) => a.is_null(row),
            Col::Ts(a, _) => a.is_null(row),
            Col::Bin(a) => a.is_null(row),
            Col::LargeBin(a) => a.is_null(row),
            Col::Other(a, _) => a.is_null(row),
        }
    }

    fn ts_millis(a: &dyn Array, unit: TimeUnit, row: usize) -> Millis {
        match unit {
            TimeUnit::Second => a.as_primitive::<TimestampSecondType>().value(row).saturating_mul(1000),
            TimeUnit::Millisecond => a.as_primitive::<TimestampMillisecondType>().value(row),
            TimeUnit::Microsecond => a.as_primitive::<TimestampMicrosecondType>().value(row).div_euclid(1000),
            TimeUnit::Nanosecond => a
                .as_primitive::<TimestampNanosecondType>()
                .value(row)
                .div_euclid(1_000_000),
        }
    }

    /// The value as a JSON token.
    fn write_json(&self, row: usize, out: &mut Vec<u8>) -> crate::Result<()> {
        if self.is_null(row) {
            out.extend_from_slice(b"null");
            return Ok(());
        }
        match self {
            Col::F32(a) => {
                let v = a.value(row);
                if v.is_finite() {
                    write_num(out, v)
                } else {
                    out.extend_from_slice(b"null")
                }
            }
            Col::F64(a) => {
                let v = a.value(row);
                if v.is_finite() {
                    write_num(out, v)
                } else {
                    out.extend_from_slice(b"null")
                }
            }
            Col::Str(a) => json_str(out, a.value(row))?,
            Col::LargeStr(a) => json_str(out, a.value(row))?,
            Col::View(a) => json_str(out, a.value(row))?,
            Col::Other(_, f) => json_str(out, &f.value(row).to_string())?,
            Col::Bool(_)
            | Col::I8(_)
            | Col::I16(_)
            | Col::I32(_)
            | Col::I64(_)
            | Col::U8(_)
            | Col::U16(_)
            | Col::U32(_)
            | Col::U64(_)
            | Col::Dec(..) => self.write_text(row, out)?,
            // Dates, times, timestamps and base64 never need escaping.
            _ => {
                out.push(b'"');
                self.write_text(row, out)?;
                out.push(b'"');
            }
        }
        Ok(())
    }

    /// The value as plain text (empty for NULL).
    fn write_text(&self, row: usize, out: &mut Vec<u8>) -> crate::Result<()> {
        if self.is_null(row) {
            return Ok(());
        }
        match self {
            Col::Null => {}
            Col::Bool(a) => out.extend_from_slice(if a.value(row) { b"true" } else { b"false" }),
            Col::I8(a) => write_num(out, a.value(row)),
            Col::I16(a) => write_num(out, a.value(row)),
            Col::I32(a) => write_num(out, a.value(row)),
            Col::I64(a) => write_num(out, a.value(row)),
            Col::U8(a) => write_num(out, a.value(row)),
            Col::U16(a) => write_num(out, a.value(row)),
            Col::U32(a) => write_num(out, a.value(row)),
            Col::U64(a) => write_num(out, a.value(row)),
            Col::F32(a) => write_float_text(out, a.value(row) as f64, a.value(row).to_string()),
            Col::F64(a) => write_float_text(out, a.value(row), a.value(row).to_string()),
            Col::Dec(a, s) => write_decimal(out, a.value(row), *s),
            Col::Str(a) => out.extend_from_slice(a.value(row).as_bytes()),
            Col::LargeStr(a) => out.extend_from_slice(a.value(row).as_bytes()),
            Col::View(a) => out.extend_from_slice(a.value(row).as_bytes()),
            Col::Date32(a) => write_date(out, a.value(row) as i64),
            Col::Date64(a) => write_date(out, a.value(row).div_euclid(86_400_000)),
            Col::Time(a) => write_time(out, a.value(row) as i64),
            Col::Ts(a, unit) => write_timestamp(out, Self::ts_millis(*a, *unit, row)),
            Col::Bin(a) => base64_encode(out, a.value(row)),
            Col::LargeBin(a) => base64_encode(out, a.value(row)),
            Col::Other(_, f) => write!(out, "{}", f.value(row)).map_err(|e| SluiceError::runtime(e.to_string()))?,
        }
        Ok(())
    }
}

#[inline]
fn write_num(out: &mut Vec<u8>, v: impl std::fmt::Display) {
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{v}");
}

fn write_float_text(out: &mut Vec<u8>, v: f64, shortest: String) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"Infinity" } else { b"-Infinity" });
    } else {
        out.extend_from_slice(shortest.as_bytes());
    }
}

fn json_str(out: &mut Vec<u8>, s: &str) -> crate::Result<()> {
    serde_json::to_writer(&mut *out, s).map_err(|e| SluiceError::runtime(format!("encoding a JSON string: {e}")))
}

fn write_decimal(out: &mut Vec<u8>, v: i128, scale: i8) {
    if scale <= 0 {
        write_num(out, v);
        if v != 0 {
            out.extend(std::iter::repeat_n(b'0', (-(scale as i32)) as usize));
        }
        return;
    }
    let scale = scale as usize;
    if v < 0 {
        out.push(b'-');
    }
    let digits = v.unsigned_abs().to_string();
    if digits.len() <= scale {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', scale - digits.len()));
        out.extend_from_slice(digits.as_bytes());
    } else {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.extend_from_slice(int.as_bytes());
        out.push(b'.');
        out.extend_from_slice(frac.as_bytes());
    }
}

/// (year, month, day) of a day number since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[inline]
fn push2(out: &mut Vec<u8>, v: u32) {
    out.push(b'0' + (v / 10 % 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

fn write_ymd(out: &mut Vec<u8>, days: i64) -> bool {
    // Years 0..=9999 only (this also keeps the arithmetic far from overflow).
    if !(-719_528..=2_932_896).contains(&days) {
        return false;
    }
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return false;
    }
    let y = y as u32;
    push2(out, y / 100);
    push2(out, y % 100);
    out.push(b'-');
    push2(out, m);
    out.push(b'-');
    push2(out, d);
    true
}

fn write_date(out: &mut Vec<u8>, days: i64) {
    if !write_ymd(out, days) {
        // Years outside 0..=9999: let chrono render them (sign, more digits).
        let text = format_timestamp(days.saturating_mul(86_400_000));
        out.extend_from_slice(text.split(' ').next().unwrap_or(&text).as_bytes());
    }
}

fn write_hms(out: &mut Vec<u8>, ms_of_day: i64) {
    let ms = ms_of_day.rem_euclid(86_400_000) as u32;
    push2(out, ms / 3_600_000);
    out.push(b':');
    push2(out, ms / 60_000 % 60);
    out.push(b':');
    push2(out, ms / 1000 % 60);
    out.push(b'.');
    let f = ms % 1000;
    out.push(b'0' + (f / 100) as u8);
    push2(out, f % 100);
}

fn write_time(out: &mut Vec<u8>, ms: i64) {
    write_hms(out, ms);
}

/// `yyyy-MM-dd HH:mm:ss.SSS`, identical to [`format_timestamp`] (which it falls back to
/// outside years 0..=9999).
fn write_timestamp(out: &mut Vec<u8>, ms: Millis) {
    let start = out.len();
    if write_ymd(out, ms.div_euclid(86_400_000)) {
        out.push(b' ');
        write_hms(out, ms.rem_euclid(86_400_000));
    } else {
        out.truncate(start);
        out.extend_from_slice(format_timestamp(ms).as_bytes());
    }
}

fn base64_encode(out: &mut Vec<u8>, bytes: &[u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::app::{RecordColumn, RecordFormat, RecordSchema};
    use crate::connectors::RawRecord;
    use crate::connectors::formats::RecordDecoder;
    use crate::time::parse_timestamp;
    use crate::types::{ColumnDef, SqlType, TIMESTAMP_TYPE};
    use datafusion::arrow::array::{
        Decimal128Array, ListArray, StringViewArray, Time32MillisecondArray, TimestampMillisecondArray,
        TimestampNanosecondArray,
    };
    use datafusion::arrow::datatypes::{Field, Int32Type, Schema};
    use serde_json::{Value, json};

    fn ts(s: &str) -> i64 {
        parse_timestamp(s).unwrap()
    }

    /// A batch with one column of each KDA type, plus ROWTIME last.
    fn sample() -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("TICKER", DataType::Utf8, true),
            Field::new("qty", DataType::Int32, true),
            Field::new("BIG", DataType::Int64, true),
            Field::new("PRICE", DataType::Float32, true),
            Field::new("AVG", DataType::Float64, true),
            Field::new("AMOUNT", DataType::Decimal128(7, 2), true),
            Field::new("OK", DataType::Boolean, true),
            Field::new("DAY", DataType::Date32, true),
            Field::new("AT", TIMESTAMP_TYPE, true),
            Field::new("T", DataType::Time32(TimeUnit::Millisecond), true),
            Field::new("ROWTIME", TIMESTAMP_TYPE, false),
        ]);
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![Some("AMZN"), Some("a,\"b\"\nc"), None])),
            Arc::new(Int32Array::from(vec![Some(1), None, Some(-3)])),
            Arc::new(Int64Array::from(vec![Some(i64::MAX), Some(0), None])),
            Arc::new(Float32Array::from(vec![Some(0.1f32), Some(f32::NAN), Some(1.0)])),
            Arc::new(Float64Array::from(vec![
                Some(0.1f64),
                Some(f64::INFINITY),
                Some(-2.5e-7),
            ])),
            Arc::new(
                Decimal128Array::from(vec![Some(12345i128), Some(-5), None])
                    .with_precision_and_scale(7, 2)
                    .unwrap(),
            ),
            Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
            Arc::new(Date32Array::from(vec![Some(0), Some(-1), None])),
            Arc::new(TimestampMillisecondArray::from(vec![
                Some(ts("2024-03-01 12:00:09.5")),
                None,
                Some(-1),
            ])),
            Arc::new(Time32MillisecondArray::from(vec![Some(3_723_004), None, Some(0)])),
            Arc::new(TimestampMillisecondArray::from(vec![
                ts("2024-03-01 00:01:00"),
                ts("2024-03-01 00:01:00"),
                ts("2024-03-01 00:02:00"),
            ])),
        ];
        RecordBatch::try_new(Arc::new(schema), cols).unwrap()
    }

    fn json_lines(batch: &RecordBatch, rowtime: bool) -> Vec<String> {
        let mut out = Vec::new();
        encode_json_lines(batch, rowtime, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.is_empty() || text.ends_with('\n'));
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn json_rendering_of_every_type() {
        let lines = json_lines(&sample(), false);
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[0],
            r#"{"TICKER":"AMZN","qty":1,"BIG":9223372036854775807,"PRICE":0.1,"AVG":0.1,"AMOUNT":123.45,"OK":true,"DAY":"1970-01-01","AT":"2024-03-01 12:00:09.500","T":"01:02:03.004"}"#
        );
        let row1: Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(
            row1,
            json!({"TICKER": "a,\"b\"\nc", "qty": null, "BIG": 0, "PRICE": null, "AVG": null, "AMOUNT": -0.05,
                   "OK": false, "DAY": "1969-12-31", "AT": null, "T": null})
        );
        let row2: Value = serde_json::from_str(&lines[2]).unwrap();
        assert_eq!(row2["PRICE"].as_f64(), Some(1.0));
        assert!(
            lines[2].contains(r#""PRICE":1,"#),
            "REAL 1.0 is written as Rust's shortest text: {}",
            lines[2]
        );
        assert_eq!(row2["AVG"], json!(-2.5e-7));
        assert_eq!(row2["AT"], json!("1969-12-31 23:59:59.999"));
        assert_eq!(row2["TICKER"], Value::Null);
        // Keys keep the stored case and order; ROWTIME is not written.
        let keys: Vec<String> = serde_json::from_str::<serde_json::Map<String, Value>>(&lines[0])
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert!(!keys.contains(&"ROWTIME".to_string()));
        assert!(lines[0].starts_with("{\"TICKER\":") && lines[0].contains("\"qty\":1"));
    }

    #[test]
    fn json_with_rowtime_first() {
        let lines = json_lines(&sample(), true);
        assert!(
            lines[0].starts_with(r#"{"ROWTIME":"2024-03-01 00:01:00.000","TICKER":"AMZN""#),
            "{}",
            lines[0]
        );
        assert_eq!(lines[2].matches("ROWTIME").count(), 1);
        // Without a ROWTIME column there is nothing to include.
        let no_rt = sample().project(&[0, 1]).unwrap();
        assert!(encode_json_lines(&no_rt, true, &mut Vec::new()).is_err());
        assert_eq!(json_lines(&no_rt, false)[0], r#"{"TICKER":"AMZN","qty":1}"#);
    }

    #[test]
    fn floats_use_the_shortest_round_trip_text_of_their_width() {
        let schema = Schema::new(vec![
            Field::new("R", DataType::Float32, true),
            Field::new("D", DataType::Float64, true),
        ]);
        let vals = [0.1f32, 1.0 / 3.0, 16_777_216.0, 1.5e-5, -0.0];
        let b = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Float32Array::from(vals.to_vec())),
                Arc::new(Float64Array::from(vals.iter().map(|v| *v as f64).collect::<Vec<_>>())),
            ],
        )
        .unwrap();
        let lines = json_lines(&b, false);
        assert_eq!(lines[0], r#"{"R":0.1,"D":0.10000000149011612}"#);
        assert_eq!(lines[1], r#"{"R":0.33333334,"D":0.3333333432674408}"#);
        assert_eq!(lines[2], r#"{"R":16777216,"D":16777216}"#);
        assert_eq!(lines[3], r#"{"R":0.000015,"D":0.000014999999621068127}"#);
        for (line, v) in lines.iter().zip(vals) {
            let parsed: Value = serde_json::from_str(line).unwrap();
            assert_eq!(parsed["R"].as_f64().unwrap() as f32, v, "REAL text round-trips");
        }
    }

    #[test]
    fn csv_rendering_and_quoting() {
        let mut out = Vec::new();
        encode_csv(&sample(), ",", false, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let expected = "AMZN,1,9223372036854775807,0.1,0.1,123.45,true,1970-01-01,2024-03-01 12:00:09.500,01:02:03.004\n\
                        \"a,\"\"b\"\"\nc\",,0,NaN,Infinity,-0.05,false,1969-12-31,,\n\
                        ,-3,,1,-0.00000025,,,,1969-12-31 23:59:59.999,00:00:00.000\n";
        assert_eq!(text, expected);

        let mut out = Vec::new();
        encode_csv(&sample().project(&[0, 1, 10]).unwrap(), "\t", true, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2024-03-01 00:01:00.000\tAMZN\t1\n2024-03-01 00:01:00.000\t\"a,\"\"b\"\"\nc\"\t\n2024-03-01 00:02:00.000\t\t-3\n"
        );

        // A multi-character delimiter, and values that contain it.
        let b = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("A", DataType::Utf8, true),
                Field::new("B", DataType::Utf8, true),
            ])),
            vec![
                Arc::new(StringArray::from(vec!["x::y", "x:y"])),
                Arc::new(StringArray::from(vec!["", "z"])),
            ],
        )
        .unwrap();
        let mut out = Vec::new();
        encode_csv(&b, "::", false, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "\"x::y\"::\nx:y::z\n");
        assert!(encode_csv(&b, "", false, &mut Vec::new()).is_err());
    }

    #[test]
    fn decimals_render_exactly() {
        let cases = [
            (12345i128, 2i8, "123.45"),
            (-5, 2, "-0.05"),
            (0, 3, "0.000"),
            (7, 0, "7"),
            (-120, 1, "-12.0"),
            (5, -2, "500"),
            (0, -2, "0"),
        ];
        for (v, s, want) in cases {
            let mut out = Vec::new();
            write_decimal(&mut out, v, s);
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }

    #[test]
    fn other_arrow_types_are_rendered() {
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(1), Some(2)]), None]);
        let schema = Schema::new(vec![
            Field::new("V", DataType::Utf8View, true),
            Field::new("NS", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
            Field::new("L", list.data_type().clone(), true),
            Field::new("B", DataType::Binary, true),
        ]);
        let b = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringViewArray::from(vec![Some("v\"1"), None])),
                Arc::new(TimestampNanosecondArray::from(vec![Some(1_500_999_999), None])),
                Arc::new(list),
                Arc::new(BinaryArray::from(vec![Some(&b"hello"[..]), Some(&b""[..])])),
            ],
        )
        .unwrap();
        let lines = json_lines(&b, false);
        let row0: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(
            row0,
            json!({"V": "v\"1", "NS": "1970-01-01 00:00:01.500", "L": "[1, 2]", "B": "aGVsbG8="})
        );
        let row1: Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(row1, json!({"V": null, "NS": null, "L": null, "B": ""}));
    }

    #[test]
    fn decode_encode_round_trip() {
        let cols = [
            ("TICKER", "VARCHAR(8)", "$.ticker"),
            ("PRICE", "REAL", "$.price"),
            ("VOLUME", "BIGINT", "$.volume"),
            ("AMOUNT", "DECIMAL(9,3)", "$.amount"),
            ("AT", "TIMESTAMP", "$.at"),
            ("DAY", "DATE", "$.day"),
            ("OK", "BOOLEAN", "$.ok"),
            ("NOTE", "VARCHAR(32)", "$.note"),
        ];
        let schema = RecordSchema {
            columns: cols
                .iter()
                .map(|(n, t, m)| RecordColumn {
                    column: ColumnDef::new(*n, SqlType::parse(t).unwrap()),
                    mapping: Some(m.to_string()),
                })
                .collect(),
            format: RecordFormat::Json { row_path: "$".into() },
        };
        let input = [
            r#"{"ticker":"AMZN","price":10.1,"volume":-5,"amount":1.5,"at":"2024-03-01 12:00:00.123","day":"2024-02-29","ok":true,"note":"quote \" and \\ and \n"}"#,
            r#"{"ticker":null,"price":3.4028235e38,"volume":9223372036854775807,"amount":-999999.999,"at":"1970-01-01 00:00:00.000","day":"1900-01-01","ok":false,"note":"h\u00e9, ok"}"#,
            r#"{}"#,
        ];
        let d = RecordDecoder::new(&schema, "S").unwrap();
        let recs: Vec<RawRecord> = input
            .iter()
            .map(|r| RawRecord {
                data: r.as_bytes().to_vec(),
                rowtime: Some(1),
                ..Default::default()
            })
            .collect();
        let first = d.decode(&recs, 0);
        assert!(first.errors.is_empty(), "{:?}", first.errors);
        // Drop the implicit input columns but ROWTIME: declared columns then ROWTIME.
        let schema = first.batch.schema();
        let keep: Vec<usize> = (0..schema.fields().len())
            .filter(|&i| {
                let name = schema.field(i).name();
                name == ROWTIME || !crate::types::is_implicit_input_column(name)
            })
            .collect();
        let batch = first.batch.project(&keep).unwrap();

        let mut encoded = Vec::new();
        encode_json_lines(&batch, false, &mut encoded).unwrap();
        let recs2: Vec<RawRecord> = encoded
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| RawRecord {
                data: l.to_vec(),
                rowtime: Some(1),
                ..Default::default()
            })
            .collect();
        let upper = RecordSchema {
            columns: cols
                .iter()
                .map(|(n, t, _)| RecordColumn {
                    column: ColumnDef::new(*n, SqlType::parse(t).unwrap()),
                    mapping: Some(format!("$.{n}")),
                })
                .collect(),
            format: RecordFormat::Json { row_path: "$".into() },
        };
        let second = RecordDecoder::new(&upper, "S").unwrap().decode(&recs2, 0);
        assert!(second.errors.is_empty(), "{:?}", second.errors);
        assert_eq!(second.batch, first.batch, "JSON encode → decode is the identity");

        // CSV round trip of the values without separators or quotes.
        let csv_schema = RecordSchema {
            columns: upper.columns.clone(),
            format: RecordFormat::Csv {
                row_delimiter: "\n".into(),
                column_delimiter: "|".into(),
            },
        };
        let simple = batch.slice(0, 1).project(&[0, 1, 2, 3, 4, 5, 6, 8]).unwrap();
        let mut csv = Vec::new();
        encode_csv(&simple, "|", false, &mut csv).unwrap();
        let mut csv_cols = csv_schema.clone();
        csv_cols.columns.truncate(7);
        let third = RecordDecoder::new(&csv_cols, "S").unwrap().decode(
            &[RawRecord {
                data: csv,
                rowtime: Some(1),
                ..Default::default()
            }],
            0,
        );
        assert!(third.errors.is_empty(), "{:?}", third.errors);
        for i in 0..7 {
            assert_eq!(third.batch.column(i), &first.batch.column(i).slice(0, 1), "column {i}");
        }
    }

    proptest::proptest! {
        #[test]
        fn timestamp_text_matches_format_timestamp(ms in -62_135_596_800_000i64..253_402_300_799_999i64) {
            let mut out = Vec::new();
            write_timestamp(&mut out, ms);
            proptest::prop_assert_eq!(String::from_utf8(out).unwrap(), format_timestamp(ms));
        }

        #[test]
        fn extreme_timestamps_do_not_panic(ms in proptest::prelude::any::<i64>()) {
            let mut out = Vec::new();
            write_timestamp(&mut out, ms);
            write_date(&mut out, ms);
            write_hms(&mut out, ms);
        }

        #[test]
        fn base64_round_trips(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20)) {
            let mut out = Vec::new();
            base64_encode(&mut out, &bytes);
            let schema = RecordSchema {
                columns: vec![RecordColumn { column: ColumnDef::new("B", SqlType::Varbinary(64)), mapping: Some("$.b".into()) }],
                format: RecordFormat::Json { row_path: "$".into() },
            };
            let rec = format!("{{\"b\": \"{}\"}}", String::from_utf8(out).unwrap());
            let d = RecordDecoder::new(&schema, "S").unwrap().decode(&[RawRecord { data: rec.into_bytes(), ..Default::default() }], 0);
            proptest::prop_assert!(d.errors.is_empty());
            let a = d.batch.column(0).as_any().downcast_ref::<BinaryArray>().unwrap();
            proptest::prop_assert_eq!(a.value(0), &bytes[..]);
        }
    }
}
