//! Every construct of the spec either plans, or fails naming the feature sluice does
//! not run yet (never a generic syntax error for valid KDA code).

use sluice::SluiceError;

/// (what, target columns, query)
const CASES: &[(&str, usize, &str)] = &[
    (
        "filter with CASE and CAST",
        2,
        "SELECT STREAM ticker, CASE WHEN price > 10 THEN CAST(price AS INTEGER) ELSE 0 END FROM S",
    ),
    (
        "tumbling with FLOOR",
        2,
        "SELECT STREAM ticker, COUNT(*) FROM S GROUP BY ticker, FLOOR(S.ROWTIME TO MINUTE)",
    ),
    (
        "tumbling with MONOTONIC",
        1,
        "SELECT STREAM COUNT(*) FROM S GROUP BY MONOTONIC(STEP(S.ROWTIME BY INTERVAL '30' SECOND))",
    ),
    (
        "interval idiom",
        1,
        "SELECT STREAM COUNT(*) FROM S GROUP BY FLOOR((S.ROWTIME - TIMESTAMP '1970-01-01 00:00:00') SECOND / 10 TO SECOND)",
    ),
    (
        "sliding window",
        2,
        "SELECT STREAM ticker, AVG(price) OVER w FROM S WINDOW w AS (PARTITION BY ticker RANGE INTERVAL '1' MINUTE PRECEDING)",
    ),
    (
        "stagger window",
        2,
        "SELECT STREAM ticker, COUNT(*) FROM S WINDOWED BY STAGGER (PARTITION BY ticker RANGE INTERVAL '1' MINUTE)",
    ),
    (
        "subquery without alias",
        1,
        "SELECT STREAM ticker FROM (SELECT STREAM ticker, price FROM S) WHERE price > 1",
    ),
    (
        "string functions",
        3,
        "SELECT STREAM SUBSTRING(ticker FROM 1 FOR 2), POSITION('A' IN ticker), REGEX_REPLACE(ticker, 'A', 'B', 1, 0) FROM S",
    ),
    (
        "date functions",
        3,
        "SELECT STREAM UNIX_TIMESTAMP(event_time), TIMESTAMP_TO_CHAR('yyyy-MM-dd', event_time), TSDIFF(event_time, S.ROWTIME) FROM S",
    ),
    ("CURRENT_ROW_TIMESTAMP", 1, "SELECT STREAM CURRENT_ROW_TIMESTAMP FROM S"),
    (
        "UNION ALL",
        1,
        "SELECT STREAM ticker FROM S UNION ALL SELECT STREAM ticker FROM S",
    ),
    (
        "streaming ORDER BY",
        2,
        "SELECT STREAM ticker, price FROM S ORDER BY FLOOR(S.ROWTIME TO SECOND), price DESC",
    ),
    (
        "TOP_K_ITEMS_TUMBLING",
        2,
        "SELECT STREAM * FROM TABLE(TOP_K_ITEMS_TUMBLING(CURSOR(SELECT STREAM * FROM S), 'TICKER', 10, 60))",
    ),
    (
        "RANDOM_CUT_FOREST",
        3,
        "SELECT STREAM * FROM TABLE(RANDOM_CUT_FOREST(CURSOR(SELECT STREAM price, change FROM S)))",
    ),
    (
        "REGEX_LOG_PARSE",
        1,
        "SELECT STREAM t.r.COLUMN1 FROM (SELECT STREAM REGEX_LOG_PARSE(ticker, '(\\w+)') AS r FROM S) AS t",
    ),
    (
        "LAG",
        1,
        "SELECT STREAM LAG(price, 1) OVER (PARTITION BY ticker ROWS 5 PRECEDING) FROM S",
    ),
    (
        "EXP_AVG",
        1,
        "SELECT STREAM EXP_AVG(price, INTERVAL '10' SECOND) OVER (ROWS 10 PRECEDING) FROM S",
    ),
    (
        "stream-to-stream join",
        1,
        "SELECT STREAM S.ticker FROM S JOIN S OVER (RANGE INTERVAL '1' MINUTE PRECEDING) AS b ON S.ticker = b.ticker",
    ),
    (
        "T-sort",
        // `AS ROWTIME` sets the rows' time; only TICKER fills a column
        1,
        "SELECT STREAM event_time AS ROWTIME, ticker FROM S ORDER BY event_time WITHIN INTERVAL '1' MINUTE",
    ),
    (
        "unicode tab delimiter",
        1,
        "SELECT STREAM t.r.COLUMN1 FROM (SELECT STREAM VARIABLE_COLUMN_LOG_PARSE(ticker, 2, U&'\\0009') AS r FROM S) AS t",
    ),
    (
        "SELECT STREAM DISTINCT",
        2,
        "SELECT STREAM DISTINCT FLOOR(S.ROWTIME TO MINUTE), ticker FROM S",
    ),
];

#[test]
fn every_spec_construct_plans_or_names_its_feature() {
    let file = super::write_recording(&[]);
    let mut failures = Vec::new();
    for (what, n, query) in CASES {
        let cols: Vec<String> = (0..*n).map(|i| format!("c{i} VARCHAR(64)")).collect();
        let sql = format!(
            "CREATE OR REPLACE STREAM \"OUT\" ({});\nCREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\"\n{};",
            cols.join(", "),
            query
                .replace("FROM S", "FROM \"SOURCE_SQL_STREAM_001\" AS S")
                .replace("JOIN S OVER", "JOIN \"SOURCE_SQL_STREAM_001\" OVER")
        );
        let app = super::recorded_app(
            &sql,
            &[
                ("TICKER", "VARCHAR(4)", "$.t"),
                ("PRICE", "REAL", "$.p"),
                ("CHANGE", "REAL", "$.c"),
                ("EVENT_TIME", "TIMESTAMP", "$.e"),
            ],
            file.path(),
            &[],
        );
        match sluice::planner::plan_application(&app) {
            Ok(_) => {}
            Err(SluiceError::Unsupported { line, feature, .. }) if line >= 1 && !feature.is_empty() => {}
            Err(e) => failures.push(format!("{what}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "constructs that neither plan nor name their feature:\n{}",
        failures.join("\n")
    );
}
