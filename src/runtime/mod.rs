//! Runs an application: one task per stream hub, per pump, per source and per sink,
//! connected by bounded tokio channels (back-pressure from a slow sink reaches the
//! sources).
//!
//! [`start`] builds a run in named steps: plan ([`crate::planner`]), open the state and
//! restore ([`restore`]), wire the outputs, the hubs, the pumps and the inputs, spawn
//! every task, and return a [`handle::RunningApp`] while the tasks run; [`join`] waits
//! for them and collects the outputs.

pub mod delivery;
pub mod handle;
pub mod hub;
pub mod metrics;
pub mod pump;
pub mod restore;
pub mod row_id;
pub mod tap;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatch;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::app::AppSpec;
use crate::connectors::formats::RecordDecoder;
use crate::connectors::registry::{SinkContext, check_destination, sink_for, source_for};
use crate::connectors::sink::Sink;
use crate::connectors::source::{Source, SourceContext};
use crate::engine::{RunOptions, RunOutput};
use crate::error::{ERROR_STREAM, Result, SluiceError};
use crate::operators::Message;
use crate::planner::{ApplicationPlan, plan_application};
use handle::{AppHandle, RunningApp, StreamInfo};
use hub::{Hub, StreamWriter};
use restore::Restored;
use tap::Taps;

const CHANNEL_CAPACITY: usize = 64;

/// Stops a background task when the run ends, however it ends.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
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

/// Runs `app` until every input has ended, returning the rows of the collected outputs.
pub async fn run_app(app: &AppSpec, options: RunOptions) -> Result<RunOutput> {
    start(app, options).await?.wait().await
}

/// Runs `app` until every input has ended or `shutdown` turns true.
pub async fn run_app_until(
    app: &AppSpec,
    options: RunOptions,
    mut shutdown: watch::Receiver<bool>,
) -> Result<RunOutput> {
    let running = start(app, options).await?;
    let handle = running.handle().clone();
    let _forward = AbortOnDrop(tokio::spawn(async move {
        if shutdown.wait_for(|stop| *stop).await.is_ok() {
            handle.stop();
        }
    }));
    running.wait().await
}

/// Starts `app`: plans it, restores its state, wires and spawns its tasks, and returns
/// its handle while it runs.
pub async fn start(app: &AppSpec, options: RunOptions) -> Result<RunningApp> {
    let mut plan = plan_application(app)?;
    check_outputs(app, &plan)?;
    // Reference data: planning knew the columns; the rows are read now, before anything
    // starts (KDA does not start an application whose reference data does not load).
    let tables = plan.references.clone();
    for table in &tables {
        table.load().await?;
    }
    let recovery_started = std::time::Instant::now();
    let restored = restore::open_and_restore(app, &options, &mut plan)?;
    let metrics = options
        .metrics
        .clone()
        .unwrap_or_else(|| Arc::new(metrics::Metrics::new(&app.name)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let taps = stream_taps(&plan);

    let mut run = Run::default();
    // Everything that can refuse the configuration comes before an output file is opened.
    let sources: Vec<Box<dyn Source>> = app
        .inputs
        .iter()
        .map(|i| source_for(&i.source))
        .collect::<Result<_>>()?;
    // Input transforms (KDA's Lambda preprocessor as HTTP), one per input, in order.
    let preprocessors = app
        .inputs
        .iter()
        .map(|i| crate::connectors::http::preprocess::for_input(i, &app.name))
        .collect::<Result<Vec<_>>>()?;
    run.background_tasks(&plan, &options, &metrics);
    let pump_inputs = wire_pump_inputs(&plan, &mut run);
    let schemas = plan
        .streams
        .iter()
        .map(|s| (s.name.clone(), Arc::clone(&s.schema)))
        .collect();
    let outputs = wire_outputs(app, &schemas, &options, &restored, &mut run).await?;
    let hubs = wire_hubs(app, &plan, &restored, &taps, &mut run)?;
    let error_tx = spawn_error_hub(&mut run, &taps, &metrics);
    let checkpoints = spawn_coordinator(app, &restored, &mut run, &metrics);
    spawn_outputs(outputs, &checkpoints, &metrics, &mut run);
    let mut writers = Writers::new(hubs.senders);
    for (hub, rx) in hubs.hubs {
        run.spawn(hub.run(rx, checkpoints.clone()));
    }
    for (pump, input) in std::mem::take(&mut plan.pumps).into_iter().zip(pump_inputs) {
        let out = writers.next(&pump.target);
        run.spawn(pump::run_pump(
            pump.pipeline,
            input,
            out,
            error_tx.clone(),
            checkpoints.clone(),
        ));
    }
    spawn_inputs(
        app,
        &plan,
        sources.into_iter().zip(preprocessors).collect(),
        InputWiring {
            options: &options,
            restored: &restored,
            checkpoints: &checkpoints,
            error_tx: &error_tx,
            stop: &stop_rx,
            metrics: &metrics,
        },
        &mut writers,
        &mut run,
    )?;
    // The run ends when every task has ended: this function's handles must not keep
    // channels open.
    drop((error_tx, checkpoints));
    let recovery = recovery_started.elapsed();
    if restored.store.is_some() {
        metrics.state_restored(recovery);
    }
    if restored.checkpoint.id > 0 {
        tracing::info!(recovery_ms = recovery.as_millis() as u64, "state restored");
    }

    let streams = plan.streams.iter().filter_map(|s| {
        taps.get(&s.name).map(|t| StreamInfo {
            name: s.name.clone(),
            schema: Arc::clone(&s.schema),
            taps: Arc::clone(t),
        })
    });
    let handle = AppHandle::new(
        &app.name,
        Arc::clone(&metrics),
        streams,
        plan.references.iter().cloned(),
        stop_tx,
    );
    Ok(RunningApp::new(handle, run, metrics))
}

/// The tasks of a run and what lives as long as they do. Dropping it aborts them all.
#[derive(Default)]
pub(crate) struct Run {
    tasks: JoinSet<Result<()>>,
    /// How many of `tasks` have not ended yet.
    live: Arc<std::sync::atomic::AtomicUsize>,
    /// Background work that ends with the run: the rate reporter, reference refreshes.
    guards: Vec<AbortOnDrop>,
    /// The batches of each `collect` output, for the caller.
    collected: Vec<(String, Arc<Mutex<Vec<RecordBatch>>>)>,
    /// Every task that keeps or passes on state takes part in checkpoints.
    participants: std::collections::BTreeSet<String>,
    /// Readers of each stream: pumps, then sinks.
    readers: HashMap<String, Vec<mpsc::Sender<Message>>>,
}

/// Counts a task as live until its future ends or is dropped.
struct LiveTask(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for LiveTask {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl Run {
    fn spawn(&mut self, task: impl std::future::Future<Output = Result<()>> + Send + 'static) {
        self.live.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let live = LiveTask(Arc::clone(&self.live));
        self.tasks.spawn(async move {
            let _live = live;
            task.await
        });
    }

    /// Whether every task has ended.
    pub(crate) fn finished(&self) -> bool {
        self.live.load(std::sync::atomic::Ordering::Acquire) == 0
    }

    /// The periodic report of rates and lag (on the clock only), and a refresh task per
    /// reference table with an interval. A refresh swaps the table's version between
    /// batches and changes no state or fingerprint.
    fn background_tasks(&mut self, plan: &ApplicationPlan, options: &RunOptions, metrics: &Arc<metrics::Metrics>) {
        if matches!(options.time, crate::engine::TimeMode::WallClock { .. }) {
            self.guards.push(AbortOnDrop(tokio::spawn(metrics::report(
                Arc::clone(metrics),
                std::time::Duration::from_secs(10),
            ))));
        }
        for table in &plan.references {
            let current = table.current();
            metrics.reference_loaded(table.table(), current.batch.num_rows(), current.version);
            if let Some(every) = table.spec().refresh_interval {
                self.guards
                    .push(AbortOnDrop(tokio::spawn(crate::planner::reference::refresh_every(
                        Arc::clone(table),
                        every,
                        Arc::clone(metrics),
                    ))));
            }
        }
    }
}

/// Every output names a stream the code creates, and a destination this build has.
fn check_outputs(app: &AppSpec, plan: &ApplicationPlan) -> Result<()> {
    for output in &app.outputs {
        if plan.stream(&output.stream).is_none() {
            let names: Vec<&str> = plan.streams.iter().map(|s| s.name.as_str()).collect();
            return Err(SluiceError::config(format!(
                "output stream \"{}\" is not created by the application code (streams: {})",
                output.stream,
                names.join(", ")
            )));
        }
        check_destination(output)?;
    }
    Ok(())
}

/// A tap list for every stream that carries rows (not reference tables).
fn stream_taps(plan: &ApplicationPlan) -> HashMap<String, Arc<Taps>> {
    plan.streams
        .iter()
        .filter(|s| s.kind != crate::planner::catalog::RelationKind::ReferenceTable)
        .map(|s| (s.name.clone(), Arc::new(Taps::default())))
        .collect()
}

/// An output ready to spawn: its sink, its channel from the stream's hub, its holdback
/// (exactly-once) and its checkpoint part.
struct WiredOutput {
    sink: Box<dyn Sink>,
    rx: mpsc::Receiver<Message>,
    holdback: Option<delivery::Holdback>,
    part: String,
    /// Whether the sink takes part in checkpoints: every output but `error_stream`'s.
    checkpointed: bool,
}

/// Builds every output's sink, restored from its saved part, and registers it as a
/// reader of its stream. Pumps are registered as readers first, so they come first.
async fn wire_outputs(
    app: &AppSpec,
    schemas: &HashMap<String, datafusion::arrow::datatypes::SchemaRef>,
    options: &RunOptions,
    restored: &Restored,
    run: &mut Run,
) -> Result<Vec<WiredOutput>> {
    let exactly_once = options.delivery == crate::engine::Delivery::ExactlyOnce;
    let mut wired = Vec::new();
    for (i, output) in app.outputs.iter().enumerate() {
        let part = format!("sink/{i}/{}", output.stream);
        // error_stream rows come from every task outside the barrier flow: its sinks
        // cannot align a checkpoint and would stall every one (at-least-once, always).
        let checkpointed = output.stream != ERROR_STREAM;
        if checkpointed {
            run.participants.insert(part.clone());
        }
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        run.readers.entry(output.stream.clone()).or_default().push(tx);
        // In exactly-once mode the saved part wraps the sink's own state (a file's length).
        // error_stream stays at-least-once: its rows do not travel with barriers.
        let saved = restored.checkpoint.parts.get(&part).map(|v| v.as_slice());
        let (holdback, saved) = match (exactly_once, schemas.get(&output.stream)) {
            (true, Some(schema)) if checkpointed => {
                let (holdback, inner) = delivery::Holdback::restore(&output.stream, schema, saved)?;
                (Some(holdback), inner)
            }
            _ => (None, saved.map(<[u8]>::to_vec)),
        };
        let ctx = SinkContext {
            app: &app.name,
            saved: saved.as_deref(),
            exactly_once: holdback.is_some(),
        };
        let (sink, collect) = sink_for(output, ctx).await?;
        if let Some(collect) = collect {
            run.collected.push((output.stream.clone(), collect.batches));
        }
        wired.push(WiredOutput {
            sink,
            rx,
            holdback,
            part,
            checkpointed,
        });
    }
    Ok(wired)
}

/// Each pump's channel from the hub of the stream it reads, in plan order. Pumps are
/// registered as readers before the sinks, so a hub hands its rows to them first.
fn wire_pump_inputs(plan: &ApplicationPlan, run: &mut Run) -> Vec<mpsc::Receiver<Message>> {
    plan.pumps
        .iter()
        .map(|pump| {
            let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
            run.readers.entry(pump.source.clone()).or_default().push(tx);
            run.participants.insert(format!("pump/{}", pump.name));
            rx
        })
        .collect()
}

/// The hubs of a run, before they are spawned.
struct WiredHubs {
    hubs: Vec<(Hub, mpsc::Receiver<(usize, Message)>)>,
    senders: HashMap<String, mpsc::Sender<(usize, Message)>>,
}

/// One hub per stream (not `error_stream`, not reference tables), restored from its part,
/// with its writers counted and its readers (pumps, then sinks) attached.
fn wire_hubs(
    app: &AppSpec,
    plan: &ApplicationPlan,
    restored: &Restored,
    taps: &HashMap<String, Arc<Taps>>,
    run: &mut Run,
) -> Result<WiredHubs> {
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
    let mut hubs = Vec::new();
    let mut senders = HashMap::new();
    for stream in plan.streams.iter().filter(|s| s.name != ERROR_STREAM) {
        let Some(stream_taps) = taps.get(&stream.name) else {
            continue; // a reference table
        };
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let mut hub = Hub::new(
            stream.name.clone(),
            Arc::clone(&stream.schema),
            writer_count.get(&stream.name).copied().unwrap_or(0),
            run.readers.remove(&stream.name).unwrap_or_default(),
            Arc::clone(stream_taps),
        );
        let part = format!("hub/{}", stream.name);
        if let Some(bytes) = restored.checkpoint.parts.get(&part) {
            hub.restore(bytes)?;
        }
        run.participants.insert(part);
        hubs.push((hub, rx));
        senders.insert(stream.name.clone(), tx);
    }
    Ok(WiredHubs { hubs, senders })
}

/// Hands out each stream's writer handles, numbered in the order the hub counts them.
struct Writers {
    senders: HashMap<String, mpsc::Sender<(usize, Message)>>,
    next: HashMap<String, usize>,
}

impl Writers {
    fn new(senders: HashMap<String, mpsc::Sender<(usize, Message)>>) -> Self {
        Writers {
            senders,
            next: HashMap::new(),
        }
    }

    fn next(&mut self, stream: &str) -> StreamWriter {
        let index = self.next.entry(stream.to_string()).or_default();
        let w = StreamWriter {
            index: *index,
            tx: self.senders[stream].clone(),
        };
        *index += 1;
        w
    }
}

/// The hub of `error_stream`: every source and pump sends its record errors there.
fn spawn_error_hub(
    run: &mut Run,
    taps: &HashMap<String, Arc<Taps>>,
    metrics: &Arc<metrics::Metrics>,
) -> mpsc::UnboundedSender<Vec<crate::error::ErrorRow>> {
    let (error_tx, error_rx) = mpsc::unbounded_channel();
    tokio::spawn(hub::run_error_hub(
        error_rx,
        run.readers.remove(ERROR_STREAM).unwrap_or_default(),
        taps.get(ERROR_STREAM).cloned().unwrap_or_default(),
        Arc::clone(metrics),
    ));
    error_tx
}

/// The checkpoint coordinator, when the run keeps state; its handle for every task.
fn spawn_coordinator(
    app: &AppSpec,
    restored: &Restored,
    run: &mut Run,
    metrics: &Arc<metrics::Metrics>,
) -> Option<crate::state::CheckpointHandle> {
    for input in &app.inputs {
        run.participants.insert(format!("source/{}", input.stream_names()[0]));
    }
    let (store, interval_ms) = restored.store.clone()?;
    let (mut coordinator, handle) = crate::state::Coordinator::new(
        store,
        std::mem::take(&mut run.participants),
        std::time::Duration::from_millis(interval_ms.max(10)),
        restored.checkpoint.id,
        Arc::clone(metrics),
    );
    // A finished run's last checkpoint covers its end, in both delivery modes: a
    // restart after a clean finish then resumes there instead of publishing again
    // every result since the last periodic checkpoint.
    coordinator.commit_final();
    run.spawn(coordinator.run());
    Some(handle)
}

fn spawn_outputs(
    outputs: Vec<WiredOutput>,
    checkpoints: &Option<crate::state::CheckpointHandle>,
    metrics: &Arc<metrics::Metrics>,
    run: &mut Run,
) {
    for output in outputs {
        let c = checkpoints
            .clone()
            .filter(|_| output.checkpointed)
            .map(|h| (h, output.part));
        match output.holdback {
            Some(held) => run.spawn(delivery::run_exactly_once(
                output.sink,
                held,
                output.rx,
                Arc::clone(metrics),
                c,
            )),
            None => run.spawn(delivery::run_at_least_once(
                output.sink,
                output.rx,
                Arc::clone(metrics),
                c,
            )),
        }
    }
}

/// An input's transform (KDA's Lambda preprocessor, over HTTP).
type Preprocessor = Arc<crate::connectors::http::preprocess::Preprocessor>;

/// What every input's ingest pipeline is wired to.
struct InputWiring<'a> {
    options: &'a RunOptions,
    restored: &'a Restored,
    checkpoints: &'a Option<crate::state::CheckpointHandle>,
    error_tx: &'a mpsc::UnboundedSender<Vec<crate::error::ErrorRow>>,
    stop: &'a watch::Receiver<bool>,
    metrics: &'a Arc<metrics::Metrics>,
}

/// Each input's source, behind its ingest pipeline: input transform, decoder, event
/// time, checkpoints, and writers onto its streams.
fn spawn_inputs(
    app: &AppSpec,
    plan: &ApplicationPlan,
    sources: Vec<(Box<dyn Source>, Option<Preprocessor>)>,
    wiring: InputWiring<'_>,
    writers: &mut Writers,
    run: &mut Run,
) -> Result<()> {
    for (input, (source, preprocessor)) in app.inputs.iter().zip(sources) {
        let names = input.stream_names();
        let decoder = RecordDecoder::new(&input.schema, &names[0])?;
        let outputs = names.iter().map(|n| writers.next(n)).collect();
        let ctx = SourceContext::new(
            names[0].clone(),
            outputs,
            decoder,
            wiring.error_tx.clone(),
            wiring.options.time.clone(),
            wiring.stop.clone(),
            Arc::clone(wiring.metrics),
        )
        .with_preprocessor(preprocessor);
        announce_time(&names[0], input.event_time.as_ref(), &wiring.options.time);
        for (column, mapping) in crate::connectors::formats::decode::unused_csv_mappings(&input.schema) {
            tracing::warn!(
                input = %names[0],
                "CSV fields are read by position, in the order the columns are declared: the mapping \
                 \"{mapping}\" of column {column} is not used"
            );
        }
        let ctx = match &input.event_time {
            Some(spec) => {
                let late = spec.late_stream.as_deref().map(|s| writers.next(s));
                let schema = plan
                    .stream(&names[0])
                    .map(|s| Arc::clone(&s.schema))
                    .ok_or_else(|| SluiceError::runtime(format!("input stream {} is not planned", names[0])))?;
                ctx.with_event_time(spec, schema, late)?
            }
            None => ctx,
        };
        let ctx = match wiring.checkpoints {
            Some(handle) => {
                let resume = wiring
                    .restored
                    .checkpoint
                    .parts
                    .get(&format!("source/{}", names[0]))
                    .cloned();
                ctx.with_checkpoints(handle.clone(), resume)?
            }
            None => ctx,
        };
        run.spawn(source.run(ctx));
    }
    Ok(())
}

/// Waits for every task of a run; on the first error, stops the others before returning
/// it. Then hands the collected outputs over.
pub(crate) async fn join(mut run: Run, metrics: Arc<metrics::Metrics>) -> Result<RunOutput> {
    while let Some(joined) = run.tasks.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                stop_every_task(&mut run.tasks).await;
                return Err(e);
            }
            Err(e) => {
                stop_every_task(&mut run.tasks).await;
                return Err(SluiceError::runtime(format!("a task failed: {e}")));
            }
        }
    }
    drop(std::mem::take(&mut run.guards));
    tracing::info!(
        records_in = metrics.records_in.load(std::sync::atomic::Ordering::Relaxed),
        rows_out = metrics.rows_out.load(std::sync::atomic::Ordering::Relaxed),
        error_rows = metrics.error_rows.load(std::sync::atomic::Ordering::Relaxed),
        "finished"
    );
    let mut output = RunOutput::default();
    for (stream, batches) in run.collected {
        let batches = std::mem::take(&mut *batches.lock().expect("collect sink lock"));
        output.streams.entry(stream).or_default().extend(batches);
    }
    Ok(output)
}
