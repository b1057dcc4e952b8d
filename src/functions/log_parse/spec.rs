//! Column descriptions of the log parsers and the typed conversion of parsed text.
//!
//! A column list is a string literal such as
//! `'COL_1 TYPE VARCHAR(16), "ts" TYPE TIMESTAMP ''dd/MMM/yyyy:HH:mm:ss'' NOT NULL START 0 FOR 20'`:
//! comma-separated descriptions `name [TYPE] type [NOT NULL] ['format'] [START n [FOR len]]`.
//! Unquoted names are upper-cased (KDA identifier rule), `"quoted"` names are kept exactly.
//! Type names are KDA's (`crate::types::SqlType::parse`); BINARY/VARBINARY are not
//! supported (KDA: "parsing of binary files is not supported"). A quoted format is a
//! SimpleDateFormat pattern and is allowed only on DATE, TIME and TIMESTAMP columns.
//!
//! Conversion of a field's text (`ColumnBuilder::push`):
//! * CHAR(n)/VARCHAR(n): the text, truncated to n characters (CHAR blank-padded to n);
//!   an empty field is the empty string.
//! * every other type: the text without surrounding blanks; an empty field is NULL;
//!   integers (range-checked), REAL/DOUBLE, DECIMAL(p,s), BOOLEAN (`true`/`false`, any
//!   case); DATE/TIME/TIMESTAMP with the column's format, else `yyyy-MM-dd`,
//!   `HH:mm:ss[.fff]`, `yyyy-MM-dd HH:mm:ss[.fff]` (`crate::time::parse_timestamp`).
//! * text that does not convert, and NULL in a NOT NULL column, is a row error.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBufferBuilder, BooleanBuilder, Date32Builder, Float32Builder, Float64Builder, Int64Builder,
    StringBuilder, StructArray, Time32MillisecondBuilder, TimestampMillisecondBuilder,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::{CastOptions, cast, cast_with_options};
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{DataFusionError, Result};

use crate::types::SqlType;

use super::super::common::MILLIS_PER_DAY;
use super::super::simple_date_format::{Token, parse as parse_date_format, tokenize};

/// One field of a parser's ROW result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OutColumn {
    pub name: String,
    pub sql_type: SqlType,
    pub not_null: bool,
    /// SimpleDateFormat pattern of a DATE/TIME/TIMESTAMP column.
    pub format: Option<Arc<Vec<Token>>>,
    /// FIXED_COLUMN_LOG_PARSE: 0-based start character and optional length.
    pub start: Option<usize>,
    pub len: Option<usize>,
}

impl OutColumn {
    pub fn new(name: impl Into<String>, sql_type: SqlType) -> Self {
        OutColumn {
            name: name.into(),
            sql_type,
            not_null: false,
            format: None,
            start: None,
            len: None,
        }
    }

    /// `COLUMN1`, `COLUMN2`, ... (1-based `n`).
    pub fn numbered(n: usize, sql_type: SqlType) -> Self {
        OutColumn::new(format!("COLUMN{n}"), sql_type)
    }
}

/// The Arrow fields of a ROW result. Every field is nullable: a row that does not
/// match is a NULL struct whose fields read NULL.
pub(crate) fn struct_fields(columns: &[OutColumn]) -> Fields {
    columns
        .iter()
        .map(|c| Field::new(&c.name, c.sql_type.arrow_type(), true))
        .collect()
}

/// What a function's column descriptions may contain.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpecRules {
    /// The `TYPE` keyword is required after the name (VARIABLE/FIXED_COLUMN_LOG_PARSE).
    pub type_keyword: bool,
    /// `START n [FOR len]` is required (FIXED_COLUMN_LOG_PARSE); otherwise not allowed.
    pub positions: bool,
    /// The type may be left out, meaning VARCHAR(n) (REGEX_LOG_PARSE's column list).
    pub default_varchar: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    /// `"name"`
    Quoted(String),
    /// `'text'`
    Str(String),
    /// `( ... )` right after a type name, without the parentheses
    Paren(String),
}

/// Splits a column list at top-level commas (not inside parentheses or quotes).
fn split_descriptions(spec: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut start = 0;
    for (i, c) in spec.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth = depth.checked_sub(1).ok_or("unbalanced ')'")?,
            (None, ',') if depth == 0 => {
                parts.push(&spec[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".to_string());
    }
    if depth != 0 {
        return Err("unbalanced '('".to_string());
    }
    parts.push(&spec[start..]);
    Ok(parts)
}

/// A quoted piece starting at `chars[i] == q`; a doubled quote is one quote character.
/// Returns the text and the index after the closing quote.
fn quoted(chars: &[char], i: usize, q: char) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut j = i + 1;
    loop {
        match chars.get(j) {
            None => return Err(format!("unterminated {q}")),
            Some(&c) if c == q && chars.get(j + 1) == Some(&q) => {
                out.push(q);
                j += 2;
            }
            Some(&c) if c == q => return Ok((out, j + 1)),
            Some(&c) => {
                out.push(c);
                j += 1;
            }
        }
    }
}

fn tokenize_description(desc: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = desc.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' {
            let (s, j) = quoted(&chars, i, '"')?;
            toks.push(Tok::Quoted(s));
            i = j;
        } else if c == '\'' {
            let (s, j) = quoted(&chars, i, '\'')?;
            toks.push(Tok::Str(s));
            i = j;
        } else if c == '(' {
            let close = chars[i..].iter().position(|&c| c == ')').ok_or("unbalanced '('")?;
            toks.push(Tok::Paren(chars[i + 1..i + close].iter().collect()));
            i += close + 1;
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && !matches!(chars[i], '"' | '\'' | '(' | ')') {
                i += 1;
            }
            if i == start {
                return Err(format!("unexpected '{c}'"));
            }
            toks.push(Tok::Word(chars[start..i].iter().collect()));
        }
    }
    Ok(toks)
}

fn is_word(t: Option<&Tok>, kw: &str) -> bool {
    matches!(t, Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
}

fn number(t: Option<&Tok>, what: &str) -> Result<usize, String> {
    match t {
        Some(Tok::Word(w)) => w
            .parse::<usize>()
            .map_err(|_| format!("{what} must be a non-negative integer, got '{w}'")),
        _ => Err(format!("{what} must be followed by a number")),
    }
}

/// Parses one column description.
fn parse_description(desc: &str, rules: SpecRules) -> Result<OutColumn, String> {
    let toks = tokenize_description(desc)?;
    let mut it = toks.iter().peekable();
    let name = match it.next() {
        Some(Tok::Word(w)) => w.to_uppercase(),
        Some(Tok::Quoted(q)) => q.clone(),
        _ => return Err("expected a column name".to_string()),
    };
    if is_word(it.peek().copied(), "TYPE") {
        it.next();
    } else if rules.type_keyword {
        return Err(format!("expected TYPE after column name {name}"));
    }
    let keywords = ["NOT", "START", "FOR"];
    let mut type_text = String::new();
    while let Some(Tok::Word(w)) = it.peek() {
        if keywords.iter().any(|k| w.eq_ignore_ascii_case(k)) {
            break;
        }
        if !type_text.is_empty() {
            type_text.push(' ');
        }
        type_text.push_str(w);
        it.next();
        if let Some(Tok::Paren(p)) = it.peek() {
            type_text.push_str(&format!("({p})"));
            it.next();
            break;
        }
    }
    let sql_type = match (type_text.is_empty(), rules.default_varchar) {
        (false, _) => SqlType::parse(&type_text)?,
        (true, Some(n)) => SqlType::Varchar(n),
        (true, None) => return Err(format!("column {name} has no type")),
    };
    if matches!(sql_type, SqlType::Binary(_) | SqlType::Varbinary(_)) {
        return Err(format!(
            "column {name}: parsing BINARY/VARBINARY values is not supported"
        ));
    }
    let mut column = OutColumn::new(name, sql_type);
    while let Some(t) = it.next() {
        match t {
            Tok::Word(w) if w.eq_ignore_ascii_case("NOT") => {
                if !is_word(it.next(), "NULL") {
                    return Err(format!("column {}: expected NULL after NOT", column.name));
                }
                column.not_null = true;
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("START") && rules.positions => {
                column.start = Some(number(it.next(), "START")?);
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("FOR") && rules.positions && column.start.is_some() => {
                column.len = Some(number(it.next(), "FOR")?);
            }
            Tok::Str(f) => {
                if !matches!(column.sql_type, SqlType::Date | SqlType::Time | SqlType::Timestamp) {
                    return Err(format!(
                        "column {}: a format is allowed only on DATE, TIME and TIMESTAMP columns",
                        column.name
                    ));
                }
                column.format = Some(Arc::new(tokenize(f)?));
            }
            Tok::Word(w) | Tok::Quoted(w) | Tok::Paren(w) => {
                return Err(format!("column {}: unexpected '{w}'", column.name));
            }
        }
    }
    if rules.positions && column.start.is_none() {
        return Err(format!("column {}: START is required", column.name));
    }
    Ok(column)
}

/// Parses a column list. Names must be distinct.
pub(crate) fn parse_columns(spec: &str, rules: SpecRules) -> Result<Vec<OutColumn>, String> {
    let mut columns: Vec<OutColumn> = Vec::new();
    for desc in split_descriptions(spec)? {
        if desc.trim().is_empty() {
            return Err("empty column description".to_string());
        }
        let column = parse_description(desc, rules).map_err(|e| format!("{e} in '{}'", desc.trim()))?;
        check_unique(&columns, &column.name)?;
        columns.push(column);
    }
    Ok(columns)
}

pub(crate) fn check_unique(columns: &[OutColumn], name: &str) -> Result<(), String> {
    if columns.iter().any(|c| c.name == name) {
        return Err(format!("duplicate column name {name}"));
    }
    Ok(())
}

/// The byte length of the first `max` characters of `s`.
fn truncated_len(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    s.char_indices().nth(max).map_or(s.len(), |(i, _)| i)
}

fn parse_time_of_day(s: &str) -> Option<i64> {
    use chrono::{NaiveTime, Timelike};
    let t = NaiveTime::parse_from_str(s, "%H:%M:%S%.f")
        .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M"))
        .ok()?;
    Some(t.num_seconds_from_midnight() as i64 * 1000 + (t.nanosecond() / 1_000_000) as i64)
}

/// Builds the Arrow array of one column from field texts.
enum ColumnBuilder {
    Text {
        b: StringBuilder,
        max: usize,
        pad: bool,
    },
    Int {
        b: Int64Builder,
        min: i64,
        max: i64,
    },
    Real(Float32Builder),
    Double(Float64Builder),
    /// Trimmed text, converted with Arrow's decimal cast at the end.
    Decimal(StringBuilder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    Time(Time32MillisecondBuilder),
    Timestamp(TimestampMillisecondBuilder),
}

impl ColumnBuilder {
    fn new(t: &SqlType, capacity: usize) -> Self {
        let int = |min: i64, max: i64| ColumnBuilder::Int {
            b: Int64Builder::with_capacity(capacity),
            min,
            max,
        };
        match t {
            SqlType::Char(n) => ColumnBuilder::Text {
                b: StringBuilder::with_capacity(capacity, capacity * 8),
                max: *n as usize,
                pad: true,
            },
            SqlType::Varchar(n) => ColumnBuilder::Text {
                b: StringBuilder::with_capacity(capacity, capacity * 8),
                max: *n as usize,
                pad: false,
            },
            // Not produced by `parse_columns`; kept as text if ever asked for.
            SqlType::Binary(_) | SqlType::Varbinary(_) => ColumnBuilder::Text {
                b: StringBuilder::new(),
                max: usize::MAX,
                pad: false,
            },
            SqlType::TinyInt => int(i8::MIN as i64, i8::MAX as i64),
            SqlType::SmallInt => int(i16::MIN as i64, i16::MAX as i64),
            SqlType::Integer => int(i32::MIN as i64, i32::MAX as i64),
            SqlType::BigInt => int(i64::MIN, i64::MAX),
            SqlType::Decimal { .. } => ColumnBuilder::Decimal(StringBuilder::new()),
            SqlType::Real => ColumnBuilder::Real(Float32Builder::with_capacity(capacity)),
            SqlType::Double => ColumnBuilder::Double(Float64Builder::with_capacity(capacity)),
            SqlType::Boolean => ColumnBuilder::Bool(BooleanBuilder::with_capacity(capacity)),
            SqlType::Date => ColumnBuilder::Date(Date32Builder::with_capacity(capacity)),
            SqlType::Time => ColumnBuilder::Time(Time32MillisecondBuilder::with_capacity(capacity)),
            SqlType::Timestamp => ColumnBuilder::Timestamp(TimestampMillisecondBuilder::with_capacity(capacity)),
        }
    }

    fn append_null(&mut self) {
        match self {
            ColumnBuilder::Text { b, .. } | ColumnBuilder::Decimal(b) => b.append_null(),
            ColumnBuilder::Int { b, .. } => b.append_null(),
            ColumnBuilder::Real(b) => b.append_null(),
            ColumnBuilder::Double(b) => b.append_null(),
            ColumnBuilder::Bool(b) => b.append_null(),
            ColumnBuilder::Date(b) => b.append_null(),
            ColumnBuilder::Time(b) => b.append_null(),
            ColumnBuilder::Timestamp(b) => b.append_null(),
        }
    }

    /// Appends one field; `None` and (for non-text types) blank text are NULL. Returns
    /// whether a NULL was appended, or why the text does not convert.
    fn push(&mut self, value: Option<&str>, format: Option<&[Token]>) -> Result<bool, String> {
        let Some(text) = value else {
            self.append_null();
            return Ok(true);
        };
        if let ColumnBuilder::Text { b, max, pad } = self {
            let s = &text[..truncated_len(text, *max)];
            if *pad {
                let chars = s.chars().count();
                if chars < *max {
                    let mut padded = String::with_capacity(s.len() + (*max - chars));
                    padded.push_str(s);
                    padded.extend(std::iter::repeat_n(' ', *max - chars));
                    b.append_value(padded);
                    return Ok(false);
                }
            }
            b.append_value(s);
            return Ok(false);
        }
        let s = text.trim();
        if s.is_empty() {
            self.append_null();
            return Ok(true);
        }
        let instant = |what: &str| -> Result<i64, String> {
            match format {
                Some(tokens) => parse_date_format(tokens, s),
                None => crate::time::parse_timestamp(s).ok_or_else(|| format!("'{s}' is not a valid {what}")),
            }
        };
        match self {
            ColumnBuilder::Text { .. } => {}
            ColumnBuilder::Int { b, min, max } => {
                let v: i64 = s
                    .strip_prefix('+')
                    .unwrap_or(s)
                    .parse()
                    .map_err(|_| format!("'{s}' is not an integer"))?;
                if v < *min || v > *max {
                    return Err(format!("{v} is out of range"));
                }
                b.append_value(v);
            }
            ColumnBuilder::Real(b) => b.append_value(s.parse().map_err(|_| format!("'{s}' is not a number"))?),
            ColumnBuilder::Double(b) => b.append_value(s.parse().map_err(|_| format!("'{s}' is not a number"))?),
            ColumnBuilder::Decimal(b) => b.append_value(s),
            ColumnBuilder::Bool(b) => {
                if s.eq_ignore_ascii_case("true") {
                    b.append_value(true);
                } else if s.eq_ignore_ascii_case("false") {
                    b.append_value(false);
                } else {
                    return Err(format!("'{s}' is not a BOOLEAN"));
                }
            }
            ColumnBuilder::Date(b) => {
                let days = instant("DATE")?.div_euclid(MILLIS_PER_DAY);
                b.append_value(i32::try_from(days).map_err(|_| format!("'{s}' is out of range"))?);
            }
            ColumnBuilder::Time(b) => {
                let ms = match format {
                    Some(_) => instant("TIME")?.rem_euclid(MILLIS_PER_DAY),
                    None => parse_time_of_day(s).ok_or_else(|| format!("'{s}' is not a valid TIME"))?,
                };
                b.append_value(ms as i32);
            }
            ColumnBuilder::Timestamp(b) => b.append_value(instant("TIMESTAMP")?),
        }
        Ok(false)
    }

    fn finish(self, t: &DataType) -> Result<ArrayRef> {
        let strict = CastOptions {
            safe: false,
            ..Default::default()
        };
        Ok(match self {
            ColumnBuilder::Text { mut b, .. } => std::sync::Arc::new(b.finish()),
            ColumnBuilder::Int { mut b, .. } => cast(&b.finish(), t)?,
            ColumnBuilder::Real(mut b) => std::sync::Arc::new(b.finish()),
            ColumnBuilder::Double(mut b) => std::sync::Arc::new(b.finish()),
            ColumnBuilder::Decimal(mut b) => cast_with_options(&b.finish(), t, &strict)
                .map_err(|e| DataFusionError::Execution(format!("not a valid {t}: {e}")))?,
            ColumnBuilder::Bool(mut b) => std::sync::Arc::new(b.finish()),
            ColumnBuilder::Date(mut b) => std::sync::Arc::new(b.finish()),
            ColumnBuilder::Time(mut b) => std::sync::Arc::new(b.finish()),
            ColumnBuilder::Timestamp(mut b) => std::sync::Arc::new(b.finish()),
        })
    }
}

/// Builds a ROW (Struct) array row by row.
pub(crate) struct RowBuilder<'c> {
    function: &'static str,
    columns: &'c [OutColumn],
    builders: Vec<ColumnBuilder>,
    valid: BooleanBufferBuilder,
}

impl<'c> RowBuilder<'c> {
    pub fn new(function: &'static str, columns: &'c [OutColumn], capacity: usize) -> Self {
        RowBuilder {
            function,
            columns,
            builders: columns
                .iter()
                .map(|c| ColumnBuilder::new(&c.sql_type, capacity))
                .collect(),
            valid: BooleanBufferBuilder::new(capacity),
        }
    }

    /// A NULL row: every field reads NULL.
    pub fn push_null(&mut self) {
        for b in &mut self.builders {
            b.append_null();
        }
        self.valid.append(false);
    }

    /// A row from field texts in column order; missing fields are NULL, surplus ignored.
    pub fn push_row<'a>(&mut self, values: impl IntoIterator<Item = Option<&'a str>>) -> Result<()> {
        let mut values = values.into_iter();
        for (column, builder) in self.columns.iter().zip(&mut self.builders) {
            let value = values.next().flatten();
            let null = builder
                .push(value, column.format.as_deref().map(|f| f.as_slice()))
                .map_err(|e| DataFusionError::Execution(format!("{}: column {}: {e}", self.function, column.name)))?;
            if null && column.not_null {
                return Err(DataFusionError::Execution(format!(
                    "{}: column {} is NOT NULL but has no value",
                    self.function, column.name
                )));
            }
        }
        self.valid.append(true);
        Ok(())
    }

    pub fn finish(mut self) -> Result<ArrayRef> {
        let fields = struct_fields(self.columns);
        let arrays = self
            .builders
            .into_iter()
            .zip(fields.iter())
            .map(|(b, f)| {
                b.finish(f.data_type())
                    .map_err(|e| DataFusionError::Execution(format!("{}: column {}: {e}", self.function, f.name())))
            })
            .collect::<Result<Vec<_>>>()?;
        let nulls = NullBuffer::new(self.valid.finish());
        Ok(Arc::new(StructArray::try_new(fields, arrays, Some(nulls))?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VARIABLE: SpecRules = SpecRules {
        type_keyword: true,
        positions: false,
        default_varchar: None,
    };
    const FIXED: SpecRules = SpecRules {
        type_keyword: true,
        positions: true,
        default_varchar: None,
    };

    #[test]
    fn parses_documented_column_lists() {
        let c = parse_columns(
            "COL_1 TYPE VARCHAR(16), COL_2 TYPE VARCHAR(16), col_3 TYPE DECIMAL(10, 2) NOT NULL",
            VARIABLE,
        )
        .unwrap();
        assert_eq!(
            c.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["COL_1", "COL_2", "COL_3"]
        );
        assert_eq!(c[0].sql_type, SqlType::Varchar(16));
        assert_eq!(
            c[2].sql_type,
            SqlType::Decimal {
                precision: 10,
                scale: 2
            }
        );
        assert!(c[2].not_null && !c[0].not_null);

        let c = parse_columns(
            "\"ts\" TYPE TIMESTAMP 'dd/MMM/yyyy:HH:mm:ss' START 0 FOR 20, host TYPE VARCHAR(8) NOT NULL START 21",
            FIXED,
        )
        .unwrap();
        assert_eq!(c[0].name, "ts");
        assert_eq!((c[0].start, c[0].len), (Some(0), Some(20)));
        assert!(c[0].format.is_some());
        assert_eq!((c[1].start, c[1].len, c[1].not_null), (Some(21), None, true));
        let c = parse_columns("d TYPE DOUBLE PRECISION START 3 FOR 2", FIXED).unwrap();
        assert_eq!(c[0].sql_type, SqlType::Double);
    }

    #[test]
    fn rejects_bad_column_lists() {
        for (spec, rules) in [
            ("A VARCHAR(4)", VARIABLE),
            ("A TYPE", VARIABLE),
            ("A TYPE BLOB", VARIABLE),
            ("A TYPE VARCHAR(4), A TYPE INTEGER", VARIABLE),
            ("A TYPE INTEGER 'yyyy'", VARIABLE),
            ("A TYPE TIMESTAMP 'yyyy-qq'", VARIABLE),
            ("A TYPE INTEGER START 1", VARIABLE),
            ("A TYPE INTEGER", FIXED),
            ("A TYPE INTEGER START x", FIXED),
            ("A TYPE VARBINARY(4) START 0", FIXED),
            ("A TYPE VARCHAR(4),", VARIABLE),
            ("A TYPE VARCHAR(4", VARIABLE),
            ("A TYPE INTEGER NOT", VARIABLE),
        ] {
            assert!(parse_columns(spec, rules).is_err(), "{spec}");
        }
    }

    #[test]
    fn converts_text_to_types() {
        let columns = parse_columns(
            "S TYPE VARCHAR(3), C TYPE CHAR(4), I TYPE INTEGER, T TYPE TINYINT, R TYPE REAL, D TYPE DECIMAL(5,2), \
             B TYPE BOOLEAN, DT TYPE DATE, TM TYPE TIME, TS TYPE TIMESTAMP, TSF TYPE TIMESTAMP 'dd/MMM/yyyy:HH:mm:ss Z'",
            VARIABLE,
        )
        .unwrap();
        let mut b = RowBuilder::new("T", &columns, 2);
        b.push_row([
            Some("abcdef"),
            Some("ab"),
            Some(" 42 "),
            Some("-7"),
            Some("1.5"),
            Some("12.34"),
            Some("TRUE"),
            Some("2024-02-29"),
            Some("13:55:36.5"),
            Some("2000-10-10 13:55:36"),
            Some("10/Oct/2000:13:55:36 -0700"),
        ])
        .unwrap();
        b.push_row([Some(""), Some(""), Some("")]).unwrap();
        b.push_null();
        let a = b.finish().unwrap();
        let batch = datafusion::arrow::array::RecordBatch::try_from_iter([("r", a)]).unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&[batch])
            .unwrap()
            .to_string();
        for expected in [
            "S: abc",
            "C: ab  ",
            "I: 42",
            "T: -7",
            "R: 1.5",
            "D: 12.34",
            "B: true",
            "DT: 2024-02-29",
            "TM: 13:55:36.500",
            "TS: 2000-10-10T13:55:36",
            "TSF: 2000-10-10T20:55:36",
            // Empty text: '' for text types, NULL otherwise.
            "{S: , C:     , I: , T: ,",
        ] {
            assert!(text.contains(expected), "{expected} not in\n{text}");
        }
        let mut b = RowBuilder::new("T", &columns, 1);
        assert!(b.push_row([None, None, Some("x")]).is_err());
        let mut b = RowBuilder::new("T", &columns, 1);
        assert!(b.push_row([None, None, None, Some("300")]).is_err());
        let mut b = RowBuilder::new("T", &columns, 1);
        assert!(b.push_row([None, None, None, None, None, None, Some("yes")]).is_err());
        let columns = parse_columns("N TYPE INTEGER NOT NULL", VARIABLE).unwrap();
        let mut b = RowBuilder::new("T", &columns, 1);
        let e = b.push_row([Some(" ")]).unwrap_err().to_string();
        assert!(e.contains("NOT NULL"), "{e}");
    }
}
