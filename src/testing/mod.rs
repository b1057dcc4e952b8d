//! The conformance runner behind `sluice test CASE_DIR...`.
//!
//! * [`case`] loads a case folder (`case.toml`, application code, expected rows) into an
//!   [`crate::app::AppSpec`] whose inputs are recordings and whose checked streams are
//!   collected;
//! * [`compare`] turns the collected Arrow batches into rows and compares them with the
//!   expected rows (ROWTIME order, multisets per ROWTIME, float tolerance);
//! * [`runner`] finds cases, runs each through [`crate::engine::run`] with a timeout and
//!   prints `PASS name` / `FAIL name` and the final `N passed, M failed` line.

pub mod case;
pub mod compare;
pub mod runner;

pub use case::{Case, ExpectedOutput, load_case};
pub use compare::{CompareOptions, Row, StreamDiff, Value, batches_to_rows, compare_rows};
pub use runner::{RunnerOptions, Summary, discover_cases, run_cases, run_cases_with};
