//! Object keys as Firehose builds them: `<evaluated prefix><partition folders><name>`.
//!
//! * Prefix expressions `!{namespace:value}`: `!{timestamp:PATTERN}` (Java date pattern
//!   letters, through `functions::simple_date_format`, UTC), `!{firehose:random-string}`
//!   (11 characters of `[a-z0-9]`) and, in the error prefix, `!{firehose:error-output-type}`.
//!   Every timestamp is the ROWTIME of the oldest row in the object, as Firehose uses the
//!   oldest record's arrival time.
//! * Partition folders: `COL=value/` for each `partition_by` column, Hive style, values
//!   URL-encoded, NULL as Hive's `__HIVE_DEFAULT_PARTITION__`.
//! * Name: `{app}-{stream}-{yyyy-MM-dd-HH-mm-ss}-{sequence}-{random}{extension}`.
//!
//! In exactly-once mode nothing in a key is random: [`derived_string`] hashes what
//! identifies the object (its epoch, part, partition and first row), so a replay after a
//! restart writes the same keys.

use std::sync::LazyLock;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use md5::{Digest, Md5};
use rand::Rng;

use crate::error::{Result, SluiceError};
use crate::functions::simple_date_format::{self, Token};
use crate::time::Millis;

/// Length of `!{firehose:random-string}` and of the random part of a name.
pub const RANDOM_LEN: usize = 11;
const RANDOM_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// Hive's folder name for a NULL partition value.
pub const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Timestamp(Vec<Token>),
    RandomString,
    ErrorOutputType,
}

/// A parsed prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyTemplate {
    pieces: Vec<Piece>,
}

/// What a prefix's expressions evaluate to for one object.
pub struct KeyValues<'a> {
    /// ROWTIME of the oldest row in the object.
    pub oldest: Millis,
    pub random: &'a str,
    /// Why the rows are under the error prefix (`delivery-failed`, ...).
    pub error_output_type: &'a str,
}

impl KeyTemplate {
    pub fn parse(template: &str) -> std::result::Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = template;
        while let Some(start) = rest.find("!{") {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_string()));
            }
            let inside = &rest[start + 2..];
            let end = inside
                .find('}')
                .ok_or_else(|| format!("'{template}': an expression opened with '!{{' is never closed with '}}'"))?;
            pieces.push(expression(&inside[..end])?);
            rest = &inside[end + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(KeyTemplate { pieces })
    }

    pub fn uses_error_output_type(&self) -> bool {
        self.pieces.contains(&Piece::ErrorOutputType)
    }

    pub fn render(&self, values: &KeyValues) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Timestamp(tokens) => out.push_str(&simple_date_format::format(tokens, values.oldest)),
                Piece::RandomString => out.push_str(values.random),
                Piece::ErrorOutputType => out.push_str(values.error_output_type),
            }
        }
        out
    }
}

/// One `!{namespace:value}` expression (the text between the braces).
fn expression(text: &str) -> std::result::Result<Piece, String> {
    let Some((namespace, value)) = text.split_once(':') else {
        return Err(format!(
            "'!{{{text}}}' is not an expression of the form !{{namespace:value}}"
        ));
    };
    match (namespace.trim(), value) {
        ("timestamp", "") => Err("'!{timestamp:}' needs a date pattern, e.g. !{timestamp:yyyy/MM/dd}".to_string()),
        ("timestamp", pattern) => simple_date_format::tokenize(pattern)
            .map(Piece::Timestamp)
            .map_err(|e| format!("'!{{{text}}}': {e}")),
        ("firehose", "random-string") => Ok(Piece::RandomString),
        ("firehose", "error-output-type") => Ok(Piece::ErrorOutputType),
        ("firehose", other) => Err(format!(
            "'!{{{text}}}': unknown firehose expression '{other}' (expected random-string or error-output-type)"
        )),
        ("partitionKeyFromQuery" | "partitionKeyFromLambda", _) => Err(format!(
            "'!{{{text}}}': dynamic partitioning keys are not supported; partition by output columns with partition_by"
        )),
        (other, _) => Err(format!(
            "'!{{{text}}}': unknown expression namespace '{other}' (expected timestamp or firehose)"
        )),
    }
}

/// 11 random characters, as `!{firehose:random-string}`.
pub fn random_string() -> String {
    let mut rng = rand::rng();
    (0..RANDOM_LEN)
        .map(|_| RANDOM_ALPHABET[rng.random_range(0..RANDOM_ALPHABET.len())] as char)
        .collect()
}

/// 11 characters of the same alphabet derived from `seed` (MD5: stable across builds, so
/// a restarted binary names a replayed object as the first run did).
pub fn derived_string(seed: &str) -> String {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&Md5::digest(seed.as_bytes()));
    let mut n = u128::from_le_bytes(bytes);
    (0..RANDOM_LEN)
        .map(|_| {
            let c = RANDOM_ALPHABET[(n % RANDOM_ALPHABET.len() as u128) as usize];
            n /= RANDOM_ALPHABET.len() as u128;
            c as char
        })
        .collect()
}

static NAME_TIME: LazyLock<Vec<Token>> =
    LazyLock::new(|| simple_date_format::tokenize("yyyy-MM-dd-HH-mm-ss").expect("a valid pattern"));

/// The object's name after its prefix and folders.
pub fn object_name(app: &str, stream: &str, oldest: Millis, sequence: &str, random: &str, extension: &str) -> String {
    format!(
        "{}-{}-{}-{sequence}-{random}{extension}",
        safe(app),
        safe(stream),
        simple_date_format::format(&NAME_TIME, oldest)
    )
}

/// Names may hold anything; keys get letters, digits, `.`, `_` and `-` of them.
fn safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The index of each `partition_by` column in `batch`'s schema (exact name first, then
/// case-insensitive, since unquoted SQL names are upper case).
pub fn partition_columns(batch: &RecordBatch, names: &[String]) -> Result<Vec<usize>> {
    let schema = batch.schema();
    names
        .iter()
        .map(|name| {
            schema
                .index_of(name)
                .ok()
                .or_else(|| schema.fields().iter().position(|f| f.name().eq_ignore_ascii_case(name)))
                .ok_or_else(|| {
                    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                    SluiceError::config(format!(
                        "the S3 output's partition_by column {name} is not a column of the output stream ({})",
                        columns.join(", ")
                    ))
                })
        })
        .collect()
}

/// Each row's partition folders (`COL=value/...`); empty strings without partitioning.
pub fn partition_paths(batch: &RecordBatch, columns: &[usize]) -> Result<Vec<String>> {
    let mut paths = vec![String::new(); batch.num_rows()];
    for &index in columns {
        let name = url_encode(batch.schema().field(index).name());
        for (path, value) in paths.iter_mut().zip(column_text(batch.column(index))?) {
            let value = value.map(|v| url_encode(&v));
            path.push_str(&format!("{name}={}/", value.as_deref().unwrap_or(NULL_PARTITION)));
        }
    }
    Ok(paths)
}

/// A column's values as text (timestamps as sluice writes them), NULL as None.
fn column_text(column: &dyn Array) -> Result<Vec<Option<String>>> {
    if let DataType::Timestamp(TimeUnit::Millisecond, _) = column.data_type() {
        let times = column.as_primitive::<datafusion::arrow::datatypes::TimestampMillisecondType>();
        return Ok(times.iter().map(|t| t.map(crate::time::format_timestamp)).collect());
    }
    let text = cast(column, &DataType::Utf8)?;
    Ok(text.as_string::<i32>().iter().map(|v| v.map(str::to_string)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_timestamp;

    fn render(template: &str, at: &str) -> String {
        KeyTemplate::parse(template).unwrap().render(&KeyValues {
            oldest: parse_timestamp(at).unwrap(),
            random: "abcdefghijk",
            error_output_type: "delivery-failed",
        })
    }

    #[test]
    fn timestamp_expressions_use_java_pattern_letters() {
        let at = "2024-03-01 08:05:09.123";
        assert_eq!(render("!{timestamp:yyyy}/", at), "2024/");
        assert_eq!(
            render("!{timestamp:yyyy}/!{timestamp:MM}/!{timestamp:dd}/!{timestamp:HH}/", at),
            "2024/03/01/08/"
        );
        assert_eq!(render(super::super::config::DEFAULT_PREFIX, at), "2024/03/01/08/");
        assert_eq!(render("dt=!{timestamp:yyyy'-'MM'-'dd}/", at), "dt=2024-03-01/");
        assert_eq!(render("!{timestamp:mm:ss.SSS}", at), "05:09.123");
        assert_eq!(render("!{timestamp:EEE D MMM yy}", at), "Fri 61 Mar 24");
        assert_eq!(render("plain/prefix-", at), "plain/prefix-");
    }

    #[test]
    fn firehose_expressions() {
        let at = "2024-03-01 08:00:00";
        assert_eq!(render("r=!{firehose:random-string}/", at), "r=abcdefghijk/");
        assert_eq!(
            render(super::super::config::DEFAULT_ERROR_PREFIX, at),
            "error/delivery-failed/2024/03/01/08/"
        );
        let s = random_string();
        assert_eq!(s.len(), RANDOM_LEN);
        assert!(s.bytes().all(|b| RANDOM_ALPHABET.contains(&b)), "{s}");
        assert_ne!(random_string(), s);
        assert_eq!(derived_string("a"), derived_string("a"));
        assert_ne!(derived_string("a"), derived_string("b"));
        assert!(derived_string("a").bytes().all(|b| RANDOM_ALPHABET.contains(&b)));
        assert_eq!(derived_string("a").len(), RANDOM_LEN);
    }

    #[test]
    fn unknown_or_malformed_expressions_are_errors_that_say_what_is_expected() {
        let err = |t: &str| KeyTemplate::parse(t).unwrap_err();
        assert!(
            err("a/!{timestamp:yyyy").contains("never closed"),
            "{}",
            err("a/!{timestamp:yyyy")
        );
        assert!(err("!{nope:x}/").contains("unknown expression namespace 'nope'"));
        assert!(err("!{nope:x}/").contains("expected timestamp or firehose"));
        assert!(err("!{firehose:uuid}").contains("expected random-string or error-output-type"));
        assert!(err("!{timestamp:yyyy-qq}").contains("illegal pattern character 'q'"));
        assert!(err("!{timestamp:}").contains("needs a date pattern"));
        assert!(err("!{yyyy}").contains("!{namespace:value}"));
        assert!(err("!{partitionKeyFromQuery:city}").contains("partition_by"));
    }

    #[test]
    fn names_and_hive_folders() {
        let at = parse_timestamp("2024-03-01 08:05:09").unwrap();
        assert_eq!(
            object_name("my app", "OUT", at, "7", "abcdefghijk", ".json.gz"),
            "my_app-OUT-2024-03-01-08-05-09-7-abcdefghijk.json.gz"
        );
        assert_eq!(url_encode("São Paulo/1&2"), "S%C3%A3o%20Paulo%2F1%262");
        use datafusion::arrow::array::{Int32Array, StringArray};
        use std::sync::Arc;
        let batch = RecordBatch::try_from_iter(vec![
            (
                "CITY",
                Arc::new(StringArray::from(vec![Some("Porto"), None, Some("a b")])) as _,
            ),
            ("N", Arc::new(Int32Array::from(vec![1, 2, 3])) as _),
        ])
        .unwrap();
        let columns = partition_columns(&batch, &["city".into(), "N".into()]).unwrap();
        assert_eq!(
            partition_paths(&batch, &columns).unwrap(),
            vec![
                "CITY=Porto/N=1/",
                "CITY=__HIVE_DEFAULT_PARTITION__/N=2/",
                "CITY=a%20b/N=3/"
            ]
        );
        let err = partition_columns(&batch, &["NOPE".into()]).unwrap_err().to_string();
        assert!(err.contains("NOPE") && err.contains("CITY, N"), "{err}");
    }
}
