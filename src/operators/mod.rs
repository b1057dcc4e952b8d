//! Streaming operators, one file each. An operator consumes batches of one stream and
//! emits batches; every batch carries ROWTIME as its last column (see ARCHITECTURE.md).
//!
//! Operators are plain synchronous state machines: the runtime owns the tasks and
//! channels, so an operator can be tested by calling it directly.

pub mod analytic;
pub mod eval;
pub mod filter;
pub mod insert;
pub mod keyed_spill;
pub mod lookup_join;
pub mod pipeline;
pub mod project;
pub mod rowtime_override;
pub mod session_window;
pub mod sliding;
pub mod sort;
pub mod stagger;
pub mod stream_join;
pub mod t_sort;
pub mod table_functions;
#[cfg(test)]
mod test_input;
pub mod time_probe;
pub mod tumbling;
pub mod window_aggregate;
pub mod window_assign;

use datafusion::arrow::array::RecordBatch;

use crate::error::{ErrorRow, Result};
use crate::time::Millis;

/// What flows on a channel between tasks.
#[derive(Debug, Clone)]
pub enum Message {
    /// Rows of a stream, non-decreasing in ROWTIME (the last column).
    Data(RecordBatch),
    /// A rowtime bound: no later row of this stream has a smaller ROWTIME. Bounds close
    /// windows when input goes quiet.
    Bound(Millis),
    /// Checkpoint barrier N: every row before it belongs to checkpoint N, every row
    /// after it to a later one. A task saves its state when it has seen barrier N on all
    /// of its inputs (see `crate::state`).
    Barrier(u64),
    /// The stream has ended; nothing follows.
    End,
}

/// Per-call context: who is running (for `error_stream`'s PUMP_NAME) and where record
/// errors go.
pub struct OpContext<'a> {
    pub pump: &'a str,
    pub errors: &'a mut Vec<ErrorRow>,
}

pub trait Operator: Send {
    /// A short name for logs and plans (`Filter`, `TumblingAggregate`, ...).
    fn name(&self) -> &'static str;

    /// Processes a batch and returns the batches it emits, in ROWTIME order.
    fn on_batch(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>>;

    /// Time reached `bound`. Windowed operators emit what this closes.
    fn on_bound(&mut self, _bound: Millis, _ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        Ok(vec![])
    }

    /// The input has ended: nothing follows, not even rows at the time already reached.
    /// An operator that holds rows of the current instant for peers still to come (the
    /// stream join) emits them now. Windows that end later stay open: time did not pass
    /// them.
    fn on_end(&mut self, _ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        Ok(vec![])
    }

    /// The smallest ROWTIME this operator may still emit, when that can be below the
    /// time its input has reached (a streaming ORDER BY stamps a held group with the
    /// group's start; an `AS ROWTIME` override stamps rows with their own time). The pump
    /// never announces a bound past it, so downstream windows and merges stay correct.
    fn emit_floor(&self) -> Option<Millis> {
        None
    }

    /// The operator's state for a checkpoint; None for a stateless operator. Taking a
    /// snapshot must not change what the operator emits afterwards.
    fn snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }

    /// Restores the state a [`Operator::snapshot`] saved (before any input arrives).
    fn restore(&mut self, _state: &[u8]) -> Result<()> {
        Ok(())
    }

    /// Whether the operator's state grows with its input and can spill to disk: such an
    /// operator takes a share of the application's memory budget.
    fn spills(&self) -> bool {
        false
    }

    /// Sets the operator's memory budget and spill folder. Called once, before
    /// [`Operator::restore`] and before any input.
    fn set_memory_budget(&mut self, _config: crate::state::spill::SpillConfig) {}
}

/// The ROWTIME column of a stream batch (its last column).
pub fn rowtime_column(batch: &RecordBatch) -> &datafusion::arrow::array::TimestampMillisecondArray {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::TimestampMillisecondType;
    batch
        .column(batch.num_columns() - 1)
        .as_primitive::<TimestampMillisecondType>()
}
