//! `char_to_date(format, s)`, `char_to_time(format, s)`, `date_to_char(format, d)` and
//! `time_to_char(format, t)`: KDA's CHAR_TO_DATE, CHAR_TO_TIME, DATE_TO_CHAR and
//! TIME_TO_CHAR, with the same SimpleDateFormat pattern language and parsing rules as
//! CHAR_TO_TIMESTAMP / TIMESTAMP_TO_CHAR ([`super::simple_date_format`]).
//!
//! * `char_to_date(VARCHAR, VARCHAR)` → DATE (Date32): the text is parsed as by
//!   CHAR_TO_TIMESTAMP (absent fields default to 1970-01-01 00:00:00) and the time of
//!   day is dropped.
//! * `char_to_time(VARCHAR, VARCHAR)` → TIME (Time32(ms)): parsed the same way, the date
//!   is dropped.
//! * A text that does not match the format, or has out-of-range fields, is a row error
//!   (decision A25). NULL in → NULL.
//! * `date_to_char(VARCHAR, DATE)` formats midnight of the date; `time_to_char(VARCHAR,
//!   TIME)` formats the time on 1970-01-01 (so date letters give 1970-01-01). Like
//!   TIMESTAMP_TO_CHAR, a NULL date/time gives the string `'null'`; a NULL format NULL.
//!
//! An invalid literal format is a plan error.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Date32Builder, StringBuilder, Time32MillisecondBuilder};
use datafusion::arrow::datatypes::{DataType, Date32Type, FieldRef, Time32MillisecondType, TimeUnit};
use datafusion::common::{DataFusionError, Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::common::{MILLIS_PER_DAY, check_arity, coerce_string, eval_arrays, return_field, scalar_str, utf8};
use super::simple_date_format::{FormatCache, format, parse, tokenize};

const TIME_TYPE: DataType = DataType::Time32(TimeUnit::Millisecond);

/// Which of the four functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DateTimeFn {
    CharToDate,
    CharToTime,
    DateToChar,
    TimeToChar,
}

impl DateTimeFn {
    pub const ALL: [DateTimeFn; 4] = [
        DateTimeFn::CharToDate,
        DateTimeFn::CharToTime,
        DateTimeFn::DateToChar,
        DateTimeFn::TimeToChar,
    ];

    fn udf_name(self) -> &'static str {
        match self {
            DateTimeFn::CharToDate => "char_to_date",
            DateTimeFn::CharToTime => "char_to_time",
            DateTimeFn::DateToChar => "date_to_char",
            DateTimeFn::TimeToChar => "time_to_char",
        }
    }

    fn sql_name(self) -> &'static str {
        match self {
            DateTimeFn::CharToDate => "CHAR_TO_DATE",
            DateTimeFn::CharToTime => "CHAR_TO_TIME",
            DateTimeFn::DateToChar => "DATE_TO_CHAR",
            DateTimeFn::TimeToChar => "TIME_TO_CHAR",
        }
    }

    fn result_type(self) -> DataType {
        match self {
            DateTimeFn::CharToDate => DataType::Date32,
            DateTimeFn::CharToTime => TIME_TYPE,
            DateTimeFn::DateToChar | DateTimeFn::TimeToChar => DataType::Utf8,
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DateTimeFormat {
    function: DateTimeFn,
    signature: Signature,
}

impl DateTimeFormat {
    pub fn new(function: DateTimeFn) -> Self {
        DateTimeFormat {
            function,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

fn coerce_date(name: &str, t: &DataType) -> Result<DataType> {
    match t {
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) | DataType::Null => Ok(DataType::Date32),
        other => plan_err!("{name}: the date must be a DATE, got {other}"),
    }
}

fn coerce_time(name: &str, t: &DataType) -> Result<DataType> {
    match t {
        DataType::Time32(_) | DataType::Time64(_) | DataType::Null => Ok(TIME_TYPE),
        other => plan_err!("{name}: the time must be a TIME, got {other}"),
    }
}

impl ScalarUDFImpl for DateTimeFormat {
    fn name(&self) -> &str {
        self.function.udf_name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.function.sql_name();
        check_arity(name, arg_types, 2, 2)?;
        let value = match self.function {
            DateTimeFn::CharToDate | DateTimeFn::CharToTime => coerce_string(name, &arg_types[1], "the text")?,
            DateTimeFn::DateToChar => coerce_date(name, &arg_types[1])?,
            DateTimeFn::TimeToChar => coerce_time(name, &arg_types[1])?,
        };
        Ok(vec![coerce_string(name, &arg_types[0], "the format")?, value])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_arity(self.function.sql_name(), arg_types, 2, 2)?;
        Ok(self.function.result_type())
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        if let Some(Some(f)) = args.scalar_arguments.first()
            && let Some(f) = scalar_str(f)
            && let Err(e) = tokenize(f)
        {
            return plan_err!("{}: {e}", self.function.sql_name());
        }
        Ok(return_field(self.name(), self.function.result_type()))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let function = self.function;
        let name = function.sql_name();
        if let ColumnarValue::Scalar(f) = &args.args[0]
            && f.is_null()
        {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from(function.result_type())?));
        }
        eval_arrays(&args.args, args.number_rows, |a| {
            let fmt = utf8(&a[0])?;
            let mut formats = FormatCache::default();
            let n = a[1].len();
            match function {
                DateTimeFn::CharToDate | DateTimeFn::CharToTime => {
                    let text = utf8(&a[1])?;
                    let mut dates = Date32Builder::with_capacity(n);
                    let mut times = Time32MillisecondBuilder::with_capacity(n);
                    for i in 0..n {
                        if fmt.is_null(i) || text.is_null(i) {
                            dates.append_null();
                            times.append_null();
                            continue;
                        }
                        let tokens = formats.get(name, fmt.value(i))?;
                        let ms = parse(&tokens, text.value(i))
                            .map_err(|e| DataFusionError::Execution(format!("{name}('{}', ...): {e}", fmt.value(i))))?;
                        if function == DateTimeFn::CharToDate {
                            let days = i32::try_from(ms.div_euclid(MILLIS_PER_DAY))
                                .map_err(|_| DataFusionError::Execution(format!("{name}: date out of range")))?;
                            dates.append_value(days);
                        } else {
                            times.append_value(ms.rem_euclid(MILLIS_PER_DAY) as i32);
                        }
                    }
                    Ok(if function == DateTimeFn::CharToDate {
                        Arc::new(dates.finish()) as ArrayRef
                    } else {
                        Arc::new(times.finish()) as ArrayRef
                    })
                }
                DateTimeFn::DateToChar | DateTimeFn::TimeToChar => {
                    let millis: Vec<Option<i64>> = match a[1].data_type() {
                        DataType::Date32 => a[1]
                            .as_primitive::<Date32Type>()
                            .iter()
                            .map(|d| d.map(|d| d as i64 * MILLIS_PER_DAY))
                            .collect(),
                        DataType::Time32(TimeUnit::Millisecond) => a[1]
                            .as_primitive::<Time32MillisecondType>()
                            .iter()
                            .map(|t| t.map(|t| t as i64))
                            .collect(),
                        DataType::Null => vec![None; n],
                        other => return exec_err!("{name}: unexpected argument type {other}"),
                    };
                    let mut out = StringBuilder::with_capacity(n, n * 16);
                    for (i, ms) in millis.into_iter().enumerate() {
                        match ms {
                            _ if fmt.is_null(i) => out.append_null(),
                            None => out.append_value("null"),
                            Some(ms) => {
                                let tokens = formats.get(name, fmt.value(i))?;
                                out.append_value(format(&tokens, ms));
                            }
                        }
                    }
                    Ok(Arc::new(out.finish()) as ArrayRef)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::common::test_util::{table, value, value_type};

    #[tokio::test]
    async fn char_to_date_and_time() {
        assert_eq!(
            value("SELECT char_to_date('yyyy-MM-dd', '2011-02-08')").await,
            "2011-02-08"
        );
        assert_eq!(
            value_type("SELECT char_to_date('yyyy-MM-dd', '2011-02-08')").await,
            "Date32"
        );
        assert_eq!(
            value("SELECT char_to_date('dd/MMM/yyyy:HH:mm:ss', '10/Oct/2000:13:55:36')").await,
            "2000-10-10"
        );
        assert_eq!(
            value("SELECT char_to_date('MMM dd,y', 'March 7, 10')").await,
            "0010-03-07"
        );
        assert_eq!(value("SELECT char_to_time('HH:mm:ss', '13:55:36')").await, "13:55:36");
        assert_eq!(value("SELECT char_to_time('hh:mm a', '01:30 PM')").await, "13:30:00");
        assert_eq!(
            value("SELECT char_to_time('HH:mm:ss.SSS', '23:59:59.999')").await,
            "23:59:59.999"
        );
        assert_eq!(value_type("SELECT char_to_time('HH', '13')").await, "Time32(ms)");
        assert_eq!(
            value("SELECT char_to_time('yyyy-MM-dd HH:mm', '2011-02-08 07:23')").await,
            "07:23:00"
        );
        assert_eq!(value("SELECT char_to_date('yyyy', NULL)").await, "NULL");
        assert_eq!(value("SELECT char_to_time(NULL, '10')").await, "NULL");
        let v = value("SELECT char_to_date('yyyy-MM-dd', '2011-02-30')").await;
        assert!(v.starts_with("ERR") && v.contains("CHAR_TO_DATE"), "{v}");
        let v = value("SELECT char_to_time('HH:mm', '24:00')").await;
        assert!(v.starts_with("ERR"), "{v}");
        let v = value("SELECT char_to_date('yyyy-qq', '2011')").await;
        assert!(v.starts_with("ERR") && v.contains("illegal pattern character"), "{v}");
    }

    #[tokio::test]
    async fn date_and_time_to_char() {
        assert_eq!(
            value("SELECT date_to_char('EEEE, MMMM d, yyyy', DATE '2011-02-08')").await,
            "Tuesday, February 8, 2011"
        );
        assert_eq!(
            value("SELECT date_to_char('yyyy-MM-dd HH:mm', DATE '1969-12-31')").await,
            "1969-12-31 00:00"
        );
        assert_eq!(
            value("SELECT time_to_char('hh:mm:ss.SSS a', CAST('13:55:36.5' AS TIME))").await,
            "01:55:36.500 PM"
        );
        assert_eq!(
            value("SELECT time_to_char('yyyy HH', CAST('07:00:00' AS TIME))").await,
            "1970 07"
        );
        assert_eq!(value("SELECT date_to_char('yyyy', CAST(NULL AS DATE))").await, "null");
        assert_eq!(value("SELECT time_to_char('HH', NULL)").await, "null");
        assert_eq!(value("SELECT date_to_char(NULL, DATE '2011-02-08')").await, "NULL");
        let v = value("SELECT date_to_char('yyyy-bb', DATE '2011-02-08')").await;
        assert!(v.starts_with("ERR"), "{v}");
        let v = value("SELECT date_to_char('yyyy', 'x')").await;
        assert!(v.starts_with("ERR"), "{v}");
    }

    #[tokio::test]
    async fn round_trip_on_columns() {
        let t = table(
            "SELECT date_to_char('dd.MM.yyyy', char_to_date('yyyyMMdd', s)) AS d, \
             time_to_char('HH:mm', char_to_time('HHmm', s2)) AS t FROM \
             (VALUES ('20240229', '0930'), ('19991231', '2359'), (NULL, NULL)) AS v(s, s2)",
        )
        .await;
        for row in [
            "| 29.02.2024 | 09:30 |",
            "| 31.12.1999 | 23:59 |",
            "| null       | null  |",
        ] {
            assert!(t.contains(row), "{row} not in\n{t}");
        }
    }
}
