//! sluice: a stream-analytics engine that runs Kinesis Data Analytics SQL applications
//! unchanged.
//!
//! The path of a record: a source ([`connectors`]) reads raw records and decodes them
//! ([`connectors::formats`]) into Arrow batches of an in-application input stream; the
//! [`planner`] has compiled the application code (parsed by [`dialect`]) into a graph of
//! [`operators`]; the [`runtime`] runs that graph as tokio tasks exchanging
//! [`operators::Message`]s; sinks encode the rows of output streams.
//! See ARCHITECTURE.md for the map and the invariants.

pub mod app;
pub mod bench;
pub mod cli;
pub mod connectors;
pub mod dialect;
pub mod engine;
pub mod error;
pub mod functions;
pub mod manifest;
pub mod operators;
pub mod planner;
pub mod runtime;
pub mod server;
pub mod state;
pub mod testing;
pub mod time;
pub mod types;

pub use error::{Result, SluiceError};
