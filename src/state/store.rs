//! The checkpoint store: one RocksDB database in the state folder. A checkpoint is a
//! set of named parts (`source/<input>`, `pump/<name>`, `hub/<stream>`, `sink/<n>`)
//! written together with the pointer to the latest checkpoint in one write batch, so a
//! crash leaves either the old or the new checkpoint, never a mix.

use std::collections::BTreeMap;
use std::path::Path;

use rocksdb::{DB, Options, WriteBatch};

use crate::error::{Result, SluiceError};

const LATEST: &[u8] = b"meta/latest";
const FINGERPRINT: &[u8] = b"meta/fingerprint";

fn key(id: u64, part: &str) -> Vec<u8> {
    format!("c/{id:020}/{part}").into_bytes()
}

fn db_error(e: rocksdb::Error) -> SluiceError {
    SluiceError::runtime(format!("state store: {e}"))
}

#[derive(Debug, Clone, Default)]
pub struct Checkpoint {
    pub id: u64,
    pub parts: BTreeMap<String, Vec<u8>>,
}

pub struct CheckpointStore {
    db: DB,
}

impl CheckpointStore {
    pub fn open(dir: &Path) -> Result<Self> {
        let mut options = Options::default();
        options.create_if_missing(true);
        // A run that was just killed in this process may still hold the lock for a few
        // milliseconds while its tasks unwind: retry briefly.
        let mut attempts = 0;
        let db = loop {
            match DB::open(&options, dir) {
                Ok(db) => break db,
                Err(e) if attempts < 100 && e.to_string().to_lowercase().contains("lock") => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(db_error(e)),
            }
        };
        Ok(CheckpointStore { db })
    }

    /// What identifies the application that wrote this state (its code and inputs).
    pub fn fingerprint(&self) -> Result<Option<String>> {
        Ok(self
            .db
            .get(FINGERPRINT)
            .map_err(db_error)?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    pub fn set_fingerprint(&self, fingerprint: &str) -> Result<()> {
        self.db.put(FINGERPRINT, fingerprint.as_bytes()).map_err(db_error)
    }

    /// Discards every checkpoint (`--fresh`).
    pub fn clear(&self) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.delete_range(b"c/".as_slice(), b"c0".as_slice());
        batch.delete(LATEST);
        batch.delete(FINGERPRINT);
        self.db.write(batch).map_err(db_error)
    }

    pub fn latest(&self) -> Result<Option<Checkpoint>> {
        let Some(raw) = self.db.get(LATEST).map_err(db_error)? else {
            return Ok(None);
        };
        let id = u64::from_le_bytes(
            raw.as_slice()
                .try_into()
                .map_err(|_| SluiceError::runtime("corrupt checkpoint pointer"))?,
        );
        let prefix = format!("c/{id:020}/");
        let mut parts = BTreeMap::new();
        for item in self.db.prefix_iterator(prefix.as_bytes()) {
            let (k, v) = item.map_err(db_error)?;
            let Some(part) = k.strip_prefix(prefix.as_bytes()) else {
                break;
            };
            parts.insert(String::from_utf8_lossy(part).into_owned(), v.to_vec());
        }
        Ok(Some(Checkpoint { id, parts }))
    }

    /// Commits checkpoint `id` atomically and prunes every older one. Returns its size.
    pub fn commit(&self, id: u64, parts: &BTreeMap<String, Vec<u8>>) -> Result<usize> {
        let mut batch = WriteBatch::default();
        let mut size = 0;
        for (part, bytes) in parts {
            size += bytes.len();
            batch.put(key(id, part), bytes);
        }
        batch.put(LATEST, id.to_le_bytes());
        batch.delete_range(
            format!("c/{:020}/", 0).into_bytes(),
            format!("c/{id:020}/").into_bytes(),
        );
        self.db.write(batch).map_err(db_error)?;
        Ok(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_atomically_and_prunes_older_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        assert!(store.latest().unwrap().is_none());
        let mut parts = BTreeMap::new();
        parts.insert("pump/P".to_string(), vec![1, 2, 3]);
        parts.insert("source/IN".to_string(), vec![9]);
        store.commit(1, &parts).unwrap();
        parts.insert("pump/P".to_string(), vec![4]);
        store.commit(2, &parts).unwrap();
        drop(store);
        let store = CheckpointStore::open(dir.path()).unwrap();
        let latest = store.latest().unwrap().unwrap();
        assert_eq!(latest.id, 2);
        assert_eq!(latest.parts["pump/P"], vec![4]);
        assert_eq!(latest.parts.len(), 2);
        assert_eq!(
            store
                .db
                .prefix_iterator(b"c/00000000000000000001/")
                .filter(|i| i.as_ref().unwrap().0.starts_with(b"c/00000000000000000001/"))
                .count(),
            0
        );
        store.clear().unwrap();
        assert!(store.latest().unwrap().is_none());
    }
}
