//! An input's event-time column in queries. With `[inputs.event_time] column = "TS"`, the
//! source stamps every row of the input's streams with ROWTIME = TS, releases the rows in
//! that order once the watermark passes them and sends late ones elsewhere. So, for those
//! rows, `STEP(e.TS BY INTERVAL '1' MINUTE)` is the same bucket as `STEP(e.ROWTIME BY ...)`
//! and may close a streaming GROUP BY or lead a streaming ORDER BY the same way.
//!
//! Where a key reads that column unchanged from the input stream (directly, through an
//! alias, or through subqueries that pass it on), the lowering sees it as the ROWTIME it
//! is ([`as_rowtime`]) and then compiles the key on the batch's trailing ROWTIME column,
//! so rowtime bounds can be probed as for a key written with ROWTIME. A column of a
//! stream a pump wrote, or of the input's late stream, is no event time: there ROWTIME is
//! whatever the pump or the watermark made it. [`why_not_rowtime`] says so in a refusal.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::Column;
use datafusion::logical_expr::{Cast, Expr, TableScan};

use super::catalog::{Catalog, RelationKind};
use crate::types::ROWTIME;

/// Column `c` of the stream `scan` reads, as the expression of that stream's ROWTIME it
/// equals on every row, when it is the stream's event-time column: ROWTIME itself for a
/// TIMESTAMP column; for a BIGINT (or INTEGER) column of epoch milliseconds, ROWTIME's
/// milliseconds in the column's type. None for any other column, or for a stream on the
/// ingest clock.
pub(super) fn as_rowtime(scan: &TableScan, c: &Column, catalog: &Catalog) -> Option<Expr> {
    let column = catalog.event_time_column(scan.table_name.table())?;
    let schema = &scan.projected_schema;
    let field = schema.field(schema.maybe_index_of_column(c)?);
    if field.name() != column {
        return None;
    }
    let rowtime = Expr::Column(Column::from_name(ROWTIME));
    match field.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond, None) => Some(rowtime),
        DataType::Int64 => Some(Expr::Cast(Cast::new(Box::new(rowtime), DataType::Int64))),
        DataType::Int32 => {
            let millis = Expr::Cast(Cast::new(Box::new(rowtime), DataType::Int64));
            Some(Expr::Cast(Cast::new(Box::new(millis), DataType::Int32)))
        }
        // The source refuses any other type of event-time column when the input starts.
        _ => None,
    }
}

/// Why a time column that a refused time key (of a GROUP BY, ORDER BY or DISTINCT) reads (`e`, as written down to the
/// streams) is not ROWTIME, in words that name what to change; None when the key reads
/// no such column.
pub(super) fn why_not_rowtime(e: &Expr, catalog: &Catalog) -> Option<String> {
    let mut columns: Vec<&Column> = e.column_refs().into_iter().collect();
    columns.sort_by_key(|c| c.flat_name());
    columns.into_iter().find_map(|c| {
        let stream = c.relation.as_ref()?.table();
        let relation = catalog.get(stream)?;
        let data_type = relation.schema.field_with_name(&c.name).ok()?.data_type();
        let is_time = matches!(data_type, DataType::Timestamp(..) | DataType::Int64);
        if c.name == ROWTIME || !is_time {
            return None;
        }
        let name = &c.name;
        match relation.kind {
            RelationKind::InputStream if catalog.is_late_stream(stream) => Some(format!(
                "\"{name}\" of late stream \"{stream}\" is not its ROWTIME: a late row's ROWTIME is the \
                 watermark that found it late; use a bucket of ROWTIME such as \
                 STEP(\"{stream}\".ROWTIME BY INTERVAL '1' MINUTE)"
            )),
            RelationKind::InputStream => Some(match catalog.event_time_column(stream) {
                None => format!(
                    "\"{name}\" is not the event-time column of input stream \"{stream}\": that input has no \
                     [inputs.event_time] setting, so its ROWTIME is the ingest clock and nothing keeps \
                     \"{name}\" in order. To run the input on \"{name}\", set [inputs.event_time] \
                     column = \"{name}\" (with max_delay_ms, how far out of order rows may come); \
                     ROWTIME is then \"{name}\", and \"{name}\" counts as ROWTIME here"
                ),
                Some(other) if other != name => format!(
                    "\"{name}\" is not the event-time column of input stream \"{stream}\": its \
                     [inputs.event_time] column is \"{other}\", which is its ROWTIME; use a bucket of \
                     ROWTIME (or of \"{other}\") such as STEP(\"{stream}\".ROWTIME BY INTERVAL '1' MINUTE)"
                ),
                Some(_) => format!(
                    "\"{name}\" is the event-time column of input stream \"{stream}\", but it reaches this \
                     query through a join or window, after which it is not the rows' ROWTIME; use a \
                     bucket of ROWTIME such as STEP(ROWTIME BY INTERVAL '1' MINUTE)"
                ),
            }),
            RelationKind::Stream if !stream.contains('#') => Some(format!(
                "\"{name}\" of stream \"{stream}\" is an ordinary column: only an input's \
                 [inputs.event_time] column is its ROWTIME, and a pump writes rows into \"{stream}\" \
                 with the ROWTIME its query gives them; use a bucket of that ROWTIME such as \
                 STEP(\"{stream}\".ROWTIME BY INTERVAL '1' MINUTE)"
            )),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use crate::app::{AppSpec, EventTimeSpec, InputSpec, RecordColumn, RecordFormat, RecordSchema, SourceSpec};
    use crate::types::{ColumnDef, SqlType};
    use crate::{Result, SluiceError};

    /// An input `SOURCE_SQL_STREAM_001` (TS, T2 TIMESTAMP, T BIGINT, K VARCHAR) on event
    /// time from `event_time` (none: the ingest clock), late rows to `LATE`.
    fn plan(event_time: Option<&str>, sql: &str) -> Result<crate::planner::ApplicationPlan> {
        let column = |name: &str, sql_type: &str| RecordColumn {
            column: ColumnDef::new(name, SqlType::parse(sql_type).unwrap()),
            mapping: Some(format!("$.{}", name.to_lowercase())),
        };
        let app = AppSpec {
            name: "event-time".into(),
            sql: sql.into(),
            inputs: vec![InputSpec {
                name_prefix: "SOURCE_SQL_STREAM".into(),
                stream_name: None,
                parallelism: 1,
                schema: RecordSchema {
                    columns: vec![
                        column("TS", "TIMESTAMP"),
                        column("T2", "TIMESTAMP"),
                        column("T", "BIGINT"),
                        column("K", "VARCHAR(8)"),
                    ],
                    format: RecordFormat::Json { row_path: "$".into() },
                },
                source: SourceSpec::Stdin,
                event_time: event_time.map(|c| EventTimeSpec {
                    column: c.into(),
                    max_delay_ms: 1000,
                    idle_timeout_ms: None,
                    late_stream: Some("LATE".into()),
                }),
                preprocessor: None,
            }],
            references: vec![],
            outputs: vec![],
        };
        crate::planner::plan_application(&app)
    }

    const OUT: &str = "CREATE OR REPLACE STREAM \"OUT\" (W TIMESTAMP, N BIGINT);\n";

    fn pump(select: &str) -> String {
        format!("{OUT}CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\"\n{select};")
    }

    fn refusal(event_time: Option<&str>, sql: &str) -> String {
        match plan(event_time, sql) {
            Err(SluiceError::Sql { message, .. }) => message,
            Err(other) => panic!("expected a SQL error, got {other}"),
            Ok(_) => panic!("planned, but should be refused: {sql}"),
        }
    }

    #[test]
    fn the_event_time_column_is_a_rowtime_bucket_wherever_it_reaches_the_key_unchanged() {
        for select in [
            // by the stream's name, through an alias, in both bucket forms
            "SELECT STREAM STEP(\"SOURCE_SQL_STREAM_001\".ts BY INTERVAL '1' MINUTE), COUNT(*) \
             FROM \"SOURCE_SQL_STREAM_001\" GROUP BY STEP(\"SOURCE_SQL_STREAM_001\".ts BY INTERVAL '1' MINUTE)",
            "SELECT STREAM STEP(e.ts BY INTERVAL '1' MINUTE), COUNT(*) FROM \"SOURCE_SQL_STREAM_001\" AS e \
             GROUP BY STEP(e.ts BY INTERVAL '1' MINUTE)",
            "SELECT STREAM FLOOR(e.ts TO MINUTE), COUNT(*) FROM \"SOURCE_SQL_STREAM_001\" AS e \
             GROUP BY e.k, FLOOR(e.ts TO MINUTE)",
            // renamed by subqueries, one of them filtering
            "SELECT STREAM STEP(v.at BY INTERVAL '10' SECOND), COUNT(*) FROM \
             (SELECT STREAM w.event_ts AS at FROM (SELECT STREAM ts AS event_ts, k FROM \"SOURCE_SQL_STREAM_001\" \
             WHERE k <> 'x') AS w) AS v GROUP BY STEP(v.at BY INTERVAL '10' SECOND)",
            // the column itself as the only key: one group per instant
            "SELECT STREAM e.ts, COUNT(*) FROM \"SOURCE_SQL_STREAM_001\" AS e GROUP BY e.ts",
        ] {
            plan(Some("TS"), &pump(select)).unwrap_or_else(|e| panic!("{select}: {e}"));
        }
    }

    #[test]
    fn the_event_time_column_leads_a_streaming_order_by_and_makes_distinct_rows_close() {
        let sorted = "CREATE OR REPLACE STREAM \"OUT\" (TS TIMESTAMP, K VARCHAR(8));\n\
             CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\" SELECT STREAM e.ts, e.k \
             FROM \"SOURCE_SQL_STREAM_001\" AS e ORDER BY FLOOR(e.ts TO SECOND), e.k DESC;";
        plan(Some("TS"), sorted).unwrap();
        let grouped_then_sorted = pump(
            "SELECT STREAM STEP(e.ts BY INTERVAL '1' MINUTE) AS w, COUNT(*) FROM \"SOURCE_SQL_STREAM_001\" AS e \
             GROUP BY STEP(e.ts BY INTERVAL '1' MINUTE) ORDER BY w, COUNT(*) DESC",
        );
        plan(Some("TS"), &grouped_then_sorted).unwrap();
        let distinct = "CREATE OR REPLACE STREAM \"OUT\" (W TIMESTAMP, K VARCHAR(8));\n\
             CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\" SELECT STREAM DISTINCT \
             FLOOR(e.ts TO MINUTE), e.k FROM \"SOURCE_SQL_STREAM_001\" AS e;";
        plan(Some("TS"), distinct).unwrap();
        // On the ingest clock the same queries need ROWTIME.
        for refused in [sorted, distinct] {
            let m = refusal(None, refused);
            assert!(
                (m.contains("streaming ORDER BY") || m.contains("SELECT STREAM DISTINCT"))
                    && m.contains("\"TS\" is not the event-time column"),
                "{m}"
            );
        }
    }

    #[test]
    fn an_epoch_millisecond_event_time_column_is_rowtime_in_milliseconds() {
        let sql = "CREATE OR REPLACE STREAM \"OUT\" (W BIGINT, N BIGINT);\n\
             CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\" SELECT STREAM STEP(e.t BY 60000), COUNT(*) \
             FROM \"SOURCE_SQL_STREAM_001\" AS e GROUP BY STEP(e.t BY 60000);";
        plan(Some("T"), sql).unwrap();
        assert!(refusal(None, sql).contains("\"T\" is not the event-time column"));
    }

    #[test]
    fn approximate_arrival_time_as_the_event_time_column_is_rowtime() {
        plan(
            Some("APPROXIMATE_ARRIVAL_TIME"),
            &pump(
                "SELECT STREAM STEP(e.APPROXIMATE_ARRIVAL_TIME BY INTERVAL '1' MINUTE), COUNT(*) \
                 FROM \"SOURCE_SQL_STREAM_001\" AS e GROUP BY STEP(e.APPROXIMATE_ARRIVAL_TIME BY INTERVAL '1' MINUTE)",
            ),
        )
        .unwrap();
    }

    #[test]
    fn a_column_that_is_not_the_rows_rowtime_is_refused_saying_why() {
        let by = |column: &str| {
            pump(&format!(
                "SELECT STREAM STEP(e.{column} BY INTERVAL '1' MINUTE), COUNT(*) FROM \"SOURCE_SQL_STREAM_001\" AS e \
                 GROUP BY STEP(e.{column} BY INTERVAL '1' MINUTE)"
            ))
        };
        // no event time: name the setting that would make it ROWTIME
        let m = refusal(None, &by("ts"));
        assert!(m.contains("monotonic expression of ROWTIME"), "{m}");
        assert!(
            m.contains("\"TS\" is not the event-time column of input stream \"SOURCE_SQL_STREAM_001\"")
                && m.contains("[inputs.event_time] column = \"TS\""),
            "{m}"
        );
        // event time from another column
        let m = refusal(Some("T2"), &by("ts"));
        assert!(
            m.contains("\"TS\" is not the event-time column") && m.contains("[inputs.event_time] column is \"T2\""),
            "{m}"
        );
        // copied by a pump into another stream, whose ROWTIME the pump decides
        let through_pump = "CREATE OR REPLACE STREAM \"COPY\" (TS TIMESTAMP, K VARCHAR(8));\n\
             CREATE OR REPLACE PUMP \"C\" AS INSERT INTO \"COPY\" SELECT STREAM ts, k FROM \"SOURCE_SQL_STREAM_001\";\n\
             CREATE OR REPLACE STREAM \"OUT\" (W TIMESTAMP, N BIGINT);\n\
             CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\" SELECT STREAM STEP(c.ts BY INTERVAL '1' MINUTE), \
             COUNT(*) FROM \"COPY\" AS c GROUP BY STEP(c.ts BY INTERVAL '1' MINUTE);";
        let m = refusal(Some("TS"), through_pump);
        assert!(m.contains("\"TS\" of stream \"COPY\" is an ordinary column"), "{m}");
        // the late stream's rows carry the watermark that found them late as ROWTIME
        let late = pump(
            "SELECT STREAM STEP(l.ts BY INTERVAL '1' MINUTE), COUNT(*) FROM \"LATE\" AS l \
             GROUP BY STEP(l.ts BY INTERVAL '1' MINUTE)",
        );
        let m = refusal(Some("TS"), &late);
        assert!(m.contains("late stream \"LATE\""), "{m}");
        // an aggregate in between computed it: MAX(ts) of a group is no row's ROWTIME
        let aggregated = pump(
            "SELECT STREAM STEP(g.hi BY INTERVAL '1' MINUTE), COUNT(*) FROM (SELECT STREAM MAX(ts) AS hi \
             FROM \"SOURCE_SQL_STREAM_001\" GROUP BY k, STEP(ROWTIME BY INTERVAL '1' MINUTE)) AS g \
             GROUP BY STEP(g.hi BY INTERVAL '1' MINUTE)",
        );
        let m = refusal(Some("TS"), &aggregated);
        assert!(m.contains("monotonic expression of ROWTIME"), "{m}");
    }

    #[test]
    fn a_sliding_window_is_ordered_by_rowtime_or_the_event_time_column() {
        let sliding = |order: &str, frame: &str| {
            format!(
                "CREATE OR REPLACE STREAM \"OUT\" (TS TIMESTAMP, N BIGINT);\n\
                 CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\" SELECT STREAM e.ts, \
                 COUNT(*) OVER (PARTITION BY e.k {order} {frame}) FROM \"SOURCE_SQL_STREAM_001\" AS e;"
            )
        };
        let range = "RANGE INTERVAL '1' MINUTE PRECEDING";
        for (order, frame) in [
            ("", range),
            ("ORDER BY e.ROWTIME", range),
            ("ORDER BY ROWTIME", "ROWS 3 PRECEDING"),
            ("ORDER BY FLOOR(e.ROWTIME TO SECOND)", "ROWS 3 PRECEDING"),
        ] {
            plan(None, &sliding(order, frame)).unwrap_or_else(|e| panic!("{order} {frame}: {e}"));
        }
        // The event-time column is ROWTIME; on the ingest clock it would be ignored.
        plan(Some("TS"), &sliding("ORDER BY e.ts", range)).unwrap();
        let m = refusal(None, &sliding("ORDER BY e.ts", range));
        assert!(
            m.contains("write ORDER BY ROWTIME") && m.contains("[inputs.event_time] column = \"TS\""),
            "{m}"
        );
        // Another order, or a RANGE measured on something else than ROWTIME.
        for (order, frame) in [
            ("ORDER BY e.k", "ROWS 3 PRECEDING"),
            ("ORDER BY e.ROWTIME DESC", range),
            ("ORDER BY FLOOR(e.ROWTIME TO SECOND)", range),
            ("ORDER BY e.ROWTIME, e.k", "ROWS 3 PRECEDING"),
        ] {
            let m = refusal(Some("TS"), &sliding(order, frame));
            assert!(m.contains("ORDER BY ROWTIME"), "{order} {frame}: {m}");
        }
    }

    #[test]
    fn equal_event_time_columns_join_the_rows_of_one_instant() {
        let join = "CREATE OR REPLACE STREAM \"OUT\" (K VARCHAR(8), TS TIMESTAMP);\n\
             CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\" SELECT STREAM a.k, b.ts \
             FROM \"SOURCE_SQL_STREAM_001\" AS a JOIN \"SOURCE_SQL_STREAM_001\" AS b \
             ON a.ts = b.ts AND a.k = b.k;";
        plan(Some("TS"), join).unwrap();
        let m = refusal(None, join);
        assert!(m.contains("needs a window"), "{m}");
    }

    #[test]
    fn stagger_and_table_function_windows_take_the_event_time_column_as_written() {
        let stagger = "CREATE OR REPLACE STREAM \"OUT\" (K VARCHAR(8), W TIMESTAMP, N BIGINT);\n\
             CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\" SELECT STREAM e.k, FLOOR(e.ts TO MINUTE), COUNT(*) \
             FROM \"SOURCE_SQL_STREAM_001\" AS e \
             WINDOWED BY STAGGER (PARTITION BY FLOOR(e.ts TO MINUTE), e.k RANGE INTERVAL '1' MINUTE);";
        let tumble = "CREATE OR REPLACE STREAM \"OUT\" (W TIMESTAMP, N BIGINT);\n\
             CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\" SELECT STREAM window_start, COUNT(*) \
             FROM TABLE(TUMBLE(TABLE \"SOURCE_SQL_STREAM_001\", DESCRIPTOR(ts), INTERVAL '1' MINUTE)) \
             GROUP BY window_start, window_end;";
        for sql in [stagger, tumble] {
            plan(Some("TS"), sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }
}
