//! `TOP_K_ITEMS_TUMBLING(cursor, 'columnName', K, windowSeconds)`: the K most frequent
//! values of a column per tumbling window.
//!
//! - Arguments: `columnName` is a string literal naming a cursor column exactly as stored
//!   (case-sensitive); `K` in 1..=100,000; `windowSeconds` in 1..=3600.
//! - Output: `ITEM` (the column's type), `ITEM_COUNT` BIGINT, ROWTIME; up to K rows per
//!   window, ordered by count descending, ties by first appearance in the window.
//! - Windows (A8): aligned to epoch multiples of the width (like `STEP`); a window is
//!   emitted when a row or a rowtime bound at or after its end arrives; every row of it has
//!   ROWTIME = the window's end. Windows without items emit nothing. NULL items are not
//!   counted.
//! - Counting is exact while a window holds at most [`EXACT_CAPACITY`] (or 4·K, if larger)
//!   distinct items; beyond that it becomes the Space-Saving sketch (Metwally et al. 2005)
//!   with that many counters: an unseen item replaces the item with the smallest count and
//!   inherits that count + 1, so counts may be over-estimated, never under-estimated, and
//!   any item more frequent than n/capacity is reported.
//!
//! Items are keyed by their Arrow row encoding (one vectorised conversion per batch) and
//! decoded back to the column's type at emission.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, TimestampMillisecondArray, UInt64Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, UInt64Type};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::ScalarValue;

use super::common::{Args, FixedHashMap, TumblingClock, find_column, rowtime_field};
use crate::error::{Result, SluiceError};
use crate::operators::{OpContext, Operator, rowtime_column};
use crate::state::snapshot;
use crate::time::Millis;

pub const TOP_K_ITEMS_TUMBLING: &str = "TOP_K_ITEMS_TUMBLING";

/// Distinct items per window counted exactly (the sketch keeps this many counters, or 4·K
/// if that is larger).
pub const EXACT_CAPACITY: usize = 100_000;

#[derive(Debug, Clone)]
pub struct TopKConfig {
    pub column: usize,
    pub k: usize,
    pub window_ms: Millis,
}

impl TopKConfig {
    pub fn parse(args: &[ScalarValue], input: &SchemaRef) -> Result<Self, String> {
        let a = Args::new(TOP_K_ITEMS_TUMBLING, args);
        a.arity(3, &["'columnName'", "K", "windowSeconds"])?;
        let name = a.string(0, "columnName")?;
        let column = find_column(TOP_K_ITEMS_TUMBLING, input, &name)?;
        let k = a.int(1, "K", None, 1, 100_000)? as usize;
        let window_ms = a.int(2, "windowSeconds", None, 1, 3600)? * 1000;
        Ok(TopKConfig { column, k, window_ms })
    }
}

/// `ITEM` (the column's type), `ITEM_COUNT` BIGINT, ROWTIME.
pub fn output_schema(config: &TopKConfig, input: &SchemaRef) -> Result<SchemaRef, String> {
    let rowtime = rowtime_field(TOP_K_ITEMS_TUMBLING, input)?;
    let item_type = input.field(config.column).data_type().clone();
    if !RowConverter::supports_fields(&[SortField::new(item_type.clone())]) {
        return Err(format!(
            "{TOP_K_ITEMS_TUMBLING}: column '{}' has type {item_type}, which cannot be counted",
            input.field(config.column).name()
        ));
    }
    Ok(Arc::new(Schema::new(vec![
        Arc::new(Field::new("ITEM", item_type, true)),
        Arc::new(Field::new("ITEM_COUNT", DataType::Int64, true)),
        rowtime,
    ])))
}

/// Exact counts up to `capacity` items, then Space-Saving with `capacity` counters.
struct Counter {
    capacity: usize,
    slot_of: FixedHashMap<Box<[u8]>, usize>,
    keys: Vec<Box<[u8]>>,
    counts: Vec<u64>,
    /// When the slot's item first appeared in the window (ties of equal counts).
    first: Vec<u64>,
    arrivals: u64,
    /// Sketch mode only: (count, first, slot), smallest first.
    by_count: Option<BTreeSet<(u64, u64, usize)>>,
}

impl Counter {
    fn new(capacity: usize) -> Self {
        Counter {
            capacity,
            slot_of: FixedHashMap::default(),
            keys: Vec::new(),
            counts: Vec::new(),
            first: Vec::new(),
            arrivals: 0,
            by_count: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn add(&mut self, key: &[u8]) {
        self.arrivals += 1;
        if let Some(&slot) = self.slot_of.get(key) {
            if let Some(set) = &mut self.by_count {
                set.remove(&(self.counts[slot], self.first[slot], slot));
                set.insert((self.counts[slot] + 1, self.first[slot], slot));
            }
            self.counts[slot] += 1;
            return;
        }
        if self.keys.len() < self.capacity {
            let slot = self.keys.len();
            self.keys.push(key.into());
            self.counts.push(1);
            self.first.push(self.arrivals);
            self.slot_of.insert(key.into(), slot);
            if let Some(set) = &mut self.by_count {
                set.insert((1, self.arrivals, slot));
            }
            return;
        }
        // Space-Saving: the new item takes over the counter of the least frequent one.
        let set = self.by_count.get_or_insert_with(|| {
            (0..self.keys.len())
                .map(|s| (self.counts[s], self.first[s], s))
                .collect()
        });
        let Some((min, _, slot)) = set.pop_first() else { return };
        self.slot_of.remove(&self.keys[slot]);
        self.keys[slot] = key.into();
        self.counts[slot] = min + 1;
        self.first[slot] = self.arrivals;
        set.insert((min + 1, self.arrivals, slot));
        self.slot_of.insert(key.into(), slot);
    }

    /// The `k` most frequent slots, most frequent first.
    fn top(&self, k: usize) -> Vec<usize> {
        let order = |a: &usize, b: &usize| {
            self.counts[*b]
                .cmp(&self.counts[*a])
                .then(self.first[*a].cmp(&self.first[*b]))
        };
        let mut slots: Vec<usize> = (0..self.keys.len()).collect();
        if slots.len() > k {
            slots.select_nth_unstable_by(k - 1, order);
            slots.truncate(k);
        }
        slots.sort_by(order);
        slots
    }
}

pub struct TopKOp {
    config: TopKConfig,
    converter: RowConverter,
    clock: TumblingClock,
    counter: Counter,
    schema: SchemaRef,
}

impl TopKOp {
    pub fn new(config: TopKConfig, input: &SchemaRef) -> Result<Self, String> {
        let schema = output_schema(&config, input)?;
        let item_type = input.field(config.column).data_type().clone();
        let converter =
            RowConverter::new(vec![SortField::new(item_type)]).map_err(|e| format!("{TOP_K_ITEMS_TUMBLING}: {e}"))?;
        let capacity = EXACT_CAPACITY.max(4 * config.k);
        Ok(TopKOp {
            clock: TumblingClock::new(config.window_ms),
            counter: Counter::new(capacity),
            config,
            converter,
            schema,
        })
    }

    /// Emits the window ending at `end` and clears the counts.
    fn emit(&mut self, end: Millis) -> Result<Option<RecordBatch>> {
        let capacity = self.counter.capacity;
        let counter = std::mem::replace(&mut self.counter, Counter::new(capacity));
        if counter.is_empty() {
            return Ok(None);
        }
        let top = counter.top(self.config.k);
        let keys: Vec<Box<[u8]>> = top.iter().map(|&s| counter.keys[s].clone()).collect();
        let item = self.decode_items(&keys)?;
        let counts: ArrayRef = Arc::new(Int64Array::from_iter_values(
            top.iter()
                .map(|&s| i64::try_from(counter.counts[s]).unwrap_or(i64::MAX)),
        ));
        let rowtime: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![end; top.len()]));
        Ok(Some(RecordBatch::try_new(
            Arc::clone(&self.schema),
            vec![item, counts, rowtime],
        )?))
    }
}

impl TopKOp {
    /// The items of `keys` as an array of the column's type.
    fn decode_items(&self, keys: &[Box<[u8]>]) -> Result<ArrayRef> {
        let parser = self.converter.parser();
        let mut items = self.converter.convert_rows(keys.iter().map(|k| parser.parse(k)))?;
        let item = items.remove(0);
        let item_type = self.schema.field(0).data_type();
        Ok(if item.data_type() == item_type {
            item
        } else {
            cast(&item, item_type)?
        })
    }

    fn load(&mut self, sections: &[Vec<ArrayRef>]) -> Result<Option<()>> {
        let [meta, entries] = sections else { return Ok(None) };
        let (Some(end), Some(arrivals), Some(sketch)) = (
            meta.first().and_then(|a| a.as_primitive_opt::<Int64Type>()),
            meta.get(1).and_then(|a| a.as_primitive_opt::<UInt64Type>()),
            meta.get(2).and_then(|a| a.as_boolean_opt()),
        ) else {
            return Ok(None);
        };
        let (Some(items), Some(counts), Some(first)) = (
            entries.first(),
            entries.get(1).and_then(|a| a.as_primitive_opt::<UInt64Type>()),
            entries.get(2).and_then(|a| a.as_primitive_opt::<UInt64Type>()),
        ) else {
            return Ok(None);
        };
        if end.len() != 1
            || arrivals.len() != 1
            || sketch.len() != 1
            || items.data_type() != self.schema.field(0).data_type()
        {
            return Ok(None);
        }
        let rows = self.converter.convert_columns(std::slice::from_ref(items))?;
        let mut counter = Counter::new(self.counter.capacity);
        for i in 0..items.len().min(counts.len()).min(first.len()) {
            let key: Box<[u8]> = rows.row(i).as_ref().into();
            counter.slot_of.insert(key.clone(), i);
            counter.keys.push(key);
            counter.counts.push(counts.value(i));
            counter.first.push(first.value(i));
        }
        counter.arrivals = arrivals.value(0);
        if sketch.value(0) {
            counter.by_count = Some(
                (0..counter.keys.len())
                    .map(|s| (counter.counts[s], counter.first[s], s))
                    .collect(),
            );
        }
        self.counter = counter;
        self.clock.open_end = Some(end.value(0));
        Ok(Some(()))
    }
}

impl Operator for TopKOp {
    fn name(&self) -> &'static str {
        "TopKItemsTumbling"
    }

    fn on_batch(&mut self, batch: RecordBatch, _ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        if batch.num_rows() == 0 {
            return Ok(out);
        }
        let item = Arc::clone(batch.column(self.config.column));
        let rows = self.converter.convert_columns(std::slice::from_ref(&item))?;
        for (start, stop, end) in self.clock.runs(rowtime_column(&batch)) {
            if let Some(open) = self.clock.open_end
                && open != end
            {
                out.extend(self.emit(open)?);
            }
            self.clock.open_end = Some(end);
            for i in start..stop {
                if item.is_valid(i) {
                    self.counter.add(rows.row(i).as_ref());
                }
            }
        }
        Ok(out)
    }

    fn on_bound(&mut self, bound: Millis, _ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        if self.clock.closes(bound)
            && let Some(end) = self.clock.open_end.take()
        {
            return Ok(self.emit(end)?.into_iter().collect());
        }
        Ok(vec![])
    }

    /// The open window: its end, and every counter (item, count, first appearance).
    fn snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        let Some(end) = self.clock.open_end else {
            return Ok(None);
        };
        let c = &self.counter;
        let meta: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![end])),
            Arc::new(UInt64Array::from(vec![c.arrivals])),
            Arc::new(BooleanArray::from(vec![c.by_count.is_some()])),
        ];
        let entries: Vec<ArrayRef> = vec![
            self.decode_items(&c.keys)?,
            Arc::new(UInt64Array::from(c.counts.clone())),
            Arc::new(UInt64Array::from(c.first.clone())),
        ];
        Ok(Some(snapshot::encode(&[meta, entries])?))
    }

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let sections = snapshot::decode(state)?;
        self.load(&sections)?.ok_or_else(|| {
            SluiceError::runtime(format!(
                "the saved state of {TOP_K_ITEMS_TUMBLING} does not fit its current arguments"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{batch, check_batches, on_batch, on_bound, schema};
    use super::*;
    use datafusion::arrow::array::{AsArray, Int32Array, StringArray};
    use datafusion::arrow::datatypes::Int64Type;

    fn rows(b: &RecordBatch) -> Vec<(String, i64, Millis)> {
        let items = cast(b.column(0), &DataType::Utf8).unwrap();
        let items = items.as_string::<i32>();
        let counts = b.column(1).as_primitive::<Int64Type>();
        let times = rowtime_column(b);
        (0..b.num_rows())
            .map(|i| (items.value(i).to_string(), counts.value(i), times.value(i)))
            .collect()
    }

    fn args(col: &str, k: i64, secs: i64) -> Vec<ScalarValue> {
        vec![
            ScalarValue::Utf8(Some(col.into())),
            ScalarValue::Int64(Some(k)),
            ScalarValue::Int64(Some(secs)),
        ]
    }

    #[test]
    fn windows_close_on_rows_and_bounds_with_exact_ordered_counts() {
        let input = schema(vec![
            Field::new("TICKER", DataType::Utf8, true),
            Field::new("PRICE", DataType::Float64, true),
        ]);
        let a = args("TICKER", 2, 10);
        let expected = super::super::output_schema(TOP_K_ITEMS_TUMBLING, &a, &input).unwrap();
        let mut op = super::super::build(TOP_K_ITEMS_TUMBLING, &a, &input).unwrap();
        let mut last = Millis::MIN;
        let tickers = ["A", "B", "A", "C", "B", "A", "C", "C", "C"];
        let times = vec![1_000, 2_000, 3_000, 4_000, 5_000, 6_000, 7_000, 8_000, 9_999];
        let prices = vec![1.0; tickers.len()];
        let b = batch(
            &input,
            vec![
                Arc::new(StringArray::from(tickers.to_vec())),
                Arc::new(datafusion::arrow::array::Float64Array::from(prices)),
            ],
            times,
        );
        let out = on_batch(op.as_mut(), b);
        assert!(out.is_empty(), "the window [0, 10s) is still open");
        // A bound before the end closes nothing; a bound at the end closes the window.
        assert!(on_bound(op.as_mut(), 9_999).is_empty());
        let out = on_bound(op.as_mut(), 10_000);
        check_batches(&expected, &out, &mut last);
        assert_eq!(out.len(), 1);
        assert_eq!(rows(&out[0]), vec![("C".into(), 4, 10_000), ("A".into(), 3, 10_000)]);
        // A row of a later window closes the open one; NULL items are not counted.
        let b = batch(
            &input,
            vec![
                Arc::new(StringArray::from(vec![
                    Some("X"),
                    None,
                    Some("Y"),
                    Some("Y"),
                    Some("Z"),
                ])),
                Arc::new(datafusion::arrow::array::Float64Array::from(vec![1.0; 5])),
            ],
            vec![12_000, 13_000, 15_000, 19_000, 31_000],
        );
        let out = on_batch(op.as_mut(), b);
        check_batches(&expected, &out, &mut last);
        assert_eq!(out.len(), 1);
        assert_eq!(rows(&out[0]), vec![("Y".into(), 2, 20_000), ("X".into(), 1, 20_000)]);
        let out = on_bound(op.as_mut(), Millis::MAX);
        check_batches(&expected, &out, &mut last);
        assert_eq!(rows(&out[0]), vec![("Z".into(), 1, 40_000)]);
        assert!(on_bound(op.as_mut(), Millis::MAX).is_empty());
    }

    #[test]
    fn items_keep_their_type_and_ties_follow_first_appearance() {
        let input = schema(vec![Field::new("N", DataType::Int32, true)]);
        let a = args("N", 10, 60);
        let expected = super::super::output_schema(TOP_K_ITEMS_TUMBLING, &a, &input).unwrap();
        assert_eq!(expected.field(0).data_type(), &DataType::Int32);
        assert_eq!(expected.field(1).name(), "ITEM_COUNT");
        let mut op = super::super::build(TOP_K_ITEMS_TUMBLING, &a, &input).unwrap();
        let b = batch(
            &input,
            vec![Arc::new(Int32Array::from(vec![7, 3, 3, 7, 5]))],
            vec![60_000, 60_001, 60_002, 60_003, 60_004],
        );
        assert!(on_batch(op.as_mut(), b).is_empty());
        let out = on_bound(op.as_mut(), 120_000);
        let mut last = Millis::MIN;
        check_batches(&expected, &out, &mut last);
        let r = rows(&out[0]);
        assert_eq!(
            r,
            vec![
                ("7".into(), 2, 120_000),
                ("3".into(), 2, 120_000),
                ("5".into(), 1, 120_000)
            ]
        );
    }

    #[test]
    fn arguments_are_validated() {
        let input = schema(vec![Field::new("TICKER", DataType::Utf8, true)]);
        let e = TopKConfig::parse(&args("ticker", 5, 60), &input).unwrap_err();
        assert!(
            e.contains("no column 'ticker'") && e.contains("did you mean 'TICKER'"),
            "{e}"
        );
        let e = TopKConfig::parse(&args("TICKER", 0, 60), &input).unwrap_err();
        assert!(e.contains("argument K"), "{e}");
        let e = TopKConfig::parse(&args("TICKER", 5, 3601), &input).unwrap_err();
        assert!(e.contains("argument windowSeconds"), "{e}");
        let e = TopKConfig::parse(&args("TICKER", 5, 60)[..2], &input).unwrap_err();
        assert!(e.contains("expected a cursor and 3"), "{e}");
    }

    #[test]
    fn sketch_state_survives_a_checkpoint() {
        use super::super::test_util::{Step, check_restore, run_steps};
        let input = schema(vec![Field::new("N", DataType::Int64, true)]);
        let a = args("N", 2, 60);
        let make = || -> Box<dyn Operator> {
            let mut op = TopKOp::new(TopKConfig::parse(&a, &input).unwrap(), &input).unwrap();
            op.counter = Counter::new(3);
            Box::new(op)
        };
        let steps: Vec<Step> = (0..6i64)
            .map(|b| {
                let items: Vec<i64> = (0..50).map(|i| if i % 3 == 0 { 7 } else { b * 100 + i }).collect();
                Step::Batch(batch(
                    &input,
                    vec![Arc::new(Int64Array::from(items))],
                    vec![1_000 + b; 50],
                ))
            })
            .chain([Step::Bound(60_000)])
            .collect();
        for split in [1, 3, 6] {
            check_restore(&make, &steps, split);
        }
        let out = run_steps(make().as_mut(), &steps);
        let r = rows(&out[0]);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].0, "7");
        assert!(r[0].1 >= 102, "{r:?}");
    }

    #[test]
    fn space_saving_keeps_heavy_hitters_beyond_capacity() {
        let mut c = Counter::new(4);
        // A heavy item among many distinct ones.
        for i in 0..200u32 {
            c.add(b"heavy");
            c.add(&i.to_le_bytes());
        }
        let top = c.top(1);
        assert_eq!(&*c.keys[top[0]], b"heavy");
        assert!(c.counts[top[0]] >= 200);
        assert_eq!(c.keys.len(), 4);
    }
}
