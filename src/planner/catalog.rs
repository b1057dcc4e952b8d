//! The names a query can see: in-application streams and reference tables, and every
//! function (DataFusion's own plus sluice's KDA functions). This is the
//! `ContextProvider` DataFusion's SQL planner resolves names against.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{Result as DFResult, TableReference, plan_err};
use datafusion::execution::FunctionRegistry;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::planner::{ContextProvider, ExprPlanner};
use datafusion::logical_expr::{AggregateUDF, HigherOrderUDF, LogicalTableSource, ScalarUDF, TableSource, WindowUDF};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationKind {
    /// An in-application input stream (has APPROXIMATE_ARRIVAL_TIME).
    InputStream,
    /// A stream created by `CREATE STREAM`.
    Stream,
    /// A reference table: static rows, no ROWTIME.
    ReferenceTable,
}

#[derive(Debug, Clone)]
pub struct Relation {
    pub schema: SchemaRef,
    pub kind: RelationKind,
}

pub struct Catalog {
    relations: HashMap<String, Relation>,
    /// The rows of each reference table: loaded when the application is planned, and
    /// replaced by refreshes while it runs (each join reads the current version).
    table_data: HashMap<String, Arc<super::reference::ReferenceData>>,
    /// The internal streams of window table functions (TUMBLE, HOP, ...), for the
    /// GROUP BY over them.
    window_streams: HashMap<String, super::window_tvf::WindowStream>,
    /// The column each input stream with `[inputs.event_time]` takes its ROWTIME from.
    /// Only the input's own streams: its late stream has the same columns, but its
    /// ROWTIME is the watermark that found a row late, not the row's event time.
    event_time_columns: HashMap<String, String>,
    /// The late streams of inputs with event time (their rows' ROWTIME is a watermark).
    late_streams: std::collections::HashSet<String>,
    state: SessionState,
}

impl Catalog {
    pub fn new() -> crate::Result<Self> {
        let mut state = SessionStateBuilder::new().with_default_features().build();
        // CURRENT_TIMESTAMP and its kin are fixed at the application's start.
        state.execution_props_mut().query_execution_start_time = Some(chrono::Utc::now());
        for udf in crate::functions::all_udfs() {
            state.register_udf(udf)?;
        }
        for udf in super::markers::marker_udfs() {
            state.register_udf(udf)?;
        }
        // `interval * n`, which DataFusion's coercion has no rule for.
        state.register_expr_planner(Arc::new(crate::functions::interval_multiply::IntervalArithmeticPlanner))?;
        for udwf in crate::operators::analytic::markers::marker_udwfs() {
            state.register_udwf(std::sync::Arc::new(udwf))?;
        }
        Ok(Catalog {
            relations: HashMap::new(),
            table_data: HashMap::new(),
            window_streams: HashMap::new(),
            event_time_columns: HashMap::new(),
            late_streams: Default::default(),
            state,
        })
    }

    pub fn add(&mut self, name: &str, relation: Relation) {
        self.relations.insert(name.to_string(), relation);
    }

    pub fn set_table_data(&mut self, name: &str, data: Arc<super::reference::ReferenceData>) {
        self.table_data.insert(name.to_string(), data);
    }

    pub fn table_data(&self, name: &str) -> Option<&Arc<super::reference::ReferenceData>> {
        self.table_data.get(name)
    }

    pub fn set_window_stream(&mut self, name: &str, window: super::window_tvf::WindowStream) {
        self.window_streams.insert(name.to_string(), window);
    }

    pub fn window_stream(&self, name: &str) -> Option<&super::window_tvf::WindowStream> {
        self.window_streams.get(name)
    }

    /// Input stream `stream` takes its ROWTIME from its column `column`.
    pub fn set_event_time_column(&mut self, stream: &str, column: &str) {
        self.event_time_columns.insert(stream.to_string(), column.to_string());
    }

    /// The column input stream `stream` takes its ROWTIME from, when it runs on event time.
    pub fn event_time_column(&self, stream: &str) -> Option<&str> {
        self.event_time_columns.get(stream).map(String::as_str)
    }

    /// `stream` is the late stream of an input with event time.
    pub fn set_late_stream(&mut self, stream: &str) {
        self.late_streams.insert(stream.to_string());
    }

    pub fn is_late_stream(&self, stream: &str) -> bool {
        self.late_streams.contains(stream)
    }

    pub fn get(&self, name: &str) -> Option<&Relation> {
        self.relations.get(name)
    }

    pub fn state(&self) -> &SessionState {
        &self.state
    }
}

impl ContextProvider for Catalog {
    fn get_table_source(&self, name: TableReference) -> DFResult<Arc<dyn TableSource>> {
        match self.relations.get(name.table()) {
            Some(r) => Ok(Arc::new(LogicalTableSource::new(Arc::clone(&r.schema)))),
            None => {
                let hint = self
                    .relations
                    .keys()
                    .find(|k| k.eq_ignore_ascii_case(name.table()))
                    .map(|k| {
                        format!(" (did you mean \"{k}\"? quoted names keep their case, unquoted names are upper-cased)")
                    })
                    .unwrap_or_default();
                plan_err!("stream or table '{}' not found{hint}", name.table())
            }
        }
    }

    fn get_expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        self.state.expr_planners()
    }

    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        self.state.scalar_functions().get(&name.to_lowercase()).cloned()
    }

    fn get_higher_order_meta(&self, name: &str) -> Option<Arc<HigherOrderUDF>> {
        self.state.higher_order_functions().get(&name.to_lowercase()).cloned()
    }

    fn get_aggregate_meta(&self, name: &str) -> Option<Arc<AggregateUDF>> {
        self.state.aggregate_functions().get(&name.to_lowercase()).cloned()
    }

    fn get_window_meta(&self, name: &str) -> Option<Arc<WindowUDF>> {
        self.state.window_functions().get(&name.to_lowercase()).cloned()
    }

    fn get_variable_type(&self, _variable_names: &[String]) -> Option<DataType> {
        None
    }

    fn options(&self) -> &ConfigOptions {
        self.state.config_options()
    }

    fn udf_names(&self) -> Vec<String> {
        self.state.scalar_functions().keys().cloned().collect()
    }

    fn higher_order_function_names(&self) -> Vec<String> {
        self.state.higher_order_functions().keys().cloned().collect()
    }

    fn udaf_names(&self) -> Vec<String> {
        self.state.aggregate_functions().keys().cloned().collect()
    }

    fn udwf_names(&self) -> Vec<String> {
        self.state.window_functions().keys().cloned().collect()
    }
}
