//! A response as JSON, bounded: `GRAPHQL_MAX_RESPONSE_BYTES` caps what one operation
//! may send back. Encoding stops at the cap (the writer refuses the byte past it),
//! so an oversize reply never sits in memory a second time as text, and the caller
//! answers `RESPONSE_TOO_LARGE` instead.

use std::collections::BTreeMap;
use std::io;

use async_graphql::{Response, ServerError, Value};
use serde::Serialize;

use super::errors::set_code;

/// The reply passed the cap.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the response is larger than the gateway's limit of {max} bytes (GRAPHQL_MAX_RESPONSE_BYTES): ask for fewer rows or fields")]
pub struct TooLarge {
    /// The cap.
    pub max: usize,
}

/// The wire shape of a response; `data` left out when the request never executed
/// (GraphQL over HTTP, `application/graphql-response+json`).
#[derive(Serialize)]
struct Body<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Value>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [ServerError],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    extensions: &'a BTreeMap<String, Value>,
}

/// A `Vec` that refuses to grow past `max` bytes.
struct Capped {
    bytes: Vec<u8>,
    max: usize,
}

impl io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len() + buf.len() > self.max {
            return Err(io::Error::other("over the cap"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `response` as JSON of at most `max` bytes; without `data` unless `with_data`.
pub fn encode(response: &Response, with_data: bool, max: usize) -> Result<Vec<u8>, TooLarge> {
    let body = Body {
        data: with_data.then_some(&response.data),
        errors: &response.errors,
        extensions: &response.extensions,
    };
    let mut out = Capped {
        bytes: Vec::with_capacity(max.min(16 * 1024)),
        max,
    };
    // Only the cap can fail: every part of a response is plain JSON.
    serde_json::to_writer(&mut out, &body).map_err(|_| TooLarge { max })?;
    Ok(out.bytes)
}

/// The error that replaces a reply past the cap (`data` is `null`).
pub fn too_large(e: &TooLarge) -> Response {
    let mut error = ServerError::new(e.to_string(), None);
    set_code(&mut error, "RESPONSE_TOO_LARGE");
    Response::from_errors(vec![error])
}

/// Whether `response`'s JSON fits in `max` bytes, counted without keeping it.
pub fn fits(response: &Response, max: usize) -> bool {
    struct Counter {
        left: usize,
    }
    impl io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.left = self
                .left
                .checked_sub(buf.len())
                .ok_or_else(|| io::Error::other("over the cap"))?;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    serde_json::to_writer(&mut Counter { left: max }, response).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::value;

    #[test]
    fn replies_within_the_cap_are_encoded_as_async_graphql_would() {
        let response = Response::new(value!({"books": [{"title": "Dune"}]}));
        let json = encode(&response, true, 1024).expect("fits");
        assert_eq!(json, serde_json::to_vec(&response).expect("encodes"));
        assert!(fits(&response, json.len()));
        assert!(!fits(&response, json.len() - 1));
        assert_eq!(
            encode(&response, true, json.len() - 1),
            Err(TooLarge {
                max: json.len() - 1
            })
        );
    }

    #[test]
    fn without_data_the_entry_is_absent() {
        let response = Response::from_errors(vec![ServerError::new("bad", None)]);
        let json = encode(&response, false, 1024).expect("fits");
        let parsed: serde_json::Value = serde_json::from_slice(&json).expect("json");
        assert!(parsed.get("data").is_none(), "{parsed}");
        assert_eq!(parsed["errors"][0]["message"], "bad");
    }
}
