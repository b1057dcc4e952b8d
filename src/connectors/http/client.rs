//! The HTTP client of the callback sink and the input transform: reqwest on rustls with
//! ring (installed as the process's default crypto provider) and the system's roots;
//! `${ENV}` substitution in the URL and the headers; one POST and what became of it.

use std::sync::Once;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use super::config::HttpEndpoint;
use crate::error::{Result, SluiceError};

/// Installs ring as rustls's process-wide crypto provider, once. reqwest is built
/// without a provider of its own (the SDK clients bring ring already); an embedding
/// program that installed another provider keeps it.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Replaces `${NAME}` by the environment variable `NAME`; `$${` is a literal `${`.
pub fn substitute_env(text: &str) -> std::result::Result<String, String> {
    substitute_with(text, |name| std::env::var(name).ok())
}

fn substitute_with(text: &str, lookup: impl Fn(&str) -> Option<String>) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or_else(|| format!("unclosed ${{...}} in '{text}'"))?;
            let name = &after[..end];
            if name.is_empty() {
                return Err(format!("empty ${{}} in '{text}'"));
            }
            let value = lookup(name).ok_or_else(|| format!("the environment variable {name} is not set"))?;
            out.push_str(&value);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// An endpoint with its templates resolved and a client to call it.
#[derive(Clone)]
pub struct HttpCaller {
    client: reqwest::Client,
    pub url: String,
    headers: HeaderMap,
    timeout: Duration,
}

impl std::fmt::Debug for HttpCaller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Headers may hold secrets: never print them.
        f.debug_struct("HttpCaller")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Builds the shared client: rustls with ring, native roots.
pub fn build_client() -> Result<reqwest::Client> {
    install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| SluiceError::runtime(format!("building the HTTP client: {e}")))
}

impl HttpCaller {
    /// Resolves `${ENV}` in the URL and the header values; a missing variable or a bad
    /// header is a configuration error (the application does not start).
    pub fn new(endpoint: &HttpEndpoint) -> Result<Self> {
        let what = |e: String| SluiceError::config(format!("HTTP endpoint {}: {e}", endpoint.url));
        let url = substitute_env(&endpoint.url).map_err(what)?;
        reqwest::Url::parse(&url).map_err(|e| what(format!("invalid URL: {e}")))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &endpoint.headers {
            let value = substitute_env(value).map_err(|e| what(format!("header {name}: {e}")))?;
            let name =
                HeaderName::from_bytes(name.as_bytes()).map_err(|e| what(format!("header name '{name}': {e}")))?;
            let mut value = HeaderValue::from_str(&value).map_err(|e| what(format!("header {name}: {e}")))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        if !headers.contains_key(CONTENT_TYPE) {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        Ok(HttpCaller {
            client: build_client()?,
            url,
            headers,
            timeout: Duration::from_millis(endpoint.timeout_ms.max(1)),
        })
    }

    /// POSTs `body`; a 2xx answer is `Ok` with its body, anything else a [`CallError`].
    pub async fn post(&self, body: Vec<u8>) -> std::result::Result<Answer, CallError> {
        let started = Instant::now();
        let sent = self
            .client
            .post(&self.url)
            .headers(self.headers.clone())
            .timeout(self.timeout)
            .body(body)
            .send()
            .await;
        let response = sent.map_err(|e| classify(&e, self.timeout))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| classify(&e, self.timeout))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            return Err(CallError::Status(status.as_u16(), text));
        }
        Ok(Answer {
            body: body.to_vec(),
            elapsed: started.elapsed(),
        })
    }
}

/// A 2xx answer.
#[derive(Debug)]
pub struct Answer {
    pub body: Vec<u8>,
    pub elapsed: Duration,
}

/// Why a request failed as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// No answer within the timeout.
    Timeout(Duration),
    /// The receiver could not be reached (refused, DNS, TLS).
    Connect(String),
    /// A non-2xx status, with the start of the body.
    Status(u16, String),
    /// Anything else on the way (the connection dropped mid-answer ...).
    Other(String),
}

impl CallError {
    /// Whether splitting the batch may help: the receiver answered with an error or
    /// hung, which a record can cause. Not for 429 (slow down) or a receiver that cannot
    /// be reached.
    pub fn bisectable(&self) -> bool {
        match self {
            CallError::Timeout(_) | CallError::Other(_) => true,
            CallError::Status(code, _) => *code != 429,
            CallError::Connect(_) => false,
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Timeout(t) => write!(f, "no answer within {} ms", t.as_millis()),
            CallError::Connect(e) => write!(f, "cannot connect: {e}"),
            CallError::Status(code, body) if body.trim().is_empty() => write!(f, "HTTP status {code}"),
            CallError::Status(code, body) => write!(f, "HTTP status {code}: {}", body.trim()),
            CallError::Other(e) => write!(f, "{e}"),
        }
    }
}

fn classify(e: &reqwest::Error, timeout: Duration) -> CallError {
    // The whole chain: reqwest's own message is terse ("error sending request").
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    if e.is_timeout() {
        CallError::Timeout(timeout)
    } else if e.is_connect() {
        CallError::Connect(text)
    } else {
        CallError::Other(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_substitution() {
        let env = |n: &str| (n == "TOKEN").then(|| "s3cr3t".to_string());
        assert_eq!(substitute_with("Bearer ${TOKEN}", env).unwrap(), "Bearer s3cr3t");
        assert_eq!(substitute_with("a $5 and $${TOKEN}", env).unwrap(), "a $5 and ${TOKEN}");
        assert!(
            substitute_with("${MISSING}", env)
                .unwrap_err()
                .contains("MISSING is not set")
        );
        assert!(substitute_with("${TOKEN", env).unwrap_err().contains("unclosed"));
    }

    #[test]
    fn an_https_client_builds_with_ring_and_native_roots() {
        let caller = HttpCaller::new(&HttpEndpoint::new("https://example.com/hook")).unwrap();
        assert_eq!(caller.url, "https://example.com/hook");
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
        assert!(!format!("{caller:?}").contains("application/json"));
    }

    #[test]
    fn bad_headers_are_configuration_errors() {
        let mut e = HttpEndpoint::new("http://127.0.0.1:1/x");
        e.headers.insert("Bad Header".into(), "x".into());
        assert!(HttpCaller::new(&e).is_err());
    }
}
