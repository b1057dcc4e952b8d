//! KDA SQL types and their Arrow representation.
//!
//! One place decides how a KDA type (`VARCHAR(4)`, `REAL`, `TIMESTAMP`, ...) is held in
//! Arrow, so sources, the planner and sinks never disagree. Timestamps are milliseconds
//! without a time zone (KDA's TIMESTAMP has millisecond precision and is UTC by convention).

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The name of the implicit time column every in-application stream carries.
pub const ROWTIME: &str = "ROWTIME";
/// The extra column of in-application input streams (the record's arrival time).
pub const APPROXIMATE_ARRIVAL_TIME: &str = "APPROXIMATE_ARRIVAL_TIME";
/// The Kinesis record envelope every in-application input stream carries besides its
/// declared columns, as KDA's input streams do: NULL when the source has no such field.
pub const PARTITION_KEY: &str = "PARTITION_KEY";
pub const SEQUENCE_NUMBER: &str = "SEQUENCE_NUMBER";
pub const SHARD_ID: &str = "SHARD_ID";

/// The implicit envelope columns of an input stream with their types, in stream order.
/// Lengths follow the Kinesis limits: a partition key has at most 256 characters, a shard
/// id at most 128; sequence numbers are decimal strings (56 digits in practice).
pub fn envelope_columns() -> [ColumnDef; 3] {
    [
        ColumnDef::new(PARTITION_KEY, SqlType::Varchar(256)),
        ColumnDef::new(SEQUENCE_NUMBER, SqlType::Varchar(128)),
        ColumnDef::new(SHARD_ID, SqlType::Varchar(128)),
    ]
}

/// Whether `name` is one of the implicit columns of an input stream (ROWTIME,
/// APPROXIMATE_ARRIVAL_TIME or an envelope column).
pub fn is_implicit_input_column(name: &str) -> bool {
    matches!(
        name,
        ROWTIME | APPROXIMATE_ARRIVAL_TIME | PARTITION_KEY | SEQUENCE_NUMBER | SHARD_ID
    )
}

/// The columns of an in-application input stream before APPROXIMATE_ARRIVAL_TIME and
/// ROWTIME: the declared ones, then each envelope column the schema does not declare
/// itself (a declared column of the same name wins).
pub fn input_stream_columns(declared: &[ColumnDef]) -> Vec<ColumnDef> {
    let mut columns = declared.to_vec();
    columns.extend(
        envelope_columns()
            .into_iter()
            .filter(|e| !declared.iter().any(|d| d.name == e.name)),
    );
    columns
}

/// The Arrow type of ROWTIME and of every TIMESTAMP column.
pub const TIMESTAMP_TYPE: DataType = DataType::Timestamp(TimeUnit::Millisecond, None);

/// A column type as written in KDA SQL or in an input schema's `SqlType`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlType {
    TinyInt,
    SmallInt,
    Integer,
    BigInt,
    Decimal {
        precision: u8,
        scale: i8,
    },
    Real,
    Double,
    /// CHAR(n): blank-padded to n characters.
    Char(u32),
    /// VARCHAR(n): strings longer than n are truncated on input mapping.
    Varchar(u32),
    Boolean,
    Date,
    Time,
    Timestamp,
    Binary(u32),
    Varbinary(u32),
}

impl SqlType {
    /// Parses a type name as KDA writes it in `RecordColumns.SqlType` (case-insensitive,
    /// with optional length / precision).
    pub fn parse(text: &str) -> Result<SqlType, String> {
        let t = text.trim().to_ascii_uppercase();
        let (base, args) = match t.find('(') {
            Some(open) => {
                let close = t
                    .rfind(')')
                    .ok_or_else(|| format!("unbalanced parenthesis in type '{text}'"))?;
                let args: Vec<&str> = t[open + 1..close].split(',').map(str::trim).collect();
                (t[..open].trim().to_string(), args)
            }
            None => (t.clone(), vec![]),
        };
        let num = |i: usize, default: u32| -> Result<u32, String> {
            match args.get(i) {
                Some(a) => a
                    .parse::<u32>()
                    .map_err(|_| format!("bad length '{a}' in type '{text}'")),
                None => Ok(default),
            }
        };
        // A length of 0 would empty every value, and one past 65,535 pads or holds
        // more than a KDA row can.
        let length = |n: u32| -> Result<u32, String> {
            if (1..=65535).contains(&n) {
                Ok(n)
            } else {
                Err(format!("type '{text}': a length must be 1 to 65535"))
            }
        };
        let base = base.split_whitespace().collect::<Vec<_>>().join(" ");
        Ok(match base.as_str() {
            "TINYINT" => SqlType::TinyInt,
            "SMALLINT" => SqlType::SmallInt,
            "INTEGER" | "INT" => SqlType::Integer,
            "BIGINT" => SqlType::BigInt,
            "DECIMAL" | "DEC" | "NUMERIC" => {
                // KDA's defaults: precision 18, scale 0 (SQL reference, "Numeric Types
                // and Precision").
                let (precision, scale) = (num(0, 18)?, num(1, 0)?);
                // Arrow's decimals hold 1 to 38 digits; a scale past the precision would
                // leave no digit before the point (and wrapped round to nonsense).
                if !(1..=38).contains(&precision) || scale > precision {
                    return Err(format!(
                        "type '{text}': a DECIMAL's precision must be 1 to 38 and its scale 0 to the precision"
                    ));
                }
                SqlType::Decimal {
                    precision: precision as u8,
                    scale: scale as i8,
                }
            }
            "REAL" => SqlType::Real,
            "DOUBLE" | "DOUBLE PRECISION" | "FLOAT" => SqlType::Double,
            "CHAR" | "CHARACTER" => SqlType::Char(length(num(0, 1)?)?),
            "VARCHAR" | "CHARACTER VARYING" | "CHAR VARYING" => SqlType::Varchar(length(num(0, 65535)?)?),
            "BOOLEAN" => SqlType::Boolean,
            "DATE" => SqlType::Date,
            "TIME" => SqlType::Time,
            "TIMESTAMP" => SqlType::Timestamp,
            "BINARY" => SqlType::Binary(length(num(0, 1)?)?),
            "VARBINARY" => SqlType::Varbinary(length(num(0, 65535)?)?),
            _ => return Err(format!("unknown SQL type '{text}'")),
        })
    }

    /// The Arrow type that holds values of this SQL type.
    pub fn arrow_type(&self) -> DataType {
        match self {
            SqlType::TinyInt => DataType::Int8,
            SqlType::SmallInt => DataType::Int16,
            SqlType::Integer => DataType::Int32,
            SqlType::BigInt => DataType::Int64,
            SqlType::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale),
            SqlType::Real => DataType::Float32,
            SqlType::Double => DataType::Float64,
            SqlType::Char(_) | SqlType::Varchar(_) => DataType::Utf8,
            SqlType::Boolean => DataType::Boolean,
            SqlType::Date => DataType::Date32,
            SqlType::Time => DataType::Time32(TimeUnit::Millisecond),
            SqlType::Timestamp => TIMESTAMP_TYPE,
            SqlType::Binary(_) | SqlType::Varbinary(_) => DataType::Binary,
        }
    }

    /// Maximum length in characters for string types (truncation on input mapping).
    pub fn max_chars(&self) -> Option<usize> {
        match self {
            SqlType::Char(n) | SqlType::Varchar(n) => Some(*n as usize),
            _ => None,
        }
    }
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlType::TinyInt => write!(f, "TINYINT"),
            SqlType::SmallInt => write!(f, "SMALLINT"),
            SqlType::Integer => write!(f, "INTEGER"),
            SqlType::BigInt => write!(f, "BIGINT"),
            SqlType::Decimal { precision, scale } => write!(f, "DECIMAL({precision},{scale})"),
            SqlType::Real => write!(f, "REAL"),
            SqlType::Double => write!(f, "DOUBLE"),
            SqlType::Char(n) => write!(f, "CHAR({n})"),
            SqlType::Varchar(n) => write!(f, "VARCHAR({n})"),
            SqlType::Boolean => write!(f, "BOOLEAN"),
            SqlType::Date => write!(f, "DATE"),
            SqlType::Time => write!(f, "TIME"),
            SqlType::Timestamp => write!(f, "TIMESTAMP"),
            SqlType::Binary(n) => write!(f, "BINARY({n})"),
            SqlType::Varbinary(n) => write!(f, "VARBINARY({n})"),
        }
    }
}

/// A named, typed column of a stream, table or input schema.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    /// Stored name, exactly (already upper-cased if it was unquoted in SQL).
    pub name: String,
    pub sql_type: SqlType,
    pub not_null: bool,
}

impl ColumnDef {
    pub fn new(name: impl Into<String>, sql_type: SqlType) -> Self {
        ColumnDef {
            name: name.into(),
            sql_type,
            not_null: false,
        }
    }
}

/// Arrow schema of a stream's rows as they travel between operators: the declared
/// columns, then (for input streams) APPROXIMATE_ARRIVAL_TIME, then ROWTIME last.
pub fn stream_schema(columns: &[ColumnDef], with_arrival_time: bool) -> SchemaRef {
    let mut fields: Vec<Field> = columns
        .iter()
        .map(|c| Field::new(&c.name, c.sql_type.arrow_type(), true))
        .collect();
    if with_arrival_time {
        fields.push(Field::new(APPROXIMATE_ARRIVAL_TIME, TIMESTAMP_TYPE, true));
    }
    fields.push(Field::new(ROWTIME, TIMESTAMP_TYPE, false));
    Arc::new(Schema::new(fields))
}

/// The SQL name of an Arrow type, for messages in the dialect's words.
pub fn sql_name_of(t: &DataType) -> String {
    match t {
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INTEGER".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float32 => "REAL".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Time32(_) | DataType::Time64(_) => "TIME".into(),
        DataType::Timestamp(_, _) => "TIMESTAMP".into(),
        DataType::Duration(_) | DataType::Interval(_) => "INTERVAL".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "VARBINARY".into(),
        DataType::Null => "NULL".into(),
        DataType::Struct(_) => "ROW".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kda_type_names() {
        assert_eq!(SqlType::parse("varchar(4)").unwrap(), SqlType::Varchar(4));
        assert_eq!(
            SqlType::parse("DECIMAL(5, 2)").unwrap(),
            SqlType::Decimal { precision: 5, scale: 2 }
        );
        assert_eq!(SqlType::parse("double precision").unwrap(), SqlType::Double);
        assert_eq!(SqlType::parse("INT").unwrap(), SqlType::Integer);
        assert!(SqlType::parse("BLOB").is_err());
    }

    #[test]
    fn decimal_defaults_are_kdas() {
        let d = |p, s| SqlType::Decimal { precision: p, scale: s };
        assert_eq!(SqlType::parse("DECIMAL").unwrap(), d(18, 0));
        assert_eq!(SqlType::parse("numeric").unwrap(), d(18, 0));
        assert_eq!(SqlType::parse("DEC(7)").unwrap(), d(7, 0));
        assert_eq!(SqlType::parse("NUMERIC(9, 4)").unwrap(), d(9, 4));
    }

    #[test]
    fn types_that_would_hold_nothing_or_nonsense_are_refused() {
        for bad in [
            "DECIMAL(100,200)",
            "DECIMAL(0)",
            "DECIMAL(5,6)",
            "CHAR(0)",
            "VARCHAR(0)",
            "CHAR(70000)",
            "BINARY(0)",
        ] {
            let err = SqlType::parse(bad).unwrap_err();
            assert!(err.contains(bad), "{bad}: {err}");
        }
        assert_eq!(
            SqlType::parse("DECIMAL(38,38)").unwrap(),
            SqlType::Decimal {
                precision: 38,
                scale: 38
            }
        );
        assert_eq!(SqlType::parse("CHAR(65535)").unwrap(), SqlType::Char(65535));
    }

    #[test]
    fn input_streams_add_the_envelope_columns_not_declared() {
        let names = |cols: Vec<ColumnDef>| cols.into_iter().map(|c| c.name).collect::<Vec<_>>();
        let declared = [ColumnDef::new("A", SqlType::Integer)];
        assert_eq!(
            names(input_stream_columns(&declared)),
            ["A", PARTITION_KEY, SEQUENCE_NUMBER, SHARD_ID]
        );
        // A declared column of the same name wins, and keeps its place and type.
        let declared = [
            ColumnDef::new(SHARD_ID, SqlType::Integer),
            ColumnDef::new("A", SqlType::Integer),
        ];
        let cols = input_stream_columns(&declared);
        assert_eq!(names(cols.clone()), [SHARD_ID, "A", PARTITION_KEY, SEQUENCE_NUMBER]);
        assert_eq!(cols[0].sql_type, SqlType::Integer);
        // Names are exact: a lower-case declared column is another column.
        let declared = [ColumnDef::new("shard_id", SqlType::Varchar(8))];
        assert_eq!(input_stream_columns(&declared).len(), 4);
    }
}
