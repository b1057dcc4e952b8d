//! Record formats: decoding raw JSON / CSV records into Arrow batches through an input
//! schema (KDA's RecordColumns and mapping rules), and encoding output rows.

mod coerce;
pub mod decode;
pub mod encode;
mod json;

pub use decode::{Decoded, RecordDecoder, decode_table};
pub use encode::{encode_csv, encode_json_lines};
