//! Reading the stores: log search over tantivy, SQL over Parquet and the Arrow buffer.
//!
//! This crate never sees HTTP types; `web` turns its errors into answers.

pub mod search;
pub mod sql;
pub mod tail;

pub use search::{
    Cursor, Facets, Histogram, HistogramRequest, Hit, LogQuery, MAX_LIMIT, SearchRequest,
    SearchResult, SortOrder, SplitBy, facets, histogram, request_logs, search,
};
pub use sql::{SqlEngine, SqlLimits, SqlResult};
pub use tail::{TailEvent, TailHub};

/// Errors of a read, classified by whose fault they are.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueryError {
    /// The search query does not parse or asks for something impossible.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// The search query breaks the grammar at `position` (a byte offset).
    #[error("invalid query at position {position}: {message}")]
    Syntax { message: String, position: usize },
    /// The SQL is malformed, refers to unknown things, or is not allowed.
    #[error("{0}")]
    InvalidSql(String),
    /// The statement is valid SQL but not allowed (it writes or changes settings).
    #[error("{0}")]
    Forbidden(String),
    /// The memory or row limit ended the query.
    #[error("{0}")]
    ResourcesExhausted(String),
    /// The query ran past its time limit.
    #[error("{0}")]
    Timeout(String),
    /// The server failed.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<tantivy::TantivyError> for QueryError {
    fn from(e: tantivy::TantivyError) -> Self {
        QueryError::Internal(e.to_string())
    }
}
