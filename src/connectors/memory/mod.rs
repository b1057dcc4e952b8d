//! The collecting sink: keeps rows in memory for the caller (conformance runner,
//! embedding applications).

use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatch;
use futures::future::BoxFuture;

use super::sink::Sink;
use crate::error::Result;

#[derive(Clone, Default)]
pub struct CollectSink {
    pub batches: Arc<Mutex<Vec<RecordBatch>>>,
}

impl Sink for CollectSink {
    fn write<'a>(&'a mut self, batch: &'a RecordBatch) -> BoxFuture<'a, Result<()>> {
        self.batches.lock().expect("collect sink lock").push(batch.clone());
        Box::pin(async { Ok(()) })
    }

    fn finish(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }
}
