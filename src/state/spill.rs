//! The spill store: where an operator puts the part of its state that does not fit its
//! memory budget. One RocksDB instance per store, in a folder of its own, holding
//! partitioned runs: a run is one Arrow IPC stream (encoded with
//! [`crate::state::snapshot::encode`]) keyed by (partition, sequence number), so the runs
//! of one partition can be read back in order, one at a time.
//!
//! A store can also hold entries addressed by a key (`put_entry`, `take_entry`): the
//! sliding and stagger operators spill one entry per evicted partition or window and read
//! it back when its key comes back. An entry is one Arrow IPC stream with 8-byte rather
//! than 64-byte buffer alignment (most entries are a row or a few). Entries live after
//! every run (under the reserved partition number `u32::MAX`), so the two kinds never mix
//! in an iteration.
//!
//! Spilled state is scratch space, not durable state: nothing is synced (no WAL), and the
//! folder is deleted when the store is dropped. Durability comes from checkpoints, which
//! copy the spilled runs and entries into the operator's snapshot (see
//! `operators::tumbling`, `operators::sliding`, `operators::stagger`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::ArrayRef;
use rocksdb::{BlockBasedOptions, DB, Direction, IteratorMode, Options, WriteOptions};

use crate::error::{Result, SluiceError};

/// How much an operator may keep in memory and where it spills the rest.
#[derive(Debug, Clone)]
pub struct SpillConfig {
    /// The operator's share of the application's memory budget; None: unlimited.
    pub budget_bytes: Option<usize>,
    /// The folder spill stores are created in (each in a subfolder of its own).
    pub dir: PathBuf,
    /// Labels of the operator's metrics series.
    pub app: String,
    pub pump: String,
}

/// The folder spill stores go in. Under a state folder (`<state_dir>/spill`) it is
/// emptied first: spilled runs never outlive their process, and the checkpoint store's
/// lock on the state folder makes this process its only user. Without one, a shared
/// folder under the system's temporary folder, never emptied wholesale.
pub fn spill_root(state_dir: Option<&Path>) -> PathBuf {
    match state_dir {
        Some(dir) => {
            let root = dir.join("spill");
            if root.exists()
                && let Err(e) = std::fs::remove_dir_all(&root)
            {
                tracing::warn!(dir = %root.display(), error = %e, "could not remove stale spill files");
            }
            root
        }
        None => std::env::temp_dir().join("sluice-spill"),
    }
}

fn db_error(e: rocksdb::Error) -> SluiceError {
    SluiceError::runtime(format!("spill store: {e}"))
}

/// The prefix of keyed entries: the partition number no run uses.
const ENTRIES: [u8; 4] = u32::MAX.to_be_bytes();

fn entry_key(key: &[u8]) -> Vec<u8> {
    [&ENTRIES[..], key].concat()
}

fn key(partition: u32, seq: u64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&partition.to_be_bytes());
    k[4..].copy_from_slice(&seq.to_be_bytes());
    k
}

pub struct SpillStore {
    /// Always Some until dropped: taken in `drop` to close the database before its
    /// folder is removed.
    db: Option<DB>,
    dir: PathBuf,
    next_seq: u64,
    runs: u64,
    bytes: u64,
}

impl SpillStore {
    /// Creates an empty store in a new subfolder of `root`.
    pub fn create(root: &Path) -> Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = root.join(format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| SluiceError::runtime(format!("spill store {}: {e}", dir.display())))?;
        let mut options = Options::default();
        options.create_if_missing(true);
        // The point of spilling is to leave memory free: a small memtable, and no block
        // cache (each run is read once, when its window closes or a checkpoint copies it).
        options.set_write_buffer_size(4 << 20);
        options.set_max_write_buffer_number(2);
        let mut table = BlockBasedOptions::default();
        table.disable_cache();
        options.set_block_based_table_factory(&table);
        let db = DB::open(&options, &dir).map_err(db_error)?;
        Ok(SpillStore {
            db: Some(db),
            dir,
            next_seq: 0,
            runs: 0,
            bytes: 0,
        })
    }

    fn db(&self) -> &DB {
        self.db.as_ref().expect("open until dropped")
    }

    /// Appends one run (equal-length arrays) to `partition`; returns its size in bytes.
    pub fn put(&mut self, partition: u32, arrays: &[ArrayRef]) -> Result<usize> {
        let bytes = crate::state::snapshot::encode(std::slice::from_ref(&arrays.to_vec()))?;
        let mut write = WriteOptions::default();
        write.disable_wal(true);
        self.db()
            .put_opt(key(partition, self.next_seq), &bytes, &write)
            .map_err(db_error)?;
        self.next_seq += 1;
        self.runs += 1;
        self.bytes += bytes.len() as u64;
        Ok(bytes.len())
    }

    /// Calls `f` with every run of `partition`, oldest first, decoding one at a time.
    pub fn for_each_run(&self, partition: u32, mut f: impl FnMut(Vec<ArrayRef>) -> Result<()>) -> Result<()> {
        let start = key(partition, 0);
        for item in self.db().iterator(IteratorMode::From(&start, Direction::Forward)) {
            let (k, v) = item.map_err(db_error)?;
            if k[..4] != start[..4] {
                break;
            }
            f(decode_run(&v)?)?;
        }
        Ok(())
    }

    /// Calls `f` with every run of every partition.
    pub fn for_each(&self, mut f: impl FnMut(u32, Vec<ArrayRef>) -> Result<()>) -> Result<()> {
        for item in self.db().iterator(IteratorMode::Start) {
            let (k, v) = item.map_err(db_error)?;
            if k[..4] == ENTRIES {
                break;
            }
            let partition = u32::from_be_bytes(k[..4].try_into().expect("4-byte prefix"));
            f(partition, decode_run(&v)?)?;
        }
        Ok(())
    }

    /// Stores `arrays` (equal-length) under `key`, replacing any entry there; returns
    /// its size in bytes.
    pub fn put_entry(&mut self, key: &[u8], arrays: &[ArrayRef]) -> Result<usize> {
        let bytes = encode_entry(arrays)?;
        let mut write = WriteOptions::default();
        write.disable_wal(true);
        self.db().put_opt(entry_key(key), &bytes, &write).map_err(db_error)?;
        self.bytes += bytes.len() as u64;
        Ok(bytes.len())
    }

    /// The entry under `key`, left in place.
    pub fn get_entry(&self, key: &[u8]) -> Result<Option<Vec<ArrayRef>>> {
        match self.db().get_pinned(entry_key(key)).map_err(db_error)? {
            Some(v) => Ok(Some(decode_entry(&v)?)),
            None => Ok(None),
        }
    }

    /// Reads and removes the entry under `key`.
    pub fn take_entry(&mut self, key: &[u8]) -> Result<Option<Vec<ArrayRef>>> {
        let entry = self.get_entry(key)?;
        if entry.is_some() {
            self.delete_entry(key)?;
        }
        Ok(entry)
    }

    /// Removes the entry under `key` without reading it.
    pub fn delete_entry(&mut self, key: &[u8]) -> Result<()> {
        let mut write = WriteOptions::default();
        write.disable_wal(true);
        self.db().delete_opt(entry_key(key), &write).map_err(db_error)
    }

    /// Calls `f` with every entry whose key starts with `prefix` (the key without the
    /// prefix, and the arrays), in key order.
    pub fn for_each_entry(&self, prefix: &[u8], mut f: impl FnMut(&[u8], Vec<ArrayRef>) -> Result<()>) -> Result<()> {
        let start = entry_key(prefix);
        for item in self.db().iterator(IteratorMode::From(&start, Direction::Forward)) {
            let (k, v) = item.map_err(db_error)?;
            if !k.starts_with(&start) {
                break;
            }
            f(&k[start.len()..], decode_entry(&v)?)?;
        }
        Ok(())
    }

    /// Runs written so far.
    pub fn runs(&self) -> u64 {
        self.runs
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

fn decode_run(bytes: &[u8]) -> Result<Vec<ArrayRef>> {
    crate::state::snapshot::decode(bytes)?
        .pop()
        .ok_or_else(|| SluiceError::runtime("corrupt spilled run"))
}

/// An entry: one Arrow IPC stream of one batch, its buffers aligned to 8 bytes rather
/// than 64. An entry is often a row or a few, and 64-byte padding of each of its buffers
/// would make it many times the size of its values.
fn encode_entry(arrays: &[ArrayRef]) -> Result<Vec<u8>> {
    crate::state::snapshot::ipc_stream(arrays, 8)
}

fn decode_entry(bytes: &[u8]) -> Result<Vec<ArrayRef>> {
    crate::state::snapshot::read_ipc_stream(bytes)?.ok_or_else(|| SluiceError::runtime("corrupt spilled entry"))
}

impl Drop for SpillStore {
    fn drop(&mut self) {
        drop(self.db.take());
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove spill files");
        }
    }
}

/// Parses a size: plain bytes (`1048576`) or a number with a unit, `KB`/`MB`/`GB`/`TB`
/// (powers of 1024, as `KiB`... which are accepted too; `K`/`M`/`G` likewise), any case.
pub fn parse_size(text: &str) -> std::result::Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = (t[..split].trim(), t[split..].trim().to_ascii_uppercase());
    let shift = match unit.as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => {
            return Err(format!(
                "unknown size unit {unit:?} in {text:?} (use bytes, KB, MB or GB)"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("not a size: {text:?} (for example 512MB)"))?;
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > usize::MAX as f64 {
        return Err(format!("size out of range: {text:?}"));
    }
    Ok(bytes as usize)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray};

    use super::*;

    #[test]
    fn runs_come_back_per_partition_in_order_and_the_folder_goes_away() {
        let root = tempfile::tempdir().unwrap();
        let mut store = SpillStore::create(root.path()).unwrap();
        let run = |n: i64| -> Vec<ArrayRef> {
            vec![
                Arc::new(Int64Array::from(vec![n, n + 1])),
                Arc::new(StringArray::from(vec![Some("a"), None])),
            ]
        };
        store.put(1, &run(10)).unwrap();
        store.put(0, &run(20)).unwrap();
        store.put(1, &run(30)).unwrap();
        assert_eq!(store.runs(), 3);
        assert!(store.bytes() > 0);
        let mut seen = Vec::new();
        store
            .for_each_run(1, |arrays| {
                assert_eq!(arrays[1].as_ref(), run(0)[1].as_ref());
                seen.push(arrays[0].clone());
                Ok(())
            })
            .unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].as_ref(), run(10)[0].as_ref());
        assert_eq!(seen[1].as_ref(), run(30)[0].as_ref());
        let mut all = Vec::new();
        store
            .for_each(|p, _| {
                all.push(p);
                Ok(())
            })
            .unwrap();
        assert_eq!(all, vec![0, 1, 1]);
        let dir = store.dir.clone();
        assert!(dir.exists());
        drop(store);
        assert!(!dir.exists());
    }

    #[test]
    fn keyed_entries_are_replaced_taken_and_listed_apart_from_runs() {
        let root = tempfile::tempdir().unwrap();
        let mut store = SpillStore::create(root.path()).unwrap();
        let arrays = |n: i64| -> Vec<ArrayRef> { vec![Arc::new(Int64Array::from(vec![n]))] };
        store.put(0, &arrays(1)).unwrap();
        store.put_entry(b"\x00a", &arrays(2)).unwrap();
        store.put_entry(b"\x00b", &arrays(3)).unwrap();
        store.put_entry(b"\x00a", &arrays(4)).unwrap();
        store.put_entry(b"\x01a", &arrays(5)).unwrap();
        let mut runs = 0;
        store
            .for_each(|_, _| {
                runs += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(runs, 1, "entries are not runs");
        let mut listed = Vec::new();
        store
            .for_each_entry(b"\x00", |k, a| {
                listed.push((k.to_vec(), a[0].clone()));
                Ok(())
            })
            .unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].0, b"a");
        assert_eq!(listed[0].1.as_ref(), arrays(4)[0].as_ref());
        assert_eq!(
            store.get_entry(b"\x00b").unwrap().unwrap()[0].as_ref(),
            arrays(3)[0].as_ref()
        );
        assert!(store.take_entry(b"\x00b").unwrap().is_some());
        assert!(store.take_entry(b"\x00b").unwrap().is_none());
        store.delete_entry(b"\x01a").unwrap();
        assert!(store.get_entry(b"\x01a").unwrap().is_none());
    }

    #[test]
    fn sizes_parse_with_and_without_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512MB"), Ok(512 << 20));
        assert_eq!(parse_size("1gb"), Ok(1 << 30));
        assert_eq!(parse_size("64 KiB"), Ok(64 << 10));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("MB").is_err());
        assert!(parse_size("0").is_err());
    }
}
