//! Opening the state folder and restoring from its last checkpoint: the step of a run
//! between planning and wiring. The state's fingerprint says which application wrote it,
//! so another application's state is refused instead of misread.

use std::sync::Arc;

use crate::app::AppSpec;
use crate::engine::RunOptions;
use crate::error::{Result, SluiceError};
use crate::planner::ApplicationPlan;
use crate::state::{Checkpoint, CheckpointStore};

/// What a run resumes from: the open store and its checkpoint interval (with
/// `--state-dir`), and the checkpoint whose parts the tasks restore (empty when none).
pub struct Restored {
    pub store: Option<(Arc<CheckpointStore>, u64)>,
    pub checkpoint: Checkpoint,
}

/// Opens the state folder (if the run keeps state), sets the operators' memory budgets,
/// and restores every pump from the checkpoint to resume from.
pub fn open_and_restore(app: &AppSpec, options: &RunOptions, plan: &mut ApplicationPlan) -> Result<Restored> {
    let store = match &options.checkpoints {
        Some(c) => Some((open_state(app, c, options.delivery)?, c.interval_ms)),
        None => None,
    };
    if options.delivery == crate::engine::Delivery::ExactlyOnce && store.is_none() {
        return Err(SluiceError::config(
            "exactly-once output publishes rows when their checkpoint commits: it needs a state folder (--state-dir)",
        ));
    }
    let checkpoint = store
        .as_ref()
        .and_then(|((_, latest), _)| latest.clone())
        .unwrap_or_default();
    if checkpoint.id > 0 {
        tracing::info!(
            checkpoint = checkpoint.id,
            parts = checkpoint.parts.len(),
            "resuming from checkpoint"
        );
    }
    // Memory budgets before restoring: a restore spills what does not fit.
    crate::operators::pipeline::apply_memory_budget(
        plan.pumps.iter_mut().map(|p| &mut p.pipeline),
        options.memory_budget_bytes,
        &crate::state::spill::spill_root(options.checkpoints.as_ref().map(|c| c.state_dir.as_path())),
        &app.name,
    );
    for pump in &mut plan.pumps {
        if let Some(bytes) = checkpoint.parts.get(&format!("pump/{}", pump.name)) {
            pump.pipeline.restore(bytes)?;
        }
    }
    Ok(Restored {
        store: store.map(|((store, _), interval)| (store, interval)),
        checkpoint,
    })
}

/// What identifies an application's state: its code and the schemas of its inputs and
/// outputs. State written by another application is refused (FNV-1a, stable across
/// runs and builds). Exactly-once outputs save another part format, so the delivery mode
/// counts too (the default adds nothing, so older state stays valid).
fn fingerprint(app: &AppSpec, delivery: crate::engine::Delivery) -> String {
    let mut text = app.sql.clone();
    if delivery == crate::engine::Delivery::ExactlyOnce {
        text.push_str("|exactly-once");
    }
    for i in &app.inputs {
        text.push_str(&format!(
            "|in:{}:{:?}:{:?}",
            i.name_prefix,
            i.stream_names(),
            i.schema.column_defs()
        ));
        if let Some(e) = &i.event_time {
            text.push_str(&format!("|event-time:{e:?}"));
        }
        // Where the records come from: a saved position (a line count, a sequence number)
        // means nothing in another file or stream, so resuming there would skip records.
        text.push_str(&format!("|from:{}", source_identity(&i.source)));
    }
    // A reference table counts by name only: its rows (and so a refresh, or a new
    // location) change no saved state.
    for r in &app.references {
        text.push_str(&format!("|ref:{}", r.table));
    }
    for o in &app.outputs {
        text.push_str(&format!("|out:{}", o.stream));
    }
    let mut h: u64 = 0xcbf29ce484222325;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

/// What a source's saved position is a position in: the file (by its full path) or the
/// Kinesis stream. Settings that do not move positions (a generator's rate, endpoints,
/// polling) are left out, so changing them keeps the state.
fn source_identity(source: &crate::app::SourceSpec) -> String {
    use crate::app::SourceSpec;
    match source {
        SourceSpec::File { path, .. } | SourceSpec::Recorded { path, .. } => {
            let full = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
            format!("file:{}", full.display())
        }
        SourceSpec::Kinesis(c) => format!("kinesis:{}", c.connection.stream_name),
        SourceSpec::Generator { seed, .. } => format!("generator:{seed}"),
        SourceSpec::Stdin => "stdin".into(),
        SourceSpec::Channel(_) => "channel".into(),
        SourceSpec::Unsupported { kind, .. } => kind.clone(),
    }
}

/// Opens the state folder and returns the checkpoint to resume from, if any.
fn open_state(
    app: &AppSpec,
    options: &crate::engine::CheckpointOptions,
    delivery: crate::engine::Delivery,
) -> Result<(Arc<CheckpointStore>, Option<Checkpoint>)> {
    let store = CheckpointStore::open(&options.state_dir)?;
    let mine = fingerprint(app, delivery);
    match store.fingerprint()? {
        Some(theirs) if theirs != mine => {
            if !options.fresh {
                return Err(SluiceError::config(format!(
                    "the state in {} was written by a different application (its code, inputs or outputs changed); \
                     run with --fresh to discard that state and start from the beginning",
                    options.state_dir.display()
                )));
            }
            tracing::warn!(dir = %options.state_dir.display(), "discarding the state of a different application (--fresh)");
            store.clear()?;
        }
        _ if options.fresh => store.clear()?,
        _ => {}
    }
    store.set_fingerprint(&mine)?;
    let latest = store.latest()?;
    Ok((Arc::new(store), latest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_table_counts_by_name_only_in_the_fingerprint() {
        use crate::app::{RecordFormat, RecordSchema, ReferenceLocation, ReferenceSpec};
        let reference = |location: ReferenceLocation, every: Option<u64>| ReferenceSpec {
            table: "T".into(),
            schema: RecordSchema {
                columns: vec![],
                format: RecordFormat::Json { row_path: "$".into() },
            },
            location,
            skip_header_lines: 0,
            refresh_interval: every.map(std::time::Duration::from_secs),
        };
        let app = |r: ReferenceSpec| AppSpec {
            name: "a".into(),
            sql: "x".into(),
            inputs: vec![],
            references: vec![r],
            outputs: vec![],
        };
        let delivery = crate::engine::Delivery::AtLeastOnce;
        let file = fingerprint(&app(reference(ReferenceLocation::File("t.csv".into()), None)), delivery);
        let s3 = ReferenceLocation::S3 {
            connection: crate::connectors::s3::S3Connection::for_bucket("b").unwrap(),
            key: "t.csv".into(),
        };
        assert_eq!(fingerprint(&app(reference(s3, Some(60))), delivery), file);
        let mut other = reference(ReferenceLocation::File("t.csv".into()), None);
        other.table = "U".into();
        assert_ne!(fingerprint(&app(other), delivery), file);
    }
}
