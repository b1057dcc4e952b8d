//! KDA's log-parsing functions. Each returns a ROW (an Arrow Struct) whose fields are
//! read through an alias, as in the documented applications:
//! `SELECT STREAM t.r.COLUMN1 FROM (SELECT STREAM REGEX_LOG_PARSE("log", '...') AS r FROM s) AS t`.
//!
//! | KDA | UDF | ROW fields |
//! |---|---|---|
//! | `REGEX_LOG_PARSE(s, javaRegex [, columns])` | `regex_log_parse` | one per capture group: `COLUMN1..n` VARCHAR(1024), or as named/typed by `columns` |
//! | `FAST_REGEX_LOG_PARSER(s, regex)`, `FAST_REGEX_LOG_PARSE(s, regex)` | `fast_regex_log_parser`, `fast_regex_log_parse` | as REGEX_LOG_PARSE, lazy quantifiers |
//! | `VARIABLE_COLUMN_LOG_PARSE(s, columns, delimiter [, escape, quote])` | `variable_column_log_parse` | `COLUMN1..N` VARCHAR(1024) for a count N, else the column list |
//! | `FIXED_COLUMN_LOG_PARSE(s, columns)` | `fixed_column_log_parse` | the column list |
//! | `W3C_LOG_PARSE(s, format)` | `w3c_log_parse` | one per format specifier: `COLUMN1..n` VARCHAR |
//! | `SYS_LOG_PARSE(s)` | `sys_log_parse` | `COLUMN1` TIMESTAMP, `COLUMN2` VARCHAR |
//!
//! The shape of the ROW depends on the pattern, format or column list, so those
//! arguments must be literals (constants): anything else is a plan error, as is an
//! invalid pattern, format or column list. A NULL input or a line that does not match
//! gives a NULL row (every field reads NULL). A field whose text does not convert to its
//! declared type, or a NOT NULL field without a value, is a row error (Execution).
//!
//! Compiled parsers are cached process-wide by function and literal arguments, so a
//! pattern is compiled once, not once per batch; each batch is parsed in one pass.

mod columns;
mod pattern;
mod spec;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{DataFusionError, Result, ScalarValue, exec_err, internal_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::common::{check_arity, coerce_string, eval_arrays, is_string, scalar_str, utf8};
use columns::{ColumnsArg, compile_fixed, compile_variable};
use pattern::{compile_regex, compile_sys_log, compile_w3c};
use spec::{OutColumn, RowBuilder, struct_fields};

/// A compiled parser: splits one line into the texts of its ROW's fields.
pub(crate) trait LineParser: Send + Sync + std::fmt::Debug {
    fn columns(&self) -> &[OutColumn];

    /// Appends the field texts of `line` (in column order; fewer than the columns means
    /// the rest are NULL). Returns false, appending nothing, if the line does not match.
    fn parse<'a>(&self, line: &'a str, fields: &mut Vec<Option<Cow<'a, str>>>) -> bool;
}

/// Which log parser a [`LogParse`] UDF is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Regex,
    FastRegexParser,
    FastRegex,
    VariableColumn,
    FixedColumn,
    W3c,
    SysLog,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Regex,
        Kind::FastRegexParser,
        Kind::FastRegex,
        Kind::VariableColumn,
        Kind::FixedColumn,
        Kind::W3c,
        Kind::SysLog,
    ];

    fn udf_name(self) -> &'static str {
        match self {
            Kind::Regex => "regex_log_parse",
            Kind::FastRegexParser => "fast_regex_log_parser",
            Kind::FastRegex => "fast_regex_log_parse",
            Kind::VariableColumn => "variable_column_log_parse",
            Kind::FixedColumn => "fixed_column_log_parse",
            Kind::W3c => "w3c_log_parse",
            Kind::SysLog => "sys_log_parse",
        }
    }

    /// The KDA name, for messages.
    fn sql_name(self) -> &'static str {
        match self {
            Kind::Regex => "REGEX_LOG_PARSE",
            Kind::FastRegexParser => "FAST_REGEX_LOG_PARSER",
            Kind::FastRegex => "FAST_REGEX_LOG_PARSE",
            Kind::VariableColumn => "VARIABLE_COLUMN_LOG_PARSE",
            Kind::FixedColumn => "FIXED_COLUMN_LOG_PARSE",
            Kind::W3c => "W3C_LOG_PARSE",
            Kind::SysLog => "SYS_LOG_PARSE",
        }
    }

    fn arity(self) -> (usize, usize) {
        match self {
            Kind::Regex => (2, 3),
            Kind::FastRegexParser | Kind::FastRegex | Kind::FixedColumn | Kind::W3c => (2, 2),
            Kind::VariableColumn => (3, 5),
            Kind::SysLog => (1, 1),
        }
    }

    /// What argument `i` (≥ 1) is, for messages.
    fn argument(self, i: usize) -> &'static str {
        match (self, i) {
            (Kind::Regex | Kind::FastRegexParser | Kind::FastRegex, 1) => "pattern",
            (Kind::Regex, _) => "column list",
            (Kind::VariableColumn, 1) | (Kind::FixedColumn, _) => "column list",
            (Kind::VariableColumn, 2) => "delimiter",
            (Kind::VariableColumn, 3) => "escape",
            (Kind::VariableColumn, _) => "quote",
            _ => "format",
        }
    }
}

/// A literal argument (after the input line).
#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Str(String),
    Int(i64),
}

impl Lit {
    fn key(&self) -> String {
        match self {
            Lit::Str(s) => format!("s{s}"),
            Lit::Int(i) => format!("i{i}"),
        }
    }
}

/// The value of a literal argument, or why it cannot be used.
fn literal(kind: Kind, i: usize, v: Option<&ScalarValue>) -> Result<Lit, String> {
    let what = kind.argument(i);
    let Some(v) = v else {
        return Err(format!("the {what} must be a literal"));
    };
    if v.is_null() {
        // An empty escape or quote means none; NULL is the same.
        if kind == Kind::VariableColumn && i >= 3 {
            return Ok(Lit::Str(String::new()));
        }
        return Err(format!("the {what} must not be NULL"));
    }
    if let Some(s) = scalar_str(v) {
        return Ok(Lit::Str(s.to_string()));
    }
    if kind == Kind::VariableColumn
        && i == 1
        && v.data_type().is_integer()
        && let Ok(ScalarValue::Int64(Some(n))) = v.cast_to(&DataType::Int64)
    {
        return Ok(Lit::Int(n));
    }
    Err(format!("the {what} must be a character string, got {}", v.data_type()))
}

fn compile(kind: Kind, args: &[Lit]) -> Result<Arc<dyn LineParser>, String> {
    let s = |i: usize| -> Result<Option<&str>, String> {
        match args.get(i) {
            None => Ok(None),
            Some(Lit::Str(s)) => Ok(Some(s.as_str())),
            Some(Lit::Int(_)) => Err(format!("the {} must be a character string", kind.argument(i + 1))),
        }
    };
    let required = |i: usize| -> Result<&str, String> { s(i)?.ok_or_else(|| "missing argument".to_string()) };
    Ok(match kind {
        Kind::Regex => Arc::new(compile_regex(required(0)?, s(1)?, false)?),
        Kind::FastRegexParser | Kind::FastRegex => Arc::new(compile_regex(required(0)?, None, true)?),
        Kind::VariableColumn => {
            let columns = match &args[0] {
                Lit::Int(n) => ColumnsArg::Count(*n),
                Lit::Str(spec) => ColumnsArg::List(spec),
            };
            Arc::new(compile_variable(columns, required(1)?, s(2)?, s(3)?)?)
        }
        Kind::FixedColumn => Arc::new(compile_fixed(required(0)?)?),
        Kind::W3c => Arc::new(compile_w3c(required(0)?)?),
        Kind::SysLog => Arc::new(compile_sys_log()?),
    })
}

/// A compiled parser from the process-wide cache.
fn cached_parser(kind: Kind, args: &[Lit]) -> Result<Arc<dyn LineParser>, String> {
    type Cache = Mutex<HashMap<String, Arc<dyn LineParser>>>;
    static CACHE: LazyLock<Cache> = LazyLock::new(|| Mutex::new(HashMap::new()));
    const MAX_ENTRIES: usize = 256;
    let key = std::iter::once(kind.udf_name().to_string())
        .chain(args.iter().map(Lit::key))
        .collect::<Vec<_>>()
        .join("\u{0}");
    if let Some(p) = CACHE.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(p);
    }
    let parser = compile(kind, args)?;
    if let Ok(mut cache) = CACHE.lock() {
        if cache.len() >= MAX_ENTRIES {
            cache.clear();
        }
        cache.insert(key, Arc::clone(&parser));
    }
    Ok(parser)
}

/// Parses every line of `lines` into a ROW array.
fn parse_lines(kind: Kind, parser: &dyn LineParser, lines: &ArrayRef) -> Result<ArrayRef> {
    let lines = utf8(lines)?;
    let mut rows = RowBuilder::new(kind.sql_name(), parser.columns(), lines.len());
    let mut fields: Vec<Option<Cow<str>>> = Vec::with_capacity(parser.columns().len());
    for line in lines.iter() {
        fields.clear();
        match line {
            Some(line) if parser.parse(line, &mut fields) => rows.push_row(fields.iter().map(|f| f.as_deref()))?,
            _ => rows.push_null(),
        }
    }
    rows.finish()
}

/// One of KDA's log parsers as a DataFusion UDF (see the module documentation).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LogParse {
    kind: Kind,
    signature: Signature,
}

impl LogParse {
    pub fn new(kind: Kind) -> Self {
        LogParse {
            kind,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    fn parser_from_scalars(&self, scalars: &[Option<&ScalarValue>]) -> Result<Arc<dyn LineParser>, String> {
        let args = scalars
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, v)| literal(self.kind, i, *v))
            .collect::<Result<Vec<_>, _>>()?;
        cached_parser(self.kind, &args)
    }
}

impl ScalarUDFImpl for LogParse {
    fn name(&self) -> &str {
        self.kind.udf_name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.kind.sql_name();
        let (min, max) = self.kind.arity();
        check_arity(name, arg_types, min, max)?;
        arg_types
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if i == 0 {
                    return coerce_string(name, t, "the input");
                }
                // Literal arguments keep their type: a cast would hide the literal
                // from `return_field_from_args`.
                let integer_count = self.kind == Kind::VariableColumn && i == 1 && t.is_integer();
                if is_string(t) || matches!(t, DataType::Null) || integer_count {
                    Ok(t.clone())
                } else {
                    plan_err!(
                        "{name}: the {} must be a character string, got {t}",
                        self.kind.argument(i)
                    )
                }
            })
            .collect()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        internal_err!("{}: the return type depends on literal arguments", self.kind.sql_name())
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let name = self.kind.sql_name();
        let (min, max) = self.kind.arity();
        let types: Vec<DataType> = args.arg_fields.iter().map(|f| f.data_type().clone()).collect();
        check_arity(name, &types, min, max)?;
        let parser = match self.parser_from_scalars(args.scalar_arguments) {
            Ok(p) => p,
            Err(e) => return plan_err!("{name}: {e}"),
        };
        Ok(Arc::new(Field::new(
            self.name(),
            DataType::Struct(struct_fields(parser.columns())),
            true,
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.kind.sql_name();
        let scalars = args
            .args
            .iter()
            .map(|a| match a {
                ColumnarValue::Scalar(s) => Some(s),
                ColumnarValue::Array(_) => None,
            })
            .collect::<Vec<_>>();
        let parser = self
            .parser_from_scalars(&scalars)
            .map_err(|e| DataFusionError::Execution(format!("{name}: {e}")))?;
        let expected = DataType::Struct(struct_fields(parser.columns()));
        if args.return_field.data_type() != &expected {
            return exec_err!("{name}: the ROW type changed since planning");
        }
        let Some(line) = args.args.first() else {
            return exec_err!("{name}: missing input");
        };
        eval_arrays(std::slice::from_ref(line), args.number_rows, |a| {
            parse_lines(self.kind, parser.as_ref(), &a[0])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::common::test_util::{table, value, value_type};

    /// One field of a ROW expression (`get_field`, which `t.r.NAME` plans to).
    async fn field(expr: &str, name: &str) -> String {
        value(&format!("SELECT get_field({expr}, '{name}')")).await
    }

    #[tokio::test]
    async fn regex_log_parse_row_and_fields() {
        assert_eq!(
            value_type("SELECT regex_log_parse('a 1', '(\\w+) (\\d+)')").await,
            "Struct(\"COLUMN1\": Utf8, \"COLUMN2\": Utf8)"
        );
        assert_eq!(
            value("SELECT get_field(regex_log_parse('abc 123', '(\\w+) (\\d+)'), 'COLUMN2')").await,
            "123"
        );
        assert_eq!(
            value("SELECT get_field(regex_log_parse('abc 123 x', '(\\w+) (\\d+)'), 'COLUMN1')").await,
            "NULL"
        );
        assert_eq!(
            value("SELECT get_field(regex_log_parse(NULL, '(\\w+)'), 'COLUMN1')").await,
            "NULL"
        );
        let t = table(
            "SELECT get_field(r, 'KEY') AS k, get_field(r, 'VAL') AS v, arrow_typeof(get_field(r, 'VAL')) AS t FROM \
             (SELECT regex_log_parse(s, '(\\w+)=(\\d+)', 'KEY, VAL TYPE INTEGER') AS r \
             FROM (VALUES ('a=1'), ('bad'), (NULL), ('b=22')) AS v(s))",
        )
        .await;
        assert!(t.contains("| a | 1  | Int32 |"), "{t}");
        assert!(t.contains("| b | 22 | Int32 |"), "{t}");
        assert_eq!(t.matches("|   |    | Int32 |").count(), 2, "{t}");
    }

    #[tokio::test]
    async fn row_fields_through_an_alias() {
        // The documented shape `t.r.COLUMN1` (quoted here: this test session lower-cases
        // unquoted identifiers, sluice's planner upper-cases them).
        let t = table(
            "SELECT t.r.\"COLUMN2\" AS b, t.r.\"COLUMN1\" AS a FROM \
             (SELECT regex_log_parse(s, '(\\w+) (\\d+)') AS r FROM (VALUES ('x 1'), ('y z')) AS v(s)) AS t",
        )
        .await;
        assert!(t.contains("| 1 | x |"), "{t}");
        assert!(t.contains("|   |   |"), "{t}");
    }

    #[tokio::test]
    async fn plan_errors_for_non_literal_or_bad_patterns() {
        let v = value("SELECT regex_log_parse(s, p) FROM (VALUES ('a', '(a)')) AS v(s, p)").await;
        assert!(v.starts_with("ERR") && v.contains("literal"), "{v}");
        let v = value("SELECT regex_log_parse('a', '(a')").await;
        assert!(v.starts_with("ERR") && v.contains("REGEX_LOG_PARSE"), "{v}");
        let v = value("SELECT regex_log_parse('a', NULL)").await;
        assert!(v.starts_with("ERR"), "{v}");
        let v = value("SELECT w3c_log_parse('a', 'COMMON', 'x')").await;
        assert!(v.starts_with("ERR"), "{v}");
        let v = value("SELECT variable_column_log_parse('a', 1.5, ',')").await;
        assert!(v.starts_with("ERR"), "{v}");
        let v = value("SELECT fixed_column_log_parse('a', 'A TYPE INTEGER')").await;
        assert!(v.starts_with("ERR") && v.contains("START"), "{v}");
    }

    #[tokio::test]
    async fn row_errors_are_execution_errors() {
        let v =
            value("SELECT get_field(variable_column_log_parse('x,y', 'A TYPE INTEGER, B TYPE VARCHAR(4)', ','), 'A')")
                .await;
        assert!(
            v.starts_with("ERR") && v.contains("column A") && v.contains("'x'"),
            "{v}"
        );
    }

    #[tokio::test]
    async fn fast_regex_both_names() {
        for f in ["fast_regex_log_parser", "fast_regex_log_parse"] {
            assert_eq!(
                value(&format!(
                    "SELECT get_field({f}('Mary_had_a_little_lamb', '(.*)_(._.*)_.*'), 'COLUMN2')"
                ))
                .await,
                "a_little"
            );
            assert_eq!(
                value(&format!("SELECT get_field({f}('a b c', '(.+) (.+)'), 'COLUMN1')")).await,
                "a"
            );
        }
    }

    #[tokio::test]
    async fn variable_column_log_parse_forms() {
        assert_eq!(
            value_type("SELECT variable_column_log_parse('a,b', 3, ',')").await,
            "Struct(\"COLUMN1\": Utf8, \"COLUMN2\": Utf8, \"COLUMN3\": Utf8)"
        );
        assert_eq!(
            value("SELECT get_field(variable_column_log_parse('a,b', 3, ','), 'COLUMN3')").await,
            "NULL"
        );
        assert_eq!(
            value("SELECT get_field(variable_column_log_parse('a\\,b,c', 2, ',', '\\'), 'COLUMN1')").await,
            "a,b"
        );
        assert_eq!(
            value("SELECT get_field(variable_column_log_parse('x|\"p|q\"', 2, '|', '', '\"'), 'COLUMN2')").await,
            "p|q"
        );
        assert_eq!(
            value_type(
                "SELECT variable_column_log_parse('1;2.5;2024-01-02', \
                 'n TYPE BIGINT, \"d\" TYPE DOUBLE, day TYPE DATE NOT NULL', ';')"
            )
            .await,
            "Struct(\"N\": Int64, \"d\": Float64, \"DAY\": Date32)"
        );
        assert_eq!(
            value("SELECT get_field(variable_column_log_parse('1;2.5;2024-01-02', 'n TYPE BIGINT, \"d\" TYPE DOUBLE, day TYPE DATE', ';'), 'DAY')")
                .await,
            "2024-01-02"
        );
    }

    #[tokio::test]
    async fn fixed_column_log_parse_with_format() {
        let expr = "fixed_column_log_parse('10/Oct/2000:13:55:36 404  /a.gif', \
                   '\"ts\" TYPE TIMESTAMP ''dd/MMM/yyyy:HH:mm:ss'' START 0 FOR 20, \
                   CODE TYPE SMALLINT START 21 FOR 4, PATH TYPE VARCHAR(64) START 26')";
        assert_eq!(
            value_type(&format!("SELECT {expr}")).await,
            "Struct(\"ts\": Timestamp(ms), \"CODE\": Int16, \"PATH\": Utf8)"
        );
        assert_eq!(field(expr, "ts").await, "2000-10-10T13:55:36");
        assert_eq!(field(expr, "CODE").await, "404");
        assert_eq!(field(expr, "PATH").await, "/a.gif");
    }

    #[tokio::test]
    async fn w3c_and_sys_log() {
        let line = "127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /apache_pb.gif HTTP/1.0\" 200 2326";
        let expr = format!("w3c_log_parse('{}', 'COMMON')", line.replace('\'', "''"));
        let t = value_type(&format!("SELECT {expr}")).await;
        assert!(
            t.starts_with("Struct(\"COLUMN1\": Utf8") && t.contains("\"COLUMN7\": Utf8)"),
            "{t}"
        );
        assert_eq!(field(&expr, "COLUMN4").await, "10/Oct/2000:13:55:36 -0700");
        assert_eq!(field(&expr, "COLUMN5").await, "GET /apache_pb.gif HTTP/1.0");
        assert_eq!(field(&expr, "COLUMN7").await, "2326");

        let expr = "sys_log_parse('Oct  5 14:03:01 host sshd[42]: Accepted')";
        assert_eq!(
            value_type(&format!("SELECT {expr}")).await,
            "Struct(\"COLUMN1\": Timestamp(ms), \"COLUMN2\": Utf8)"
        );
        assert_eq!(field(expr, "COLUMN1").await, "1970-10-05T14:03:01");
        assert_eq!(field(expr, "COLUMN2").await, "host sshd[42]: Accepted");
        assert_eq!(
            value("SELECT get_field(sys_log_parse('garbage'), 'COLUMN1')").await,
            "NULL"
        );
        let v = value("SELECT get_field(sys_log_parse('Feb 30 10:00:00 x'), 'COLUMN1')").await;
        assert!(v.starts_with("ERR"), "{v}");
    }

    #[tokio::test]
    async fn parses_columns_of_many_rows() {
        let t = table(
            "SELECT get_field(r, 'COLUMN1') AS a, get_field(r, 'COLUMN2') AS b FROM (SELECT w3c_log_parse(s, '%h %>s') AS r \
             FROM (VALUES ('h1 200'), ('h2 404'), ('broken'), (NULL), ('h5 500')) AS v(s))",
        )
        .await;
        for row in ["| h1 | 200 |", "| h2 | 404 |", "| h5 | 500 |"] {
            assert!(t.contains(row), "{row} not in\n{t}");
        }
        assert_eq!(t.matches("|    |     |").count(), 2, "{t}");
    }
}
