//! Streaming table functions over a cursor: `TABLE(f(CURSOR(SELECT STREAM ...), args...))`.
//!
//! The planner plans the cursor's query and appends the operator [`build`] returns; the
//! operator receives the cursor's batches (ROWTIME last) and emits batches that follow
//! [`output_schema`] (ROWTIME last, non-decreasing). One file per function:
//!
//! | function | output | file |
//! | --- | --- | --- |
//! | `RANDOM_CUT_FOREST(cursor [, numberOfTrees, subSampleSize, timeDecay, shingleSize])` | cursor columns, `ANOMALY_SCORE` DOUBLE; one row per input row | [`rcf`] |
//! | `RANDOM_CUT_FOREST_WITH_EXPLANATION(cursor [, ..., shingleSize, withDirectionality])` | cursor columns, `ANOMALY_SCORE` DOUBLE, `ANOMALY_EXPLANATION` VARCHAR (JSON) | [`rcf`] |
//! | `HOTSPOTS(cursor, windowSize, scanRadius, minimumNumberOfPointsInAHotspot)` | cursor columns, `HOTSPOTS_RESULT` VARCHAR (JSON); one row per input row | [`hotspots`] |
//! | `TOP_K_ITEMS_TUMBLING(cursor, 'columnName', K, windowSeconds)` | `ITEM` (the column's type), `ITEM_COUNT` BIGINT; up to K rows per window | [`top_k`] |
//! | `COUNT_DISTINCT_ITEMS_TUMBLING(cursor, 'columnName', windowSeconds)` | `NUMBER_OF_DISTINCT_ITEMS` BIGINT; one row per window | [`count_distinct`] |
//!
//! Argument errors are plain strings naming the function and the argument; the planner
//! wraps them with the statement's position.

mod common;
pub mod count_distinct;
pub mod hotspots;
pub mod rcf;
pub mod top_k;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;

use super::Operator;

/// The functions sluice implements, by upper-case name.
const FUNCTIONS: [&str; 5] = [
    rcf::RANDOM_CUT_FOREST,
    rcf::RANDOM_CUT_FOREST_WITH_EXPLANATION,
    hotspots::HOTSPOTS,
    top_k::TOP_K_ITEMS_TUMBLING,
    count_distinct::COUNT_DISTINCT_ITEMS_TUMBLING,
];

fn canonical(name: &str) -> Option<&'static str> {
    let name = name.trim().trim_matches('"');
    FUNCTIONS.iter().copied().find(|f| f.eq_ignore_ascii_case(name))
}

/// Is `name` (any case) a table function sluice implements?
pub fn is_table_function(name: &str) -> bool {
    canonical(name).is_some()
}

/// The batch schema this function emits for a cursor whose batches have `input` (the
/// cursor's columns, ROWTIME last), given the literal arguments after the cursor.
pub fn output_schema(name: &str, args: &[ScalarValue], input: &SchemaRef) -> Result<SchemaRef, String> {
    match canonical(name) {
        Some(rcf::RANDOM_CUT_FOREST) => rcf::output_schema(&rcf::RcfConfig::parse(false, args, input)?, input),
        Some(rcf::RANDOM_CUT_FOREST_WITH_EXPLANATION) => {
            rcf::output_schema(&rcf::RcfConfig::parse(true, args, input)?, input)
        }
        Some(hotspots::HOTSPOTS) => hotspots::output_schema(&hotspots::HotspotsConfig::parse(args, input)?, input),
        Some(top_k::TOP_K_ITEMS_TUMBLING) => top_k::output_schema(&top_k::TopKConfig::parse(args, input)?, input),
        Some(count_distinct::COUNT_DISTINCT_ITEMS_TUMBLING) => {
            count_distinct::output_schema(&count_distinct::CountDistinctConfig::parse(args, input)?, input)
        }
        _ => Err(unknown(name)),
    }
}

/// The operator. Its output batches follow [`output_schema`] (ROWTIME last, non-decreasing).
pub fn build(name: &str, args: &[ScalarValue], input: &SchemaRef) -> Result<Box<dyn Operator>, String> {
    Ok(match canonical(name) {
        Some(rcf::RANDOM_CUT_FOREST) => Box::new(rcf::RcfOp::new(rcf::RcfConfig::parse(false, args, input)?, input)?),
        Some(rcf::RANDOM_CUT_FOREST_WITH_EXPLANATION) => {
            Box::new(rcf::RcfOp::new(rcf::RcfConfig::parse(true, args, input)?, input)?)
        }
        Some(hotspots::HOTSPOTS) => Box::new(hotspots::HotspotsOp::new(
            hotspots::HotspotsConfig::parse(args, input)?,
            input,
        )?),
        Some(top_k::TOP_K_ITEMS_TUMBLING) => {
            Box::new(top_k::TopKOp::new(top_k::TopKConfig::parse(args, input)?, input)?)
        }
        Some(count_distinct::COUNT_DISTINCT_ITEMS_TUMBLING) => Box::new(count_distinct::CountDistinctOp::new(
            count_distinct::CountDistinctConfig::parse(args, input)?,
            input,
        )?),
        _ => return Err(unknown(name)),
    })
}

fn unknown(name: &str) -> String {
    format!(
        "unknown table function {name}; sluice implements {}",
        FUNCTIONS.join(", ")
    )
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Batches and calls for the tests of the table functions.

    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, RecordBatch, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};

    use crate::error::ErrorRow;
    use crate::operators::{OpContext, Operator};
    use crate::time::Millis;
    use crate::types::{ROWTIME, TIMESTAMP_TYPE};

    /// A cursor schema: `fields`, then ROWTIME.
    pub fn schema(fields: Vec<Field>) -> SchemaRef {
        let mut fields = fields;
        fields.push(Field::new(ROWTIME, TIMESTAMP_TYPE, false));
        Arc::new(Schema::new(fields))
    }

    pub fn batch(schema: &SchemaRef, columns: Vec<ArrayRef>, rowtimes: Vec<Millis>) -> RecordBatch {
        let mut columns = columns;
        columns.push(Arc::new(TimestampMillisecondArray::from(rowtimes)));
        RecordBatch::try_new(Arc::clone(schema), columns).unwrap()
    }

    pub fn on_batch(op: &mut dyn Operator, b: RecordBatch) -> Vec<RecordBatch> {
        let mut errors: Vec<ErrorRow> = Vec::new();
        let mut ctx = OpContext {
            pump: "TEST_PUMP",
            errors: &mut errors,
        };
        let out = op.on_batch(b, &mut ctx).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        out
    }

    pub fn on_bound(op: &mut dyn Operator, t: Millis) -> Vec<RecordBatch> {
        let mut errors: Vec<ErrorRow> = Vec::new();
        let mut ctx = OpContext {
            pump: "TEST_PUMP",
            errors: &mut errors,
        };
        op.on_bound(t, &mut ctx).unwrap()
    }

    /// A step of a test run.
    #[derive(Clone)]
    pub enum Step {
        Batch(RecordBatch),
        Bound(Millis),
    }

    pub fn run_steps(op: &mut dyn Operator, steps: &[Step]) -> Vec<RecordBatch> {
        steps
            .iter()
            .flat_map(|s| match s {
                Step::Batch(b) => on_batch(op, b.clone()),
                Step::Bound(t) => on_bound(op, *t),
            })
            .collect()
    }

    /// Checkpointing is invisible: a run that takes a snapshot after `split` steps emits
    /// what an uninterrupted run emits, and a fresh operator restored from that snapshot
    /// emits the rest exactly.
    pub fn check_restore(make: &dyn Fn() -> Box<dyn Operator>, steps: &[Step], split: usize) {
        let whole = run_steps(make().as_mut(), steps);
        let mut first = make();
        let mut before = run_steps(first.as_mut(), &steps[..split]);
        let state = first.snapshot().unwrap();
        let after = run_steps(first.as_mut(), &steps[split..]);
        let mut again = before.clone();
        again.extend(after);
        assert_eq!(again, whole, "taking a snapshot changed the output");
        let mut restored = make();
        if let Some(state) = state {
            restored.restore(&state).unwrap();
        }
        before.extend(run_steps(restored.as_mut(), &steps[split..]));
        assert_eq!(before, whole, "the restored operator's output differs");
    }

    /// Every emitted batch has the announced schema and a non-decreasing ROWTIME.
    pub fn check_batches(expected: &SchemaRef, batches: &[RecordBatch], last: &mut Millis) {
        for b in batches {
            assert_eq!(
                b.schema().as_ref(),
                expected.as_ref(),
                "emitted schema differs from output_schema"
            );
            for &t in crate::operators::rowtime_column(b).values().iter() {
                assert!(t >= *last, "ROWTIME went backwards: {t} after {last}");
                *last = t;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::{Step, batch, check_restore, schema};
    use super::*;
    use crate::time::Millis;
    use datafusion::arrow::array::{Float64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field};
    use std::sync::Arc;

    #[test]
    fn checkpoints_restore_exactly() {
        let input = schema(vec![
            Field::new("x", DataType::Float64, true),
            Field::new("item", DataType::Utf8, true),
            Field::new("y", DataType::Float64, true),
        ]);
        // 1,200 rows, 100 ms apart, in batches of 100, with a bound after each batch.
        let mut steps = Vec::new();
        for b in 0..12 {
            let rows = b * 100..(b + 1) * 100;
            let x: Vec<f64> = rows.clone().map(|i| ((i * 7919) % 113) as f64 * 0.01).collect();
            let y: Vec<f64> = rows
                .clone()
                .map(|i| ((i * 104_729) % 97) as f64 * 0.01 + (i % 3) as f64)
                .collect();
            let item: Vec<String> = rows.clone().map(|i| format!("i{}", (i * i) % 17)).collect();
            let t: Vec<Millis> = rows.clone().map(|i| i as Millis * 100 + 5).collect();
            let last = *t.last().unwrap();
            steps.push(Step::Batch(batch(
                &input,
                vec![
                    Arc::new(Float64Array::from(x)),
                    Arc::new(StringArray::from(item)),
                    Arc::new(Float64Array::from(y)),
                ],
                t,
            )));
            steps.push(Step::Bound(last + 1));
        }
        steps.push(Step::Bound(Millis::MAX));
        let int = |v: i64| ScalarValue::Int64(Some(v));
        let calls: Vec<(&str, Vec<ScalarValue>)> = vec![
            ("RANDOM_CUT_FOREST", vec![int(20), int(64), int(1000), int(2)]),
            (
                "RANDOM_CUT_FOREST_WITH_EXPLANATION",
                vec![int(20), int(64), int(1000), int(1), ScalarValue::Boolean(Some(true))],
            ),
            ("HOTSPOTS", vec![int(100), ScalarValue::Float64(Some(0.3)), int(5)]),
            (
                "TOP_K_ITEMS_TUMBLING",
                vec![ScalarValue::Utf8(Some("item".into())), int(3), int(7)],
            ),
            (
                "COUNT_DISTINCT_ITEMS_TUMBLING",
                vec![ScalarValue::Utf8(Some("item".into())), int(7)],
            ),
        ];
        for (name, args) in &calls {
            let make = || build(name, args, &input).unwrap();
            for split in [0, 7, 24] {
                check_restore(&make, &steps, split);
            }
        }
    }

    #[test]
    fn names_are_case_insensitive() {
        assert!(is_table_function("random_cut_forest"));
        assert!(is_table_function("Random_Cut_Forest_With_Explanation"));
        assert!(is_table_function("HOTSPOTS"));
        assert!(is_table_function("top_k_items_tumbling"));
        assert!(is_table_function("COUNT_DISTINCT_ITEMS_TUMBLING"));
        assert!(!is_table_function("GROUP_RANK"));
        assert!(!is_table_function("RANDOM_CUT"));
    }

    #[test]
    fn schemas_and_errors() {
        let input = test_util::schema(vec![
            Field::new("x", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
        ]);
        let out = output_schema("random_cut_forest", &[], &input).unwrap();
        let names: Vec<&str> = out.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["x", "s", "ANOMALY_SCORE", "ROWTIME"]);
        let e = output_schema("NOPE", &[], &input).unwrap_err();
        assert!(e.contains("unknown table function NOPE"), "{e}");
        assert!(build("NOPE", &[], &input).is_err());
        let e = output_schema("TOP_K_ITEMS_TUMBLING", &[ScalarValue::Utf8(Some("X".into()))], &input).unwrap_err();
        assert!(e.contains("TOP_K_ITEMS_TUMBLING"), "{e}");
    }
}
