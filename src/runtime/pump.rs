//! A pump task: reads its source stream, runs its operator chain, writes the target
//! stream, and sends record errors to `error_stream`. On a checkpoint barrier it saves
//! the chain's state, then passes the barrier on.

use tokio::sync::mpsc;

use super::hub::StreamWriter;
use crate::error::{ErrorRow, Result};
use crate::operators::Message;
use crate::operators::pipeline::Pipeline;
use crate::state::CheckpointHandle;

pub async fn run_pump(
    mut pipeline: Pipeline,
    mut input: mpsc::Receiver<Message>,
    output: StreamWriter,
    errors: mpsc::UnboundedSender<Vec<ErrorRow>>,
    checkpoints: Option<CheckpointHandle>,
) -> Result<()> {
    let part = format!("pump/{}", pipeline.pump);
    let mut error_rows = Vec::new();
    let mut last_bound = crate::time::Millis::MIN;
    while let Some(message) = input.recv().await {
        let ended = matches!(message, Message::End);
        let (emitted, forward) = match message {
            Message::Data(batch) => (pipeline.on_batch(batch, &mut error_rows)?, None),
            Message::Bound(t) => {
                let emitted = pipeline.on_bound(t, &mut error_rows)?;
                // An operator holding rows it will stamp earlier than `t` lowers the bound.
                let forward = pipeline.forward_bound(t);
                let forward = (forward > last_bound).then(|| {
                    last_bound = forward;
                    Message::Bound(forward)
                });
                (emitted, forward)
            }
            Message::Barrier(id) => {
                if let Some(c) = &checkpoints {
                    c.ack(id, &part, Some(pipeline.snapshot()?));
                }
                (vec![], Some(Message::Barrier(id)))
            }
            Message::End => (pipeline.on_end(&mut error_rows)?, None),
        };
        if !error_rows.is_empty() {
            let _ = errors.send(std::mem::take(&mut error_rows));
        }
        for batch in emitted {
            output.send(Message::Data(batch)).await;
        }
        if let Some(m) = forward {
            output.send(m).await;
        }
        if ended {
            break;
        }
    }
    if let Some(c) = &checkpoints {
        c.finish(&part, Some(pipeline.snapshot()?));
    }
    output.send(Message::End).await;
    Ok(())
}
