//! KPL (Kinesis Producer Library) aggregated records: de-aggregation for the source and
//! aggregation for tests and producers.
//!
//! The KPL packs many user records into one Kinesis record to beat the per-record limits.
//! Such a record's data is:
//!
//! ```text
//! +----------------------+--------------------------------+------------------------+
//! | magic F3 89 9A C2    | protobuf AggregatedRecord      | MD5 of the protobuf    |
//! | (4 bytes)            | (variable)                     | bytes (16 bytes)       |
//! +----------------------+--------------------------------+------------------------+
//! ```
//!
//! with the protobuf (proto2) schema
//!
//! ```text
//! message AggregatedRecord {
//!   repeated string partition_key_table     = 1;
//!   repeated string explicit_hash_key_table = 2;
//!   repeated Record records                 = 3;
//! }
//! message Tag { required string key = 1; optional string value = 2; }
//! message Record {
//!   required uint64 partition_key_index     = 1;
//!   optional uint64 explicit_hash_key_index = 2;
//!   required bytes  data                    = 3;
//!   repeated Tag    tags                    = 4;
//! }
//! ```
//!
//! Partition keys and explicit hash keys are stored once in the tables and referenced by
//! index from each record. A user record's position in `records` is its sub-sequence
//! number: together with the Kinesis sequence number of the carrying record it
//! identifies the user record, which is what checkpoints inside an aggregate rely on.
//!
//! The messages are written by hand with `prost` derives rather than generated, so the
//! build needs no `protoc` and no build script.

use std::collections::HashMap;

use md5::{Digest, Md5};
use prost::Message;

/// The prefix that marks a Kinesis record's data as a KPL aggregate.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// Length of the MD5 trailer.
const DIGEST_LEN: usize = 16;

/// One user record inside an aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub partition_key: String,
    pub explicit_hash_key: Option<String>,
    pub data: Vec<u8>,
    /// Position inside the aggregate (0-based): the KPL "sub-sequence number".
    pub sub_sequence: u64,
}

/// What one Kinesis record's data turned out to be.
#[derive(Debug, PartialEq)]
pub enum Deaggregated {
    /// Not a KPL aggregate (no magic prefix, or too short to be one): use the record as it is.
    Plain,
    /// The user records, in order.
    Records(Vec<UserRecord>),
    /// Has the magic prefix but is corrupt: the reason, for error_stream
    /// (MD5 mismatch, protobuf decode error, partition_key_index or explicit_hash_key_index out of range, no records...).
    Corrupt(String),
}

#[derive(Clone, PartialEq, Message)]
struct AggregatedRecord {
    #[prost(string, repeated, tag = "1")]
    partition_key_table: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    explicit_hash_key_table: Vec<String>,
    #[prost(message, repeated, tag = "3")]
    records: Vec<Record>,
}

// Never produced here, but declared so that aggregates from producers that tag their
// records decode into typed messages rather than relying on unknown-field skipping.
#[derive(Clone, PartialEq, Message)]
struct Tag {
    #[prost(string, required, tag = "1")]
    key: String,
    #[prost(string, optional, tag = "2")]
    value: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct Record {
    #[prost(uint64, required, tag = "1")]
    partition_key_index: u64,
    #[prost(uint64, optional, tag = "2")]
    explicit_hash_key_index: Option<u64>,
    #[prost(bytes = "vec", required, tag = "3")]
    data: Vec<u8>,
    #[prost(message, repeated, tag = "4")]
    tags: Vec<Tag>,
}

/// De-aggregates one Kinesis record's data.
pub fn deaggregate(data: &[u8]) -> Deaggregated {
    // Same test as the reference de-aggregators: anything that cannot hold the magic and
    // the digest is an ordinary record, even if it happens to start with the magic.
    if data.len() < MAGIC.len() + DIGEST_LEN || !data.starts_with(&MAGIC) {
        return Deaggregated::Plain;
    }
    let (body, trailer) = data[MAGIC.len()..].split_at(data.len() - MAGIC.len() - DIGEST_LEN);
    let computed = Md5::digest(body);
    if computed.as_slice() != trailer {
        // The aws-kinesis-agg libraries and Flink pass a record with a bad digest through
        // as plain data. We do not: a record carrying the magic was written by a KPL, so a
        // bad digest means a damaged aggregate, and its protobuf bytes must reach
        // error_stream rather than be parsed as a user payload.
        return Deaggregated::Corrupt(format!(
            "MD5 digest mismatch: trailer {}, computed {}",
            hex(trailer),
            hex(computed.as_slice())
        ));
    }
    let aggregate = match AggregatedRecord::decode(body) {
        Ok(aggregate) => aggregate,
        Err(e) => return Deaggregated::Corrupt(format!("protobuf decode error: {e}")),
    };
    if aggregate.records.is_empty() {
        return Deaggregated::Corrupt("aggregate holds no records".to_string());
    }
    let AggregatedRecord {
        partition_key_table,
        explicit_hash_key_table,
        records,
    } = aggregate;
    let mut out = Vec::with_capacity(records.len());
    for (sub_sequence, record) in (0u64..).zip(records) {
        let Some(partition_key) = lookup(&partition_key_table, record.partition_key_index) else {
            return Deaggregated::Corrupt(format!(
                "record {sub_sequence}: partition_key_index {} out of range (partition_key_table holds {})",
                record.partition_key_index,
                partition_key_table.len()
            ));
        };
        let explicit_hash_key = match record.explicit_hash_key_index {
            None => None,
            Some(index) => match lookup(&explicit_hash_key_table, index) {
                Some(key) => Some(key.clone()),
                None => {
                    return Deaggregated::Corrupt(format!(
                        "record {sub_sequence}: explicit_hash_key_index {index} out of range \
                         (explicit_hash_key_table holds {})",
                        explicit_hash_key_table.len()
                    ));
                }
            },
        };
        out.push(UserRecord {
            // Keys are shared between records, so each user record needs its own copy;
            // the payload is not shared and is moved.
            partition_key: partition_key.clone(),
            explicit_hash_key,
            data: record.data,
            sub_sequence,
        });
    }
    Deaggregated::Records(out)
}

/// Builds a KPL aggregate from (partition_key, explicit_hash_key, data) triples, sharing
/// equal keys in the key tables as the KPL does. Used by tests and by producers.
///
/// An empty slice yields an aggregate with no records, which [`deaggregate`] rejects as
/// corrupt: callers should send nothing instead.
pub fn aggregate(records: &[(String, Option<String>, Vec<u8>)]) -> Vec<u8> {
    let mut partition_keys = KeyTable::default();
    let mut explicit_hash_keys = KeyTable::default();
    let encoded_records = records
        .iter()
        .map(|(partition_key, explicit_hash_key, data)| Record {
            partition_key_index: partition_keys.index_of(partition_key),
            explicit_hash_key_index: explicit_hash_key.as_deref().map(|key| explicit_hash_keys.index_of(key)),
            data: data.clone(),
            tags: Vec::new(),
        })
        .collect();
    let message = AggregatedRecord {
        partition_key_table: partition_keys.table,
        explicit_hash_key_table: explicit_hash_keys.table,
        records: encoded_records,
    };
    let body_len = message.encoded_len();
    let mut out = Vec::with_capacity(MAGIC.len() + body_len + DIGEST_LEN);
    out.extend_from_slice(&MAGIC);
    message
        .encode(&mut out)
        .expect("a Vec grows as needed, so encoding cannot run out of space");
    let digest = Md5::digest(&out[MAGIC.len()..]);
    out.extend_from_slice(&digest);
    out
}

/// A key table in first-seen order with each distinct key stored once.
#[derive(Default)]
struct KeyTable<'a> {
    table: Vec<String>,
    positions: HashMap<&'a str, u64>,
}

impl<'a> KeyTable<'a> {
    fn index_of(&mut self, key: &'a str) -> u64 {
        *self.positions.entry(key).or_insert_with(|| {
            self.table.push(key.to_string());
            self.table.len() as u64 - 1
        })
    }
}

fn lookup(table: &[String], index: u64) -> Option<&String> {
    usize::try_from(index).ok().and_then(|index| table.get(index))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn triple(partition_key: &str, explicit_hash_key: Option<&str>, data: &[u8]) -> (String, Option<String>, Vec<u8>) {
        (
            partition_key.to_string(),
            explicit_hash_key.map(str::to_string),
            data.to_vec(),
        )
    }

    /// Wraps a protobuf body in magic and a correct digest, to reach the checks after the MD5.
    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(body);
        out.extend_from_slice(&Md5::digest(body));
        out
    }

    fn body_of(aggregate: &[u8]) -> AggregatedRecord {
        AggregatedRecord::decode(&aggregate[MAGIC.len()..aggregate.len() - DIGEST_LEN]).unwrap()
    }

    fn records(result: Deaggregated) -> Vec<UserRecord> {
        match result {
            Deaggregated::Records(records) => records,
            other => panic!("expected records, got {other:?}"),
        }
    }

    fn corrupt_reason(result: Deaggregated) -> String {
        match result {
            Deaggregated::Corrupt(reason) => reason,
            other => panic!("expected corrupt, got {other:?}"),
        }
    }

    #[test]
    fn round_trip_shares_equal_keys() {
        let input = vec![
            triple("alpha", None, b"one"),
            triple("beta", Some("123"), b"two"),
            triple("alpha", Some("456"), b""),
            triple("gamma", Some("123"), b"four"),
            triple("beta", None, &[0, 255, 0xF3]),
            triple("alpha", Some("456"), b"six"),
        ];
        let aggregate = aggregate(&input);
        assert!(aggregate.starts_with(&MAGIC));

        let body = body_of(&aggregate);
        assert_eq!(body.partition_key_table, vec!["alpha", "beta", "gamma"]);
        assert_eq!(body.explicit_hash_key_table, vec!["123", "456"]);
        assert_eq!(body.records.len(), input.len());

        let output = records(deaggregate(&aggregate));
        assert_eq!(output.len(), input.len());
        for (i, (record, (partition_key, explicit_hash_key, data))) in output.iter().zip(&input).enumerate() {
            assert_eq!(&record.partition_key, partition_key);
            assert_eq!(&record.explicit_hash_key, explicit_hash_key);
            assert_eq!(&record.data, data);
            assert_eq!(record.sub_sequence, i as u64);
        }
    }

    #[test]
    fn sub_sequences_count_from_zero() {
        let input: Vec<_> = (0..300)
            .map(|i| triple(&format!("k{}", i % 7), None, &[i as u8]))
            .collect();
        let output = records(deaggregate(&aggregate(&input)));
        let sub_sequences: Vec<u64> = output.iter().map(|r| r.sub_sequence).collect();
        assert_eq!(sub_sequences, (0..300).collect::<Vec<u64>>());
        assert_eq!(body_of(&aggregate(&input)).partition_key_table.len(), 7);
    }

    #[test]
    fn plain_json_is_plain() {
        assert_eq!(deaggregate(br#"{"ticker":"AMZN","price":101.5}"#), Deaggregated::Plain);
        assert_eq!(deaggregate(b""), Deaggregated::Plain);
    }

    #[test]
    fn magic_without_room_for_a_digest_is_plain() {
        let full = aggregate(&[triple("k", None, b"payload")]);
        assert_eq!(deaggregate(&MAGIC), Deaggregated::Plain);
        // One byte short of magic + digest: cannot be an aggregate.
        assert_eq!(deaggregate(&full[..MAGIC.len() + DIGEST_LEN - 1]), Deaggregated::Plain);
    }

    #[test]
    fn truncated_aggregate_is_corrupt() {
        let full = aggregate(&[triple("k", None, b"some payload long enough")]);
        for len in MAGIC.len() + DIGEST_LEN..full.len() {
            let reason = corrupt_reason(deaggregate(&full[..len]));
            assert!(reason.starts_with("MD5 digest mismatch"), "len {len}: {reason}");
        }
    }

    #[test]
    fn flipped_body_byte_is_corrupt() {
        let full = aggregate(&[triple("k", None, b"abc"), triple("j", Some("9"), b"def")]);
        for i in MAGIC.len()..full.len() {
            let mut damaged = full.clone();
            damaged[i] ^= 0x01;
            let reason = corrupt_reason(deaggregate(&damaged));
            assert!(reason.starts_with("MD5 digest mismatch"), "byte {i}: {reason}");
        }
    }

    #[test]
    fn partition_key_index_out_of_range_is_corrupt() {
        // Table "a"; record 0 points at index 0, record 1 at index 1.
        let body = [
            0x0A, 0x01, b'a', //
            0x1A, 0x05, 0x08, 0x00, 0x1A, 0x01, b'x', //
            0x1A, 0x05, 0x08, 0x01, 0x1A, 0x01, b'y',
        ];
        let reason = corrupt_reason(deaggregate(&frame(&body)));
        assert!(reason.contains("record 1"), "{reason}");
        assert!(reason.contains("partition_key_index 1"), "{reason}");
        assert!(reason.contains("holds 1"), "{reason}");
    }

    #[test]
    fn partition_key_index_beyond_usize_is_corrupt() {
        // Index u64::MAX as a ten-byte varint, against an empty table.
        let mut record = vec![0x08];
        record.extend_from_slice(&[0xFF; 9]);
        record.push(0x01);
        record.extend_from_slice(&[0x1A, 0x00]);
        let mut body = vec![0x1A, record.len() as u8];
        body.extend_from_slice(&record);
        let reason = corrupt_reason(deaggregate(&frame(&body)));
        assert!(
            reason.contains(&format!("partition_key_index {}", u64::MAX)),
            "{reason}"
        );
        assert!(reason.contains("holds 0"), "{reason}");
    }

    #[test]
    fn explicit_hash_key_index_out_of_range_is_corrupt() {
        // Partition key table "a", empty explicit hash key table, record with ehk index 0.
        let body = [0x0A, 0x01, b'a', 0x1A, 0x07, 0x08, 0x00, 0x10, 0x00, 0x1A, 0x01, b'x'];
        let reason = corrupt_reason(deaggregate(&frame(&body)));
        assert!(reason.contains("explicit_hash_key_index 0"), "{reason}");
        assert!(reason.contains("holds 0"), "{reason}");
    }

    #[test]
    fn no_records_is_corrupt() {
        assert_eq!(
            deaggregate(&frame(&[0x0A, 0x01, b'a'])),
            Deaggregated::Corrupt("aggregate holds no records".to_string())
        );
        assert_eq!(
            deaggregate(&aggregate(&[])),
            Deaggregated::Corrupt("aggregate holds no records".to_string())
        );
    }

    #[test]
    fn undecodable_protobuf_is_corrupt() {
        // Field 3 claims 100 bytes of message but the body ends after 2.
        let reason = corrupt_reason(deaggregate(&frame(&[0x1A, 0x64, 0x08, 0x00])));
        assert!(reason.starts_with("protobuf decode error"), "{reason}");
    }

    #[test]
    fn tags_are_accepted_and_ignored() {
        // Record: pk 0, data "x", tag { key "t", value "v" }.
        let body = [
            0x0A, 0x01, b'k', //
            0x1A, 0x0D, 0x08, 0x00, 0x1A, 0x01, b'x', 0x22, 0x06, 0x0A, 0x01, b't', 0x12, 0x01, b'v',
        ];
        assert_eq!(
            records(deaggregate(&frame(&body))),
            vec![UserRecord {
                partition_key: "k".to_string(),
                explicit_hash_key: None,
                data: b"x".to_vec(),
                sub_sequence: 0,
            }]
        );
    }

    #[test]
    fn encoding_matches_the_kpl_wire_format_byte_for_byte() {
        let encoded = aggregate(&[
            triple("a", None, b"x"),
            triple("a", Some("1"), b"yz"),
            triple("b", None, b""),
        ]);
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            0xF3, 0x89, 0x9A, 0xC2,                         // magic
            0x0A, 0x01, b'a',                               // partition_key_table[0] = "a"
            0x0A, 0x01, b'b',                               // partition_key_table[1] = "b"
            0x12, 0x01, b'1',                               // explicit_hash_key_table[0] = "1"
            0x1A, 0x05,                                     // records[0], 5 bytes:
            0x08, 0x00,                                     //   partition_key_index 0 (required: sent although 0)
            0x1A, 0x01, b'x',                               //   data "x"
            0x1A, 0x08,                                     // records[1], 8 bytes:
            0x08, 0x00,                                     //   partition_key_index 0
            0x10, 0x00,                                     //   explicit_hash_key_index 0
            0x1A, 0x02, b'y', b'z',                         //   data "yz"
            0x1A, 0x04,                                     // records[2], 4 bytes:
            0x08, 0x01,                                     //   partition_key_index 1
            0x1A, 0x00,                                     //   data "" (required: sent although empty)
            // MD5 of the 32 protobuf bytes above, computed outside Rust (Python hashlib).
            0x7C, 0x2C, 0x38, 0x1C, 0xA5, 0xF2, 0x26, 0x68, 0x57, 0xC2, 0x5C, 0x56, 0xF3, 0xAE, 0xF1, 0xEE,
        ];
        assert_eq!(encoded, expected);
        assert_eq!(
            records(deaggregate(&expected)),
            vec![
                UserRecord {
                    partition_key: "a".into(),
                    explicit_hash_key: None,
                    data: b"x".to_vec(),
                    sub_sequence: 0
                },
                UserRecord {
                    partition_key: "a".into(),
                    explicit_hash_key: Some("1".into()),
                    data: b"yz".to_vec(),
                    sub_sequence: 1
                },
                UserRecord {
                    partition_key: "b".into(),
                    explicit_hash_key: None,
                    data: Vec::new(),
                    sub_sequence: 2
                },
            ]
        );
    }

    fn key() -> impl Strategy<Value = String> {
        // A tiny alphabet makes equal keys frequent, so table sharing is exercised;
        // arbitrary strings cover multi-byte UTF-8 and long lengths.
        prop_oneof!["[ab]{0,2}", any::<String>()]
    }

    proptest! {
        #[test]
        fn aggregate_then_deaggregate_returns_the_inputs(
            input in prop::collection::vec(
                (key(), prop::option::of(key()), prop::collection::vec(any::<u8>(), 0..200)),
                1..40,
            )
        ) {
            let encoded = aggregate(&input);
            let body = body_of(&encoded);
            let distinct_partition_keys: std::collections::HashSet<&String> = input.iter().map(|t| &t.0).collect();
            prop_assert_eq!(body.partition_key_table.len(), distinct_partition_keys.len());
            let distinct_hash_keys: std::collections::HashSet<&String> =
                input.iter().filter_map(|t| t.1.as_ref()).collect();
            prop_assert_eq!(body.explicit_hash_key_table.len(), distinct_hash_keys.len());

            let output = match deaggregate(&encoded) {
                Deaggregated::Records(records) => records,
                other => return Err(TestCaseError::fail(format!("expected records, got {other:?}"))),
            };
            let expected: Vec<UserRecord> = input
                .into_iter()
                .zip(0u64..)
                .map(|((partition_key, explicit_hash_key, data), sub_sequence)| UserRecord {
                    partition_key,
                    explicit_hash_key,
                    data,
                    sub_sequence,
                })
                .collect();
            prop_assert_eq!(output, expected);
        }
    }
}
