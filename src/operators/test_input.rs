//! Inputs shared by the operators' unit tests: a keyed stream (`K`, `V`, ROWTIME) and
//! spill configurations.

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::state::spill::SpillConfig;

/// `K VARCHAR`, `V BIGINT`, ROWTIME.
pub fn input_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("K", DataType::Utf8, true),
        Field::new("V", DataType::Int64, true),
        Field::new("ROWTIME", DataType::Timestamp(TimeUnit::Millisecond, None), false),
    ]))
}

/// A batch of the keyed stream from (K, V, ROWTIME) triples.
pub fn keyed_rows(rows: &[(&str, i64, i64)]) -> RecordBatch {
    RecordBatch::try_new(
        input_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.2))),
        ],
    )
    .unwrap()
}

/// `batches` batches of 400 rows over 3000 keys (one key in 50 NULL, one value in 20
/// NULL), ROWTIME rising by 0 to `max_step_ms` a row from 2024-03-01 08:00 UTC. A batch
/// touches a small share of the keys, as in a stream with many more keys than a batch.
pub fn keyed_batches(seed: u64, batches: usize, max_step_ms: i64) -> Vec<RecordBatch> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut t = 1_709_280_000_000i64;
    (0..batches)
        .map(|_| {
            let (mut k, mut v, mut ts) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..400 {
                t += rng.random_range(0..=max_step_ms);
                k.push((rng.random_range(0..50) > 0).then(|| format!("k{}", rng.random_range(0..3000))));
                v.push((rng.random_range(0..20) > 0).then(|| rng.random_range(-1000i64..1000)));
                ts.push(t);
            }
            RecordBatch::try_new(
                input_schema(),
                vec![
                    Arc::new(StringArray::from(k)),
                    Arc::new(Int64Array::from(v)),
                    Arc::new(TimestampMillisecondArray::from(ts)),
                ],
            )
            .unwrap()
        })
        .collect()
}

/// A spill configuration with `budget` in `dir`.
pub fn spill_config(budget: Option<usize>, dir: &std::path::Path) -> SpillConfig {
    SpillConfig {
        budget_bytes: budget,
        dir: dir.to_path_buf(),
        app: "unit".into(),
        pump: "P".into(),
    }
}
