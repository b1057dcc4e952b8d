//! Durable state: checkpoints of every operator's state and every source's position,
//! written atomically to RocksDB, and the coordinator that takes them.
//!
//! A checkpoint is aligned by barriers (`Message::Barrier`): the coordinator asks every
//! source to emit barrier N; each task that sees barrier N on all of its inputs saves its
//! state as of that instant and passes the barrier on. When every participant has
//! reported, the coordinator commits all the parts in one RocksDB write batch. A restart
//! with the same state folder rewinds sources to their recorded positions and restores
//! every operator, so no input record is lost or counted twice.

pub mod coordinator;
pub mod snapshot;
pub mod spill;
pub mod store;

pub use coordinator::{Ack, CheckpointHandle, Coordinator};
pub use store::{Checkpoint, CheckpointStore};
