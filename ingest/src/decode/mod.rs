//! One decoder per wire format. Each turns a request body into a [`Decoded`]: the good events as
//! a [`Batch`], and the rejected ones with their position and reason. A body that cannot be read
//! at all is a [`DecodeError`] and nothing of it is kept.

pub mod cloudwatch;
pub mod emf;
pub mod lines;
pub mod ndjson;
pub mod otlp;
pub mod telemetry;

use fnlens_model::Batch;
use serde::Serialize;

/// The whole request is unreadable.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("body is not valid JSON: {0}")]
    Json(String),
    #[error("body must be a JSON array of events")]
    NotAnArray,
    /// The body (or a part of it) is valid JSON of the wrong shape.
    #[error("{0}")]
    Shape(String),
    #[error("{0} is not valid base64: {1}")]
    Base64(String, String),
    #[error("{0} is not valid gzip: {1}")]
    Gzip(String, String),
    #[error("body is not a valid {0} protobuf message: {1}")]
    Protobuf(&'static str, String),
    /// Decompressed, the body is larger than the limit (bytes).
    #[error("the decompressed body is over the limit of {0} bytes")]
    TooLarge(usize),
}

impl DecodeError {
    /// A short, stable code for answers and counters.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::Json(_) => "invalid_json",
            DecodeError::NotAnArray => "not_an_array",
            DecodeError::Shape(_) => "invalid_body",
            DecodeError::Base64(..) => "invalid_base64",
            DecodeError::Gzip(..) => "invalid_gzip",
            DecodeError::Protobuf(..) => "invalid_protobuf",
            DecodeError::TooLarge(_) => "body_too_large",
        }
    }
}

/// Whether `bytes` start with gzip's magic number.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Decompresses gzip, refusing to produce more than `limit` bytes (a small body can expand a
/// thousandfold). `what` names the input in the error.
pub fn gunzip(bytes: &[u8], limit: usize, what: &str) -> Result<Vec<u8>, DecodeError> {
    use std::io::Read;
    let mut out = Vec::with_capacity((bytes.len() * 4).min(limit));
    let mut reader = flate2::read::MultiGzDecoder::new(bytes).take(limit as u64 + 1);
    reader
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Gzip(what.to_owned(), e.to_string()))?;
    if out.len() > limit {
        return Err(DecodeError::TooLarge(limit));
    }
    Ok(out)
}

/// Decodes standard base64 (padding optional).
pub fn base64_decode(text: &str, what: &str) -> Result<Vec<u8>, DecodeError> {
    use base64::Engine;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const STANDARD: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    STANDARD
        .decode(text.trim())
        .map_err(|e| DecodeError::Base64(what.to_owned(), e.to_string()))
}

/// One event rejected on its own.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejection {
    /// Position of the event in the batch, from 0.
    pub index: usize,
    /// The event's `type`, when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// A short, stable reason, also the label of the rejection counter.
    pub reason: &'static str,
    /// What exactly was wrong, naming the field.
    pub detail: String,
}

impl Rejection {
    pub fn new(reason: &'static str, detail: impl Into<String>) -> Rejection {
        Rejection {
            index: 0,
            event_type: None,
            reason,
            detail: detail.into(),
        }
    }

    fn invalid(field: &str) -> Rejection {
        Rejection::new("invalid_field", format!("{field} is not a valid number"))
    }
}

/// The outcome of decoding one readable body.
#[derive(Debug, Default)]
pub struct Decoded {
    pub batch: Batch,
    pub rejected: Vec<Rejection>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn gunzip_round_trip_and_limit() {
        let data = vec![b'a'; 10_000];
        let z = gzip(&data);
        assert!(is_gzip(&z));
        assert_eq!(gunzip(&z, 10_000, "body").unwrap(), data);
        assert_eq!(
            gunzip(&z, 9_999, "body").unwrap_err(),
            DecodeError::TooLarge(9_999)
        );
        let err = gunzip(&z[..z.len() / 2], 1 << 20, "body").unwrap_err();
        assert_eq!(err.code(), "invalid_gzip");
        assert!(
            err.to_string().starts_with("body is not valid gzip"),
            "{err}"
        );
    }

    #[test]
    fn base64_with_and_without_padding() {
        assert_eq!(base64_decode("aGk=", "x").unwrap(), b"hi");
        assert_eq!(base64_decode("aGk", "x").unwrap(), b"hi");
        let err = base64_decode("a$b", "awslogs.data").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("awslogs.data is not valid base64"),
            "{err}"
        );
    }
}
