//! HTTP endpoints with the contracts of KDA's Lambda integrations, without Lambda:
//!
//! * [`callback`]: an output delivered to an HTTP endpoint in batches, as a KDA Lambda
//!   output function received them (or plain JSON), with per-record results, retries
//!   with backoff and full jitter, bisection of failing batches, a concurrency limit and
//!   an on-failure destination ([`failure`]: a file, a Kinesis stream or S3);
//! * [`preprocess`]: an input's transform, called on batches of raw records before
//!   schema mapping, as KDA's Lambda preprocessor was;
//! * [`retry`]: the retry and bisection logic, independent of HTTP;
//! * [`client`]: reqwest on rustls with ring, `${ENV}` substitution in URL and headers;
//! * [`config`]: what both are configured with, and their manifest tables.

pub mod bench;
pub mod callback;
pub mod client;
pub mod config;
pub mod failure;
pub mod preprocess;
pub mod retry;

pub use callback::HttpSink;
pub use config::{Backoff, HttpEndpoint, HttpSinkConfig, HttpTransformConfig, OnFailure, Payload, PreprocessorSpec};
pub use preprocess::Preprocessor;

/// Describes the series of the callback sink and the input transform (labelled `app`
/// and `stream` / `input`); called when the registry is installed.
pub fn describe_metrics() {
    use ::metrics::{describe_counter, describe_histogram};
    describe_counter!(
        "sluice_http_batches_total",
        "Batches an HTTP callback output took from its buffer"
    );
    describe_counter!(
        "sluice_http_requests_total",
        "Requests made by an HTTP callback output (retries and split halves included)"
    );
    describe_histogram!("sluice_http_request_seconds", "Latency of one callback request");
    describe_counter!(
        "sluice_http_records_delivered_total",
        "Records a callback receiver answered Ok (any 2xx for the plain payload)"
    );
    describe_counter!(
        "sluice_http_records_retried_total",
        "Records a callback output sent again after a failure"
    );
    describe_counter!(
        "sluice_http_records_failed_total",
        "Records sent to the on-failure destination after the retry budget"
    );
    describe_counter!(
        "sluice_preprocessor_records_total",
        "Records through an input transform, by result (ok, dropped, failed)"
    );
    describe_histogram!(
        "sluice_preprocessor_request_seconds",
        "Latency of one input-transform request"
    );
}
