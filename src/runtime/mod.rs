//! Runs an application: one task per stream hub, per pump, per source and per sink,
//! connected by bounded tokio channels (back-pressure from a slow sink reaches the
//! sources).

pub mod delivery;
pub mod hub;
pub mod metrics;
pub mod pump;
pub mod row_id;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::app::{AppSpec, DestinationSpec, SourceSpec};
use crate::connectors::file::{FileSource, file_sink};
use crate::connectors::formats::RecordDecoder;
use crate::connectors::generator::GeneratorSource;
use crate::connectors::memory::CollectSink;
use crate::connectors::sink::{Sink, run_sink};
use crate::connectors::source::{Source, SourceContext};
use crate::connectors::stdio::{StdinSource, stdout_sink};
use crate::engine::{RunOptions, RunOutput};
use crate::error::{ERROR_STREAM, Result, SluiceError};
use crate::operators::Message;
use crate::planner::plan_application;
use hub::{Hub, StreamWriter};

const CHANNEL_CAPACITY: usize = 64;

/// Stops a background task when the run ends, however it ends.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn source_for(spec: &SourceSpec) -> Result<Box<dyn Source>> {
    Ok(match spec {
        SourceSpec::File {
            path,
            skip_header_lines,
        } => Box::new(FileSource {
            path: path.clone(),
            recorded: false,
            skip_header_lines: *skip_header_lines,
        }),
        SourceSpec::Recorded {
            path,
            skip_header_lines,
        } => Box::new(FileSource {
            path: path.clone(),
            recorded: true,
            skip_header_lines: *skip_header_lines,
        }),
        SourceSpec::Stdin => Box::new(StdinSource),
        SourceSpec::Generator { rate, seed, limit } => Box::new(GeneratorSource {
            rate: *rate,
            seed: *seed,
            limit: *limit,
        }),
        SourceSpec::Kinesis(config) => Box::new(crate::connectors::kinesis::KinesisSource { config: config.clone() }),
        SourceSpec::Unsupported { kind, detail } => {
            return Err(SluiceError::config(format!(
                "input source {kind} is not supported by this build: {detail}"
            )));
        }
    })
}

/// Says at start what each input's ROWTIME is, so a user who meant event time and forgot
/// `[inputs.event_time]` learns it before windows close on the wrong clock.
fn announce_time(stream: &str, event_time: Option<&crate::app::EventTimeSpec>, time: &crate::engine::TimeMode) {
    match (event_time, time) {
        (Some(e), _) => tracing::info!(
            input = stream,
            "ROWTIME is event time from column {} (watermark {} ms behind the newest; later rows are late{})",
            e.column,
            e.max_delay_ms,
            e.late_stream
                .as_deref()
                .map(|s| format!(" and go to \"{s}\""))
                .unwrap_or_else(|| " and go to error_stream".into())
        ),
        (None, crate::engine::TimeMode::Recorded { .. }) => {
            tracing::debug!(input = stream, "ROWTIME comes from the recording")
        }
        (None, _) => tracing::info!(
            input = stream,
            "ROWTIME is the ingest clock; to run on a time column of the records, set [inputs.event_time] column = \"...\""
        ),
    }
}

/// Aborts every task and waits until each has ended. Aborting only asks: a task running
/// on another thread (a RocksDB write in the checkpoint coordinator) goes on until its
/// next await, and the process exiting on the error meanwhile tears RocksDB down under
/// it (SIGABRT, SIGSEGV). Once every task has ended, their handles on the state store
/// are dropped and RocksDB closes cleanly before the error reaches the caller.
async fn stop_every_task(tasks: &mut tokio::task::JoinSet<Result<()>>) {
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
}

/// Runs `app` until every input has ended (or Ctrl-C / `shutdown`), returning the rows
/// of the collected outputs.
pub async fn run_app(app: &AppSpec, options: RunOptions) -> Result<RunOutput> {
    let (_shutdown_tx, shutdown_rx) = watch::channel(false);
    run_app_until(app, options, shutdown_rx).await
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
        SourceSpec::Unsupported { kind, .. } => kind.clone(),
    }
}

/// Opens the state folder and returns the checkpoint to resume from, if any.
fn open_state(
    app: &AppSpec,
    options: &crate::engine::CheckpointOptions,
    delivery: crate::engine::Delivery,
) -> Result<(Arc<crate::state::CheckpointStore>, Option<crate::state::Checkpoint>)> {
    let store = crate::state::CheckpointStore::open(&options.state_dir)?;
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

pub async fn run_app_until(app: &AppSpec, options: RunOptions, shutdown: watch::Receiver<bool>) -> Result<RunOutput> {
    let mut plan = plan_application(app)?;
    let recovery_started = std::time::Instant::now();
    let state = match &options.checkpoints {
        Some(c) => Some((open_state(app, c, options.delivery)?, c.interval_ms)),
        None => None,
    };
    let exactly_once = options.delivery == crate::engine::Delivery::ExactlyOnce;
    if exactly_once && state.is_none() {
        return Err(SluiceError::config(
            "exactly-once output publishes rows when their checkpoint commits: it needs a state folder (--state-dir)",
        ));
    }
    let restored = state
        .as_ref()
        .and_then(|((_, latest), _)| latest.clone())
        .unwrap_or_default();
    if restored.id > 0 {
        tracing::info!(
            checkpoint = restored.id,
            parts = restored.parts.len(),
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
        if let Some(bytes) = restored.parts.get(&format!("pump/{}", pump.name)) {
            pump.pipeline.restore(bytes)?;
        }
    }
    // Every task that keeps or passes on state takes part in checkpoints.
    let mut participants = std::collections::BTreeSet::new();
    let metrics = options
        .metrics
        .clone()
        .unwrap_or_else(|| Arc::new(metrics::Metrics::new(&app.name)));
    let reporter = matches!(options.time, crate::engine::TimeMode::WallClock { .. }).then(|| {
        AbortOnDrop(tokio::spawn(metrics::report(
            Arc::clone(&metrics),
            std::time::Duration::from_secs(10),
        )))
    });
    // Reference tables: the HTTP server refreshes them on demand (through `metrics`);
    // one with an interval has a refresh task that ends with the run. A refresh swaps
    // the table's version between batches and changes no state or fingerprint.
    metrics.references.set(plan.references.iter().cloned());
    let _refreshers: Vec<AbortOnDrop> = plan
        .references
        .iter()
        .filter_map(|table| {
            let current = table.current();
            metrics.reference_loaded(table.table(), current.batch.num_rows(), current.version);
            let every = table.spec().refresh_interval?;
            Some(AbortOnDrop(tokio::spawn(crate::planner::reference::refresh_every(
                Arc::clone(table),
                every,
                Arc::clone(&metrics),
            ))))
        })
        .collect();
    for output in &app.outputs {
        if plan.stream(&output.stream).is_none() {
            let names: Vec<&str> = plan.streams.iter().map(|s| s.name.as_str()).collect();
            return Err(SluiceError::config(format!(
                "output stream \"{}\" is not created by the application code (streams: {})",
                output.stream,
                names.join(", ")
            )));
        }
        if let DestinationSpec::Unsupported { kind, detail } = &output.destination {
            return Err(SluiceError::config(format!(
                "output destination {kind} is not supported by this build: {detail}"
            )));
        }
    }
    let sources: Vec<Box<dyn Source>> = app
        .inputs
        .iter()
        .map(|i| source_for(&i.source))
        .collect::<Result<_>>()?;
    // Input transforms (KDA's Lambda preprocessor as HTTP), one per input, in order.
    let mut preprocessors = app
        .inputs
        .iter()
        .map(|i| crate::connectors::http::preprocess::for_input(i, &app.name))
        .collect::<Result<Vec<_>>>()?
        .into_iter();

    // Readers of each stream: pumps, then sinks.
    let mut readers: HashMap<String, Vec<mpsc::Sender<Message>>> = HashMap::new();
    let mut pump_inputs = Vec::new();
    for pump in &plan.pumps {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        readers.entry(pump.source.clone()).or_default().push(tx);
        pump_inputs.push(rx);
    }
    let mut tasks: JoinSet<Result<()>> = JoinSet::new();
    let mut sinks = Vec::new();
    let mut collected = Vec::new();
    let mut sink_parts = Vec::new();
    for (i, output) in app.outputs.iter().enumerate() {
        let part = format!("sink/{i}/{}", output.stream);
        // error_stream rows come from every task outside the barrier flow: its sinks
        // cannot align a checkpoint and would stall every one (at-least-once, always).
        if output.stream != ERROR_STREAM {
            participants.insert(part.clone());
        }
        sink_parts.push(part);
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        readers.entry(output.stream.clone()).or_default().push(tx);
        // In exactly-once mode the saved part wraps the sink's own state (a file's length).
        // error_stream stays at-least-once: its rows do not travel with barriers.
        let saved = restored
            .parts
            .get(sink_parts.last().expect("pushed above"))
            .map(|v| v.as_slice());
        let (holdback, saved) = match (exactly_once, plan.stream(&output.stream)) {
            (true, Some(stream)) if output.stream != ERROR_STREAM => {
                let (holdback, inner) = delivery::Holdback::restore(&output.stream, &stream.schema, saved)?;
                (Some(holdback), inner)
            }
            _ => (None, saved.map(<[u8]>::to_vec)),
        };
        let sink: Box<dyn Sink> = match &output.destination {
            DestinationSpec::Stdout => Box::new(stdout_sink(output.format)),
            DestinationSpec::File { path } => Box::new(file_sink(path, output.format, saved.as_deref()).await?),
            DestinationSpec::Collect => {
                let sink = CollectSink::default();
                collected.push((output.stream.clone(), Arc::clone(&sink.batches)));
                Box::new(sink)
            }
            DestinationSpec::Kinesis(config) => Box::new(crate::connectors::kinesis::KinesisSink::new(
                config.clone(),
                output.format,
            )),
            DestinationSpec::Http(config) => Box::new(crate::connectors::http::HttpSink::new(
                config.clone(),
                output.format,
                &output.stream,
                &app.name,
            )?),
            DestinationSpec::S3(config) => Box::new(crate::connectors::s3::S3Sink::new(
                config.clone(),
                &app.name,
                &output.stream,
                output.format,
                holdback.is_some(),
                saved.as_deref(),
            )?),
            DestinationSpec::Unsupported { .. } => unreachable!("rejected above"),
        };
        sinks.push((sink, rx, holdback));
    }

    // Writers of each stream: the input feeding it, or the pumps inserting into it.
    let mut writer_count: HashMap<String, usize> = HashMap::new();
    for input in &app.inputs {
        for name in input.stream_names() {
            *writer_count.entry(name).or_default() += 1;
        }
        if let Some(late) = input.event_time.as_ref().and_then(|e| e.late_stream.clone()) {
            *writer_count.entry(late).or_default() += 1;
        }
    }
    for pump in &plan.pumps {
        *writer_count.entry(pump.target.clone()).or_default() += 1;
    }
    let mut hubs: HashMap<String, mpsc::Sender<(usize, Message)>> = HashMap::new();
    let mut hub_tasks = Vec::new();
    for stream in plan.streams.iter().filter(|s| s.name != ERROR_STREAM) {
        if stream.kind == crate::planner::catalog::RelationKind::ReferenceTable {
            continue;
        }
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let mut hub = Hub::new(
            stream.name.clone(),
            Arc::clone(&stream.schema),
            writer_count.get(&stream.name).copied().unwrap_or(0),
            readers.remove(&stream.name).unwrap_or_default(),
        );
        let part = format!("hub/{}", stream.name);
        if let Some(bytes) = restored.parts.get(&part) {
            hub.restore(bytes)?;
        }
        participants.insert(part);
        hub_tasks.push((hub, rx));
        hubs.insert(stream.name.clone(), tx);
    }
    let mut next_writer: HashMap<String, usize> = HashMap::new();
    let mut writer_for = |stream: &str| -> StreamWriter {
        let index = next_writer.entry(stream.to_string()).or_default();
        let w = StreamWriter {
            index: *index,
            tx: hubs[stream].clone(),
        };
        *index += 1;
        w
    };

    let (error_tx, error_rx) = mpsc::unbounded_channel();
    tokio::spawn(hub::run_error_hub(
        error_rx,
        readers.remove(ERROR_STREAM).unwrap_or_default(),
        Arc::clone(&metrics),
    ));

    for pump in &plan.pumps {
        participants.insert(format!("pump/{}", pump.name));
    }
    for input in &app.inputs {
        participants.insert(format!("source/{}", input.stream_names()[0]));
    }
    let checkpoints_on = state.is_some();
    let checkpoints = match state {
        Some(((store, _), interval_ms)) => {
            let (mut coordinator, handle) = crate::state::Coordinator::new(
                store,
                participants,
                std::time::Duration::from_millis(interval_ms.max(10)),
                restored.id,
                Arc::clone(&metrics),
            );
            // A finished run's last checkpoint covers its end, in both delivery modes: a
            // restart after a clean finish then resumes there instead of publishing again
            // every result since the last periodic checkpoint.
            coordinator.commit_final();
            tasks.spawn(coordinator.run());
            Some(handle)
        }
        None => None,
    };
    for ((sink, rx, holdback), part) in sinks.into_iter().zip(sink_parts) {
        let c = checkpoints
            .clone()
            .filter(|_| !part.ends_with(&format!("/{ERROR_STREAM}")))
            .map(|h| (h, part));
        match holdback {
            Some(held) => tasks.spawn(delivery::run_exactly_once(sink, held, rx, Arc::clone(&metrics), c)),
            None => tasks.spawn(run_sink(sink, rx, Arc::clone(&metrics), c)),
        };
    }
    for (hub, rx) in hub_tasks {
        tasks.spawn(hub.run(rx, checkpoints.clone()));
    }
    for (pump, input) in std::mem::take(&mut plan.pumps).into_iter().zip(pump_inputs) {
        let out = writer_for(&pump.target);
        tasks.spawn(pump::run_pump(
            pump.pipeline,
            input,
            out,
            error_tx.clone(),
            checkpoints.clone(),
        ));
    }
    for (input, source) in app.inputs.iter().zip(sources) {
        let names = input.stream_names();
        let decoder = RecordDecoder::new(&input.schema, &names[0])?;
        let outputs = names.iter().map(|n| writer_for(n)).collect();
        let ctx = SourceContext::new(
            names[0].clone(),
            outputs,
            decoder,
            error_tx.clone(),
            options.time.clone(),
            shutdown.clone(),
            Arc::clone(&metrics),
        )
        .with_preprocessor(preprocessors.next().flatten());
        announce_time(&names[0], input.event_time.as_ref(), &options.time);
        let ctx = match &input.event_time {
            Some(spec) => {
                let late = spec.late_stream.as_deref().map(&mut writer_for);
                let schema = plan
                    .stream(&names[0])
                    .map(|s| Arc::clone(&s.schema))
                    .ok_or_else(|| SluiceError::runtime(format!("input stream {} is not planned", names[0])))?;
                ctx.with_event_time(spec, schema, late)?
            }
            None => ctx,
        };
        let ctx = match &checkpoints {
            Some(handle) => {
                let resume = restored.parts.get(&format!("source/{}", names[0])).cloned();
                ctx.with_checkpoints(handle.clone(), resume)?
            }
            None => ctx,
        };
        tasks.spawn(source.run(ctx));
    }
    // The run ends when every task has ended: this function's handles must not keep
    // channels open.
    drop(error_tx);
    drop(checkpoints);
    let recovery = recovery_started.elapsed();
    if checkpoints_on {
        metrics.state_restored(recovery);
    }
    if restored.id > 0 {
        tracing::info!(recovery_ms = recovery.as_millis() as u64, "state restored");
    }

    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                stop_every_task(&mut tasks).await;
                return Err(e);
            }
            Err(e) => {
                stop_every_task(&mut tasks).await;
                return Err(SluiceError::runtime(format!("a task failed: {e}")));
            }
        }
    }
    drop(reporter);
    tracing::info!(
        records_in = metrics.records_in.load(std::sync::atomic::Ordering::Relaxed),
        rows_out = metrics.rows_out.load(std::sync::atomic::Ordering::Relaxed),
        error_rows = metrics.error_rows.load(std::sync::atomic::Ordering::Relaxed),
        "finished"
    );
    let mut output = RunOutput::default();
    for (stream, batches) in collected {
        let batches = std::mem::take(&mut *batches.lock().expect("collect sink lock"));
        output.streams.entry(stream).or_default().extend(batches);
    }
    Ok(output)
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
