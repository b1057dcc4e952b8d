//! Plain file inputs meet what real files hold: a line that is not UTF-8, a byte order
//! mark, a CSV header line. Each must cost at most its own record.

use std::collections::BTreeMap;
use std::io::Write;

use datafusion::arrow::array::{AsArray, RecordBatch};
use sluice::app::{RecordFormat, SourceSpec};

const SQL: &str = r#"
CREATE OR REPLACE STREAM "OUT" (TICKER VARCHAR(8), PRICE DOUBLE);
CREATE OR REPLACE PUMP "P" AS INSERT INTO "OUT" SELECT STREAM TICKER, PRICE FROM "SOURCE_SQL_STREAM_001";
"#;

fn write_file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(bytes).unwrap();
    f.flush().unwrap();
    f
}

/// Runs SQL over the file as a plain input (CSV or JSON), returning OUT and error_stream.
fn run(file: &std::path::Path, csv: bool, skip_header_lines: u64) -> BTreeMap<String, Vec<RecordBatch>> {
    let mut app = super::recorded_app(
        SQL,
        &[("TICKER", "VARCHAR(8)", "$.ticker"), ("PRICE", "DOUBLE", "$.price")],
        file,
        &["OUT", "error_stream"],
    );
    app.inputs[0].source = SourceSpec::File {
        path: file.to_path_buf(),
        skip_header_lines,
    };
    if csv {
        app.inputs[0].schema.format = RecordFormat::Csv {
            row_delimiter: "\n".into(),
            column_delimiter: ",".into(),
        };
        for c in &mut app.inputs[0].schema.columns {
            c.mapping = None;
        }
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let options = sluice::engine::RunOptions::new(sluice::engine::TimeMode::Recorded { flush_at: None });
    rt.block_on(sluice::engine::run(&app, options))
        .expect("the run ends cleanly")
        .streams
        .into_iter()
        .collect()
}

fn tickers(batches: &[RecordBatch]) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let t = b.column(0).as_string::<i32>();
            (0..b.num_rows()).map(|i| t.value(i).to_string()).collect::<Vec<_>>()
        })
        .collect()
}

fn text_column(batches: &[RecordBatch], name: &str) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let c = b.column_by_name(name).unwrap().as_string::<i32>();
            (0..b.num_rows()).map(|i| c.value(i).to_string()).collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn a_line_that_is_not_utf8_goes_to_error_stream_and_every_other_record_flows() {
    // 6,000 records (more than one 4,096-record batch); the bad one is in the middle of
    // the first batch. Windows line ends on some lines.
    let mut bytes = Vec::new();
    let mut expected = Vec::new();
    for i in 0..6_000 {
        if i == 2_000 {
            bytes.extend_from_slice(b"{\"ticker\":\"BAD\xff\xfe\",\"price\":1.0}\n");
            continue;
        }
        let ticker = format!("T{i}");
        let end = if i % 3 == 0 { "\r\n" } else { "\n" };
        bytes.extend_from_slice(format!("{{\"ticker\":\"{ticker}\",\"price\":{i}.5}}{end}").as_bytes());
        expected.push(ticker);
    }
    let file = write_file(&bytes);
    let out = run(file.path(), false, 0);

    assert_eq!(tickers(&out["OUT"]), expected, "every good record, in order");
    let errors = &out["error_stream"];
    assert_eq!(errors.iter().map(RecordBatch::num_rows).sum::<usize>(), 1);
    assert_eq!(text_column(errors, "ERROR_NAME"), ["ParseError"]);
    let message = &text_column(errors, "MESSAGE")[0];
    assert!(message.contains("not valid UTF-8"), "{message}");
    // The record's bytes, exactly (hex): the bad bytes are there.
    let data = &text_column(errors, "DATA_ROW")[0];
    assert!(data.contains("424144fffe"), "{data}");
}

#[test]
fn a_byte_order_mark_at_the_start_of_a_file_is_not_part_of_the_first_record() {
    let file = write_file(b"\xEF\xBB\xBF{\"ticker\":\"AMZN\",\"price\":10.5}\n{\"ticker\":\"MSFT\",\"price\":11}\n");
    let out = run(file.path(), false, 0);
    assert_eq!(tickers(&out["OUT"]), ["AMZN", "MSFT"]);
    assert!(out["error_stream"].iter().all(|b| b.num_rows() == 0));

    // CSV too: the BOM would otherwise be part of the first field.
    let file = write_file(b"\xEF\xBB\xBFAMZN,10.5\nMSFT,11\n");
    let out = run(file.path(), true, 0);
    assert_eq!(tickers(&out["OUT"]), ["AMZN", "MSFT"]);
}

#[test]
fn skip_header_lines_skips_a_csv_header_and_without_it_the_header_is_an_error_row() {
    let csv = b"\xEF\xBB\xBFticker,price\nAMZN,10.5\nMSFT,11\n";
    let file = write_file(csv);
    let out = run(file.path(), true, 1);
    assert_eq!(tickers(&out["OUT"]), ["AMZN", "MSFT"]);
    assert!(out["error_stream"].iter().all(|b| b.num_rows() == 0));

    // Without it, as in KDA, the header is a record: `price` is no DOUBLE.
    let out = run(file.path(), true, 0);
    assert_eq!(tickers(&out["OUT"]), ["AMZN", "MSFT"]);
    assert_eq!(text_column(&out["error_stream"], "ERROR_NAME"), ["CoercionError"]);
}

/// Records of several megabytes are batched by bytes as well as by count: each comes
/// through, and no batch holds more than the byte budget allows (with 4 MiB records,
/// two), where 4,096 records to a batch would have held them all at once.
#[test]
fn records_of_several_megabytes_all_come_through_in_small_batches() {
    let pad = "p".repeat(4 << 20);
    let mut bytes = Vec::new();
    for i in 0..6 {
        bytes.extend_from_slice(format!("{{\"ticker\":\"BIG{i}\",\"price\":{i},\"pad\":\"{pad}\"}}\n").as_bytes());
    }
    for i in 0..10 {
        bytes.extend_from_slice(format!("{{\"ticker\":\"S{i}\",\"price\":{i}}}\n").as_bytes());
    }
    let file = write_file(&bytes);
    let out = run(file.path(), false, 0);

    let expected: Vec<String> = (0..6)
        .map(|i| format!("BIG{i}"))
        .chain((0..10).map(|i| format!("S{i}")))
        .collect();
    assert_eq!(tickers(&out["OUT"]), expected, "every record, in order");
    assert!(out["error_stream"].iter().all(|b| b.num_rows() == 0));
    let sizes: Vec<usize> = out["OUT"]
        .iter()
        .map(RecordBatch::num_rows)
        .filter(|&n| n > 0)
        .collect();
    assert_eq!(sizes, [2, 2, 2, 10], "batches cut at 8 MiB");
}
