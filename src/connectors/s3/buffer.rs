//! Buffering hints (Firehose's BufferingHints): rows wait until the buffer reaches its
//! size or its first row has waited the interval, whichever comes first, or shutdown.
//!
//! The size is counted in the rows' text lines ([`Rows`]) and a full buffer is cut at a
//! row boundary, so an object never holds more than the size (a single larger row makes
//! an object of its own). The cut depends only on the sequence of rows, never on how
//! they were batched: exactly-once mode relies on it to split a replayed epoch into the
//! same objects.

use std::time::Duration;

use tokio::time::Instant;

use super::object::Rows;
use crate::error::Result;

pub struct Buffer {
    parts: Vec<Rows>,
    bytes: usize,
    rows: usize,
    /// When the first row arrived: the interval counts from it.
    opened: Option<Instant>,
    limit: usize,
    interval: Duration,
}

impl Buffer {
    pub fn new(limit: usize, interval: Duration) -> Self {
        Buffer {
            parts: Vec::new(),
            bytes: 0,
            rows: 0,
            opened: None,
            limit: limit.max(1),
            interval,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The rows held, for a checkpoint.
    pub fn parts(&self) -> &[Rows] {
        &self.parts
    }

    /// When the interval of the oldest buffered row runs out.
    pub fn deadline(&self) -> Option<Instant> {
        self.opened.map(|t| t + self.interval)
    }

    /// Adds `rows` and returns every buffer that became full, oldest first; the rest
    /// stays buffered.
    pub fn push(&mut self, rows: Rows) -> Result<Vec<Rows>> {
        let mut full = Vec::new();
        let mut start = 0;
        while start < rows.len() {
            let mut end = start;
            let mut bytes = self.bytes;
            // A row that does not fit ends the buffer, unless the buffer is empty.
            while end < rows.len() && (bytes + rows.size(end) <= self.limit || (self.rows == 0 && end == start)) {
                bytes += rows.size(end);
                end += 1;
            }
            if end > start {
                self.add(rows.slice(start, end), bytes);
            }
            start = end;
            if start < rows.len() || self.bytes >= self.limit {
                full.extend(self.take()?);
            }
        }
        Ok(full)
    }

    /// Puts back rows a checkpoint saved, as they were (a smaller size given since cuts
    /// them at the next push).
    pub fn restore(&mut self, rows: Rows) {
        let bytes = self.bytes + rows.text.len();
        self.add(rows, bytes);
    }

    fn add(&mut self, rows: Rows, bytes: usize) {
        self.rows += rows.len();
        self.bytes = bytes;
        self.opened.get_or_insert_with(Instant::now);
        self.parts.push(rows);
    }

    /// Empties the buffer: its rows as one, or None when it is empty.
    pub fn take(&mut self) -> Result<Option<Rows>> {
        self.bytes = 0;
        self.rows = 0;
        self.opened = None;
        let mut parts = std::mem::take(&mut self.parts);
        match parts.len() {
            0 => Ok(None),
            1 => Ok(parts.pop()),
            _ => Rows::concat(parts).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::s3::config::ObjectFormat;
    use datafusion::arrow::array::{Int64Array, RecordBatch, TimestampMillisecondArray};
    use std::sync::Arc;

    /// Rows whose JSON lines are `{"V":n}\n`: 8 bytes for n < 10, 9 for n < 100.
    fn rows(values: std::ops::Range<i64>) -> Rows {
        let batch = RecordBatch::try_from_iter(vec![
            ("V", Arc::new(Int64Array::from_iter_values(values.clone())) as _),
            (
                "ROWTIME",
                Arc::new(TimestampMillisecondArray::from_iter_values(values)) as _,
            ),
        ])
        .unwrap();
        Rows::encode(ObjectFormat::Json, batch).unwrap()
    }

    fn sizes(full: &[Rows]) -> Vec<usize> {
        full.iter().map(|r| r.text.len()).collect()
    }

    #[test]
    fn full_buffers_are_cut_at_row_boundaries_within_the_size() {
        let mut b = Buffer::new(20, Duration::from_secs(60));
        assert!(b.push(rows(0..2)).unwrap().is_empty());
        assert_eq!(b.rows(), 2);
        assert!(b.deadline().is_some());
        // 16 bytes held; the third row (8) does not fit in 20
        let full = b.push(rows(2..7)).unwrap();
        assert_eq!(sizes(&full), vec![16, 16, 16]);
        assert_eq!(b.rows(), 1);
        let rest = b.take().unwrap().unwrap();
        assert_eq!(rest.text, b"{\"V\":6}\n");
        assert!(b.take().unwrap().is_none());
        assert!(b.deadline().is_none());
    }

    #[test]
    fn a_buffer_that_reaches_the_size_exactly_is_full_and_a_larger_row_stands_alone() {
        let mut b = Buffer::new(16, Duration::from_secs(60));
        assert_eq!(sizes(&b.push(rows(0..2)).unwrap()), vec![16]);
        let mut small = Buffer::new(5, Duration::from_secs(60));
        assert_eq!(sizes(&small.push(rows(0..3)).unwrap()), vec![8, 8, 8]);
    }

    #[test]
    fn the_cut_does_not_depend_on_batching() {
        let mut one = Buffer::new(30, Duration::from_secs(60));
        let mut many = Buffer::new(30, Duration::from_secs(60));
        let a: Vec<Vec<u8>> = one.push(rows(0..20)).unwrap().into_iter().map(|r| r.text).collect();
        let mut b = Vec::new();
        for i in 0..20 {
            b.extend(many.push(rows(i..i + 1)).unwrap().into_iter().map(|r| r.text));
        }
        assert_eq!(a, b);
        assert_eq!(one.take().unwrap().unwrap().text, many.take().unwrap().unwrap().text);
    }
}
