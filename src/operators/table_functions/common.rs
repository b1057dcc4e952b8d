//! What the table functions share: reading their literal arguments, finding the cursor's
//! numeric columns and reading them as `f64`, laying out output schemas (ROWTIME last),
//! a deterministic hasher, and epoch-aligned tumbling windows.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, RecordBatch, TimestampMillisecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Schema, SchemaRef, TimeUnit};
use datafusion::common::ScalarValue;

use crate::error::Result;
use crate::time::Millis;

/// A hasher with fixed keys: iteration orders (and so outputs) do not change between runs.
pub(crate) type FixedState = BuildHasherDefault<DefaultHasher>;
pub(crate) type FixedHashMap<K, V> = HashMap<K, V, FixedState>;

/// The literal arguments of one call (the cursor excluded), with errors that name the
/// function and the argument.
pub(crate) struct Args<'a> {
    pub func: &'static str,
    pub values: &'a [ScalarValue],
}

impl<'a> Args<'a> {
    pub fn new(func: &'static str, values: &'a [ScalarValue]) -> Self {
        Args { func, values }
    }

    /// Checks the number of arguments after the cursor; `names` lists them all.
    pub fn arity(&self, required: usize, names: &[&str]) -> Result<(), String> {
        let n = self.values.len();
        if n < required || n > names.len() {
            let expected = if required == names.len() {
                format!("{required}")
            } else {
                format!("{required} to {}", names.len())
            };
            return Err(format!(
                "{}: expected a cursor and {expected} argument(s) ({}), got {n} after the cursor",
                self.func,
                names.join(", ")
            ));
        }
        Ok(())
    }

    fn get(&self, i: usize) -> Option<&ScalarValue> {
        self.values.get(i).map(unwrap_dictionary)
    }

    fn bad(&self, name: &str, what: &str, v: &ScalarValue) -> String {
        format!("{}: argument {name} must be {what}, got {}", self.func, describe(v))
    }

    /// An integer argument in `lo..=hi`, or `default` when absent.
    pub fn int(&self, i: usize, name: &str, default: Option<i64>, lo: i64, hi: i64) -> Result<i64, String> {
        let what = format!("an integer between {lo} and {hi}");
        let Some(v) = self.get(i) else {
            return default.ok_or_else(|| format!("{}: argument {name} is missing", self.func));
        };
        let x = scalar_i64(v).ok_or_else(|| self.bad(name, &what, v))?;
        if x < lo || x > hi {
            return Err(self.bad(name, &what, v));
        }
        Ok(x)
    }

    /// A finite number greater than zero.
    pub fn positive(&self, i: usize, name: &str) -> Result<f64, String> {
        let Some(v) = self.get(i) else {
            return Err(format!("{}: argument {name} is missing", self.func));
        };
        match scalar_f64(v) {
            Some(x) if x.is_finite() && x > 0.0 => Ok(x),
            _ => Err(self.bad(name, "a number greater than zero", v)),
        }
    }

    pub fn boolean(&self, i: usize, name: &str, default: bool) -> Result<bool, String> {
        let Some(v) = self.get(i) else { return Ok(default) };
        match v {
            ScalarValue::Boolean(Some(b)) => Ok(*b),
            ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s))
                if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") =>
            {
                Ok(s.eq_ignore_ascii_case("true"))
            }
            _ => match scalar_i64(v) {
                Some(0) => Ok(false),
                Some(1) => Ok(true),
                _ => Err(self.bad(name, "TRUE or FALSE", v)),
            },
        }
    }

    /// A string literal (a column name in single quotes).
    pub fn string(&self, i: usize, name: &str) -> Result<String, String> {
        let Some(v) = self.get(i) else {
            return Err(format!("{}: argument {name} is missing", self.func));
        };
        match v {
            ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => {
                Ok(s.clone())
            }
            _ => Err(self.bad(name, "a string literal in single quotes", v)),
        }
    }
}

fn unwrap_dictionary(v: &ScalarValue) -> &ScalarValue {
    match v {
        ScalarValue::Dictionary(_, inner) => unwrap_dictionary(inner),
        other => other,
    }
}

fn describe(v: &ScalarValue) -> String {
    if v.is_null() {
        "NULL".to_string()
    } else {
        format!("{v} ({})", v.data_type())
    }
}

fn scalar_int(v: &ScalarValue) -> Option<i64> {
    use ScalarValue as S;
    match unwrap_dictionary(v) {
        S::Int8(Some(x)) => Some(*x as i64),
        S::Int16(Some(x)) => Some(*x as i64),
        S::Int32(Some(x)) => Some(*x as i64),
        S::Int64(Some(x)) => Some(*x),
        S::UInt8(Some(x)) => Some(*x as i64),
        S::UInt16(Some(x)) => Some(*x as i64),
        S::UInt32(Some(x)) => Some(*x as i64),
        S::UInt64(Some(x)) => i64::try_from(*x).ok(),
        _ => None,
    }
}

/// An integer, also from an integral DOUBLE or DECIMAL literal (`100.0`, `1E2`).
fn scalar_i64(v: &ScalarValue) -> Option<i64> {
    scalar_int(v).or_else(|| {
        let f = scalar_f64(v)?;
        (f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
    })
}

fn scalar_f64(v: &ScalarValue) -> Option<f64> {
    use ScalarValue as S;
    match unwrap_dictionary(v) {
        S::Float32(Some(x)) => Some(*x as f64),
        S::Float64(Some(x)) => Some(*x),
        S::Decimal128(Some(x), _, scale) => Some(*x as f64 / 10f64.powi(*scale as i32)),
        other => scalar_int(other).map(|x| x as f64),
    }
}

/// The types the machine-learning functions read (KDA: DOUBLE, INTEGER, FLOAT, TINYINT,
/// SMALLINT, REAL, BIGINT). DECIMAL is documented as unsupported: such columns are passed
/// through and ignored, like strings.
pub(crate) fn is_model_numeric(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float16
            | DataType::Float32
            | DataType::Float64
    )
}

/// Checks that the cursor ends with ROWTIME and returns that field.
pub(crate) fn rowtime_field(func: &str, input: &SchemaRef) -> Result<FieldRef, String> {
    match input.fields().last() {
        Some(f) if matches!(f.data_type(), DataType::Timestamp(TimeUnit::Millisecond, _)) => Ok(Arc::clone(f)),
        _ => Err(format!("{func}: the cursor's rows must end with a ROWTIME column")),
    }
}

/// The cursor's numeric columns (ROWTIME excluded), in order.
pub(crate) fn numeric_columns(func: &str, input: &SchemaRef) -> Result<Vec<usize>, String> {
    rowtime_field(func, input)?;
    let n = input.fields().len() - 1;
    let cols: Vec<usize> = (0..n)
        .filter(|&i| is_model_numeric(input.field(i).data_type()))
        .collect();
    if cols.is_empty() {
        return Err(format!(
            "{func}: the cursor has no numeric column (DOUBLE, REAL, INTEGER, BIGINT, SMALLINT or TINYINT)"
        ));
    }
    Ok(cols)
}

/// The cursor's columns (ROWTIME excluded), then `extra`, then ROWTIME.
pub(crate) fn append_before_rowtime(func: &str, input: &SchemaRef, extra: Vec<Field>) -> Result<SchemaRef, String> {
    let rowtime = rowtime_field(func, input)?;
    let n = input.fields().len() - 1;
    let mut fields: Vec<FieldRef> = input.fields().iter().take(n).cloned().collect();
    fields.extend(extra.into_iter().map(Arc::new));
    fields.push(rowtime);
    Ok(Arc::new(Schema::new_with_metadata(fields, input.metadata().clone())))
}

/// `batch`'s columns (ROWTIME excluded), then `extra`, then ROWTIME, under `schema`.
pub(crate) fn batch_with_extra(batch: &RecordBatch, schema: &SchemaRef, extra: Vec<ArrayRef>) -> Result<RecordBatch> {
    let n = batch.num_columns();
    let mut columns: Vec<ArrayRef> = batch.columns()[..n - 1].to_vec();
    columns.extend(extra);
    columns.push(Arc::clone(batch.column(n - 1)));
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// The numeric columns of a batch as `f64` arrays (one cast per column per batch).
pub(crate) fn numeric_arrays(batch: &RecordBatch, cols: &[usize]) -> Result<Vec<Float64Array>> {
    cols.iter()
        .map(|&c| {
            Ok(cast(batch.column(c), &DataType::Float64)?
                .as_primitive::<Float64Type>()
                .clone())
        })
        .collect()
}

/// Reads row `i` into `out`; false when a value is NULL, NaN or infinite.
pub(crate) fn read_row(arrays: &[Float64Array], i: usize, out: &mut [f64]) -> bool {
    for (a, o) in arrays.iter().zip(out.iter_mut()) {
        if a.is_null(i) {
            return false;
        }
        let v = a.value(i);
        if !v.is_finite() {
            return false;
        }
        *o = v;
    }
    true
}

/// A JSON number (serde_json's shortest round-trip form); `null` when not finite.
pub(crate) fn json_number(x: f64) -> String {
    serde_json::to_string(&x).unwrap_or_else(|_| "null".to_string())
}

/// A JSON string literal.
pub(crate) fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

/// Finds a column by its stored name, exactly (KDA: case-sensitive, as stored). ROWTIME
/// itself may be named.
pub(crate) fn find_column(func: &str, input: &SchemaRef, name: &str) -> Result<usize, String> {
    rowtime_field(func, input)?;
    if let Some(i) = input.fields().iter().position(|f| f.name() == name) {
        return Ok(i);
    }
    let hint = input
        .fields()
        .iter()
        .find(|f| f.name().eq_ignore_ascii_case(name))
        .map(|f| format!(" (column names are case-sensitive: did you mean '{}'?)", f.name()))
        .unwrap_or_default();
    let names: Vec<&str> = input.fields().iter().map(|f| f.name().as_str()).collect();
    Err(format!(
        "{func}: the cursor has no column '{name}'{hint}; its columns are {}",
        names.join(", ")
    ))
}

/// Epoch-aligned tumbling windows of `width` ms (A8): a row at `t` belongs to
/// `[floor(t / width) * width, ... + width)`; a window is emitted when a row or a bound at
/// or after its end arrives, with ROWTIME = its end.
#[derive(Debug, Clone)]
pub(crate) struct TumblingClock {
    pub width: Millis,
    /// The end of the open window, if a row opened one.
    pub open_end: Option<Millis>,
}

impl TumblingClock {
    pub fn new(width: Millis) -> Self {
        TumblingClock { width, open_end: None }
    }

    /// The end of the window holding `t`.
    pub fn end_of(&self, t: Millis) -> Millis {
        let start = t.div_euclid(self.width).saturating_mul(self.width);
        start.saturating_add(self.width)
    }

    /// Splits a batch into runs of rows of one window: `(first row, end row, window end)`.
    /// A row whose ROWTIME went backwards (never on a well-formed stream) joins the open
    /// window rather than reopening a closed one.
    pub fn runs(&self, rowtimes: &TimestampMillisecondArray) -> Vec<(usize, usize, Millis)> {
        let mut runs: Vec<(usize, usize, Millis)> = Vec::new();
        let mut current = self.open_end;
        for i in 0..rowtimes.len() {
            let end = if rowtimes.is_null(i) {
                current.unwrap_or(Millis::MAX)
            } else {
                let e = self.end_of(rowtimes.value(i));
                match current {
                    Some(c) if e < c => c,
                    _ => e,
                }
            };
            current = Some(end);
            match runs.last_mut() {
                Some(last) if last.2 == end => last.1 = i + 1,
                _ => runs.push((i, i + 1, end)),
            }
        }
        runs
    }

    /// Whether `bound` closes the open window.
    pub fn closes(&self, bound: Millis) -> bool {
        self.open_end.is_some_and(|e| bound >= e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_align_to_the_epoch() {
        let c = TumblingClock::new(10_000);
        assert_eq!(c.end_of(0), 10_000);
        assert_eq!(c.end_of(9_999), 10_000);
        assert_eq!(c.end_of(10_000), 20_000);
        assert_eq!(c.end_of(-1), 0);
        let times = TimestampMillisecondArray::from(vec![1, 5, 10_000, 10_001, 35_000]);
        assert_eq!(c.runs(&times), vec![(0, 2, 10_000), (2, 4, 20_000), (4, 5, 40_000)]);
    }

    #[test]
    fn arguments_are_checked_by_name() {
        let v = [ScalarValue::Int64(Some(0)), ScalarValue::Utf8(Some("x".into()))];
        let a = Args::new("F", &v);
        let e = a.int(0, "numberOfTrees", None, 1, 1000).unwrap_err();
        assert!(e.contains("F") && e.contains("numberOfTrees"), "{e}");
        assert!(a.int(1, "k", None, 1, 5).is_err());
        assert_eq!(a.string(1, "columnName").unwrap(), "x");
        assert_eq!(a.int(5, "absent", Some(7), 1, 10).unwrap(), 7);
        let d = [
            ScalarValue::Decimal128(Some(2500), 5, 2),
            ScalarValue::Float64(Some(0.5)),
        ];
        let a = Args::new("F", &d);
        assert_eq!(a.int(0, "n", None, 1, 100).unwrap(), 25);
        assert_eq!(a.positive(1, "r").unwrap(), 0.5);
        assert!(
            a.arity(3, &["a", "b", "c"])
                .unwrap_err()
                .contains("expected a cursor and 3")
        );
    }
}
