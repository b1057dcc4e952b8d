//! Encoding operator state as bytes: sections of Arrow arrays, each written as one Arrow
//! IPC stream (columnar, typed, no hand-written row format), framed by lengths.

use std::io::Cursor;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::ipc::MetadataVersion;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::{IpcWriteOptions, StreamWriter};

use crate::error::{Result, SluiceError};

/// Encodes sections of equal-length arrays (each section may have its own length).
pub fn encode(sections: &[Vec<ArrayRef>]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    out.extend_from_slice(&(sections.len() as u32).to_le_bytes());
    for arrays in sections {
        let buf = ipc_stream(arrays, 64)?;
        out.extend_from_slice(&(buf.len() as u64).to_le_bytes());
        out.extend_from_slice(&buf);
    }
    Ok(out)
}

/// One Arrow IPC stream of one batch of `arrays` (columns named by position), with its
/// buffers aligned to `alignment` bytes (64 is Arrow's default; small entries that are
/// many, as spilled partitions, take 8 so padding does not outweigh the values).
pub fn ipc_stream(arrays: &[ArrayRef], alignment: usize) -> Result<Vec<u8>> {
    let rows = arrays.first().map_or(0, |a| a.len());
    let fields: Vec<Field> = arrays
        .iter()
        .enumerate()
        .map(|(i, a)| Field::new(format!("c{i}"), a.data_type().clone(), true))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new_with_options(
        Arc::clone(&schema),
        arrays.to_vec(),
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )?;
    let options = IpcWriteOptions::try_new(alignment, false, MetadataVersion::V5)?;
    let mut buf = Vec::new();
    let mut w = StreamWriter::try_new_with_options(&mut buf, &schema, options)?;
    w.write(&batch)?;
    w.finish()?;
    drop(w);
    Ok(buf)
}

/// The arrays of the last batch of an IPC stream written by [`ipc_stream`] (none when
/// it holds no batch).
pub fn read_ipc_stream(bytes: &[u8]) -> Result<Option<Vec<ArrayRef>>> {
    let reader = StreamReader::try_new(Cursor::new(bytes), None)?;
    let mut arrays = None;
    for batch in reader {
        arrays = Some(batch?.columns().to_vec());
    }
    Ok(arrays)
}

/// Decodes what [`encode`] wrote.
pub fn decode(bytes: &[u8]) -> Result<Vec<Vec<ArrayRef>>> {
    let corrupt = || SluiceError::runtime("corrupt state snapshot");
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<&[u8]> {
        let s = bytes.get(at..at + n).ok_or_else(corrupt)?;
        at += n;
        Ok(s)
    };
    let count = u32::from_le_bytes(take(4)?.try_into().map_err(|_| corrupt())?) as usize;
    let mut sections = Vec::with_capacity(count);
    for _ in 0..count {
        let len = u64::from_le_bytes(take(8)?.try_into().map_err(|_| corrupt())?) as usize;
        sections.push(read_ipc_stream(take(len)?)?.unwrap_or_default());
    }
    Ok(sections)
}

/// Frames a list of optional byte strings (one per operator of a pipeline).
pub fn frame(parts: &[Option<Vec<u8>>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(parts.len() as u32).to_le_bytes());
    for p in parts {
        match p {
            Some(b) => {
                out.extend_from_slice(&(b.len() as u64).to_le_bytes());
                out.extend_from_slice(b);
            }
            None => out.extend_from_slice(&u64::MAX.to_le_bytes()),
        }
    }
    out
}

/// Reads what [`frame`] wrote.
pub fn unframe(bytes: &[u8]) -> Result<Vec<Option<Vec<u8>>>> {
    let corrupt = || SluiceError::runtime("corrupt state frame");
    let count = u32::from_le_bytes(bytes.get(0..4).ok_or_else(corrupt)?.try_into().map_err(|_| corrupt())?) as usize;
    let mut at = 4;
    let mut parts = Vec::with_capacity(count);
    for _ in 0..count {
        let len = u64::from_le_bytes(
            bytes
                .get(at..at + 8)
                .ok_or_else(corrupt)?
                .try_into()
                .map_err(|_| corrupt())?,
        );
        at += 8;
        if len == u64::MAX {
            parts.push(None);
        } else {
            let len = len as usize;
            parts.push(Some(bytes.get(at..at + len).ok_or_else(corrupt)?.to_vec()));
            at += len;
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};

    #[test]
    fn sections_and_frames_round_trip() {
        let a: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None, Some(3)]));
        let b: ArrayRef = Arc::new(StringArray::from(vec!["x"]));
        let bytes = encode(&[vec![Arc::clone(&a)], vec![Arc::clone(&b)], vec![]]).unwrap();
        let back = decode(&bytes).unwrap();
        assert_eq!(back[0][0].as_ref(), a.as_ref());
        assert_eq!(back[1][0].as_ref(), b.as_ref());
        assert!(back[2].is_empty());
        let framed = frame(&[Some(vec![1, 2]), None, Some(vec![])]);
        assert_eq!(unframe(&framed).unwrap(), vec![Some(vec![1, 2]), None, Some(vec![])]);
        assert!(decode(&bytes[..bytes.len() - 3]).is_err());
    }
}
