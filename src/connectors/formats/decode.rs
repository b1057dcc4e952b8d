//! Decoding raw records into Arrow batches through an input schema (spec §5.2, §5.3, §2.3).
//!
//! Records are decoded column-wise into one batch per call. Each record is first decoded
//! into staged [`Cell`]s; only when every value of every row of the record coerced does it
//! reach the column builders, so a failed record contributes no row and exactly one
//! `error_stream` row, while the other records of the slice keep flowing.
//!
//! JSON: the record holds one or more concatenated documents; `RecordRowPath` selects
//! the row object in each (or an array whose elements are the row objects); each column's
//! `Mapping` is a JSONPath evaluated on the row (missing → NULL). One array per schema may
//! be flattened (`$.arr[0:].field`): one row per element, other columns repeated; an empty
//! or missing array still gives one row (its flattened columns NULL).
//!
//! CSV: the record is split into rows by the row delimiter (empty rows skipped) and each
//! row into fields by the column delimiter, with no quote processing (decision A15);
//! columns map by position; missing trailing fields are NULL, surplus fields ignored; an
//! empty field is NULL except for CHAR/VARCHAR (the empty string). Values are not trimmed
//! (A16), although numbers, dates and times tolerate surrounding blanks when parsed.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder, Float64Builder,
    Int8Builder, Int16Builder, Int32Builder, Int64Builder, RecordBatch, RecordBatchOptions, StringBuilder,
    Time32MillisecondBuilder, TimestampMillisecondBuilder, new_null_array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::app::{RecordFormat, RecordSchema};
use crate::connectors::RawRecord;
use crate::error::{ErrorRow, SluiceError};
use crate::time::{Millis, now_millis};
use crate::types::{PARTITION_KEY, SEQUENCE_NUMBER, SHARD_ID, SqlType, input_stream_columns, stream_schema};

use super::coerce::{Cell, Scratch, Target, coerce_field, coerce_json};
use super::json::{Doc, Kind, Seg, parse_path};

mod path_check;
pub use path_check::UnmatchedPath;

/// The result of decoding a slice of records.
#[derive(Debug)]
pub struct Decoded {
    /// The rows of every record that decoded, in record order.
    pub batch: RecordBatch,
    /// One row per record that failed.
    pub errors: Vec<ErrorRow>,
}

/// Decodes the raw records of one input into batches of its in-application stream.
#[derive(Debug)]
pub struct RecordDecoder {
    core: Core,
    stream_name: String,
    schema: SchemaRef,
    /// Columns filled from the record's envelope instead of its payload, with their
    /// position among the declared columns.
    metadata: Vec<(usize, Metadata)>,
}

/// A field of the Kinesis record envelope. Every input stream carries the envelope as
/// the implicit columns PARTITION_KEY, SEQUENCE_NUMBER and SHARD_ID (as KDA's do); a
/// declared column mapped `METADATA:<FIELD>` reads a field under a name and place of its
/// own (Flink's Kinesis connector calls these metadata columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metadata {
    PartitionKey,
    SequenceNumber,
    ShardId,
}

/// The CSV columns whose `mapping` is not used: CSV fields are read by position, so only
/// a `METADATA:` mapping means something there. (column, mapping) pairs.
pub fn unused_csv_mappings(schema: &RecordSchema) -> Vec<(String, String)> {
    if !matches!(schema.format, crate::app::RecordFormat::Csv { .. }) {
        return Vec::new();
    }
    schema
        .columns
        .iter()
        .filter_map(|c| {
            let mapping = c.mapping.as_deref()?;
            Metadata::of_mapping(mapping)
                .is_none()
                .then(|| (c.column.name.clone(), mapping.to_string()))
        })
        .collect()
}

impl Metadata {
    /// The field of a `METADATA:<FIELD>` mapping (case-insensitive), if it is one.
    pub fn of_mapping(mapping: &str) -> Option<std::result::Result<Metadata, String>> {
        let (head, field) = mapping.trim().split_once(':')?;
        if !head.eq_ignore_ascii_case("METADATA") {
            return None;
        }
        Some(match field.trim().to_ascii_uppercase().as_str() {
            "PARTITION_KEY" => Ok(Metadata::PartitionKey),
            "SEQUENCE_NUMBER" => Ok(Metadata::SequenceNumber),
            "SHARD_ID" => Ok(Metadata::ShardId),
            other => Err(format!(
                "unknown metadata field '{other}' (expected PARTITION_KEY, SEQUENCE_NUMBER or SHARD_ID)"
            )),
        })
    }

    /// The field an implicit envelope column (`crate::types::envelope_columns`) reads.
    fn of_implicit_column(name: &str) -> Option<Metadata> {
        match name {
            PARTITION_KEY => Some(Metadata::PartitionKey),
            SEQUENCE_NUMBER => Some(Metadata::SequenceNumber),
            SHARD_ID => Some(Metadata::ShardId),
            _ => None,
        }
    }

    fn value(self, r: &RawRecord) -> Option<&str> {
        match self {
            Metadata::PartitionKey => r.partition_key.as_deref(),
            Metadata::SequenceNumber => r.sequence_number.as_deref(),
            Metadata::ShardId => r.shard_id.as_deref(),
        }
    }
}

impl RecordDecoder {
    /// `stream_name` is the in-application input stream (used as PUMP_NAME and in the
    /// messages of error rows). Fails on a schema KDA would reject (bad JSONPath, two
    /// flattened arrays, empty delimiter, invalid DECIMAL).
    pub fn new(schema: &RecordSchema, stream_name: &str) -> crate::Result<Self> {
        let mut payload = schema.clone();
        payload.columns.clear();
        let mut metadata = Vec::new();
        for (i, c) in schema.columns.iter().enumerate() {
            match c.mapping.as_deref().and_then(Metadata::of_mapping) {
                Some(Ok(m)) => {
                    if !matches!(c.column.sql_type, SqlType::Varchar(_) | SqlType::Char(_)) {
                        return Err(SluiceError::config(format!(
                            "{stream_name}: metadata column {} must be VARCHAR or CHAR",
                            c.column.name
                        )));
                    }
                    metadata.push((i, m));
                }
                Some(Err(e)) => {
                    return Err(SluiceError::config(format!(
                        "{stream_name}: column {}: {e}",
                        c.column.name
                    )));
                }
                None => payload.columns.push(c.clone()),
            }
        }
        let core = Core::new(&payload, stream_name)?;
        let declared = schema.column_defs();
        let columns = input_stream_columns(&declared);
        for (position, column) in columns.iter().enumerate().skip(declared.len()) {
            if let Some(field) = Metadata::of_implicit_column(&column.name) {
                metadata.push((position, field));
            }
        }
        Ok(RecordDecoder {
            core,
            stream_name: stream_name.to_string(),
            schema: stream_schema(&columns, true),
            metadata,
        })
    }

    /// JSON columns whose path matches no member of any row of `records`, with the path
    /// that would match when the records have one differing only in case or in the way
    /// to its last name. For the first records of an input: it parses them once more.
    pub fn unmatched_paths(&self, records: &[RawRecord]) -> Vec<UnmatchedPath> {
        path_check::unmatched(&self.core, records)
    }

    /// The declared columns, the envelope columns not declared, then
    /// APPROXIMATE_ARRIVAL_TIME, then ROWTIME (last).
    pub fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Decodes `records` into one batch. A record's ROWTIME is `record.rowtime`, else
    /// `default_rowtime`; its APPROXIMATE_ARRIVAL_TIME is `record.arrival`, else its
    /// ROWTIME. Never panics; a record that fails yields one error row and no data row.
    pub fn decode(&self, records: &[RawRecord], default_rowtime: Millis) -> Decoded {
        let bytes: usize = records.iter().map(|r| r.data.len()).sum();
        let mut out = Builders::new(&self.core.cols, records.len(), bytes, true);
        let mut st = Stage::default();
        let mut errors = Vec::new();
        // Rows each record gave, to repeat its envelope fields on them.
        let mut rows_of: Vec<(usize, usize)> = Vec::new();
        for (index, r) in records.iter().enumerate() {
            let rowtime = r.rowtime.unwrap_or(default_rowtime);
            let arrival = r.arrival.unwrap_or(rowtime);
            match self.core.decode_record(&r.data, &mut st) {
                Ok(text) => {
                    let n = out.commit(&st, text, self.core.cols.len(), Some((arrival, rowtime)));
                    if !self.metadata.is_empty() {
                        rows_of.push((index, n));
                    }
                }
                Err(e) => errors.push(e.into_row(&r.data, rowtime, &self.stream_name)),
            }
        }
        let batch = match self.finish(out, records, &rows_of) {
            Ok(b) => b,
            Err(message) => {
                // Unreachable by construction; never lose the slice silently.
                errors.push(
                    RecErr {
                        name: "InternalError",
                        message,
                    }
                    .into_row(&[], default_rowtime, &self.stream_name),
                );
                RecordBatch::new_empty(self.schema.clone())
            }
        };
        Decoded { batch, errors }
    }

    fn finish(&self, out: Builders, records: &[RawRecord], rows_of: &[(usize, usize)]) -> Result<RecordBatch, String> {
        if self.metadata.is_empty() {
            return out.finish(self.schema.clone());
        }
        let (mut arrays, rows) = out.finish_arrays();
        // Ascending positions: each insertion lands at its final index.
        for &(position, field) in &self.metadata {
            let present = rows_of.iter().any(|&(index, _)| field.value(&records[index]).is_some());
            // Sources without an envelope (files, stdin, the generator) skip the builder.
            let column: ArrayRef = if !present {
                new_null_array(&DataType::Utf8, rows)
            } else {
                let mut b = StringBuilder::with_capacity(rows, rows * 24);
                for &(index, n) in rows_of {
                    let v = field.value(&records[index]);
                    for _ in 0..n {
                        b.append_option(v);
                    }
                }
                Arc::new(b.finish())
            };
            arrays.insert(position, column);
        }
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(|e| format!("building the decoded batch: {e}"))
    }
}

/// Decodes a reference-data file (spec §5.5) into one batch of the declared columns only
/// (no APPROXIMATE_ARRIVAL_TIME / ROWTIME). CSV files are split into rows by the row
/// delimiter; JSON files hold one document per line (a file that parses as a stream of
/// documents, e.g. pretty-printed, is also accepted, one record per document). The first
/// `skip_header_lines` lines are skipped. Values are not trimmed (A16). Rows that fail
/// become error rows with PUMP_NAME = `table`; only a bad schema is an `Err`.
pub fn decode_table(
    schema: &RecordSchema,
    bytes: &[u8],
    skip_header_lines: usize,
    table: &str,
) -> crate::Result<(RecordBatch, Vec<ErrorRow>)> {
    let core = Core::new(schema, table)?;
    // Files saved by some editors start with a UTF-8 byte order mark.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let out_schema: SchemaRef = Arc::new(Schema::new(
        schema
            .columns
            .iter()
            .map(|c| Field::new(&c.column.name, c.column.sql_type.arrow_type(), true))
            .collect::<Vec<_>>(),
    ));
    let records: Vec<&[u8]> = match &core.format {
        Format::Csv { row, .. } => {
            let mut pieces = split_bytes(bytes, &row.as_bytes());
            pieces.drain(..skip_header_lines.min(pieces.len()));
            pieces
        }
        Format::Json { .. } => {
            let mut start = 0;
            for _ in 0..skip_header_lines {
                match bytes[start..].iter().position(|&b| b == b'\n') {
                    Some(p) => start += p + 1,
                    None => start = bytes.len(),
                }
            }
            let rest = &bytes[start..];
            let mut doc = Doc::default();
            match std::str::from_utf8(rest) {
                Ok(text) if doc.parse(text).is_ok() => {
                    doc.roots.iter().map(|&r| doc.source(r, text).as_bytes()).collect()
                }
                _ => {
                    let mut lines = split_bytes(rest, b"\n");
                    lines.retain(|l| !l.iter().all(u8::is_ascii_whitespace));
                    lines
                }
            }
        }
    };
    let total: usize = records.iter().map(|r| r.len()).sum();
    let mut out = Builders::new(&core.cols, records.len(), total, false);
    let mut st = Stage::default();
    let mut errors = Vec::new();
    let now = now_millis();
    for data in records {
        match core.decode_record(data, &mut st) {
            Ok(text) => {
                out.commit(&st, text, core.cols.len(), None);
            }
            Err(e) => errors.push(e.into_row(data, now, table)),
        }
    }
    let batch = out.finish(out_schema).map_err(SluiceError::runtime)?;
    Ok((batch, errors))
}

/// Splits at every occurrence of `delim`, dropping a trailing empty piece.
fn split_bytes<'a>(bytes: &'a [u8], delim: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    if delim.is_empty() {
        out.push(bytes);
        return out;
    }
    let mut start = 0;
    let mut i = 0;
    while i + delim.len() <= bytes.len() {
        if bytes[i] == delim[0] && &bytes[i..i + delim.len()] == delim {
            out.push(&bytes[start..i]);
            i += delim.len();
            start = i;
        } else {
            i += 1;
        }
    }
    if start < bytes.len() {
        out.push(&bytes[start..]);
    }
    out
}

// ---------------------------------------------------------------------------------------
// The compiled schema
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
struct ColPlan {
    name: String,
    sql_type: SqlType,
    target: Target,
    not_null: bool,
    path: ColPath,
    /// JSON: the mapping as written (for messages); empty for CSV.
    mapping: String,
}

#[derive(Debug)]
enum ColPath {
    /// CSV: positional.
    Position,
    /// JSON: a path from the row.
    Plain(Vec<Seg>),
    /// JSON: a path from an element of the flattened array.
    Flat(Vec<Seg>),
}

#[derive(Debug)]
enum Format {
    Json {
        row_path: Vec<Seg>,
        flatten: Option<Vec<Seg>>,
    },
    Csv {
        row: Delim,
        col: Delim,
    },
}

#[derive(Debug)]
struct Core {
    cols: Vec<ColPlan>,
    format: Format,
}

/// A record-level failure.
#[derive(Debug)]
struct RecErr {
    name: &'static str,
    message: String,
}

impl RecErr {
    fn parse(message: String) -> Self {
        RecErr {
            name: "ParseError",
            message,
        }
    }

    fn into_row(self, data: &[u8], rowtime: Millis, pump: &str) -> ErrorRow {
        ErrorRow::for_record(self.name, format!("{pump}: {}", self.message), data, rowtime, pump)
    }
}

/// Shortens a value for an error message.
fn show(value: &str) -> String {
    const MAX: usize = 100;
    if value.len() <= MAX {
        return value.to_string();
    }
    let mut end = MAX;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &value[..end])
}

fn coercion_error(col: &ColPlan, value: &str, reason: &str) -> RecErr {
    RecErr {
        name: "CoercionError",
        message: format!(
            "cannot coerce {} to {} for column {}: value {reason}",
            show(value),
            col.sql_type,
            col.name
        ),
    }
}

fn null_error(col: &ColPlan) -> RecErr {
    RecErr {
        name: "NotNullViolation",
        message: format!("NULL value for NOT NULL column {}", col.name),
    }
}

/// A row or column delimiter.
#[derive(Debug)]
enum Delim {
    Char(char),
    Str(String),
}

impl Delim {
    fn new(text: &str, what: &str, ctx: &str) -> crate::Result<Delim> {
        let text = unescape_delimiter(text);
        let mut chars = text.chars();
        match (chars.next(), chars.next()) {
            (None, _) => Err(SluiceError::config(format!("{ctx}: the CSV {what} delimiter is empty"))),
            (Some(c), None) => Ok(Delim::Char(c)),
            _ => Ok(Delim::Str(text)),
        }
    }

    fn as_bytes(&self) -> Vec<u8> {
        match self {
            Delim::Char(c) => c.to_string().into_bytes(),
            Delim::Str(s) => s.clone().into_bytes(),
        }
    }

    /// Position and length of the first occurrence in `hay`.
    #[inline]
    fn find(&self, hay: &str) -> Option<(usize, usize)> {
        match self {
            Delim::Char(c) => hay.find(*c).map(|p| (p, c.len_utf8())),
            Delim::Str(s) => hay.find(s.as_str()).map(|p| (p, s.len())),
        }
    }

    /// The pieces of `text` with their byte offsets.
    fn split<'a, 'd>(&'d self, text: &'a str) -> Split<'a, 'd> {
        Split {
            rest: Some(text),
            off: 0,
            delim: self,
        }
    }
}

/// Delimiters written with backslash escapes (`\t`, `\n`, `\r\n`) in configuration
/// files mean the control characters.
fn unescape_delimiter(text: &str) -> String {
    if !text.contains('\\') || text == "\\" {
        return text.to_string();
    }
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => out.push('\\'),
        }
    }
    out
}

struct Split<'a, 'd> {
    rest: Option<&'a str>,
    off: usize,
    delim: &'d Delim,
}

impl<'a> Iterator for Split<'a, '_> {
    type Item = (usize, &'a str);
    #[inline]
    fn next(&mut self) -> Option<(usize, &'a str)> {
        let rest = self.rest?;
        let off = self.off;
        match self.delim.find(rest) {
            Some((p, l)) => {
                self.rest = Some(&rest[p + l..]);
                self.off = off + p + l;
                Some((off, &rest[..p]))
            }
            None => {
                self.rest = None;
                Some((off, rest))
            }
        }
    }
}

impl Core {
    fn new(schema: &RecordSchema, ctx: &str) -> crate::Result<Core> {
        let cfg = |m: String| SluiceError::config(format!("{ctx}: {m}"));
        if schema.columns.is_empty() {
            return Err(cfg("the record schema has no columns".to_string()));
        }
        let mut flatten: Option<Vec<Seg>> = None;
        let json = matches!(schema.format, RecordFormat::Json { .. });
        let mut cols = Vec::with_capacity(schema.columns.len());
        for rc in &schema.columns {
            let c = &rc.column;
            let target = Target::of(&c.sql_type).map_err(|m| cfg(format!("column {}: {m}", c.name)))?;
            let mapping = if json {
                rc.mapping.clone().unwrap_or_else(|| format!("$.{}", c.name))
            } else {
                String::new()
            };
            let path = if !json {
                ColPath::Position
            } else {
                let mut segs = parse_path(&mapping).map_err(|m| cfg(format!("column {}: {m}", c.name)))?;
                // A trailing [0:] takes the whole array (rendered as its JSON text).
                if segs.last() == Some(&Seg::All) {
                    segs.pop();
                }
                let alls = segs.iter().filter(|s| **s == Seg::All).count();
                match alls {
                    0 => ColPath::Plain(segs),
                    1 => {
                        let at = segs.iter().position(|s| *s == Seg::All).unwrap_or(0);
                        let suffix = segs.split_off(at + 1);
                        segs.pop();
                        match &flatten {
                            Some(p) if *p != segs => {
                                return Err(cfg(format!(
                                    "column {}: only one array may be flattened per schema ('{mapping}')",
                                    c.name
                                )));
                            }
                            _ => flatten = Some(segs),
                        }
                        ColPath::Flat(suffix)
                    }
                    _ => {
                        return Err(cfg(format!(
                            "column {}: only one level of array dereference is supported ('{mapping}')",
                            c.name
                        )));
                    }
                }
            };
            cols.push(ColPlan {
                name: c.name.clone(),
                sql_type: c.sql_type.clone(),
                target,
                not_null: c.not_null,
                path,
                mapping,
            });
        }
        let format = match &schema.format {
            RecordFormat::Json { row_path } => {
                let rp = if row_path.trim().is_empty() {
                    "$"
                } else {
                    row_path.as_str()
                };
                let mut row_path = parse_path(rp).map_err(|m| cfg(format!("RecordRowPath: {m}")))?;
                // `$.rows[0:]` and `$.rows` both make every element of the array a row.
                if row_path.last() == Some(&Seg::All) {
                    row_path.pop();
                }
                if row_path.contains(&Seg::All) {
                    return Err(cfg(format!(
                        "RecordRowPath '{rp}': an array step is only allowed at the end"
                    )));
                }
                Format::Json { row_path, flatten }
            }
            RecordFormat::Csv {
                row_delimiter,
                column_delimiter,
            } => Format::Csv {
                row: Delim::new(row_delimiter, "row", ctx)?,
                col: Delim::new(column_delimiter, "column", ctx)?,
            },
        };
        Ok(Core { cols, format })
    }

    /// Decodes one record into `st.cells` (rows × columns). Returns the record's text,
    /// which the cells' `Src` ranges point into.
    fn decode_record<'a>(&self, data: &'a [u8], st: &mut Stage) -> Result<&'a str, RecErr> {
        st.cells.clear();
        st.sc.clear();
        let text = std::str::from_utf8(data).map_err(|e| RecErr::parse(format!("record is not valid UTF-8: {e}")))?;
        if text.len() >= u32::MAX as usize {
            return Err(RecErr::parse("record too large".to_string()));
        }
        match &self.format {
            Format::Csv { row, col } => self.decode_csv(text, row, col, st)?,
            Format::Json { row_path, flatten } => self.decode_json(text, row_path, flatten.as_deref(), st)?,
        }
        Ok(text)
    }

    fn decode_csv(&self, text: &str, row: &Delim, col: &Delim, st: &mut Stage) -> Result<(), RecErr> {
        for (roff, line) in row.split(text) {
            if line.is_empty() {
                continue;
            }
            let mut fields = col.split(line);
            for c in &self.cols {
                let cell = match fields.next() {
                    Some((foff, f)) => coerce_field(c.target, f, (roff + foff) as u32, &mut st.sc)
                        .map_err(|reason| coercion_error(c, &format!("'{f}'"), reason))?,
                    None => Cell::Null,
                };
                if c.not_null && cell == Cell::Null {
                    return Err(null_error(c));
                }
                st.cells.push(cell);
            }
        }
        Ok(())
    }

    fn decode_json(&self, text: &str, row_path: &[Seg], flatten: Option<&[Seg]>, st: &mut Stage) -> Result<(), RecErr> {
        let Stage {
            doc,
            cells,
            sc,
            tmp,
            base,
            elems,
        } = st;
        doc.parse(text).map_err(RecErr::parse)?;
        for &root in &doc.roots {
            let Some(sel) = doc.walk(root, row_path, text, tmp) else {
                return Err(RecErr::parse(
                    "the document has no element at the RecordRowPath".to_string(),
                ));
            };
            match doc.node(sel).kind {
                Kind::Object => self.json_row(doc, text, sel, flatten, cells, sc, tmp, base, elems)?,
                Kind::Array => {
                    for row in doc.children(sel) {
                        if doc.node(row).kind != Kind::Object {
                            return Err(RecErr::parse(format!(
                                "row {} is not a JSON object",
                                show(doc.source(row, text))
                            )));
                        }
                        self.json_row(doc, text, row, flatten, cells, sc, tmp, base, elems)?;
                    }
                }
                _ => {
                    return Err(RecErr::parse(format!(
                        "row {} is not a JSON object",
                        show(doc.source(sel, text))
                    )));
                }
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn json_row(
        &self,
        doc: &Doc,
        text: &str,
        row: u32,
        flatten: Option<&[Seg]>,
        cells: &mut Vec<Cell>,
        sc: &mut Scratch,
        tmp: &mut String,
        base: &mut Vec<Cell>,
        elems: &mut Vec<u32>,
    ) -> Result<(), RecErr> {
        let coerce = |c: &ColPlan, node: Option<u32>, sc: &mut Scratch| -> Result<Cell, RecErr> {
            let cell = coerce_json(c.target, doc, node, text, sc)
                .map_err(|reason| coercion_error(c, node.map(|n| doc.source(n, text)).unwrap_or(""), reason))?;
            if c.not_null && cell == Cell::Null {
                return Err(null_error(c));
            }
            Ok(cell)
        };
        let Some(prefix) = flatten else {
            for c in &self.cols {
                let node = match &c.path {
                    ColPath::Plain(p) => doc.walk(row, p, text, tmp),
                    _ => None,
                };
                cells.push(coerce(c, node, sc)?);
            }
            return Ok(());
        };
        // Non-flattened columns: coerced once, repeated on every row of the element.
        base.clear();
        for c in &self.cols {
            base.push(match &c.path {
                ColPath::Plain(p) => coerce(c, doc.walk(row, p, text, tmp), sc)?,
                _ => Cell::Null,
            });
        }
        elems.clear();
        if let Some(arr) = doc.walk(row, prefix, text, tmp)
            && doc.node(arr).kind == Kind::Array
        {
            elems.extend(doc.children(arr));
        }
        if elems.is_empty() {
            for (c, &b) in self.cols.iter().zip(base.iter()) {
                cells.push(match &c.path {
                    ColPath::Flat(_) => coerce(c, None, sc)?,
                    _ => b,
                });
            }
            return Ok(());
        }
        for &e in elems.iter() {
            for (c, &b) in self.cols.iter().zip(base.iter()) {
                cells.push(match &c.path {
                    ColPath::Flat(s) => coerce(c, doc.walk(e, s, text, tmp), sc)?,
                    _ => b,
                });
            }
        }
        Ok(())
    }
}

/// Reusable per-call buffers.
#[derive(Debug, Default)]
struct Stage {
    doc: Doc,
    cells: Vec<Cell>,
    sc: Scratch,
    tmp: String,
    base: Vec<Cell>,
    elems: Vec<u32>,
}

// ---------------------------------------------------------------------------------------
// Column builders
// ---------------------------------------------------------------------------------------

enum ColBuilder {
    I8(Int8Builder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    Dec(Decimal128Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Str(StringBuilder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    Time(Time32MillisecondBuilder),
    Ts(TimestampMillisecondBuilder),
    Bin(BinaryBuilder),
}

impl ColBuilder {
    fn new(t: &SqlType, cap: usize, bytes: usize) -> Self {
        match t {
            SqlType::TinyInt => ColBuilder::I8(Int8Builder::with_capacity(cap)),
            SqlType::SmallInt => ColBuilder::I16(Int16Builder::with_capacity(cap)),
            SqlType::Integer => ColBuilder::I32(Int32Builder::with_capacity(cap)),
            SqlType::BigInt => ColBuilder::I64(Int64Builder::with_capacity(cap)),
            SqlType::Decimal { precision, scale } => ColBuilder::Dec(
                Decimal128Builder::with_capacity(cap).with_data_type(DataType::Decimal128(*precision, *scale)),
            ),
            SqlType::Real => ColBuilder::F32(Float32Builder::with_capacity(cap)),
            SqlType::Double => ColBuilder::F64(Float64Builder::with_capacity(cap)),
            SqlType::Char(_) | SqlType::Varchar(_) => ColBuilder::Str(StringBuilder::with_capacity(cap, bytes)),
            SqlType::Boolean => ColBuilder::Bool(BooleanBuilder::with_capacity(cap)),
            SqlType::Date => ColBuilder::Date(Date32Builder::with_capacity(cap)),
            SqlType::Time => ColBuilder::Time(Time32MillisecondBuilder::with_capacity(cap)),
            SqlType::Timestamp => ColBuilder::Ts(TimestampMillisecondBuilder::with_capacity(cap)),
            SqlType::Binary(_) | SqlType::Varbinary(_) => ColBuilder::Bin(BinaryBuilder::with_capacity(cap, 0)),
        }
    }

    #[inline]
    fn push(&mut self, cell: Cell, text: &str, sc: &Scratch) {
        match self {
            ColBuilder::I8(b) => b.append_option(int(cell).and_then(|v| i8::try_from(v).ok())),
            ColBuilder::I16(b) => b.append_option(int(cell).and_then(|v| i16::try_from(v).ok())),
            ColBuilder::I32(b) => b.append_option(int(cell).and_then(|v| i32::try_from(v).ok())),
            ColBuilder::I64(b) => b.append_option(int(cell)),
            ColBuilder::Date(b) => b.append_option(int(cell).and_then(|v| i32::try_from(v).ok())),
            ColBuilder::Time(b) => b.append_option(int(cell).and_then(|v| i32::try_from(v).ok())),
            ColBuilder::Ts(b) => b.append_option(int(cell)),
            ColBuilder::Dec(b) => b.append_option(match cell {
                Cell::Dec(v) => Some(v),
                _ => None,
            }),
            ColBuilder::F32(b) => b.append_option(match cell {
                Cell::F32(v) => Some(v),
                _ => None,
            }),
            ColBuilder::F64(b) => b.append_option(match cell {
                Cell::F64(v) => Some(v),
                _ => None,
            }),
            ColBuilder::Bool(b) => b.append_option(match cell {
                Cell::Bool(v) => Some(v),
                _ => None,
            }),
            ColBuilder::Str(b) => b.append_option(match cell {
                Cell::Src(s, e) => text.get(s as usize..e as usize),
                Cell::Txt(s, e) => sc.text.get(s as usize..e as usize),
                _ => None,
            }),
            ColBuilder::Bin(b) => b.append_option(match cell {
                Cell::Bin(s, e) => sc.bin.get(s as usize..e as usize),
                _ => None,
            }),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColBuilder::I8(b) => Arc::new(b.finish()),
            ColBuilder::I16(b) => Arc::new(b.finish()),
            ColBuilder::I32(b) => Arc::new(b.finish()),
            ColBuilder::I64(b) => Arc::new(b.finish()),
            ColBuilder::Dec(b) => Arc::new(b.finish()),
            ColBuilder::F32(b) => Arc::new(b.finish()),
            ColBuilder::F64(b) => Arc::new(b.finish()),
            ColBuilder::Str(b) => Arc::new(b.finish()),
            ColBuilder::Bool(b) => Arc::new(b.finish()),
            ColBuilder::Date(b) => Arc::new(b.finish()),
            ColBuilder::Time(b) => Arc::new(b.finish()),
            ColBuilder::Ts(b) => Arc::new(b.finish()),
            ColBuilder::Bin(b) => Arc::new(b.finish()),
        }
    }
}

#[inline]
fn int(cell: Cell) -> Option<i64> {
    match cell {
        Cell::Int(v) => Some(v),
        _ => None,
    }
}

struct Builders {
    cols: Vec<ColBuilder>,
    /// APPROXIMATE_ARRIVAL_TIME and ROWTIME (input streams only).
    times: Option<(TimestampMillisecondBuilder, TimestampMillisecondBuilder)>,
    rows: usize,
}

impl Builders {
    fn new(cols: &[ColPlan], records: usize, bytes: usize, with_times: bool) -> Self {
        Builders {
            cols: cols
                .iter()
                .map(|c| ColBuilder::new(&c.sql_type, records, bytes))
                .collect(),
            times: with_times.then(|| {
                (
                    TimestampMillisecondBuilder::with_capacity(records),
                    TimestampMillisecondBuilder::with_capacity(records),
                )
            }),
            rows: 0,
        }
    }

    /// Appends the staged rows of one record; returns how many.
    fn commit(&mut self, st: &Stage, text: &str, ncols: usize, times: Option<(Millis, Millis)>) -> usize {
        if ncols == 0 {
            return 0;
        }
        let mut n = 0;
        for row in st.cells.chunks_exact(ncols) {
            for (b, &cell) in self.cols.iter_mut().zip(row) {
                b.push(cell, text, &st.sc);
            }
            n += 1;
        }
        if let (Some((ab, rb)), Some((arrival, rowtime))) = (&mut self.times, times) {
            ab.append_value_n(arrival, n);
            rb.append_value_n(rowtime, n);
        }
        self.rows += n;
        n
    }

    fn finish_arrays(mut self) -> (Vec<ArrayRef>, usize) {
        let mut arrays: Vec<ArrayRef> = self.cols.iter_mut().map(ColBuilder::finish).collect();
        if let Some((ab, rb)) = &mut self.times {
            arrays.push(Arc::new(ab.finish()));
            arrays.push(Arc::new(rb.finish()));
        }
        debug_assert!(arrays.iter().all(|a| a.len() == self.rows));
        (arrays, self.rows)
    }

    fn finish(self, schema: SchemaRef) -> Result<RecordBatch, String> {
        let (arrays, rows) = self.finish_arrays();
        RecordBatch::try_new_with_options(schema, arrays, &RecordBatchOptions::new().with_row_count(Some(rows)))
            .map_err(|e| format!("building the decoded batch: {e}"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_csv_column_mapping_other_than_metadata_is_reported_unused() {
        let column = |name: &str, mapping: Option<&str>| crate::app::RecordColumn {
            column: crate::types::ColumnDef::new(name, SqlType::Varchar(16)),
            mapping: mapping.map(str::to_string),
        };
        let mut schema = RecordSchema {
            columns: vec![
                column("A", Some("$.a")),
                column("B", None),
                column("K", Some("METADATA:PARTITION_KEY")),
            ],
            format: RecordFormat::Csv {
                row_delimiter: "\n".into(),
                column_delimiter: ",".into(),
            },
        };
        assert_eq!(unused_csv_mappings(&schema), vec![("A".to_string(), "$.a".to_string())]);
        schema.format = RecordFormat::Json { row_path: "$".into() };
        assert!(unused_csv_mappings(&schema).is_empty());
    }

    use super::*;
    use crate::app::RecordColumn;
    use crate::time::parse_timestamp;
    use crate::types::ColumnDef;
    use datafusion::arrow::array::{Array, AsArray, BinaryArray, Decimal128Array};
    use datafusion::arrow::datatypes::{Float32Type, Float64Type, Int8Type, Int64Type, TimestampMillisecondType};
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

    fn col(name: &str, ty: &str, mapping: Option<&str>) -> RecordColumn {
        RecordColumn {
            column: ColumnDef::new(name, SqlType::parse(ty).unwrap()),
            mapping: mapping.map(str::to_string),
        }
    }

    fn json_schema(row_path: &str, cols: &[(&str, &str, &str)]) -> RecordSchema {
        RecordSchema {
            columns: cols.iter().map(|(n, t, m)| col(n, t, Some(m))).collect(),
            format: RecordFormat::Json {
                row_path: row_path.to_string(),
            },
        }
    }

    fn csv_schema(row: &str, sep: &str, cols: &[(&str, &str)]) -> RecordSchema {
        RecordSchema {
            columns: cols.iter().map(|(n, t)| col(n, t, None)).collect(),
            format: RecordFormat::Csv {
                row_delimiter: row.to_string(),
                column_delimiter: sep.to_string(),
            },
        }
    }

    #[test]
    fn metadata_columns_read_the_envelope_and_take_no_csv_field() {
        let schema = RecordSchema {
            columns: vec![
                col("A", "INTEGER", None),
                col("PK", "VARCHAR(16)", Some("metadata:partition_key")),
                col("B", "INTEGER", None),
                col("SHARD", "VARCHAR(32)", Some("METADATA:SHARD_ID")),
            ],
            format: RecordFormat::Csv {
                row_delimiter: "\n".into(),
                column_delimiter: ",".into(),
            },
        };
        let d = RecordDecoder::new(&schema, "S").unwrap();
        let record = |data: &str, key: &str| RawRecord {
            data: data.as_bytes().to_vec(),
            partition_key: Some(key.into()),
            shard_id: Some(std::sync::Arc::from("shardId-000000000001")),
            ..Default::default()
        };
        // Two rows in the first record: the envelope repeats on both; a bad record in
        // between shifts nothing.
        let out = d.decode(&[record("1,2\n3,4", "p"), record("x,1", "bad"), record("5,6", "q")], 0);
        assert_eq!(out.errors.len(), 1);
        let b = &out.batch;
        assert_eq!(b.num_rows(), 3);
        let ints = |i: usize| {
            b.column(i)
                .as_primitive::<datafusion::arrow::datatypes::Int32Type>()
                .values()
                .to_vec()
        };
        let strs = |i: usize| {
            (0..3)
                .map(|r| b.column(i).as_string::<i32>().value(r).to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(ints(0), [1, 3, 5]);
        assert_eq!(strs(1), ["p", "p", "q"]);
        assert_eq!(ints(2), [2, 4, 6]);
        assert_eq!(strs(3), ["shardId-000000000001"; 3]);
        // The implicit envelope columns follow the declared ones.
        assert_eq!(strs(4), ["p", "p", "q"]);
        assert_eq!(b.schema().field(6).name(), "SHARD_ID");
        assert_eq!(strs(6), ["shardId-000000000001"; 3]);
        assert_eq!(b.schema().field(7).name(), "APPROXIMATE_ARRIVAL_TIME");
    }

    #[test]
    fn envelope_columns_are_implicit_and_null_without_an_envelope() {
        let s = json_schema("$", &[("A", "INTEGER", "$.a")]);
        let d = RecordDecoder::new(&s, "S").unwrap();
        let kinesis = |data: &str, key: &str, seq: &str| RawRecord {
            data: data.as_bytes().to_vec(),
            partition_key: Some(key.into()),
            sequence_number: Some(seq.into()),
            shard_id: Some(std::sync::Arc::from("shardId-000000000003")),
            ..Default::default()
        };
        // Two rows from one record (a JSON array) repeat its envelope; a failed record
        // in between shifts nothing.
        let out = d.decode(
            &[
                kinesis(r#"[{"a":1},{"a":2}]"#, "k1", "495"),
                kinesis(r#"{"a":"x"}"#, "bad", "496"),
                kinesis(r#"{"a":3}"#, "k2", "497"),
            ],
            0,
        );
        assert_eq!(out.errors.len(), 1);
        assert_eq!(vals(&out.batch, "A"), ["1", "2", "3"]);
        assert_eq!(vals(&out.batch, "PARTITION_KEY"), ["k1", "k1", "k2"]);
        assert_eq!(vals(&out.batch, "SEQUENCE_NUMBER"), ["495", "495", "497"]);
        assert_eq!(vals(&out.batch, "SHARD_ID"), ["shardId-000000000003"; 3]);
        // A record without an envelope (a file line, stdin) gives NULLs.
        let out = d.decode(&[rec(r#"{"a":4}"#)], 0);
        assert_eq!(vals(&out.batch, "PARTITION_KEY"), ["NULL"]);
        assert_eq!(vals(&out.batch, "SEQUENCE_NUMBER"), ["NULL"]);
        assert_eq!(vals(&out.batch, "SHARD_ID"), ["NULL"]);
        // Mixed: only the records that carry a field fill it.
        let mut partial = rec(r#"{"a":5}"#);
        partial.partition_key = Some("only-key".into());
        let out = d.decode(&[partial, rec(r#"{"a":6}"#)], 0);
        assert_eq!(vals(&out.batch, "PARTITION_KEY"), ["only-key", "NULL"]);
        assert_eq!(vals(&out.batch, "SHARD_ID"), ["NULL", "NULL"]);
    }

    #[test]
    fn a_declared_column_of_an_envelope_name_wins() {
        // PARTITION_KEY from the payload, SHARD_ID from the envelope under a mapping.
        let s = json_schema(
            "$",
            &[
                ("PARTITION_KEY", "VARCHAR(8)", "$.pk"),
                ("SHARD_ID", "VARCHAR(32)", "METADATA:SHARD_ID"),
            ],
        );
        let d = RecordDecoder::new(&s, "S").unwrap();
        let names: Vec<String> = d.output_schema().fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(
            names,
            [
                "PARTITION_KEY",
                "SHARD_ID",
                "SEQUENCE_NUMBER",
                "APPROXIMATE_ARRIVAL_TIME",
                "ROWTIME"
            ]
        );
        let r = RawRecord {
            data: br#"{"pk":"payload"}"#.to_vec(),
            partition_key: Some("envelope".into()),
            sequence_number: Some("7".into()),
            shard_id: Some(std::sync::Arc::from("shardId-000000000000")),
            ..Default::default()
        };
        let out = d.decode(&[r], 0);
        assert_eq!(vals(&out.batch, "PARTITION_KEY"), ["payload"]);
        assert_eq!(vals(&out.batch, "SHARD_ID"), ["shardId-000000000000"]);
        assert_eq!(vals(&out.batch, "SEQUENCE_NUMBER"), ["7"]);
    }

    #[test]
    fn metadata_columns_must_be_strings_with_a_known_field() {
        let schema = |ty: &str, m: &str| json_schema("$", &[("A", "INTEGER", "$.a"), ("M", ty, m)]);
        let err = RecordDecoder::new(&schema("INTEGER", "METADATA:SHARD_ID"), "S").unwrap_err();
        assert!(err.to_string().contains("VARCHAR"), "{err}");
        let err = RecordDecoder::new(&schema("VARCHAR(8)", "METADATA:REGION"), "S").unwrap_err();
        assert!(err.to_string().contains("REGION"), "{err}");
        let d = RecordDecoder::new(&schema("VARCHAR(64)", "METADATA:SEQUENCE_NUMBER"), "S").unwrap();
        let r = RawRecord {
            data: br#"{"a":7}"#.to_vec(),
            sequence_number: Some("4959".into()),
            ..Default::default()
        };
        let out = d.decode(&[r], 0);
        assert_eq!(out.batch.column(1).as_string::<i32>().value(0), "4959");
    }

    fn rec(data: &str) -> RawRecord {
        RawRecord {
            data: data.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    fn rec_at(data: &str, rowtime: Millis) -> RawRecord {
        RawRecord {
            data: data.as_bytes().to_vec(),
            rowtime: Some(rowtime),
            ..Default::default()
        }
    }

    /// A column rendered as text ("NULL" for NULL).
    fn vals(b: &RecordBatch, name: &str) -> Vec<String> {
        let a = b.column_by_name(name).unwrap_or_else(|| panic!("no column {name}"));
        let opts = FormatOptions::default().with_null("NULL");
        let f = ArrayFormatter::try_new(a.as_ref(), &opts).unwrap();
        (0..a.len()).map(|i| f.value(i).to_string()).collect()
    }

    fn decode_json(cols: &[(&str, &str, &str)], records: &[&str]) -> Decoded {
        let d = RecordDecoder::new(&json_schema("$", cols), "SOURCE_SQL_STREAM_001").unwrap();
        let recs: Vec<RawRecord> = records.iter().map(|r| rec(r)).collect();
        d.decode(&recs, 1000)
    }

    /// Decodes one JSON value into a single column of type `ty`: Ok(rendered) or Err(error name).
    fn one(ty: &str, json_value: &str) -> Result<String, String> {
        let out = decode_json(&[("C", ty, "$.v")], &[&format!("{{\"v\": {json_value}}}")]);
        match (out.batch.num_rows(), out.errors.len()) {
            (1, 0) => Ok(vals(&out.batch, "C")[0].clone()),
            (0, 1) => Err(out.errors[0].name.clone()),
            other => panic!("unexpected result {other:?} for {ty} <- {json_value}"),
        }
    }

    #[test]
    fn output_schema_is_the_stream_schema() {
        let s = json_schema("$", &[("A", "INTEGER", "$.a"), ("b", "VARCHAR(4)", "$.b")]);
        let d = RecordDecoder::new(&s, "S").unwrap();
        assert_eq!(
            d.output_schema(),
            stream_schema(&input_stream_columns(&s.column_defs()), true)
        );
        let names: Vec<String> = d.output_schema().fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(
            names,
            [
                "A",
                "b",
                "PARTITION_KEY",
                "SEQUENCE_NUMBER",
                "SHARD_ID",
                "APPROXIMATE_ARRIVAL_TIME",
                "ROWTIME"
            ]
        );
        let out = d.decode(&[], 0);
        assert_eq!(out.batch.num_rows(), 0);
        assert_eq!(out.batch.schema(), d.output_schema());
    }

    #[test]
    fn json_paths_missing_and_unmapped() {
        let out = decode_json(
            &[
                ("A", "INTEGER", "$.a"),
                ("DEEP", "VARCHAR(8)", "$.x.y.z"),
                ("MISSING", "INTEGER", "$.nope"),
                ("CASE", "INTEGER", "$.A"),
            ],
            &[
                r#"{"a": 1, "x": {"y": {"z": "deep"}}, "other": [1,2,3], "A": 7}"#,
                r#"{"a": 2, "x": {"y": 5}}"#,
            ],
        );
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(vals(&out.batch, "A"), ["1", "2"]);
        assert_eq!(vals(&out.batch, "DEEP"), ["deep", "NULL"]);
        assert_eq!(vals(&out.batch, "MISSING"), ["NULL", "NULL"]);
        assert_eq!(vals(&out.batch, "CASE"), ["7", "NULL"], "paths are case-sensitive");
    }

    #[test]
    fn rowtime_and_arrival_time() {
        let d = RecordDecoder::new(&json_schema("$", &[("A", "INTEGER", "$.a")]), "S").unwrap();
        let recs = vec![
            RawRecord {
                data: b"{\"a\":1}".to_vec(),
                rowtime: Some(5000),
                arrival: Some(4000),
                ..Default::default()
            },
            RawRecord {
                data: b"{\"a\":2}".to_vec(),
                rowtime: Some(6000),
                ..Default::default()
            },
            rec("{\"a\":3}"),
        ];
        let out = d.decode(&recs, 9000);
        let rt = out
            .batch
            .column_by_name("ROWTIME")
            .unwrap()
            .as_primitive::<TimestampMillisecondType>();
        let at = out
            .batch
            .column_by_name("APPROXIMATE_ARRIVAL_TIME")
            .unwrap()
            .as_primitive::<TimestampMillisecondType>();
        assert_eq!(rt.values().to_vec(), vec![5000, 6000, 9000]);
        assert_eq!(at.values().to_vec(), vec![4000, 6000, 9000]);
        assert_eq!(rt.null_count(), 0);
    }

    #[test]
    fn coercion_to_integers() {
        assert_eq!(one("INTEGER", "12"), Ok("12".into()));
        assert_eq!(one("INTEGER", "\"12\""), Ok("12".into()));
        assert_eq!(one("INTEGER", "\" 12 \""), Ok("12".into()));
        assert_eq!(one("INTEGER", "\"n/a\""), Err("CoercionError".into()));
        assert_eq!(one("INTEGER", "\"\""), Err("CoercionError".into()));
        assert_eq!(one("INTEGER", "true"), Ok("1".into()));
        assert_eq!(one("INTEGER", "false"), Ok("0".into()));
        assert_eq!(one("INTEGER", "null"), Ok("NULL".into()));
        assert_eq!(one("INTEGER", "123.4"), Err("CoercionError".into()));
        assert_eq!(one("INTEGER", "\"123.4\""), Err("CoercionError".into()));
        assert_eq!(one("INTEGER", "1.0e2"), Ok("100".into()));
        assert_eq!(one("INTEGER", "-2147483648"), Ok("-2147483648".into()));
        assert_eq!(one("INTEGER", "2147483648"), Err("CoercionError".into()));
        assert_eq!(one("TINYINT", "127"), Ok("127".into()));
        assert_eq!(one("TINYINT", "128"), Err("CoercionError".into()));
        assert_eq!(one("TINYINT", "-129"), Err("CoercionError".into()));
        assert_eq!(one("SMALLINT", "32767"), Ok("32767".into()));
        assert_eq!(one("SMALLINT", "32768"), Err("CoercionError".into()));
        assert_eq!(one("BIGINT", "9223372036854775807"), Ok("9223372036854775807".into()));
        assert_eq!(one("BIGINT", "9223372036854775808"), Err("CoercionError".into()));
        assert_eq!(one("BIGINT", "[1]"), Err("CoercionError".into()));
        assert_eq!(one("BIGINT", "{\"a\":1}"), Err("CoercionError".into()));
        // The Arrow types are the ones of the SQL types.
        let out = decode_json(&[("T", "TINYINT", "$.v"), ("B", "BIGINT", "$.v")], &["{\"v\": 5}"]);
        assert_eq!(out.batch.column(0).as_primitive::<Int8Type>().value(0), 5);
        assert_eq!(out.batch.column(1).as_primitive::<Int64Type>().value(0), 5);
    }

    #[test]
    fn coercion_to_decimal_and_floats() {
        assert_eq!(one("DECIMAL(5,2)", "123.45"), Ok("123.45".into()));
        assert_eq!(one("DECIMAL(5,2)", "1.5"), Ok("1.50".into()));
        assert_eq!(one("DECIMAL(5,2)", "\"-7.25\""), Ok("-7.25".into()));
        assert_eq!(one("DECIMAL(5,2)", "true"), Ok("1.00".into()));
        assert_eq!(one("DECIMAL(5,2)", "1234.5"), Err("CoercionError".into()));
        // Digits beyond the scale are rounded (half away from zero), JSON and CSV alike.
        assert_eq!(one("DECIMAL(5,2)", "1.235"), Ok("1.24".into()));
        assert_eq!(one("DECIMAL(5,2)", "\"1.234\""), Ok("1.23".into()));
        assert_eq!(one("DECIMAL", "12.99"), Ok("13".into()));
        assert_eq!(one("NUMERIC(4)", "-12.5"), Ok("-13".into()));
        assert_eq!(one("DEC", "0.49"), Ok("0".into()));
        assert_eq!(one("DECIMAL(5,2)", "999.995"), Err("CoercionError".into()));
        let csv = RecordDecoder::new(&csv_schema("\n", ",", &[("P", "DECIMAL"), ("Q", "DECIMAL(6,1)")]), "S")
            .unwrap()
            .decode(&[rec("12.99,3.14159\n-7.5,2.25")], 0);
        assert!(csv.errors.is_empty(), "{:?}", csv.errors);
        assert_eq!(vals(&csv.batch, "P"), ["13", "-8"]);
        assert_eq!(vals(&csv.batch, "Q"), ["3.1", "2.3"]);
        let out = decode_json(&[("D", "DECIMAL(5,2)", "$.v")], &["{\"v\": 9.99}"]);
        let d = out.batch.column(0).as_any().downcast_ref::<Decimal128Array>().unwrap();
        assert_eq!((d.value(0), d.precision(), d.scale()), (999, 5, 2));

        let out = decode_json(
            &[("R", "REAL", "$.v"), ("D", "DOUBLE", "$.v")],
            &["{\"v\": 0.1}", "{\"v\": \"2.5\"}", "{\"v\": true}"],
        );
        assert!(out.errors.is_empty());
        let r = out.batch.column(0).as_primitive::<Float32Type>();
        let d = out.batch.column(1).as_primitive::<Float64Type>();
        assert_eq!(r.values().to_vec(), vec![0.1f32, 2.5, 1.0]);
        assert_eq!(d.values().to_vec(), vec![0.1f64, 2.5, 1.0]);
        assert_eq!(one("REAL", "1e39"), Err("CoercionError".into()));
        assert_eq!(one("DOUBLE", "1e400"), Err("CoercionError".into()));
        assert_eq!(one("DOUBLE", "\"abc\""), Err("CoercionError".into()));
        assert_eq!(one("DOUBLE", "{}"), Err("CoercionError".into()));
    }

    #[test]
    fn coercion_to_strings() {
        assert_eq!(one("VARCHAR(10)", "\"abc\""), Ok("abc".into()));
        assert_eq!(one("VARCHAR(10)", "1.50"), Ok("1.50".into()), "numbers keep their text");
        assert_eq!(one("VARCHAR(10)", "-3"), Ok("-3".into()));
        assert_eq!(one("VARCHAR(10)", "true"), Ok("true".into()));
        assert_eq!(
            one("VARCHAR(4)", "false"),
            Ok("fals".into()),
            "booleans truncated to the length"
        );
        assert_eq!(one("VARCHAR(3)", "\"abcdef\""), Ok("abc".into()));
        assert_eq!(
            one("VARCHAR(3)", "\"h\u{e9}llo\""),
            Ok("h\u{e9}l".into()),
            "length counts characters"
        );
        assert_eq!(
            one("VARCHAR(30)", r#"{"a": [1, 2]}"#),
            Ok(r#"{"a": [1, 2]}"#.into()),
            "objects as JSON text"
        );
        assert_eq!(one("VARCHAR(30)", "[1,\"x\"]"), Ok("[1,\"x\"]".into()));
        assert_eq!(one("VARCHAR(5)", "[1,2,3,4]"), Ok("[1,2,".into()));
        assert_eq!(one("CHAR(5)", "\"ab\""), Ok("ab   ".into()), "CHAR is blank-padded");
        assert_eq!(one("CHAR(2)", "\"abc\""), Ok("ab".into()));
        assert_eq!(one("CHAR(3)", "1"), Ok("1  ".into()));
        assert_eq!(one("VARCHAR(10)", "null"), Ok("NULL".into()));
        assert_eq!(one("VARCHAR(10)", r#""a\"b\\c\u00e9""#), Ok("a\"b\\c\u{e9}".into()));
        assert_eq!(one("VARCHAR(2)", r#""\u00e9\u00e8\u00e0""#), Ok("\u{e9}\u{e8}".into()));
        assert_eq!(one("INTEGER", r#""\u0031\u0032""#), Ok("12".into()));
        assert_eq!(one("VARCHAR(10)", "\"\""), Ok("".into()));
    }

    #[test]
    fn coercion_to_boolean() {
        assert_eq!(one("BOOLEAN", "true"), Ok("true".into()));
        assert_eq!(one("BOOLEAN", "false"), Ok("false".into()));
        assert_eq!(one("BOOLEAN", "0"), Ok("false".into()));
        assert_eq!(one("BOOLEAN", "0.0"), Ok("false".into()));
        assert_eq!(one("BOOLEAN", "2.5"), Ok("true".into()));
        assert_eq!(one("BOOLEAN", "-1"), Ok("true".into()));
        assert_eq!(one("BOOLEAN", "\"TRUE\""), Ok("true".into()));
        assert_eq!(one("BOOLEAN", "\"True\""), Ok("true".into()));
        assert_eq!(
            one("BOOLEAN", "\"yes\""),
            Ok("false".into()),
            "any other string is false"
        );
        assert_eq!(one("BOOLEAN", "\"1\""), Ok("false".into()));
        assert_eq!(one("BOOLEAN", "null"), Ok("NULL".into()));
        assert_eq!(one("BOOLEAN", "[true]"), Err("CoercionError".into()));
        assert_eq!(one("BOOLEAN", "{}"), Err("CoercionError".into()));
    }

    #[test]
    fn coercion_to_datetimes() {
        let ts = |s: &str| one("TIMESTAMP", s);
        assert_eq!(ts("\"2024-03-01 12:00:09.999\""), Ok("2024-03-01T12:00:09.999".into()));
        assert_eq!(
            ts("\"2018-06-13T14:11:05.766191\""),
            Ok("2018-06-13T14:11:05.766".into())
        );
        assert_eq!(ts("\"1992-02-14 18:35:44.0\""), Ok("1992-02-14T18:35:44".into()));
        assert_eq!(ts("\"1992-02-14\""), Ok("1992-02-14T00:00:00".into()));
        assert_eq!(ts("\"not a time\""), Err("CoercionError".into()));
        assert_eq!(
            ts("1700000000000"),
            Err("CoercionError".into()),
            "numbers are not timestamps"
        );
        assert_eq!(ts("true"), Err("CoercionError".into()));
        assert_eq!(ts("{}"), Err("CoercionError".into()));
        assert_eq!(ts("null"), Ok("NULL".into()));
        let out = decode_json(&[("T", "TIMESTAMP", "$.v")], &["{\"v\": \"2024-03-01 12:00:09.999\"}"]);
        let t = out.batch.column(0).as_primitive::<TimestampMillisecondType>().value(0);
        assert_eq!(Some(t), parse_timestamp("2024-03-01 12:00:09.999"));

        assert_eq!(one("DATE", "\"1992-02-14\""), Ok("1992-02-14".into()));
        assert_eq!(one("DATE", "\"1992-02-14 18:35:44.0\""), Ok("1992-02-14".into()));
        assert_eq!(one("DATE", "\"1992-02-30\""), Err("CoercionError".into()));
        assert_eq!(one("DATE", "19920214"), Err("CoercionError".into()));
        assert_eq!(one("TIME", "\"18:35:44.5\""), Ok("18:35:44.500".into()));
        assert_eq!(one("TIME", "\"25:00:00\""), Err("CoercionError".into()));
        assert_eq!(one("TIME", "false"), Err("CoercionError".into()));
    }

    #[test]
    fn coercion_to_binary() {
        let bin = |v: &str, ty: &str| {
            let out = decode_json(&[("B", ty, "$.v")], &[&format!("{{\"v\": {v}}}")]);
            if !out.errors.is_empty() {
                return Err(out.errors[0].name.clone());
            }
            let a = out.batch.column(0).as_any().downcast_ref::<BinaryArray>().unwrap();
            Ok(if a.is_null(0) { None } else { Some(a.value(0).to_vec()) })
        };
        assert_eq!(bin("\"X'3F67'\"", "VARBINARY(8)"), Ok(Some(vec![0x3f, 0x67])));
        assert_eq!(bin("\"X'3F6'\"", "VARBINARY(8)"), Err("CoercionError".into()));
        assert_eq!(bin("\"aGVsbG8=\"", "VARBINARY(8)"), Ok(Some(b"hello".to_vec())));
        assert_eq!(bin("\"aGVsbG8=\"", "VARBINARY(2)"), Ok(Some(b"he".to_vec())));
        assert_eq!(bin("\"X'01'\"", "BINARY(3)"), Ok(Some(vec![1, 0, 0])));
        assert_eq!(bin("true", "VARBINARY(8)"), Ok(Some(vec![1])));
        assert_eq!(bin("false", "VARBINARY(8)"), Ok(Some(vec![0])));
        assert_eq!(bin("12", "VARBINARY(8)"), Err("CoercionError".into()));
        assert_eq!(bin("[1]", "VARBINARY(8)"), Err("CoercionError".into()));
        assert_eq!(bin("null", "VARBINARY(8)"), Ok(None));
    }

    #[test]
    fn bad_records_become_error_rows_and_good_ones_flow() {
        // The error-stream-bad-records conformance input.
        let schema = json_schema(
            "$",
            &[
                ("METER_ID", "VARCHAR(8)", "$.meter"),
                ("ENERGY_WH", "INTEGER", "$.energy_wh"),
                ("PERIOD_S", "INTEGER", "$.period_s"),
            ],
        );
        let d = RecordDecoder::new(&schema, "SOURCE_SQL_STREAM_001").unwrap();
        let recs = vec![
            rec_at(r#"{"meter": "M-01", "energy_wh": 50, "period_s": 900}"#, 1000),
            rec_at(r#"{"meter": "M-03", "energy_wh": "n/a", "period_s": 900}"#, 2000),
            rec_at(r#"{"meter": "M-04", "energy_wh": 75"#, 3000),
            RawRecord {
                data: vec![b'{', 0xff, b'}'],
                rowtime: Some(4000),
                ..Default::default()
            },
            rec_at(r#"{"meter": "M-03", "energy_wh": "12", "period_s": 900}"#, 5000),
            rec_at(r#"{"meter": "M-04", "energy_wh": 80, "period_s": null}"#, 6000),
        ];
        let before = crate::time::now_millis();
        let out = d.decode(&recs, 0);
        assert_eq!(vals(&out.batch, "METER_ID"), ["M-01", "M-03", "M-04"]);
        assert_eq!(vals(&out.batch, "ENERGY_WH"), ["50", "12", "80"]);
        assert_eq!(vals(&out.batch, "PERIOD_S"), ["900", "900", "NULL"]);
        assert_eq!(out.errors.len(), 3);
        let e = &out.errors[0];
        assert_eq!(e.level, "ERROR");
        assert_eq!(e.name, "CoercionError");
        assert_eq!(e.data_rowtime, 2000);
        assert_eq!(e.data_row, ErrorRow::hex(&recs[1].data));
        assert_eq!(e.pump_name.as_deref(), Some("SOURCE_SQL_STREAM_001"));
        assert!(
            e.message.contains("ENERGY_WH") && e.message.contains("\"n/a\"") && e.message.contains("INTEGER"),
            "{}",
            e.message
        );
        assert!(e.error_time >= before);
        assert_eq!(
            (out.errors[1].name.as_str(), out.errors[1].data_rowtime),
            ("ParseError", 3000)
        );
        assert_eq!(
            (out.errors[2].name.as_str(), out.errors[2].data_rowtime),
            ("ParseError", 4000)
        );
        assert!(out.errors[2].message.contains("UTF-8"));
    }

    #[test]
    fn several_documents_in_one_record() {
        let d = RecordDecoder::new(&json_schema("$", &[("A", "INTEGER", "$.a")]), "S").unwrap();
        let out = d.decode(
            &[rec_at("{\"a\":1}\n{\"a\":2}{\"a\":3}  ", 7), rec_at("{\"a\":4}", 8)],
            0,
        );
        assert!(out.errors.is_empty());
        assert_eq!(vals(&out.batch, "A"), ["1", "2", "3", "4"]);
        let rt = out
            .batch
            .column_by_name("ROWTIME")
            .unwrap()
            .as_primitive::<TimestampMillisecondType>();
        assert_eq!(rt.values().to_vec(), vec![7, 7, 7, 8]);
        // A failure in any document rejects the whole record.
        let out = d.decode(&[rec("{\"a\":1}{\"a\":\"x\"}"), rec("{\"a\":5}")], 0);
        assert_eq!(vals(&out.batch, "A"), ["5"]);
        assert_eq!(out.errors.len(), 1);
        // Empty and whitespace-only records hold no document: no row, no error.
        let out = d.decode(&[rec(""), rec(" \n")], 0);
        assert_eq!((out.batch.num_rows(), out.errors.len()), (0, 0));
    }

    #[test]
    fn row_paths() {
        let cols = [("ID", "INTEGER", "$.id")];
        let dec = |rp: &str, recs: &[&str]| {
            let d = RecordDecoder::new(&json_schema(rp, &cols), "S").unwrap();
            let recs: Vec<RawRecord> = recs.iter().map(|r| rec(r)).collect();
            let out = d.decode(&recs, 0);
            (
                vals(&out.batch, "ID"),
                out.errors.iter().map(|e| e.name.clone()).collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            dec("$.data", &[r#"{"data": {"id": 1}, "id": 9}"#]),
            (vec!["1".to_string()], vec![])
        );
        assert_eq!(dec("$.rows", &[r#"{"rows": [{"id": 1}, {"id": 2}]}"#]).0, ["1", "2"]);
        assert_eq!(
            dec("$.rows[0:]", &[r#"{"rows": [{"id": 1}, {"id": 2}]}"#]).0,
            ["1", "2"]
        );
        assert_eq!(dec("$.rows", &[r#"{"rows": []}"#]), (vec![], vec![]));
        assert_eq!(
            dec("$", &[r#"[{"id": 1}, {"id": 2}]"#]).0,
            ["1", "2"],
            "a top-level array holds rows"
        );
        assert_eq!(
            dec("$.data", &[r#"{"other": 1}"#, r#"{"data": {"id": 3}}"#]),
            (vec!["3".to_string()], vec!["ParseError".to_string()])
        );
        assert_eq!(dec("$", &["5"]).1, ["ParseError"]);
        assert_eq!(
            dec("$.rows", &[r#"{"rows": [{"id": 1}, 2]}"#]),
            (vec![], vec!["ParseError".to_string()])
        );
        assert!(RecordDecoder::new(&json_schema("$.a[0:].b", &cols), "S").is_err());
        assert!(RecordDecoder::new(&json_schema("x", &cols), "S").is_err());
    }

    #[test]
    fn flattening_one_array() {
        let schema = json_schema(
            "$",
            &[
                ("ORDER_ID", "VARCHAR(8)", "$.order"),
                ("SKU", "VARCHAR(8)", "$.items[0:].sku"),
                ("QTY", "INTEGER", "$.items[0:].qty"),
                ("TAGS", "VARCHAR(32)", "$.tags[0:]"),
                ("FIRST_TAG", "VARCHAR(8)", "$.tags[0]"),
            ],
        );
        let d = RecordDecoder::new(&schema, "S").unwrap();
        let recs = [
            rec_at(
                r#"{"order": "o1", "items": [{"sku": "a", "qty": 1}, {"sku": "b"}, {"qty": "3"}], "tags": ["x", "y"]}"#,
                10,
            ),
            rec_at(r#"{"order": "o2", "items": []}"#, 20),
            rec_at(r#"{"order": "o3"}"#, 30),
            rec_at(r#"{"order": "o4", "items": {"sku": "not an array"}}"#, 40),
            rec_at(r#"{"order": "o5", "items": [{"sku": "c", "qty": 1.5}]}"#, 50),
        ];
        let out = d.decode(&recs, 0);
        assert_eq!(vals(&out.batch, "ORDER_ID"), ["o1", "o1", "o1", "o2", "o3", "o4"]);
        assert_eq!(vals(&out.batch, "SKU"), ["a", "b", "NULL", "NULL", "NULL", "NULL"]);
        assert_eq!(vals(&out.batch, "QTY"), ["1", "NULL", "3", "NULL", "NULL", "NULL"]);
        assert_eq!(
            vals(&out.batch, "TAGS"),
            [
                r#"["x", "y"]"#,
                r#"["x", "y"]"#,
                r#"["x", "y"]"#,
                "NULL",
                "NULL",
                "NULL"
            ]
        );
        assert_eq!(vals(&out.batch, "FIRST_TAG"), ["x", "x", "x", "NULL", "NULL", "NULL"]);
        let rt = out
            .batch
            .column_by_name("ROWTIME")
            .unwrap()
            .as_primitive::<TimestampMillisecondType>();
        assert_eq!(rt.values().to_vec(), vec![10, 10, 10, 20, 30, 40]);
        assert_eq!(out.errors.len(), 1, "1.5 into INTEGER rejects the o5 record");
        assert_eq!(out.errors[0].data_rowtime, 50);

        // Flattening a nested array, with a whole inner array per element.
        let schema = json_schema(
            "$",
            &[
                ("N", "INTEGER", "$.a.list[0:].n"),
                ("INNER", "VARCHAR(16)", "$.a.list[0:].inner[0:]"),
            ],
        );
        let d = RecordDecoder::new(&schema, "S").unwrap();
        let out = d.decode(&[rec(r#"{"a": {"list": [{"n": 1, "inner": [1,2]}, {"n": 2}]}}"#)], 0);
        assert_eq!(vals(&out.batch, "N"), ["1", "2"]);
        assert_eq!(vals(&out.batch, "INNER"), ["[1,2]", "NULL"]);
    }

    #[test]
    fn flattening_limits_are_schema_errors() {
        let two = json_schema("$", &[("A", "INTEGER", "$.a[0:].x"), ("B", "INTEGER", "$.b[0:].y")]);
        assert!(matches!(RecordDecoder::new(&two, "S"), Err(SluiceError::Config(_))));
        let nested = json_schema("$", &[("A", "INTEGER", "$.a[0:].b[0:].c")]);
        assert!(matches!(RecordDecoder::new(&nested, "S"), Err(SluiceError::Config(_))));
        let whole_second = json_schema("$", &[("A", "INTEGER", "$.a[0:].x"), ("B", "VARCHAR(9)", "$.b[0:]")]);
        assert!(RecordDecoder::new(&whole_second, "S").is_ok());
        let bad_path = json_schema("$", &[("A", "INTEGER", "$..a")]);
        assert!(RecordDecoder::new(&bad_path, "S").is_err());
        // A scale past the precision is refused where the type is read, before any decoder.
        assert!(SqlType::parse("DECIMAL(2,5)").is_err());
    }

    #[test]
    fn default_mapping_and_bracket_keys() {
        let schema = RecordSchema {
            columns: vec![
                col("plain", "INTEGER", None),
                col("DOTTED", "INTEGER", Some("$['a.b']")),
            ],
            format: RecordFormat::Json { row_path: "$".into() },
        };
        let d = RecordDecoder::new(&schema, "S").unwrap();
        let out = d.decode(&[rec(r#"{"plain": 1, "a.b": 2, "a": {"b": 3}}"#)], 0);
        assert_eq!(vals(&out.batch, "plain"), ["1"]);
        assert_eq!(vals(&out.batch, "DOTTED"), ["2"]);
    }

    #[test]
    fn not_null_columns_reject_nulls() {
        let mut schema = json_schema("$", &[("A", "INTEGER", "$.a")]);
        schema.columns[0].column.not_null = true;
        let d = RecordDecoder::new(&schema, "S").unwrap();
        let out = d.decode(&[rec(r#"{"a": 1}"#), rec(r#"{"b": 1}"#), rec(r#"{"a": null}"#)], 0);
        assert_eq!(vals(&out.batch, "A"), ["1"]);
        assert_eq!(out.errors.len(), 2);
        assert_eq!(out.errors[0].name, "NotNullViolation");
    }

    #[test]
    fn csv_rows_fields_and_delimiters() {
        let cols = [
            ("TICKER", "VARCHAR(4)"),
            ("PRICE", "REAL"),
            ("QTY", "INTEGER"),
            ("NOTE", "VARCHAR(8)"),
        ];
        let d = RecordDecoder::new(&csv_schema("\n", ",", &cols), "S").unwrap();
        let out = d.decode(
            &[
                rec_at("AMZN,10.5,3,hi\nMSFT,1,,\n", 1),
                rec_at("IBM,2", 2),
                rec_at("ORCL,3,4,x,surplus,fields", 3),
                rec_at("\"A,1,2,q\"", 4),
                rec_at("", 5),
                rec_at("TOOLONG, 7 ,8, spaced ", 6),
            ],
            0,
        );
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(
            vals(&out.batch, "TICKER"),
            ["AMZN", "MSFT", "IBM", "ORCL", "\"A", "TOOL"]
        );
        assert_eq!(vals(&out.batch, "PRICE"), ["10.5", "1.0", "2.0", "3.0", "1.0", "7.0"]);
        assert_eq!(vals(&out.batch, "QTY"), ["3", "NULL", "NULL", "4", "2", "8"]);
        assert_eq!(vals(&out.batch, "NOTE"), ["hi", "", "NULL", "x", "q\"", " spaced "]);
        let rt = out
            .batch
            .column_by_name("ROWTIME")
            .unwrap()
            .as_primitive::<TimestampMillisecondType>();
        assert_eq!(rt.values().to_vec(), vec![1, 1, 2, 3, 4, 6]);

        let tab = RecordDecoder::new(&csv_schema("\n", "\t", &[("A", "INTEGER"), ("B", "VARCHAR(8)")]), "S").unwrap();
        let out = tab.decode(&[rec("1\tx,y\n2\tz")], 0);
        assert_eq!(vals(&out.batch, "A"), ["1", "2"]);
        assert_eq!(vals(&out.batch, "B"), ["x,y", "z"]);
        let escaped_tab =
            RecordDecoder::new(&csv_schema("\\n", "\\t", &[("A", "INTEGER"), ("B", "VARCHAR(8)")]), "S").unwrap();
        assert_eq!(
            vals(&escaped_tab.decode(&[rec("1\tx\n2\ty")], 0).batch, "B"),
            ["x", "y"]
        );

        let multi =
            RecordDecoder::new(&csv_schema("\r\n", "::", &[("A", "INTEGER"), ("B", "VARCHAR(8)")]), "S").unwrap();
        let out = multi.decode(&[rec("1::a:b\r\n2::c\r\n\r\n3::\r\n")], 0);
        assert_eq!(vals(&out.batch, "A"), ["1", "2", "3"]);
        assert_eq!(vals(&out.batch, "B"), ["a:b", "c", ""]);

        let pipe = RecordDecoder::new(
            &csv_schema("$", "|", &[("A", "INTEGER"), ("B", "BOOLEAN"), ("C", "TIMESTAMP")]),
            "S",
        )
        .unwrap();
        let out = pipe.decode(&[rec("1|TRUE|2024-03-01 00:00:01.500$2|no|$3||2024-03-01T00:00:02")], 0);
        assert_eq!(vals(&out.batch, "B"), ["true", "false", "NULL"]);
        assert_eq!(
            vals(&out.batch, "C"),
            ["2024-03-01T00:00:01.500", "NULL", "2024-03-01T00:00:02"]
        );
        assert!(RecordDecoder::new(&csv_schema("\n", "", &[("A", "INTEGER")]), "S").is_err());
        assert!(RecordDecoder::new(&csv_schema("", ",", &[("A", "INTEGER")]), "S").is_err());
    }

    #[test]
    fn csv_bad_row_rejects_its_whole_record() {
        let d = RecordDecoder::new(&csv_schema("\n", ",", &[("A", "VARCHAR(4)"), ("N", "TINYINT")]), "IN").unwrap();
        let recs = [
            rec_at("a,1\nb,n/a\nc,3", 1),
            rec_at("d,200", 2),
            rec_at("e,5", 3),
            RawRecord {
                data: vec![0xc3, b',', b'1'],
                rowtime: Some(4),
                ..Default::default()
            },
        ];
        let out = d.decode(&recs, 0);
        assert_eq!(vals(&out.batch, "A"), ["e"]);
        let got: Vec<(&str, i64)> = out.errors.iter().map(|e| (e.name.as_str(), e.data_rowtime)).collect();
        assert_eq!(got, [("CoercionError", 1), ("CoercionError", 2), ("ParseError", 4)]);
        assert!(
            out.errors[0].message.contains("'n/a'") && out.errors[0].message.contains("column N"),
            "{}",
            out.errors[0].message
        );
        assert!(
            out.errors[1].message.contains("'200'") && out.errors[1].message.contains("TINYINT"),
            "{}",
            out.errors[1].message
        );
        assert_eq!(out.errors[0].pump_name.as_deref(), Some("IN"));
    }

    #[test]
    fn csv_char_and_empty_fields() {
        let d = RecordDecoder::new(
            &csv_schema("\n", ",", &[("C", "CHAR(3)"), ("D", "DATE"), ("X", "DECIMAL(4,1)")]),
            "S",
        )
        .unwrap();
        let out = d.decode(&[rec(",,\na,2024-02-29,12.5\nabcd, 2024-01-01 ,-1")], 0);
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(vals(&out.batch, "C"), ["   ", "a  ", "abc"]);
        assert_eq!(vals(&out.batch, "D"), ["NULL", "2024-02-29", "2024-01-01"]);
        assert_eq!(vals(&out.batch, "X"), ["NULL", "12.5", "-1.0"]);
    }

    #[test]
    fn reference_tables() {
        let schema = csv_schema(
            "\n",
            ",",
            &[("Ticker", "VARCHAR(4)"), ("Company", "VARCHAR(16)"), ("N", "INTEGER")],
        );
        let file = b"Ticker, Company, N\nASD, SomeCompanyA, 1\nMMB, SomeCompanyB,x\nCRM, Other,3\n";
        let (batch, errors) = decode_table(&schema, file, 1, "CompanyName").unwrap();
        let names: Vec<String> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names, ["Ticker", "Company", "N"], "no ROWTIME / arrival columns");
        assert_eq!(vals(&batch, "Ticker"), ["ASD", "CRM"]);
        assert_eq!(
            vals(&batch, "Company"),
            [" SomeCompanyA", " Other"],
            "values are not trimmed"
        );
        assert_eq!(vals(&batch, "N"), ["1", "3"]);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].pump_name.as_deref(), Some("CompanyName"));
        assert_eq!(errors[0].data_row, ErrorRow::hex(b"MMB, SomeCompanyB,x"));

        // Without skipping, the header is a data row (and fails here on N).
        let (batch, errors) = decode_table(&schema, file, 0, "T").unwrap();
        assert_eq!((batch.num_rows(), errors.len()), (2, 2));

        let js = json_schema("$", &[("K", "VARCHAR(4)", "$.k"), ("V", "INTEGER", "$.v")]);
        let lines = b"{\"k\": \"a\", \"v\": 1}\n{\"k\": \"b\", \"v\": \"bad\"}\n\n{\"k\": \"c\", \"v\": 3}\n";
        let (batch, errors) = decode_table(&js, lines, 0, "T").unwrap();
        assert_eq!(vals(&batch, "K"), ["a", "c"]);
        assert_eq!(errors.len(), 1);
        let broken = b"{\"k\": \"a\", \"v\": 1}\n{\"k\": \"b\", \n{\"k\": \"c\", \"v\": 3}\n";
        let (batch, errors) = decode_table(&js, broken, 0, "T").unwrap();
        assert_eq!(vals(&batch, "K"), ["a", "c"]);
        assert_eq!(errors.len(), 1);
        let pretty = b"{\n  \"k\": \"a\",\n  \"v\": 1\n}\n{\n  \"k\": \"b\",\n  \"v\": 2\n}\n";
        let (batch, errors) = decode_table(&js, pretty, 0, "T").unwrap();
        assert_eq!(
            (vals(&batch, "K"), errors.len()),
            (vec!["a".to_string(), "b".to_string()], 0)
        );
        let header = b"k,v\n{\"k\": \"z\", \"v\": 9}\n";
        let (batch, _) = decode_table(&js, header, 1, "T").unwrap();
        assert_eq!(vals(&batch, "V"), ["9"]);
        let (batch, _) = decode_table(&js, b"\xEF\xBB\xBF{\"k\": \"bom\"}", 0, "T").unwrap();
        assert_eq!(vals(&batch, "K"), ["bom"]);
        let (batch, errors) = decode_table(&js, b"", 3, "T").unwrap();
        assert_eq!((batch.num_rows(), errors.len()), (0, 0));
    }

    #[test]
    fn many_records_decode_into_one_batch() {
        let schema = json_schema(
            "$",
            &[
                ("ID", "BIGINT", "$.id"),
                ("NAME", "VARCHAR(16)", "$.name"),
                ("PRICE", "DOUBLE", "$.p"),
            ],
        );
        let d = RecordDecoder::new(&schema, "S").unwrap();
        let recs: Vec<RawRecord> = (0..5000)
            .map(|i| {
                rec_at(
                    &format!("{{\"id\": {i}, \"name\": \"n{i}\", \"p\": {}.25}}", i % 100),
                    i,
                )
            })
            .collect();
        let out = d.decode(&recs, 0);
        assert!(out.errors.is_empty());
        assert_eq!(out.batch.num_rows(), 5000);
        let ids = out.batch.column(0).as_primitive::<Int64Type>();
        assert!(ids.values().iter().enumerate().all(|(i, &v)| v == i as i64));
        assert_eq!(vals(&out.batch, "NAME")[4321], "n4321");
    }

    proptest::proptest! {
        #[test]
        fn json_decoding_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
                                      text in "[{}\\[\\]\",:a-c0-9. \\\\tfnrue-]{0,40}") {
            let schema = json_schema("$", &[("A", "INTEGER", "$.a"), ("B", "VARCHAR(3)", "$.b[0:].c"), ("C", "BOOLEAN", "$.c"), ("D", "TIMESTAMP", "$.a")]);
            let d = RecordDecoder::new(&schema, "S").unwrap();
            let recs = [RawRecord { data, ..Default::default() }, rec(&text), rec(&format!("{{\"a\":{text}}}"))];
            let out = d.decode(&recs, 0);
            proptest::prop_assert!(out.errors.len() <= 3);
            proptest::prop_assert_eq!(out.batch.num_columns(), 9);
        }

        #[test]
        fn csv_decoding_never_panics(text in "[a-c0-9.,;\\n\\t é-]{0,40}") {
            let schema = csv_schema(";", ",", &[("A", "INTEGER"), ("B", "CHAR(2)"), ("C", "REAL"), ("D", "DATE")]);
            let d = RecordDecoder::new(&schema, "S").unwrap();
            let out = d.decode(&[rec(&text)], 0);
            let rows = text.split(';').filter(|r| !r.is_empty()).count();
            if out.errors.is_empty() {
                proptest::prop_assert_eq!(out.batch.num_rows(), rows);
            } else {
                proptest::prop_assert_eq!(out.batch.num_rows(), 0);
            }
        }
    }
}
