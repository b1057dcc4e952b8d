//! Comparing the rows an output stream produced with the rows a case expects.
//!
//! Actual Arrow batches are turned into [`Row`]s of normalised [`Value`]s; expected rows
//! come from JSON lines. The rules (conformance README): rows are compared in ROWTIME
//! order, rows sharing a ROWTIME as a multiset; only the `compare` columns when given;
//! REAL/DOUBLE with a relative tolerance; timestamps as instants.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use chrono::{NaiveDate, NaiveTime};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Date64Type, Decimal128Type, Decimal256Type, Float16Type, Float32Type, Float64Type, Int8Type, Int16Type,
    Int32Type, Int64Type, Time32MillisecondType, Time32SecondType, Time64MicrosecondType, Time64NanosecondType,
    TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
    UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::time::{Millis, format_timestamp, parse_timestamp};
use crate::types::ROWTIME;

/// The default relative tolerance for REAL and DOUBLE values.
pub const DEFAULT_TOLERANCE: f64 = 1e-6;

/// Default number of `-`/`+` lines printed per failing stream.
pub const DEFAULT_MAX_DIFF_LINES: usize = 40;

const MILLIS_PER_DAY: i64 = 86_400_000;

/// A normalised value of one column of one row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// Every integer type, and DECIMAL with scale 0.
    Int(i64),
    /// REAL, DOUBLE and DECIMAL with a scale (REAL widened through its shortest text, so
    /// `2.4166667f32` shows as `2.4166667`).
    Float(f64),
    Str(String),
    /// TIMESTAMP / ROWTIME, milliseconds since the epoch.
    Timestamp(Millis),
    /// DATE, days since the epoch.
    Date(i64),
    /// TIME, milliseconds since midnight.
    Time(i64),
}

impl Value {
    /// Converts one value of an expected-output JSON object.
    pub fn from_json(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::Str(s.clone()),
            other => Value::Str(other.to_string()),
        }
    }

    /// The value as a timestamp, if it is one or is a string that parses as one.
    fn as_instant(&self) -> Option<Millis> {
        match self {
            Value::Timestamp(ms) => Some(*ms),
            Value::Str(s) => parse_timestamp(s),
            _ => None,
        }
    }

    /// Renders the value as JSON-like text (timestamps as `yyyy-MM-dd HH:mm:ss.SSS`).
    pub fn render(&self) -> String {
        match self {
            Value::Null => "null".to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) if f.is_finite() => format!("{f:?}"),
            Value::Float(f) => format!("\"{f}\""),
            Value::Str(s) => serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}")),
            Value::Timestamp(ms) => format!("\"{}\"", format_timestamp(*ms)),
            Value::Date(days) => format!("\"{}\"", format_date(*days)),
            Value::Time(ms) => format!("\"{}\"", format_time(*ms)),
        }
    }
}

fn format_date(days: i64) -> String {
    format_timestamp(days * MILLIS_PER_DAY)[..10].to_string()
}

fn format_time(ms: i64) -> String {
    format_timestamp(ms.rem_euclid(MILLIS_PER_DAY))[11..].to_string()
}

fn parse_date(s: &str) -> Option<i64> {
    let d = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()?;
    Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis() / MILLIS_PER_DAY)
}

fn parse_time(s: &str) -> Option<i64> {
    let t = NaiveTime::parse_from_str(s.trim(), "%H:%M:%S%.f")
        .or_else(|_| NaiveTime::parse_from_str(s.trim(), "%H:%M"))
        .ok()?;
    let since_midnight = t.signed_duration_since(NaiveTime::MIN);
    Some(since_midnight.num_milliseconds())
}

/// One row: column name → value, in the order of the stream's columns (actual rows) or
/// of the JSON object's keys (expected rows).
pub type Row = Vec<(String, Value)>;

/// The value of `column` in `row`, if the row has that column.
pub fn get<'a>(row: &'a Row, column: &str) -> Option<&'a Value> {
    row.iter().find(|(name, _)| name == column).map(|(_, v)| v)
}

/// Parses one expected-output line (a JSON object) into a row.
pub fn row_from_json(line: &str) -> Result<Row, String> {
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    match v {
        serde_json::Value::Object(map) => Ok(map.iter().map(|(k, v)| (k.clone(), Value::from_json(v))).collect()),
        other => Err(format!("expected a JSON object, found {other}")),
    }
}

/// Do an expected and an actual value match? Integers, strings and booleans exactly;
/// when either side is a float, numerically with relative tolerance `tolerance`;
/// timestamps, dates and times as instants (the expected side may be text).
pub fn values_match(expected: &Value, actual: &Value, tolerance: f64) -> bool {
    match (expected, actual) {
        (Value::Null, Value::Null) => true,
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::Int(e), Value::Int(a)) => e == a,
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            floats_close(as_f64(expected), as_f64(actual), tolerance)
        }
        (Value::Bool(e), Value::Bool(a)) => e == a,
        (Value::Str(e), Value::Str(a)) => e == a,
        (_, Value::Timestamp(a)) => expected.as_instant() == Some(*a),
        (Value::Timestamp(e), Value::Str(a)) => parse_timestamp(a) == Some(*e),
        (Value::Str(e), Value::Date(a)) => parse_date(e) == Some(*a),
        (Value::Date(e), Value::Date(a)) => e == a,
        (Value::Str(e), Value::Time(a)) => parse_time(e) == Some(*a),
        (Value::Time(e), Value::Time(a)) => e == a,
        _ => false,
    }
}

fn as_f64(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        _ => f64::NAN,
    }
}

fn floats_close(e: f64, a: f64, tolerance: f64) -> bool {
    if e == a || (e.is_nan() && a.is_nan()) {
        return true;
    }
    if !e.is_finite() || !a.is_finite() {
        return false;
    }
    let diff = (e - a).abs();
    diff <= tolerance * e.abs().max(a.abs()) || diff <= 1e-12
}

// ---------------------------------------------------------------------------------------
// Arrow batches → rows
// ---------------------------------------------------------------------------------------

/// Converts the batches of one output stream into rows, returning the column names (of
/// the first batch's schema) and the rows in batch order.
pub fn batches_to_rows(batches: &[RecordBatch]) -> (Vec<String>, Vec<Row>) {
    let columns: Vec<String> = batches
        .first()
        .map(|b| b.schema().fields().iter().map(|f| f.name().clone()).collect())
        .unwrap_or_default();
    let mut rows = Vec::new();
    for batch in batches {
        let schema = batch.schema();
        let names: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
        let arrays: Vec<ArrayRef> = batch.columns().iter().map(normalise_array).collect();
        for r in 0..batch.num_rows() {
            rows.push(
                names
                    .iter()
                    .zip(&arrays)
                    .map(|(n, a)| ((*n).clone(), array_value(a, r)))
                    .collect(),
            );
        }
    }
    (columns, rows)
}

/// Unpacks dictionary and run-end encoded arrays so [`array_value`] sees plain arrays.
fn normalise_array(array: &ArrayRef) -> ArrayRef {
    match array.data_type() {
        DataType::Dictionary(_, value_type) => cast(array, value_type).unwrap_or_else(|_| array.clone()),
        DataType::RunEndEncoded(_, values) => cast(array, values.data_type()).unwrap_or_else(|_| array.clone()),
        _ => array.clone(),
    }
}

fn f32_value(v: f32) -> f64 {
    if v.is_finite() {
        v.to_string().parse::<f64>().unwrap_or(v as f64)
    } else {
        v as f64
    }
}

fn hex(bytes: &[u8]) -> String {
    crate::error::ErrorRow::hex(bytes)
}

/// The normalised value at `row` of `array`.
pub fn array_value(array: &ArrayRef, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    let a = array.as_ref();
    match a.data_type() {
        DataType::Null => Value::Null,
        DataType::Boolean => Value::Bool(a.as_boolean().value(row)),
        DataType::Int8 => Value::Int(a.as_primitive::<Int8Type>().value(row) as i64),
        DataType::Int16 => Value::Int(a.as_primitive::<Int16Type>().value(row) as i64),
        DataType::Int32 => Value::Int(a.as_primitive::<Int32Type>().value(row) as i64),
        DataType::Int64 => Value::Int(a.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => Value::Int(a.as_primitive::<UInt8Type>().value(row) as i64),
        DataType::UInt16 => Value::Int(a.as_primitive::<UInt16Type>().value(row) as i64),
        DataType::UInt32 => Value::Int(a.as_primitive::<UInt32Type>().value(row) as i64),
        DataType::UInt64 => {
            let v = a.as_primitive::<UInt64Type>().value(row);
            i64::try_from(v).map(Value::Int).unwrap_or(Value::Float(v as f64))
        }
        DataType::Float16 => Value::Float(f32_value(a.as_primitive::<Float16Type>().value(row).to_f32())),
        DataType::Float32 => Value::Float(f32_value(a.as_primitive::<Float32Type>().value(row))),
        DataType::Float64 => Value::Float(a.as_primitive::<Float64Type>().value(row)),
        DataType::Decimal128(_, scale) => {
            let v = a.as_primitive::<Decimal128Type>().value(row);
            decimal_value(v, *scale)
        }
        DataType::Decimal256(_, scale) => {
            let v = a.as_primitive::<Decimal256Type>().value(row);
            match v.to_i128() {
                Some(v) => decimal_value(v, *scale),
                None => Value::Float(display_value(array, row).parse().unwrap_or(f64::NAN)),
            }
        }
        DataType::Utf8 => Value::Str(a.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => Value::Str(a.as_string::<i64>().value(row).to_string()),
        DataType::Utf8View => Value::Str(a.as_string_view().value(row).to_string()),
        DataType::Timestamp(unit, _) => Value::Timestamp(match unit {
            TimeUnit::Second => a.as_primitive::<TimestampSecondType>().value(row) * 1000,
            TimeUnit::Millisecond => a.as_primitive::<TimestampMillisecondType>().value(row),
            TimeUnit::Microsecond => a.as_primitive::<TimestampMicrosecondType>().value(row).div_euclid(1000),
            TimeUnit::Nanosecond => a
                .as_primitive::<TimestampNanosecondType>()
                .value(row)
                .div_euclid(1_000_000),
        }),
        DataType::Date32 => Value::Date(a.as_primitive::<datafusion::arrow::datatypes::Date32Type>().value(row) as i64),
        DataType::Date64 => Value::Date(a.as_primitive::<Date64Type>().value(row).div_euclid(MILLIS_PER_DAY)),
        DataType::Time32(TimeUnit::Second) => {
            Value::Time(a.as_primitive::<Time32SecondType>().value(row) as i64 * 1000)
        }
        DataType::Time32(_) => Value::Time(a.as_primitive::<Time32MillisecondType>().value(row) as i64),
        DataType::Time64(TimeUnit::Nanosecond) => {
            Value::Time(a.as_primitive::<Time64NanosecondType>().value(row) / 1_000_000)
        }
        DataType::Time64(_) => Value::Time(a.as_primitive::<Time64MicrosecondType>().value(row) / 1000),
        DataType::Binary => Value::Str(hex(a.as_binary::<i32>().value(row))),
        DataType::LargeBinary => Value::Str(hex(a.as_binary::<i64>().value(row))),
        DataType::BinaryView => Value::Str(hex(a.as_binary_view().value(row))),
        DataType::FixedSizeBinary(_) => Value::Str(hex(a.as_fixed_size_binary().value(row))),
        _ => Value::Str(display_value(array, row)),
    }
}

fn decimal_value(unscaled: i128, scale: i8) -> Value {
    if scale <= 0 {
        let factor = 10i128.checked_pow(u32::from(scale.unsigned_abs()));
        if let Some(v) = factor
            .and_then(|f| unscaled.checked_mul(f))
            .and_then(|v| i64::try_from(v).ok())
        {
            return Value::Int(v);
        }
        return Value::Float(unscaled as f64 * 10f64.powi(-(scale as i32)));
    }
    Value::Float(unscaled as f64 / 10f64.powi(scale as i32))
}

fn display_value(array: &ArrayRef, row: usize) -> String {
    let options = FormatOptions::default();
    match ArrayFormatter::try_new(array.as_ref(), &options) {
        Ok(f) => f.value(row).to_string(),
        Err(e) => format!("<unprintable: {e}>"),
    }
}

// ---------------------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------------------

/// How one expected output is compared.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Compare only these columns (the case's `compare` list); None: the columns the
    /// expected rows name.
    pub columns: Option<Vec<String>>,
    /// Relative tolerance for REAL / DOUBLE values.
    pub tolerance: f64,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            columns: None,
            tolerance: DEFAULT_TOLERANCE,
        }
    }
}

/// A row that differs: expected but not produced, or produced but not expected.
#[derive(Debug, Clone, PartialEq)]
pub struct DiffRow {
    /// 0-based position among the expected rows (file order) or the actual rows (in
    /// ROWTIME order).
    pub index: usize,
    /// The ROWTIME the row belongs to, when known.
    pub rowtime: Option<Millis>,
    /// The compared columns of the row, in display order.
    pub row: Row,
}

/// The outcome of comparing one output stream.
#[derive(Debug, Clone, Default)]
pub struct StreamDiff {
    pub expected_rows: usize,
    pub actual_rows: usize,
    /// Columns the expected rows (or the `compare` list) name that the output lacks.
    pub missing_columns: Vec<String>,
    /// Columns of the output that the expected rows do not name (only checked when no
    /// `compare` list is given; ROWTIME is exempt).
    pub extra_columns: Vec<String>,
    /// Expected rows that were not produced, in ROWTIME order.
    pub missing: Vec<DiffRow>,
    /// Produced rows that were not expected, in ROWTIME order.
    pub unexpected: Vec<DiffRow>,
    /// Problems with the expected rows themselves (e.g. an unparsable ROWTIME).
    pub problems: Vec<String>,
}

impl StreamDiff {
    pub fn is_match(&self) -> bool {
        self.missing_columns.is_empty()
            && self.extra_columns.is_empty()
            && self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.problems.is_empty()
    }

    /// A readable report: a summary line, then the differences like a unified diff
    /// (`- expected`, `+ actual`) in ROWTIME order, at most `max_lines` row lines.
    pub fn render(&self, max_lines: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} missing, {} unexpected (expected {} row{}, got {})",
            self.missing.len(),
            self.unexpected.len(),
            self.expected_rows,
            if self.expected_rows == 1 { "" } else { "s" },
            self.actual_rows
        );
        for p in &self.problems {
            let _ = writeln!(out, "problem: {p}");
        }
        if !self.missing_columns.is_empty() {
            let _ = writeln!(
                out,
                "output lacks column(s) the expected rows name: {}",
                self.missing_columns.join(", ")
            );
        }
        if !self.extra_columns.is_empty() {
            let _ = writeln!(
                out,
                "output has column(s) the expected rows do not name: {} (name them in the expected rows or use `compare`)",
                self.extra_columns.join(", ")
            );
        }
        // Merge missing and unexpected rows by ROWTIME (unknown last); at equal ROWTIME
        // missing rows come first, like a unified diff.
        let mut lines: Vec<(Option<Millis>, u8, usize, &DiffRow)> = Vec::new();
        lines.extend(self.missing.iter().map(|d| (d.rowtime, 0u8, d.index, d)));
        lines.extend(self.unexpected.iter().map(|d| (d.rowtime, 1u8, d.index, d)));
        lines.sort_by_key(|(rt, kind, idx, _)| (rt.is_none(), *rt, *kind, *idx));
        if let Some((rt, kind, idx, first)) = lines.first() {
            let at = match rt {
                Some(ms) => format!("ROWTIME {}", format_timestamp(*ms)),
                None => "the end of the output".to_string(),
            };
            let which = if *kind == 0 {
                format!("expected row {} was not produced", idx + 1)
            } else {
                format!("produced row {} was not expected", idx + 1)
            };
            let _ = writeln!(out, "first divergence at {at}: {which}");
            // When a produced row at the same ROWTIME stands opposite a missing row, say
            // which columns differ.
            if *kind == 0
                && let Some(other) = closest(first, self.unexpected.iter().filter(|u| u.rowtime == *rt))
            {
                let diffs = differing_columns(&first.row, &other.row);
                if !diffs.is_empty() {
                    let _ = writeln!(out, "  closest produced row differs in: {}", diffs.join(", "));
                }
            }
        }
        for (_, kind, _, d) in lines.iter().take(max_lines) {
            let sign = if *kind == 0 { '-' } else { '+' };
            let _ = writeln!(out, "{sign} {}", render_row(&d.row));
        }
        if lines.len() > max_lines {
            let _ = writeln!(out, "... {} more differing row(s)", lines.len() - max_lines);
        }
        out
    }
}

/// Renders a row as a JSON object (in the row's column order).
pub fn render_row(row: &Row) -> String {
    let fields: Vec<String> = row
        .iter()
        .map(|(k, v)| format!("{}: {}", serde_json::to_string(k).unwrap_or_default(), v.render()))
        .collect();
    format!("{{{}}}", fields.join(", "))
}

fn closest<'a>(target: &DiffRow, candidates: impl Iterator<Item = &'a DiffRow>) -> Option<&'a DiffRow> {
    candidates.max_by_key(|c| {
        target
            .row
            .iter()
            .filter(|(k, v)| get(&c.row, k).is_some_and(|a| values_match(v, a, DEFAULT_TOLERANCE)))
            .count()
    })
}

fn differing_columns(expected: &Row, actual: &Row) -> Vec<String> {
    expected
        .iter()
        .filter_map(|(k, e)| {
            let a = get(actual, k).cloned().unwrap_or(Value::Null);
            (!values_match(e, &a, DEFAULT_TOLERANCE))
                .then(|| format!("{k} (expected {}, got {})", e.render(), a.render()))
        })
        .collect()
}

fn rowtime_of(row: &Row) -> Option<Millis> {
    match get(row, ROWTIME)? {
        Value::Timestamp(ms) => Some(*ms),
        other => other.as_instant(),
    }
}

/// Compares the expected rows of one output with the rows it produced.
///
/// `actual_columns` is the output's schema (None when the stream produced no batch at
/// all, in which case column checks are skipped). Actual rows are put in ROWTIME order
/// (stably); rows sharing a ROWTIME are matched as a multiset. When every expected row
/// names its ROWTIME (and ROWTIME is compared), expected rows are grouped by that
/// ROWTIME; otherwise the expected rows, in file order, are cut into runs of the same
/// sizes as the actual ROWTIME runs.
pub fn compare_rows(
    expected: &[Row],
    actual_columns: Option<&[String]>,
    actual: &[Row],
    options: &CompareOptions,
) -> StreamDiff {
    let mut diff = StreamDiff {
        expected_rows: expected.len(),
        actual_rows: actual.len(),
        ..Default::default()
    };

    // Which columns are compared.
    let named: BTreeSet<String> = match &options.columns {
        Some(cols) => cols.iter().cloned().collect(),
        None => expected.iter().flat_map(|r| r.iter().map(|(k, _)| k.clone())).collect(),
    };
    let mut missing_columns: Vec<String> = Vec::new();
    if let Some(actual_cols) = actual_columns {
        missing_columns = named.iter().filter(|c| !actual_cols.contains(c)).cloned().collect();
        if options.columns.is_none() && !expected.is_empty() {
            diff.extra_columns = actual_cols
                .iter()
                .filter(|c| c.as_str() != ROWTIME && !named.contains(*c))
                .cloned()
                .collect();
        }
    }
    let usable = |c: &String| !missing_columns.contains(c);

    // Display order: ROWTIME, then the output's columns, then any others alphabetically.
    let mut order: Vec<String> = Vec::new();
    if named.contains(ROWTIME) {
        order.push(ROWTIME.to_string());
    }
    for c in actual_columns.unwrap_or(&[]) {
        if named.contains(c) && !order.contains(c) {
            order.push(c.clone());
        }
    }
    for c in &named {
        if !order.contains(c) {
            order.push(c.clone());
        }
    }

    // Columns compared for one expected row: the compare list, or the row's own keys.
    let compared: Vec<Vec<String>> = expected
        .iter()
        .map(|r| {
            order
                .iter()
                .filter(|c| usable(c) && (options.columns.is_some() || get(r, c).is_some()))
                .cloned()
                .collect()
        })
        .collect();
    let matches = |ei: usize, a: &Row| -> bool {
        compared[ei].iter().all(|c| {
            let e = get(&expected[ei], c).unwrap_or(&Value::Null);
            let av = get(a, c).unwrap_or(&Value::Null);
            values_match(e, av, options.tolerance)
        })
    };
    let project = |row: &Row| -> Row {
        order
            .iter()
            .filter_map(|c| get(row, c).map(|v| (c.clone(), v.clone())))
            .collect()
    };

    // Actual rows in ROWTIME order (stable).
    let mut actual_order: Vec<usize> = (0..actual.len()).collect();
    actual_order.sort_by_key(|&i| rowtime_of(&actual[i]));
    let actual_rt: Vec<Option<Millis>> = actual_order.iter().map(|&i| rowtime_of(&actual[i])).collect();

    // Pairs of (expected indices, positions in actual_order) to match as multisets, with
    // the ROWTIME of the group.
    let mut groups: Vec<(Option<Millis>, Vec<usize>, Vec<usize>)> = Vec::new();
    let rowtime_compared = named.contains(ROWTIME) && usable(&ROWTIME.to_string());
    let expected_rt: Vec<Option<Millis>> = expected
        .iter()
        .map(|r| get(r, ROWTIME).and_then(|v| if let Value::Null = v { None } else { v.as_instant() }))
        .collect();
    for (i, r) in expected.iter().enumerate() {
        if let Some(v) = get(r, ROWTIME)
            && !matches!(v, Value::Null)
            && expected_rt[i].is_none()
            && rowtime_compared
        {
            diff.problems.push(format!(
                "expected row {} has an unparsable ROWTIME {}",
                i + 1,
                v.render()
            ));
        }
    }
    if rowtime_compared && expected_rt.iter().all(Option::is_some) {
        let mut by_rt: BTreeMap<Option<Millis>, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
        for (i, rt) in expected_rt.iter().enumerate() {
            by_rt.entry(*rt).or_default().0.push(i);
        }
        for (pos, rt) in actual_rt.iter().enumerate() {
            by_rt.entry(*rt).or_default().1.push(pos);
        }
        groups.extend(by_rt.into_iter().map(|(rt, (e, a))| (rt, e, a)));
    } else {
        let mut next_expected = 0;
        let mut pos = 0;
        while pos < actual_rt.len() {
            let rt = actual_rt[pos];
            let end = (pos..actual_rt.len())
                .find(|&p| actual_rt[p] != rt)
                .unwrap_or(actual_rt.len());
            let take = (end - pos).min(expected.len() - next_expected);
            groups.push((
                rt,
                (next_expected..next_expected + take).collect(),
                (pos..end).collect(),
            ));
            next_expected += take;
            pos = end;
        }
        if next_expected < expected.len() {
            groups.push((None, (next_expected..expected.len()).collect(), Vec::new()));
        }
    }

    for (rt, exp, act) in groups {
        let mut used = vec![false; act.len()];
        for &ei in &exp {
            let found = act
                .iter()
                .enumerate()
                .find(|(k, pos)| !used[*k] && matches(ei, &actual[actual_order[**pos]]))
                .map(|(k, _)| k);
            match found {
                Some(k) => used[k] = true,
                None => diff.missing.push(DiffRow {
                    index: ei,
                    rowtime: expected_rt[ei].or(rt),
                    row: project(&expected[ei]),
                }),
            }
        }
        for (k, &pos) in act.iter().enumerate() {
            if !used[k] {
                diff.unexpected.push(DiffRow {
                    index: pos,
                    rowtime: actual_rt[pos],
                    row: project(&actual[actual_order[pos]]),
                });
            }
        }
    }
    diff.missing_columns = missing_columns;
    diff.missing.sort_by_key(|d| (d.rowtime.is_none(), d.rowtime, d.index));
    diff.unexpected
        .sort_by_key(|d| (d.rowtime.is_none(), d.rowtime, d.index));
    diff
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use datafusion::arrow::array::{Float32Array, Int32Array, StringArray, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{Field, Schema};

    fn rows(lines: &[&str]) -> Vec<Row> {
        lines.iter().map(|l| row_from_json(l).unwrap()).collect()
    }

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    /// Actual rows as the engine gives them: timestamp text becomes a TIMESTAMP value.
    fn actual_rows(lines: &[&str]) -> Vec<Row> {
        let mut rows = rows(lines);
        for row in &mut rows {
            for (_, v) in row.iter_mut() {
                if let Value::Str(s) = v
                    && s.len() >= 19
                    && let Some(ms) = parse_timestamp(s)
                {
                    *v = Value::Timestamp(ms);
                }
            }
        }
        rows
    }

    fn run(expected: &[&str], actual: &[&str], columns: Option<&[&str]>) -> StreamDiff {
        let e = rows(expected);
        let a = actual_rows(actual);
        let actual_cols: Vec<String> = a
            .first()
            .map(|r| r.iter().map(|(k, _)| k.clone()).collect())
            .unwrap_or_else(|| {
                e.first()
                    .map(|r| r.iter().map(|(k, _)| k.clone()).collect())
                    .unwrap_or_default()
            });
        let options = CompareOptions {
            columns: columns.map(cols),
            tolerance: DEFAULT_TOLERANCE,
        };
        compare_rows(&e, Some(&actual_cols), &a, &options)
    }

    #[test]
    fn same_rowtime_rows_compare_as_multiset() {
        let d = run(
            &[
                r#"{"ROWTIME": "2024-01-01 00:00:10.000", "K": "a", "N": 1}"#,
                r#"{"ROWTIME": "2024-01-01 00:00:10.000", "K": "b", "N": 2}"#,
                r#"{"ROWTIME": "2024-01-01 00:00:20.000", "K": "a", "N": 3}"#,
            ],
            &[
                r#"{"ROWTIME": "2024-01-01 00:00:10.000", "K": "b", "N": 2}"#,
                r#"{"ROWTIME": "2024-01-01 00:00:10.000", "K": "a", "N": 1}"#,
                r#"{"ROWTIME": "2024-01-01 00:00:20.000", "K": "a", "N": 3}"#,
            ],
            None,
        );
        assert!(d.is_match(), "{}", d.render(10));
    }

    #[test]
    fn order_across_rowtimes_matters() {
        // Same multiset overall, but a row sits at the wrong ROWTIME.
        let d = run(
            &[
                r#"{"ROWTIME": "2024-01-01 00:00:10.000", "K": "a"}"#,
                r#"{"ROWTIME": "2024-01-01 00:00:20.000", "K": "b"}"#,
            ],
            &[
                r#"{"ROWTIME": "2024-01-01 00:00:10.000", "K": "b"}"#,
                r#"{"ROWTIME": "2024-01-01 00:00:20.000", "K": "a"}"#,
            ],
            None,
        );
        assert!(!d.is_match());
        assert_eq!(d.missing.len(), 2);
        assert_eq!(d.unexpected.len(), 2);
    }

    #[test]
    fn duplicates_count_in_the_multiset() {
        let d = run(
            &[
                r#"{"ROWTIME": "2024-01-01 00:00:10.000", "K": "a"}"#,
                r#"{"ROWTIME": "2024-01-01 00:00:10.000", "K": "a"}"#,
            ],
            &[
                r#"{"ROWTIME": "2024-01-01 00:00:10.000", "K": "a"}"#,
                r#"{"ROWTIME": "2024-01-01 00:00:10.000", "K": "b"}"#,
            ],
            None,
        );
        assert_eq!(d.missing.len(), 1);
        assert_eq!(d.unexpected.len(), 1);
        assert_eq!(get(&d.unexpected[0].row, "K"), Some(&Value::Str("b".into())));
    }

    #[test]
    fn floats_compare_with_relative_tolerance_and_ints_exactly() {
        let ok = run(
            &[r#"{"ROWTIME": "2024-01-01 00:00:10.000", "X": 2.4166667, "Y": 12.0, "Z": 12}"#],
            &[r#"{"ROWTIME": "2024-01-01 00:00:10.000", "X": 2.41666674613, "Y": 12, "Z": 12}"#],
            None,
        );
        assert!(ok.is_match(), "{}", ok.render(10));
        let bad_float = run(
            &[r#"{"ROWTIME": "2024-01-01 00:00:10.000", "X": 2.4166667}"#],
            &[r#"{"ROWTIME": "2024-01-01 00:00:10.000", "X": 2.4167}"#],
            None,
        );
        assert!(!bad_float.is_match());
        let bad_int = run(
            &[r#"{"ROWTIME": "2024-01-01 00:00:10.000", "Z": 1000000000}"#],
            &[r#"{"ROWTIME": "2024-01-01 00:00:10.000", "Z": 1000000001}"#],
            None,
        );
        assert!(!bad_int.is_match());
        // A custom tolerance loosens the comparison.
        let e = rows(&[r#"{"X": 100.0}"#]);
        let a = rows(&[r#"{"X": 100.5}"#]);
        let loose = CompareOptions {
            columns: None,
            tolerance: 1e-2,
        };
        assert!(compare_rows(&e, Some(&cols(&["X"])), &a, &loose).is_match());
        assert!(!values_match(&Value::Int(100), &Value::Int(101), 0.5));
    }

    #[test]
    fn missing_and_extra_rows_are_reported_in_rowtime_order() {
        let d = run(
            &[
                r#"{"ROWTIME": "2024-01-01 00:00:10.000", "K": "a"}"#,
                r#"{"ROWTIME": "2024-01-01 00:00:20.000", "K": "b"}"#,
                r#"{"ROWTIME": "2024-01-01 00:00:30.000", "K": "c"}"#,
            ],
            &[
                r#"{"ROWTIME": "2024-01-01 00:00:10.000", "K": "a"}"#,
                r#"{"ROWTIME": "2024-01-01 00:00:25.000", "K": "x"}"#,
                r#"{"ROWTIME": "2024-01-01 00:00:30.000", "K": "c"}"#,
                r#"{"ROWTIME": "2024-01-01 00:00:40.000", "K": "d"}"#,
            ],
            None,
        );
        assert_eq!(d.missing.iter().map(|m| m.index).collect::<Vec<_>>(), vec![1]);
        assert_eq!(d.unexpected.len(), 2);
        let text = d.render(10);
        assert!(
            text.contains("first divergence at ROWTIME 2024-01-01 00:00:20.000"),
            "{text}"
        );
        let minus = text
            .find(r#"- {"ROWTIME": "2024-01-01 00:00:20.000", "K": "b"}"#)
            .unwrap();
        let plus = text
            .find(r#"+ {"ROWTIME": "2024-01-01 00:00:25.000", "K": "x"}"#)
            .unwrap();
        let plus2 = text
            .find(r#"+ {"ROWTIME": "2024-01-01 00:00:40.000", "K": "d"}"#)
            .unwrap();
        assert!(minus < plus && plus < plus2, "{text}");
        let limited = d.render(1);
        assert!(limited.contains("... 2 more differing row(s)"), "{limited}");
    }

    #[test]
    fn nulls_match_only_nulls() {
        let ok = run(
            &[r#"{"ROWTIME": "2024-01-01 00:00:10.000", "C": null, "N": null}"#],
            &[r#"{"ROWTIME": "2024-01-01 00:00:10.000", "C": null, "N": null}"#],
            None,
        );
        assert!(ok.is_match());
        let bad = run(
            &[r#"{"ROWTIME": "2024-01-01 00:00:10.000", "C": null}"#],
            &[r#"{"ROWTIME": "2024-01-01 00:00:10.000", "C": ""}"#],
            None,
        );
        assert!(!bad.is_match());
        assert!(!values_match(&Value::Int(0), &Value::Null, 1.0));
        assert!(
            bad.render(10).contains("differs in: C (expected null, got \"\")"),
            "{}",
            bad.render(10)
        );
    }

    #[test]
    fn compare_subset_ignores_other_columns_and_rowtime() {
        // error_stream style: only DATA_ROWTIME compared; ROWTIME not compared.
        let d = run(
            &[
                r#"{"DATA_ROWTIME": "2024-03-01 18:00:02.000"}"#,
                r#"{"DATA_ROWTIME": "2024-03-01T18:00:03"}"#,
            ],
            &[
                r#"{"ERROR_NAME": "CoercionError", "DATA_ROWTIME": "2024-03-01 18:00:02.000", "ROWTIME": "2024-03-01 18:00:02.000"}"#,
                r#"{"ERROR_NAME": "DivideByZero", "DATA_ROWTIME": "2024-03-01 18:00:03.000", "ROWTIME": "2024-03-01 18:00:03.000"}"#,
            ],
            Some(&["DATA_ROWTIME"]),
        );
        assert!(d.is_match(), "{}", d.render(10));
        let extra = run(
            &[r#"{"DATA_ROWTIME": "2024-03-01 18:00:02.000"}"#],
            &[
                r#"{"ERROR_NAME": "x", "DATA_ROWTIME": "2024-03-01 18:00:02.000", "ROWTIME": "2024-03-01 18:00:02.000"}"#,
                r#"{"ERROR_NAME": "y", "DATA_ROWTIME": "2024-03-01 18:00:03.000", "ROWTIME": "2024-03-01 18:00:03.000"}"#,
            ],
            Some(&["DATA_ROWTIME"]),
        );
        assert_eq!(extra.unexpected.len(), 1);
        assert_eq!(
            extra.unexpected[0].row,
            vec![(
                "DATA_ROWTIME".to_string(),
                Value::Timestamp(parse_timestamp("2024-03-01 18:00:03").unwrap())
            )]
        );
    }

    #[test]
    fn without_rowtime_runs_are_consumed_in_file_order() {
        // Compared without ROWTIME: two rows at t1 (any order), then one at t2.
        let e = rows(&[r#"{"K": "b"}"#, r#"{"K": "a"}"#, r#"{"K": "c"}"#]);
        let a = vec![
            vec![
                ("K".to_string(), Value::Str("a".into())),
                (ROWTIME.to_string(), Value::Timestamp(10)),
            ],
            vec![
                ("K".to_string(), Value::Str("c".into())),
                (ROWTIME.to_string(), Value::Timestamp(20)),
            ],
            vec![
                ("K".to_string(), Value::Str("b".into())),
                (ROWTIME.to_string(), Value::Timestamp(10)),
            ],
        ];
        let options = CompareOptions {
            columns: Some(cols(&["K"])),
            tolerance: DEFAULT_TOLERANCE,
        };
        assert!(compare_rows(&e, Some(&cols(&["K", "ROWTIME"])), &a, &options).is_match());
        // "c" listed before the t1 rows: wrong order.
        let e = rows(&[r#"{"K": "c"}"#, r#"{"K": "a"}"#, r#"{"K": "b"}"#]);
        assert!(!compare_rows(&e, Some(&cols(&["K", "ROWTIME"])), &a, &options).is_match());
        // Fewer rows produced than expected: the rest are missing.
        let e = rows(&[r#"{"K": "a"}"#, r#"{"K": "b"}"#, r#"{"K": "c"}"#, r#"{"K": "d"}"#]);
        let d = compare_rows(&e, Some(&cols(&["K", "ROWTIME"])), &a, &options);
        assert_eq!(d.missing.len(), 1);
        assert!(d.unexpected.is_empty());
    }

    #[test]
    fn empty_expected_means_no_rows() {
        let d = run(&[], &[], None);
        assert!(d.is_match());
        let d = run(&[], &[r#"{"ROWTIME": "2024-01-01 00:00:10.000", "K": "a"}"#], None);
        assert!(!d.is_match());
        assert_eq!(d.unexpected.len(), 1);
        // No batches at all (actual schema unknown) and nothing expected: a match.
        assert!(compare_rows(&[], None, &[], &CompareOptions::default()).is_match());
    }

    #[test]
    fn missing_and_extra_columns_are_named() {
        let e = rows(&[r#"{"ROWTIME": "2024-01-01 00:00:10.000", "K": "a", "MAX_PRICE": 1.5}"#]);
        let a = actual_rows(&[r#"{"K": "a", "max_price": 1.5, "ROWTIME": "2024-01-01 00:00:10.000"}"#]);
        let d = compare_rows(
            &e,
            Some(&cols(&["K", "max_price", "ROWTIME"])),
            &a,
            &CompareOptions::default(),
        );
        assert_eq!(d.missing_columns, vec!["MAX_PRICE".to_string()]);
        assert_eq!(d.extra_columns, vec!["max_price".to_string()]);
        let text = d.render(10);
        assert!(
            text.contains("output lacks column(s) the expected rows name: MAX_PRICE"),
            "{text}"
        );
    }

    #[test]
    fn timestamps_compare_as_instants() {
        assert!(values_match(
            &Value::Str("2024-03-01T10:00:00.5".into()),
            &Value::Timestamp(1709287200500),
            0.0
        ));
        assert!(values_match(
            &Value::Str("2024-03-01 10:00:00".into()),
            &Value::Timestamp(1709287200000),
            0.0
        ));
        assert!(!values_match(
            &Value::Str("2024-03-01 10:00:00.001".into()),
            &Value::Timestamp(1709287200000),
            0.0
        ));
        assert!(values_match(&Value::Str("2024-03-01".into()), &Value::Date(19783), 0.0));
        assert!(values_match(
            &Value::Str("10:00:00.5".into()),
            &Value::Time(36_000_500),
            0.0
        ));
    }

    #[test]
    fn batches_become_normalised_rows() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("K", DataType::Utf8, true),
            Field::new("N", DataType::Int32, true),
            Field::new("X", DataType::Float32, true),
            Field::new(ROWTIME, DataType::Timestamp(TimeUnit::Millisecond, None), false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("a"), None])),
                Arc::new(Int32Array::from(vec![Some(7), None])),
                Arc::new(Float32Array::from(vec![Some(2.4166667f32), Some(0.1)])),
                Arc::new(TimestampMillisecondArray::from(vec![1709287200000, 1709287200000])),
            ],
        )
        .unwrap();
        let (columns, actual) = batches_to_rows(&[batch]);
        assert_eq!(columns, cols(&["K", "N", "X", "ROWTIME"]));
        assert_eq!(actual[0][2].1, Value::Float(2.4166667));
        assert_eq!(actual[1][0].1, Value::Null);
        assert_eq!(
            render_row(&actual[0]),
            r#"{"K": "a", "N": 7, "X": 2.4166667, "ROWTIME": "2024-03-01 10:00:00.000"}"#
        );
        let e = rows(&[
            r#"{"ROWTIME": "2024-03-01 10:00:00.000", "K": null, "N": null, "X": 0.1}"#,
            r#"{"ROWTIME": "2024-03-01 10:00:00.000", "K": "a", "N": 7, "X": 2.4166667}"#,
        ]);
        let d = compare_rows(&e, Some(&columns), &actual, &CompareOptions::default());
        assert!(d.is_match(), "{}", d.render(10));
    }
}
