//! A chain of operators run by one task (operator chaining, as Flink does): batches pass
//! from one operator to the next by a function call, not a channel.

use std::path::Path;

use datafusion::arrow::array::RecordBatch;

use super::{OpContext, Operator};
use crate::error::{ErrorRow, Result};
use crate::state::spill::SpillConfig;
use crate::time::Millis;

pub struct Pipeline {
    pub pump: String,
    ops: Vec<Box<dyn Operator>>,
}

impl Pipeline {
    pub fn new(pump: impl Into<String>, ops: Vec<Box<dyn Operator>>) -> Self {
        Pipeline { pump: pump.into(), ops }
    }

    /// Operator names, first to last (for `explain` and logs).
    pub fn describe(&self) -> Vec<&'static str> {
        self.ops.iter().map(|o| o.name()).collect()
    }

    pub fn on_batch(&mut self, batch: RecordBatch, errors: &mut Vec<ErrorRow>) -> Result<Vec<RecordBatch>> {
        self.run_from(0, vec![batch], errors)
    }

    /// Passes a rowtime bound down the chain; what an operator emits on the bound goes
    /// through the operators after it before they see the bound themselves.
    pub fn on_bound(&mut self, bound: Millis, errors: &mut Vec<ErrorRow>) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        for i in 0..self.ops.len() {
            let emitted = {
                let mut ctx = OpContext {
                    pump: &self.pump,
                    errors,
                };
                self.ops[i].on_bound(bound, &mut ctx)?
            };
            if !emitted.is_empty() {
                out.extend(self.run_from(i + 1, emitted, errors)?);
            }
        }
        Ok(out)
    }

    /// The input ended: each operator in turn emits what only the end completes.
    pub fn on_end(&mut self, errors: &mut Vec<ErrorRow>) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        for i in 0..self.ops.len() {
            let emitted = {
                let mut ctx = OpContext {
                    pump: &self.pump,
                    errors,
                };
                self.ops[i].on_end(&mut ctx)?
            };
            if !emitted.is_empty() {
                out.extend(self.run_from(i + 1, emitted, errors)?);
            }
        }
        Ok(out)
    }

    /// The bound the pump may announce downstream once the chain has seen `bound`: no
    /// later than what any operator may still emit (see [`Operator::emit_floor`]).
    pub fn forward_bound(&self, bound: Millis) -> Millis {
        self.ops.iter().filter_map(|o| o.emit_floor()).fold(bound, Millis::min)
    }

    /// How many of the chain's operators spill (take a share of the memory budget).
    pub fn spilling_operators(&self) -> usize {
        self.ops.iter().filter(|o| o.spills()).count()
    }

    /// Gives each spilling operator `budget_bytes` (None: unlimited) and the spill folder.
    pub fn set_memory_budget(&mut self, budget_bytes: Option<usize>, dir: &Path, app: &str) {
        for op in self.ops.iter_mut().filter(|o| o.spills()) {
            op.set_memory_budget(SpillConfig {
                budget_bytes,
                dir: dir.to_path_buf(),
                app: app.to_string(),
                pump: self.pump.clone(),
            });
        }
    }

    /// The state of every operator, framed in chain order.
    pub fn snapshot(&mut self) -> Result<Vec<u8>> {
        let parts = self
            .ops
            .iter_mut()
            .map(|op| op.snapshot())
            .collect::<Result<Vec<_>>>()?;
        Ok(crate::state::snapshot::frame(&parts))
    }

    /// Restores what [`Pipeline::snapshot`] saved. The chain must be the same one.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        let parts = crate::state::snapshot::unframe(bytes)?;
        if parts.len() != self.ops.len() {
            return Err(crate::SluiceError::runtime(format!(
                "the saved state of pump {} has {} operators, the plan has {}",
                self.pump,
                parts.len(),
                self.ops.len()
            )));
        }
        for (op, part) in self.ops.iter_mut().zip(parts) {
            if let Some(bytes) = part {
                op.restore(&bytes)?;
            }
        }
        Ok(())
    }

    fn run_from(
        &mut self,
        start: usize,
        batches: Vec<RecordBatch>,
        errors: &mut Vec<ErrorRow>,
    ) -> Result<Vec<RecordBatch>> {
        let mut current = batches;
        for op in &mut self.ops[start..] {
            if current.is_empty() {
                break;
            }
            let mut ctx = OpContext {
                pump: &self.pump,
                errors,
            };
            let mut next = Vec::with_capacity(current.len());
            for b in current {
                next.extend(op.on_batch(b, &mut ctx)?);
            }
            current = next;
        }
        Ok(current)
    }
}

/// Splits the application's memory budget evenly across every spilling operator of
/// every pump (an even split keeps the total bounded whatever the windows hold; an
/// operator with less state simply never reaches its share).
pub fn apply_memory_budget<'a>(
    pipelines: impl IntoIterator<Item = &'a mut Pipeline>,
    total_bytes: Option<usize>,
    dir: &Path,
    app: &str,
) {
    let pipelines: Vec<&mut Pipeline> = pipelines.into_iter().collect();
    let operators: usize = pipelines.iter().map(|p| p.spilling_operators()).sum();
    let share = total_bytes.map(|t| (t / operators.max(1)).max(1));
    for p in pipelines {
        p.set_memory_budget(share, dir, app);
    }
}
