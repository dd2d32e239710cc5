//! One decoder per wire format. Each turns a request body into a [`Decoded`]: the good events as
//! a [`Batch`], and the rejected ones with their position and reason. A body that cannot be read
//! at all is a [`DecodeError`] and nothing of it is kept.

pub mod emf;
pub mod lines;
pub mod ndjson;
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
